//! Helpers for the fault tests: a subscription that nobody reads until the test says so (a slow
//! consumer, or one of a thousand sockets to drop), stats, and id arithmetic.
//!
//! The shared [`crate::Subscription`] reads its socket on a thread from the start, so it can never
//! stand for a client that stops reading; [`Quiet`] reads nothing until [`Quiet::read_to_end`].

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use herald_core::Parser;
use herald_test_support::Dechunker;

use crate::{stats, Msg};

pub use crate::{seq_of, split_id};

/// The `subscribers` figure of a stream's stats.
pub fn subscribers(base: &str, connection: &str, token: &str) -> u64 {
    stats(base, connection, token)["subscribers"]
        .as_u64()
        .expect("subscribers is a number")
}

/// Polls the stats until `subscribers` equals `want`; returns how long that took, or `None` (with
/// the last count seen) if it did not happen within `timeout`.
pub fn wait_subscribers(
    base: &str,
    connection: &str,
    token: &str,
    want: u64,
    timeout: Duration,
) -> Result<Duration, u64> {
    let start = Instant::now();
    loop {
        let seen = subscribers(base, connection, token);
        if seen == want {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            return Err(seen);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A body of `{"events":[...]}` whose events are named `name` and carry `{"n":<n>,"pad":"<pad>"}`
/// for each `n` in `numbers`; `pad_bytes` of padding makes events as large as a test needs.
pub fn numbered_batch(name: &str, numbers: std::ops::Range<u64>, pad_bytes: usize) -> String {
    let pad = "x".repeat(pad_bytes);
    let events: Vec<String> = numbers
        .map(|n| format!(r#"{{"event":"{name}","data":{{"n":{n},"pad":"{pad}"}}}}"#))
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

/// The `n` a [`numbered_batch`] event carries.
pub fn number_of(msg: &Msg) -> u64 {
    let value: serde_json::Value = serde_json::from_str(&msg.data)
        .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", msg.data));
    value["n"]
        .as_u64()
        .unwrap_or_else(|| panic!("no n in {}", msg.data))
}

/// What a [`Quiet`] subscription read once it was finally read.
#[derive(Debug)]
pub struct Drained {
    /// HTTP status.
    pub status: u16,
    /// Every dispatched message, in order.
    pub messages: Vec<Msg>,
    /// Body bytes (after de-chunking).
    pub body_bytes: usize,
    /// Whether the server ended the body (final chunk or EOF) rather than the read timing out.
    pub ended: bool,
}

/// A subscription whose socket the test does not read until it chooses to.
#[derive(Debug)]
pub struct Quiet {
    stream: TcpStream,
}

impl Quiet {
    /// Sends `GET path` and returns without reading a byte of the answer.
    pub fn open(base: &str, path: &str, bearer: Option<&str>, extra: &[(&str, &str)]) -> Quiet {
        Quiet {
            stream: crate::send_get(base, path, bearer, extra),
        }
    }

    /// Reads only the status line and headers (the body stays unread in the socket), returning the
    /// status.
    pub fn read_status(&mut self, timeout: Duration) -> u16 {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let head = crate::read_head_text(&mut self.stream);
        status_of(&head)
    }

    /// Whether the server has closed this connection: reads (without blocking) whatever is buffered
    /// and reports an end of stream or a reset. For diagnosis: it consumes the buffered bytes.
    pub fn closed_by_server(&mut self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut buf = [0u8; 4096];
        let closed = loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        self.stream.set_nonblocking(false).expect("blocking");
        closed
    }

    /// Closes the socket with its unread body still queued, so the kernel answers with an RST
    /// rather than an orderly FIN: the way a crashed or killed client goes away.
    pub fn reset(self) {
        drop(self.stream);
    }

    /// Reads the response from the start until the server ends it, or until nothing arrives for
    /// `idle`; parses it with herald-core's parser.
    pub fn read_to_end(mut self, idle: Duration) -> Drained {
        self.stream
            .set_read_timeout(Some(idle))
            .expect("read timeout");
        let head = crate::read_head_text(&mut self.stream);
        let status = status_of(&head);
        let chunked = head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked");
        let mut parser = Parser::new();
        let mut messages = Vec::new();
        let mut body_bytes = 0;
        let mut feed = |bytes: &[u8], messages: &mut Vec<Msg>| {
            parser.feed(bytes, |m| {
                messages.push(Msg {
                    event: m.event_type.to_string(),
                    data: m.data.to_string(),
                    id: m.last_event_id.to_string(),
                });
            });
        };
        let mut decoder = Dechunker::default();
        let mut buf = vec![0u8; 64 * 1024];
        let ended = loop {
            let n = match self.stream.read(&mut buf) {
                Ok(0) => break true,
                Ok(n) => n,
                // A reset after the last byte also ends the body; a timeout does not.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            };
            if !chunked {
                body_bytes += n;
                feed(&buf[..n], &mut messages);
                continue;
            }
            decoder.feed(&buf[..n], |data| {
                body_bytes += data.len();
                feed(data, &mut messages);
            });
            if decoder.is_done() {
                break true;
            }
        };
        Drained {
            status,
            messages,
            body_bytes,
            ended,
        }
    }
}

fn status_of(head: &str) -> u16 {
    head.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Publishes like [`crate::publish`], but a transport failure (the server died mid-request) is
/// `None` instead of a panic: the caller cannot know whether that event was stored.
pub fn try_publish(base: &str, connection: &str, token: &str, body: &str) -> Option<Vec<String>> {
    let response = ureq::post(&format!("{base}/v1/streams/{connection}/events"))
        .timeout(Duration::from_secs(30))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json")
        .send_string(body);
    match response {
        Ok(response) => {
            let value: serde_json::Value = response.into_json().ok()?;
            Some(
                value["ids"]
                    .as_array()?
                    .iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect(),
            )
        }
        Err(ureq::Error::Status(status, response)) => panic!(
            "publish refused with {status}: {}",
            response.into_string().unwrap_or_default()
        ),
        Err(ureq::Error::Transport(_)) => None,
    }
}

/// Like [`crate::Subscription::take`], but a shortfall panics with a summary (count and last id)
/// instead of every message: the fault tests carry kilobytes of padding per event.
pub fn take_events(sub: &crate::Subscription, n: usize, timeout: Duration) -> Vec<Msg> {
    let mut got: Vec<Msg> = Vec::with_capacity(n);
    while got.len() < n {
        match sub.next_event(timeout) {
            Some(msg) => got.push(msg),
            None => panic!(
                "expected {n} events, got {}; the last was {:?}",
                got.len(),
                got.last().map(|m| (&m.event, &m.id))
            ),
        }
    }
    got
}

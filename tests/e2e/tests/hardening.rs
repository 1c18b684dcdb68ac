//! What a hostile or broken client could do, each refused or bounded: bodies over their
//! limit refused before they are read, access tokens in URLs refused on every route, CORS that
//! never echoes `null` nor allows credentials for a wildcard, a per-credential subscriber cap,
//! clients that never read dropped at the drain bound, an isolate-wide queue budget, a storage
//! failure that stores, sends and breaks nothing, an unreadable stored plan that counts as none,
//! and settings refused when out of range.
//!
//! Figures are printed to stderr; run with `-- --nocapture` to see them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::faults::{number_of, split_id, subscribers, wait_subscribers, Quiet};
use herald_e2e::{
    full_token, publish, request, request_with, stats, token, unique, Answer, Msg, Subscription,
    Wrangler,
};

/// Generous: the machine is small and shared.
const WAIT: Duration = Duration::from_secs(30);

fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "body: {}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/json"),
        "body: {}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(body["error"], code, "body: {}", answer.body);
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message names the problem: {}",
        answer.body
    );
}

/// Sends `method path` with `headers` and `body` as they are, and reads the answer's head and body
/// (up to `Content-Length`), giving up after `timeout`: for requests the harness cannot make (a
/// declared length, a chunked body that pauses) and for answers that must come before the body
/// ends.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    fn open(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Raw {
        let address = base.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).expect("connect");
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {address}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("send head");
        Raw { stream }
    }

    /// Sends `bytes` as one chunk of a chunked body.
    fn chunk(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
            .and_then(|()| self.stream.write_all(bytes))
            .and_then(|()| self.stream.write_all(b"\r\n"))
            .expect("send chunk");
    }

    /// The answer's status and body, or `None` if no complete answer came within `timeout`.
    fn answer(mut self, timeout: Duration) -> Option<(u16, String)> {
        self.stream
            .set_read_timeout(Some(timeout))
            .expect("read timeout");
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&got[..end]).to_string();
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if got.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&got[end + 4..end + 4 + length]);
                    return Some((status, body.to_string()));
                }
            }
            if Instant::now() > deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => return None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    }
}

fn json_error(status: u16, body: &str, want_status: u16, code: &str) {
    assert_eq!(status, want_status, "body: {body}");
    let value: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    assert_eq!(value["error"], code, "body: {body}");
}

/// Item 2: a body over its limit is refused before it is read: a declared `Content-Length` at
/// once, a chunked body as soon as it passes the limit (the client has paused, so only a Worker
/// that stops reading at the limit can answer), small bodies (tickets, plan cancel) at 4 KiB.
#[test]
fn bodies_over_their_limit_are_refused_before_they_are_read() {
    // The storage hook is set without HERALD_TEST_HOOKS=1, so it must do nothing.
    let wrangler = Wrangler::start(&[("HERALD_TEST_FAIL_STORAGE", "boom")]);
    let token = full_token("acme");
    let stream = unique("bodies");
    let sub = wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]);
    assert_eq!(sub.status, 200);
    let bearer = format!("Bearer {token}");
    let chunked = |path: &str, bytes: usize| {
        let mut raw = Raw::open(
            &wrangler.base,
            "POST",
            path,
            &[
                ("Authorization", &bearer),
                ("Content-Type", "application/json"),
                ("Transfer-Encoding", "chunked"),
            ],
        );
        raw.chunk(b"[");
        let piece = vec![b' '; 16 * 1024];
        let mut sent = 1;
        while sent < bytes {
            raw.chunk(&piece);
            sent += piece.len();
        }
        // No final chunk: the upload pauses here, so the answer must come from the bytes so far.
        let started = Instant::now();
        let answer = raw.answer(Duration::from_secs(10));
        (answer, started.elapsed())
    };

    let (answer, took) = chunked(&format!("/v1/streams/{stream}/events"), 2 * 1024 * 1024);
    let (status, body) = answer.expect("a chunked publish over 1 MiB is refused before it ends");
    json_error(status, &body, 413, "too_large");
    eprintln!("chunked publish of 2 MiB (paused): 413 after {took:?}");
    let (answer, took) = chunked("/v1/tickets", 8 * 1024);
    let (status, body) =
        answer.expect("a chunked ticket body over 4 KiB is refused before it ends");
    json_error(status, &body, 413, "too_large");
    eprintln!("chunked ticket body of 8 KiB (paused): 413 after {took:?}");

    // Small bodies: a ticket request padded past 4 KiB is refused although it is valid JSON, and so
    // is a plan cancel carrying a body it does not use.
    let padded = format!(r#"{{"connectionId":"{stream}"{}}}"#, " ".repeat(5 * 1024));
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&token),
        Some(&padded),
    );
    assert_error(&ticket, 413, "too_large");
    let small = format!(r#"{{"connectionId":"{stream}"}}"#);
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&token),
        Some(&small),
    );
    assert_eq!(ticket.status, 200, "{}", ticket.body);
    let cancel = request(
        "POST",
        &wrangler.url("/api/plan/cancel"),
        Some(&token),
        Some(&" ".repeat(5 * 1024)),
    );
    assert_error(&cancel, 413, "too_large");

    // A declared length over the limit (the body is sent whole, as an ordinary client would).
    let big = format!(r#"{{"event":"big","data":"{}"}}"#, "x".repeat(2_000_000));
    let publish_big = request(
        "POST",
        &wrangler.url(&format!("/v1/streams/{stream}/events")),
        Some(&token),
        Some(&big),
    );
    assert_error(&publish_big, 413, "too_large");

    // Nothing was stored or sent: the next event the subscriber sees is the next good one, seq 1.
    assert_eq!(stats(&wrangler.base, &stream, &token)["log_events"], 0);
    let ids = publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"boom","data":"the storage hook is off without HERALD_TEST_HOOKS=1"}"#,
    );
    assert_eq!(split_id(&ids[0]).1, 1);
    let first = sub.next_event(WAIT).expect("the good event");
    assert_eq!(
        (first.event.as_str(), first.id.as_str()),
        ("boom", ids[0].as_str())
    );
}

/// Item 5: `?token=` and `?access_token=` are refused (401) on every route, whatever else the
/// request carries (a valid Bearer header, a valid ticket), and the request does nothing.
#[test]
fn access_tokens_in_the_url_are_refused_on_every_route() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let stream = unique("url-token");
    let ticket = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(&token),
        Some(&format!(r#"{{"connectionId":"{stream}"}}"#)),
    )
    .json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_string();
    let event = Some(r#"{"event":"e"}"#);
    let routes: [(&str, String, Option<&str>); 9] = [
        ("POST", format!("/v1/streams/{stream}/events"), event),
        ("GET", format!("/v1/streams/{stream}"), None),
        ("GET", format!("/v1/streams/{stream}/stats"), None),
        ("POST", format!("/v1/streams/{stream}/disconnect"), None),
        (
            "POST",
            "/v1/tickets".into(),
            Some(r#"{"connectionId":"x"}"#),
        ),
        ("POST", "/api/plan/stages".into(), Some(r#"{"op":"x"}"#)),
        ("POST", "/api/plan/cancel".into(), None),
        ("GET", "/api/events".into(), None),
        ("GET", "/healthz".into(), None),
    ];
    for (method, path, body) in &routes {
        for param in ["token", "access_token"] {
            let url = wrangler.url(&format!("{path}?{param}={token}"));
            let answer = request(method, &url, Some(&token), *body);
            assert_error(&answer, 401, "unauthorized");
            // After another parameter too, with an empty value.
            let url = wrangler.url(&format!("{path}?heartbeat=comment&{param}="));
            let answer = request(method, &url, Some(&token), *body);
            assert_error(&answer, 401, "unauthorized");
        }
    }
    // A subscriber with a valid ticket and an access token beside it.
    let answer = request(
        "GET",
        &wrangler.url(&format!(
            "/v1/streams/{stream}?ticket={ticket}&token={token}"
        )),
        None,
        None,
    );
    assert_error(&answer, 401, "unauthorized");
    let stats = stats(&wrangler.base, &stream, &token);
    assert_eq!(stats["log_events"], 0, "the publishes did nothing");
    assert_eq!(stats["subscribers"], 0);
}

/// Sends `method path` with an `Origin` header (if any) and returns the answer: a preflight for a
/// GET with `Authorization`, or the request itself with a token.
fn with_origin(wrangler: &Wrangler, method: &str, path: &str, origin: Option<&str>) -> Answer {
    let bearer = format!("Bearer {}", full_token("acme"));
    let mut headers = vec![];
    if let Some(origin) = origin {
        headers.push(("origin", origin));
    }
    if method == "OPTIONS" {
        headers.push(("access-control-request-method", "GET"));
        headers.push(("access-control-request-headers", "authorization"));
    } else {
        headers.push(("authorization", bearer.as_str()));
    }
    request_with(method, &wrangler.url(path), &headers, None)
}

fn varies_on_origin(answer: &Answer) -> bool {
    answer
        .headers
        .iter()
        .filter(|(name, _)| name == "vary")
        .flat_map(|(_, value)| value.split(','))
        .any(|name| name.trim().eq_ignore_ascii_case("origin"))
}

/// Item 6: `HERALD_CORS_ORIGINS=*` answers a literal `*` and never allows credentials, for any
/// origin, `null` included; every answer varies on `Origin`.
#[test]
fn a_cors_wildcard_is_a_literal_star_without_credentials() {
    let wrangler = Wrangler::start(&[("HERALD_CORS_ORIGINS", "*")]);
    let stream = unique("cors-any");
    let paths = [
        ("GET", format!("/v1/streams/{stream}/stats")),
        ("GET", "/healthz".to_string()),
        ("GET", "/nope".to_string()),
        ("OPTIONS", format!("/v1/streams/{stream}")),
    ];
    for (method, path) in &paths {
        for origin in ["https://evil.example", "null", "https://app.example"] {
            let answer = with_origin(&wrangler, method, path, Some(origin));
            let who = format!("{method} {path} from {origin}: {:?}", answer.headers);
            assert_eq!(
                answer.header("access-control-allow-origin"),
                Some("*"),
                "{who}"
            );
            assert_eq!(
                answer.header("access-control-allow-credentials"),
                None,
                "{who}"
            );
            assert!(varies_on_origin(&answer), "{who}");
        }
        let answer = with_origin(&wrangler, method, path, None);
        assert!(varies_on_origin(&answer), "{method} {path} without Origin");
    }
}

/// Item 6: a listed origin is echoed with credentials; `null` is never echoed, even when listed;
/// an unlisted origin gets no CORS headers; every answer varies on `Origin`.
#[test]
fn cors_echoes_listed_origins_and_never_null() {
    let wrangler = Wrangler::start(&[("HERALD_CORS_ORIGINS", "https://app.example, null")]);
    let stream = unique("cors-list");
    let stats_path = format!("/v1/streams/{stream}/stats");
    for method in ["GET", "OPTIONS"] {
        let answer = with_origin(&wrangler, method, &stats_path, Some("https://App.example"));
        assert_eq!(
            answer.header("access-control-allow-origin"),
            Some("https://App.example"),
            "{method}: {:?}",
            answer.headers
        );
        assert_eq!(
            answer.header("access-control-allow-credentials"),
            Some("true")
        );
        assert!(varies_on_origin(&answer));
        for origin in ["null", "https://evil.example"] {
            let answer = with_origin(&wrangler, method, &stats_path, Some(origin));
            assert_eq!(
                answer.header("access-control-allow-origin"),
                None,
                "{method} from {origin}: {:?}",
                answer.headers
            );
            assert_eq!(answer.header("access-control-allow-credentials"), None);
            assert!(varies_on_origin(&answer), "{method} from {origin}");
        }
    }
    let answer = with_origin(&wrangler, "GET", &stats_path, None);
    assert_eq!(answer.status, 200);
    assert!(varies_on_origin(&answer), "{:?}", answer.headers);
    // An SSE response too.
    let sub = Subscription::open(
        &wrangler.base,
        &format!("/v1/streams/{stream}"),
        Some(&full_token("acme")),
        &[("Origin", "https://app.example")],
    );
    assert_eq!(sub.status, 200);
    assert_eq!(
        sub.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(sub.header("vary").is_some_and(|v| v.contains("Origin")));
}

fn mint_ticket(wrangler: &Wrangler, token: &str, stream: &str) -> String {
    let answer = request(
        "POST",
        &wrangler.url("/v1/tickets"),
        Some(token),
        Some(&format!(r#"{{"connectionId":"{stream}"}}"#)),
    );
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_string()
}

/// Item 3: one credential cannot take every slot of a stream: past
/// `HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX` it gets 429 while other credentials (another token, a
/// ticket) still subscribe, and a slot it frees is its own again.
#[test]
fn one_credential_cannot_take_every_subscriber_slot() {
    let wrangler = Wrangler::start(&[
        ("HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX", "2"),
        ("HERALD_SUBSCRIBERS_MAX", "10"),
        ("HERALD_HEARTBEAT_MS", "250"),
    ]);
    let hog = full_token("acme");
    let other = token("acme", &[Scope::Subscribe], None, 1800);
    let stream = unique("per-credential");
    let path = format!("/v1/streams/{stream}");
    let mut held: Vec<Subscription> = (0..2)
        .map(|_| wrangler.subscribe(&path, Some(&hog), &[]))
        .collect();
    assert!(held.iter().all(|sub| sub.status == 200));
    wait_subscribers(&wrangler.base, &stream, &hog, 2, WAIT).expect("two subscribers");
    let refused = request("GET", &wrangler.url(&path), Some(&hog), None);
    assert_error(&refused, 429, "too_many_subscribers");
    assert!(
        refused
            .body
            .contains("HERALD_SUBSCRIBERS_PER_CREDENTIAL_MAX"),
        "{}",
        refused.body
    );
    assert_eq!(refused.header("retry-after"), Some("10"));

    // Other credentials are not held back: another token of the same tenant, and tickets (each its
    // own credential, minted by the hog's token).
    let others = [
        wrangler.subscribe(&path, Some(&other), &[]),
        wrangler.subscribe(&path, Some(&other), &[]),
    ];
    let ticket = mint_ticket(&wrangler, &hog, &stream);
    let by_ticket = wrangler.subscribe(&format!("{path}?ticket={ticket}"), None, &[]);
    assert_eq!(
        [others[0].status, others[1].status, by_ticket.status],
        [200, 200, 200]
    );
    let again = wrangler.subscribe(&format!("{path}?ticket={ticket}"), None, &[]);
    assert_eq!(again.status, 200, "the ticket's second subscriber");
    wait_subscribers(&wrangler.base, &stream, &hog, 6, WAIT).expect("six subscribers");
    let refused = request("GET", &wrangler.url(&path), Some(&other), None);
    assert_error(&refused, 429, "too_many_subscribers");

    // The hog leaves one stream: that slot is its own again.
    held.pop().expect("held").abort();
    wait_subscribers(&wrangler.base, &stream, &hog, 5, WAIT).expect("one slot freed");
    let back = wrangler.subscribe(&path, Some(&hog), &[]);
    assert_eq!(back.status, 200);
}

/// A batch of `count` events named `name`, numbered from `first`, each with `pad` bytes of data.
fn padded_batch(first: u64, count: u64, pad: usize) -> String {
    herald_e2e::faults::numbered_batch("chunk", first..first + count, pad)
}

/// What a quiet subscriber finally read: the events before its `lagging` frame, and the id that
/// frame names (`None` for `{}`).
fn prefix_and_resume(messages: &[Msg]) -> (Vec<Msg>, Option<String>) {
    let (last, events) = messages
        .split_last()
        .expect("the quiet subscriber got nothing");
    assert_eq!(
        last.event, "lagging",
        "the stream must end with lagging, got {} {}",
        last.event, last.id
    );
    let data: serde_json::Value = serde_json::from_str(&last.data).expect("lagging data is JSON");
    let events: Vec<Msg> = events
        .iter()
        .filter(|m| m.event == "chunk")
        .cloned()
        .collect();
    (events, data["resume"].as_str().map(String::from))
}

/// Resumes from `cursor` until event `total` arrives (a replay may itself end in `lagging`; each
/// hop continues exactly where the previous stopped) and returns the events' numbers.
fn resume_rest(
    wrangler: &Wrangler,
    stream: &str,
    token: &str,
    cursor: &str,
    total: u64,
) -> Vec<u64> {
    let mut cursor = cursor.to_string();
    let mut numbers = Vec::new();
    for _ in 0..total {
        let sub = wrangler.subscribe(
            &format!("/v1/streams/{stream}"),
            Some(token),
            &[("Last-Event-ID", &cursor)],
        );
        assert_eq!(sub.status, 200);
        loop {
            let msg = sub
                .next_event(WAIT)
                .unwrap_or_else(|| panic!("resume from {cursor} stalled"));
            assert_ne!(msg.event, "reset", "resume from {cursor} found a gap");
            if msg.event == "lagging" {
                let (_, resume) = prefix_and_resume(&[msg]);
                cursor = resume.unwrap_or(cursor);
                break;
            }
            numbers.push(number_of(&msg));
            cursor = msg.id.clone();
            if number_of(&msg) == total {
                return numbers;
            }
        }
    }
    panic!("resume made no progress from {cursor}")
}

/// Publishes 1 MB batches (16 events of 60 KiB), paced, until the stream has `until` subscribers
/// (a quiet one was dropped); returns how many events were published.
fn publish_until_dropped(wrangler: &Wrangler, stream: &str, token: &str, until: u64) -> u64 {
    const PER_BATCH: u64 = 16;
    const PAD: usize = 60 * 1024;
    let started = Instant::now();
    let mut published = 0;
    while published < 64 * PER_BATCH {
        publish(
            &wrangler.base,
            stream,
            token,
            &padded_batch(published + 1, PER_BATCH, PAD),
        );
        published += PER_BATCH;
        std::thread::sleep(Duration::from_millis(150));
        if subscribers(&wrangler.base, stream, token) == until {
            eprintln!(
                "the quiet subscriber was dropped after {published} events (~{} MB) in {:?}",
                published * PAD as u64 / 1_000_000,
                started.elapsed()
            );
            return published;
        }
    }
    panic!(
        "the quiet subscriber was never dropped ({published} events published, {} subscribers)",
        subscribers(&wrangler.base, stream, token)
    );
}

/// Item 3: a client that never reads is dropped once its frames have waited `HERALD_DRAIN_MS_MAX`
/// in the Worker, long before its own (large) queue is full: the Hub's count drops at once, a
/// reader is not affected, and the quiet client, when it reads at last, finds what it had been
/// given and a `lagging` naming where to resume, from which the rest comes without a gap.
#[test]
fn a_client_that_never_reads_is_dropped_at_the_drain_bound() {
    let wrangler = Wrangler::start(&[
        ("HERALD_DRAIN_MS_MAX", "1000"),
        ("HERALD_QUEUE_FRAMES_MAX", "100000"),
        ("HERALD_QUEUE_BYTES_MAX", "201326592"),
        ("HERALD_LOG_EVENTS_MAX", "10000"),
        ("HERALD_LOG_BYTES_MAX", "67108864"),
    ]);
    let token = full_token("acme");
    let stream = unique("drain");
    let quiet = Quiet::open(
        &wrangler.base,
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[],
    );
    // (Its status is read at the end: `read_to_end` reads the head itself.)
    let reader = wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]);
    wait_subscribers(&wrangler.base, &stream, &token, 2, WAIT).expect("two subscribers");

    let total = publish_until_dropped(&wrangler, &stream, &token, 1);
    let got: Vec<u64> = (0..total)
        .map(|_| {
            number_of(
                &reader
                    .next_event(WAIT)
                    .expect("the reader gets every event"),
            )
        })
        .collect();
    assert_eq!(
        got,
        (1..=total).collect::<Vec<_>>(),
        "the reader was not affected"
    );

    let drained = quiet.read_to_end(Duration::from_secs(10));
    assert_eq!(drained.status, 200);
    assert!(drained.ended, "the quiet subscriber's stream was not ended");
    let (events, resume) = prefix_and_resume(&drained.messages);
    let numbers: Vec<u64> = events.iter().map(number_of).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        resume,
        events.last().map(|m| m.id.clone()),
        "lagging names the last event the client was given"
    );
    eprintln!(
        "quiet subscriber: {} events ({} body bytes) before lagging",
        numbers.len(),
        drained.body_bytes
    );
    let cursor = resume.expect("the runtime's buffers took some events before the client stalled");
    let rest = resume_rest(&wrangler, &stream, &token, &cursor, total);
    assert_eq!(rest, (numbers.len() as u64 + 1..=total).collect::<Vec<_>>());
}

/// Item 3: all relays of a Worker isolate share `HERALD_ISOLATE_QUEUE_BYTES_MAX`: a client that
/// never reads is cut when its queue would pass it, long before its own queue or the drain bound
/// would cut it, and its queue is freed at once.
#[test]
fn the_isolate_budget_cuts_a_stalled_relay() {
    let wrangler = Wrangler::start(&[
        ("HERALD_ISOLATE_QUEUE_BYTES_MAX", "4194304"),
        ("HERALD_DRAIN_MS_MAX", "600000"),
        ("HERALD_QUEUE_FRAMES_MAX", "100000"),
        ("HERALD_QUEUE_BYTES_MAX", "201326592"),
        ("HERALD_LOG_EVENTS_MAX", "10000"),
        ("HERALD_LOG_BYTES_MAX", "67108864"),
    ]);
    let token = full_token("acme");
    let stream = unique("budget");
    let quiet = Quiet::open(
        &wrangler.base,
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[],
    );
    // (Its status is read at the end: `read_to_end` reads the head itself.)
    wait_subscribers(&wrangler.base, &stream, &token, 1, WAIT).expect("one subscriber");
    let total = publish_until_dropped(&wrangler, &stream, &token, 0);
    let drained = quiet.read_to_end(Duration::from_secs(10));
    assert_eq!(drained.status, 200);
    eprintln!(
        "stalled subscriber read {} body bytes, {} messages, last {:?}",
        drained.body_bytes,
        drained.messages.len(),
        drained
            .messages
            .last()
            .map(|m| (&m.event, &m.id, m.data.get(..40)))
    );
    assert!(
        drained.ended,
        "the stalled subscriber's stream was not ended"
    );
    let (events, resume) = prefix_and_resume(&drained.messages);
    let numbers: Vec<u64> = events.iter().map(number_of).collect();
    assert_eq!(numbers, (1..=numbers.len() as u64).collect::<Vec<_>>());
    assert_eq!(resume, events.last().map(|m| m.id.clone()));
    let cursor = resume.expect("the runtime's buffers took some events before the client stalled");
    let rest = resume_rest(&wrangler, &stream, &token, &cursor, total);
    assert_eq!(rest, (numbers.len() as u64 + 1..=total).collect::<Vec<_>>());
}

/// Item 4: the Hub's storage fails in the middle of an append (the test-only hook writes the rows,
/// then fails before the summary): the publish answers a JSON 5xx, nothing is stored or sent, and
/// the Hub serves the next publish and subscribe correctly, numbering on without a gap.
#[test]
fn a_failed_append_stores_and_sends_nothing_and_the_hub_recovers() {
    let wrangler = Wrangler::start(&[
        ("HERALD_TEST_HOOKS", "1"),
        ("HERALD_TEST_FAIL_STORAGE", "boom"),
    ]);
    let token = full_token("acme");
    let stream = unique("storage");
    let sub = wrangler.subscribe(&format!("/v1/streams/{stream}"), Some(&token), &[]);
    assert_eq!(sub.status, 200);
    let first = publish(&wrangler.base, &stream, &token, r#"{"event":"one"}"#);
    assert_eq!(sub.next_event(WAIT).expect("one").id, first[0]);

    let failed = request(
        "POST",
        &wrangler.url(&format!("/v1/streams/{stream}/events")),
        Some(&token),
        Some(r#"[{"event":"two"},{"event":"boom"},{"event":"three"}]"#),
    );
    assert!(failed.status >= 500, "{} {}", failed.status, failed.body);
    assert_error(&failed, failed.status, "internal");
    let after = stats(&wrangler.base, &stream, &token);
    assert_eq!(after["log_events"], 1, "nothing stored: {after}");
    assert_eq!(after["last_id"], first[0].as_str());
    assert!(sub
        .next(Duration::from_secs(2))
        .is_none_or(|m| m.event != "two"));

    // The next publish gets the next number, as if the failed one never happened, and is sent.
    let next = publish(&wrangler.base, &stream, &token, r#"{"event":"four"}"#);
    assert_eq!(split_id(&next[0]), (split_id(&first[0]).0, 2));
    let got = sub.next_event(WAIT).expect("four");
    assert_eq!(
        (got.event.as_str(), got.id.as_str()),
        ("four", next[0].as_str())
    );
    // A new subscriber resuming from the first event gets exactly the second: no row of the failed
    // batch is left in the log.
    let late = wrangler.subscribe(
        &format!("/v1/streams/{stream}"),
        Some(&token),
        &[("Last-Event-ID", &first[0])],
    );
    let replay = late.next_event(WAIT).expect("the replay");
    assert_eq!(
        (replay.event.as_str(), replay.id.as_str()),
        ("four", next[0].as_str())
    );
    let stats = stats(&wrangler.base, &stream, &token);
    assert_eq!(stats["log_events"], 2, "{stats}");
    assert_eq!(stats["subscribers"], 2);
    assert!(wrangler.logs().contains("publish not stored"));
}

/// Item 1: a stored plan the Hub cannot read back (the test-only hook stores it nested past
/// serde_json's recursion limit, as plans with deeply nested details once were) counts as no plan,
/// and is logged, instead of failing every request of the stream with 500.
#[test]
fn an_unreadable_stored_plan_counts_as_no_plan() {
    let mut wrangler = Wrangler::start(&[
        ("HERALD_TEST_HOOKS", "1"),
        ("HERALD_TEST_UNREADABLE_PLAN", "1"),
    ]);
    let token = full_token("acme");
    let opened = request(
        "POST",
        &wrangler.url("/api/plan"),
        Some(&token),
        Some(r#"{"environment":"dev"}"#),
    );
    assert_eq!(opened.status, 204, "{}", opened.body);
    // A restart makes the Hub read its plan back from storage.
    wrangler.restart();
    let stats_now = stats(&wrangler.base, "default", &token);
    assert_eq!(
        stats_now["log_events"], 1,
        "the opening tracker: {stats_now}"
    );
    let sub = wrangler.subscribe("/api/events", Some(&token), &[]);
    assert_eq!(sub.status, 200);
    let ids = publish(&wrangler.base, "default", &token, r#"{"event":"after"}"#);
    assert_eq!(split_id(&ids[0]).1, 2);
    let again = request(
        "POST",
        &wrangler.url("/api/plan"),
        Some(&token),
        Some(r#"{"environment":"prod"}"#),
    );
    assert_eq!(again.status, 204, "{}", again.body);
    assert!(
        wrangler.logs().contains("stored plan unreadable"),
        "the unreadable plan is logged"
    );
}

/// Item 10: a setting out of its range is refused, never truncated (4,294,967,296 was 0 as a 32-bit
/// `usize`, so the log kept nothing): every request, `/healthz` included, answers 500 with a
/// message naming the variable and its range.
#[test]
fn a_setting_out_of_range_is_refused_naming_the_variable() {
    let wrangler = Wrangler::start_answering(&[("HERALD_LOG_BYTES_MAX", "4294967296")]);
    let token = full_token("acme");
    for path in ["/healthz", "/v1/streams/x/stats", "/v1/streams/x"] {
        let answer = request(
            "GET",
            &format!("{}{path}", wrangler.base),
            Some(&token),
            None,
        );
        assert_error(&answer, 500, "internal");
        let message = answer.json()["message"].as_str().unwrap_or("").to_string();
        assert!(
            message.contains("HERALD_LOG_BYTES_MAX")
                && message.contains("4294967296")
                && message.contains("67108864"),
            "{message}"
        );
    }
}

//! Interop across a crash: the Durable Streams TypeScript client (`@durable-streams/client`) and
//! the Python client (`durable-streams` on PyPI) append through idempotent producers while
//! `wrangler dev` is killed and restarted mid-stream; a reader from offset `-1` then sees every
//! message exactly once, in order. Also: the same producer headers on Herald's own publish route.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use herald_e2e::{full_token, repo_root, unique, Wrangler};

const COUNT: usize = 60;

struct Client {
    child: Child,
    lines: Receiver<String>,
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: PathBuf, script: &str, url: &str, token: &str) -> Client {
    let root = repo_root();
    let mut child = Command::new(program)
        .arg(root.join(script))
        .current_dir(&root)
        .env("DS_URL", url)
        .env("DS_TOKEN", token)
        .env("COUNT", COUNT.to_string())
        // Paced, so that the restart falls mid-stream however fast this machine is.
        .env("PACE_MS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let (send, lines) = channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if send.send(line).is_err() {
                break;
            }
        }
    });
    Client { child, lines }
}

/// Waits for a line satisfying `done`; panics at the deadline or when the client exits first.
fn wait_for(client: &Client, deadline: Duration, what: &str, done: impl Fn(&str) -> bool) {
    let end = Instant::now() + deadline;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out waiting for {what}");
        match client.lines.recv_timeout(left) {
            Ok(line) if done(&line) => return,
            Ok(_) => {}
            Err(e) => panic!("client ended before {what}: {e}"),
        }
    }
}

fn progress_at_least(n: usize) -> impl Fn(&str) -> bool {
    move |line| {
        line.strip_prefix("progress ")
            .and_then(|v| v.parse::<usize>().ok())
            .is_some_and(|v| v >= n)
    }
}

/// Reads the whole JSON stream from `-1`, page by page, as its messages.
fn read_all(url: &str, token: &str) -> Vec<serde_json::Value> {
    let mut messages = Vec::new();
    let mut offset = String::from("-1");
    for _ in 0..1000 {
        let response = ureq::get(url)
            .query("offset", &offset)
            .set("authorization", &format!("Bearer {token}"))
            .timeout(Duration::from_secs(30))
            .call()
            .expect("catch-up read");
        let next = response
            .header("stream-next-offset")
            .expect("next offset")
            .to_string();
        let up_to_date = response.header("stream-up-to-date") == Some("true");
        let page: Vec<serde_json::Value> = response.into_json().expect("a JSON array");
        messages.extend(page);
        if up_to_date {
            return messages;
        }
        offset = next;
    }
    panic!("the stream never caught up")
}

/// Runs one client's producer across a kill and restart of wrangler dev, then checks the stream.
fn across_restart(wrangler: &mut Wrangler, program: PathBuf, script: &str, label: &str) {
    let token = full_token(&unique("interop"));
    let url = wrangler.url(&format!("/ds/interop/{}", unique(label)));
    let client = spawn(program, script, &url, &token);
    wait_for(
        &client,
        Duration::from_secs(120),
        "a third of the messages",
        progress_at_least(COUNT / 3),
    );
    wrangler.kill();
    // The client is mid-stream: it has not finished while the server is down.
    let before: Vec<String> = client.lines.try_iter().collect();
    assert!(
        !before.iter().any(|l| l == "done"),
        "{label} finished before the kill: {before:?}"
    );
    wrangler.restart();
    wait_for(
        &client,
        Duration::from_secs(240),
        "the producer to finish",
        |l| l == "done",
    );
    let messages = read_all(&url, &token);
    let numbers: Vec<u64> = messages
        .iter()
        .map(|m| {
            assert_eq!(m["client"], label, "{m}");
            m["n"].as_u64().expect("n")
        })
        .collect();
    let expected: Vec<u64> = (0..COUNT as u64).collect();
    assert_eq!(
        numbers, expected,
        "{label}: every message exactly once, in order"
    );
}

#[test]
fn typescript_and_python_producers_survive_a_restart_exactly_once() {
    let root = repo_root();
    let mut wrangler = Wrangler::start(&[]);
    across_restart(
        &mut wrangler,
        root.join("node_modules/.bin/node"),
        "tests/interop/producer.mjs",
        "ts",
    );
    across_restart(
        &mut wrangler,
        root.join(".venv/bin/python"),
        "tests/interop/producer.py",
        "py",
    );
}

fn publish_as(
    base: &str,
    stream: &str,
    token: &str,
    epoch: u64,
    seq: u64,
    body: &str,
) -> (u16, String) {
    let result = ureq::post(&format!("{base}/v1/streams/{stream}/events"))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json")
        .set("producer-id", "herald-publisher")
        .set("producer-epoch", &epoch.to_string())
        .set("producer-seq", &seq.to_string())
        .timeout(Duration::from_secs(30))
        .send_string(body);
    match result {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(status, r)) => (status, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn id_seq(body: &str) -> u64 {
    let json: serde_json::Value = serde_json::from_str(body).expect("publish answer");
    let id = json["ids"][0].as_str().expect("an id");
    id.rsplit_once('-')
        .and_then(|(_, seq)| seq.parse().ok())
        .expect("<epoch>-<seq>")
}

#[test]
fn herald_publish_with_producer_headers_is_stored_once_across_a_restart() {
    let mut wrangler = Wrangler::start(&[]);
    let token = full_token(&unique("publisher"));
    let stream = unique("once");
    let event = r#"{"event":"tick","data":{"n":1}}"#;
    let (status, body) = publish_as(&wrangler.base, &stream, &token, 0, 0, event);
    assert_eq!(status, 200, "{body}");
    let first = id_seq(&body);
    // A retry is answered, not stored, before and after a crash.
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 0, 0, event).0,
        204
    );
    wrangler.restart();
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 0, 0, event).0,
        204
    );
    let (status, body) = publish_as(&wrangler.base, &stream, &token, 0, 1, event);
    assert_eq!(status, 200, "{body}");
    assert_eq!(id_seq(&body), first + 1, "the retries stored nothing");
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 0, 5, event).0,
        409,
        "a gap"
    );
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 1, 3, event).0,
        400,
        "a new epoch starts at 0"
    );
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 1, 0, event).0,
        200
    );
    assert_eq!(
        publish_as(&wrangler.base, &stream, &token, 0, 2, event).0,
        403,
        "a zombie is fenced"
    );
    let partial = ureq::post(&format!("{}/v1/streams/{stream}/events", wrangler.base))
        .set("authorization", &format!("Bearer {token}"))
        .set("content-type", "application/json")
        .set("producer-id", "p")
        .send_string(event);
    assert!(
        matches!(partial, Err(ureq::Error::Status(400, _))),
        "headers go together"
    );
}

//! The `herald` command line against `wrangler dev`: `tail` through a server cut (the runtime
//! killed and restarted) with no gap and no duplicate, to `stream.complete` and a 204, with tickets
//! that expire on the way, and stopped by Ctrl-C; `publish` from stdin in batches that respect the
//! worker's limits; `token` and `ticket` minted for the worker, and refused for a short key.
//!
//! The binary is built once per run with `cargo build -p herald-cli` (this crate cannot depend on a
//! binary), then run as a user would.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use herald_e2e::faults::split_id;
use herald_e2e::{full_token, publish, repo_root, request, unique, Wrangler, TEST_KEY};
use serde_json::Value;

/// Generous: the machine is small and shared, and a restart of `wrangler dev` takes a while.
const WAIT: Duration = Duration::from_secs(60);

/// The `herald` binary, built on first use.
fn herald() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "herald-cli"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p herald-cli failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        target.join("debug/herald")
    })
    .clone()
}

/// A `herald` command with no `HERALD_*` variables from the environment running the tests.
fn command(args: &[&str]) -> Command {
    let mut command = Command::new(herald());
    command.args(args);
    for name in ["HERALD_URL", "HERALD_TOKEN", "HERALD_TOKEN_KEY"] {
        command.env_remove(name);
    }
    command
}

/// A finished command's status and output.
struct Ran {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

fn run(mut command: Command, stdin: &str) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start herald");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let writer = thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let output = child.wait_with_output().expect("wait for herald");
    writer.join().expect("stdin writer");
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A running `herald tail`, its stdout read line by line on a thread, its stderr kept.
struct Tail {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Tail {
    fn start(args: &[&str]) -> Tail {
        let mut child = command(&[&["tail"], args].concat())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start herald tail");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let kept = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Tail {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The next `n` JSON lines that are not heartbeats (panics with what came if they do not).
    fn take_events(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "expected {n} events, got {}: {got:?}\nstderr:\n{}",
                    got.len(),
                    self.stderr()
                );
            };
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}"));
            if event["event"] != "heartbeat" {
                got.push(event);
            }
        }
        got
    }

    /// Every line until stdout closes.
    fn rest(&self) -> Vec<String> {
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(WAIT) {
            rest.push(line);
        }
        rest
    }

    /// Waits until the worker counts the tail's subscription: a publish before it would not reach
    /// it.
    fn wait_subscribed(&self, wrangler: &Wrangler, stream: &str, token: &str) {
        let stats = wrangler.url(&format!("/v1/streams/{stream}/stats"));
        let deadline = Instant::now() + WAIT;
        while request("GET", &stats, Some(token), None).json()["subscribers"] != 1 {
            assert!(
                Instant::now() < deadline,
                "the tail never subscribed: {}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "herald tail still running after {WAIT:?}; stderr:\n{}",
                self.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP proxy in front of the worker for the tail alone, so that a test decides when the tail can
/// reconnect: while it refuses, each connection is closed as soon as it is accepted.
struct Gate {
    /// The base URL to give the tail.
    base: String,
    refusing: Arc<AtomicBool>,
}

impl Gate {
    fn open(upstream: &str) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = Arc::clone(&refusing);
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if refuse.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        // One side ended (the worker died, or the tail left): end both.
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Gate { base, refusing }
    }

    fn refuse(&self, refuse: bool) {
        self.refusing.store(refuse, Ordering::SeqCst);
    }
}

/// `{"events":[{"event":name,"data":{"n":..}}, ...]}`.
fn batch(name: &str, numbers: std::ops::RangeInclusive<u64>) -> String {
    let events: Vec<String> = numbers
        .map(|n| format!(r#"{{"event":"{name}","data":{{"n":{n}}}}}"#))
        .collect();
    format!(r#"{{"events":[{}]}}"#, events.join(","))
}

/// The `n` of each event's JSON data, checking that ids only grow.
fn numbers(events: &[Value]) -> Vec<u64> {
    let mut last = (0, 0);
    events
        .iter()
        .map(|event| {
            let id = split_id(event["id"].as_str().expect("an id"));
            assert!(id > last, "ids go backwards at {event}");
            last = id;
            let data: Value = serde_json::from_str(event["data"].as_str().expect("data text"))
                .expect("JSON data");
            data["n"].as_u64().expect("n")
        })
        .collect()
}

#[test]
fn tail_follows_through_a_server_cut_with_no_gap_and_no_duplicate() {
    let mut wrangler =
        Wrangler::start(&[("HERALD_RETRY_MS", "300"), ("HERALD_HEARTBEAT_MS", "500")]);
    let token = full_token("acme");
    let stream = unique("cli-cut");
    let gate = Gate::open(&wrangler.base);
    let mut tail = Tail::start(&[
        &stream, "--url", &gate.base, "--token", &token, "--types", "tick", "--json", "-v",
    ]);
    // Events of another type go between the ticks: the filter keeps them out.
    let noise = r#"{"event":"noise","data":{"n":0}}"#;
    // The tail may not be subscribed yet: wait for its first heartbeat before publishing.
    let first = tail.lines.recv_timeout(WAIT).expect("a first line");
    assert!(first.contains("\"heartbeat\""), "{first}");
    publish(&wrangler.base, &stream, &token, &batch("tick", 1..=5));
    publish(&wrangler.base, &stream, &token, noise);
    let mut seen = tail.take_events(5);

    // The runtime dies under the tail. Events published after the restart, while the tail cannot
    // reconnect, come in the replay its Last-Event-ID asks for; then the stream is live again.
    gate.refuse(true);
    wrangler.restart();
    publish(&wrangler.base, &stream, &token, &batch("tick", 6..=10));
    publish(&wrangler.base, &stream, &token, noise);
    gate.refuse(false);
    seen.extend(tail.take_events(5));
    publish(&wrangler.base, &stream, &token, &batch("tick", 11..=15));
    seen.extend(tail.take_events(5));
    assert_eq!(numbers(&seen), (1..=15).collect::<Vec<_>>());
    let stderr = tail.stderr();
    assert!(
        stderr.contains("reconnecting") && stderr.contains("Last-Event-ID"),
        "the cut is reported with -v: {stderr}"
    );
    assert!(
        stderr.contains("retrying"),
        "so are the attempts refused: {stderr}"
    );

    // Ctrl-C: exit 130, with every line printed whole.
    let pid = tail.child.id().to_string();
    let sent = Command::new("kill").args(["-INT", &pid]).status();
    assert!(sent.is_ok_and(|s| s.success()));
    let status = tail.wait();
    assert_eq!(status.code(), Some(130), "{status:?}");
    for line in tail.rest() {
        serde_json::from_str::<Value>(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    }
}

#[test]
fn tail_stops_at_stream_complete_and_on_a_complete_stream() {
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let job = unique("cli-job");
    let base = [
        job.as_str(),
        "--family",
        "runner",
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ];
    let mut tail = Tail::start(&base);
    let url = wrangler.url(&format!("/runner-jobs/{job}/events"));
    let started = r#"{"event":"step.started","data":{"stepId":"s1","name":"Running tests"}}"#;
    let done = r#"[{"event":"step.output","data":"line one\nline two"},
                   {"event":"stream.complete","data":{"status":"success"}}]"#;
    tail.wait_subscribed(&wrangler, &job, &token);
    assert_eq!(
        request("POST", &url, Some(&token), Some(started)).status,
        200
    );
    assert_eq!(request("POST", &url, Some(&token), Some(done)).status, 200);
    let status = tail.wait();
    assert!(status.success(), "{status:?}: {}", tail.stderr());
    let lines = tail.rest();
    let shapes: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| {
            let mut parts = line.splitn(3, ' ');
            let id = parts.next().unwrap();
            assert!(id.contains('-'), "{line}");
            (parts.next().unwrap(), parts.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        shapes,
        [
            ("step.started", r#"{"stepId":"s1","name":"Running tests"}"#),
            ("step.output", r"line one\nline two"),
            ("stream.complete", r#"{"status":"success"}"#),
        ]
    );

    // A later tail gets the replay and stops at the same end; one that has seen it gets a 204.
    let ran = run(command(&[&["tail"][..], &base].concat()), "");
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(ran.stdout.lines().collect::<Vec<_>>(), lines);
    let last = lines[2].split(' ').next().unwrap();
    let after_end = [&["tail"][..], &base, &["--last-event-id", last, "-v"]].concat();
    let ran = run(command(&after_end), "");
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(ran.stdout, "");
    assert!(ran.stderr.contains("204"), "{}", ran.stderr);
}

#[test]
fn tail_with_tickets_gets_a_new_one_when_the_last_expired() {
    // Tickets live 2 s and streams 3 s, so every reconnect finds its ticket expired. Expiry is in
    // whole seconds, so a ticket lives between TTL - 1 and TTL seconds: a 1 s ticket could be
    // expired on its first use.
    let wrangler = Wrangler::start(&[
        ("HERALD_TICKET_TTL_S", "2"),
        ("HERALD_STREAM_MAX_AGE_S", "3"),
        ("HERALD_RETRY_MS", "100"),
    ]);
    let token = full_token("acme");
    let stream = unique("cli-ticket");
    let mut tail = Tail::start(&[
        &stream,
        "--via-ticket",
        "--url",
        &wrangler.base,
        "--token",
        &token,
        "--json",
        "-v",
    ]);
    tail.wait_subscribed(&wrangler, &stream, &token);
    let mut published = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        published += 1;
        publish(
            &wrangler.base,
            &stream,
            &token,
            &batch("tick", published..=published),
        );
        thread::sleep(Duration::from_millis(500));
    }
    publish(
        &wrangler.base,
        &stream,
        &token,
        r#"{"event":"stream.complete"}"#,
    );
    let status = tail.wait();
    assert!(status.success(), "{status:?}: {}", tail.stderr());
    let lines: Vec<Value> = tail
        .rest()
        .iter()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .filter(|event: &Value| event["event"] == "tick")
        .collect();
    assert_eq!(numbers(&lines), (1..=published).collect::<Vec<_>>());
    let stderr = tail.stderr();
    assert!(
        stderr.matches("getting a new one").count() >= 2,
        "expired tickets replaced on the reconnects: {stderr}"
    );
}

#[test]
fn publish_from_stdin_batches_under_the_worker_limits() {
    let wrangler = Wrangler::start(&[
        ("HERALD_BATCH_EVENTS_MAX", "7"),
        ("HERALD_BATCH_BYTES_MAX", "400"),
        ("HERALD_TEST_HOOKS", "1"),
        ("HERALD_TEST_FAIL_STORAGE", "boom"),
    ]);
    let token = full_token("acme");
    let stream = unique("cli-stdin");
    let lines: Vec<String> = (1..=30)
        .map(|n| format!("{{ \"n\": {n}, \"note\": \"line {n}\" }}"))
        .collect();
    let input = format!("{}\n\n", lines.join("\n"));
    let publish_with = |extra: &[&str]| {
        let mut args = vec![
            "publish",
            &stream,
            "tick",
            "-",
            "--url",
            &wrangler.base,
            "--token",
            &token,
        ];
        args.extend(extra);
        run(command(&args), &input)
    };
    // With the client's default limits (100 events, 1 MiB) the worker refuses the first batch.
    let refused = publish_with(&[]);
    assert_eq!(refused.status.code(), Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("413"), "{}", refused.stderr);
    assert_eq!(refused.stdout, "");

    let ran = publish_with(&["--batch-events-max", "7", "--batch-bytes-max", "400"]);
    assert!(ran.status.success(), "{}", ran.stderr);
    let ids: Vec<&str> = ran.stdout.lines().collect();
    assert_eq!(ids.len(), 30, "{}", ran.stdout);
    let seqs: Vec<u64> = ids.iter().map(|id| split_id(id).1).collect();
    assert_eq!(seqs, (1..=30).collect::<Vec<_>>());

    // Read back from the start: the data as sent, minus the whitespace between tokens.
    let epoch = split_id(ids[0]).0;
    let tail = Tail::start(&[
        &stream,
        "--url",
        &wrangler.base,
        "--token",
        &token,
        "--json",
        "--last-event-id",
        &format!("{epoch}-0"),
    ]);
    let events = tail.take_events(30);
    for (n, event) in (1..=30).zip(&events) {
        assert_eq!(event["id"], ids[n - 1]);
        assert_eq!(event["data"], format!(r#"{{"n":{n},"note":"line {n}"}}"#));
    }
    drop(tail);

    // One event from the arguments, as text.
    let args = [
        "publish",
        &stream,
        "note",
        "two words",
        "--text",
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ];
    let ran = run(command(&args), "");
    assert!(ran.status.success(), "{}", ran.stderr);
    assert_eq!(split_id(ran.stdout.trim()).1, 31);
    // Data that is not JSON is refused before anything is sent.
    let args = [
        "publish",
        &stream,
        "note",
        "two words",
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ];
    let ran = run(command(&args), "");
    assert_eq!(ran.status.code(), Some(2), "{}", ran.stderr);

    // A 500 (the storage hook fails any publish holding `boom`) may follow a stored publish in
    // general, so it is not retried unless asked for; then it is, as many times as allowed.
    let boom = [
        "publish",
        &stream,
        "boom",
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ];
    let ran = run(command(&boom), "");
    assert_eq!(ran.status.code(), Some(1), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("500") && ran.stderr.contains("not sent again"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("retrying"), "{}", ran.stderr);
    let ran = run(
        command(&[&boom[..], &["--retry-unsafe", "--retries", "2"]].concat()),
        "",
    );
    assert_eq!(ran.status.code(), Some(1), "{}", ran.stderr);
    assert_eq!(
        ran.stderr.matches("retrying in").count(),
        2,
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("gave up after 3 tries"),
        "{}",
        ran.stderr
    );
}

#[test]
fn tokens_and_tickets_minted_by_the_cli_work_and_short_keys_are_refused() {
    // Refused before anything else, from the environment and from a key file alike.
    let short = &TEST_KEY[..31];
    let key_file = repo_root().join(".e2e").join(unique("short.key"));
    std::fs::create_dir_all(key_file.parent().unwrap()).unwrap();
    std::fs::write(&key_file, format!("{short}\n")).unwrap();
    let key_path = key_file.display().to_string();
    for args in [
        &["token", "--tenant", "acme"][..],
        &["ticket", "demo", "--tenant", "acme"],
    ] {
        let mut from_env = command(args);
        from_env.env("HERALD_TOKEN_KEY", short);
        let mut from_file = command(&[args, &["--key-file", &key_path]].concat());
        from_file.env("HERALD_TOKEN_KEY", TEST_KEY);
        for cmd in [from_env, from_file] {
            let ran = run(cmd, "");
            assert_eq!(ran.status.code(), Some(2), "{args:?}: {}", ran.stderr);
            assert!(
                ran.stderr.contains("31 bytes") && ran.stderr.contains("at least 32"),
                "{args:?}: {}",
                ran.stderr
            );
            assert_eq!(ran.stdout, "", "nothing minted");
        }
    }
    let _ = std::fs::remove_file(&key_file);

    // With the worker's key: the token publishes and subscribes, each ticket subscribes.
    let wrangler = Wrangler::start(&[]);
    let stream = unique("cli-mint");
    let mint = |args: &[&str]| {
        let mut cmd = command(args);
        cmd.env("HERALD_TOKEN_KEY", TEST_KEY);
        let ran = run(cmd, "");
        assert!(ran.status.success(), "{args:?}: {}", ran.stderr);
        ran.stdout.trim().to_string()
    };
    let token = mint(&[
        "token",
        "--tenant",
        "acme",
        "--streams",
        &stream,
        "--ttl-s",
        "600",
    ]);
    publish(&wrangler.base, &stream, &token, r#"{"event":"hello"}"#);
    let local = mint(&["ticket", &stream, "--tenant", "acme"]);
    let served = mint(&[
        "ticket",
        &stream,
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ]);
    for ticket in [&local, &served] {
        let path = format!("/v1/streams/{stream}?ticket={ticket}");
        let sub = wrangler.subscribe(&path, None, &[]);
        assert_eq!(sub.status, 200, "a ticket from the CLI subscribes");
    }
    // The worker refuses a ticket for a stream the token does not allow.
    let mut cmd = command(&[
        "ticket",
        "other",
        "--url",
        &wrangler.base,
        "--token",
        &token,
    ]);
    cmd.env("HERALD_TOKEN_KEY", TEST_KEY);
    let ran = run(cmd, "");
    assert_eq!(ran.status.code(), Some(1), "{}", ran.stderr);
    assert!(ran.stderr.contains("403"), "{}", ran.stderr);
}

//! The end-to-end harness: starts the worker under `wrangler dev` (local workerd, a fresh persist
//! directory, a free loopback port), mints tokens with herald-core, and talks to it over real HTTP,
//! parsing streams with herald-core's own parser.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use herald_core::{
    mint, Claims, ConnectionId, Parser, Position, Scope, Scopes, TenantId, TokenKind,
};
use herald_test_support::DechunkRead;

pub mod clients;
pub mod faults;
pub mod openapi;

/// The HMAC key every test instance is started with.
pub const TEST_KEY: &str = "e2e-test-key-0123456789abcdef0123456789abcdef";

/// The repository root (the e2e crate lives in `tests/e2e`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// PATH with the repository's `node_modules/.bin` first, so wrangler (`#!/usr/bin/env node`) runs
/// on the Node 22 that npm installs (package `node`, see scripts/setup.sh), not on the system's
/// Node 20.
fn node_path() -> std::ffi::OsString {
    let system = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(repo_root().join("node_modules/.bin"));
    std::env::join_paths(dirs.chain(std::env::split_paths(&system))).expect("PATH")
}

/// Seconds since the Unix epoch.
pub fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A unique name for a connection id, so tests sharing one instance never share a hub by accident.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

fn free_port() -> u16 {
    // Bind to port 0 for a port the OS considers free, then release it for wrangler.
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The repository's wrangler.toml without its `[build]` section, with `main` and the assets
/// `directory` made absolute (the copy lives in the persist directory): the tests run the worker
/// that `scripts/build-worker.sh` built, and an edit to the sources during a run must not make
/// every running instance rebuild and reload (wrangler watches `[build] watch_dir`).
fn test_config(root: &Path) -> String {
    let text = std::fs::read_to_string(root.join("wrangler.toml")).expect("wrangler.toml");
    let shim = root.join("edge-worker/build/worker/shim.mjs");
    let mut config = String::new();
    let mut in_build = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_build = trimmed == "[build]";
        }
        if in_build {
            continue;
        }
        if trimmed.starts_with("main = ") {
            config.push_str(&format!("main = {:?}\n", shim.display().to_string()));
        } else if let Some(directory) = trimmed.strip_prefix("directory = ") {
            let directory = root.join(directory.trim().trim_matches('"'));
            config.push_str(&format!(
                "directory = {:?}\n",
                directory.display().to_string()
            ));
        } else {
            config.push_str(line);
            config.push('\n');
        }
    }
    config
}

/// A running `wrangler dev`. Dropping it kills the whole process group.
#[derive(Debug)]
pub struct Wrangler {
    child: Option<Child>,
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    port: u16,
    persist: PathBuf,
    vars: Vec<(String, String)>,
    /// Ready means `/healthz` answers 200; else any HTTP answer will do (a refused configuration
    /// answers nothing but 500s).
    healthy: bool,
}

/// Whether wrangler dev's output says it listens on `base` (`http://127.0.0.1:PORT`): its
/// `Ready on <base>` line, which it prints only once it has bound the port itself.
pub fn wrangler_listens(printed: &str, base: &str) -> bool {
    printed.lines().any(|line| {
        line.split_once("Ready on ")
            .is_some_and(|(_, url)| url.trim_end() == base)
    })
}

impl Wrangler {
    /// Starts an instance with a fresh persist directory and extra `--var`s, and waits until
    /// `/healthz` answers 200.
    pub fn start(vars: &[(&str, &str)]) -> Wrangler {
        Self::start_with(vars, true)
    }

    /// Starts an instance whose settings may be refused: ready as soon as it answers anything.
    pub fn start_answering(vars: &[(&str, &str)]) -> Wrangler {
        Self::start_with(vars, false)
    }

    fn start_with(vars: &[(&str, &str)], healthy: bool) -> Wrangler {
        let persist = repo_root().join(".e2e").join(unique("state"));
        std::fs::create_dir_all(&persist).expect("persist dir");
        let mut vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !vars.iter().any(|(k, _)| k == "HERALD_TOKEN_KEY") {
            vars.push(("HERALD_TOKEN_KEY".into(), TEST_KEY.into()));
        }
        let mut wrangler = Wrangler {
            child: None,
            base: String::new(),
            port: 0,
            persist,
            vars,
            healthy,
        };
        // Another process may take the free port between our probe and wrangler's bind: try anew.
        for attempt in 1..=3 {
            match wrangler.spawn(free_port()) {
                Ok(()) => return wrangler,
                Err(why) if attempt < 3 => {
                    eprintln!("wrangler dev did not start ({why}); retrying")
                }
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!("the last attempt panics")
    }

    fn spawn(&mut self, port: u16) -> Result<(), String> {
        use std::os::unix::process::CommandExt;
        let root = repo_root();
        let logs = self.persist.join("logs");
        let config = self.persist.join("wrangler.toml");
        std::fs::write(&config, test_config(&root)).expect("write test wrangler.toml");
        let mut command = Command::new(root.join("node_modules/.bin/wrangler"));
        command
            .current_dir(&root)
            .arg("dev")
            .arg("--config")
            .arg(&config)
            .args([
                "--ip",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--inspector-port",
                "0",
            ])
            .arg("--persist-to")
            .arg(&self.persist)
            .env("PATH", node_path())
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("HERALD_SKIP_BUILD", "1")
            .env("WRANGLER_LOG_PATH", &logs)
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(self.persist.join("wrangler.out")).expect("log file"),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(self.persist.join("wrangler.err")).expect("log file"),
            ))
            .process_group(0);
        for (key, value) in &self.vars {
            command.arg("--var").arg(format!("{key}:{value}"));
        }
        let child = command
            .spawn()
            .expect("start wrangler dev (run scripts/setup.sh first)");
        self.child = Some(child);
        self.port = port;
        self.base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(90);
        let out = self.persist.join("wrangler.out");
        loop {
            // Whatever answers on the port may be another process that took it between our probe
            // and wrangler's bind (another test's workerd): only this wrangler saying it listens
            // there makes the answer ours.
            let ours = std::fs::read_to_string(&out)
                .is_ok_and(|printed| wrangler_listens(&printed, &self.base));
            if ours {
                match ureq::get(&format!("{}/healthz", self.base))
                    .timeout(Duration::from_secs(2))
                    .call()
                {
                    Ok(response) if response.status() == 200 => return Ok(()),
                    Err(ureq::Error::Status(..)) if !self.healthy => return Ok(()),
                    _ => {}
                }
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.kill();
                return Err(format!(
                    "wrangler dev exited with {status}; see {}",
                    self.persist.display()
                ));
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!(
                    "wrangler dev not ready in 90 s; see {}",
                    self.persist.display()
                ));
            }
            thread::sleep(Duration::from_millis(250));
        }
    }

    /// Kills the process group (as a crash would) and waits for it to go.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as i32;
            // The whole group: wrangler, its node child, esbuild and workerd. `kill` the command
            // keeps this crate free of libc; `--` makes the negative pid a process
            // group, not an option.
            let _ = Command::new("kill")
                .args(["-9", "--", &format!("-{pid}")])
                .status();
            let _ = child.wait();
            // Wait until the port is released.
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(100));
            }
        }
    }

    /// Kills and starts again on the same port with the same persist directory.
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port;
        self.spawn(port)
            .unwrap_or_else(|why| panic!("restart on port {port}: {why}"));
    }

    /// Opens an SSE subscription to `path` on this instance (see [`Subscription::open`]).
    pub fn subscribe(
        &self,
        path: &str,
        bearer: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Subscription {
        Subscription::open(&self.base, path, bearer, extra)
    }

    /// Subscribes to the generic stream `stream` with a Bearer token, asserting a 200.
    pub fn subscribe_stream(
        &self,
        stream: &str,
        token: &str,
        extra: &[(&str, &str)],
    ) -> Subscription {
        let sub = self.subscribe(&format!("/v1/streams/{stream}"), Some(token), extra);
        assert_eq!(sub.status, 200, "subscribe to {stream}");
        sub
    }

    /// A URL on this instance.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Wrangler {
    /// Everything wrangler and the worker printed so far (stdout and stderr).
    pub fn logs(&self) -> String {
        ["wrangler.out", "wrangler.err"]
            .iter()
            .filter_map(|name| std::fs::read_to_string(self.persist.join(name)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        self.kill();
        // Keep the state and logs of a failed test for inspection; clean up after a passing one.
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.persist);
        }
    }
}

/// An event id `<epoch>-<seq>` as its numbers, read by herald-core's [`Position`] (panics on
/// anything else: ids are the hub's own).
pub fn split_id(id: &str) -> (u64, u64) {
    let position = Position::parse(id).unwrap_or_else(|e| panic!("not an event id {id:?}: {e}"));
    (position.epoch, position.seq)
}

/// An event id's sequence number (see [`split_id`]).
pub fn seq_of(id: &str) -> u64 {
    split_id(id).1
}

/// Mints an access token for `tenant` with the given scopes (and optional stream allow-list).
pub fn token(tenant: &str, scopes: &[Scope], streams: Option<&[&str]>, ttl_s: u64) -> String {
    let claims = Claims {
        tenant: TenantId::new(tenant).expect("tenant"),
        scopes: Scopes {
            publish: scopes.contains(&Scope::Publish),
            subscribe: scopes.contains(&Scope::Subscribe),
        },
        streams: streams.map(|ids| {
            ids.iter()
                .map(|id| ConnectionId::new(id).expect("connection id"))
                .collect()
        }),
        exp_s: now_s() + ttl_s,
        iat_s: None,
        kind: TokenKind::Access,
    };
    mint(&claims, TEST_KEY.as_bytes())
}

/// A token for `tenant` with both scopes on every stream, valid for an hour.
pub fn full_token(tenant: &str) -> String {
    token(tenant, &[Scope::Publish, Scope::Subscribe], None, 3600)
}

/// A response's status and body, whatever the status.
#[derive(Debug)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The body as text.
    pub body: String,
    /// Response headers, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl Answer {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn answer(result: Result<ureq::Response, ureq::Error>) -> Answer {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport error: {error}"),
    };
    let status = response.status();
    let headers = response
        .headers_names()
        .into_iter()
        // Every value of a repeated header, so that a test can see a header sent twice.
        .flat_map(|name| {
            response
                .all(&name)
                .into_iter()
                .map(|v| (name.to_ascii_lowercase(), v.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
    let body = response.into_string().unwrap_or_default();
    Answer {
        status,
        body,
        headers,
    }
}

/// Sends a request with an optional bearer token and body.
pub fn request(method: &str, url: &str, bearer: Option<&str>, body: Option<&str>) -> Answer {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    if let Some(token) = bearer {
        req = req.set("authorization", &format!("Bearer {token}"));
    }
    answer(match body {
        Some(body) => req
            .set("content-type", "application/json")
            .send_string(body),
        None => req.call(),
    })
}

/// Sends a request with the given headers (a `Cookie`, an `Origin`, ...) and an optional JSON body.
pub fn request_with(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Answer {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(30));
    for (name, value) in headers {
        req = req.set(name, value);
    }
    answer(match body {
        Some(body) => req
            .set("content-type", "application/json")
            .send_string(body),
        None => req.call(),
    })
}

/// Publishes and returns the ids the hub assigned (panics unless 200).
pub fn publish(base: &str, connection: &str, token: &str, body: &str) -> Vec<String> {
    let answer = request(
        "POST",
        &format!("{base}/v1/streams/{connection}/events"),
        Some(token),
        Some(body),
    );
    assert_eq!(answer.status, 200, "publish failed: {}", answer.body);
    answer.json()["ids"]
        .as_array()
        .expect("ids")
        .iter()
        .map(|v| v.as_str().expect("id").to_string())
        .collect()
}

/// `GET /v1/streams/{connection}/stats` as JSON (panics unless 200).
pub fn stats(base: &str, connection: &str, token: &str) -> serde_json::Value {
    let answer = request(
        "GET",
        &format!("{base}/v1/streams/{connection}/stats"),
        Some(token),
        None,
    );
    assert_eq!(answer.status, 200, "stats failed: {}", answer.body);
    answer.json()
}

/// One dispatched SSE message, as herald-core's parser produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    /// Event type (`message` when unnamed).
    pub event: String,
    /// Data.
    pub data: String,
    /// The last event id at dispatch.
    pub id: String,
}

/// An open SSE response read on a background thread.
#[derive(Debug)]
pub struct Subscription {
    /// HTTP status of the response.
    pub status: u16,
    /// Response headers, lowercase names.
    pub headers: Vec<(String, String)>,
    messages: Receiver<Msg>,
    raw: Receiver<Vec<u8>>,
    stream: Option<TcpStream>,
}

impl Subscription {
    /// Opens `GET path` with optional bearer token and extra headers, over a raw socket so that the
    /// test controls reading (and can stop reading, or drop the connection abruptly).
    pub fn open(
        base: &str,
        path: &str,
        bearer: Option<&str>,
        extra: &[(&str, &str)],
    ) -> Subscription {
        let stream = send_get(base, path, bearer, extra);
        let reader = stream.try_clone().expect("clone socket");
        let (status, headers, body) = read_head(reader);
        let (tx, messages) = mpsc::channel();
        let (raw_tx, raw) = mpsc::channel();
        thread::spawn(move || {
            let mut parser = Parser::new();
            let mut body = body;
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let _ = raw_tx.send(buf[..n].to_vec());
                let mut failed = false;
                parser.feed(&buf[..n], |m| {
                    failed |= tx
                        .send(Msg {
                            event: m.event_type.to_string(),
                            data: m.data.to_string(),
                            id: m.last_event_id.to_string(),
                        })
                        .is_err();
                });
                if failed {
                    break;
                }
            }
        });
        Subscription {
            status,
            headers,
            messages,
            raw,
            stream: Some(stream),
        }
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The next message within `timeout`, or `None` if none came (or the stream ended).
    pub fn next(&self, timeout: Duration) -> Option<Msg> {
        self.messages.recv_timeout(timeout).ok()
    }

    /// The next message that is not a heartbeat (`ping`, `heartbeat`) within `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Msg> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let msg = self.next(left)?;
            if msg.event != "ping" && msg.event != "heartbeat" {
                return Some(msg);
            }
        }
    }

    /// Collects `n` non-heartbeat messages (panics with what it got if they don't come in time).
    pub fn take(&self, n: usize, timeout: Duration) -> Vec<Msg> {
        let mut got = Vec::new();
        while got.len() < n {
            match self.next_event(timeout) {
                Some(msg) => got.push(msg),
                None => panic!("expected {n} events, got {}: {got:?}", got.len()),
            }
        }
        got
    }

    /// True if the server ends the stream within `timeout`.
    pub fn ends_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match self.messages.recv_timeout(left) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Disconnected) => return true,
                Err(RecvTimeoutError::Timeout) => return false,
            }
        }
    }

    /// Raw body bytes received so far (drains them).
    pub fn raw_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        while let Ok(chunk) = self.raw.try_recv() {
            all.extend(chunk);
        }
        all
    }

    /// Drops the connection abruptly (RST where the OS allows).
    pub fn abort(mut self) {
        if let Some(stream) = self.stream.take() {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Opens a connection and sends `GET path` (an SSE request) with an optional bearer token and extra
/// headers; the caller decides how, and whether, to read the answer.
pub fn send_get(base: &str, path: &str, bearer: Option<&str>, extra: &[(&str, &str)]) -> TcpStream {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).expect("connect");
    let mut head =
        format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n");
    if let Some(token) = bearer {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    std::io::Write::write_all(&mut stream, head.as_bytes()).expect("send request");
    stream
}

/// Reads a response's status line and headers a byte at a time, so that nothing of the body is
/// consumed: everything up to and including the blank line (less if the connection ends first).
pub(crate) fn read_head_text(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&head).to_string()
}

/// Reads the status line and headers; returns a reader positioned at the (de-chunked) body.
fn read_head(mut stream: TcpStream) -> (u16, Vec<(String, String)>, Box<dyn Read + Send>) {
    let text = read_head_text(&mut stream);
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body: Box<dyn Read + Send> = if chunked {
        Box::new(DechunkRead::new(stream))
    } else {
        Box::new(stream)
    };
    (status, headers, body)
}

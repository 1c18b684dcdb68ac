//! Helpers for driving clients Herald did not write: Node scripts in `tests/clients/` (Chromium
//! through playwright-core, npm `eventsource`) that print one JSON line, `curl -N` read as it
//! streams, and the request log `wrangler dev` writes, which shows what those clients actually
//! sent.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use crate::{repo_root, Wrangler};

/// A loopback port that is free right now (for a page server the test must name before it starts).
pub fn free_port() -> u16 {
    crate::free_port()
}

/// Reads everything from `source` on a thread; the receiver yields chunks as they arrive.
fn pump(mut source: impl Read + Send + 'static) -> Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match source.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

fn drain(rx: &Receiver<Vec<u8>>) -> String {
    let mut all = Vec::new();
    while let Ok(chunk) = rx.try_recv() {
        all.extend(chunk);
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Kills a child's whole process group (Chromium starts several processes of its own).
fn kill_group(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-9", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// Starts `command` from the repository root in its own process group (so that [`kill_group`]
/// reaches everything it starts), with stdout and stderr read on threads as they arrive.
fn spawn_in_group(command: &mut Command) -> (Child, Receiver<Vec<u8>>, Receiver<Vec<u8>>) {
    use std::os::unix::process::CommandExt;
    let mut child = command
        .current_dir(repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let stdout = pump(child.stdout.take().expect("stdout"));
    let stderr = pump(child.stderr.take().expect("stderr"));
    (child, stdout, stderr)
}

/// The Node 22 that npm installs (package `node`, see scripts/setup.sh), not the system's Node 20.
fn node() -> std::path::PathBuf {
    repo_root().join("node_modules/.bin/node")
}

/// Runs `node tests/clients/<script> <input JSON>` and returns the JSON of its last stdout line.
/// Panics with the script's stderr if it fails, prints no JSON, or outlives `timeout`.
pub fn run_node(script: &str, input: &serde_json::Value, timeout: Duration) -> serde_json::Value {
    let path = repo_root().join("tests/clients").join(script);
    let (mut child, stdout, stderr) =
        spawn_in_group(Command::new(node()).arg(&path).arg(input.to_string()));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait node") {
            break status;
        }
        if Instant::now() > deadline {
            kill_group(&mut child);
            panic!(
                "{script} still running after {timeout:?}; stderr:\n{}\nstdout:\n{}",
                drain(&stderr),
                drain(&stdout)
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    // The pumps end when the pipes close, shortly after exit.
    thread::sleep(Duration::from_millis(100));
    let out = drain(&stdout);
    let err = drain(&stderr);
    assert!(
        status.success(),
        "{script} failed ({status}); stderr:\n{err}\nstdout:\n{out}"
    );
    let line = out
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("{script} printed nothing; stderr:\n{err}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}): {line}\nstderr:\n{err}"))
}

/// One request as `wrangler dev` logged it (`[wrangler:info] GET /path 200 OK (5ms)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// HTTP method.
    pub method: String,
    /// Path as logged (wrangler leaves out the query, so tickets never show here).
    pub path: String,
    /// Status the worker answered.
    pub status: u16,
}

/// Every request this instance has logged so far, in order: the server's own count of what clients
/// sent (reconnects, preflights), independent of what the clients report.
pub fn request_log(wrangler: &Wrangler) -> Vec<Logged> {
    let text = std::fs::read_to_string(wrangler.persist.join("wrangler.out")).unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let rest = line.split("[wrangler:info] ").nth(1)?;
            let mut words = rest.split_whitespace();
            let method = words.next()?.to_string();
            let path = words.next()?.to_string();
            let status = words.next()?.parse().ok()?;
            path.starts_with('/').then_some(Logged {
                method,
                path,
                status,
            })
        })
        .collect()
}

/// A `curl -N -s` child whose stdout is read as it arrives, to prove a stream is live, not
/// buffered.
#[derive(Debug)]
pub struct Curl {
    child: Child,
    out: Receiver<Vec<u8>>,
    seen: String,
}

impl Curl {
    /// Starts `curl -N -s` with a bearer token on `url`.
    pub fn stream(url: &str, bearer: &str) -> Curl {
        let mut child = Command::new("curl")
            .args(["-N", "-s", "-H"])
            .arg(format!("Authorization: Bearer {bearer}"))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start curl");
        let out = pump(child.stdout.take().expect("stdout"));
        Curl {
            child,
            out,
            seen: String::new(),
        }
    }

    /// Everything curl has printed so far.
    pub fn text(&mut self) -> &str {
        self.seen.push_str(&drain(&self.out));
        &self.seen
    }

    /// Waits until curl's output satisfies `done`; returns the output, or `None` after `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if done(self.text()) {
                return Some(self.seen.clone());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.out.recv_timeout(left.min(Duration::from_millis(100))) {
                Ok(chunk) => self.seen.push_str(&String::from_utf8_lossy(&chunk)),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                // Output is over; one last look at what arrived.
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return done(&self.seen).then(|| self.seen.clone())
                }
            }
        }
    }

    /// Waits for curl to exit on its own; its exit code, or `None` if it still runs after
    /// `timeout`.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait curl") {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Curl {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `scripts/dev.sh`, the README's first command, on a free port with its own state directory and
/// the worker `scripts/build-worker.sh` already built. Dropping it kills its process group.
#[derive(Debug)]
pub struct DevCommand {
    child: Child,
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub base: String,
    /// The live page link the command printed, token in the fragment.
    pub link: String,
    /// Everything the command printed before the link.
    pub printed: String,
    state: std::path::PathBuf,
}

impl DevCommand {
    /// Runs the command and waits until it has printed the page link, its wrangler says it listens
    /// on the port, and the worker answers `/healthz`. A port taken by another process between our
    /// probe and wrangler's bind makes wrangler exit: the command is then run again on another
    /// port.
    pub fn start(timeout: Duration) -> DevCommand {
        let deadline = Instant::now() + timeout;
        let mut attempt = 1;
        loop {
            match DevCommand::start_on(free_port(), deadline) {
                Ok(dev) => return dev,
                Err(why) if attempt < 3 && Instant::now() < deadline => {
                    eprintln!("scripts/dev.sh did not start ({why}); retrying on another port");
                    attempt += 1;
                }
                Err(why) => panic!("{why}"),
            }
        }
    }

    fn start_on(port: u16, deadline: Instant) -> Result<DevCommand, String> {
        let state = repo_root().join(".e2e").join(crate::unique("dev-state"));
        let (child, stdout, stderr) = spawn_in_group(
            Command::new("bash")
                .arg("scripts/dev.sh")
                .env("PORT", port.to_string())
                .env("HERALD_STATE_DIR", &state)
                .env("HERALD_SKIP_BUILD", "1"),
        );
        let base = format!("http://127.0.0.1:{port}");
        let mut printed = String::new();
        let mut dev = DevCommand {
            child,
            base,
            link: String::new(),
            printed: String::new(),
            state,
        };
        loop {
            while let Ok(chunk) = stdout.try_recv() {
                printed.push_str(&String::from_utf8_lossy(&chunk));
            }
            let link = printed
                .split_whitespace()
                .find(|word| word.starts_with(&format!("{}/#token=", dev.base)));
            if let Some(link) = link.filter(|_| crate::wrangler_listens(&printed, &dev.base)) {
                dev.link = link.to_string();
                // Not listening yet is a transport error, which `crate::request` treats as a
                // failure.
                let health = ureq::get(&dev.url("/healthz"))
                    .timeout(Duration::from_secs(2))
                    .call();
                if health.is_ok_and(|answer| answer.status() == 200) {
                    dev.printed = printed;
                    return Ok(dev);
                }
            }
            if Instant::now() > deadline || dev.child.try_wait().ok().flatten().is_some() {
                return Err(format!(
                    "scripts/dev.sh not serving on {}; stdout:\n{printed}\nstderr:\n{}",
                    dev.base,
                    drain(&stderr)
                ));
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for DevCommand {
    fn drop(&mut self) {
        kill_group(&mut self.child);
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.state);
        }
    }
}

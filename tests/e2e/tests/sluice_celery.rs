//! sluice's own SDK against Herald: a real Celery worker (kombu's filesystem transport as the
//! broker, in a directory this test creates) instrumented with PyPI's `sluice-celery`, pointed at
//! Herald with `SLUICE_BASE_URL`. Tasks that succeed, fail and retry show up on
//! `/api/events/stream?connectionId=...&types=job` as `job:state_change` events with the states the
//! SDK reports (each with its `previousState`), in order, each once.
//!
//! Needs `.venv-e2e/` (`scripts/setup.sh --test` installs it from
//! `tests/e2e/python-requirements.txt`).

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use herald_core::Scope;
use herald_e2e::{full_token, repo_root, seq_of, token, unique, Wrangler};
use serde_json::Value;

/// A process this test started; stopped (SIGTERM, then SIGKILL) when dropped.
struct Started {
    child: Child,
    log: PathBuf,
}

impl Started {
    fn spawn(mut command: Command, log: PathBuf) -> Started {
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Started { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log satisfies `done`.
    fn wait_for(&mut self, timeout: Duration, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if done(&self.log()) {
                return true;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited with {status}: {}", self.log());
            }
            thread::sleep(Duration::from_millis(100));
        }
        false
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SIGTERM first: Celery's warm shutdown stops the sluice bootstep, which flushes.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv-e2e/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh --test",
        path.display()
    );
    path
}

/// A UUID-shaped connection id (sluice's SDK refuses anything else), unique to this run.
fn connection_uuid() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    let hex = format!("{:032x}", nanos ^ (u128::from(std::process::id()) << 64));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

fn celery_command(python_dir: &Path, broker: &Path, sluice_env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(venv_bin("celery"));
    command
        .args([
            "-A",
            "celery_app",
            "worker",
            // One process: the SDK buffers every event in order and flushes them in batches (in a
            // prefork pool, children send theirs directly, racing the parent's buffer).
            "--pool=solo",
            // The filesystem transport has no broadcast, which these use.
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=info",
        ])
        .current_dir(python_dir)
        .env("BROKER_DIR", broker)
        .env("PYTHONDONTWRITEBYTECODE", "1");
    for (name, value) in sluice_env {
        command.env(name, value);
    }
    command
}

#[test]
fn celery_tasks_reach_the_sluice_stream_through_sluice_celery() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "600000")]);
    let tenant = unique("celery");
    let connection = connection_uuid();
    // sluice ties an API key to its connection: a publish token for that stream only.
    let api_key = token(&tenant, &[Scope::Publish], Some(&[&connection]), 3600);
    let reader = full_token(&tenant);
    let work = repo_root().join(".e2e").join(unique("celery"));
    let broker = work.join("broker");
    for dir in ["queue", "processed"] {
        std::fs::create_dir_all(broker.join(dir)).expect("broker dirs");
    }
    let python_dir = repo_root().join("tests/e2e/python");
    let sluice_env = [
        ("SLUICE_BASE_URL", wrangler.base.as_str()),
        ("SLUICE_API_KEY", api_key.as_str()),
        ("SLUICE_CONNECTION_ID", connection.as_str()),
    ];

    let stream = wrangler.subscribe(
        &format!("/api/events/stream?connectionId={connection}&types=job"),
        Some(&reader),
        &[],
    );
    assert_eq!(stream.status, 200);

    let mut worker = Started::spawn(
        celery_command(&python_dir, &broker, &sluice_env),
        work.join("worker.log"),
    );
    assert!(
        worker.wait_for(Duration::from_secs(90), |log| log.contains(" ready.")),
        "the worker did not start: {}",
        worker.log()
    );
    assert!(
        worker.log().contains("[sluice] Bootstep started"),
        "sluice's bootstep is on: {}",
        worker.log()
    );
    let sent = Command::new(venv_bin("python"))
        .arg("send_tasks.py")
        .current_dir(&python_dir)
        .env("BROKER_DIR", &broker)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .envs(sluice_env)
        .output()
        .expect("send tasks");
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let ids: Value = serde_json::from_slice(&sent.stdout).expect("task ids");
    let task = |name: &str| ids[name].as_str().expect("id").to_string();
    let (add, fail, flaky) = (task("add"), task("fail"), task("flaky"));

    // The expected states, as sluice-celery maps Celery's signals (received: queued, prerun:
    // active, success: completed, failure: failed, retry: retrying; the retried message is
    // received again).
    let expected: BTreeMap<String, (&str, Vec<&str>)> = BTreeMap::from([
        (
            add,
            ("celery_app.add", vec!["queued", "active", "completed"]),
        ),
        (
            fail,
            ("celery_app.fail", vec!["queued", "active", "failed"]),
        ),
        (
            flaky,
            (
                "celery_app.flaky",
                vec![
                    "queued",
                    "active",
                    "retrying",
                    "queued",
                    "active",
                    "completed",
                ],
            ),
        ),
    ]);
    let total: usize = expected.values().map(|(_, states)| states.len()).sum();
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut last_seq = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut received = 0;
    while received < total {
        let left = deadline
            .checked_duration_since(Instant::now())
            .unwrap_or_else(|| {
                panic!(
                    "only {received} of {total} events came: {seen:?}\nworker: {}",
                    worker.log()
                )
            });
        let Some(message) = stream.next_event(left) else {
            panic!(
                "the stream ended or went quiet after {received} of {total}: {seen:?}\nworker: {}",
                worker.log()
            );
        };
        assert_eq!(message.event, "job:state_change", "{message:?}");
        let seq = seq_of(&message.id);
        assert!(seq > last_seq, "in order: {seq} after {last_seq}");
        last_seq = seq;
        let data: Value = serde_json::from_str(&message.data).expect("json data");
        let id = data["id"].as_str().expect("id").to_string();
        let (name, _) = expected
            .get(&id)
            .unwrap_or_else(|| panic!("an event of no task sent: {data}"));
        assert_eq!(data["name"], *name, "{data}");
        let timestamp = data["timestamp"].as_str().expect("timestamp");
        assert!(
            timestamp.len() >= 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T',
            "{timestamp}"
        );
        // sluice-celery sends no previousState; the stream fills in the task's last state.
        let states = seen.entry(id).or_default();
        assert_eq!(
            data["previousState"].as_str(),
            states.last().map(String::as_str),
            "{data}"
        );
        states.push(data["state"].as_str().expect("state").to_string());
        received += 1;
    }
    for (id, (name, states)) in &expected {
        assert_eq!(
            seen.get(id),
            Some(&states.iter().map(|s| s.to_string()).collect()),
            "{name}"
        );
    }
    // Each once: nothing more comes, though the SDK flushes every 5 s and the worker is still up.
    if let Some(extra) = stream.next_event(Duration::from_secs(8)) {
        panic!("an event after the last: {extra:?}");
    }
    drop(worker);
    // Passed: the broker's files and the worker's log go (a failure keeps them for inspection).
    let _ = std::fs::remove_dir_all(&work);
}

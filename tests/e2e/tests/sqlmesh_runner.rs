//! A real SQLMesh plan through Herald: the Python plan runner in `integrations/sqlmesh` (SQLMesh
//! and DuckDB from the virtualenv that `scripts/setup.sh --test` makes in `.venv-sqlmesh/`) follows
//! `/api/events` of a `wrangler dev`, runs the plan that `POST /api/commands/apply` opens on
//! SQLMesh's own example project (`sqlmesh init duckdb`), and reports every stage. The trackers a
//! UI reads must name the models that are in the project and that SQLMesh built (read
//! independently: from the model files, and from the DuckDB warehouse after the runner exits);
//! after an edit, the next plan names the edited model as directly modified and its downstream
//! model as indirectly modified. A cancel mid-backfill must trip SQLMesh's circuit breaker: fewer
//! batches built than planned, nothing promoted, the runner's plan ends as cancelled. A cancel
//! while the plan is still being built ends it before any apply stage. Batches longer than Herald's
//! runner lease do not lose the plan: the runner says it is alive.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use herald_e2e::{full_token, repo_root, request, unique, Subscription, Wrangler};
use serde_json::Value;

/// Generous: SQLMesh loads a project and plans in seconds, but the machine is small and shared.
const PLAN_WAIT: Duration = Duration::from_secs(240);

/// The virtualenv's Python, or a panic saying how to make it.
fn venv_bin(name: &str) -> PathBuf {
    let path = repo_root().join(".venv-sqlmesh/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup.sh --test",
        path.display()
    );
    path
}

/// A project directory, removed after a passing test (kept for inspection after a failing one).
struct Project(PathBuf);

impl std::ops::Deref for Project {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if !thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// SQLMesh's example project, made by `sqlmesh init duckdb` in a fresh directory.
fn example_project() -> Project {
    let dir = repo_root().join(".e2e").join(unique("sqlmesh-project"));
    std::fs::create_dir_all(&dir).expect("project dir");
    let output = Command::new(venv_bin("sqlmesh"))
        .args(["init", "duckdb"])
        .current_dir(&dir)
        .env("SQLMESH__DISABLE_ANONYMIZED_ANALYTICS", "true")
        .output()
        .expect("run sqlmesh init");
    assert!(
        output.status.success(),
        "sqlmesh init: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Project(dir)
}

/// The model names the project's files declare (`name x.y` in a SQL model's `MODEL (...)`, the
/// first string of a Python model's `@model(`), read without SQLMesh.
fn declared_models(project: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(project.join("models")).expect("models dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let name = match path.extension().and_then(|e| e.to_str()) {
            Some("sql") => text.lines().find_map(|line| {
                let rest = line.trim_start().strip_prefix("name ")?;
                Some(rest.trim().trim_end_matches(',').to_string())
            }),
            Some("py") => text
                .split_once("@model(")
                .and_then(|(_, rest)| rest.split('"').nth(1))
                .map(str::to_string),
            _ => None,
        };
        names.extend(name);
    }
    names
}

/// `"db"."sqlmesh_example"."full_model"` (SQLMesh's snapshot name) as `sqlmesh_example.full_model`.
fn short(name: &str) -> String {
    let parts: Vec<&str> = name.split('.').map(|p| p.trim_matches('"')).collect();
    parts[parts.len().saturating_sub(2)..].join(".")
}

/// Runs Python from the virtualenv on the project's DuckDB warehouse (read-only) and returns what
/// it prints, trimmed.
fn warehouse(project: &Path, code: &str) -> String {
    let script = format!(
        "import duckdb\nc = duckdb.connect('{}', read_only=True)\n{code}",
        project.join("db.db").display()
    );
    let output = Command::new(venv_bin("python"))
        .args(["-c", &script])
        .output()
        .expect("run python");
    assert!(
        output.status.success(),
        "python: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The plan runner as a child process (`--once`), with its stdout lines on a channel; killed on
/// drop.
struct Runner {
    child: Child,
    lines: Receiver<Value>,
    log: PathBuf,
}

impl Runner {
    /// Starts the runner with a keepalive every 2 s (see [`Runner::start_with`]).
    fn start(wrangler: &Wrangler, token: &str, project: &Path) -> Runner {
        Runner::start_with(wrangler, token, project, "2", &[])
    }

    /// Starts the runner, which says it is alive when it has reported nothing for `keepalive_s`,
    /// with extra environment variables (the slow model's).
    fn start_with(
        wrangler: &Wrangler,
        token: &str,
        project: &Path,
        keepalive_s: &str,
        env: &[(&str, &str)],
    ) -> Runner {
        let log = project.join("runner.log");
        let mut child = Command::new(venv_bin("python"))
            .args([
                "-m",
                "herald_runner",
                "--once",
                "--keepalive-s",
                keepalive_s,
            ])
            .arg("--url")
            .arg(&wrangler.base)
            .arg("--project")
            .arg(project)
            .current_dir(repo_root().join("integrations/sqlmesh"))
            .env("HERALD_TOKEN", token)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&log).expect("log file")))
            .spawn()
            .expect("start the plan runner");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str::<Value>(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        let runner = Runner { child, lines, log };
        let ready = runner.line(Duration::from_secs(120));
        assert_eq!(ready["ready"], true, "runner: {}", runner.logs());
        runner
    }

    fn line(&self, timeout: Duration) -> Value {
        self.lines
            .recv_timeout(timeout)
            .unwrap_or_else(|_| panic!("no line from the runner; its log: {}", self.logs()))
    }

    fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the runner did not exit; its log: {}",
                self.logs()
            );
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The latest tracker of each kind a UI has seen.
#[derive(Default)]
struct Trackers {
    overview: Value,
    apply: Value,
    cancel: Value,
}

impl Trackers {
    /// Reads `/api/events` until `done` holds for the trackers seen so far.
    fn follow(&mut self, ui: &Subscription, runner: &Runner, done: impl Fn(&Trackers) -> bool) {
        let deadline = Instant::now() + PLAN_WAIT;
        while !done(self) {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("plan did not get there; runner log: {}", runner.logs()));
            let Some(msg) = ui.next_event(left) else {
                panic!("event stream ended; runner log: {}", runner.logs());
            };
            let tracker: Value = serde_json::from_str(&msg.data).unwrap_or(Value::Null);
            match msg.event.as_str() {
                "plan-overview" => self.overview = tracker,
                "plan-apply" => self.apply = tracker,
                "plan-cancel" => self.cancel = tracker,
                _ => {}
            }
        }
    }

    fn apply_ended(&self) -> bool {
        self.apply["meta"]["done"] == true
    }
}

fn names(list: &Value) -> BTreeSet<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item["name"].as_str().map(short))
                .collect()
        })
        .unwrap_or_default()
}

/// Opens a plan: `/api/plan` previews, `/api/commands/apply` also applies.
fn open_plan(wrangler: &Wrangler, token: &str, path: &str, body: &str) {
    let opened = request("POST", &wrangler.url(path), Some(token), Some(body));
    assert_eq!(opened.status, 204, "{}", opened.body);
}

/// The tables and views in one schema of the project's warehouse, each named as its model
/// (`sqlmesh_example.<name>`, the example project's schema).
fn views_in(project: &Path, schema: &str) -> BTreeSet<String> {
    let listed = warehouse(
        project,
        &format!("print(','.join(sorted(r[0] for r in c.execute(\"select table_name from information_schema.tables where table_schema = '{schema}'\").fetchall())))"),
    );
    listed
        .split(',')
        .filter(|view| !view.is_empty())
        .map(|view| format!("sqlmesh_example.{view}"))
        .collect()
}

#[test]
fn the_runner_plans_and_applies_sqlmesh_example_project_and_the_trackers_name_its_models() {
    let project = example_project();
    let models = declared_models(&project);
    assert_eq!(models.len(), 3, "the example project's models: {models:?}");
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let ui = wrangler.subscribe("/api/events", Some(&token), &[]);

    // A preview opened before any runner is up: the runner finds it in the trackers `/api/events`
    // sends a new subscriber first, plans it, and applies nothing.
    open_plan(&wrangler, &token, "/api/plan", r#"{"environment":"dev"}"#);
    let mut runner = Runner::start(&wrangler, &token, &project);
    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, |seen| seen.overview["meta"]["done"] == true);
    assert_eq!(
        seen.overview["meta"]["status"], "success",
        "{}",
        seen.overview
    );
    assert_eq!(names(&seen.overview["changes"]["added"]), models);
    assert!(
        seen.apply.get("meta").is_none(),
        "a preview has no apply tracker: {}",
        seen.apply
    );
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "succeeded");
    assert!(runner.wait(PLAN_WAIT).success());
    assert_eq!(views_in(&project, "sqlmesh_example__dev"), BTreeSet::new());

    // Then an apply, with SQLMesh's defaults (unit tests included: the example project ships one).
    let mut runner = Runner::start(&wrangler, &token, &project);
    open_plan(
        &wrangler,
        &token,
        "/api/commands/apply",
        r#"{"environment":"dev"}"#,
    );
    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, Trackers::apply_ended);
    let (overview, apply) = (&seen.overview, &seen.apply);
    assert_eq!(apply["meta"]["status"], "success", "{apply}");
    assert_eq!(overview["meta"]["status"], "success", "{overview}");
    for stage in ["validation", "changes", "backfills"] {
        assert_eq!(overview[stage]["meta"]["status"], "success", "{stage}");
    }
    // The overview: every model is new in a fresh project, and every one needs a backfill.
    assert_eq!(names(&overview["changes"]["added"]), models);
    assert_eq!(names(&overview["backfills"]["models"]), models);
    assert_eq!(
        overview["start"], "2020-01-01",
        "the incremental model's start"
    );

    // The apply: each model backfilled all its batches, then all were promoted into `dev`.
    let backfill = &apply["backfill"];
    assert_eq!(backfill["meta"]["status"], "success");
    let tasks = backfill["tasks"].as_object().expect("backfill tasks");
    let backfilled: BTreeSet<String> = tasks.keys().map(|name| short(name)).collect();
    assert_eq!(backfilled, models);
    for (name, task) in tasks {
        let total = task["total"].as_u64().expect("total");
        assert!(total >= 1, "{name}: {task}");
        assert_eq!(task["completed"].as_u64(), Some(total), "{name}: {task}");
        assert!(task["view_name"]
            .as_str()
            .is_some_and(|v| v.starts_with("sqlmesh_example__dev.")));
    }
    assert_eq!(backfill["queue"], serde_json::json!([]));
    let promote = &apply["promote"];
    assert_eq!(promote["meta"]["status"], "success");
    assert_eq!(promote["target_environment"], "dev");
    assert_eq!(promote["num_tasks"], promote["total_tasks"]);
    assert_eq!(promote["total_tasks"].as_u64(), Some(models.len() as u64));

    // The runner ends its one plan as succeeded, and SQLMesh really built the `dev` views.
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "succeeded");
    assert!(runner.wait(PLAN_WAIT).success());
    assert_eq!(views_in(&project, "sqlmesh_example__dev"), models);
    let orders = warehouse(
        &project,
        "print(c.execute('select sum(num_orders) from sqlmesh_example__dev.full_model').fetchone()[0])",
    );
    assert!(orders.parse::<u64>().is_ok_and(|n| n > 0), "{orders}");

    // A second plan after an edit: the incremental model gains a column. SQLMesh plans it as a
    // direct change, and the full model, which selects from it, as indirectly modified. SQLMesh
    // would call a new column non-breaking (2) and leave the full model as it is; the UI's category
    // says breaking (1), so the full model must be rebuilt too.
    let model = project.join("models/incremental_model.sql");
    let text = std::fs::read_to_string(&model).expect("incremental model");
    let edited = text.replacen("  event_date,\nFROM", "  event_date,\n  1 AS one,\nFROM", 1);
    assert_ne!(
        edited, text,
        "the example's incremental model changed shape: {text}"
    );
    std::fs::write(&model, edited).expect("edit the model");
    let mut runner = Runner::start(&wrangler, &token, &project);
    open_plan(
        &wrangler,
        &token,
        "/api/commands/apply",
        r#"{"environment":"dev","categories":{"\"db\".\"sqlmesh_example\".\"incremental_model\"":1}}"#,
    );
    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, Trackers::apply_ended);
    assert_eq!(seen.apply["meta"]["status"], "success", "{}", seen.apply);
    let modified = &seen.overview["changes"]["modified"];
    assert_eq!(modified["direct"][0]["change_category"], 1, "{modified}");
    let edited_model = BTreeSet::from(["sqlmesh_example.incremental_model".to_string()]);
    assert_eq!(names(&modified["direct"]), edited_model, "{modified}");
    assert_eq!(
        names(&modified["indirect"]),
        BTreeSet::from(["sqlmesh_example.full_model".to_string()]),
        "{modified}"
    );
    assert!(
        modified["direct"][0]["diff"]
            .as_str()
            .is_some_and(|diff| diff.contains("one")),
        "{modified}"
    );
    assert_eq!(names(&seen.overview["changes"]["added"]), BTreeSet::new());
    let backfilled: BTreeSet<String> = seen.apply["backfill"]["tasks"]
        .as_object()
        .expect("backfill tasks")
        .keys()
        .map(|name| short(name))
        .collect();
    assert_eq!(
        backfilled,
        BTreeSet::from([
            "sqlmesh_example.full_model".to_string(),
            "sqlmesh_example.incremental_model".to_string()
        ]),
        "a breaking change rebuilds the model and the one downstream"
    );
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "succeeded");
    assert!(runner.wait(PLAN_WAIT).success());
    let one = warehouse(
        &project,
        "print(c.execute('select min(one) from sqlmesh_example__dev.incremental_model').fetchone()[0])",
    );
    assert_eq!(one, "1", "the new column reached `dev`");
}

#[test]
fn a_cancel_mid_backfill_trips_sqlmesh_circuit_breaker() {
    let project = example_project();
    let fixture = repo_root().join("integrations/sqlmesh/fixtures/slow_model.py");
    std::fs::copy(&fixture, project.join("models/slow_model.py")).expect("copy the slow model");
    let models = declared_models(&project);
    assert!(models.contains("sqlmesh_example.slow_model"), "{models:?}");
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let ui = wrangler.subscribe("/api/events", Some(&token), &[]);
    let mut runner = Runner::start(&wrangler, &token, &project);
    open_plan(
        &wrangler,
        &token,
        "/api/commands/apply",
        r#"{"environment":"dev","plan_options":{"skip_tests":true}}"#,
    );

    // Cancel once the slow model has built its first batch (it sleeps a second per batch).
    let slow = |seen: &Trackers| -> Option<Value> {
        let tasks = seen.apply["backfill"]["tasks"].as_object()?;
        tasks
            .iter()
            .find(|(name, _)| short(name) == "sqlmesh_example.slow_model")
            .map(|(_, task)| task.clone())
    };
    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, |seen| {
        slow(seen).is_some_and(|task| task["completed"].as_u64() >= Some(1)) || seen.apply_ended()
    });
    assert!(
        !seen.apply_ended(),
        "the backfill ended before the cancel: {}",
        seen.apply
    );
    let cancelled = request(
        "POST",
        &wrangler.url("/api/plan/cancel"),
        Some(&token),
        None,
    );
    assert_eq!(cancelled.status, 204, "{}", cancelled.body);

    seen.follow(&ui, &runner, |seen| {
        seen.apply_ended() && seen.cancel["cancel"]["meta"]["done"] == true
    });
    assert_eq!(
        seen.cancel["cancel"]["meta"]["status"], "success",
        "{}",
        seen.cancel
    );
    assert_eq!(seen.apply["meta"]["status"], "fail", "{}", seen.apply);
    assert_eq!(seen.apply["backfill"]["meta"]["status"], "fail");
    assert!(
        seen.apply.get("promote").is_none(),
        "nothing was promoted: {}",
        seen.apply
    );
    let task = slow(&seen).expect("the slow model's task");
    let total = task["total"].as_u64().expect("total");
    let reported = task["completed"].as_u64().expect("completed");
    assert!(
        total >= 10,
        "the fixture plans a batch a day for 12 days: {task}"
    );
    assert!(reported < total, "the backfill stopped early: {task}");

    // The runner's plan ends as cancelled (exit 3), and SQLMesh stopped: the slow model's table
    // holds fewer batches than planned, and `dev` was never promoted.
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "cancelled");
    assert_eq!(runner.wait(PLAN_WAIT).code(), Some(3), "{}", runner.logs());
    let rows = warehouse(
        &project,
        "t = c.execute(\"select table_name from information_schema.tables where table_schema = 'sqlmesh__sqlmesh_example' and table_name like 'sqlmesh_example__slow_model__%'\").fetchall()\nprint(c.execute(f'select count(*) from sqlmesh__sqlmesh_example.\"{t[0][0]}\"').fetchone()[0])",
    );
    let rows: u64 = rows.parse().unwrap_or_else(|_| panic!("row count: {rows}"));
    assert!(
        rows >= reported && rows < total,
        "{rows} batches built of {total}"
    );
    assert_eq!(
        views_in(&project, "sqlmesh_example__dev"),
        BTreeSet::new(),
        "no view of the plan reached `dev`"
    );
}

#[test]
fn a_cancel_while_the_plan_is_built_stops_it_before_anything_is_applied() {
    let project = example_project();
    let wrangler = Wrangler::start(&[]);
    let token = full_token("acme");
    let ui = wrangler.subscribe("/api/events", Some(&token), &[]);
    let mut runner = Runner::start(&wrangler, &token, &project);
    // Loading the project and building the plan take the runner seconds; the cancel comes first,
    // before or during validation, whichever the runner has reached.
    open_plan(
        &wrangler,
        &token,
        "/api/commands/apply",
        r#"{"environment":"dev"}"#,
    );
    let cancelled = request(
        "POST",
        &wrangler.url("/api/plan/cancel"),
        Some(&token),
        None,
    );
    assert_eq!(cancelled.status, 204, "{}", cancelled.body);

    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, |seen| {
        seen.apply_ended() && seen.cancel["cancel"]["meta"]["done"] == true
    });
    assert_eq!(
        seen.cancel["cancel"]["meta"]["status"], "success",
        "{}",
        seen.cancel
    );
    assert_eq!(seen.apply["meta"]["status"], "fail", "{}", seen.apply);
    assert_eq!(seen.overview["meta"]["status"], "fail", "{}", seen.overview);
    for stage in ["creation", "backfill", "promote"] {
        assert!(seen.apply.get(stage).is_none(), "{stage}: {}", seen.apply);
    }
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "cancelled");
    assert_eq!(runner.wait(PLAN_WAIT).code(), Some(3), "{}", runner.logs());
    // The runner may not have opened the warehouse at all; if it did, nothing reached `dev`.
    if project.join("db.db").exists() {
        assert_eq!(views_in(&project, "sqlmesh_example__dev"), BTreeSet::new());
    }
}

#[test]
fn the_runner_keeps_its_lease_through_batches_longer_than_the_lease() {
    let project = example_project();
    let fixture = repo_root().join("integrations/sqlmesh/fixtures/slow_model.py");
    std::fs::copy(&fixture, project.join("models/slow_model.py")).expect("copy the slow model");
    // Herald fails a plan whose runner reports nothing for 5 s; each slow batch takes 7 s, so only
    // the runner's keepalive (every second) holds the plan through them.
    let wrangler = Wrangler::start(&[("HERALD_PLAN_LEASE_S", "5")]);
    let token = full_token("acme");
    let ui = wrangler.subscribe("/api/events", Some(&token), &[]);
    let slow = [
        ("HERALD_SLOW_MODEL_BATCH_S", "7"),
        ("HERALD_SLOW_MODEL_DAYS", "2"),
    ];
    let mut runner = Runner::start_with(&wrangler, &token, &project, "1", &slow);
    open_plan(
        &wrangler,
        &token,
        "/api/commands/apply",
        r#"{"environment":"dev","plan_options":{"skip_tests":true}}"#,
    );
    let mut seen = Trackers::default();
    seen.follow(&ui, &runner, Trackers::apply_ended);
    assert_eq!(seen.apply["meta"]["status"], "success", "{}", seen.apply);
    let tasks = seen.apply["backfill"]["tasks"].as_object().expect("tasks");
    let (_, task) = tasks
        .iter()
        .find(|(name, _)| short(name) == "sqlmesh_example.slow_model")
        .expect("the slow model's task");
    assert!(task["total"].as_u64() >= Some(2), "{task}");
    assert_eq!(task["completed"], task["total"], "{task}");
    assert_eq!(runner.line(PLAN_WAIT)["outcome"], "succeeded");
    assert!(runner.wait(PLAN_WAIT).success());
}

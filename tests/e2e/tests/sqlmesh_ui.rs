//! What SQLMesh's web UI and a plan runner need beyond the plan routes: `GET /api/meta`, finished
//! trackers cleared from what new connections get, pings on a fixed clock, the runner's lease (an
//! alarm ends a plan whose runner went quiet, and a pending cancel with it), the request's
//! categories for the runner, SQLMesh's 422 and empty body, and trackers of a 1,000-model plan.

use std::time::{Duration, Instant};

use herald_e2e::{full_token, request, Answer, Msg, Subscription, Wrangler};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

fn post(wrangler: &Wrangler, path: &str, body: &str) -> Answer {
    request(
        "POST",
        &wrangler.url(path),
        Some(&full_token("acme")),
        Some(body),
    )
}

fn runner(wrangler: &Wrangler, command: &str) -> Answer {
    let answer = post(wrangler, "/api/plan/stages", command);
    assert_eq!(answer.status, 200, "{command}: {}", answer.body);
    answer
}

fn get(wrangler: &Wrangler, path: &str) -> Value {
    let answer = request("GET", &wrangler.url(path), Some(&full_token("acme")), None);
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.json()
}

fn tracker(msg: &Msg) -> Value {
    serde_json::from_str(&msg.data).expect("tracker JSON")
}

fn events(wrangler: &Wrangler) -> Subscription {
    let sub = wrangler.subscribe("/api/events", Some(&full_token("acme")), &[]);
    assert_eq!(sub.status, 200);
    sub
}

/// The next event named `name` within `timeout` (others are skipped).
fn next_named(sub: &Subscription, name: &str, timeout: Duration) -> Option<Msg> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        let msg = sub.next_event(left)?;
        if msg.event == name {
            return Some(msg);
        }
    }
}

#[test]
fn meta_answers_and_re_emits_and_finished_trackers_are_not_re_sent() {
    let wrangler = Wrangler::start(&[]);
    let meta = get(&wrangler, "/api/meta");
    assert_eq!(meta["has_running_task"], false);
    assert!(
        meta["version"].as_str().is_some_and(|v| !v.is_empty()),
        "{meta}"
    );

    let ui = events(&wrangler);
    assert_eq!(
        post(&wrangler, "/api/commands/apply", r#"{"environment":"dev"}"#).status,
        204
    );
    assert_eq!(ui.take(2, WAIT).len(), 2);
    let meta = get(&wrangler, "/api/meta");
    assert_eq!(meta["has_running_task"], true);
    // As SQLMesh's: every listener gets the three trackers again.
    let again: Vec<String> = ui.take(3, WAIT).into_iter().map(|m| m.event).collect();
    assert_eq!(again, ["plan-overview", "plan-apply", "plan-cancel"]);

    runner(
        &wrangler,
        r#"{"op":"finish","tracker":"overview","success":true}"#,
    );
    runner(
        &wrangler,
        r#"{"op":"finish","tracker":"apply","success":true}"#,
    );
    let done = next_named(&ui, "plan-apply", WAIT).expect("the finished apply goes out live");
    assert_eq!(tracker(&done)["meta"]["status"], "success");
    assert_eq!(get(&wrangler, "/api/meta")["has_running_task"], false);

    // A new connection (SQLMesh's UI never resumes) gets `{}` for the finished apply tracker, as
    // SQLMesh forgets it: its UI would answer a finished plan-apply by starting a new plan.
    let late = events(&wrangler);
    let snapshot = late.take(3, WAIT);
    let apply = snapshot
        .iter()
        .find(|m| m.event == "plan-apply")
        .expect("apply");
    assert_eq!(tracker(apply), json!({}));
    let overview = snapshot
        .iter()
        .find(|m| m.event == "plan-overview")
        .expect("overview");
    assert_eq!(tracker(overview)["meta"]["status"], "success");
}

#[test]
fn cancel_with_nothing_running_ends_as_sqlmesh_shows_cancelled_and_bodies_follow_fastapi() {
    let wrangler = Wrangler::start(&[]);
    let ui = events(&wrangler);
    assert_eq!(post(&wrangler, "/api/plan/cancel", "").status, 204);
    let started = ui.next_event(WAIT).expect("plan-cancel as it starts");
    assert_eq!(tracker(&started)["meta"]["status"], "init");
    assert!(tracker(&started).get("cancel").is_none());
    let ended = ui.next_event(WAIT).expect("plan-cancel as it ends");
    assert_eq!(tracker(&ended)["meta"]["status"], "success");
    assert_eq!(tracker(&ended)["cancel"]["meta"]["status"], "fail");

    // 422 where SQLMesh's FastAPI answers 422, and nothing opens.
    for body in [
        r#"{"plan_dates":"nope"}"#,
        r#"{"categories":{"m":9}}"#,
        r#"{"plan_options":{"skip_tests":"yes"}}"#,
        "[]",
        "{",
    ] {
        for path in ["/api/plan", "/api/commands/apply"] {
            let refused = post(&wrangler, path, body);
            assert_eq!(refused.status, 422, "{path} {body}: {}", refused.body);
            assert_eq!(refused.json()["error"], "invalid_plan");
        }
    }
    assert_eq!(get(&wrangler, "/api/plan/request")["state"], "idle");
    // An empty body is SQLMesh's default request.
    assert_eq!(post(&wrangler, "/api/plan", "").status, 204);
    let request = get(&wrangler, "/api/plan/request");
    assert_eq!(request["state"], "overview");
    assert_eq!(request["request"], json!({}));
}

#[test]
fn the_runner_reads_the_request_with_its_categories() {
    let wrangler = Wrangler::start(&[]);
    let body = r#"{"environment":"dev","plan_dates":{"start":"2024-01-01"},"plan_options":{"skip_tests":true},"categories":{"sushi.orders":1,"sushi.items":2}}"#;
    assert_eq!(post(&wrangler, "/api/commands/apply", body).status, 204);
    let current = get(&wrangler, "/api/plan/request");
    assert_eq!(current["state"], "apply_overview");
    assert_eq!(
        current["request"]["categories"],
        json!({"sushi.items": 2, "sushi.orders": 1})
    );
    assert_eq!(current["request"]["environment"], "dev");
    assert_eq!(current["request"]["plan_options"]["skip_tests"], true);
    let opened = current["opened_ms"].as_u64().expect("opened_ms");
    let lease = current["lease_expires_ms"]
        .as_u64()
        .expect("lease_expires_ms");
    assert_eq!(lease, opened + 120_000, "the default lease is 120 s");
    // The runner's keep-alive renews the lease and emits nothing.
    let alive = runner(&wrangler, r#"{"op":"alive"}"#);
    assert_eq!(alive.json()["ids"], json!([]));
    let renewed = get(&wrangler, "/api/plan/request")["lease_expires_ms"]
        .as_u64()
        .expect("lease");
    assert!(renewed >= lease, "{renewed} < {lease}");
    // The request route is the runner's: the publish scope.
    let reader = herald_e2e::token("acme", &[herald_core::Scope::Subscribe], None, 600);
    let refused = request(
        "GET",
        &wrangler.url("/api/plan/request"),
        Some(&reader),
        None,
    );
    assert_eq!(refused.status, 403);
}

#[test]
fn a_runner_that_goes_quiet_loses_its_lease_and_cancel_completes() {
    let wrangler = Wrangler::start(&[("HERALD_PLAN_LEASE_S", "5")]);
    let ui = events(&wrangler);
    assert_eq!(post(&wrangler, "/api/commands/apply", "{}").status, 204);
    runner(&wrangler, r#"{"op":"start","stage":"validation"}"#);
    // A live runner keeps its plan past the lease with keep-alives.
    let kept_until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < kept_until {
        runner(&wrangler, r#"{"op":"alive"}"#);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(get(&wrangler, "/api/meta")["has_running_task"], true);
    // Then it dies; the UI cancels and the cancel waits for a runner that never answers.
    assert_eq!(post(&wrangler, "/api/plan/cancel", "").status, 204);
    // (The /api/meta calls above re-emitted the trackers, a `{}` cancel among them.)
    let cancelling = loop {
        let msg = next_named(&ui, "plan-cancel", WAIT).expect("cancel starts");
        if tracker(&msg).get("cancel").is_some() {
            break msg;
        }
    };
    assert_eq!(tracker(&cancelling)["cancel"]["meta"]["status"], "init");
    // The alarm ends it within the lease (5 s), well inside this deadline.
    let ended = next_named(&ui, "plan-cancel", Duration::from_secs(60))
        .expect("the lease alarm completes the cancel");
    assert_eq!(tracker(&ended)["meta"]["status"], "success");
    assert_eq!(tracker(&ended)["cancel"]["meta"]["status"], "success");
    assert_eq!(get(&wrangler, "/api/meta")["has_running_task"], false);
    assert_eq!(get(&wrangler, "/api/plan/request")["state"], "cancelled");
    // The runner, should it come back, hears the plan is over.
    let late = post(&wrangler, "/api/plan/stages", r#"{"op":"alive"}"#);
    assert_eq!(late.status, 409, "{}", late.body);

    // A plan nobody runs fails by itself, and a new one can open.
    assert_eq!(post(&wrangler, "/api/plan", "{}").status, 204);
    let opened = get(&wrangler, "/api/plan/request")["opened_ms"].clone();
    // (The last /api/meta re-emitted the cancelled plan's finished overview: skip it.)
    let overview = loop {
        let msg = next_named(&ui, "plan-overview", Duration::from_secs(60))
            .expect("the unserved plan fails");
        let meta = &tracker(&msg)["meta"];
        if meta["start"] == opened && meta["done"] == true {
            break msg;
        }
    };
    assert_eq!(tracker(&overview)["meta"]["status"], "fail");
    assert_eq!(get(&wrangler, "/api/plan/request")["state"], "finished");
}

#[test]
fn pings_come_on_a_fixed_clock_however_busy_the_stream_is() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "1000")]);
    let sub = events(&wrangler);
    let token = full_token("acme");
    // Events every 200 ms for 4.5 s: a ping only after silence would never come.
    let busy_until = Instant::now() + Duration::from_millis(4500);
    while Instant::now() < busy_until {
        herald_e2e::publish(&wrangler.base, "default", &token, r#"{"event":"file"}"#);
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut pings = 0;
    let mut files = 0;
    while let Some(msg) = sub.next(Duration::from_millis(300)) {
        match msg.event.as_str() {
            "ping" => pings += 1,
            "file" => files += 1,
            _ => {}
        }
    }
    assert!(files >= 10, "{files} events");
    assert!(
        pings >= 3,
        "{pings} pings in 4.5 s of traffic at a 1 s interval"
    );
}

#[test]
fn a_thousand_model_plan_fits_its_trackers() {
    let wrangler = Wrangler::start(&[]);
    let ui = events(&wrangler);
    assert_eq!(
        post(
            &wrangler,
            "/api/commands/apply",
            r#"{"environment":"prod"}"#
        )
        .status,
        204
    );
    ui.take(2, WAIT);
    let models: Vec<Value> = (0..1000)
        .map(|n| {
            json!({"name": format!("\"db\".\"schema\".\"model_{n:04}\""),
                   "view_name": format!("schema.model_{n:04}"), "node_type": "model",
                   "parents": [format!("schema.parent_{n:04}")],
                   "interval": ["2024-01-01", "2024-01-31"], "batches": 31})
        })
        .collect();
    let details = json!({"models": models});
    let body = json!({"op":"start","stage":"backfills","details": details}).to_string();
    // Well over the 64 KiB event bound that trackers used to share.
    assert!(body.len() > 150_000, "{} bytes", body.len());
    runner(&wrangler, &body);
    let overview = next_named(&ui, "plan-overview", WAIT).expect("overview");
    assert_eq!(
        tracker(&overview)["backfills"]["models"]
            .as_array()
            .map(Vec::len),
        Some(1000)
    );
    // Over HERALD_TRACKER_BYTES_MAX (512 KiB) is still a 413 that changes nothing.
    let blob = "x".repeat(600 * 1024);
    let huge = post(
        &wrangler,
        "/api/plan/stages",
        &format!(r#"{{"op":"update","stage":"backfills","details":{{"blob":"{blob}"}}}}"#),
    );
    assert_eq!(huge.status, 413, "{}", huge.body);
}

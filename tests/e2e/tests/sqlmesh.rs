//! SQLMesh's web API: `/api/events` with JSON pings, `/api/plan` and `/api/commands/apply` opening
//! plans, the runner's `/api/plan/stages`, `/api/plan/cancel` and its circuit breaker, single
//! flight, and trackers for clients that connect mid-plan.

use std::time::Duration;

use herald_e2e::{full_token, request, stats, Answer, Msg, Wrangler};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(15);

struct Plan<'a> {
    wrangler: &'a Wrangler,
    token: String,
}

impl Plan<'_> {
    fn post(&self, path: &str, body: &str) -> Answer {
        request(
            "POST",
            &self.wrangler.url(path),
            Some(&self.token),
            Some(body),
        )
    }

    fn runner(&self, command: &str) -> Answer {
        self.post("/api/plan/stages", command)
    }
}

fn tracker(msg: &Msg) -> Value {
    serde_json::from_str(&msg.data).expect("tracker JSON")
}

#[test]
fn pings_are_json_with_epoch_milliseconds() {
    let wrangler = Wrangler::start(&[("HERALD_HEARTBEAT_MS", "300")]);
    let sub = wrangler.subscribe("/api/events", Some(&full_token("acme")), &[]);
    let ping = sub.next(WAIT).expect("ping");
    assert_eq!(ping.event, "ping");
    let data: Value = serde_json::from_str(&ping.data)
        .expect("a ping is valid JSON (SQLMesh's is a Python repr)");
    let timestamp = data["timestamp"].as_u64().expect("integer timestamp");
    assert!(timestamp > 1_700_000_000_000, "epoch ms: {timestamp}");
    assert_eq!(ping.id, "", "pings never move the cursor");
}

#[test]
fn an_apply_plan_runs_its_stages_and_late_clients_get_the_trackers_first() {
    let wrangler = Wrangler::start(&[]);
    let plan = Plan {
        wrangler: &wrangler,
        token: full_token("acme"),
    };
    let ui = wrangler.subscribe("/api/events", Some(&plan.token), &[]);
    let opened = plan.post(
        "/api/commands/apply",
        r#"{"environment":"dev","plan_options":{"skip_tests":true},"categories":{"db.model":1}}"#,
    );
    assert_eq!(opened.status, 204, "{}", opened.body);
    // An apply plan opens both trackers.
    let opening = ui.take(2, WAIT);
    let overview = opening
        .iter()
        .find(|m| m.event == "plan-overview")
        .expect("plan-overview");
    assert!(opening.iter().any(|m| m.event == "plan-apply"));
    assert_eq!(tracker(overview)["environment"], "dev");
    assert_eq!(tracker(overview)["plan_options"]["skip_tests"], true);

    for stage in ["validation", "changes", "backfills"] {
        assert_eq!(
            plan.runner(&format!(r#"{{"op":"start","stage":"{stage}"}}"#))
                .status,
            200
        );
        assert_eq!(
            plan.runner(&format!(
                r#"{{"op":"stop","stage":"{stage}","success":true}}"#
            ))
            .status,
            200
        );
    }
    assert_eq!(
        plan.runner(r#"{"op":"finish","tracker":"overview","success":true}"#)
            .status,
        200
    );
    assert_eq!(
        plan.runner(
            r#"{"op":"start","stage":"creation","details":{"total_tasks":2,"num_tasks":0}}"#
        )
        .status,
        200
    );

    // A stage that never started cannot stop; a finished one cannot restart: 409, nothing emitted.
    let illegal = plan.runner(r#"{"op":"stop","stage":"promote","success":true}"#);
    assert_eq!(illegal.status, 409);
    assert_eq!(illegal.json()["error"], "illegal_transition");
    assert_eq!(
        plan.runner(r#"{"op":"start","stage":"validation"}"#).status,
        409
    );
    assert_eq!(
        plan.runner(r#"{"op":"launch"}"#).status,
        400,
        "an unknown op is a bad body"
    );

    // Single flight: another POST /api/plan re-emits the current trackers and starts nothing.
    assert_eq!(plan.post("/api/plan", "{}").status, 204);

    // A client that connects mid-plan gets the current trackers first, with no id.
    let late = wrangler.subscribe("/api/events", Some(&plan.token), &[]);
    let snapshot: Vec<Msg> = late.take(3, WAIT);
    let names: Vec<_> = snapshot.iter().map(|m| m.event.as_str()).collect();
    assert!(
        names.contains(&"plan-overview") && names.contains(&"plan-apply"),
        "{names:?}"
    );
    let apply = snapshot
        .iter()
        .find(|m| m.event == "plan-apply")
        .expect("apply tracker");
    assert_eq!(tracker(apply)["creation"]["meta"]["status"], "init");
    assert_eq!(tracker(apply)["creation"]["total_tasks"], 2);
    assert!(snapshot.iter().all(|m| m.id.is_empty()));

    // The first UI saw every move in order: the overview's stages, then creation starting.
    let mut seen = Vec::new();
    while let Some(msg) = ui.next_event(Duration::from_secs(3)) {
        seen.push(msg);
    }
    let overview = seen
        .iter()
        .rev()
        .find(|m| m.event == "plan-overview")
        .expect("overview");
    let overview = tracker(overview);
    for stage in ["validation", "changes", "backfills"] {
        let meta = &overview[stage]["meta"];
        assert_eq!(meta["status"], "success", "{stage}");
        assert_eq!(meta["done"], true);
        assert!(meta["end"].as_u64() >= meta["start"].as_u64());
        assert_eq!(
            meta["duration"].as_u64(),
            Some(meta["end"].as_u64().unwrap() - meta["start"].as_u64().unwrap())
        );
    }
}

#[test]
fn cancel_trips_the_circuit_breaker_and_the_runner_sees_it() {
    let wrangler = Wrangler::start(&[]);
    let plan = Plan {
        wrangler: &wrangler,
        token: full_token("acme"),
    };
    let runner = wrangler.subscribe("/api/events?types=plan-cancel", Some(&plan.token), &[]);
    assert_eq!(
        plan.post("/api/commands/apply", r#"{"environment":"prod"}"#)
            .status,
        204
    );
    for stage in ["validation", "changes", "backfills"] {
        plan.runner(&format!(r#"{{"op":"start","stage":"{stage}"}}"#));
        plan.runner(&format!(
            r#"{{"op":"stop","stage":"{stage}","success":true}}"#
        ));
    }
    plan.runner(r#"{"op":"finish","tracker":"overview","success":true}"#);
    assert_eq!(
        plan.runner(r#"{"op":"start","stage":"backfill"}"#).status,
        200
    );

    // Trackers obey their bound (HERALD_TRACKER_BYTES_MAX, 512 KiB) and plan bodies the body bound
    // (1 MiB): a 413 that changes nothing, so the runner's next event is still the cancel below.
    let logged = stats(&wrangler.base, "default", &plan.token)["log_events"].clone();
    let blob = "x".repeat(600_000);
    let huge = plan.runner(&format!(
        r#"{{"op":"update","stage":"backfill","details":{{"blob":"{blob}"}}}}"#
    ));
    assert_eq!(
        (huge.status, huge.json()["error"].as_str()),
        (413, Some("too_large")),
        "{}",
        huge.body
    );
    let blob = "x".repeat(1_100_000);
    let body = plan.runner(&format!(
        r#"{{"op":"update","stage":"backfill","details":{{"blob":"{blob}"}}}}"#
    ));
    assert_eq!(
        (body.status, body.json()["error"].as_str()),
        (413, Some("too_large"))
    );
    assert_eq!(
        stats(&wrangler.base, "default", &plan.token)["log_events"],
        logged
    );

    assert_eq!(plan.post("/api/plan/cancel", "").status, 204);
    let cancel = runner.next_event(WAIT).expect("the runner sees the cancel");
    assert_eq!(cancel.event, "plan-cancel");
    assert_eq!(tracker(&cancel)["cancel"]["meta"]["status"], "init");

    // While cancelling, the runner may only stop its running stage with success=false.
    let refused = plan.runner(r#"{"op":"update","stage":"backfill","details":{"queue":["a"]}}"#);
    assert_eq!(refused.status, 409);
    let stopped = plan.runner(r#"{"op":"stop","stage":"backfill","success":false}"#);
    assert_eq!(stopped.status, 200, "{}", stopped.body);
    let done = runner.next_event(WAIT).expect("cancel completes");
    assert_eq!(tracker(&done)["cancel"]["meta"]["status"], "success");
    // After the cancel, every further update is refused.
    assert_eq!(
        plan.runner(r#"{"op":"start","stage":"promote"}"#).status,
        409
    );

    // The apply tracker ended in fail (the UI saw it live); a new connection gets `{}` for it, as
    // SQLMesh forgets finished apply and cancel trackers.
    let late = wrangler.subscribe("/api/events?types=plan-apply", Some(&plan.token), &[]);
    let apply = late.next_event(WAIT).expect("apply tracker");
    assert_eq!(tracker(&apply), serde_json::json!({}));
}

#[test]
fn cancel_with_nothing_running_fails_the_cancel_stage() {
    let wrangler = Wrangler::start(&[]);
    let plan = Plan {
        wrangler: &wrangler,
        token: full_token("acme"),
    };
    let sub = wrangler.subscribe("/api/events", Some(&plan.token), &[]);
    assert_eq!(plan.post("/api/plan/cancel", "").status, 204);
    let started = sub.next_event(WAIT).expect("plan-cancel");
    assert_eq!(started.event, "plan-cancel");
    assert_eq!(tracker(&started)["meta"]["status"], "init");
    let cancel = sub.next_event(WAIT).expect("plan-cancel");
    assert_eq!(tracker(&cancel)["cancel"]["meta"]["status"], "fail");
    assert_eq!(
        tracker(&cancel)["meta"]["status"],
        "success",
        "what SQLMesh's UI shows as cancelled"
    );
    assert_eq!(
        plan.post("/api/plan", r#"{"plan_dates":"nope"}"#).status,
        422
    );
}

#[test]
fn a_refused_plan_request_leaves_the_plan_as_it_was() {
    let wrangler = Wrangler::start(&[]);
    let plan = Plan {
        wrangler: &wrangler,
        token: full_token("acme"),
    };
    // A complete stream takes no more events, tracker events included: the plan must not open.
    let complete = request(
        "POST",
        &wrangler.url("/v1/streams/default/events"),
        Some(&plan.token),
        Some(r#"{"event":"stream.complete","data":{}}"#),
    );
    assert_eq!(complete.status, 200, "{}", complete.body);
    let refused = plan.post("/api/plan", r#"{"environment":"refused"}"#);
    assert_eq!(refused.status, 409, "{}", refused.body);
    // A reset carries the plan in memory as its snapshot; there must be none.
    let late = wrangler.subscribe("/api/events?lastEventId=garbage", Some(&plan.token), &[]);
    let reset = late.next_event(WAIT).expect("reset");
    assert_eq!(reset.event, "reset");
    assert!(
        !reset.data.contains("snapshot") && !reset.data.contains("refused"),
        "{}",
        reset.data
    );
}

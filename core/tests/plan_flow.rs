//! Whole plans, as a runner drives them: a happy apply, cancels, failures, and a session stored and
//! restored.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::plan::{PlanError, PlanRequest, PlanSession, PlanState, Status};
use herald_core::EventName;
use serde_json::Value;

#[path = "common/plan.rs"]
mod plan;

use plan::{accept, cmd};

/// Applies a command that must be accepted; returns the event names and the parsed tracker JSON.
fn ok(session: &mut PlanSession, json: &str, now_ms: u64) -> Vec<(EventName, Value)> {
    accept(session, json, now_ms)
        .into_iter()
        .map(|(name, text)| (name, serde_json::from_str(&text).expect("tracker JSON")))
        .collect()
}

fn names(events: &[(EventName, Value)]) -> Vec<&str> {
    events.iter().map(|(name, _)| name.as_str()).collect()
}

/// The session's tracker as it stands (finished ones included, which a snapshot sends as `{}`).
fn tracker(session: &PlanSession, name: &str) -> Value {
    let value = match name {
        "plan-overview" => serde_json::to_value(session.overview()),
        "plan-apply" => serde_json::to_value(session.apply_tracker()),
        "plan-cancel" => serde_json::to_value(session.cancel_tracker()),
        _ => panic!("no tracker {name}"),
    }
    .expect("tracker JSON");
    if value.is_null() {
        serde_json::json!({})
    } else {
        value
    }
}

fn status(value: &Value) -> &str {
    value["meta"]["status"].as_str().expect("a status")
}

fn dev() -> PlanRequest {
    PlanRequest::from_json(br#"{"environment":"dev","plan_options":{"skip_tests":true}}"#)
        .expect("valid")
}

/// An apply plan for `dev()` opened at 0 ms whose overview succeeded at 1 ms.
fn applying() -> PlanSession {
    plan::applying(dev())
}

#[test]
fn a_plan_runs_overview_then_apply_to_success() {
    let mut session = PlanSession::new();
    let opened = session.open_apply(dev(), 1_000);
    assert_eq!(
        opened.update().names().collect::<Vec<_>>(),
        ["plan-apply", "plan-overview"]
    );

    let overview_steps: [(&str, &[&str]); 8] = [
        (r#"{"op":"start","stage":"validation"}"#, &["plan-overview"]),
        (
            r#"{"op":"dates","start":"2024-01-01","end":"2024-01-31"}"#,
            &["plan-overview", "plan-apply"],
        ),
        (
            r#"{"op":"stop","stage":"validation","success":true}"#,
            &["plan-overview"],
        ),
        (
            r#"{"op":"start","stage":"changes","details":{"added":[],"removed":[]}}"#,
            &["plan-overview"],
        ),
        (
            r#"{"op":"stop","stage":"changes","success":true}"#,
            &["plan-overview"],
        ),
        (
            r#"{"op":"start","stage":"backfills","details":{"models":[{"name":"m","view_name":"m","interval":["2024-01-01","2024-01-31"],"batches":2}]}}"#,
            &["plan-overview"],
        ),
        (
            r#"{"op":"stop","stage":"backfills","success":true}"#,
            &["plan-overview"],
        ),
        (
            r#"{"op":"finish","tracker":"overview","success":true}"#,
            &["plan-overview"],
        ),
    ];
    let mut now_ms = 1_000;
    for (json, expected) in overview_steps {
        now_ms += 10;
        assert_eq!(names(&ok(&mut session, json, now_ms)), expected, "{json}");
    }
    assert_eq!(session.state(), PlanState::Applying);

    let apply_steps = [
        r#"{"op":"start","stage":"creation","details":{"total_tasks":1}}"#,
        r#"{"op":"update","stage":"creation","details":{"num_tasks":1}}"#,
        r#"{"op":"stop","stage":"creation","success":true}"#,
        r#"{"op":"start","stage":"backfill","details":{"tasks":{"m":{"name":"m","view_name":"m","completed":0,"total":2,"start":1100}}}}"#,
        r#"{"op":"update","stage":"backfill","details":{"queue":["m"]}}"#,
        r#"{"op":"update","stage":"backfill","details":{"queue":[],"tasks":{"m":{"completed":1}}}}"#,
        r#"{"op":"update","stage":"backfill","details":{"tasks":{"m":{"completed":2,"end":1140}}}}"#,
        r#"{"op":"stop","stage":"backfill","success":true}"#,
        r#"{"op":"start","stage":"promote","details":{"total_tasks":1}}"#,
        r#"{"op":"stop","stage":"promote","success":true,"details":{"num_tasks":1}}"#,
        r#"{"op":"finish","tracker":"apply","success":true}"#,
    ];
    for json in apply_steps {
        now_ms += 10;
        assert_eq!(
            names(&ok(&mut session, json, now_ms)),
            ["plan-apply"],
            "{json}"
        );
    }
    assert_eq!(session.state(), PlanState::Finished);

    let overview = tracker(&session, "plan-overview");
    let apply = tracker(&session, "plan-apply");
    assert_eq!(tracker(&session, "plan-cancel"), serde_json::json!({}));
    for (value, stages) in [
        (&overview, &["validation", "changes", "backfills"][..]),
        (&apply, &["creation", "backfill", "promote"][..]),
    ] {
        assert_eq!(status(value), "success");
        assert_eq!(value["environment"], "dev");
        assert_eq!(value["plan_options"]["skip_tests"], true);
        assert_eq!(value["start"], "2024-01-01");
        for stage in stages {
            assert_eq!(status(&value[*stage]), "success", "{stage}");
        }
    }
    assert!(
        apply.get("restate").is_none(),
        "a stage that never ran is omitted"
    );
    assert_eq!(apply["promote"]["num_tasks"], 1);
    assert_eq!(apply["backfill"]["tasks"]["m"]["completed"], 2);
    assert_eq!(apply["meta"]["start"], 1_000);
    assert_eq!(apply["meta"]["duration"], now_ms - 1_000);
    assert_eq!(overview["backfills"]["models"][0]["batches"], 2);

    // Over: the runner is refused, a new open starts afresh.
    assert_eq!(
        session.apply(cmd(r#"{"op":"start","stage":"validation"}"#), now_ms),
        Err(PlanError::PlanFinished)
    );
    assert!(session.open(dev(), now_ms + 1).is_started());
    assert_eq!(
        tracker(&session, "plan-apply"),
        serde_json::json!({}),
        "a preview plan has no apply tracker"
    );
}

#[test]
fn a_cancelled_apply_waits_for_the_runner_then_fails_the_apply_tracker() {
    let mut session = applying();
    ok(&mut session, r#"{"op":"start","stage":"backfill"}"#, 2);

    let events = ok(&mut session, r#"{"op":"cancel"}"#, 3);
    assert_eq!(names(&events), ["plan-cancel"]);
    assert_eq!(status(&events[0].1), "init");
    assert_eq!(status(&events[0].1["cancel"]), "init");
    assert!(session.is_cancelling());

    // The circuit breaker is cooperative: the runner keeps going until it notices, and is told to
    // stop.
    for json in [
        r#"{"op":"update","stage":"backfill","details":{"queue":["m"]}}"#,
        r#"{"op":"stop","stage":"backfill","success":true}"#,
        r#"{"op":"start","stage":"promote"}"#,
        r#"{"op":"finish","tracker":"apply","success":true}"#,
    ] {
        assert_eq!(
            session.apply(cmd(json), 4),
            Err(PlanError::Cancelling),
            "{json}"
        );
    }
    // A second cancel and a re-open both just re-emit.
    assert_eq!(
        names(&ok(&mut session, r#"{"op":"cancel"}"#, 5)),
        ["plan-cancel"]
    );
    let resumed = session.open(dev(), 5);
    assert!(!resumed.is_started());
    assert_eq!(
        resumed.update().names().collect::<Vec<_>>(),
        ["plan-overview", "plan-apply"]
    );

    let events = ok(
        &mut session,
        r#"{"op":"stop","stage":"backfill","success":false}"#,
        9,
    );
    assert_eq!(names(&events), ["plan-apply", "plan-cancel"]);
    let (apply, cancel) = (&events[0].1, &events[1].1);
    assert_eq!(status(apply), "fail");
    assert_eq!(status(&apply["backfill"]), "fail");
    assert_eq!(apply["backfill"]["meta"]["end"], 9);
    assert_eq!(status(cancel), "success");
    assert_eq!(status(&cancel["cancel"]), "success");
    assert_eq!(
        cancel["cancel"]["meta"]["duration"], 6,
        "the first cancel's start is kept"
    );
    assert_eq!(session.state(), PlanState::Cancelled);
    assert!(!session.is_cancelling());

    assert_eq!(
        session.apply(
            cmd(r#"{"op":"stop","stage":"backfill","success":false}"#),
            10
        ),
        Err(PlanError::PlanCancelled)
    );
    // A cancel after the cancel has nothing to cancel: as in SQLMesh, the tracker goes out as it
    // starts (no stage yet), then with its stage failed and itself `success`, which SQLMesh's
    // UI shows as cancelled.
    let events = ok(&mut session, r#"{"op":"cancel"}"#, 11);
    assert_eq!(names(&events), ["plan-cancel", "plan-cancel"]);
    assert_eq!(status(&events[0].1), "init");
    assert!(events[0].1.get("cancel").is_none());
    assert_eq!(status(&events[1].1), "success");
    assert_eq!(status(&events[1].1["cancel"]), "fail");
    assert_eq!(session.state(), PlanState::Cancelled);
    // A finished cancel tracker, like a finished apply tracker, is `{}` in a snapshot.
    let snapshot = session.snapshot();
    let event = |index: usize| {
        let (name, json) = &snapshot.events()[index];
        (name.as_str(), json.as_str())
    };
    assert_eq!(event(1), ("plan-apply", "{}"));
    assert_eq!(event(2), ("plan-cancel", "{}"));
}

#[test]
fn a_cancel_between_stages_completes_when_the_runner_fails_the_tracker() {
    let mut session = PlanSession::new();
    session.open(dev(), 0);
    ok(&mut session, r#"{"op":"start","stage":"validation"}"#, 1);
    ok(
        &mut session,
        r#"{"op":"stop","stage":"validation","success":true}"#,
        2,
    );
    ok(&mut session, r#"{"op":"cancel"}"#, 3);
    assert_eq!(
        session.apply(cmd(r#"{"op":"start","stage":"changes"}"#), 4),
        Err(PlanError::Cancelling)
    );
    let events = ok(
        &mut session,
        r#"{"op":"finish","tracker":"overview","success":false}"#,
        5,
    );
    assert_eq!(names(&events), ["plan-overview", "plan-cancel"]);
    assert_eq!(status(&events[0].1), "fail");
    assert_eq!(
        status(&events[0].1["validation"]),
        "success",
        "finished stages keep their outcome"
    );
    assert_eq!(status(&events[1].1), "success");
    assert_eq!(session.state(), PlanState::Cancelled);
}

#[test]
fn a_failed_overview_stage_ends_an_apply_plan() {
    let mut session = PlanSession::new();
    session.open_apply(dev(), 0);
    ok(&mut session, r#"{"op":"start","stage":"validation"}"#, 1);
    let events = ok(
        &mut session,
        r#"{"op":"stop","stage":"validation","success":false}"#,
        2,
    );
    assert_eq!(names(&events), ["plan-overview", "plan-apply"]);
    for (_, value) in &events {
        assert_eq!(status(value), "fail");
        assert_eq!(value["meta"]["done"], true);
    }
    assert_eq!(session.state(), PlanState::Finished);
    let apply = session.apply_tracker().expect("apply tracker kept");
    assert_eq!(apply.base.meta.status(), Status::Fail);
}

#[test]
fn a_stored_session_restores_and_carries_on() {
    let mut session = applying();
    ok(
        &mut session,
        r#"{"op":"start","stage":"backfill","details":{"tasks":{"m":{"completed":0,"total":2}}}}"#,
        2,
    );
    ok(&mut session, r#"{"op":"cancel"}"#, 3);

    let stored = serde_json::to_string(&session).expect("serialises");
    let mut restored: PlanSession = serde_json::from_str(&stored).expect("restores");
    assert_eq!(restored, session);
    assert_eq!(restored.snapshot(), session.snapshot());
    assert!(restored.is_cancelling());
    let a = session.apply(
        cmd(r#"{"op":"stop","stage":"backfill","success":false}"#),
        4,
    );
    let b = restored.apply(
        cmd(r#"{"op":"stop","stage":"backfill","success":false}"#),
        4,
    );
    assert_eq!(a, b);
    assert_eq!(restored.state(), PlanState::Cancelled);
}

#[test]
fn a_tampered_session_is_refused_on_restore() {
    let mut session = applying();
    ok(&mut session, r#"{"op":"start","stage":"creation"}"#, 2);
    let stored = serde_json::to_string(&session).expect("serialises");
    assert!(stored.starts_with(r#"{"state":"applying","#), "{stored}");

    let wrong_state = stored.replacen(r#""state":"applying""#, r#""state":"finished""#, 1);
    assert!(
        serde_json::from_str::<PlanSession>(&wrong_state).is_err(),
        "finished with an open apply tracker"
    );
    let done_without_end =
        stored.replacen(r#""start":2,"done":false"#, r#""start":2,"done":true"#, 1);
    assert_ne!(done_without_end, stored);
    assert!(
        serde_json::from_str::<PlanSession>(&done_without_end).is_err(),
        "done without end"
    );
    let end_before_start = stored.replacen(
        r#""status":"init","start":2,"done":false"#,
        r#""status":"success","start":2,"end":1,"done":true"#,
        1,
    );
    assert_ne!(end_before_start, stored);
    assert!(
        serde_json::from_str::<PlanSession>(&end_before_start).is_err(),
        "end before start"
    );
    assert!(
        serde_json::from_str::<PlanSession>(&stored).is_ok(),
        "the untouched form still restores"
    );
}

#[test]
fn a_snapshot_is_one_json_object_keyed_by_event_name() {
    let mut session = PlanSession::new();
    let request = PlanRequest::from_json(br#"{"environment":"dev"}"#).unwrap();
    let _ = session.open(request, 1_000);
    let object: Value = serde_json::from_str(&session.snapshot().to_json_object()).unwrap();
    assert_eq!(object["plan-overview"]["environment"], "dev");
    assert!(object
        .as_object()
        .unwrap()
        .keys()
        .all(|k| k.starts_with("plan-")));
}

#[test]
fn a_silent_runner_loses_its_lease_and_the_plan_fails() {
    let mut session = applying();
    ok(&mut session, r#"{"op":"start","stage":"backfill"}"#, 10);
    assert_eq!(session.lease_deadline_ms(100), Some(110));
    // A keep-alive renews the lease and emits nothing.
    assert!(ok(&mut session, r#"{"op":"alive"}"#, 50).is_empty());
    assert_eq!(session.lease_deadline_ms(100), Some(150));
    assert_eq!(session.expire_lease(149, 100), None, "not yet");
    let events = session.expire_lease(150, 100).expect("the lease has ended");
    assert_eq!(events.names().collect::<Vec<_>>(), ["plan-apply"]);
    let apply = tracker(&session, "plan-apply");
    assert_eq!(status(&apply), "fail");
    assert_eq!(status(&apply["backfill"]), "fail");
    assert_eq!(session.state(), PlanState::Finished);
    assert_eq!(session.lease_deadline_ms(100), None, "nothing runs");
    // The runner hears that the plan is over at its next report.
    assert_eq!(
        session.apply(cmd(r#"{"op":"alive"}"#), 151),
        Err(PlanError::PlanFinished)
    );
}

#[test]
fn a_lease_that_ends_while_cancelling_completes_the_cancel() {
    let mut session = applying();
    ok(&mut session, r#"{"op":"start","stage":"backfill"}"#, 10);
    ok(&mut session, r#"{"op":"cancel"}"#, 20);
    // Cancel is not a runner report: the lease still counts from 10.
    assert_eq!(session.lease_deadline_ms(100), Some(110));
    ok(&mut session, r#"{"op":"alive"}"#, 30);
    let events = session.expire_lease(130, 100).expect("ended");
    assert_eq!(
        events.names().collect::<Vec<_>>(),
        ["plan-apply", "plan-cancel"]
    );
    assert_eq!(session.state(), PlanState::Cancelled);
    assert_eq!(status(&tracker(&session, "plan-cancel")), "success");
}

#[test]
fn the_request_and_its_categories_are_kept_for_the_runner() {
    let mut session = PlanSession::new();
    let request = PlanRequest::from_json(br#"{"environment":"dev","categories":{"a.b":1,"c":6}}"#)
        .expect("valid");
    session.open(request.clone(), 7);
    assert_eq!(session.request(), Some(&request));
    assert_eq!(session.opened_ms(), Some(7));
    let stored = serde_json::to_string(&session).expect("stored");
    let back: PlanSession = serde_json::from_str(&stored).expect("read back");
    assert_eq!(back, session);
    assert_eq!(
        serde_json::to_value(back.request()).expect("json")["categories"],
        serde_json::json!({"a.b": 1, "c": 6})
    );
}

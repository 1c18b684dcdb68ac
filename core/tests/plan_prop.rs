//! Random sequences of opens, runner commands and cancels against the session's invariants.
#![cfg(not(target_arch = "wasm32"))]

use herald_core::plan::{
    PlanCommand, PlanDate, PlanError, PlanRequest, PlanSession, PlanState, Stage, Tracker,
};
use herald_core::EventName;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

#[derive(Clone, Debug)]
enum Op {
    Open { apply: bool },
    Command(PlanCommand),
}

fn details() -> impl Strategy<Value = Option<Map<String, Value>>> {
    prop_oneof![
        Just(None),
        (0u64..5).prop_map(|n| json!({ "num_tasks": n }).as_object().cloned()),
        Just(
            json!({"tasks": {"m": {"completed": 1}}, "queue": ["m"]})
                .as_object()
                .cloned()
        ),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let stage = proptest::sample::select(Stage::ALL.to_vec());
    let tracker = proptest::sample::select(Tracker::ALL.to_vec());
    // Successes are likelier than failures so that plans get far before they end.
    let success = proptest::bool::weighted(0.8);
    prop_oneof![
        2 => any::<bool>().prop_map(|apply| Op::Open { apply }),
        6 => (stage.clone(), details()).prop_map(|(stage, details)| Op::Command(PlanCommand::Start { stage, details })),
        2 => (stage.clone(), details()).prop_map(|(stage, details)| {
            Op::Command(PlanCommand::Update { stage, details: details.unwrap_or_default() })
        }),
        6 => (stage, success, details())
            .prop_map(|(stage, success, details)| Op::Command(PlanCommand::Stop { stage, success, details })),
        3 => (tracker, success).prop_map(|(tracker, success)| Op::Command(PlanCommand::Finish { tracker, success })),
        1 => Just(Op::Command(PlanCommand::Dates { start: Some(PlanDate::Text("2024-01-01".into())), end: None })),
        1 => Just(Op::Command(PlanCommand::Cancel)),
    ]
}

/// Every `meta` in a tracker: the tracker's own and each stage's.
fn metas(tracker: &Value) -> Vec<&Value> {
    let Some(object) = tracker.as_object() else {
        return Vec::new();
    };
    let mut found: Vec<&Value> = object.get("meta").into_iter().collect();
    found.extend(object.values().filter_map(|value| value.get("meta")));
    found
}

fn check_meta(meta: &Value) -> Result<(), TestCaseError> {
    let done = meta["done"].as_bool().expect("done is a bool");
    let start = meta["start"].as_u64().expect("start is an integer");
    let end = meta
        .get("end")
        .map(|end| end.as_u64().expect("end is an integer"));
    prop_assert_eq!(done, end.is_some(), "done iff end: {}", meta);
    prop_assert_eq!(
        meta["status"] == "init",
        !done,
        "init iff not done: {}",
        meta
    );
    match end {
        Some(end) => {
            prop_assert!(end >= start, "end before start: {}", meta);
            prop_assert_eq!(
                meta["duration"].as_u64(),
                Some(end - start),
                "duration: {}",
                meta
            );
        }
        None => prop_assert!(
            meta.get("duration").is_none(),
            "duration without end: {}",
            meta
        ),
    }
    Ok(())
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("tracker JSON")
}

fn check_session(session: &PlanSession) -> Result<(), TestCaseError> {
    let snapshot = session.snapshot();
    let trackers: Vec<Value> = snapshot
        .events()
        .iter()
        .map(|(_, text)| parse(text))
        .collect();
    let mut running = 0;
    for tracker in &trackers {
        for meta in metas(tracker) {
            check_meta(meta)?;
        }
        let tracker_done = tracker.get("meta").is_some_and(|meta| meta["done"] == true);
        let object = tracker.as_object().cloned().unwrap_or_default();
        for (name, stage) in object
            .iter()
            .filter(|(_, value)| value.get("meta").is_some())
        {
            let stage_running = stage["meta"]["done"] == false;
            prop_assert!(
                !(tracker_done && stage_running),
                "finished tracker with running stage {}",
                name
            );
            if stage_running && name != "cancel" {
                running += 1;
            }
        }
    }
    prop_assert!(running <= 1, "{} stages running", running);
    let cancel_open = trackers[2]
        .get("meta")
        .is_some_and(|meta| meta["done"] == false);
    prop_assert_eq!(session.is_cancelling(), cancel_open);
    if session.state().is_running() {
        let open = |tracker: &Value| {
            tracker
                .get("meta")
                .is_some_and(|meta| meta["done"] == false)
        };
        prop_assert!(
            open(&trackers[0]) || open(&trackers[1]),
            "running plan with no open tracker"
        );
    }
    // The stored form restores to the same session.
    let stored = serde_json::to_string(session).expect("serialises");
    let restored: PlanSession = serde_json::from_str(&stored).expect("restores");
    prop_assert_eq!(&restored, session);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_the_invariants(
        ops in proptest::collection::vec((op(), 0u64..40, proptest::bool::weighted(0.05)), 1..60),
    ) {
        let mut session = PlanSession::new();
        let mut now_ms = 1_000u64;
        for (op, step_ms, backwards) in ops {
            // Now and then the clock steps back: durations must still never go negative.
            now_ms = if backwards { now_ms.saturating_sub(step_ms) } else { now_ms + step_ms };
            let before = session.clone();
            let was = session.state();
            match op {
                Op::Open { apply } => {
                    let request = PlanRequest { environment: Some("dev".into()), ..PlanRequest::default() };
                    let opened = if apply { session.open_apply(request, now_ms) } else { session.open(request, now_ms) };
                    prop_assert_eq!(opened.is_started(), !was.is_running());
                    if !opened.is_started() {
                        prop_assert_eq!(&session, &before, "single flight: resuming changes nothing");
                    }
                    prop_assert!(!opened.update().is_empty());
                    check_events(&session, opened.update().events())?;
                }
                Op::Command(command) => {
                    let is_cancel = command == PlanCommand::Cancel;
                    match session.apply(command, now_ms) {
                        Ok(update) => {
                            prop_assert!(!update.is_empty(), "an accepted move emits");
                            prop_assert!(is_cancel || !matches!(was, PlanState::Idle | PlanState::Finished | PlanState::Cancelled),
                                "a runner move was accepted in {}", was);
                            check_events(&session, update.events())?;
                        }
                        Err(error) => {
                            prop_assert_eq!(&session, &before, "a refused move changed the session");
                            prop_assert!(!is_cancel, "cancel is always answered");
                            let expected = match was {
                                PlanState::Idle => Some(PlanError::NoPlan),
                                PlanState::Finished => Some(PlanError::PlanFinished),
                                PlanState::Cancelled => Some(PlanError::PlanCancelled),
                                PlanState::Cancelling => Some(PlanError::Cancelling),
                                _ => None,
                            };
                            if let Some(expected) = expected {
                                prop_assert_eq!(error, expected);
                            }
                        }
                    }
                }
            }
            if was == PlanState::Cancelling && session.state() != PlanState::Cancelling {
                prop_assert_eq!(session.state(), PlanState::Cancelled, "a cancel only ends in cancelled");
            }
            check_session(&session)?;
        }
    }
}

/// The last event of each tracker emitted is the whole tracker as it now stands (a cancel with
/// nothing to cancel sends its tracker twice, as SQLMesh does: as it starts, then as it ends).
fn check_events(
    session: &PlanSession,
    events: &[(EventName, String)],
) -> Result<(), TestCaseError> {
    for (index, (name, text)) in events.iter().enumerate() {
        if events[index + 1..].iter().any(|(later, _)| later == name) {
            continue;
        }
        let current = match name.as_str() {
            "plan-overview" => serde_json::to_string(&session.overview()),
            "plan-apply" => serde_json::to_string(&session.apply_tracker()),
            "plan-cancel" => serde_json::to_string(&session.cancel_tracker()),
            _ => panic!("unknown event name {name}"),
        }
        .expect("tracker JSON");
        let current = if current == "null" {
            "{}".to_string()
        } else {
            current
        };
        prop_assert_eq!(text, &current, "{} emitted a stale tracker", name);
    }
    Ok(())
}

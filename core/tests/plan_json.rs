//! Exact JSON: trackers as SQLMesh's web client reads them, and the request and command bodies.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::plan::{
    BodyError, ChangeCategory, PlanCommand, PlanDate, PlanError, PlanRequest, PlanSession,
    PlanState, PlanUpdate, Stage, Tracker,
};
use herald_core::EventName;

#[path = "common/plan.rs"]
mod plan;

use plan::{accept, cmd};

/// A tracker's event name as the literal the assertions compare with.
fn tracker_name(name: &EventName) -> &'static str {
    match name.as_str() {
        "plan-overview" => "plan-overview",
        "plan-apply" => "plan-apply",
        "plan-cancel" => "plan-cancel",
        other => panic!("not a tracker event: {other}"),
    }
}

/// An update's events with their names as literals.
fn named(update: PlanUpdate) -> Vec<(&'static str, String)> {
    update
        .into_iter()
        .map(|(name, json)| (tracker_name(&name), json))
        .collect()
}

fn step(session: &mut PlanSession, json: &str, now_ms: u64) -> Vec<(&'static str, String)> {
    named(accept(session, json, now_ms))
}

const ALL_FALSE: &str = r#"{"skip_tests":false,"skip_backfill":false,"no_gaps":false,"forward_only":false,"no_auto_categorization":false,"include_unmodified":false,"auto_apply":false}"#;

#[test]
fn a_full_request_opens_an_overview_tracker_with_sqlmesh_fields() {
    let body = br#"{
        "environment": "dev",
        "plan_dates": {"start": "2024-01-01", "end": 1706659200000},
        "plan_options": {"skip_tests": true, "create_from": "prod", "restate_models": "sushi.a,sushi.b"},
        "categories": {"sushi.orders": 1, "sushi.items": 6},
        "unknown_field": "ignored, as FastAPI does"
    }"#;
    let request = PlanRequest::from_json(body).expect("valid body");
    assert_eq!(
        request
            .categories
            .as_ref()
            .and_then(|c| c.get("sushi.items")),
        Some(&ChangeCategory::Metadata)
    );
    let mut session = PlanSession::new();
    let opened = session.open(request, 1_000);
    assert!(opened.is_started());
    let events: Vec<_> = named(opened.into_update());
    assert_eq!(
        events,
        [(
            "plan-overview",
            concat!(
                r#"{"meta":{"status":"init","start":1000,"done":false},"environment":"dev","#,
                r#""plan_options":{"skip_tests":true,"skip_backfill":false,"no_gaps":false,"forward_only":false,"#,
                r#""no_auto_categorization":false,"include_unmodified":false,"create_from":"prod","#,
                r#""restate_models":["sushi.a","sushi.b"],"auto_apply":false},"#,
                r#""start":"2024-01-01","end":1706659200000}"#
            )
            .to_string()
        )]
    );
}

#[test]
fn an_empty_request_gets_sqlmesh_default_options_and_omits_the_rest() {
    let mut session = PlanSession::new();
    let opened = session.open(PlanRequest::from_json(b"{}").expect("valid"), 7);
    assert_eq!(
        opened.update().events()[0].1,
        format!(
            r#"{{"meta":{{"status":"init","start":7,"done":false}},"plan_options":{ALL_FALSE}}}"#
        )
    );
}

#[test]
fn an_apply_plan_emits_apply_then_overview() {
    let mut session = PlanSession::new();
    let opened = session.open_apply(
        PlanRequest {
            environment: Some("dev".into()),
            ..Default::default()
        },
        5,
    );
    let base = format!(
        r#"{{"meta":{{"status":"init","start":5,"done":false}},"environment":"dev","plan_options":{ALL_FALSE}}}"#
    );
    let events: Vec<_> = named(opened.into_update());
    assert_eq!(
        events,
        [("plan-apply", base.clone()), ("plan-overview", base)]
    );
}

#[test]
fn a_stopped_stage_has_end_done_and_duration() {
    let mut session = PlanSession::new();
    session.open(PlanRequest::default(), 1_000);
    step(
        &mut session,
        r#"{"op":"start","stage":"validation"}"#,
        1_010,
    );
    let events = step(
        &mut session,
        r#"{"op":"stop","stage":"validation","success":true}"#,
        1_250,
    );
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].0, "plan-overview");
    assert!(
        events[0].1.ends_with(
            r#""validation":{"meta":{"status":"success","start":1010,"end":1250,"done":true,"duration":240}}}"#
        ),
        "{}",
        events[0].1
    );
}

#[test]
fn changes_details_sit_beside_meta() {
    let mut session = PlanSession::new();
    session.open(PlanRequest::default(), 0);
    step(&mut session, r#"{"op":"start","stage":"changes"}"#, 10);
    let events = step(
        &mut session,
        r#"{"op":"stop","stage":"changes","success":true,"details":{"added":[{"name":"a","view_name":"a","node_type":"model","parents":[]}],"removed":[]}}"#,
        20,
    );
    assert!(events[0].1.ends_with(concat!(
        r#""changes":{"meta":{"status":"success","start":10,"end":20,"done":true,"duration":10},"#,
        r#""added":[{"name":"a","node_type":"model","parents":[],"view_name":"a"}],"removed":[]}}"#
    )));
}

/// An apply plan with its overview done, ready for apply stages.
fn applying(environment: Option<&str>) -> PlanSession {
    plan::applying(PlanRequest {
        environment: environment.map(String::from),
        ..Default::default()
    })
}

fn stage_json(session: &PlanSession, stage: Stage) -> String {
    let apply = session.apply_tracker().expect("apply tracker");
    let state = match stage {
        Stage::Creation => &apply.creation,
        Stage::Restate => &apply.restate,
        Stage::Backfill => &apply.backfill,
        Stage::Promote => &apply.promote,
        other => panic!("{other} is not an apply stage"),
    };
    serde_json::to_string(state.as_ref().expect("stage started")).expect("serialises")
}

#[test]
fn apply_stages_start_with_the_fields_sqlmesh_requires() {
    let mut session = applying(Some("dev"));
    step(
        &mut session,
        r#"{"op":"start","stage":"creation","details":{"total_tasks":3}}"#,
        2,
    );
    assert_eq!(
        stage_json(&session, Stage::Creation),
        r#"{"meta":{"status":"init","start":2,"done":false},"num_tasks":0,"total_tasks":3}"#
    );
    step(
        &mut session,
        r#"{"op":"update","stage":"creation","details":{"num_tasks":1}}"#,
        3,
    );
    step(
        &mut session,
        r#"{"op":"stop","stage":"creation","success":true}"#,
        4,
    );
    step(&mut session, r#"{"op":"start","stage":"restate"}"#, 5);
    assert_eq!(
        stage_json(&session, Stage::Restate),
        r#"{"meta":{"status":"init","start":5,"done":false}}"#
    );
    step(
        &mut session,
        r#"{"op":"stop","stage":"restate","success":true}"#,
        6,
    );
    step(&mut session, r#"{"op":"start","stage":"backfill"}"#, 7);
    assert_eq!(
        stage_json(&session, Stage::Backfill),
        r#"{"meta":{"status":"init","start":7,"done":false},"queue":[],"tasks":{}}"#
    );
    step(
        &mut session,
        r#"{"op":"stop","stage":"backfill","success":true}"#,
        8,
    );
    step(&mut session, r#"{"op":"start","stage":"promote"}"#, 9);
    assert_eq!(
        stage_json(&session, Stage::Promote),
        r#"{"meta":{"status":"init","start":9,"done":false},"num_tasks":0,"target_environment":"dev","total_tasks":0}"#
    );
}

#[test]
fn promote_targets_prod_when_no_environment_was_named() {
    let mut session = applying(None);
    step(&mut session, r#"{"op":"start","stage":"promote"}"#, 2);
    assert!(stage_json(&session, Stage::Promote).contains(r#""target_environment":"prod""#));
}

#[test]
fn backfill_progress_merges_one_task_without_resending_the_rest() {
    let mut session = applying(Some("dev"));
    step(
        &mut session,
        r#"{"op":"start","stage":"backfill","details":{"tasks":{
            "a":{"name":"a","view_name":"a","completed":0,"total":2,"start":2},
            "b":{"name":"b","view_name":"b","completed":0,"total":1,"start":2}}}}"#,
        2,
    );
    step(
        &mut session,
        r#"{"op":"update","stage":"backfill","details":{"queue":["a"]}}"#,
        3,
    );
    step(
        &mut session,
        r#"{"op":"update","stage":"backfill","details":{"queue":[],"tasks":{"a":{"completed":2,"end":9}}}}"#,
        9,
    );
    assert_eq!(
        stage_json(&session, Stage::Backfill),
        concat!(
            r#"{"meta":{"status":"init","start":2,"done":false},"queue":[],"tasks":{"#,
            r#""a":{"completed":2,"end":9,"name":"a","start":2,"total":2,"view_name":"a"},"#,
            r#""b":{"completed":0,"name":"b","start":2,"total":1,"view_name":"b"}}}"#
        )
    );
    // `null` removes a key (RFC 7386), so the runner can drop a field back to "absent".
    step(
        &mut session,
        r#"{"op":"update","stage":"backfill","details":{"tasks":{"b":null}}}"#,
        10,
    );
    assert!(!stage_json(&session, Stage::Backfill).contains(r#""b":"#));
}

#[test]
fn cancel_with_nothing_running_fails_the_cancel_stage() {
    let mut session = PlanSession::new();
    let events = session
        .apply(PlanCommand::Cancel, 5)
        .expect("cancel is answered");
    let events = named(events);
    // SQLMesh's two events: the tracker as it starts, then its stage failed and itself `success`.
    let failed = r#"{"status":"fail","start":5,"end":5,"done":true,"duration":0}"#;
    let succeeded = r#"{"status":"success","start":5,"end":5,"done":true,"duration":0}"#;
    assert_eq!(
        events,
        [
            (
                "plan-cancel",
                r#"{"meta":{"status":"init","start":5,"done":false}}"#.to_string()
            ),
            (
                "plan-cancel",
                format!(r#"{{"meta":{succeeded},"cancel":{{"meta":{failed}}}}}"#)
            )
        ]
    );
    assert_eq!(session.state(), PlanState::Idle);
}

#[test]
fn an_idle_snapshot_is_three_empty_objects() {
    let snapshot = named(PlanSession::new().snapshot());
    let empty = || "{}".to_string();
    assert_eq!(
        snapshot,
        [
            ("plan-overview", empty()),
            ("plan-apply", empty()),
            ("plan-cancel", empty())
        ]
    );
}

#[test]
fn dates_from_the_runner_replace_the_requested_ones() {
    let mut session = PlanSession::new();
    let body = br#"{"environment":"dev","plan_dates":{"start":"2024-01-01"}}"#;
    session.open(PlanRequest::from_json(body).expect("valid"), 0);
    let events = step(&mut session, r#"{"op":"dates","end":"2024-02-01"}"#, 1);
    assert!(
        events[0]
            .1
            .ends_with(r#""start":"2024-01-01","end":"2024-02-01"}"#),
        "{}",
        events[0].1
    );
}

#[test]
fn category_integers_outside_sqlmesh_range_are_typed_errors() {
    for (value, body) in [
        (7, r#"{"categories":{"m":7}}"#),
        (0, r#"{"categories":{"m":0}}"#),
        (-1, r#"{"categories":{"m":-1}}"#),
    ] {
        assert_eq!(
            PlanRequest::from_json(body.as_bytes()),
            Err(BodyError::UnknownCategory { value }),
            "{body}"
        );
    }
    for value in 1..=6 {
        let body = format!(r#"{{"categories":{{"m":{value}}}}}"#);
        let request = PlanRequest::from_json(body.as_bytes()).expect("known category");
        let category = request
            .categories
            .and_then(|c| c.get("m").copied())
            .expect("parsed");
        assert_eq!(i64::from(category.value()), value);
    }
}

#[test]
fn malformed_requests_say_where() {
    assert_eq!(
        PlanRequest::from_json(b"{\"environment\": }"),
        Err(BodyError::Malformed {
            line: 1,
            column: 17
        })
    );
    // Names are not values: SQLMesh's IntEnum takes the integer.
    assert!(matches!(
        PlanRequest::from_json(br#"{"categories":{"m":"BREAKING"}}"#),
        Err(BodyError::Malformed { .. })
    ));
    assert!(matches!(
        PlanRequest::from_json(br#"{"plan_options":{"skip_tests":null}}"#),
        Err(BodyError::Malformed { .. })
    ));
    // serde would read a struct from an array; SQLMesh (FastAPI) wants an object.
    assert_eq!(
        PlanRequest::from_json(b"\n  []"),
        Err(BodyError::Malformed { line: 2, column: 3 })
    );
    assert_eq!(
        PlanCommand::from_json(br#"["start","validation"]"#),
        Err(BodyError::Malformed { line: 1, column: 1 })
    );
    // An empty body is SQLMesh's default request (every field is optional); whitespace alone too.
    assert_eq!(PlanRequest::from_json(b""), Ok(PlanRequest::default()));
    assert_eq!(PlanRequest::from_json(b" \n"), Ok(PlanRequest::default()));
    assert_eq!(
        PlanRequest::from_json(b" x"),
        Err(BodyError::Malformed { line: 1, column: 2 })
    );
}

#[test]
fn restate_models_accepts_a_list_too() {
    let request =
        PlanRequest::from_json(br#"{"plan_options":{"restate_models":["a","b"]}}"#).expect("valid");
    let models = request
        .plan_options
        .and_then(|options| options.restate_models);
    assert_eq!(models, Some(vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn commands_parse_from_their_documented_forms() {
    assert_eq!(
        cmd(r#"{"op":"start","stage":"validation"}"#),
        PlanCommand::Start {
            stage: Stage::Validation,
            details: None
        }
    );
    assert_eq!(
        cmd(r#"{"op":"stop","stage":"promote","success":false}"#),
        PlanCommand::Stop {
            stage: Stage::Promote,
            success: false,
            details: None
        }
    );
    assert_eq!(
        cmd(r#"{"op":"finish","tracker":"apply","success":true}"#),
        PlanCommand::Finish {
            tracker: Tracker::Apply,
            success: true
        }
    );
    assert_eq!(
        cmd(r#"{"op":"dates","start":"2024-01-01","end":1}"#),
        PlanCommand::Dates {
            start: Some(PlanDate::Text("2024-01-01".into())),
            end: Some(PlanDate::Number(1.into()))
        }
    );
    assert_eq!(cmd(r#"{"op":"cancel"}"#), PlanCommand::Cancel);
    let update = cmd(r#"{"op":"update","stage":"backfill","details":{"queue":["a"]}}"#);
    assert_eq!(update.details().map(|d| d.len()), Some(1));
    // A command serialises back to the form it was read from.
    let text = r#"{"op":"stop","stage":"backfill","success":true,"details":{"queue":[]}}"#;
    assert_eq!(serde_json::to_string(&cmd(text)).expect("serialises"), text);
}

#[test]
fn bad_commands_are_body_errors() {
    for body in [
        r#"{"op":"restart","stage":"validation"}"#,
        r#"{"op":"start","stage":"deploy"}"#,
        r#"{"op":"update","stage":"backfill","details":[1]}"#,
        r#"{"op":"update","stage":"backfill"}"#,
        r#"{"op":"stop","stage":"backfill"}"#,
        r#"{"stage":"backfill"}"#,
    ] {
        assert!(
            matches!(
                PlanCommand::from_json(body.as_bytes()),
                Err(BodyError::Malformed { .. })
            ),
            "{body}"
        );
    }
    let body = br#"{"op":"update","stage":"backfill","details":{"meta":{"done":true}}}"#;
    assert_eq!(PlanCommand::from_json(body), Err(BodyError::ReservedKey));
}

#[test]
fn error_messages_are_lowercase_without_a_trailing_period() {
    let messages = [
        BodyError::Malformed { line: 1, column: 2 }.to_string(),
        BodyError::UnknownCategory { value: 9 }.to_string(),
        BodyError::ReservedKey.to_string(),
        PlanError::NoPlan.to_string(),
        PlanError::Cancelling.to_string(),
        PlanError::WrongTracker(Stage::Cancel).to_string(),
        PlanError::TrackerNotOpen(Tracker::Apply).to_string(),
        PlanError::StageRunning(Stage::Backfill).to_string(),
        PlanError::OverviewPending.to_string(),
    ];
    for message in messages {
        assert!(
            message.starts_with(|c: char| c.is_ascii_lowercase()),
            "{message}"
        );
        assert!(!message.ends_with('.'), "{message}");
    }
    assert_eq!(
        PlanError::StageNotStarted(Stage::Promote).to_string(),
        "stage promote has not started"
    );
    assert_eq!(
        BodyError::UnknownCategory { value: 9 }.to_string(),
        "unknown change category 9"
    );
}

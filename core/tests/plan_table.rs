//! Every plan state against every kind of move: the expected next state and events, or the error.
//!
//! Adding a state breaks `reach` (an exhaustive match) and then `table_covers_every_state`; adding
//! a probe breaks every row's array length. Either way the table must be written before the tests
//! pass.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::plan::{
    PlanCommand, PlanDate, PlanError, PlanRequest, PlanSession, PlanState, Stage, Tracker,
};

/// One representative move of each kind, aimed at the stages that are running in the canonical
/// states.
#[derive(Clone, Copy, Debug)]
enum Probe {
    OpenPreview,
    OpenApply,
    StartValidation,
    StartCreation,
    StartCancel,
    UpdateValidation,
    UpdateCreation,
    StopValidationOk,
    StopCreationOk,
    StopCreationFail,
    FinishOverviewOk,
    FinishApplyOk,
    FinishApplyFail,
    FinishCancel,
    Dates,
    Cancel,
}

const PROBES: [Probe; 16] = [
    Probe::OpenPreview,
    Probe::OpenApply,
    Probe::StartValidation,
    Probe::StartCreation,
    Probe::StartCancel,
    Probe::UpdateValidation,
    Probe::UpdateCreation,
    Probe::StopValidationOk,
    Probe::StopCreationOk,
    Probe::StopCreationFail,
    Probe::FinishOverviewOk,
    Probe::FinishApplyOk,
    Probe::FinishApplyFail,
    Probe::FinishCancel,
    Probe::Dates,
    Probe::Cancel,
];

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// A new plan started: its state and events.
    Started(PlanState, &'static [&'static str]),
    /// Opening re-emitted the running plan; the state is unchanged.
    Resumed(&'static [&'static str]),
    /// Accepted: next state and events.
    Next(PlanState, &'static [&'static str]),
    /// Refused.
    Fail(PlanError),
}

use Expect::{Fail, Next, Resumed, Started};
use PlanState as S;

const OV: &str = "plan-overview";
const AP: &str = "plan-apply";
const CA: &str = "plan-cancel";

fn command(probe: Probe) -> Option<PlanCommand> {
    let start = |stage| PlanCommand::Start {
        stage,
        details: None,
    };
    let update = |stage| {
        let details = serde_json::json!({"note": "progress"})
            .as_object()
            .cloned()
            .expect("an object");
        PlanCommand::Update { stage, details }
    };
    let stop = |stage, success| PlanCommand::Stop {
        stage,
        success,
        details: None,
    };
    let finish = |tracker, success| PlanCommand::Finish { tracker, success };
    Some(match probe {
        Probe::OpenPreview | Probe::OpenApply => return None,
        Probe::StartValidation => start(Stage::Validation),
        Probe::StartCreation => start(Stage::Creation),
        Probe::StartCancel => start(Stage::Cancel),
        Probe::UpdateValidation => update(Stage::Validation),
        Probe::UpdateCreation => update(Stage::Creation),
        Probe::StopValidationOk => stop(Stage::Validation, true),
        Probe::StopCreationOk => stop(Stage::Creation, true),
        Probe::StopCreationFail => stop(Stage::Creation, false),
        Probe::FinishOverviewOk => finish(Tracker::Overview, true),
        Probe::FinishApplyOk => finish(Tracker::Apply, true),
        Probe::FinishApplyFail => finish(Tracker::Apply, false),
        Probe::FinishCancel => finish(Tracker::Cancel, false),
        Probe::Dates => PlanCommand::Dates {
            start: Some(PlanDate::Text("2024-01-01".into())),
            end: None,
        },
        Probe::Cancel => PlanCommand::Cancel,
    })
}

fn run(session: &mut PlanSession, command: PlanCommand, now_ms: u64) {
    if let Err(error) = session.apply(command.clone(), now_ms) {
        panic!("{command:?} refused while reaching a state: {error}");
    }
}

/// A session in `state`, with a stage running where the state allows one: validation in the
/// overview states, creation in `Applying` and `Cancelling`.
fn reach(state: PlanState) -> PlanSession {
    let mut session = PlanSession::new();
    let request = || PlanRequest {
        environment: Some("dev".into()),
        ..PlanRequest::default()
    };
    match state {
        S::Idle => {}
        S::Overview => {
            session.open(request(), 100);
            run(
                &mut session,
                PlanCommand::Start {
                    stage: Stage::Validation,
                    details: None,
                },
                110,
            );
        }
        S::ApplyOverview => {
            session.open_apply(request(), 100);
            run(
                &mut session,
                PlanCommand::Start {
                    stage: Stage::Validation,
                    details: None,
                },
                110,
            );
        }
        S::Applying | S::Cancelling | S::Finished | S::Cancelled => {
            session.open_apply(request(), 100);
            run(
                &mut session,
                PlanCommand::Start {
                    stage: Stage::Validation,
                    details: None,
                },
                110,
            );
            run(
                &mut session,
                PlanCommand::Stop {
                    stage: Stage::Validation,
                    success: true,
                    details: None,
                },
                120,
            );
            run(
                &mut session,
                PlanCommand::Finish {
                    tracker: Tracker::Overview,
                    success: true,
                },
                130,
            );
            run(
                &mut session,
                PlanCommand::Start {
                    stage: Stage::Creation,
                    details: None,
                },
                140,
            );
            match state {
                S::Cancelling => run(&mut session, PlanCommand::Cancel, 150),
                S::Finished => {
                    run(
                        &mut session,
                        PlanCommand::Stop {
                            stage: Stage::Creation,
                            success: true,
                            details: None,
                        },
                        150,
                    );
                    run(
                        &mut session,
                        PlanCommand::Finish {
                            tracker: Tracker::Apply,
                            success: true,
                        },
                        160,
                    );
                }
                S::Cancelled => {
                    run(&mut session, PlanCommand::Cancel, 150);
                    run(
                        &mut session,
                        PlanCommand::Stop {
                            stage: Stage::Creation,
                            success: false,
                            details: None,
                        },
                        160,
                    );
                }
                _ => {}
            }
        }
    }
    assert_eq!(session.state(), state, "reach({state}) landed elsewhere");
    session
}

const RESUMED: Expect = Resumed(&[OV, AP]);
const NEW_PREVIEW: Expect = Started(S::Overview, &[OV]);
const NEW_APPLY: Expect = Started(S::ApplyOverview, &[AP, OV]);

/// Columns in `PROBES` order.
#[rustfmt::skip]
const TABLE: [(PlanState, [Expect; 16]); 7] = {
    const NO: Expect = Fail(PlanError::NoPlan);
    const FIN: Expect = Fail(PlanError::PlanFinished);
    const CAN: Expect = Fail(PlanError::PlanCancelled);
    const BUSY: Expect = Fail(PlanError::Cancelling);
    const PENDING: Expect = Fail(PlanError::OverviewPending);
    const OV_DONE: Expect = Fail(PlanError::TrackerFinished(Tracker::Overview));
    const CANCEL_STAGE: Expect = Fail(PlanError::WrongTracker(Stage::Cancel));
    const CANCEL_TRACKER: Expect = Fail(PlanError::TrackerNotOpen(Tracker::Cancel));
    [
        (S::Idle, [
            NEW_PREVIEW, NEW_APPLY,
            NO, NO, NO,
            NO, NO,
            NO, NO, NO,
            NO, NO, NO, NO,
            NO, Next(S::Idle, &[CA, CA]),
        ]),
        (S::Overview, [
            RESUMED, RESUMED,
            Fail(PlanError::StageAlreadyStarted(Stage::Validation)),
            Fail(PlanError::WrongTracker(Stage::Creation)),
            CANCEL_STAGE,
            Next(S::Overview, &[OV]),
            Fail(PlanError::WrongTracker(Stage::Creation)),
            Next(S::Overview, &[OV]),
            Fail(PlanError::WrongTracker(Stage::Creation)),
            Fail(PlanError::WrongTracker(Stage::Creation)),
            Fail(PlanError::StageRunning(Stage::Validation)),
            Fail(PlanError::TrackerNotOpen(Tracker::Apply)),
            Fail(PlanError::TrackerNotOpen(Tracker::Apply)),
            CANCEL_TRACKER,
            Next(S::Overview, &[OV]),
            Next(S::Cancelling, &[CA]),
        ]),
        (S::ApplyOverview, [
            RESUMED, RESUMED,
            Fail(PlanError::StageAlreadyStarted(Stage::Validation)),
            PENDING,
            CANCEL_STAGE,
            Next(S::ApplyOverview, &[OV]),
            PENDING,
            Next(S::ApplyOverview, &[OV]),
            PENDING,
            PENDING,
            Fail(PlanError::StageRunning(Stage::Validation)),
            PENDING,
            PENDING,
            CANCEL_TRACKER,
            Next(S::ApplyOverview, &[OV, AP]),
            Next(S::Cancelling, &[CA]),
        ]),
        (S::Applying, [
            RESUMED, RESUMED,
            OV_DONE,
            Fail(PlanError::StageAlreadyStarted(Stage::Creation)),
            CANCEL_STAGE,
            OV_DONE,
            Next(S::Applying, &[AP]),
            OV_DONE,
            Next(S::Applying, &[AP]),
            Next(S::Finished, &[AP]),
            OV_DONE,
            Fail(PlanError::StageRunning(Stage::Creation)),
            Next(S::Finished, &[AP]),
            CANCEL_TRACKER,
            Next(S::Applying, &[AP]),
            Next(S::Cancelling, &[CA]),
        ]),
        (S::Cancelling, [
            RESUMED, RESUMED,
            BUSY, BUSY, BUSY,
            BUSY, BUSY,
            BUSY, BUSY, Next(S::Cancelled, &[AP, CA]),
            BUSY, BUSY, Next(S::Cancelled, &[AP, CA]), BUSY,
            BUSY, Next(S::Cancelling, &[CA]),
        ]),
        (S::Finished, [
            NEW_PREVIEW, NEW_APPLY,
            FIN, FIN, FIN,
            FIN, FIN,
            FIN, FIN, FIN,
            FIN, FIN, FIN, FIN,
            FIN, Next(S::Finished, &[CA, CA]),
        ]),
        (S::Cancelled, [
            NEW_PREVIEW, NEW_APPLY,
            CAN, CAN, CAN,
            CAN, CAN,
            CAN, CAN, CAN,
            CAN, CAN, CAN, CAN,
            CAN, Next(S::Cancelled, &[CA, CA]),
        ]),
    ]
};

fn observe(state: PlanState, probe: Probe) -> Expect {
    let mut session = reach(state);
    let before = session.clone();
    let request = PlanRequest {
        environment: Some("prod".into()),
        ..PlanRequest::default()
    };
    // The table lists names as `&'static str`: each observed name is leaked to compare with it.
    let names = |update: &herald_core::plan::PlanUpdate| -> Vec<&'static str> {
        update
            .names()
            .map(|name| &*Box::leak(String::from(name).into_boxed_str()))
            .collect()
    };
    let observed = match (probe, command(probe)) {
        (Probe::OpenPreview, _) | (Probe::OpenApply, _) => {
            let opened = match probe {
                Probe::OpenPreview => session.open(request, 900),
                _ => session.open_apply(request, 900),
            };
            let events = leak(names(opened.update()));
            if opened.is_started() {
                Started(session.state(), events)
            } else {
                assert_eq!(
                    session, before,
                    "{state} x {probe:?}: resuming changed the session"
                );
                Resumed(events)
            }
        }
        (_, Some(command)) => match session.apply(command, 900) {
            Ok(update) => Next(session.state(), leak(names(&update))),
            Err(error) => {
                assert_eq!(
                    session, before,
                    "{state} x {probe:?}: a refused move changed the session"
                );
                Fail(error)
            }
        },
        (_, None) => unreachable!("every probe but the opens has a command"),
    };
    observed
}

/// The expectations are `'static`; leaking the few observed name lists keeps the comparison a plain
/// `==`.
fn leak(names: Vec<&'static str>) -> &'static [&'static str] {
    Box::leak(names.into_boxed_slice())
}

#[test]
fn table_covers_every_state() {
    let states: Vec<PlanState> = TABLE.iter().map(|(state, _)| *state).collect();
    assert_eq!(
        states,
        PlanState::ALL,
        "one row per state, in PlanState::ALL order"
    );
}

#[test]
fn every_state_against_every_move() {
    let mut mismatches = Vec::new();
    for (state, row) in TABLE {
        for (probe, expected) in PROBES.into_iter().zip(row) {
            let observed = observe(state, probe);
            if observed != expected {
                mismatches.push(format!(
                    "{state} x {probe:?}: expected {expected:?}, observed {observed:?}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[test]
fn predicates_agree_with_the_table() {
    for state in PlanState::ALL {
        // Running states resume an open; the others start a plan.
        let resumes = matches!(observe(state, Probe::OpenPreview), Resumed(_));
        assert_eq!(state.is_running(), resumes, "{state}");
        let refuses_runner = matches!(
            observe(state, Probe::Dates),
            Fail(PlanError::NoPlan | PlanError::PlanFinished | PlanError::PlanCancelled)
        );
        assert_eq!(
            state.is_terminal() || state == S::Idle,
            refuses_runner,
            "{state}"
        );
        assert_eq!(
            reach(state).is_cancelling(),
            state == S::Cancelling,
            "{state}"
        );
    }
}

//! What the plan tests share: commands from their JSON, a move that must be accepted, and a plan
//! that is ready for its apply stages.

use herald_core::plan::{PlanCommand, PlanRequest, PlanSession, PlanUpdate};

/// A runner's command from its JSON (panics on a bad one: the tests write them).
pub(crate) fn cmd(json: &str) -> PlanCommand {
    PlanCommand::from_json(json.as_bytes()).unwrap_or_else(|error| panic!("{json}: {error}"))
}

/// Applies a command that must be accepted; returns what it emitted.
pub(crate) fn accept(session: &mut PlanSession, json: &str, now_ms: u64) -> PlanUpdate {
    session
        .apply(cmd(json), now_ms)
        .unwrap_or_else(|error| panic!("{json} refused: {error}"))
}

/// An apply plan for `request` opened at 0 ms whose overview succeeded at 1 ms: the apply
/// tracker's stages are next.
pub(crate) fn applying(request: PlanRequest) -> PlanSession {
    let mut session = PlanSession::new();
    session.open_apply(request, 0);
    accept(
        &mut session,
        r#"{"op":"finish","tracker":"overview","success":true}"#,
        1,
    );
    session
}

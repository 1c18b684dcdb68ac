//! SQLMesh-compatible plan progress: the overview, apply and cancel stage trackers of SQLMesh's web
//! server (`web/server/models.py`, `web/server/console.py`), and [`PlanSession`], the state machine
//! that drives them.
//!
//! The flow, as in SQLMesh: a client opens a plan ([`PlanSession::open`] for `POST /api/plan`,
//! [`PlanSession::open_apply`] for `POST /api/commands/apply`), a runner reports progress with
//! [`PlanCommand`]s, a client may cancel ([`PlanCommand::Cancel`] for `POST /api/plan/cancel`), and
//! every accepted move returns the whole trackers to emit as `plan-overview`, `plan-apply` and
//! `plan-cancel` events. Errors split by fault: [`BodyError`] is a bad body (HTTP 400; 422 on
//! SQLMesh's plan bodies, as its FastAPI answers), [`PlanError`] a refused move (HTTP 409). A
//! running plan whose runner stops reporting ends by its lease ([`PlanSession::expire_lease`]); the
//! request that opened it, categories included, stays readable for the
//! runner ([`PlanSession::request`]).
//!
//! ```
//! use herald_core::plan::{PlanCommand, PlanRequest, PlanSession, Stage};
//!
//! let mut session = PlanSession::new();
//! let request = PlanRequest::from_json(br#"{"environment":"dev"}"#).unwrap();
//! let opened = session.open(request, 1_000);
//! assert_eq!(opened.update().names().collect::<Vec<_>>(), ["plan-overview"]);
//!
//! let start = PlanCommand::from_json(br#"{"op":"start","stage":"validation"}"#).unwrap();
//! let update = session.apply(start, 1_010).unwrap();
//! assert!(update.events()[0].1.contains(r#""validation":{"meta":{"status":"init","start":1010,"done":false}}"#));
//!
//! // A stage that never started cannot stop.
//! let stop = PlanCommand::Stop { stage: Stage::Changes, success: true, details: None };
//! assert!(session.apply(stop, 1_020).is_err());
//! ```

mod machine;
mod request;
mod session;
mod stage;
mod tracker;

pub use machine::{PlanError, PlanState};
pub use request::{
    BodyError, ChangeCategory, PlanCommand, PlanDate, PlanDates, PlanOptions, PlanRequest,
};
pub use session::{Opened, PlanSession, PlanUpdate};
pub use stage::{Stage, Tracker, PLAN_APPLY, PLAN_CANCEL, PLAN_OVERVIEW};
pub use tracker::{
    ApplyTracker, CancelTracker, OverviewTracker, StageMeta, StageState, Status, TrackerBase,
};

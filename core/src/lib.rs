//! Herald's engine: every rule of Herald's Server-Sent Events hub, with no I/O, no async and no clock.
//!
//! (Crate docs with runnable examples for encode, parse and replay are filled in once the modules land.)

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

pub use plan::{
    ApplyTracker, BodyError, CancelTracker, ChangeCategory, Opened, OverviewTracker, PlanCommand,
    PlanDate, PlanDates, PlanError, PlanOptions, PlanRequest, PlanSession, PlanState, PlanUpdate,
    Stage, StageMeta, StageState, Status, Tracker, TrackerBase, PLAN_APPLY, PLAN_CANCEL,
    PLAN_OVERVIEW,
};

mod auth;
mod control;
mod encode;
mod filter;
mod heartbeat;
mod log;
mod outbox;
mod parse;
mod plan;
mod publish;

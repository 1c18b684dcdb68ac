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

pub use auth::{
    hub_name, mint, verify, AuthError, Claims, ConnectionId, Forbidden, IdentifierError, Scope,
    Scopes, TenantId, TokenKind, TOKEN_BYTES_MAX,
};
pub use publish::{parse_publish, publish_response_json, NewEvent, PublishError, PublishLimits};
pub use control::{lagging_frame, open_frame, reset_frame};
pub use filter::{Filter, FilterError, FilterErrorKind, FilterParam, Vocabulary};
pub use heartbeat::{HeartbeatDue, HeartbeatPolicy, HeartbeatProfile, DEFAULT_HEARTBEAT_MS};
pub use log::{
    Evicted, GapReason, LogEntry, LogLimits, Position, PositionError, Replay, ReplayLog,
    RestoreError,
};
pub use outbox::{Outbox, OutboxLimits, Pushed};
// stand-in until merge: encode::EventId/EventName/Frame (delete this line and `control::standin`)
pub use control::standin::{EventId, EventName, Frame};

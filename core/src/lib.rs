//! Herald's engine: every rule of Herald's Server-Sent Events hub, with no I/O, no async and no clock.
//!
//! # Overview
//!
//! - Encoding: [`Frame`] writes one event of a `text/event-stream`. Its id and event name are the
//!   validated [`EventId`] and [`EventName`], and data and comments are split on every line break, so a
//!   frame can never inject a field; [`KEEP_ALIVE`] is the idle-stream comment.
//! - Parsing: [`Parser`] is a push parser that follows the WHATWG "interpreting an event stream"
//!   algorithm to the letter and hands out each [`Message`], whatever the chunking of its input.
//! - Ids and replay: [`Position`] is an event id `<epoch>-<seq>`; [`ReplayLog`] is the bounded log
//!   (by count and bytes) that answers "everything after id X" with frames or a [`Replay::Gap`].
//! - Fan-out: [`Outbox`] is a subscriber's bounded queue; [`Filter`] selects events by `types=` and
//!   `categories=`; [`HeartbeatPolicy`] says when a heartbeat is due and what it looks like;
//!   [`open_frame`], [`reset_frame`] and [`lagging_frame`] are the control frames (never with an id).
//! - Streams: [`Hub`] is one stream's hub (publish, subscribe, the offer rule, over a log that may
//!   stay in storage: [`LogSummary`]); [`Relay`] is one subscriber's side (first bytes, bounded
//!   outbox, heartbeats, maximum age); a [`HubMessage`] carries frames from one to the other.
//! - SQLMesh plans: [`PlanSession`] is the stage-tracker state machine behind `/api/plan`.
//! - Access: [`verify`] (bounded by [`VerifyOptions`] with [`verify_with`]) and [`mint`] handle HS256
//!   tokens and tickets ([`Claims`]); [`ConnectionId`] and [`TenantId`] name a hub ([`hub_name`]);
//!   [`parse_publish`] validates publish bodies, whose data nests at most [`JSON_DEPTH_MAX`] levels.
//!
//! # Encode
//!
//! ```
//! use herald_core::{EventId, EventName, Frame};
//!
//! let id = EventId::new("1700000000000-7").unwrap();
//! let name = EventName::new("plan-apply").unwrap();
//! let mut out = Vec::new();
//! Frame::new().id(&id).event(&name).data("line one\r\nline two").encode_into(&mut out);
//! assert_eq!(out, b"id: 1700000000000-7\nevent: plan-apply\ndata: line one\ndata: line two\n\n");
//! // Injection attempts are refused at the type level.
//! assert!(EventName::new("job\ndata: forged").is_err());
//! ```
//!
//! # Parse
//!
//! ```
//! use herald_core::Parser;
//!
//! let mut parser = Parser::new();
//! let mut events = Vec::new();
//! // Any chunking gives the same events: here a CRLF is split between two chunks.
//! for chunk in [&b"\xEF\xBB\xBFid: 7\r\nevent: job\r\ndata: a\r"[..], b"\ndata: b\r\n\r\n"] {
//!     parser.feed(chunk, |m| events.push((m.event_type.to_owned(), m.data.to_owned())));
//! }
//! parser.finish();
//! assert_eq!(events, [("job".to_owned(), "a\nb".to_owned())]);
//! assert_eq!(parser.last_event_id(), "7");
//! ```
//!
//! # Replay
//!
//! ```
//! use herald_core::{EventName, Frame, LogEntry, LogLimits, Replay, ReplayLog};
//!
//! let mut log = ReplayLog::new(1_700_000_000_000, LogLimits::default());
//! let name = EventName::new("step.output").unwrap();
//! for chunk in ["compiling", "testing"] {
//!     let position = log.next_position();
//!     let frame = Frame::new().id(&position.to_event_id()).event(&name).data(chunk).to_bytes();
//!     let _ = log.push(LogEntry { seq: position.seq, name: name.clone(), category: None, frame });
//! }
//! // A client that resumes with `Last-Event-ID: 1700000000000-1` gets the second event only.
//! let Replay::Frames(entries) = log.after("1700000000000-1") else { panic!("no gap here") };
//! assert_eq!(entries.map(|e| e.seq).collect::<Vec<_>>(), [2]);
//! // An id from another epoch (the log was lost) is a gap, never a silent empty answer.
//! assert!(matches!(log.after("1600000000000-1"), Replay::Gap { .. }));
//! ```

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

mod auth;
mod control;
pub mod durable;
mod encode;
mod filter;
mod heartbeat;
mod hub;
mod json;
mod log;
mod outbox;
mod parse;
mod plan;
mod publish;
mod relay;
mod resume;
mod wire;

pub use auth::{
    hub_name, mint, verify, verify_with, AuthError, Claims, ConnectionId, Forbidden,
    IdentifierError, Scope, Scopes, TenantId, TokenKind, VerifyOptions, TOKEN_BYTES_MAX,
};
pub use control::{lagging_frame, open_frame, reset_frame};
pub use encode::{EventId, EventName, Frame, IdError, NameError, KEEP_ALIVE};
pub use filter::{Filter, FilterError, FilterErrorKind, FilterParam, Vocabulary};
pub use heartbeat::{
    HeartbeatDue, HeartbeatPolicy, HeartbeatProfile, UnknownHeartbeat, DEFAULT_HEARTBEAT_MS,
};
pub use hub::{Batch, Hub, LogSummary, Refused, SubscriberRecord, Subscription};
pub use json::JSON_DEPTH_MAX;
pub use log::{
    Evicted, GapReason, LogEntry, LogLimits, Position, PositionError, Replay, ReplayLog,
    RestoreError,
};
pub use outbox::{Outbox, OutboxLimits, Pushed};
pub use parse::{Message, Parser};
pub use plan::{
    ApplyTracker, BodyError, CancelTracker, ChangeCategory, Opened, OverviewTracker, PlanCommand,
    PlanDate, PlanDates, PlanError, PlanOptions, PlanRequest, PlanSession, PlanState, PlanUpdate,
    Stage, StageMeta, StageState, Status, Tracker, TrackerBase, PLAN_APPLY, PLAN_CANCEL,
    PLAN_OVERVIEW,
};
pub use publish::{
    compact_json, parse_publish, publish_response_json, NewEvent, PublishError, PublishLimits,
    STREAM_COMPLETE,
};
pub use relay::{Relay, RelayPoll, RelaySettings};
pub use resume::Resume;
pub use wire::{HubMessage, WireError, WireFrame};

//! Herald's engine: every rule of Herald's Server-Sent Events hub, with no I/O, no async and no
//! clock.
//!
//! # Overview
//!
//! The root holds the types most users need; everything else lives in the module of its rule.
//!
//! - [`encode`]: [`Frame`] writes one event of a `text/event-stream`. Its id and event name are the
//!   validated [`EventId`] and [`EventName`], and data and comments are split on every line break,
//!   so a frame can never inject a field; [`KEEP_ALIVE`] is the idle-stream comment.
//! - [`parse`]: [`Parser`] is a push parser that follows the WHATWG "interpreting an event stream"
//!   algorithm to the letter and hands out each [`Message`], whatever the chunking of its input.
//! - [`log`]: [`Position`] is an event id `<epoch>-<seq>`; [`ReplayLog`] is the bounded log (by
//!   count and bytes) that answers "everything after id X" with frames or a [`log::Replay::Gap`].
//! - Fan-out: [`outbox`] is a subscriber's bounded queue; [`Filter`] ([`filter`]) selects events by
//!   `types=` and `categories=`; [`heartbeat`] says when a heartbeat is due and what it looks like;
//!   [`control`] makes the control frames (never with an id); [`resume`] reads a `Last-Event-ID`.
//! - Streams: [`Hub`] ([`hub`]) is one stream's hub (publish, subscribe, the offer rule, over a log
//!   that may stay in storage); [`Relay`] ([`relay`]) is one subscriber's side (first bytes,
//!   bounded outbox, heartbeats, maximum age); a [`HubMessage`] ([`wire`]) carries frames from one
//!   to the other.
//! - [`directory`]: what `GET /v1/streams` lists and when a hub reports to it.
//! - [`plan`]: the SQLMesh stage-tracker state machine behind `/api/plan`.
//! - Dialects: [`sluice`] checks sluice's ingest batches and turns them into sluice stream events,
//!   with fingerprints that recognise a retried event; [`dashtam`] names the Dashtam user a token
//!   names and Dashtam's category of an event type; [`resume::JoinPolicy`] is what a client without
//!   a `Last-Event-ID` gets, per family.
//! - Access: [`auth`] mints and verifies HS256 tokens and tickets ([`mint`], [`verify`],
//!   [`Claims`]); [`ConnectionId`] and [`TenantId`] name a hub ([`hub_name`]); [`cookie`] makes
//!   browser sessions and checks their origin.
//! - [`publish`]: [`parse_publish`] validates publish bodies, whose data nests at most
//!   [`json::JSON_DEPTH_MAX`] levels.
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
//! use herald_core::{EventName, Frame, ReplayLog};
//! use herald_core::log::{LogEntry, LogLimits, Replay};
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

pub mod auth;
pub mod control;
pub mod cookie;
pub mod dashtam;
pub mod directory;
pub mod durable;
pub mod encode;
pub mod filter;
pub mod heartbeat;
pub mod hub;
pub mod json;
pub mod log;
pub mod outbox;
pub mod parse;
pub mod plan;
pub mod publish;
pub mod relay;
pub mod resume;
pub mod sluice;
pub mod wire;

// The types most users need, at the root; everything else is in its module.
pub use auth::{hub_name, mint, verify, Claims, ConnectionId, Scope, Scopes, TenantId, TokenKind};
pub use encode::{EventId, EventName, Frame, KEEP_ALIVE};
pub use filter::{Filter, Vocabulary};
pub use hub::Hub;
pub use log::{Position, ReplayLog};
pub use parse::{Message, Parser};
pub use publish::{parse_publish, NewEvent, PublishLimits, STREAM_COMPLETE};
pub use relay::Relay;
pub use wire::HubMessage;

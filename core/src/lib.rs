//! Herald's engine: every rule of Herald's Server-Sent Events hub, with no I/O, no async and no clock.
//!
//! # Overview
//!
//! - Encoding: [`Frame`] writes one event of a `text/event-stream`. Its id and event name are the
//!   validated [`EventId`] and [`EventName`], and data and comments are split on every line break, so a
//!   frame can never inject a field; [`KEEP_ALIVE`] is the idle-stream comment.
//! - Parsing: [`Parser`] is a push parser that follows the WHATWG "interpreting an event stream"
//!   algorithm to the letter and hands out each [`Message`], whatever the chunking of its input.
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
//! (Example to come with the replay log.)

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

extern crate alloc;

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

pub use encode::{EventId, EventName, Frame, IdError, NameError, KEEP_ALIVE};
pub use parse::{Message, Parser};

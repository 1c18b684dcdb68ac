//! The subscriber side of a stream, sans I/O: what the Worker that holds one SSE response writes, and
//! when.
//!
//! The hub sends each subscriber's relay one [`HubMessage`] per batch over a WebSocket; the relay
//! holds the response. [`Relay`] owns the rules of that side:
//!
//! - the first bytes: the opening `retry:` frame is queued before the hub has answered anything;
//! - the bounded outbox ([`Outbox`]): a subscriber that cannot keep up gets a `lagging` frame naming
//!   the id to resume from, then its stream ends;
//! - the seam rule: a frame whose sequence number is at or before the last one queued is dropped;
//! - heartbeats ([`HeartbeatPolicy`]) after a silence, in the family's format;
//! - the end: after the complete stream's last frame, when the hub goes away, or at the stream's
//!   maximum age, always after a whole frame, so that the client resumes with `Last-Event-ID`.
//!
//! States: `Open` (accepting frames), then `Closing` (drains what is queued, accepts nothing), then
//! `Ended` ([`RelayPoll::End`]). `Open -> Closing` on a close from the hub, [`Relay::hub_gone`], the
//! maximum age, or an overflow; there is no way back.

use alloc::vec::Vec;

use crate::control::open_frame;
use crate::heartbeat::{HeartbeatDue, HeartbeatPolicy};
use crate::outbox::{Outbox, OutboxLimits, Pushed};
use crate::wire::{HubMessage, WireError};

/// The limits and settings of one relayed stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelaySettings {
    /// The subscriber's queue.
    pub outbox: OutboxLimits,
    /// The heartbeat format and interval.
    pub heartbeat: HeartbeatPolicy,
    /// The reconnection delay sent in the opening frame.
    pub retry_ms: u64,
    /// The longest a stream stays open; then it ends after a whole frame and the client resumes.
    pub max_age_ms: u64,
}

/// What the relay wants next, from [`Relay::poll`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayPoll {
    /// Write these bytes (whole frames) to the response.
    Write(Vec<u8>),
    /// Nothing to write; poll again at `until_ms` or when a message arrives.
    Wait {
        /// When the next heartbeat or the maximum age is due.
        until_ms: u64,
    },
    /// Everything is written: end the response and close the hub socket.
    End,
}

/// One subscriber's relay. See the module documentation.
#[derive(Debug, Clone)]
pub struct Relay {
    outbox: Outbox,
    heartbeat: HeartbeatPolicy,
    last_write_ms: u64,
    ends_at_ms: u64,
}

impl Relay {
    /// A relay opened at `now_ms`, with the opening frame queued.
    #[must_use]
    pub fn new(settings: RelaySettings, now_ms: u64) -> Relay {
        let mut outbox = Outbox::new(0, settings.outbox);
        let _ = outbox.push(open_frame(settings.retry_ms), None);
        Relay {
            outbox,
            heartbeat: settings.heartbeat,
            last_write_ms: now_ms,
            ends_at_ms: now_ms.saturating_add(settings.max_age_ms),
        }
    }

    /// Takes in one message from the hub, as received.
    ///
    /// A message that does not decode is an error and the relay starts closing: what it already
    /// queued is still written, and the client resumes from there.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        match HubMessage::decode(bytes) {
            Ok(message) => {
                self.deliver(message);
                Ok(())
            }
            Err(error) => {
                self.outbox.close_after_drain();
                Err(error)
            }
        }
    }

    /// Queues a message's frames. A logged frame at or before the last one queued was already sent
    /// (by the replay), so it is dropped: no duplicate across the replay/live seam.
    pub fn deliver(&mut self, message: HubMessage) {
        self.outbox.set_epoch(message.epoch);
        for frame in message.frames {
            if let (Some(seq), Some(last)) = (frame.seq, self.outbox.last_seq()) {
                if seq <= last {
                    continue;
                }
            }
            if self.outbox.push(frame.frame, frame.seq) == Pushed::Overflowed {
                // The outbox has queued its `lagging` frame and accepts no more: the stream drains
                // and ends, and the client resumes from the id the frame names.
                return;
            }
        }
        if message.close {
            self.outbox.close_after_drain();
        }
    }

    /// The hub closed its socket (it restarted, or the stream was disconnected): write what is
    /// queued, then end; the client resumes with `Last-Event-ID`.
    pub fn hub_gone(&mut self) {
        self.outbox.close_after_drain();
    }

    /// Whether the relay accepts no more frames (it is draining or has ended).
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.outbox.is_closing()
    }

    /// The sequence number of the last logged frame queued.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        self.outbox.last_seq()
    }

    /// Frame bytes waiting to be written.
    #[must_use]
    pub fn queued_bytes(&self) -> usize {
        self.outbox.bytes()
    }

    /// What to do at `now_ms`: write everything queued as one chunk, write a heartbeat, wait, or end.
    pub fn poll(&mut self, now_ms: u64) -> RelayPoll {
        if now_ms >= self.ends_at_ms {
            self.outbox.close_after_drain();
        }
        let mut chunk = Vec::with_capacity(self.outbox.bytes());
        while let Some(frame) = self.outbox.pop() {
            chunk.extend_from_slice(&frame);
        }
        if !chunk.is_empty() {
            self.last_write_ms = now_ms;
            return RelayPoll::Write(chunk);
        }
        if self.outbox.is_finished() {
            return RelayPoll::End;
        }
        match self.heartbeat.poll(now_ms, self.last_write_ms) {
            HeartbeatDue::Now { frame, .. } => {
                self.last_write_ms = now_ms;
                RelayPoll::Write(frame.to_vec())
            }
            HeartbeatDue::Later { at_ms } => RelayPoll::Wait {
                until_ms: at_ms.min(self.ends_at_ms),
            },
        }
    }
}

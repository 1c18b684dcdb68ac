//! The subscriber side of a stream, sans I/O: what the Worker that holds one SSE response writes,
//! and when.
//!
//! The hub sends each subscriber's relay one [`HubMessage`] per batch over a WebSocket; the relay
//! holds the response. [`Relay`] owns the rules of that side:
//!
//! - the first bytes: the opening `retry:` frame is queued before the hub has answered anything;
//! - the bounded outbox ([`Outbox`]): a subscriber that cannot keep up gets a `lagging` frame
//!   naming the id to resume from, then its stream ends;
//! - room granted per message ([`Relay::receive_within`]): a frame that would take the queue past
//!   the room its caller grants (a byte budget shared by many relays) closes the relay with a
//!   `lagging` frame too. A relay that was keeping up keeps the frames that fit, so that a replay
//!   larger than the room still makes progress; a relay that is behind (events of earlier messages
//!   still wait) frees its queue at once (what is not written is dropped, and `lagging` names the
//!   last id written), so that slow clients cannot keep the shared budget full;
//! - the drain bound ([`Relay::check_drain`]): frames queued and not taken by the writer within
//!   `drain_ms_max` are dropped, and the stream closes with a `lagging` frame naming the last id
//!   the writer did take, so a client that never reads holds neither memory nor the hub's socket;
//! - the seam rule: a frame whose sequence number is at or before the last one queued is dropped;
//! - heartbeats ([`HeartbeatPolicy`]) in the family's format: named heartbeat events (SQLMesh's
//!   `ping`, sluice's `heartbeat`) on a fixed clock, every interval however busy the stream is
//!   (they follow the frames of a write that falls due); comments after an interval of silence;
//! - the end: after the complete stream's last frame, when the hub goes away, or at the stream's
//!   maximum age, always after a whole frame, so that the client resumes with `Last-Event-ID`.
//!
//! States: `Open` (accepting frames), then `Closing` (drains what is queued, accepts nothing), then
//! `Ended` ([`RelayPoll::End`]). `Open -> Closing` on a close from the hub, [`Relay::hub_gone`],
//! the maximum age, an overflow, a frame past the granted room, or the drain bound; there is no way
//! back. A closing relay needs nothing more from the hub: its caller closes the hub's socket at
//! once.

use alloc::vec::Vec;

use bytes::Bytes;

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
    /// When the last heartbeat was written (or the stream opened): the fixed clock's origin.
    last_heartbeat_ms: u64,
    ends_at_ms: u64,
    drain_ms_max: u64,
    /// Since when frames have been waiting for the writer (`None` when it has taken them all).
    waiting_since_ms: Option<u64>,
    /// The latest time a caller passed in: what [`Relay::receive`] uses as the arrival time.
    clock_ms: u64,
}

impl Relay {
    /// The default drain bound: how long queued frames may wait for a writer that takes nothing.
    pub const DRAIN_MS_MAX_DEFAULT: u64 = 30_000;

    /// A relay opened at `now_ms`, with the opening frame queued and the default drain bound.
    #[must_use]
    pub fn new(settings: RelaySettings, now_ms: u64) -> Relay {
        let mut outbox = Outbox::new(0, settings.outbox);
        let _ = outbox.push(open_frame(settings.retry_ms), None);
        Relay {
            outbox,
            heartbeat: settings.heartbeat,
            last_write_ms: now_ms,
            last_heartbeat_ms: now_ms,
            ends_at_ms: now_ms.saturating_add(settings.max_age_ms),
            drain_ms_max: Self::DRAIN_MS_MAX_DEFAULT,
            waiting_since_ms: Some(now_ms),
            clock_ms: now_ms,
        }
    }

    /// The same relay with another drain bound (see [`Relay::check_drain`]).
    #[must_use]
    pub fn with_drain_ms_max(mut self, drain_ms_max: u64) -> Relay {
        self.drain_ms_max = drain_ms_max;
        self
    }

    /// Takes in one message from the hub, as received, with no room limit beyond the outbox's own
    /// and the latest time the relay was given as its arrival time. See
    /// [`Relay::receive_within`].
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        self.receive_within(bytes, self.clock_ms, usize::MAX)
    }

    /// Takes in one message from the hub, as received at `now_ms`, when the relay's queue may hold
    /// at most `room_bytes` (the caller's share of a budget; `usize::MAX` for none).
    ///
    /// The drain bound is checked first ([`Relay::check_drain`]). A message that does not decode is
    /// an error and the relay starts closing: what it already queued is still written, and the
    /// client resumes from there.
    pub fn receive_within(
        &mut self,
        bytes: &[u8],
        now_ms: u64,
        room_bytes: usize,
    ) -> Result<(), WireError> {
        self.receive_shared_within(Bytes::copy_from_slice(bytes), now_ms, room_bytes)
    }

    /// [`Relay::receive_within`] for a message the caller owns: its frames are queued without a
    /// copy.
    pub fn receive_shared_within(
        &mut self,
        bytes: Bytes,
        now_ms: u64,
        room_bytes: usize,
    ) -> Result<(), WireError> {
        self.check_drain(now_ms);
        match HubMessage::decode_shared(bytes) {
            Ok(message) => {
                self.deliver_within(message, now_ms, room_bytes);
                Ok(())
            }
            Err(error) => {
                self.outbox.close_after_drain();
                Err(error)
            }
        }
    }

    /// Queues a message's frames, with no room limit beyond the outbox's own. See
    /// [`Relay::deliver_within`].
    pub fn deliver(&mut self, message: HubMessage) {
        self.deliver_within(message, self.clock_ms, usize::MAX);
    }

    /// Queues a message's frames, arrived at `now_ms`. A logged frame at or before the last one
    /// queued was already sent (by the replay), so it is dropped: no duplicate across the
    /// replay/live seam.
    ///
    /// A frame that does not fit the outbox closes the relay with a `lagging` frame naming the last
    /// id queued, after what is queued. So does a frame that would take the queue past
    /// `room_bytes`, unless events of earlier messages still wait (the subscriber is behind):
    /// then everything not written is dropped and `lagging` names the last id written, since
    /// the room is the other relays' too and this one may not take it back soon.
    pub fn deliver_within(&mut self, message: HubMessage, now_ms: u64, room_bytes: usize) {
        self.clock_ms = self.clock_ms.max(now_ms);
        self.outbox.set_epoch(message.epoch);
        let behind = self.outbox.last_seq() != self.outbox.popped_seq();
        let mut queued = false;
        for frame in message.frames {
            if let (Some(seq), Some(last)) = (frame.seq, self.outbox.last_seq()) {
                if seq <= last {
                    continue;
                }
            }
            // The outbox holds nothing but accepted frames while it is open, so `bytes()` is what
            // this relay takes of the caller's budget.
            if frame.frame.len() > room_bytes.saturating_sub(self.outbox.bytes()) {
                if behind {
                    self.outbox.drop_unpopped();
                    self.waiting_since_ms = None;
                    return;
                }
                self.outbox.cut();
            }
            if self.outbox.push(frame.frame, frame.seq) == Pushed::Overflowed {
                // The outbox has queued its `lagging` frame and accepts no more: the stream drains
                // and ends, and the client resumes from the id the frame names.
                break;
            }
            queued = true;
        }
        if queued && self.waiting_since_ms.is_none() {
            self.waiting_since_ms = Some(now_ms);
        }
        if message.close {
            self.outbox.close_after_drain();
        }
    }

    /// Applies the drain bound at `now_ms`: if frames have waited `drain_ms_max` or more without
    /// the writer taking them (no [`Relay::poll`] wrote them), they are dropped and the relay
    /// closes with a `lagging` frame naming the last id the writer took. Call it when a message
    /// arrives (as [`Relay::receive_within`] does) and at [`Relay::drain_deadline_ms`], since a
    /// writer that takes nothing never polls.
    pub fn check_drain(&mut self, now_ms: u64) {
        self.clock_ms = self.clock_ms.max(now_ms);
        if let Some(since) = self.waiting_since_ms {
            if now_ms.saturating_sub(since) >= self.drain_ms_max {
                self.outbox.drop_unpopped();
                // Only the `lagging` frame is left; it waits for as long as the client does.
                self.waiting_since_ms = None;
            }
        }
    }

    /// When the frames waiting now break the drain bound if the writer takes none of them: `None`
    /// when nothing waits.
    #[must_use]
    pub fn drain_deadline_ms(&self) -> Option<u64> {
        self.waiting_since_ms
            .map(|since| since.saturating_add(self.drain_ms_max))
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

    /// What to do at `now_ms`: write everything queued as one chunk, write a heartbeat, wait, or
    /// end.
    pub fn poll(&mut self, now_ms: u64) -> RelayPoll {
        self.clock_ms = self.clock_ms.max(now_ms);
        if now_ms >= self.ends_at_ms {
            self.outbox.close_after_drain();
        }
        let mut chunk = Vec::with_capacity(self.outbox.bytes());
        while let Some(frame) = self.outbox.pop() {
            chunk.extend_from_slice(&frame);
        }
        let fixed_clock = self.heartbeat.profile.on_fixed_clock();
        if !chunk.is_empty() {
            self.last_write_ms = now_ms;
            self.waiting_since_ms = None;
            if fixed_clock {
                if let HeartbeatDue::Now { frame, .. } =
                    self.heartbeat.poll(now_ms, self.last_heartbeat_ms)
                {
                    chunk.extend_from_slice(&frame);
                    self.last_heartbeat_ms = now_ms;
                }
            }
            return RelayPoll::Write(chunk);
        }
        if self.outbox.is_finished() {
            return RelayPoll::End;
        }
        let since_ms = if fixed_clock {
            self.last_heartbeat_ms
        } else {
            self.last_write_ms
        };
        match self.heartbeat.poll(now_ms, since_ms) {
            HeartbeatDue::Now { frame, .. } => {
                self.last_write_ms = now_ms;
                self.last_heartbeat_ms = now_ms;
                RelayPoll::Write(frame.to_vec())
            }
            HeartbeatDue::Later { at_ms } => RelayPoll::Wait {
                until_ms: at_ms.min(self.ends_at_ms),
            },
        }
    }
}

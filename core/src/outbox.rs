//! A bounded per-subscriber queue with an in-band goodbye for slow consumers.
//!
//! SQLMesh gives every listener an unbounded queue, so one slow client grows memory without bound.
//! Here each subscriber gets at most `frames_max` frames and `bytes_max` bytes. The first frame
//! that does not fit is refused, nothing already queued is dropped (the client gets a gap-free
//! prefix), and one `lagging` control frame is queued last, naming the id to resume from; then the
//! stream closes. Memory is bounded by the limits plus that one control frame.
//!
//! A subscriber that does not take its frames at all is the caller's to notice (it has the clock):
//! [`Outbox::drop_unpopped`] then frees everything queued and names the last id actually popped.
//!
//! States: `Open` (accepting) and `Closing` (refusing; drains what is queued, then the caller
//! closes the stream). `Open -> Closing` on overflow, [`Outbox::cut`], [`Outbox::drop_unpopped`] or
//! [`Outbox::close_after_drain`]; there is no way back.

use alloc::collections::VecDeque;

use bytes::Bytes;

use crate::control::{lagging_frame, lagging_frame_without_resume};
use crate::log::{LogLimits, Position};

/// Limits of one subscriber's [`Outbox`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxLimits {
    /// Most frames queued (not counting the final `lagging` frame).
    pub frames_max: usize,
    /// Most frame bytes queued (not counting the final `lagging` frame).
    pub bytes_max: usize,
}

impl OutboxLimits {
    /// Frames a subscriber's queue holds beyond a full replay of the log: the control frames that
    /// go out before it (the opening `retry:` frame, a `reset`) and live events that arrive
    /// meanwhile.
    pub const HEADROOM_FRAMES: usize = 256;
    /// Bytes a subscriber's queue holds beyond a full replay of the log: 256 KiB, room for the
    /// opening frame and a `reset` whose snapshot carries the three plan trackers at the
    /// default event size (3 x 64 KiB), with live events besides.
    pub const HEADROOM_BYTES: usize = 256 * 1024;

    /// Limits that fit a full replay of a log with `log`'s limits plus the headroom above, so that
    /// a client resuming from the oldest id is not closed as `lagging` before it got anything
    /// live.
    ///
    /// ```
    /// use herald_core::log::LogLimits;
    /// use herald_core::outbox::OutboxLimits;
    /// let limits = OutboxLimits::for_log(LogLimits { events_max: 10, bytes_max: 4096 });
    /// assert_eq!(limits, OutboxLimits { frames_max: 10 + 256, bytes_max: 4096 + 256 * 1024 });
    /// ```
    #[must_use]
    pub const fn for_log(log: LogLimits) -> OutboxLimits {
        OutboxLimits {
            frames_max: log.events_max.saturating_add(Self::HEADROOM_FRAMES),
            bytes_max: log.bytes_max.saturating_add(Self::HEADROOM_BYTES),
        }
    }
}

impl Default for OutboxLimits {
    /// [`OutboxLimits::for_log`] of the default [`LogLimits`]: 1,256 frames and 1.25 MiB, so a full
    /// replay of a default log fits with the control frames before it.
    fn default() -> Self {
        OutboxLimits::for_log(LogLimits::default())
    }
}

/// The result of [`Outbox::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an overflowed outbox accepts nothing more"]
pub enum Pushed {
    /// The frame was queued.
    Queued,
    /// The frame was not queued: the outbox is closing (this push overflowed it, or it already
    /// was).
    Overflowed,
}

/// One subscriber's queue of frames waiting to be written.
#[derive(Debug, Clone)]
pub struct Outbox {
    epoch: u64,
    limits: OutboxLimits,
    /// Frames with their sequence numbers, so that the last one written is known.
    queue: VecDeque<(Bytes, Option<u64>)>,
    queued_bytes: usize,
    /// The `lagging` frame, sent after everything in `queue`; kept apart so it is outside the
    /// limits.
    farewell: Option<Bytes>,
    last_seq: Option<u64>,
    /// The sequence number of the last frame popped (handed to the writer) that had one.
    popped_seq: Option<u64>,
    closing: bool,
}

impl Outbox {
    /// An empty, open outbox for a subscriber of a log with this epoch.
    #[must_use]
    pub fn new(epoch: u64, limits: OutboxLimits) -> Self {
        Outbox {
            epoch,
            limits,
            queue: VecDeque::new(),
            queued_bytes: 0,
            farewell: None,
            last_seq: None,
            popped_seq: None,
            closing: false,
        }
    }

    /// Queues a frame; `seq` is its sequence number when it carries an `id:` (events), `None`
    /// otherwise (heartbeats, control frames).
    ///
    /// If the frame does not fit, the outbox starts closing: the frame is refused, and a `lagging`
    /// frame is queued after everything already accepted, with data
    /// `{"resume":"<epoch>-<last_seq>"}`, or `{}` when no frame with a sequence number was
    /// accepted yet (the client's own cursor is then still the right one to resume from).
    pub fn push(&mut self, frame: Bytes, seq: Option<u64>) -> Pushed {
        if self.closing {
            return Pushed::Overflowed;
        }
        // `queued_bytes <= bytes_max` always holds, so the subtraction cannot underflow.
        let fits = self.queue.len() < self.limits.frames_max
            && frame.len() <= self.limits.bytes_max - self.queued_bytes;
        if !fits {
            self.cut();
            return Pushed::Overflowed;
        }
        self.queued_bytes += frame.len();
        self.queue.push_back((frame, seq));
        if seq.is_some() {
            self.last_seq = seq;
        }
        Pushed::Queued
    }

    /// Closes the outbox as an overflow does, whatever room is left: everything accepted stays
    /// queued, then one `lagging` frame naming the last accepted id. For a caller with a bound
    /// of its own (a byte budget shared by many outboxes). An outbox that is already closing is
    /// left as it is.
    pub fn cut(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        self.farewell = Some(self.lagging(self.last_seq));
    }

    /// Drops every frame not yet popped and closes with a `lagging` frame naming the last id popped
    /// (`{}` if none was): for a subscriber that has not taken its frames in time. The client
    /// resumes from what it was actually given, so the dropped frames make no gap.
    pub fn drop_unpopped(&mut self) {
        self.queue.clear();
        self.queued_bytes = 0;
        self.last_seq = self.popped_seq;
        self.closing = true;
        self.farewell = Some(self.lagging(self.popped_seq));
    }

    fn lagging(&self, seq: Option<u64>) -> Bytes {
        match seq {
            Some(seq) => lagging_frame(Position {
                epoch: self.epoch,
                seq,
            }),
            None => lagging_frame_without_resume(),
        }
    }

    /// The next frame to write, oldest first; the `lagging` frame, if any, comes last.
    pub fn pop(&mut self) -> Option<Bytes> {
        match self.queue.pop_front() {
            Some((frame, seq)) => {
                self.queued_bytes -= frame.len();
                if seq.is_some() {
                    self.popped_seq = seq;
                }
                Some(frame)
            }
            None => self.farewell.take(),
        }
    }

    /// Sets the epoch a `lagging` frame names: a relay learns it from the hub's first message,
    /// after its outbox already holds the opening frame.
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    /// Stops accepting frames without a `lagging` frame: for a stream that just queued its terminal
    /// event.
    pub fn close_after_drain(&mut self) {
        self.closing = true;
    }

    /// Whether the outbox refuses new frames (after an overflow, [`Outbox::cut`],
    /// [`Outbox::drop_unpopped`] or [`Outbox::close_after_drain`]).
    #[must_use]
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// Whether the outbox is closing and everything has been popped: the caller closes the stream
    /// now.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.closing && self.is_empty()
    }

    /// The sequence number of the last accepted frame that had one.
    #[must_use]
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The sequence number of the last popped frame that had one: what the subscriber was given.
    #[must_use]
    pub fn popped_seq(&self) -> Option<u64> {
        self.popped_seq
    }

    /// Frames waiting, including the `lagging` frame.
    #[must_use]
    pub fn len(&self) -> usize {
        self.queue.len() + usize::from(self.farewell.is_some())
    }

    /// Whether nothing is waiting.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes waiting, including the `lagging` frame.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.queued_bytes + self.farewell.as_ref().map_or(0, Bytes::len)
    }

    /// The limits this outbox enforces.
    #[must_use]
    pub fn limits(&self) -> OutboxLimits {
        self.limits
    }
}

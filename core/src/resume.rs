//! What a new subscriber is sent before the live stream, decided from its `Last-Event-ID`, the replay
//! log and whether the stream is complete. The worker only carries the answer out.

use alloc::collections::vec_deque;

use crate::log::{GapReason, LogEntry, Position, Replay, ReplayLog};

/// The start of a new subscription.
#[derive(Debug)]
pub enum Resume<'a> {
    /// The stream is complete and the client has seen its end: answer `204 No Content`, which tells
    /// an EventSource to stop reconnecting.
    Finished,
    /// Send a `reset` control event first when `reset` is set (the client's id cannot be vouched for),
    /// then `entries`, then the live stream (or close, if the stream is complete).
    Replay {
        /// Why the client's id is not a valid cursor, and the oldest id the log still has.
        reset: Option<(GapReason, Option<Position>)>,
        /// The logged events to send, oldest first.
        entries: vec_deque::Iter<'a, LogEntry>,
    },
    /// A client with no id on a stream still running: the live stream only.
    Live,
}

impl ReplayLog {
    /// Decides how a subscription starts.
    ///
    /// - With an id the log can continue from: the entries after it (none when up to date; and when
    ///   the stream is complete and the client is up to date, [`Resume::Finished`]).
    /// - With an id the log cannot vouch for (evicted, another epoch, malformed, ahead): a reset naming
    ///   the reason and the oldest id, then everything the log has, so the client loses as little as
    ///   possible and knows that it lost something.
    /// - Without an id: live only, or the whole log when the stream is complete (a late client of a
    ///   finished job still gets its events).
    pub fn resume(&self, last_event_id: Option<&str>, complete: bool) -> Resume<'_> {
        match last_event_id.map(|id| self.after(id)) {
            Some(Replay::Frames(entries)) if complete && entries.len() == 0 => Resume::Finished,
            Some(Replay::Frames(entries)) => Resume::Replay {
                reset: None,
                entries,
            },
            Some(Replay::Gap { reason, oldest }) => Resume::Replay {
                reset: Some((reason, oldest)),
                entries: self.all(),
            },
            None if complete => Resume::Replay {
                reset: None,
                entries: self.all(),
            },
            None => Resume::Live,
        }
    }
}

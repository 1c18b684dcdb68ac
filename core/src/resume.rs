//! What a new subscriber is sent before the live stream, decided from its `Last-Event-ID`, the
//! replay log and whether the stream is complete. The worker only carries the answer out.

use alloc::collections::vec_deque;

use crate::log::{GapReason, LogEntry, Position, Replay, ReplayLog};

/// The start of a new subscription.
#[derive(Debug)]
pub enum Resume<'a> {
    /// The stream is complete and the client has seen its end: answer `204 No Content`, which
    /// tells an EventSource to stop reconnecting.
    Finished,
    /// Send a `reset` control event first when `reset` is set (the client's id cannot be vouched
    /// for), then `entries`, then the live stream (or close, if the stream is complete).
    Replay {
        /// Why the client's id is not a valid cursor, and the oldest id the log still has.
        reset: Option<(GapReason, Option<Position>)>,
        /// The logged events to send, oldest first.
        entries: vec_deque::Iter<'a, LogEntry>,
    },
    /// A client with no id on a stream still running: the live stream only.
    Live,
}

/// What a subscriber that connects without a `Last-Event-ID` gets on a stream that is still running
/// (a complete stream always gives such a client its whole log). Each stream family picks the one
/// its clients expect:
///
/// - [`JoinPolicy::Live`] for event feeds (generic, sluice, Dashtam): a dashboard or notification
///   client that opens a page wants what happens from now on; replaying old state changes to it
///   would show stale transitions as if they were new. (SQLMesh's stream is also `Live`, but its
///   fresh client gets the current plan trackers first, which hold the whole state.)
/// - [`JoinPolicy::FromOldest`] for runner jobs: a job's output is a log, and a viewer that joins a
///   running job (`curl -N`, a log page) must see the output so far before the live lines, as a CI
///   log viewer does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum JoinPolicy {
    /// The live stream only.
    #[default]
    Live,
    /// Everything the log still has, from its oldest retained event, then the live stream. When
    /// the log no longer holds the stream's first event, a `reset` naming the oldest retained
    /// id comes first, so the viewer knows the output's beginning is gone.
    FromOldest,
}

impl ReplayLog {
    /// Decides how a subscription starts, for a client without an id under [`JoinPolicy::Live`]
    /// (see [`ReplayLog::resume_joining`]).
    ///
    /// - With an id the log can continue from: the entries after it (none when up to date; and when
    ///   the stream is complete and the client is up to date, [`Resume::Finished`]).
    /// - With an id the log cannot vouch for (evicted, another epoch, malformed, ahead): a reset
    ///   naming the reason and the oldest id, then everything the log has, so the client loses as
    ///   little as possible and knows that it lost something.
    /// - Without an id: live only, or the whole log when the stream is complete (a late client of a
    ///   finished job still gets its events).
    pub fn resume(&self, last_event_id: Option<&str>, complete: bool) -> Resume<'_> {
        self.resume_joining(last_event_id, complete, JoinPolicy::Live)
    }

    /// Decides how a subscription starts, as [`ReplayLog::resume`] does, except that a client with
    /// no id on a running stream is served by `join`: live only, or the whole log (after a
    /// `reset` when the stream's first event is no longer in it) and then live.
    pub fn resume_joining(
        &self,
        last_event_id: Option<&str>,
        complete: bool,
        join: JoinPolicy,
    ) -> Resume<'_> {
        match last_event_id.map(|id| self.after(id)) {
            None if join == JoinPolicy::FromOldest => {
                let oldest = self.oldest_position();
                let lost_start = oldest.map_or(self.next_seq() > 1, |p| p.seq > 1);
                Resume::Replay {
                    reset: lost_start.then_some((GapReason::Evicted, oldest)),
                    entries: self.all(),
                }
            }
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

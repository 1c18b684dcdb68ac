//! The hub of one stream, sans I/O: what a publish does, how a subscription starts, and what each
//! subscriber is sent.
//!
//! The caller (the Hub Durable Object) owns storage, sockets and the clock; [`Hub`] owns every
//! rule:
//!
//! - **Publish** ([`Hub::prepare`], then [`Hub::commit`]): categories are checked against the
//!   vocabulary, a complete stream refuses more events, the batch is numbered and encoded once, and
//!   the log evicts its oldest entries to stay within its limits. `prepare` changes nothing, so the
//!   caller can refuse a batch with nothing written; `commit` returns what storage must delete.
//! - **Subscribe** ([`Hub::subscribe`]): `204` for a client that has seen the end of a complete
//!   stream; otherwise the frames the subscriber starts with (a `reset` naming what it missed, the
//!   replay, or a fresh SQLMesh client's tracker snapshot), and the [`SubscriberRecord`] the caller
//!   keeps with the subscriber's socket.
//! - **Offer** ([`SubscriberRecord::message_for`]): the frames of a batch one subscriber gets:
//!   those its filter matches with a sequence number after its cursor, so nothing is sent twice
//!   across the replay/live seam; and whether the stream ends after them.
//!
//! The log need not be in memory. A hub woken from hibernation knows only its [`LogSummary`]
//! (epoch, next sequence number, oldest retained, totals), which is enough to number a publish and
//! to start a live or up-to-date subscription. A replay asks for the log
//! ([`Subscription::NeedsLog`]); eviction without the log asks for the sizes of the oldest stored
//! entries, reading no more than it needs.
//!
//! Invariants (checked by the model test in `tests/hub_model.rs`):
//! - the summary always equals what the loaded log would report;
//! - a subscriber receives every matching event after its cursor exactly once and in order, or a
//!   `reset` naming the oldest event still retained when it subscribed.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::control::reset_frame;
use crate::dashtam::category_of_type;
use crate::log::{number_events, Evicted, LogEntry, LogLimits, Position, ReplayLog, RestoreError};
use crate::plan::PlanUpdate;
use crate::resume::{JoinPolicy, Resume};
use crate::wire::{HubMessage, WireFrame};
use crate::{Filter, Frame, NewEvent, Vocabulary};

/// What a hub knows of its log without reading it: enough to number events and to decide most
/// subscriptions. The caller stores it beside the log and reads it on wake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogSummary {
    /// The log's epoch.
    pub epoch: u64,
    /// The sequence number of the next event.
    pub next_seq: u64,
    /// The oldest retained sequence number (`next_seq` when nothing is retained).
    pub oldest_seq: u64,
    /// Retained events.
    pub events: usize,
    /// Retained frame bytes.
    pub bytes: usize,
}

impl LogSummary {
    /// The summary of a new, empty log.
    #[must_use]
    pub const fn new(epoch: u64) -> Self {
        LogSummary {
            epoch,
            next_seq: 1,
            oldest_seq: 1,
            events: 0,
            bytes: 0,
        }
    }

    /// The summary of `log`.
    #[must_use]
    pub fn of(log: &ReplayLog) -> Self {
        LogSummary {
            epoch: log.epoch(),
            next_seq: log.next_seq(),
            oldest_seq: log.oldest_position().map_or(log.next_seq(), |p| p.seq),
            events: log.len(),
            bytes: log.bytes(),
        }
    }

    /// The newest position written, if any event ever was.
    #[must_use]
    pub fn last_position(&self) -> Option<Position> {
        (self.next_seq > 1).then(|| Position {
            epoch: self.epoch,
            seq: self.next_seq - 1,
        })
    }

    /// The oldest retained position, if any.
    #[must_use]
    pub fn oldest_position(&self) -> Option<Position> {
        (self.events > 0).then_some(Position {
            epoch: self.epoch,
            seq: self.oldest_seq,
        })
    }
}

/// A numbered, encoded batch that [`Hub::prepare`] accepted, ready to store and fan out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The entries, numbered from the hub's next sequence number on, frames encoded with their
    /// ids.
    pub entries: Vec<LogEntry>,
    /// Whether the batch ends with `stream.complete`: the stream takes no more events.
    pub completes: bool,
}

impl Batch {
    /// The event ids, in order, as a publish response names them.
    #[must_use]
    pub fn ids(&self, epoch: u64) -> Vec<String> {
        self.entries
            .iter()
            .map(|entry| {
                alloc::string::ToString::to_string(&Position {
                    epoch,
                    seq: entry.seq,
                })
            })
            .collect()
    }
}

/// Why a hub refuses a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// An event has a category the vocabulary does not know (400).
    UnknownCategory {
        /// The category, as sent.
        category: String,
    },
    /// The stream is complete and takes no more events (409).
    Complete,
    /// `stream.complete` is not the batch's last event: what follows it would reach a complete
    /// stream (400).
    EventsAfterComplete {
        /// The index of `stream.complete` in the batch.
        index: usize,
    },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::UnknownCategory { category } => write!(f, "unknown category {category:?}"),
            Refused::Complete => f.write_str("the stream is complete; it takes no more events"),
            Refused::EventsAfterComplete { index } => write!(
                f,
                "event {index} is stream.complete, so it must be the batch's last event"
            ),
        }
    }
}

impl core::error::Error for Refused {}

/// What rides with a subscriber's socket (and survives the hub's hibernation): its filter and the
/// last sequence number it was given or never wants (everything before it subscribed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriberRecord {
    /// Which events the subscriber wants.
    pub filter: Filter,
    /// Events with this sequence number or lower are never sent to it again.
    pub cursor_seq: u64,
}

impl SubscriberRecord {
    /// The message a published `batch` makes for this subscriber, or `None` when it has nothing to
    /// say (no frame matches and the stream goes on).
    ///
    /// The offer rule: a frame goes out when the filter matches its event and its sequence number
    /// is after the cursor (a replay already sent everything up to the cursor).
    #[must_use]
    pub fn message_for(&self, epoch: u64, batch: &Batch) -> Option<HubMessage> {
        let frames: Vec<WireFrame> = batch
            .entries
            .iter()
            .filter(|entry| entry.seq > self.cursor_seq)
            .filter(|entry| {
                self.filter
                    .matches(entry.name.as_str(), entry.category.as_deref())
            })
            .map(|entry| WireFrame {
                seq: Some(entry.seq),
                frame: entry.frame.clone(),
            })
            .collect();
        let message = HubMessage {
            epoch,
            frames,
            close: batch.completes,
        };
        (!message.is_empty()).then_some(message)
    }
}

/// How a subscription starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subscription {
    /// The stream is complete and the client has seen its end: `204 No Content`, which tells an
    /// EventSource to stop reconnecting.
    Finished,
    /// The answer needs the log's entries: load them ([`Hub::load_log`]) and ask again.
    NeedsLog,
    /// Accept the subscriber: send `message` first, keep `record` with its socket.
    Accept {
        /// The first frames (reset, replay or snapshot), possibly none; `close` when the stream is
        /// complete (the subscriber gets the log, then the stream ends).
        message: HubMessage,
        /// The subscriber's filter and cursor.
        record: SubscriberRecord,
    },
}

/// [`ReplayLog::resume_joining`], named short so that [`Hub::subscribe_joining`]'s match stays
/// flat.
fn resume<'a>(
    log: &'a ReplayLog,
    last_event_id: Option<&str>,
    complete: bool,
    join: JoinPolicy,
) -> Resume<'a> {
    log.resume_joining(last_event_id, complete, join)
}

/// The log as far as the hub has read it.
#[derive(Debug, Clone)]
enum HubLog {
    /// Only the summary: the entries stay in storage. `sizes` is `(seq, frame bytes)` of every
    /// retained entry, oldest first, once an eviction needed it (read once, then kept up to date).
    Summary {
        summary: LogSummary,
        sizes: Option<VecDeque<(u64, usize)>>,
    },
    /// Every retained entry in memory.
    Loaded(ReplayLog),
}

/// The rules of one stream's hub. See the module documentation.
#[derive(Debug, Clone)]
pub struct Hub {
    log: HubLog,
    limits: LogLimits,
    complete: bool,
}

impl Hub {
    /// A hub that knows only its log's summary (as on wake).
    #[must_use]
    pub fn from_summary(summary: LogSummary, limits: LogLimits, complete: bool) -> Hub {
        Hub {
            log: HubLog::Summary {
                summary,
                sizes: None,
            },
            limits,
            complete,
        }
    }

    /// A hub with its whole log in memory.
    #[must_use]
    pub fn from_log(log: ReplayLog, complete: bool) -> Hub {
        Hub {
            limits: log.limits(),
            log: HubLog::Loaded(log),
            complete,
        }
    }

    /// Reads the retained entries (oldest first) into memory. Entries that no longer fit the limits
    /// (the limits shrank) are evicted and reported, as [`ReplayLog::restore`] does.
    pub fn load_log(
        &mut self,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> Result<Evicted, RestoreError> {
        let summary = self.summary();
        let (log, evicted) =
            ReplayLog::restore(summary.epoch, summary.next_seq, self.limits, entries)?;
        self.log = HubLog::Loaded(log);
        Ok(evicted)
    }

    /// Whether the log's entries are in memory.
    #[must_use]
    pub fn is_log_loaded(&self) -> bool {
        matches!(self.log, HubLog::Loaded(_))
    }

    /// The log in memory, if it is loaded.
    #[must_use]
    pub fn log(&self) -> Option<&ReplayLog> {
        match &self.log {
            HubLog::Loaded(log) => Some(log),
            HubLog::Summary { .. } => None,
        }
    }

    /// What the log holds, whether or not it is loaded.
    #[must_use]
    pub fn summary(&self) -> LogSummary {
        match &self.log {
            HubLog::Summary { summary, .. } => *summary,
            HubLog::Loaded(log) => LogSummary::of(log),
        }
    }

    /// The epoch every id of this hub carries.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.summary().epoch
    }

    /// Whether the stream is complete.
    #[must_use]
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// Checks and numbers a batch. The hub does not change: [`Hub::commit`] takes the batch in once
    /// the caller has decided to store it.
    ///
    /// An event published without a category gets the one Dashtam derives from its type
    /// ([`crate::dashtam::category_of_type`]: `sync.*` is `data_sync`, `ai.*` is `ai`, ...) when
    /// the vocabulary knows that category, so that `?categories=` subscribers see it.
    pub fn prepare(
        &self,
        mut events: Vec<NewEvent>,
        vocabulary: &Vocabulary<'_>,
    ) -> Result<Batch, Refused> {
        if let Some(category) = events
            .iter()
            .filter_map(|event| event.category.as_deref())
            .find(|category| !vocabulary.knows_category(category))
        {
            return Err(Refused::UnknownCategory {
                category: category.into(),
            });
        }
        // `stream.complete` ends the batch too: an event after it would reach a complete stream.
        let complete_at = events.iter().position(NewEvent::completes_stream);
        if let Some(index) = complete_at.filter(|at| at + 1 < events.len()) {
            return Err(Refused::EventsAfterComplete { index });
        }
        if self.complete {
            return Err(Refused::Complete);
        }
        let completes = complete_at.is_some();
        for event in events.iter_mut().filter(|event| event.category.is_none()) {
            event.category = category_of_type(event.name.as_str())
                .filter(|category| vocabulary.knows_category(category))
                .map(String::from);
        }
        let summary = self.summary();
        let first = Position {
            epoch: summary.epoch,
            seq: summary.next_seq,
        };
        let entries = number_events(first, events);
        Ok(Batch { entries, completes })
    }

    /// Whether [`Hub::commit`] of `batch` will read the sizes of the stored entries: the log is not
    /// loaded, the batch pushes it over a limit, and no earlier eviction of this hub read them.
    #[must_use]
    pub fn commit_reads_storage(&self, batch: &Batch) -> bool {
        let HubLog::Summary {
            summary,
            sizes: None,
        } = &self.log
        else {
            return false;
        };
        let added_bytes: usize = batch.entries.iter().map(|e| e.frame.len()).sum();
        summary.events + batch.entries.len() > self.limits.events_max
            || summary.bytes + added_bytes > self.limits.bytes_max
    }

    /// Takes a prepared batch in and says which stored entries to delete.
    ///
    /// `stored_oldest` yields `(seq, frame bytes)` of the stored entries from the oldest on; it is
    /// read only when [`Hub::commit_reads_storage`] says so (the first eviction of a hub whose log
    /// is not loaded), in full; the hub then keeps the sizes and never reads them again.
    ///
    /// # Panics
    ///
    /// If `batch` was not prepared by this hub in its current state (its first sequence number is
    /// not the hub's next one): a caller bug that would break contiguous ids.
    pub fn commit(
        &mut self,
        batch: &Batch,
        stored_oldest: impl IntoIterator<Item = (u64, usize)>,
    ) -> Evicted {
        self.complete |= batch.completes;
        match &mut self.log {
            HubLog::Loaded(log) => {
                let mut evicted = Evicted { through_seq: None };
                for entry in batch.entries.iter().cloned() {
                    evicted.through_seq = log.push(entry).through_seq.or(evicted.through_seq);
                }
                evicted
            }
            HubLog::Summary { summary, sizes } => {
                let before = *summary;
                if let Some(first) = batch.entries.first() {
                    assert_eq!(first.seq, before.next_seq, "batch from another hub state");
                }
                let limits = self.limits;
                summary.next_seq += batch.entries.len() as u64;
                summary.events += batch.entries.len();
                summary.bytes += batch.entries.iter().map(|e| e.frame.len()).sum::<usize>();
                let over =
                    |s: &LogSummary| s.events > limits.events_max || s.bytes > limits.bytes_max;
                if sizes.is_none() && over(summary) {
                    // The first eviction of this hub reads every stored entry's size, once.
                    *sizes = Some(
                        stored_oldest
                            .into_iter()
                            .take_while(|(seq, _)| *seq < before.next_seq)
                            .take(before.events)
                            .collect(),
                    );
                }
                let mut through_seq = None;
                if let Some(sizes) = sizes {
                    sizes.extend(batch.entries.iter().map(|e| (e.seq, e.frame.len())));
                    // The oldest entries go first: the stored ones, then the batch's own.
                    while over(summary) {
                        let Some((seq, bytes)) = sizes.pop_front() else {
                            break;
                        };
                        summary.events -= 1;
                        summary.bytes = summary.bytes.saturating_sub(bytes);
                        through_seq = Some(seq);
                    }
                }
                summary.oldest_seq = match through_seq {
                    Some(seq) => seq + 1,
                    None if before.events == 0 => before.next_seq,
                    None => before.oldest_seq,
                };
                if summary.events == 0 {
                    summary.oldest_seq = summary.next_seq;
                }
                Evicted { through_seq }
            }
        }
    }

    /// Decides how a subscription starts.
    ///
    /// - Without an id on a running stream: live from now, and a fresh SQLMesh client gets the
    ///   current trackers (`snapshot`), filtered like events.
    /// - With the id of the newest event: nothing to replay (on a complete stream,
    ///   [`Subscription::Finished`]).
    /// - Anything else needs the log ([`Subscription::NeedsLog`] until it is loaded): the entries
    ///   after the id, or a `reset` naming why and the oldest id (with the trackers as its
    ///   snapshot), then everything retained; a late client of a complete stream gets the whole
    ///   log.
    #[must_use]
    pub fn subscribe(
        &self,
        filter: Filter,
        last_event_id: Option<&str>,
        snapshot: Option<&PlanUpdate>,
    ) -> Subscription {
        self.subscribe_joining(filter, last_event_id, snapshot, JoinPolicy::Live)
    }

    /// Decides how a subscription starts, as [`Hub::subscribe`] does, except that a client without
    /// an id on a running stream is served by `join` ([`JoinPolicy::FromOldest`]: the retained
    /// log, then live).
    #[must_use]
    pub fn subscribe_joining(
        &self,
        filter: Filter,
        last_event_id: Option<&str>,
        snapshot: Option<&PlanUpdate>,
        join: JoinPolicy,
    ) -> Subscription {
        let summary = self.summary();
        let joins_from_oldest =
            last_event_id.is_none() && join == JoinPolicy::FromOldest && summary.next_seq > 1;
        let record = SubscriberRecord {
            filter,
            cursor_seq: summary.next_seq - 1,
        };
        let mut message = HubMessage {
            epoch: summary.epoch,
            frames: Vec::new(),
            close: self.complete,
        };
        let up_to_date = last_event_id
            .and_then(|id| Position::parse(id).ok())
            .is_some_and(|p| Some(p) == summary.last_position());
        match (last_event_id, &self.log) {
            (Some(_), _) if up_to_date && self.complete => return Subscription::Finished,
            (Some(_), _) if up_to_date => {}
            (None, _) if !self.complete && !joins_from_oldest => {
                for (name, json) in snapshot.iter().flat_map(|s| s.events()) {
                    if record.filter.matches(name.as_str(), None) {
                        message.frames.push(WireFrame {
                            seq: None,
                            frame: Frame::new().event(name).data(json).to_bytes(),
                        });
                    }
                }
            }
            (_, HubLog::Summary { .. }) => return Subscription::NeedsLog,
            (_, HubLog::Loaded(log)) => match resume(log, last_event_id, self.complete, join) {
                Resume::Finished => return Subscription::Finished,
                Resume::Live => {}
                Resume::Replay { reset, entries } => {
                    if let Some((reason, oldest)) = reset {
                        let snapshot = snapshot.map(PlanUpdate::to_json_object);
                        message.frames.push(WireFrame {
                            seq: None,
                            frame: reset_frame(reason, oldest, snapshot.as_deref()),
                        });
                    }
                    message.frames.extend(
                        entries
                            .filter(|e| {
                                record
                                    .filter
                                    .matches(e.name.as_str(), e.category.as_deref())
                            })
                            .map(|e| WireFrame {
                                seq: Some(e.seq),
                                frame: e.frame.clone(),
                            }),
                    );
                }
            },
        }
        Subscription::Accept { message, record }
    }
}

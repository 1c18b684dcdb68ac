//! Event positions and the bounded replay log that answers `Last-Event-ID`.
//!
//! Invariants of [`ReplayLog`] (checked by the property test against a plain `Vec` in
//! `tests/log.rs`):
//! - the retained entries have contiguous sequence numbers ending at `next_seq - 1`, oldest at the
//!   front;
//! - `len() <= events_max` and `bytes() <= bytes_max` after every `push` (so an entry larger than
//!   `bytes_max` is evicted by its own push, leaving the log empty but `next_seq` advanced);
//! - what is retained is exactly the longest suffix of everything ever pushed that fits both
//!   limits.

use alloc::collections::vec_deque::{self, VecDeque};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use bytes::Bytes;

use crate::{EventId, EventName, Frame, NewEvent};

/// Where an event sits in a hub's history: the log's epoch and the event's sequence number.
///
/// The text form, sent as the SSE `id:`, is `<epoch>-<seq>` in decimal (at most 41 bytes of digits
/// and `-`, so always a CORS-safe id). Sequence numbers start at 1; `<epoch>-0` means "before the
/// first event".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// The epoch of the log, chosen by the caller when the log is created (the worker uses
    /// creation ms).
    pub epoch: u64,
    /// The sequence number within the epoch.
    pub seq: u64,
}

impl Position {
    /// Parses `<epoch>-<seq>` strictly: two decimal `u64`s, no sign, no spaces, no leading zeros
    /// (except `0` itself), separated by exactly one `-`.
    ///
    /// Strictness keeps the text form canonical: one position has exactly one id, so an id that
    /// does not round-trip was not minted here and is reported as [`GapReason::Malformed`].
    pub fn parse(text: &str) -> Result<Position, PositionError> {
        if text.is_empty() {
            return Err(PositionError::Empty);
        }
        let (epoch, seq) = text
            .split_once('-')
            .ok_or(PositionError::MissingSeparator)?;
        Ok(Position {
            epoch: parse_decimal(epoch)?,
            seq: parse_decimal(seq)?,
        })
    }

    /// The position as an SSE event id.
    #[must_use]
    pub fn to_event_id(&self) -> EventId {
        // Digits and '-' are CORS-safe and at most 41 bytes long, so validation cannot fail.
        EventId::new(&self.to_string()).expect("a position is always a valid event id")
    }
}

fn parse_decimal(digits: &str) -> Result<u64, PositionError> {
    let bytes = digits.as_bytes();
    match bytes {
        [] => return Err(PositionError::EmptyNumber),
        [b'0', _, ..] => return Err(PositionError::LeadingZero),
        _ => {}
    }
    let mut value: u64 = 0;
    for &byte in bytes {
        if !byte.is_ascii_digit() {
            return Err(PositionError::InvalidByte(byte));
        }
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(byte - b'0')))
            .ok_or(PositionError::Overflow)?;
    }
    Ok(value)
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.epoch, self.seq)
    }
}

/// Why a text is not a [`Position`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionError {
    /// The text is empty.
    Empty,
    /// There is no `-` between epoch and sequence number.
    MissingSeparator,
    /// The epoch or the sequence number has no digits.
    EmptyNumber,
    /// A number has a leading zero (only `0` itself may start with `0`).
    LeadingZero,
    /// A byte that is not an ASCII digit (this includes a sign, a space or a second `-`).
    InvalidByte(u8),
    /// A number does not fit in a `u64`.
    Overflow,
}

impl fmt::Display for PositionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PositionError::Empty => f.write_str("empty position"),
            PositionError::MissingSeparator => {
                f.write_str("position has no '-' between epoch and sequence")
            }
            PositionError::EmptyNumber => f.write_str("position has an empty number"),
            PositionError::LeadingZero => f.write_str("position number has a leading zero"),
            PositionError::InvalidByte(byte) => {
                write!(f, "position has a non-digit byte 0x{byte:02x}")
            }
            PositionError::Overflow => f.write_str("position number does not fit in 64 bits"),
        }
    }
}

impl core::error::Error for PositionError {}

/// The two limits of a [`ReplayLog`]; the oldest entries are evicted to respect both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimits {
    /// Most entries retained.
    pub events_max: usize,
    /// Most frame bytes retained (the sum of `LogEntry::frame` lengths).
    pub bytes_max: usize,
}

impl Default for LogLimits {
    /// 1000 events and 1 MiB: the same horizon as Dashtam's `MAXLEN ~1000`, small enough for DO
    /// storage.
    fn default() -> Self {
        LogLimits {
            events_max: 1000,
            bytes_max: 1024 * 1024,
        }
    }
}

/// One event in the replay log, with its frame already encoded (encode once, fan out by reference
/// count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Sequence number; must equal the log's `next_seq` when pushed.
    pub seq: u64,
    /// Event name, kept for filtering replays.
    pub name: EventName,
    /// Category, kept for filtering replays.
    pub category: Option<String>,
    /// The encoded SSE frame, including its `id:` line.
    pub frame: Bytes,
}

/// What a [`ReplayLog::push`] evicted: every entry with `seq <= through_seq`, which the caller
/// deletes from storage. `None` when nothing was evicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "evicted entries must also be deleted from storage"]
pub struct Evicted {
    /// The highest evicted sequence number, if any.
    pub through_seq: Option<u64>,
}

/// The answer to "what comes after this `Last-Event-ID`?".
#[derive(Debug, Clone)]
pub enum Replay<'a> {
    /// Every retained entry after the id, oldest first. Empty when the client is up to date.
    Frames(vec_deque::Iter<'a, LogEntry>),
    /// The log cannot prove continuity from the id; the client needs a reset.
    Gap {
        /// Why.
        reason: GapReason,
        /// The oldest retained position (`None` when the log is empty).
        oldest: Option<Position>,
    },
}

/// Why a `Last-Event-ID` cannot be resumed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// Events after the id were already evicted.
    Evicted,
    /// The id is from another epoch (the log was recreated).
    OtherEpoch,
    /// The id is not a position this hub mints.
    Malformed,
    /// The id is newer than anything this log has written.
    Ahead,
}

impl GapReason {
    /// The wire tag used in the `reset` control frame: `evicted`, `other_epoch`, `malformed` or
    /// `ahead`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            GapReason::Evicted => "evicted",
            GapReason::OtherEpoch => "other_epoch",
            GapReason::Malformed => "malformed",
            GapReason::Ahead => "ahead",
        }
    }
}

impl fmt::Display for GapReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GapReason::Evicted => "events after the last event id were evicted",
            GapReason::OtherEpoch => "the last event id is from another epoch",
            GapReason::Malformed => "the last event id is malformed",
            GapReason::Ahead => "the last event id is ahead of the log",
        })
    }
}

/// Why stored entries cannot be restored into a [`ReplayLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreError {
    /// `next_seq` is 0; sequence numbers start at 1.
    NextSeqZero,
    /// An entry has sequence number 0.
    SeqZero,
    /// Entries are not contiguous and ascending.
    NotContiguous {
        /// The sequence number the entry should have had.
        expected: u64,
        /// The sequence number it had.
        found: u64,
    },
    /// The newest entry is not `next_seq - 1` (or an entry is at or past `next_seq`).
    NotAtEnd {
        /// The newest entry's sequence number.
        last_seq: u64,
        /// The stored `next_seq`.
        next_seq: u64,
    },
}

impl fmt::Display for RestoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreError::NextSeqZero => f.write_str("next sequence number is 0"),
            RestoreError::SeqZero => f.write_str("stored entry has sequence number 0"),
            RestoreError::NotContiguous { expected, found } => {
                write!(
                    f,
                    "stored entries are not contiguous: expected seq {expected}, found {found}"
                )
            }
            RestoreError::NotAtEnd { last_seq, next_seq } => {
                write!(
                    f,
                    "newest stored entry has seq {last_seq} but next seq is {next_seq}"
                )
            }
        }
    }
}

impl core::error::Error for RestoreError {}

/// A bounded ring buffer of encoded events that answers `Last-Event-ID` with the frames after it,
/// or with a [`Replay::Gap`] — never with a silent empty answer for an id it cannot vouch for.
///
/// # Example
///
/// ```
/// use herald_core::{EventName, Frame, Position, ReplayLog};
/// use herald_core::log::{GapReason, LogEntry, LogLimits, Replay};
///
/// let epoch = 1_700_000_000_000;
/// let mut log = ReplayLog::new(epoch, LogLimits { events_max: 2, bytes_max: 1024 });
/// let name = EventName::new("job:state_change").unwrap();
/// for data in ["queued", "active", "completed"] {
///     let position = log.next_position();
///     let id = position.to_event_id();
///     let frame = Frame::new().id(&id).event(&name).data(data).to_bytes();
///     let entry = LogEntry { seq: position.seq, name: name.clone(), category: None, frame };
///     // The third push evicts the first entry; the caller deletes that row from storage.
///     let evicted = log.push(entry);
///     assert_eq!(evicted.through_seq, if position.seq == 3 { Some(1) } else { None });
/// }
///
/// // A client that saw event 2 gets event 3.
/// match log.after(&Position { epoch, seq: 2 }.to_string()) {
///     Replay::Frames(entries) => {
///         let frames: Vec<_> = entries.map(|entry| entry.frame.clone()).collect();
///         assert_eq!(frames.len(), 1);
///         assert!(frames[0].starts_with(b"id: 1700000000000-3\n"));
///     }
///     Replay::Gap { .. } => unreachable!(),
/// }
///
/// // A client that saw only event 0 missed event 1, which is gone: that is a gap, not an empty answer.
/// match log.after("1700000000000-0") {
///     Replay::Gap { reason, oldest } => {
///         assert_eq!(reason, GapReason::Evicted);
///         assert_eq!(oldest, Some(Position { epoch, seq: 2 }));
///     }
///     Replay::Frames(_) => unreachable!(),
/// }
/// ```
#[derive(Debug, Clone)]
pub struct ReplayLog {
    epoch: u64,
    next_seq: u64,
    limits: LogLimits,
    entries: VecDeque<LogEntry>,
    bytes: usize,
}

impl ReplayLog {
    /// An empty log whose first event will be `<epoch>-1`.
    #[must_use]
    pub fn new(epoch: u64, limits: LogLimits) -> Self {
        ReplayLog {
            epoch,
            next_seq: 1,
            limits,
            entries: VecDeque::new(),
            bytes: 0,
        }
    }

    /// Rebuilds a log from storage: its epoch, its next sequence number and the stored entries,
    /// oldest first.
    ///
    /// Entries must be contiguous and end at `next_seq - 1` (or be absent). If `limits` are smaller
    /// than when the entries were written, the oldest are evicted and reported like
    /// [`ReplayLog::push`] does.
    pub fn restore(
        epoch: u64,
        next_seq: u64,
        limits: LogLimits,
        entries: impl IntoIterator<Item = LogEntry>,
    ) -> Result<(ReplayLog, Evicted), RestoreError> {
        if next_seq == 0 {
            return Err(RestoreError::NextSeqZero);
        }
        let mut log = ReplayLog {
            epoch,
            next_seq,
            limits,
            entries: VecDeque::new(),
            bytes: 0,
        };
        for entry in entries {
            if entry.seq == 0 {
                return Err(RestoreError::SeqZero);
            }
            if let Some(last) = log.entries.back() {
                let expected = last.seq.saturating_add(1);
                if entry.seq != expected {
                    return Err(RestoreError::NotContiguous {
                        expected,
                        found: entry.seq,
                    });
                }
            }
            log.bytes += entry.frame.len();
            log.entries.push_back(entry);
        }
        if let Some(last) = log.entries.back() {
            if last.seq.checked_add(1) != Some(next_seq) {
                return Err(RestoreError::NotAtEnd {
                    last_seq: last.seq,
                    next_seq,
                });
            }
        }
        let evicted = log.evict_to_limits();
        Ok((log, evicted))
    }

    /// The epoch every position of this log carries.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The sequence number the next pushed entry must have.
    #[must_use]
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The position the next pushed entry will have.
    #[must_use]
    pub fn next_position(&self) -> Position {
        Position {
            epoch: self.epoch,
            seq: self.next_seq,
        }
    }

    /// Numbers a batch from [`ReplayLog::next_position`] on and encodes each event's frame once,
    /// with its `id:`, ready to [`ReplayLog::push`] in order. The log does not change: the
    /// caller decides when the batch is in (after storage has it).
    #[must_use]
    pub fn number(&self, events: Vec<NewEvent>) -> Vec<LogEntry> {
        number_events(self.next_position(), events)
    }

    /// The newest retained position.
    #[must_use]
    pub fn last_position(&self) -> Option<Position> {
        self.entries.back().map(|entry| Position {
            epoch: self.epoch,
            seq: entry.seq,
        })
    }

    /// The oldest retained position.
    #[must_use]
    pub fn oldest_position(&self) -> Option<Position> {
        self.entries.front().map(|entry| Position {
            epoch: self.epoch,
            seq: entry.seq,
        })
    }

    /// Number of retained entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is retained (possibly because everything was evicted).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Retained frame bytes.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The limits this log enforces.
    #[must_use]
    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    /// Appends an entry, then evicts the oldest entries until both limits hold.
    ///
    /// # Panics
    ///
    /// If `entry.seq` is not [`ReplayLog::next_seq`] (a caller bug: ids would stop being
    /// contiguous), or if the sequence space is exhausted.
    pub fn push(&mut self, entry: LogEntry) -> Evicted {
        assert_eq!(
            entry.seq, self.next_seq,
            "log entries must be pushed with seq == next_seq"
        );
        self.next_seq = entry
            .seq
            .checked_add(1)
            .expect("sequence numbers exhausted");
        self.bytes += entry.frame.len();
        self.entries.push_back(entry);
        self.evict_to_limits()
    }

    fn evict_to_limits(&mut self) -> Evicted {
        let mut through_seq = None;
        while self.entries.len() > self.limits.events_max || self.bytes > self.limits.bytes_max {
            let Some(oldest) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= oldest.frame.len();
            through_seq = Some(oldest.seq);
        }
        Evicted { through_seq }
    }

    /// The entries after `last_event_id`, or why they cannot be given.
    ///
    /// With retained entries `oldest..=last` (for an empty log, think `oldest = next_seq`,
    /// `last = next_seq - 1`):
    /// - an id that does not parse as a [`Position`] (including the empty string) is a
    ///   [`GapReason::Malformed`] gap; a position of another epoch is [`GapReason::OtherEpoch`];
    /// - a sequence number after `last` is [`GapReason::Ahead`] (this log never wrote it);
    /// - one in `oldest - 1 ..= last` gives [`Replay::Frames`] with every entry after it (none when
    ///   it is `last`: the client is up to date);
    /// - one before `oldest - 1` is [`GapReason::Evicted`], because the entries right after it are
    ///   gone.
    ///
    /// Every gap names the oldest retained position.
    #[must_use]
    pub fn after(&self, last_event_id: &str) -> Replay<'_> {
        let gap = |reason| Replay::Gap {
            reason,
            oldest: self.oldest_position(),
        };
        let Ok(position) = Position::parse(last_event_id) else {
            return gap(GapReason::Malformed);
        };
        if position.epoch != self.epoch {
            return gap(GapReason::OtherEpoch);
        }
        if position.seq >= self.next_seq {
            return gap(GapReason::Ahead);
        }
        let oldest_seq = self
            .entries
            .front()
            .map_or(self.next_seq, |entry| entry.seq);
        // `position.seq < next_seq`, so adding one cannot overflow.
        let first_wanted = position.seq + 1;
        if first_wanted < oldest_seq {
            return gap(GapReason::Evicted);
        }
        // At most `len()` because `first_wanted <= next_seq`.
        let skip = usize::try_from(first_wanted - oldest_seq)
            .map_or(self.entries.len(), |skip| skip.min(self.entries.len()));
        Replay::Frames(self.entries.range(skip..))
    }

    /// Every retained entry, oldest first.
    pub fn all(&self) -> vec_deque::Iter<'_, LogEntry> {
        self.entries.iter()
    }
}

/// Numbers `events` from `first` on and encodes each one's frame once, with its `id:`.
pub(crate) fn number_events(first: Position, events: Vec<NewEvent>) -> Vec<LogEntry> {
    events
        .into_iter()
        .zip(first.seq..)
        .map(|(event, seq)| {
            let id = Position {
                epoch: first.epoch,
                seq,
            }
            .to_event_id();
            let frame = Frame::new()
                .id(&id)
                .event(&event.name)
                .data(&event.data)
                .to_bytes();
            LogEntry {
                seq,
                name: event.name,
                category: event.category,
                frame,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_strictly() {
        let ok = [
            ("0-0", 0, 0),
            ("1-2", 1, 2),
            ("1712345678901-42", 1_712_345_678_901, 42),
            (
                "18446744073709551615-18446744073709551615",
                u64::MAX,
                u64::MAX,
            ),
        ];
        for (text, epoch, seq) in ok {
            let position = Position::parse(text).unwrap();
            assert_eq!(position, Position { epoch, seq }, "{text}");
            assert_eq!(position.to_string(), text);
            assert_eq!(position.to_event_id().as_str(), text);
        }
        let bad = [
            ("", PositionError::Empty),
            ("12", PositionError::MissingSeparator),
            ("-1", PositionError::EmptyNumber),
            ("1-", PositionError::EmptyNumber),
            ("01-1", PositionError::LeadingZero),
            ("1-00", PositionError::LeadingZero),
            ("+1-1", PositionError::InvalidByte(b'+')),
            ("1-+1", PositionError::InvalidByte(b'+')),
            (" 1-1", PositionError::InvalidByte(b' ')),
            ("1-1 ", PositionError::InvalidByte(b' ')),
            ("1-2-3", PositionError::InvalidByte(b'-')),
            ("1--2", PositionError::InvalidByte(b'-')),
            ("1-٣", PositionError::InvalidByte(0xD9)),
            ("18446744073709551616-1", PositionError::Overflow),
            ("1-99999999999999999999", PositionError::Overflow),
        ];
        for (text, error) in bad {
            assert_eq!(Position::parse(text), Err(error), "{text:?}");
        }
    }
}

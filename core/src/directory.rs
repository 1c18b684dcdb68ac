//! The stream directory: what a tenant's `GET /v1/streams` lists, and when a hub tells the
//! directory about itself.
//!
//! Each hub reports an [`Entry`] (its connection id, family, last event, subscriber count, whether
//! it is complete) to its tenant's directory. It does not report on every publish: a
//! [`Reporter`] sends at once when it last reported at least `interval_ms` ago, and otherwise asks
//! to be woken when that interval ends ([`Report::At`]), so a burst of publishes costs one report
//! per interval and the directory is never more than one interval behind a hub's last change (plus
//! the time a report takes to arrive). A report carries only what the hub knows: a field it does
//! not know (a woken hub does not know its last event's time; a publish does not know which family
//! reads the stream) is `None`, and [`Entry::merge`] keeps the directory's value for it.
//!
//! ```
//! use herald_core::directory::{Entry, Report, Reporter};
//!
//! let mut reporter = Reporter::new(5_000);
//! let mut entry = Entry::new("build-42");
//! entry.last_event_id = Some("1700000000000-1".into());
//! assert_eq!(reporter.decide(&entry, 1_000), Report::Send);
//! reporter.sent(&entry, 1_000);
//! entry.last_event_id = Some("1700000000000-2".into());
//! // Within the interval: later, once.
//! assert_eq!(reporter.decide(&entry, 2_000), Report::At(6_000));
//! assert_eq!(reporter.decide(&entry, 6_000), Report::Send);
//! ```

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};

/// How often a hub reports at most, by default: `HERALD_DIRECTORY_REPORT_MS`.
pub const REPORT_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// How many streams a tenant's directory keeps by default (`HERALD_DIRECTORY_ENTRIES_MAX`); past
/// it, the entries reported longest ago are dropped.
pub const ENTRIES_MAX_DEFAULT: usize = 10_000;
/// How many entries `GET /v1/streams` lists without `limit=`.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// The most entries one `GET /v1/streams` lists (`limit=` above it is refused).
pub const LIST_LIMIT_MAX: usize = 1_000;

/// One stream as its hub reports it and as the directory lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Entry {
    /// The stream's connection id.
    pub connection_id: String,
    /// The family of the route the stream was last subscribed through (`generic`, `sqlmesh`,
    /// `sluice`, `runner-job`, ...), if any subscribe was seen.
    pub family: Option<String>,
    /// The id of the stream's last event, if it has one.
    pub last_event_id: Option<String>,
    /// When the hub stored that event (Unix ms), if the hub knows.
    pub last_event_ms: Option<u64>,
    /// Open subscribers when the hub reported.
    pub subscribers: u64,
    /// Whether the stream is complete (`stream.complete` was published).
    pub complete: bool,
    /// When the directory received this entry's last report (Unix ms); set by the directory.
    #[serde(default)]
    pub reported_ms: u64,
}

impl Entry {
    /// An entry for `connection_id` that knows nothing else yet.
    pub fn new(connection_id: impl Into<String>) -> Entry {
        Entry {
            connection_id: connection_id.into(),
            family: None,
            last_event_id: None,
            last_event_ms: None,
            subscribers: 0,
            complete: false,
            reported_ms: 0,
        }
    }

    /// The entry the directory keeps after `report` arrives at `now_ms` for a stream it listed as
    /// `self`: the report's values, except where it knows nothing (`None`), which keep the stored
    /// ones.
    #[must_use]
    pub fn merge(self, report: Entry, now_ms: u64) -> Entry {
        Entry {
            connection_id: report.connection_id,
            family: report.family.or(self.family),
            last_event_id: report.last_event_id.or(self.last_event_id),
            last_event_ms: report.last_event_ms.or(self.last_event_ms),
            subscribers: report.subscribers,
            complete: report.complete,
            reported_ms: now_ms,
        }
    }

    /// Whether `other` says the same as `self` (ignoring when each was reported).
    fn same_as(&self, other: &Entry) -> bool {
        Entry {
            reported_ms: 0,
            ..self.clone()
        } == Entry {
            reported_ms: 0,
            ..other.clone()
        }
    }
}

/// What a hub does about its directory entry after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Send the entry now (after [`Reporter::decide`], call [`Reporter::sent`]; [`Reporter::next`]
    /// records it itself).
    Send,
    /// Send it at this time (Unix ms): ask to be woken then, and decide again.
    At(u64),
    /// The directory already has it.
    Nothing,
}

/// A hub's side of the directory: when to report, and whether a report waits for the hub's
/// alarm. It lives in memory; a hub that wakes from hibernation starts a new one and reports at its
/// first change.
#[derive(Clone, Debug)]
pub struct Reporter {
    interval_ms: u64,
    /// The entry last sent, and when.
    last: Option<(Entry, u64)>,
    /// When the alarm was asked for, for a report that had to wait.
    alarm_at_ms: Option<u64>,
}

impl Reporter {
    /// A reporter that sends at most once per `interval_ms`.
    pub fn new(interval_ms: u64) -> Reporter {
        Reporter {
            interval_ms,
            last: None,
            alarm_at_ms: None,
        }
    }

    /// What the hub does about `entry`, its state at `now_ms`, keeping account of the alarm:
    /// [`Report::Send`] (recorded as sent), [`Report::At`] when a report must wait and no alarm is
    /// asked for yet (the hub sets its alarm then), else [`Report::Nothing`].
    pub fn next(&mut self, entry: &Entry, now_ms: u64) -> Report {
        match self.decide(entry, now_ms) {
            Report::Send => {
                self.sent(entry, now_ms);
                self.alarm_at_ms = None;
                Report::Send
            }
            Report::At(at_ms) if !self.alarm_pending(now_ms) => {
                self.alarm_at_ms = Some(at_ms);
                Report::At(at_ms)
            }
            Report::At(_) | Report::Nothing => Report::Nothing,
        }
    }

    /// Whether a report waits for an alarm still to come at `now_ms`: until it rings, the hub need
    /// not look at its state (the alarm reads it then). An alarm more than an interval overdue
    /// counts as lost (setting it failed), so the next change decides again.
    pub fn alarm_pending(&self, now_ms: u64) -> bool {
        self.alarm_at_ms
            .is_some_and(|at_ms| now_ms < at_ms.saturating_add(self.interval_ms))
    }

    /// When the alarm a waiting report asked for rings, if one did.
    pub fn alarm_at_ms(&self) -> Option<u64> {
        self.alarm_at_ms
    }

    /// The alarm rang: a report that waited for it is decided again.
    pub fn alarm_rang(&mut self) {
        self.alarm_at_ms = None;
    }

    /// What to do about `entry`, the hub's state at `now_ms`.
    pub fn decide(&self, entry: &Entry, now_ms: u64) -> Report {
        match &self.last {
            Some((sent, _)) if sent.same_as(entry) => Report::Nothing,
            Some((_, sent_ms)) if now_ms < sent_ms.saturating_add(self.interval_ms) => {
                Report::At(sent_ms.saturating_add(self.interval_ms))
            }
            _ => Report::Send,
        }
    }

    /// Records that `entry` was sent at `now_ms`.
    pub fn sent(&mut self, entry: &Entry, now_ms: u64) {
        self.last = Some((entry.clone(), now_ms));
    }
}

/// A `GET /v1/streams` query, checked: how many entries, and which streams the credential may see.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// At most this many entries, most recent event first.
    pub limit: usize,
    /// Only these connection ids (a token limited to some streams); `None`: every stream.
    pub only: Option<Vec<String>>,
}

/// Why a `limit=` was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    given: String,
}

impl fmt::Display for LimitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "limit must be a whole number from 1 to {LIST_LIMIT_MAX}, not {:?}",
            self.given
        )
    }
}

impl ListQuery {
    /// The query for a `limit=` value (absent: [`LIST_LIMIT_DEFAULT`]) and the streams a
    /// credential is limited to.
    pub fn new(limit: Option<&str>, only: Option<Vec<String>>) -> Result<ListQuery, LimitError> {
        let limit = match limit {
            None => LIST_LIMIT_DEFAULT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=LIST_LIMIT_MAX).contains(n))
                .ok_or_else(|| LimitError {
                    given: String::from(text),
                })?,
        };
        Ok(ListQuery { limit, only })
    }

    /// Whether the query may list `connection_id`.
    pub fn admits(&self, connection_id: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|id| id == connection_id))
    }
}

/// Orders entries as `GET /v1/streams` lists them: the most recent event first (streams with no
/// event time last), then by connection id; and keeps the first `limit` the query admits.
pub fn listing(mut entries: Vec<Entry>, query: &ListQuery) -> Vec<Entry> {
    entries.retain(|entry| query.admits(&entry.connection_id));
    entries.sort_by(|a, b| {
        b.last_event_ms
            .cmp(&a.last_event_ms)
            .then_with(|| a.connection_id.cmp(&b.connection_id))
    });
    entries.truncate(query.limit);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn entry(id: &str, last_event_ms: Option<u64>) -> Entry {
        Entry {
            last_event_ms,
            ..Entry::new(id)
        }
    }

    #[test]
    fn the_first_change_is_sent_at_once_and_an_unchanged_entry_never() {
        let mut reporter = Reporter::new(1_000);
        let first = entry("a", Some(5));
        assert_eq!(reporter.decide(&first, 0), Report::Send);
        reporter.sent(&first, 0);
        assert_eq!(reporter.decide(&first, 10), Report::Nothing);
        assert_eq!(reporter.decide(&first, 10_000), Report::Nothing);
        // Only when it was reported differs: still the same.
        let restamped = Entry {
            reported_ms: 99,
            ..first.clone()
        };
        assert_eq!(reporter.decide(&restamped, 10), Report::Nothing);
    }

    #[test]
    fn changes_within_the_interval_wait_for_its_end() {
        let mut reporter = Reporter::new(1_000);
        let mut current = entry("a", Some(5));
        reporter.sent(&current, 100);
        current.subscribers = 3;
        assert_eq!(reporter.decide(&current, 100), Report::At(1_100));
        assert_eq!(reporter.decide(&current, 1_099), Report::At(1_100));
        assert_eq!(reporter.decide(&current, 1_100), Report::Send);
        // A change that goes back to what was sent needs nothing.
        current.subscribers = 0;
        assert_eq!(reporter.decide(&current, 500), Report::Nothing);
    }

    #[test]
    fn a_waiting_report_asks_for_the_alarm_once_and_a_lost_alarm_is_asked_for_again() {
        let mut reporter = Reporter::new(1_000);
        let mut current = entry("a", Some(5));
        assert_eq!(reporter.next(&current, 100), Report::Send);
        current.subscribers = 1;
        assert_eq!(reporter.next(&current, 200), Report::At(1_100));
        assert!(reporter.alarm_pending(200));
        current.subscribers = 2;
        assert_eq!(reporter.next(&current, 300), Report::Nothing);
        assert_eq!(reporter.alarm_at_ms(), Some(1_100));
        // The alarm rings: the change is sent, and nothing waits any more.
        reporter.alarm_rang();
        assert_eq!(reporter.next(&current, 1_100), Report::Send);
        assert!(!reporter.alarm_pending(1_100));
        // An alarm that never rang stops counting an interval after it was due.
        current.subscribers = 3;
        assert_eq!(reporter.next(&current, 1_200), Report::At(2_100));
        assert!(reporter.alarm_pending(3_099));
        assert!(!reporter.alarm_pending(3_100));
        assert_eq!(reporter.next(&current, 3_100), Report::Send);
    }

    #[test]
    fn a_merge_keeps_what_the_report_does_not_know() {
        let stored = Entry {
            family: Some("sluice".into()),
            last_event_id: Some("1-4".into()),
            last_event_ms: Some(40),
            subscribers: 2,
            ..Entry::new("c")
        };
        let report = Entry {
            subscribers: 0,
            complete: true,
            ..Entry::new("c")
        };
        let merged = stored.merge(report, 77);
        assert_eq!(merged.family.as_deref(), Some("sluice"));
        assert_eq!(merged.last_event_id.as_deref(), Some("1-4"));
        assert_eq!(merged.last_event_ms, Some(40));
        assert_eq!((merged.subscribers, merged.complete), (0, true));
        assert_eq!(merged.reported_ms, 77);
        let newer = Entry {
            family: Some("generic".into()),
            last_event_id: Some("1-5".into()),
            last_event_ms: Some(50),
            ..Entry::new("c")
        };
        let merged = merged.merge(newer, 80);
        assert_eq!(merged.family.as_deref(), Some("generic"));
        assert_eq!(merged.last_event_id.as_deref(), Some("1-5"));
    }

    #[test]
    fn limits_are_checked() {
        assert_eq!(
            ListQuery::new(None, None).map(|q| q.limit),
            Ok(LIST_LIMIT_DEFAULT)
        );
        assert_eq!(
            ListQuery::new(Some("1000"), None).map(|q| q.limit),
            Ok(1000)
        );
        for bad in ["0", "1001", "-1", "ten", "", "1.5"] {
            let error = ListQuery::new(Some(bad), None).unwrap_err();
            assert!(error.to_string().contains("from 1 to 1000"), "{error}");
        }
    }

    #[test]
    fn a_listing_is_newest_first_admitted_and_limited() {
        let entries = vec![
            entry("old", Some(1)),
            entry("quiet", None),
            entry("new", Some(9)),
            entry("also-new", Some(9)),
            entry("hidden", Some(100)),
        ];
        let query = ListQuery {
            limit: 3,
            only: Some(vec![
                "old".into(),
                "quiet".into(),
                "new".into(),
                "also-new".into(),
            ]),
        };
        let ids: Vec<String> = listing(entries.clone(), &query)
            .into_iter()
            .map(|e| e.connection_id)
            .collect();
        assert_eq!(ids, ["also-new", "new", "old"]);
        let all = ListQuery::new(Some("10"), None).unwrap();
        let ids: Vec<String> = listing(entries, &all)
            .into_iter()
            .map(|e| e.connection_id)
            .collect();
        assert_eq!(ids, ["hidden", "also-new", "new", "old", "quiet"]);
    }
}

//! How a subscription starts, for every kind of `Last-Event-ID` and both stream states.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::hub::Subscription;
use herald_core::log::{GapReason, LogEntry, LogLimits};
use herald_core::resume::{JoinPolicy, Resume};
use herald_core::{EventName, Filter, Frame, Hub, Position, ReplayLog};

const EPOCH: u64 = 1_700_000_000_000;

/// A log that kept events 3..=5 of 5.
fn log() -> ReplayLog {
    log_of(5)
}

/// A log of `published` events that keeps the newest 3.
fn log_of(published: u64) -> ReplayLog {
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 3,
            bytes_max: 1 << 20,
        },
    );
    let name = EventName::new("e").unwrap();
    for _ in 0..published {
        let position = log.next_position();
        let frame = Frame::new()
            .id(&position.to_event_id())
            .event(&name)
            .data("x")
            .to_bytes();
        let _ = log.push(LogEntry {
            seq: position.seq,
            name: name.clone(),
            category: None,
            frame,
        });
    }
    log
}

/// A start as (finished, reset reason, seqs sent, live).
type Outcome = (bool, Option<GapReason>, Vec<u64>, bool);

fn outcome(resume: Resume<'_>) -> Outcome {
    match resume {
        Resume::Finished => (true, None, Vec::new(), false),
        Resume::Replay { reset, entries } => {
            if let Some((_, oldest)) = reset {
                assert_eq!(
                    oldest,
                    Some(Position {
                        epoch: EPOCH,
                        seq: 3
                    }),
                    "a reset names the oldest id kept"
                );
            }
            (
                false,
                reset.map(|(reason, _)| reason),
                entries.map(|e| e.seq).collect(),
                false,
            )
        }
        Resume::Live => (false, None, Vec::new(), true),
    }
}

#[test]
fn every_start_of_a_subscription() {
    let log = log();
    let id = |seq: u64| format!("{EPOCH}-{seq}");
    let (four, five, one, other, ahead) = (id(4), id(5), id(1), "42-1".to_string(), id(9));
    #[rustfmt::skip]
    let table: [(Option<&str>, bool, Outcome); 12] = [
        (None,                false, (false, None, vec![], true)),
        (None,                true,  (false, None, vec![3, 4, 5], false)),
        (Some(&four),         false, (false, None, vec![5], false)),
        (Some(&four),         true,  (false, None, vec![5], false)),
        (Some(&five),         false, (false, None, vec![], false)),
        (Some(&five),         true,  (true, None, vec![], false)),
        (Some(&one),          false, (false, Some(GapReason::Evicted), vec![3, 4, 5], false)),
        (Some(&one),          true,  (false, Some(GapReason::Evicted), vec![3, 4, 5], false)),
        (Some(&other),        false, (false, Some(GapReason::OtherEpoch), vec![3, 4, 5], false)),
        (Some("garbage"),     false, (false, Some(GapReason::Malformed), vec![3, 4, 5], false)),
        (Some(&ahead),        false, (false, Some(GapReason::Ahead), vec![3, 4, 5], false)),
        (Some(&ahead),        true,  (false, Some(GapReason::Ahead), vec![3, 4, 5], false)),
    ];
    for (last_event_id, complete, expected) in table {
        assert_eq!(
            outcome(log.resume(last_event_id, complete)),
            expected,
            "{last_event_id:?}, complete: {complete}"
        );
    }
}

/// A runner job's joiner (no id, `JoinPolicy::FromOldest`) gets the retained log, then live; with
/// an id, or under `Live`, nothing changes.
#[test]
fn a_joiner_from_the_oldest_gets_the_retained_log() {
    let id = |seq: u64| format!("{EPOCH}-{seq}");
    let full = log_of(3);
    for complete in [false, true] {
        // The whole job is still in the log: no reset.
        assert_eq!(
            outcome(full.resume_joining(None, complete, JoinPolicy::FromOldest)),
            (false, None, vec![1, 2, 3], false),
            "complete: {complete}"
        );
        // Its first events were evicted: a reset says the beginning is gone.
        assert_eq!(
            outcome(log().resume_joining(None, complete, JoinPolicy::FromOldest)),
            (false, Some(GapReason::Evicted), vec![3, 4, 5], false),
            "complete: {complete}"
        );
    }
    let four = id(4);
    assert_eq!(
        outcome(log().resume_joining(Some(&four), false, JoinPolicy::FromOldest)),
        (false, None, vec![5], false)
    );
    assert_eq!(
        outcome(log().resume_joining(None, false, JoinPolicy::Live)),
        (false, None, vec![], true)
    );
    assert_eq!(
        outcome(ReplayLog::new(EPOCH, LogLimits::default()).resume_joining(
            None,
            false,
            JoinPolicy::FromOldest
        )),
        (false, None, vec![], false),
        "an empty job has nothing to replay"
    );
}

/// The hub asks for its log for a joiner from the oldest (unless nothing was ever published), and
/// sends the replay with the subscriber's cursor at the newest event, so live events follow it with
/// no duplicate.
#[test]
fn the_hub_replays_a_running_job_to_a_joiner() {
    let mut hub = Hub::from_summary(
        herald_core::hub::LogSummary::new(EPOCH),
        LogLimits::default(),
        false,
    );
    let join = JoinPolicy::FromOldest;
    assert!(matches!(
        hub.subscribe_joining(Filter::all(), None, None, join),
        Subscription::Accept { ref message, .. } if message.frames.is_empty() && !message.close
    ));
    let log = log_of(2);
    let summary = herald_core::hub::LogSummary::of(&log);
    hub = Hub::from_summary(summary, LogLimits::default(), false);
    assert_eq!(
        hub.subscribe_joining(Filter::all(), None, None, join),
        Subscription::NeedsLog
    );
    let _ = hub.load_log(log.all().cloned()).expect("log");
    let Subscription::Accept { message, record } =
        hub.subscribe_joining(Filter::all(), None, None, join)
    else {
        panic!("accepted")
    };
    let seqs: Vec<_> = message.frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [Some(1), Some(2)]);
    assert_eq!(record.cursor_seq, 2);
    // The same hub under `Live` sends nothing old.
    let Subscription::Accept { message, .. } = hub.subscribe(Filter::all(), None, None) else {
        panic!("accepted")
    };
    assert!(message.frames.is_empty());
}

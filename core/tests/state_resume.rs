//! How a subscription starts, for every kind of `Last-Event-ID` and both stream states.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::log::{GapReason, LogEntry, LogLimits};
use herald_core::resume::Resume;
use herald_core::{EventName, Frame, Position, ReplayLog};

const EPOCH: u64 = 1_700_000_000_000;

/// A log that kept events 3..=5 of 5.
fn log() -> ReplayLog {
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 3,
            bytes_max: 1 << 20,
        },
    );
    let name = EventName::new("e").unwrap();
    for _ in 0..5 {
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

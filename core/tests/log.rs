//! Replay log: answer tables for `after`, restore, and a property test against a plain `Vec` model.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use bytes::Bytes;
use herald_core::log::{GapReason, LogEntry, LogLimits, Replay, RestoreError};
use herald_core::{EventName, NewEvent, Position, ReplayLog, STREAM_COMPLETE};

const EPOCH: u64 = 1_700_000_000_000;

fn entry(seq: u64, frame_bytes: usize) -> LogEntry {
    LogEntry {
        seq,
        name: EventName::new("e").unwrap(),
        category: None,
        frame: Bytes::from(vec![b'x'; frame_bytes]),
    }
}

/// `Ok(seqs)` for frames, `Err((reason, oldest seq))` for a gap.
type Answer = Result<Vec<u64>, (GapReason, Option<u64>)>;

fn answer(log: &ReplayLog, last_event_id: &str) -> Answer {
    match log.after(last_event_id) {
        Replay::Frames(entries) => Ok(entries.map(|entry| entry.seq).collect()),
        Replay::Gap { reason, oldest } => {
            if let Some(oldest) = oldest {
                assert_eq!(oldest.epoch, log.epoch());
            }
            Err((reason, oldest.map(|position| position.seq)))
        }
    }
}

fn log_with(limits: LogLimits, frame_bytes: &[usize]) -> ReplayLog {
    let mut log = ReplayLog::new(EPOCH, limits);
    for &bytes in frame_bytes {
        let _ = log.push(entry(log.next_seq(), bytes));
    }
    log
}

#[test]
fn after_answers_every_case() {
    // Seqs 1..=5 pushed, 3..=5 retained.
    let log = log_with(
        LogLimits {
            events_max: 3,
            bytes_max: 1000,
        },
        &[10; 5],
    );
    let id = |seq: u64| format!("{EPOCH}-{seq}");
    let cases: Vec<(String, Answer)> = vec![
        (id(5), Ok(vec![])),
        (id(4), Ok(vec![5])),
        (id(3), Ok(vec![4, 5])),
        (id(2), Ok(vec![3, 4, 5])),
        (id(1), Err((GapReason::Evicted, Some(3)))),
        (id(0), Err((GapReason::Evicted, Some(3)))),
        (id(6), Err((GapReason::Ahead, Some(3)))),
        (id(u64::MAX), Err((GapReason::Ahead, Some(3)))),
        (
            format!("{}-4", EPOCH - 1),
            Err((GapReason::OtherEpoch, Some(3))),
        ),
        (
            format!("{}-4", EPOCH + 1),
            Err((GapReason::OtherEpoch, Some(3))),
        ),
        (String::new(), Err((GapReason::Malformed, Some(3)))),
        (format!("0{EPOCH}-4"), Err((GapReason::Malformed, Some(3)))),
        (format!("{EPOCH}-04"), Err((GapReason::Malformed, Some(3)))),
        (format!("{EPOCH}-4 "), Err((GapReason::Malformed, Some(3)))),
        (format!("{EPOCH}-+4"), Err((GapReason::Malformed, Some(3)))),
        ("4".into(), Err((GapReason::Malformed, Some(3)))),
        ("0e2b9f6c-uuid".into(), Err((GapReason::Malformed, Some(3)))),
    ];
    for (last_event_id, expected) in cases {
        assert_eq!(answer(&log, &last_event_id), expected, "{last_event_id:?}");
    }
}

#[test]
fn fresh_and_emptied_logs() {
    let fresh = ReplayLog::new(EPOCH, LogLimits::default());
    assert_eq!(answer(&fresh, &format!("{EPOCH}-0")), Ok(vec![]));
    assert_eq!(
        answer(&fresh, &format!("{EPOCH}-1")),
        Err((GapReason::Ahead, None))
    );
    assert_eq!(answer(&fresh, "1-0"), Err((GapReason::OtherEpoch, None)));
    assert_eq!(
        fresh.next_position(),
        Position {
            epoch: EPOCH,
            seq: 1
        }
    );
    assert_eq!(
        (fresh.last_position(), fresh.oldest_position()),
        (None, None)
    );

    // Each frame is larger than the byte limit, so each push evicts everything, itself included.
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 10,
            bytes_max: 5,
        },
    );
    assert_eq!(log.push(entry(1, 6)).through_seq, Some(1));
    assert_eq!(log.push(entry(2, 6)).through_seq, Some(2));
    assert!(log.is_empty());
    assert_eq!((log.next_seq(), log.bytes()), (3, 0));
    // A client that saw the last event missed nothing; one that saw less missed evicted events.
    assert_eq!(answer(&log, &format!("{EPOCH}-2")), Ok(vec![]));
    assert_eq!(
        answer(&log, &format!("{EPOCH}-1")),
        Err((GapReason::Evicted, None))
    );
    assert_eq!(
        answer(&log, &format!("{EPOCH}-0")),
        Err((GapReason::Evicted, None))
    );
    assert_eq!(
        answer(&log, &format!("{EPOCH}-3")),
        Err((GapReason::Ahead, None))
    );
}

#[test]
fn push_evicts_to_both_limits() {
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 3,
            bytes_max: 10,
        },
    );
    assert_eq!(log.push(entry(1, 4)).through_seq, None);
    assert_eq!(log.push(entry(2, 4)).through_seq, None);
    // 12 bytes > 10: the byte limit evicts seq 1.
    assert_eq!(log.push(entry(3, 4)).through_seq, Some(1));
    assert_eq!((log.len(), log.bytes()), (2, 8));
    assert_eq!(log.push(entry(4, 1)).through_seq, None);
    assert_eq!(log.push(entry(5, 1)).through_seq, Some(2)); // count limit: 4 entries > 3
                                                            // One big frame evicts several at once: 3 for the count, then 4 and 5 for the bytes.
    assert_eq!(log.push(entry(6, 10)).through_seq, Some(5));
    assert_eq!(
        log.all().map(|entry| entry.seq).collect::<Vec<_>>(),
        vec![6]
    );
    assert_eq!(
        log.oldest_position(),
        Some(Position {
            epoch: EPOCH,
            seq: 6
        })
    );
    assert_eq!(
        log.last_position(),
        Some(Position {
            epoch: EPOCH,
            seq: 6
        })
    );
    assert_eq!(
        log.next_position(),
        Position {
            epoch: EPOCH,
            seq: 7
        }
    );
}

#[test]
fn zero_limits_keep_nothing() {
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 0,
            bytes_max: 1000,
        },
    );
    assert_eq!(log.push(entry(1, 0)).through_seq, Some(1));
    assert!(log.is_empty());
    let mut log = ReplayLog::new(
        EPOCH,
        LogLimits {
            events_max: 10,
            bytes_max: 0,
        },
    );
    // An empty frame fits a zero byte budget.
    assert_eq!(log.push(entry(1, 0)).through_seq, None);
    // A one-byte frame does not, and takes the empty one with it (eviction is oldest first).
    assert_eq!(log.push(entry(2, 1)).through_seq, Some(2));
    assert_eq!(
        answer(&log, &format!("{EPOCH}-0")),
        Err((GapReason::Evicted, None))
    );
}

#[test]
fn restore_round_trips_and_trims() {
    let log = log_with(
        LogLimits {
            events_max: 4,
            bytes_max: 100,
        },
        &[10, 20, 30, 5, 5, 5],
    );
    let entries: Vec<LogEntry> = log.all().cloned().collect();
    let (restored, evicted) =
        ReplayLog::restore(EPOCH, log.next_seq(), log.limits(), entries.clone()).unwrap();
    assert_eq!(evicted.through_seq, None);
    assert_eq!(
        (restored.len(), restored.bytes(), restored.next_seq()),
        (log.len(), log.bytes(), log.next_seq())
    );
    for seq in 0..9 {
        let id = format!("{EPOCH}-{seq}");
        assert_eq!(answer(&restored, &id), answer(&log, &id), "{id}");
    }
    // Smaller limits after a redeploy trim the oldest entries and say which.
    let (trimmed, evicted) = ReplayLog::restore(
        EPOCH,
        log.next_seq(),
        LogLimits {
            events_max: 2,
            bytes_max: 100,
        },
        entries,
    )
    .unwrap();
    assert_eq!(evicted.through_seq, Some(4));
    assert_eq!(
        trimmed.oldest_position(),
        Some(Position {
            epoch: EPOCH,
            seq: 5
        })
    );
    // An empty store restores to an empty log that still knows its next seq.
    let (empty, _) = ReplayLog::restore(EPOCH, 9, LogLimits::default(), Vec::new()).unwrap();
    assert_eq!(answer(&empty, &format!("{EPOCH}-8")), Ok(vec![]));
    assert_eq!(
        answer(&empty, &format!("{EPOCH}-7")),
        Err((GapReason::Evicted, None))
    );
}

#[test]
fn restore_rejects_inconsistent_storage() {
    let limits = LogLimits::default();
    let restore = |next_seq, seqs: &[u64]| {
        ReplayLog::restore(
            EPOCH,
            next_seq,
            limits,
            seqs.iter().map(|&seq| entry(seq, 1)),
        )
        .map(|_| ())
    };
    assert_eq!(restore(0, &[]), Err(RestoreError::NextSeqZero));
    assert_eq!(restore(1, &[0]), Err(RestoreError::SeqZero));
    assert_eq!(
        restore(5, &[2, 4]),
        Err(RestoreError::NotContiguous {
            expected: 3,
            found: 4
        })
    );
    assert_eq!(
        restore(5, &[3, 2]),
        Err(RestoreError::NotContiguous {
            expected: 4,
            found: 2
        })
    );
    assert_eq!(
        restore(6, &[3, 4]),
        Err(RestoreError::NotAtEnd {
            last_seq: 4,
            next_seq: 6
        })
    );
    assert_eq!(
        restore(4, &[3, 4]),
        Err(RestoreError::NotAtEnd {
            last_seq: 4,
            next_seq: 4
        })
    );
    assert_eq!(restore(5, &[3, 4]), Ok(()));
    assert_eq!(
        RestoreError::NotContiguous {
            expected: 3,
            found: 4
        }
        .to_string(),
        "stored entries are not contiguous: expected seq 3, found 4"
    );
}

#[test]
fn gap_reasons_have_wire_tags() {
    let tags = [
        (GapReason::Evicted, "evicted"),
        (GapReason::OtherEpoch, "other_epoch"),
        (GapReason::Malformed, "malformed"),
        (GapReason::Ahead, "ahead"),
    ];
    for (reason, tag) in tags {
        assert_eq!(reason.as_str(), tag);
        let text = reason.to_string();
        assert!(
            text.chars().next().is_some_and(char::is_lowercase) && !text.ends_with('.'),
            "{text}"
        );
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod prop {
    use super::*;
    use proptest::prelude::*;

    #[test]
    #[should_panic(expected = "seq == next_seq")]
    fn push_out_of_order_panics() {
        let mut log = ReplayLog::new(EPOCH, LogLimits::default());
        let _ = log.push(entry(2, 1));
    }

    /// Everything ever pushed, and the limit rule stated directly: the longest suffix that fits.
    struct Model {
        limits: LogLimits,
        frame_bytes: Vec<usize>, // index i holds seq i + 1
    }

    impl Model {
        /// First retained seq (`len + 1` when nothing is retained).
        fn first_retained(&self) -> u64 {
            let (mut count, mut bytes, mut first) = (0, 0, self.frame_bytes.len() + 1);
            for (index, &size) in self.frame_bytes.iter().enumerate().rev() {
                if count + 1 > self.limits.events_max || bytes + size > self.limits.bytes_max {
                    break;
                }
                (count, bytes, first) = (count + 1, bytes + size, index + 1);
            }
            first as u64
        }

        fn after(&self, last_event_id: &str) -> Answer {
            let first = self.first_retained();
            let pushed = self.frame_bytes.len() as u64;
            let oldest = (first <= pushed).then_some(first);
            let Some((epoch, seq)) = naive_parse(last_event_id) else {
                return Err((GapReason::Malformed, oldest));
            };
            if epoch != EPOCH {
                return Err((GapReason::OtherEpoch, oldest));
            }
            if seq > pushed {
                return Err((GapReason::Ahead, oldest));
            }
            // Continuity holds only if every event after the client's one is still here.
            let missed: Vec<u64> = (seq + 1..=pushed).collect();
            if missed.iter().all(|&later| later >= first) {
                Ok(missed)
            } else {
                Err((GapReason::Evicted, oldest))
            }
        }
    }

    /// A second, library-based reading of the id grammar.
    fn naive_parse(text: &str) -> Option<(u64, u64)> {
        let number = |part: &str| {
            let canonical = !part.is_empty()
                && part.bytes().all(|byte| byte.is_ascii_digit())
                && (part == "0" || !part.starts_with('0'));
            if canonical {
                part.parse::<u64>().ok()
            } else {
                None
            }
        };
        let (epoch, seq) = text.split_once('-')?;
        Some((number(epoch)?, number(seq)?))
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize),
        After(String),
    }

    fn last_event_id() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => (0u64..50).prop_map(|seq| format!("{EPOCH}-{seq}")),
            1 => (0u64..50).prop_map(|seq| format!("{}-{seq}", EPOCH + 1)),
            1 => (0u64..50).prop_map(|seq| format!("{EPOCH}-0{seq}")),
            1 => "[0-9+ -]{0,8}",
            1 => Just(format!("{EPOCH}-{}", u64::MAX)),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![3 => (0usize..120).prop_map(Op::Push), 2 => last_event_id().prop_map(Op::After)]
    }

    proptest! {
        #[test]
        fn log_matches_vec_model(
            events_max in 0usize..8,
            bytes_max in 0usize..400,
            ops in proptest::collection::vec(op(), 0..60),
        ) {
            let limits = LogLimits { events_max, bytes_max };
            let mut log = ReplayLog::new(EPOCH, limits);
            let mut model = Model { limits, frame_bytes: Vec::new() };
            for op in ops {
                match op {
                    Op::Push(size) => {
                        let first_before = model.first_retained();
                        model.frame_bytes.push(size);
                        let first_after = model.first_retained();
                        let evicted = log.push(entry(log.next_seq(), size));
                        let expected = (first_after > first_before).then(|| first_after - 1);
                        prop_assert_eq!(evicted.through_seq, expected);
                    }
                    Op::After(id) => prop_assert_eq!(answer(&log, &id), model.after(&id), "{:?}", id),
                }
                let first = model.first_retained();
                let pushed = model.frame_bytes.len() as u64;
                let retained: Vec<u64> = (first..=pushed).collect();
                prop_assert_eq!(log.all().map(|entry| entry.seq).collect::<Vec<_>>(), retained.clone());
                let bytes: usize = model.frame_bytes[(first - 1) as usize..].iter().sum();
                prop_assert_eq!((log.len(), log.bytes()), (retained.len(), bytes));
                prop_assert!(log.len() <= events_max && log.bytes() <= bytes_max);
                prop_assert_eq!(log.next_seq(), pushed + 1);
                prop_assert_eq!(log.oldest_position().map(|p| p.seq), retained.first().copied());
                prop_assert_eq!(log.last_position().map(|p| p.seq), retained.last().copied());
            }
            // Storage round trip: restoring what is retained answers every query the same way.
            let (restored, evicted) =
                ReplayLog::restore(EPOCH, log.next_seq(), limits, log.all().cloned()).unwrap();
            prop_assert_eq!(evicted.through_seq, None);
            for seq in 0..log.next_seq() + 2 {
                let id = format!("{EPOCH}-{seq}");
                prop_assert_eq!(answer(&restored, &id), answer(&log, &id));
            }
        }

        #[test]
        fn position_text_round_trips(epoch in any::<u64>(), seq in any::<u64>()) {
            let position = Position { epoch, seq };
            prop_assert_eq!(Position::parse(&position.to_string()), Ok(position));
            let id = position.to_event_id();
            prop_assert_eq!(id.as_str(), position.to_string());
        }

        #[test]
        fn position_parse_agrees_with_naive(text in "[0-9]{0,22}-[0-9]{0,22}|[0-9+ -]{0,12}") {
            let parsed = Position::parse(&text).ok().map(|p| (p.epoch, p.seq));
            prop_assert_eq!(parsed, naive_parse(&text));
        }
    }
}

#[test]
fn number_gives_a_batch_the_next_ids_and_encodes_each_frame_once() {
    let mut log = ReplayLog::new(EPOCH, LogLimits::default());
    let _ = log.push(entry(1, 10));
    let event = |name: &str, data: &str, category: Option<&str>| NewEvent {
        name: EventName::new(name).unwrap(),
        data: data.into(),
        category: category.map(Into::into),
    };
    let batch = vec![
        event("job.created", r#"{"n":1}"#, Some("ai")),
        event("step.output", "one\ntwo", None),
        event(STREAM_COMPLETE, "", None),
    ];
    assert_eq!(
        batch
            .iter()
            .map(NewEvent::completes_stream)
            .collect::<Vec<_>>(),
        [false, false, true]
    );
    let entries = log.number(batch);
    assert_eq!(log.next_seq(), 2, "numbering does not push");
    let frames: Vec<&[u8]> = entries.iter().map(|e| &e.frame[..]).collect();
    assert_eq!(
        frames,
        [
            &b"id: 1700000000000-2\nevent: job.created\ndata: {\"n\":1}\n\n"[..],
            &b"id: 1700000000000-3\nevent: step.output\ndata: one\ndata: two\n\n"[..],
            &b"id: 1700000000000-4\nevent: stream.complete\ndata:\n\n"[..],
        ]
    );
    assert_eq!(
        entries
            .iter()
            .map(|e| (e.seq, e.category.as_deref()))
            .collect::<Vec<_>>(),
        [(2, Some("ai")), (3, None), (4, None)]
    );
    for entry in entries {
        assert_eq!(log.push(entry).through_seq, None);
    }
    assert_eq!(
        log.last_position(),
        Some(Position {
            epoch: EPOCH,
            seq: 4
        })
    );
}

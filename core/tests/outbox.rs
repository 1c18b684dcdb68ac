//! Outbox: FIFO, overflow, close, and a property test of the memory bound against a model.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use bytes::Bytes;
use herald_core::control::lagging_frame;
use herald_core::outbox::{Outbox, OutboxLimits, Pushed};
use herald_core::Position;

const EPOCH: u64 = 42;

fn frame(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn drain(outbox: &mut Outbox) -> Vec<Bytes> {
    core::iter::from_fn(|| outbox.pop()).collect()
}

#[test]
fn fifo_within_limits() {
    let mut outbox = Outbox::new(EPOCH, OutboxLimits::default());
    for (index, text) in ["a", "bb", "ccc"].into_iter().enumerate() {
        assert_eq!(
            outbox.push(frame(text), Some(index as u64 + 1)),
            Pushed::Queued
        );
    }
    assert_eq!(
        (outbox.len(), outbox.bytes(), outbox.last_seq()),
        (3, 6, Some(3))
    );
    assert_eq!(
        drain(&mut outbox),
        vec![frame("a"), frame("bb"), frame("ccc")]
    );
    assert!(outbox.is_empty() && !outbox.is_closing() && !outbox.is_finished());
}

#[test]
fn overflow_on_frames_keeps_queue_and_appends_lagging() {
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 2,
            bytes_max: 1000,
        },
    );
    assert_eq!(outbox.push(frame("e1"), Some(1)), Pushed::Queued);
    assert_eq!(outbox.push(frame("e2"), Some(2)), Pushed::Queued);
    assert_eq!(outbox.push(frame("e3"), Some(3)), Pushed::Overflowed);
    assert!(outbox.is_closing());
    // Refused forever after, and only one lagging frame.
    assert_eq!(outbox.push(frame("e4"), Some(4)), Pushed::Overflowed);
    assert_eq!(outbox.last_seq(), Some(2));
    let lagging = lagging_frame(Position {
        epoch: EPOCH,
        seq: 2,
    });
    assert_eq!(
        &lagging[..],
        b"event: lagging\ndata: {\"resume\":\"42-2\"}\n\n"
    );
    assert_eq!(drain(&mut outbox), vec![frame("e1"), frame("e2"), lagging]);
    assert!(outbox.is_finished());
}

#[test]
fn overflow_on_bytes() {
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 100,
            bytes_max: 10,
        },
    );
    assert_eq!(outbox.push(frame("123456"), Some(7)), Pushed::Queued);
    assert_eq!(outbox.push(frame("1234"), Some(8)), Pushed::Queued); // exactly at the limit
    assert_eq!(outbox.push(frame("1"), Some(9)), Pushed::Overflowed);
    let popped = drain(&mut outbox);
    assert_eq!(popped.len(), 3);
    assert_eq!(
        &popped[2][..],
        b"event: lagging\ndata: {\"resume\":\"42-8\"}\n\n"
    );
}

#[test]
fn popping_makes_room() {
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 1,
            bytes_max: 4,
        },
    );
    assert_eq!(outbox.push(frame("abcd"), Some(1)), Pushed::Queued);
    assert_eq!(outbox.pop(), Some(frame("abcd")));
    assert_eq!(outbox.push(frame("efgh"), Some(2)), Pushed::Queued);
    assert_eq!(outbox.bytes(), 4);
}

#[test]
fn lagging_without_any_event_has_no_resume() {
    // Frames without a sequence number (heartbeats, control) never name a resume point.
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 1,
            bytes_max: 100,
        },
    );
    assert_eq!(outbox.push(frame(": heartbeat\n\n"), None), Pushed::Queued);
    assert_eq!(outbox.push(frame("event"), Some(1)), Pushed::Overflowed);
    assert_eq!(outbox.last_seq(), None);
    assert_eq!(
        drain(&mut outbox),
        vec![
            frame(": heartbeat\n\n"),
            frame("event: lagging\ndata: {}\n\n")
        ]
    );

    // A frame larger than the whole budget overflows an empty outbox.
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 10,
            bytes_max: 3,
        },
    );
    assert_eq!(outbox.push(frame("four"), Some(1)), Pushed::Overflowed);
    assert_eq!(
        drain(&mut outbox),
        vec![frame("event: lagging\ndata: {}\n\n")]
    );
}

#[test]
fn unnumbered_frames_keep_last_seq() {
    let mut outbox = Outbox::new(
        EPOCH,
        OutboxLimits {
            frames_max: 2,
            bytes_max: 100,
        },
    );
    assert_eq!(outbox.push(frame("e5"), Some(5)), Pushed::Queued);
    assert_eq!(outbox.push(frame("hb"), None), Pushed::Queued);
    assert_eq!(outbox.push(frame("e6"), Some(6)), Pushed::Overflowed);
    assert_eq!(outbox.last_seq(), Some(5));
    assert_eq!(
        drain(&mut outbox).last().unwrap(),
        &lagging_frame(Position {
            epoch: EPOCH,
            seq: 5
        })
    );
}

#[test]
fn close_after_drain_sends_no_lagging() {
    let mut outbox = Outbox::new(EPOCH, OutboxLimits::default());
    assert_eq!(outbox.push(frame("terminal"), Some(9)), Pushed::Queued);
    outbox.close_after_drain();
    assert!(outbox.is_closing() && !outbox.is_finished());
    assert_eq!(outbox.push(frame("late"), Some(10)), Pushed::Overflowed);
    assert_eq!(drain(&mut outbox), vec![frame("terminal")]);
    assert!(outbox.is_finished());
}

#[cfg(not(target_arch = "wasm32"))]
mod prop {
    use super::*;
    use proptest::prelude::*;
    use std::collections::VecDeque;

    #[derive(Debug, Clone)]
    enum Op {
        Push { bytes: usize, numbered: bool },
        Pop,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0usize..40, any::<bool>()).prop_map(|(bytes, numbered)| Op::Push { bytes, numbered }),
            2 => Just(Op::Pop),
        ]
    }

    proptest! {
        #[test]
        fn memory_is_bounded_and_order_kept(
            frames_max in 0usize..6,
            bytes_max in 0usize..100,
            ops in proptest::collection::vec(op(), 0..80),
        ) {
            let limits = OutboxLimits { frames_max, bytes_max };
            let mut outbox = Outbox::new(EPOCH, limits);
            // The largest lagging frame any outbox can queue.
            let lagging_max = lagging_frame(Position { epoch: u64::MAX, seq: u64::MAX }).len();
            // Model: what was accepted and not yet popped, and the farewell frame once closing.
            let mut expected: VecDeque<Bytes> = VecDeque::new();
            let mut last_seq = None;
            let mut farewell: Option<Bytes> = None;
            let mut closing = false;
            for (index, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Push { bytes, numbered } => {
                        // Unique contents so FIFO order is observable.
                        let mut contents = format!("{index:04}").into_bytes();
                        contents.resize(bytes.max(4), b'.');
                        let pushed = Bytes::from(contents);
                        let seq = numbered.then_some(index as u64);
                        let queued_bytes: usize = expected.iter().map(Bytes::len).sum();
                        let fits = !closing && expected.len() < frames_max && queued_bytes + pushed.len() <= bytes_max;
                        let result = outbox.push(pushed.clone(), seq);
                        if fits {
                            prop_assert_eq!(result, Pushed::Queued);
                            expected.push_back(pushed);
                            last_seq = seq.or(last_seq);
                        } else {
                            prop_assert_eq!(result, Pushed::Overflowed);
                            if !closing {
                                closing = true;
                                farewell = Some(match last_seq {
                                    Some(seq) => lagging_frame(Position { epoch: EPOCH, seq }),
                                    None => Bytes::from_static(b"event: lagging\ndata: {}\n\n"),
                                });
                            }
                        }
                    }
                    Op::Pop => {
                        let want = expected.pop_front().or_else(|| farewell.take());
                        prop_assert_eq!(outbox.pop(), want);
                    }
                }
                prop_assert!(outbox.bytes() <= bytes_max + lagging_max);
                prop_assert!(outbox.len() <= frames_max + 1);
                prop_assert_eq!(outbox.is_closing(), closing);
                prop_assert_eq!(outbox.last_seq(), last_seq);
                let model_bytes = expected.iter().map(Bytes::len).sum::<usize>() + farewell.as_ref().map_or(0, Bytes::len);
                prop_assert_eq!(outbox.bytes(), model_bytes);
            }
        }
    }
}

#[test]
fn cut_closes_like_an_overflow_whatever_room_is_left() {
    let mut outbox = Outbox::new(EPOCH, OutboxLimits::default());
    assert_eq!(outbox.push(frame("e1"), Some(1)), Pushed::Queued);
    outbox.cut();
    assert!(outbox.is_closing());
    assert_eq!(outbox.push(frame("e2"), Some(2)), Pushed::Overflowed);
    let lagging = lagging_frame(Position {
        epoch: EPOCH,
        seq: 1,
    });
    assert_eq!(drain(&mut outbox), vec![frame("e1"), lagging]);
    assert!(outbox.is_finished());
    // Cutting a closing outbox changes nothing (a second lagging frame would never be read).
    outbox.cut();
    assert!(outbox.is_empty());
}

#[test]
fn drop_unpopped_frees_the_queue_and_names_the_last_frame_popped() {
    let mut outbox = Outbox::new(EPOCH, OutboxLimits::default());
    for seq in 1..=3 {
        assert_eq!(outbox.push(frame("event"), Some(seq)), Pushed::Queued);
    }
    assert_eq!(outbox.push(frame("control"), None), Pushed::Queued);
    assert_eq!(outbox.pop(), Some(frame("event")));
    outbox.drop_unpopped();
    let lagging = lagging_frame(Position {
        epoch: EPOCH,
        seq: 1,
    });
    assert_eq!(
        outbox.bytes(),
        lagging.len(),
        "only the lagging frame is left"
    );
    assert_eq!(outbox.last_seq(), Some(1));
    assert_eq!(outbox.push(frame("e4"), Some(4)), Pushed::Overflowed);
    assert_eq!(drain(&mut outbox), vec![lagging]);

    // Nothing popped yet: lagging names no id.
    let mut outbox = Outbox::new(EPOCH, OutboxLimits::default());
    assert_eq!(outbox.push(frame("e1"), Some(1)), Pushed::Queued);
    outbox.drop_unpopped();
    assert_eq!(outbox.last_seq(), None);
    assert_eq!(drain(&mut outbox).len(), 1);
}

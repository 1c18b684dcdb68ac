//! The idempotent-producer state machine (PROTOCOL.md §5.2.1): Kafka-style `(id, epoch, seq)`
//! deduplication with zombie fencing.
//!
//! States of one producer on one stream: `Unknown` (never seen, or its stream is new) and
//! `Known { epoch, last_seq }`. [`check_producer`] is the one transition function; the caller
//! stores [`ProducerVerdict::Accept`]'s `next` in the same transaction as the appended data, so a
//! retried request can never be stored twice. Invariants: a stored epoch never decreases; within an
//! epoch `last_seq` only grows, by exactly one per accepted request.

/// What the server remembers about one producer on one stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProducerState {
    /// The highest epoch accepted.
    pub epoch: u64,
    /// The highest sequence number accepted in that epoch.
    pub last_seq: u64,
}

/// What to do with one append from a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProducerVerdict {
    /// New data: append it and store `next` with it (`200 OK`).
    Accept {
        /// The producer's state after this append.
        next: ProducerState,
    },
    /// Already stored: append nothing (`204 No Content`), answer with the highest accepted seq.
    Duplicate {
        /// The state as stored.
        current: ProducerState,
    },
    /// An older epoch than the stored one: a zombie (`403 Forbidden`, `Producer-Epoch: current`).
    StaleEpoch {
        /// The stored epoch.
        current_epoch: u64,
    },
    /// A new epoch must start at seq 0 (`400 Bad Request`).
    NewEpochNotAtZero,
    /// A gap in the sequence (`409 Conflict`, `Producer-Expected-Seq`, `Producer-Received-Seq`).
    Gap {
        /// The next sequence number the server would accept.
        expected: u64,
        /// The one received.
        received: u64,
    },
}

impl ProducerVerdict {
    /// Whether the request's data is to be stored.
    #[must_use]
    pub const fn is_accept(&self) -> bool {
        matches!(self, ProducerVerdict::Accept { .. })
    }
}

/// Decides one append of `(epoch, seq)` against the stored state of its producer (`None`: unknown).
///
/// §5.2.1 Validation Logic: `epoch < state.epoch` → 403; `epoch > state.epoch` needs `seq == 0`
/// (else 400); same epoch: `seq <= lastSeq` → 204 duplicate, `seq == lastSeq + 1` → accept,
/// beyond → 409. An unknown producer starts at seq 0 in whatever epoch it declares.
#[must_use]
pub fn check_producer(state: Option<ProducerState>, epoch: u64, seq: u64) -> ProducerVerdict {
    let Some(state) = state else {
        return if seq == 0 {
            ProducerVerdict::Accept {
                next: ProducerState { epoch, last_seq: 0 },
            }
        } else {
            ProducerVerdict::Gap {
                expected: 0,
                received: seq,
            }
        };
    };
    if epoch < state.epoch {
        return ProducerVerdict::StaleEpoch {
            current_epoch: state.epoch,
        };
    }
    if epoch > state.epoch {
        return if seq == 0 {
            ProducerVerdict::Accept {
                next: ProducerState { epoch, last_seq: 0 },
            }
        } else {
            ProducerVerdict::NewEpochNotAtZero
        };
    }
    if seq <= state.last_seq {
        ProducerVerdict::Duplicate { current: state }
    } else if seq == state.last_seq + 1 {
        ProducerVerdict::Accept {
            next: ProducerState {
                epoch,
                last_seq: seq,
            },
        }
    } else {
        ProducerVerdict::Gap {
            expected: state.last_seq + 1,
            received: seq,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let s = |epoch, last_seq| Some(ProducerState { epoch, last_seq });
        assert!(check_producer(None, 0, 0).is_accept());
        assert!(check_producer(None, 7, 0).is_accept());
        assert_eq!(
            check_producer(None, 0, 1),
            ProducerVerdict::Gap {
                expected: 0,
                received: 1
            }
        );
        assert_eq!(
            check_producer(s(1, 4), 0, 9),
            ProducerVerdict::StaleEpoch { current_epoch: 1 }
        );
        assert_eq!(
            check_producer(s(1, 4), 2, 5),
            ProducerVerdict::NewEpochNotAtZero
        );
        assert!(check_producer(s(1, 4), 2, 0).is_accept());
        assert!(matches!(
            check_producer(s(1, 4), 1, 4),
            ProducerVerdict::Duplicate { .. }
        ));
        assert!(matches!(
            check_producer(s(1, 4), 1, 0),
            ProducerVerdict::Duplicate { .. }
        ));
        assert_eq!(
            check_producer(s(1, 4), 1, 5),
            ProducerVerdict::Accept {
                next: ProducerState {
                    epoch: 1,
                    last_seq: 5
                }
            }
        );
        assert_eq!(
            check_producer(s(1, 4), 1, 7),
            ProducerVerdict::Gap {
                expected: 5,
                received: 7
            }
        );
    }

    #[cfg(not(target_arch = "wasm32"))]
    mod prop {
        use super::*;
        use alloc::collections::BTreeMap;
        use alloc::vec::Vec;
        use proptest::prelude::*;

        proptest! {
            /// Any retry pattern of an honest producer stores each (epoch, seq) exactly once, in order.
            #[test]
            fn retries_store_each_batch_once(sends in proptest::collection::vec((0u64..3, 0u64..6), 0..60)) {
                let mut state: Option<ProducerState> = None;
                let mut stored: Vec<(u64, u64)> = Vec::new();
                let mut seen: BTreeMap<(u64, u64), usize> = BTreeMap::new();
                for (epoch, seq) in sends {
                    let before = state;
                    if let ProducerVerdict::Accept { next } = check_producer(state, epoch, seq) {
                        stored.push((epoch, seq));
                        *seen.entry((epoch, seq)).or_default() += 1;
                        prop_assert!(before.is_none_or(|b| next.epoch >= b.epoch));
                        state = Some(next);
                    }
                }
                prop_assert!(seen.values().all(|n| *n == 1));
                prop_assert!(stored.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}

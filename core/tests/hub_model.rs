//! The stream state machine (`Hub` + `Relay`) against a naive model.
//!
//! Any interleaving of publishes (refused ones too), subscriptions with every kind of
//! `Last-Event-ID`, client drains and disconnects, hibernations and restarts, on logs small enough
//! to evict all the time, runs through the engine as the Durable Object drives it
//! (`common/hub_world.rs`); every subscriber must receive every event its filter matches after its
//! cursor exactly once and in order, or a `reset` naming the oldest retained id and then everything
//! retained. A second property holds a summary-only hub against a hub with its `ReplayLog`.
#![cfg(not(target_arch = "wasm32"))]

#[path = "common/hub_world.rs"]
mod hub_world;

use std::cell::Cell;

use herald_core::hub::{LogSummary, Subscription};
use herald_core::log::{LogEntry, LogLimits};
use herald_core::relay::RelayPoll;
use herald_core::{Filter, Hub, NewEvent, Relay, ReplayLog, Vocabulary};
use hub_world::{id, job, settings, vocabulary, Ev, LastId, Op, World, EPOCH, NOW, OPEN};
use proptest::collection::vec;
use proptest::prelude::*;

fn ev() -> impl Strategy<Value = Ev> {
    let name = prop_oneof![39 => 0usize..3, 1 => Just(3usize)];
    let category = prop_oneof![
        10 => Just(None),
        4 => Just(Some("x")),
        4 => Just(Some("y")),
        1 => Just(Some("zz")),
    ];
    (name, category, "[a-z ]{0,12}").prop_map(|(name, category, data)| Ev {
        name,
        category,
        data,
    })
}

fn op() -> impl Strategy<Value = Op> {
    let last = prop_oneof![
        3 => Just(LastId::None),
        3 => any::<usize>().prop_map(LastId::Issued),
        1 => any::<usize>().prop_map(LastId::OtherEpoch),
        1 => (0usize..3).prop_map(LastId::Malformed),
        1 => (0u64..3).prop_map(LastId::Ahead),
        1 => Just(LastId::Zero),
    ];
    prop_oneof![
        6 => (vec(ev(), 1..5), any::<bool>())
            .prop_map(|(events, store_first)| Op::Publish { events, store_first }),
        3 => (0usize..3, last).prop_map(|(filter, last)| Op::Subscribe { filter, last }),
        3 => any::<usize>().prop_map(Op::Drain),
        1 => any::<usize>().prop_map(Op::Disconnect),
        1 => Just(Op::Hibernate),
        1 => Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_subscriber_gets_its_events_once_in_order_or_a_reset(
        events_max in 1usize..=5,
        bytes_max in 30usize..300,
        ops in vec(op(), 0..60),
    ) {
        let mut world = World::new(LogLimits { events_max, bytes_max });
        for op in &ops {
            world.run(op);
        }
        world.finish();
    }

    /// A summary-only hub against a hub with its `ReplayLog`, over any sequence of commits, storage
    /// written before or after the hub takes a batch in.
    #[test]
    fn summary_tracks_the_loaded_log(
        events_max in 0usize..6,
        bytes_max in 0usize..300,
        batches in vec((vec(0usize..120, 1..5), any::<bool>()), 0..40),
    ) {
        let limits = LogLimits { events_max, bytes_max };
        let mut loaded = Hub::from_log(ReplayLog::new(EPOCH, limits), false);
        let mut summary = Hub::from_summary(LogSummary::new(EPOCH), limits, false);
        let mut storage: Vec<LogEntry> = Vec::new();
        let mut read_before = false;
        prop_assert_eq!(summary.summary(), LogSummary::of(loaded.log().unwrap()));
        for (lengths, store_first) in batches {
            let events: Vec<NewEvent> = lengths.iter().map(|&n| job("d".repeat(n))).collect();
            let batch = loaded.prepare(events.clone(), &Vocabulary::open()).unwrap();
            prop_assert_eq!(&summary.prepare(events, &Vocabulary::open()).unwrap(), &batch);
            let stored_before = storage.len();
            if store_first {
                storage.extend(batch.entries.iter().cloned());
            }
            let reads = summary.commit_reads_storage(&batch);
            let pulled = Cell::new(0usize);
            let oldest = storage.iter().take(if reads { usize::MAX } else { 0 }).map(|e| {
                pulled.set(pulled.get() + 1);
                (e.seq, e.frame.len())
            });
            let evicted = summary.commit(&batch, oldest);
            prop_assert_eq!(evicted, loaded.commit(&batch, []));
            prop_assert_eq!(summary.summary(), LogSummary::of(loaded.log().unwrap()));
            // Storage is read once, at the hub's first eviction, and never again: the hub keeps
            // the sizes. It reads at most the rows stored before this batch.
            prop_assert_eq!(reads, evicted.through_seq.is_some() && !read_before);
            read_before |= reads;
            let through = evicted.through_seq.unwrap_or(0);
            prop_assert!(pulled.get() <= stored_before, "read {} rows", pulled.get());
            if !store_first {
                storage.extend(batch.entries.iter().cloned());
            }
            storage.retain(|e| e.seq > through);
            prop_assert!(storage.iter().eq(loaded.log().unwrap().all()));
        }
    }
}

/// A subscriber that cannot keep up gets `lagging` naming the last id queued, then its stream ends;
/// resuming from that id loses nothing.
#[test]
fn an_overflow_gives_lagging_then_end() {
    let mut hub = Hub::from_log(ReplayLog::new(EPOCH, LogLimits::default()), false);
    let Subscription::Accept { message, record } = hub.subscribe(Filter::all(), None, None) else {
        panic!("a live subscription is accepted");
    };
    // Room for the opening frame and two events.
    let mut relay = Relay::new(settings(3), NOW);
    relay.receive(&message.encode()).unwrap();
    let events = ["a", "b", "c", "d"].map(|data| job(data.into())).to_vec();
    let batch = hub.prepare(events, &vocabulary()).unwrap();
    assert_eq!(hub.commit(&batch, []).through_seq, None);
    let message = record.message_for(EPOCH, &batch).unwrap();
    relay.receive(&message.encode()).unwrap();
    assert!(relay.is_closing());
    assert_eq!(relay.last_seq(), Some(2));
    let expected = format!(
        "{OPEN}id: {EPOCH}-1\nevent: job:a\ndata: a\n\nid: {EPOCH}-2\nevent: job:a\ndata: b\n\n\
         event: lagging\ndata: {{\"resume\":\"{EPOCH}-2\"}}\n\n"
    );
    assert_eq!(relay.poll(NOW), RelayPoll::Write(expected.into_bytes()));
    assert_eq!(relay.poll(NOW), RelayPoll::End);
    let resumed = hub.subscribe(Filter::all(), Some(&id(2)), None);
    let Subscription::Accept { message, .. } = resumed else {
        panic!("{resumed:?}");
    };
    let seqs: Vec<Option<u64>> = message.frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [Some(3), Some(4)]);
}

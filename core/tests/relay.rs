//! Relay: exact bytes for the opening frame, fan-in of hub messages, the seam rule, the ways a
//! stream ends (close, hub gone, maximum age, a corrupt message, an overflow) and heartbeats in
//! each profile. The wire format itself is tested in `src/wire.rs`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use bytes::Bytes;
use herald_core::heartbeat::{HeartbeatPolicy, HeartbeatProfile};
use herald_core::outbox::OutboxLimits;
use herald_core::relay::{RelayPoll, RelaySettings};
use herald_core::wire::{WireError, WireFrame};
use herald_core::{HubMessage, Relay};

const EPOCH: u64 = 1_700_000_000_000;
/// 2026-02-27T10:30:00.000Z.
const T0: u64 = 1_772_188_200_000;
const HEARTBEAT_MS: u64 = 15_000;
const OPEN: &str = "retry: 2500\n: open\n\n";

fn settings(profile: HeartbeatProfile, max_age_ms: u64) -> RelaySettings {
    RelaySettings {
        outbox: OutboxLimits::default(),
        heartbeat: HeartbeatPolicy::new(profile, HEARTBEAT_MS),
        retry_ms: 2500,
        max_age_ms,
    }
}

fn relay() -> Relay {
    Relay::new(settings(HeartbeatProfile::Comment, 3_600_000), T0)
}

fn event(seq: u64) -> String {
    format!("id: {EPOCH}-{seq}\nevent: job\ndata: {seq}\n\n")
}

fn logged(seq: u64) -> WireFrame {
    WireFrame {
        seq: Some(seq),
        frame: Bytes::from(event(seq)),
    }
}

const RESET: &str = "event: reset\ndata: {\"reason\":\"evicted\",\"oldest\":null}\n\n";

fn unlogged() -> WireFrame {
    WireFrame {
        seq: None,
        frame: Bytes::from_static(RESET.as_bytes()),
    }
}

/// The encoded message, as the hub sends it over the socket.
fn message(frames: Vec<WireFrame>, close: bool) -> Vec<u8> {
    HubMessage {
        epoch: EPOCH,
        frames,
        close,
    }
    .encode()
}

fn written(relay: &mut Relay, now_ms: u64) -> String {
    match relay.poll(now_ms) {
        RelayPoll::Write(bytes) => String::from_utf8(bytes).unwrap(),
        other => panic!("expected a write at {now_ms}, got {other:?}"),
    }
}

#[test]
fn the_opening_frame_is_written_before_the_hub_answers() {
    let mut relay = relay();
    assert_eq!(relay.queued_bytes(), OPEN.len());
    assert_eq!(written(&mut relay, T0), OPEN);
    assert_eq!(relay.queued_bytes(), 0);
    assert_eq!(
        relay.poll(T0),
        RelayPoll::Wait {
            until_ms: T0 + HEARTBEAT_MS
        }
    );
    assert!(!relay.is_closing());
    assert_eq!(relay.last_seq(), None);
}

#[test]
fn everything_queued_is_written_as_one_chunk_in_order() {
    let mut relay = relay();
    relay
        .receive(&message(vec![unlogged(), logged(1)], false))
        .unwrap();
    relay.receive(&message(vec![logged(2)], false)).unwrap();
    // An empty message (nothing matched) changes nothing.
    relay.receive(&message(vec![], false)).unwrap();
    assert_eq!(relay.last_seq(), Some(2));
    let expected = format!("{OPEN}{RESET}{}{}", event(1), event(2));
    assert_eq!(relay.queued_bytes(), expected.len());
    assert_eq!(written(&mut relay, T0 + 5), expected);
    assert_eq!(
        relay.poll(T0 + 5),
        RelayPoll::Wait {
            until_ms: T0 + 5 + HEARTBEAT_MS
        }
    );
}

#[test]
fn seam_drops_logged_frames_at_or_before_the_last_queued() {
    let mut relay = relay();
    relay
        .receive(&message(vec![logged(1), logged(2), logged(3)], false))
        .unwrap();
    assert_eq!(
        written(&mut relay, T0),
        format!("{OPEN}{}{}{}", event(1), event(2), event(3))
    );
    // A live batch overlapping what the replay sent: only the newer frame goes out, and an unlogged
    // frame is never taken for a duplicate.
    relay
        .receive(&message(
            vec![logged(2), logged(3), unlogged(), logged(4)],
            false,
        ))
        .unwrap();
    assert_eq!(written(&mut relay, T0), format!("{RESET}{}", event(4)));
    // Already written counts too: the rule is about the last one queued, not what is still waiting.
    relay
        .receive(&message(vec![logged(4), logged(5)], false))
        .unwrap();
    assert_eq!(written(&mut relay, T0), event(5));
    assert_eq!(relay.last_seq(), Some(5));
}

#[test]
fn close_ends_the_stream_after_its_frames() {
    let mut relay = relay();
    relay
        .receive(&message(vec![logged(1), logged(2)], true))
        .unwrap();
    assert!(relay.is_closing());
    // A later message (another batch in flight) is not written.
    relay.receive(&message(vec![logged(3)], false)).unwrap();
    assert_eq!(
        written(&mut relay, T0),
        format!("{OPEN}{}{}", event(1), event(2))
    );
    assert_eq!(relay.poll(T0), RelayPoll::End);
    // Ended is final: no heartbeat however long it is polled.
    assert_eq!(relay.poll(T0 + 10 * HEARTBEAT_MS), RelayPoll::End);

    // A close with no frames (a late subscriber of a complete stream whose filter matched nothing).
    let mut relay = relay_with_open_written();
    relay.receive(&message(vec![], true)).unwrap();
    assert_eq!(relay.poll(T0), RelayPoll::End);
}

fn relay_with_open_written() -> Relay {
    let mut relay = relay();
    assert_eq!(written(&mut relay, T0), OPEN);
    relay
}

#[test]
fn hub_gone_writes_what_is_queued_then_ends() {
    let mut relay = relay();
    relay.receive(&message(vec![logged(7)], false)).unwrap();
    relay.hub_gone();
    assert!(relay.is_closing());
    relay.receive(&message(vec![logged(8)], false)).unwrap();
    assert_eq!(written(&mut relay, T0), format!("{OPEN}{}", event(7)));
    assert_eq!(relay.poll(T0), RelayPoll::End);

    // With nothing queued it ends at once, even when a heartbeat is due.
    let mut relay = relay_with_open_written();
    relay.hub_gone();
    assert_eq!(relay.poll(T0 + HEARTBEAT_MS), RelayPoll::End);
}

#[test]
fn heartbeat_is_due_after_an_interval_of_silence_in_each_profile() {
    let at = T0 + HEARTBEAT_MS;
    let cases = [
        (
            HeartbeatProfile::SqlMeshPing,
            format!("event: ping\ndata: {{\"timestamp\":{at}}}\n\n"),
        ),
        (
            HeartbeatProfile::SluiceHeartbeat,
            "event: heartbeat\ndata: {\"timestamp\":\"2026-02-27T10:30:15.000Z\"}\n\n".into(),
        ),
        (HeartbeatProfile::Comment, ": heartbeat\n\n".into()),
    ];
    for (profile, heartbeat) in cases {
        let mut relay = Relay::new(settings(profile, 3_600_000), T0);
        assert_eq!(written(&mut relay, T0), OPEN, "{profile:?}");
        let wait = |until_ms| RelayPoll::Wait { until_ms };
        assert_eq!(relay.poll(at - 1), wait(at), "{profile:?}");
        assert_eq!(written(&mut relay, at), heartbeat, "{profile:?}");
        assert_eq!(relay.poll(at), wait(at + HEARTBEAT_MS), "{profile:?}");
        relay.receive(&message(vec![logged(1)], false)).unwrap();
        assert_eq!(written(&mut relay, at + 700), event(1), "{profile:?}");
        if profile.on_fixed_clock() {
            // Named heartbeats keep their clock whatever else is written...
            assert_eq!(relay.poll(at + 701), wait(at + HEARTBEAT_MS), "{profile:?}");
            // ...and follow the frames of a write that falls due.
            relay.receive(&message(vec![logged(2)], false)).unwrap();
            let due = HeartbeatPolicy::new(profile, HEARTBEAT_MS).frame(at + HEARTBEAT_MS);
            assert_eq!(
                written(&mut relay, at + HEARTBEAT_MS),
                event(2) + core::str::from_utf8(&due).unwrap(),
                "{profile:?}"
            );
        } else {
            // Any write postpones the next comment: an active stream needs none.
            assert_eq!(
                relay.poll(at + 701),
                wait(at + 700 + HEARTBEAT_MS),
                "{profile:?}"
            );
        }
        // A poll that comes late writes one heartbeat, not one per missed interval.
        let late = HeartbeatPolicy::new(profile, HEARTBEAT_MS).frame(at + 10 * HEARTBEAT_MS);
        assert_eq!(
            written(&mut relay, at + 10 * HEARTBEAT_MS),
            String::from_utf8(late.to_vec()).unwrap(),
            "{profile:?}"
        );
        assert_eq!(
            relay.poll(at + 10 * HEARTBEAT_MS),
            wait(at + 11 * HEARTBEAT_MS)
        );
    }
}

#[test]
fn max_age_ends_the_stream_after_whole_frames() {
    let max_age_ms = 40_000;
    let mut relay = Relay::new(settings(HeartbeatProfile::Comment, max_age_ms), T0);
    assert_eq!(written(&mut relay, T0), OPEN);
    assert_eq!(written(&mut relay, T0 + HEARTBEAT_MS), ": heartbeat\n\n");
    assert_eq!(
        written(&mut relay, T0 + 2 * HEARTBEAT_MS),
        ": heartbeat\n\n"
    );
    // The next heartbeat would be at T0 + 45 s: the wait is until the maximum age instead.
    assert_eq!(
        relay.poll(T0 + 2 * HEARTBEAT_MS),
        RelayPoll::Wait {
            until_ms: T0 + max_age_ms
        }
    );
    relay
        .receive(&message(vec![logged(1), logged(2)], false))
        .unwrap();
    // At the maximum age what is queued is written whole, nothing more is taken, then the end.
    assert_eq!(
        written(&mut relay, T0 + max_age_ms),
        format!("{}{}", event(1), event(2))
    );
    assert!(relay.is_closing());
    relay.receive(&message(vec![logged(3)], false)).unwrap();
    assert_eq!(relay.poll(T0 + max_age_ms), RelayPoll::End);

    // At the maximum age with a heartbeat due at the same moment, the stream ends without it.
    let mut relay = Relay::new(settings(HeartbeatProfile::Comment, HEARTBEAT_MS), T0);
    assert_eq!(written(&mut relay, T0), OPEN);
    assert_eq!(
        relay.poll(T0 + 1),
        RelayPoll::Wait {
            until_ms: T0 + HEARTBEAT_MS
        }
    );
    assert_eq!(relay.poll(T0 + HEARTBEAT_MS), RelayPoll::End);
}

#[test]
fn a_corrupt_message_is_an_error_and_the_relay_drains_and_ends() {
    let good = message(vec![logged(2)], false);
    let cases: [(&[u8], WireError); 3] = [
        (&good[..3], WireError::Truncated),
        (&good[..good.len() - 1], WireError::RecordOverrun),
        (&[7, 0, 0, 0, 0, 0, 0, 0, 0, 0], WireError::Version(7)),
    ];
    for (bytes, error) in cases {
        let mut relay = relay();
        relay.receive(&message(vec![logged(1)], false)).unwrap();
        assert_eq!(relay.receive(bytes), Err(error));
        assert!(relay.is_closing(), "{error:?}");
        // What was queued before is still written; the frame after the bad message is not.
        relay.receive(&good).unwrap();
        assert_eq!(written(&mut relay, T0), format!("{OPEN}{}", event(1)));
        assert_eq!(relay.poll(T0), RelayPoll::End, "{error:?}");
    }
}

#[test]
fn an_overflow_gives_lagging_naming_the_last_id_queued_then_end() {
    let mut settings = settings(HeartbeatProfile::Comment, 3_600_000);
    // The opening frame and one more. Before any id, there is none to name: the client keeps its
    // own.
    settings.outbox.frames_max = 2;
    let mut relay = Relay::new(settings, T0);
    relay
        .receive(&message(vec![unlogged(), unlogged(), logged(1)], false))
        .unwrap();
    assert!(relay.is_closing());
    assert_eq!(relay.last_seq(), None);
    assert_eq!(
        written(&mut relay, T0),
        format!("{OPEN}{RESET}event: lagging\ndata: {{}}\n\n")
    );
    assert_eq!(relay.poll(T0), RelayPoll::End);

    // With an id queued, `lagging` names it, in the epoch the hub's messages carry.
    let mut relay = Relay::new(settings, T0);
    relay
        .receive(&message(vec![logged(4), logged(5)], false))
        .unwrap();
    assert_eq!(
        written(&mut relay, T0),
        format!(
            "{OPEN}{}event: lagging\ndata: {{\"resume\":\"{EPOCH}-4\"}}\n\n",
            event(4)
        )
    );
    assert_eq!(relay.poll(T0), RelayPoll::End);
}

const DRAIN_MS: u64 = 30_000;

fn lagging(resume: Option<u64>) -> String {
    match resume {
        Some(seq) => format!("event: lagging\ndata: {{\"resume\":\"{EPOCH}-{seq}\"}}\n\n"),
        None => "event: lagging\ndata: {}\n\n".into(),
    }
}

#[test]
fn a_frame_past_the_granted_room_closes_with_lagging_keeping_what_fits() {
    // A relay that keeps up (nothing of earlier messages waits) keeps the frames that fit the room:
    // a replay larger than the room still gets somewhere, and lagging names the last id queued.
    let one = event(1).len();
    let mut relay = relay_with_open_written();
    relay
        .receive_within(
            &message(vec![logged(1), logged(2), logged(3)], false),
            T0,
            2 * one,
        )
        .unwrap();
    assert!(relay.is_closing());
    assert_eq!(relay.last_seq(), Some(2));
    assert_eq!(
        written(&mut relay, T0),
        format!("{}{}{}", event(1), event(2), lagging(Some(2)))
    );
    assert_eq!(relay.poll(T0), RelayPoll::End);

    // `usize::MAX` grants everything the outbox takes: `receive` is that.
    let mut relay = relay_with_open_written();
    relay
        .receive_within(&message(vec![logged(1)], false), T0, usize::MAX)
        .unwrap();
    assert_eq!(written(&mut relay, T0), event(1));
}

#[test]
fn a_relay_behind_that_needs_more_room_frees_its_queue() {
    let mut relay = relay_with_open_written();
    let one = event(1).len();
    relay
        .receive_within(&message(vec![logged(1)], false), T0, 3 * one)
        .unwrap();
    assert_eq!(written(&mut relay, T0), event(1));
    // The client stops taking: two events wait.
    relay
        .receive_within(&message(vec![logged(2), logged(3)], false), T0, 3 * one)
        .unwrap();
    assert!(!relay.is_closing());
    assert_eq!(relay.queued_bytes(), 2 * one);
    // The caller's budget shrank meanwhile (other relays queued bytes): the next frame does not fit
    // what is left. What waits is dropped at once, giving the room back, and lagging names the last
    // id written: resuming from it repeats nothing and skips nothing.
    relay
        .receive_within(&message(vec![logged(4)], false), T0, 3 * one - 1)
        .unwrap();
    assert!(relay.is_closing());
    assert_eq!(relay.queued_bytes(), lagging(Some(1)).len());
    assert_eq!(relay.last_seq(), Some(1));
    assert_eq!(relay.drain_deadline_ms(), None);
    assert_eq!(written(&mut relay, T0), lagging(Some(1)));
    assert_eq!(relay.poll(T0), RelayPoll::End);

    // Behind before any id was written: lagging names none, so the client keeps its own cursor.
    let mut relay = relay_with_open_written();
    relay
        .receive_within(&message(vec![logged(1)], false), T0, one)
        .unwrap();
    relay
        .receive_within(&message(vec![logged(2)], false), T0, one)
        .unwrap();
    assert_eq!(written(&mut relay, T0), lagging(None));
    assert_eq!(relay.poll(T0), RelayPoll::End);
}

#[test]
fn frames_the_writer_does_not_take_within_the_drain_bound_are_dropped() {
    let mut relay = relay().with_drain_ms_max(DRAIN_MS);
    // The opening frame waits from the start.
    assert_eq!(relay.drain_deadline_ms(), Some(T0 + DRAIN_MS));
    assert_eq!(written(&mut relay, T0), OPEN);
    assert_eq!(relay.drain_deadline_ms(), None, "nothing waits");
    relay
        .receive_within(
            &message(vec![logged(1), logged(2)], false),
            T0 + 10,
            usize::MAX,
        )
        .unwrap();
    assert_eq!(
        written(&mut relay, T0 + 20),
        format!("{}{}", event(1), event(2))
    );

    // The client stops reading: the writer takes nothing more. Frames arrive and wait; the bound
    // runs from the first of them, not from the latest.
    let first = T0 + 1_000;
    relay
        .receive_within(&message(vec![logged(3)], false), first, usize::MAX)
        .unwrap();
    relay
        .receive_within(
            &message(vec![logged(4)], false),
            first + DRAIN_MS - 1,
            usize::MAX,
        )
        .unwrap();
    assert_eq!(relay.drain_deadline_ms(), Some(first + DRAIN_MS));
    relay.check_drain(first + DRAIN_MS - 1);
    assert!(!relay.is_closing(), "not yet due");
    relay.check_drain(first + DRAIN_MS);
    // Everything waiting is dropped; lagging names the last id the writer took, so resuming from it
    // leaves no gap and repeats nothing.
    assert!(relay.is_closing());
    assert_eq!(relay.queued_bytes(), lagging(Some(2)).len());
    assert_eq!(
        relay.drain_deadline_ms(),
        None,
        "the lagging frame has no deadline"
    );
    relay
        .receive_within(
            &message(vec![logged(5)], false),
            first + DRAIN_MS,
            usize::MAX,
        )
        .unwrap();
    assert_eq!(
        relay.queued_bytes(),
        lagging(Some(2)).len(),
        "closing takes no more"
    );
    assert_eq!(written(&mut relay, first + 2 * DRAIN_MS), lagging(Some(2)));
    assert_eq!(relay.poll(first + 2 * DRAIN_MS), RelayPoll::End);
}

#[test]
fn the_drain_bound_is_checked_on_each_message_and_spares_a_writer_that_keeps_up() {
    // A writer that takes its frames within the bound is never cut, however long the stream lives.
    let mut relay = relay().with_drain_ms_max(DRAIN_MS);
    let mut now = T0;
    assert_eq!(written(&mut relay, now), OPEN);
    for seq in 1..=10 {
        now += DRAIN_MS - 1;
        relay
            .receive_within(&message(vec![logged(seq)], false), now, usize::MAX)
            .unwrap();
        now += DRAIN_MS - 1;
        relay.check_drain(now);
        assert_eq!(written(&mut relay, now), event(seq));
    }
    assert!(!relay.is_closing());

    // A message that arrives after the waiting frames' deadline drops them first and is refused:
    // no timer is needed when messages keep coming. A client that took nothing gets `{}`.
    let mut relay =
        Relay::new(settings(HeartbeatProfile::Comment, 3_600_000), T0).with_drain_ms_max(DRAIN_MS);
    relay
        .receive_within(&message(vec![logged(1)], false), T0, usize::MAX)
        .unwrap();
    relay
        .receive_within(&message(vec![logged(2)], false), T0 + DRAIN_MS, usize::MAX)
        .unwrap();
    assert!(relay.is_closing());
    assert_eq!(written(&mut relay, T0 + DRAIN_MS), lagging(None));
    assert_eq!(relay.poll(T0 + DRAIN_MS), RelayPoll::End);
}

#[test]
fn an_overflowed_relay_frees_its_prefix_at_the_drain_bound() {
    // An overflow keeps the accepted prefix for the client to read; a client that never reads it
    // holds it only until the drain bound, and then lagging names what it was actually given.
    let mut settings = settings(HeartbeatProfile::Comment, 3_600_000);
    settings.outbox.frames_max = 3;
    let mut relay = Relay::new(settings, T0).with_drain_ms_max(DRAIN_MS);
    assert_eq!(written(&mut relay, T0), OPEN);
    relay
        .receive_within(&message(vec![logged(1)], false), T0, usize::MAX)
        .unwrap();
    assert_eq!(written(&mut relay, T0), event(1));
    relay
        .receive_within(
            &message(vec![logged(2), logged(3), logged(4), logged(5)], false),
            T0 + 1,
            usize::MAX,
        )
        .unwrap();
    assert!(relay.is_closing());
    assert_eq!(
        relay.queued_bytes(),
        event(2).len() + event(3).len() + event(4).len() + lagging(Some(4)).len()
    );
    relay.check_drain(T0 + 1 + DRAIN_MS);
    assert_eq!(relay.queued_bytes(), lagging(Some(1)).len());
    assert_eq!(written(&mut relay, T0 + 2 * DRAIN_MS), lagging(Some(1)));
    assert_eq!(relay.poll(T0 + 2 * DRAIN_MS), RelayPoll::End);
}

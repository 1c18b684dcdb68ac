//! Relay: exact bytes for the opening frame, fan-in of hub messages, the seam rule, the ways a stream
//! ends (close, hub gone, maximum age, a corrupt message, an overflow) and heartbeats in each profile.
//! The wire format itself is tested in `src/wire.rs`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use bytes::Bytes;
use herald_core::{
    HeartbeatPolicy, HeartbeatProfile, HubMessage, OutboxLimits, Relay, RelayPoll, RelaySettings,
    WireError, WireFrame,
};

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
        // Any write postpones the next heartbeat: an active stream needs none.
        relay.receive(&message(vec![logged(1)], false)).unwrap();
        assert_eq!(written(&mut relay, at + 700), event(1), "{profile:?}");
        assert_eq!(
            relay.poll(at + 701),
            wait(at + 700 + HEARTBEAT_MS),
            "{profile:?}"
        );
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
    // The opening frame and one more. Before any id, there is none to name: the client keeps its own.
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

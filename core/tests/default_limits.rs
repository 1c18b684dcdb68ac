//! herald-core's defaults work together: a subscriber's queue at `OutboxLimits::default()` holds a
//! full replay of a log at `LogLimits::default()` with the control frames that go out before it
//! (the opening frame, a `reset` carrying the plan trackers), so a client resuming from the oldest
//! id is not closed as `lagging`.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::control::{open_frame, reset_frame};
use herald_core::heartbeat::{HeartbeatPolicy, HeartbeatProfile};
use herald_core::hub::Subscription;
use herald_core::log::{GapReason, LogEntry, LogLimits};
use herald_core::outbox::OutboxLimits;
use herald_core::plan::{PlanCommand, PlanRequest, PlanSession};
use herald_core::relay::{RelayPoll, RelaySettings};
use herald_core::{EventName, Filter, Frame, Hub, Position, PublishLimits, Relay, ReplayLog};

const EPOCH: u64 = 1_700_000_000_000;
const T0: u64 = 1_772_188_200_000;

/// A log at its default limits, full on both: 1,000 events of 1,048 bytes (1,048,000 of 1,048,576).
fn full_default_log() -> ReplayLog {
    let limits = LogLimits::default();
    let mut log = ReplayLog::new(EPOCH, limits);
    let name = EventName::new("job").unwrap();
    let frame_bytes = limits.bytes_max / limits.events_max;
    for _ in 0..limits.events_max {
        let position = log.next_position();
        let id = position.to_event_id();
        let one = Frame::new().id(&id).event(&name).data("x").to_bytes().len();
        let data = "x".repeat(frame_bytes - one + 1);
        let frame = Frame::new().id(&id).event(&name).data(&data).to_bytes();
        assert_eq!(frame.len(), frame_bytes);
        let evicted = log.push(LogEntry {
            seq: position.seq,
            name: name.clone(),
            category: None,
            frame,
        });
        assert_eq!(evicted.through_seq, None, "the log holds them all");
    }
    assert_eq!(log.len(), limits.events_max);
    assert!(
        log.bytes() + frame_bytes > limits.bytes_max,
        "full on bytes too"
    );
    log
}

/// Plan trackers that are large, as a running plan's are: overview and apply near 60 KiB each.
fn large_snapshot() -> PlanSession {
    let mut session = PlanSession::new();
    session.open_apply(PlanRequest::default(), T0);
    let big = "y".repeat(60 * 1024);
    let start =
        |stage| format!(r#"{{"op":"start","stage":"{stage}","details":{{"big":"{big}"}}}}"#);
    for body in [
        start("validation"),
        r#"{"op":"stop","stage":"validation","success":true}"#.into(),
        r#"{"op":"finish","tracker":"overview","success":true}"#.into(),
        start("creation"),
    ] {
        session
            .apply(PlanCommand::from_json(body.as_bytes()).unwrap(), T0)
            .unwrap();
    }
    session
}

fn settings(outbox: OutboxLimits) -> RelaySettings {
    RelaySettings {
        outbox,
        heartbeat: HeartbeatPolicy::new(HeartbeatProfile::Comment, 15_000),
        retry_ms: 3_000,
        max_age_ms: 900_000,
    }
}

/// What a relay with `outbox` writes for a client that resumes with a malformed id from a full log:
/// the opening frame, a `reset` with the trackers, then every event.
fn full_replay(outbox: OutboxLimits) -> (Relay, String) {
    let hub = Hub::from_log(full_default_log(), false);
    let session = large_snapshot();
    let snapshot = session.snapshot();
    assert!(snapshot.to_json_object().len() > 120 * 1024);
    let Subscription::Accept { message, .. } =
        hub.subscribe(Filter::all(), Some("not-an-id"), Some(&snapshot))
    else {
        panic!("a running stream accepts");
    };
    assert_eq!(message.frames.len(), 1 + LogLimits::default().events_max);
    let mut relay = Relay::new(settings(outbox), T0);
    // Through the wire, as the Worker receives it.
    relay.receive(&message.encode()).unwrap();
    let RelayPoll::Write(bytes) = relay.poll(T0) else {
        panic!("the relay writes what it queued");
    };
    (relay, String::from_utf8(bytes).unwrap())
}

#[test]
fn a_full_replay_fits_the_default_outbox_with_its_control_frames() {
    let (relay, written) = full_replay(OutboxLimits::default());
    assert!(!written.contains("event: lagging"), "no lagging");
    assert!(!relay.is_closing(), "the stream goes on live");
    assert!(written.starts_with("retry: 3000\n: open\n\nevent: reset\n"));
    let ids = written
        .lines()
        .filter(|line| line.starts_with("id: "))
        .count();
    assert_eq!(ids, 1000, "every event once");
    let last = written.rsplit("\n\n").nth(1).unwrap();
    assert!(
        last.starts_with(&format!("id: {EPOCH}-1000\n")),
        "the newest event last"
    );
    assert_eq!(relay.last_seq(), Some(1000));
}

#[test]
fn the_old_defaults_equal_to_the_log_overflowed_into_lagging() {
    // What `OutboxLimits::default()` was: the log's own limits, with no room for the control
    // frames.
    let log = LogLimits::default();
    let (relay, written) = full_replay(OutboxLimits {
        frames_max: log.events_max,
        bytes_max: log.bytes_max,
    });
    assert!(written.contains("event: lagging"));
    assert!(relay.is_closing());
}

#[test]
fn the_headroom_covers_the_largest_control_frames() {
    let defaults = OutboxLimits::default();
    let log = LogLimits::default();
    assert_eq!(defaults, OutboxLimits::for_log(log));
    // The largest opening frame, and a reset whose snapshot holds three trackers at the default
    // event size (the Worker refuses a plan move that makes a larger one).
    let event_bytes_max = PublishLimits::default().event_bytes_max;
    let tracker = format!("\"{}\"", "t".repeat(event_bytes_max - 2));
    let snapshot =
        format!(r#"{{"plan-overview":{tracker},"plan-apply":{tracker},"plan-cancel":{tracker}}}"#);
    let oldest = Position {
        epoch: u64::MAX,
        seq: u64::MAX,
    };
    let control = open_frame(u64::MAX).len()
        + reset_frame(GapReason::OtherEpoch, Some(oldest), Some(&snapshot)).len();
    assert!(
        log.bytes_max + control <= defaults.bytes_max,
        "{control} bytes of control frames do not fit"
    );
    assert!(log.events_max + 2 <= defaults.frames_max);
    // And each of them is far from using the whole headroom: live events fit beside them.
    assert!(control < OutboxLimits::HEADROOM_BYTES);
}

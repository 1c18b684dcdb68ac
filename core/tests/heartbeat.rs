//! Heartbeat policy: a schedule table and exact frames per profile.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::heartbeat::{
    HeartbeatDue, HeartbeatPolicy, HeartbeatProfile, HEARTBEAT_MS_DEFAULT,
};

/// `Ok((frame, next_at_ms))` when due now, `Err(at_ms)` when later.
type Due = Result<(&'static str, u64), u64>;

fn poll(policy: HeartbeatPolicy, now_ms: u64, last_write_ms: u64) -> Result<(String, u64), u64> {
    match policy.poll(now_ms, last_write_ms) {
        HeartbeatDue::Now { frame, next_at_ms } => {
            Ok((String::from_utf8(frame.to_vec()).unwrap(), next_at_ms))
        }
        HeartbeatDue::Later { at_ms } => Err(at_ms),
    }
}

#[test]
fn schedule_and_frames() {
    use HeartbeatProfile::{Comment, SluiceHeartbeat, SqlMeshPing};
    let cases: &[(HeartbeatProfile, u64, u64, u64, Due)] = &[
        // (profile, interval_ms, now_ms, last_write_ms, expected)
        (Comment, 15_000, 14_999, 0, Err(15_000)),
        (Comment, 15_000, 15_000, 0, Ok((": heartbeat\n\n", 30_000))),
        // A late poll schedules from now, not from the missed slot.
        (Comment, 15_000, 55_000, 0, Ok((": heartbeat\n\n", 70_000))),
        // Any write resets the clock.
        (Comment, 15_000, 20_000, 10_000, Err(25_000)),
        // A clock that went backwards waits, it does not fire.
        (Comment, 15_000, 5_000, 10_000, Err(25_000)),
        // Interval 0 behaves as 1 ms so the schedule always moves forward.
        (Comment, 0, 7, 7, Err(8)),
        (Comment, 0, 8, 7, Ok((": heartbeat\n\n", 9))),
        (Comment, 15_000, u64::MAX - 1, u64::MAX - 5, Err(u64::MAX)),
        (
            Comment,
            15_000,
            u64::MAX,
            u64::MAX - 5,
            Ok((": heartbeat\n\n", u64::MAX)),
        ),
        (
            SqlMeshPing,
            15_000,
            1_712_345_678_901,
            1_712_345_663_901,
            Ok((
                "event: ping\ndata: {\"timestamp\":1712345678901}\n\n",
                1_712_345_693_901,
            )),
        ),
        (
            SqlMeshPing,
            15_000,
            1_712_345_678_900,
            1_712_345_663_901,
            Err(1_712_345_678_901),
        ),
        (
            SluiceHeartbeat,
            15_000,
            1_772_188_215_000,
            0,
            Ok((
                "event: heartbeat\ndata: {\"timestamp\":\"2026-02-27T10:30:15.000Z\"}\n\n",
                1_772_188_230_000,
            )),
        ),
        (
            SluiceHeartbeat,
            1_000,
            951_868_799_999,
            951_868_798_000,
            Ok((
                "event: heartbeat\ndata: {\"timestamp\":\"2000-02-29T23:59:59.999Z\"}\n\n",
                951_868_800_999,
            )),
        ),
        (
            SluiceHeartbeat,
            1_000,
            1_000,
            0,
            Ok((
                "event: heartbeat\ndata: {\"timestamp\":\"1970-01-01T00:00:01.000Z\"}\n\n",
                2_000,
            )),
        ),
    ];
    for &(profile, interval_ms, now_ms, last_write_ms, expected) in cases {
        let got = poll(
            HeartbeatPolicy::new(profile, interval_ms),
            now_ms,
            last_write_ms,
        );
        let expected = expected.map(|(frame, next)| (frame.to_owned(), next));
        assert_eq!(
            got, expected,
            "{profile:?} every {interval_ms} ms, now {now_ms}, last {last_write_ms}"
        );
    }
}

#[test]
fn frames_carry_json_and_no_id() {
    for profile in [
        HeartbeatProfile::SqlMeshPing,
        HeartbeatProfile::SluiceHeartbeat,
        HeartbeatProfile::Comment,
    ] {
        let frame = HeartbeatPolicy::new(profile, HEARTBEAT_MS_DEFAULT).frame(1_712_345_678_901);
        let text = core::str::from_utf8(&frame).unwrap();
        assert!(text.ends_with("\n\n"), "{text:?}");
        assert!(
            !text.lines().any(|line| line.starts_with("id")),
            "heartbeat must not move the cursor: {text:?}"
        );
        let data: Vec<&str> = text
            .lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .collect();
        match profile {
            HeartbeatProfile::SqlMeshPing => {
                let value: serde_json::Value = serde_json::from_str(&data.join("\n")).unwrap();
                assert_eq!(
                    value,
                    serde_json::json!({ "timestamp": 1_712_345_678_901_u64 })
                );
            }
            HeartbeatProfile::SluiceHeartbeat => {
                let value: serde_json::Value = serde_json::from_str(&data.join("\n")).unwrap();
                assert_eq!(
                    value,
                    serde_json::json!({ "timestamp": "2024-04-05T19:34:38.901Z" })
                );
            }
            HeartbeatProfile::Comment => assert!(data.is_empty()),
        }
    }
}

#[test]
fn default_policy() {
    assert_eq!(HEARTBEAT_MS_DEFAULT, 15_000);
    let policy = HeartbeatPolicy::default();
    assert_eq!(
        (policy.profile, policy.interval_ms),
        (HeartbeatProfile::Comment, HEARTBEAT_MS_DEFAULT)
    );
}

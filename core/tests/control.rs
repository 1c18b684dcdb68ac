//! Control frames read back as a client would: event name, JSON data, and never an `id:` line.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::control::{lagging_frame, open_frame, reset_frame};
use herald_core::log::GapReason;
use herald_core::Position;
use serde_json::{json, Value};

/// The frame's fields as (name, value) pairs, split the way the spec does ("field: value", one
/// optional space removed), asserting the frame is one LF-terminated block.
fn fields(frame: &[u8]) -> Vec<(String, String)> {
    let text = core::str::from_utf8(frame).unwrap();
    let block = text
        .strip_suffix("\n\n")
        .expect("frame ends with a blank line");
    assert!(!block.contains("\n\n") && !block.contains('\r'), "{text:?}");
    block
        .split('\n')
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            (
                name.to_owned(),
                value.strip_prefix(' ').unwrap_or(value).to_owned(),
            )
        })
        .collect()
}

/// Event name and JSON data as the client's `MessageEvent` would carry them.
fn event(frame: &[u8]) -> (String, Value) {
    let fields = fields(frame);
    assert!(
        fields.iter().all(|(name, _)| name != "id"),
        "control frames carry no id: {fields:?}"
    );
    let name = fields
        .iter()
        .find(|(name, _)| name == "event")
        .map(|(_, value)| value.clone())
        .unwrap();
    let data: Vec<&str> = fields
        .iter()
        .filter(|(name, _)| name == "data")
        .map(|(_, value)| value.as_str())
        .collect();
    (name, serde_json::from_str(&data.join("\n")).unwrap())
}

#[test]
fn reset_carries_reason_oldest_and_snapshot() {
    let oldest = Position {
        epoch: 1_700_000_000_000,
        seq: 7,
    };
    let reasons = [
        GapReason::Evicted,
        GapReason::OtherEpoch,
        GapReason::Malformed,
        GapReason::Ahead,
    ];
    for reason in reasons {
        let (name, data) = event(&reset_frame(reason, Some(oldest), None));
        assert_eq!(name, "reset");
        assert_eq!(
            data,
            json!({ "reason": reason.as_str(), "oldest": "1700000000000-7" })
        );
        let named = Position::parse(data["oldest"].as_str().unwrap()).unwrap();
        assert_eq!(named, oldest);

        let (_, data) = event(&reset_frame(
            reason,
            None,
            Some("{\n  \"stages\": [1, 2]\n}"),
        ));
        assert_eq!(
            data,
            json!({ "reason": reason.as_str(), "oldest": null, "snapshot": { "stages": [1, 2] } })
        );
    }
}

#[test]
fn lagging_names_resume_id() {
    let (name, data) = event(&lagging_frame(Position { epoch: 3, seq: 99 }));
    assert_eq!(
        (name.as_str(), data),
        ("lagging", json!({ "resume": "3-99" }))
    );
}

#[test]
fn open_frame_sets_retry_and_dispatches_nothing() {
    let frame = open_frame(3000);
    assert!(frame.starts_with(b"retry: 3000\n"));
    let fields = fields(&frame);
    assert_eq!(fields.iter().filter(|(name, _)| name == "retry").count(), 1);
    // A comment line (empty field name) flushes a body byte; no data means no event fires.
    assert!(fields.iter().any(|(name, _)| name.is_empty()));
    assert!(fields
        .iter()
        .all(|(name, _)| name != "data" && name != "id"));
}

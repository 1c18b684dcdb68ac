//! Control frames: the hub's own messages to a subscriber (`reset`, `lagging`, and the opening
//! `retry:` frame).
//!
//! None of them carries an `id:` line. The browser copies every `id:` it sees into its
//! last-event-ID buffer and sends it back on reconnect, so a synthetic id on a control frame would
//! move the client's cursor past real events it never received (see NVIDIA-AI-Blueprints/aiq#272 in
//! the reference notes, pain point d6).

use alloc::format;
use alloc::string::{String, ToString};

use bytes::Bytes;

use crate::log::{GapReason, Position};
use crate::{EventName, Frame};

/// Comment line written after the opening `retry:` line.
///
/// Some intermediaries hold the response until the first body bytes arrive; a comment is ignored by
/// every client, so it is the cheapest way to make the first write non-empty (Mercure writes `:\n`
/// for the same reason).
const OPEN_COMMENT: &str = "open";

/// Builds the in-band `reset` event telling a resuming client that its `Last-Event-ID` cannot be
/// honoured.
///
/// The spec has no way to say "your cursor is gone" (whatwg/html#8297), so the hub says it in-band:
/// `event: reset` with data `{"reason":"<reason>","oldest":"<epoch>-<seq>"|null}`, plus
/// `"snapshot":<json>` when `snapshot_json` is given. `reason` is [`GapReason::as_str`]; `oldest`
/// is the oldest position still retained, or `null` when the log is empty.
///
/// `snapshot_json` must be one valid JSON value; it is embedded verbatim (a multi-line value is
/// split into several `data:` lines, which the client joins back with LF, so the JSON survives).
#[must_use]
pub fn reset_frame(
    reason: GapReason,
    oldest: Option<Position>,
    snapshot_json: Option<&str>,
) -> Bytes {
    debug_assert!(
        snapshot_json
            .is_none_or(|json| serde_json::from_str::<serde::de::IgnoredAny>(json).is_ok()),
        "reset snapshot must be valid JSON"
    );
    let mut data = String::with_capacity(64 + snapshot_json.map_or(0, str::len));
    data.push_str("{\"reason\":\"");
    data.push_str(reason.as_str());
    data.push_str("\",\"oldest\":");
    match oldest {
        // A position is digits and one '-', so it needs no JSON escaping.
        Some(position) => {
            data.push('"');
            data.push_str(&position.to_string());
            data.push('"');
        }
        None => data.push_str("null"),
    }
    if let Some(json) = snapshot_json {
        data.push_str(",\"snapshot\":");
        data.push_str(json);
    }
    data.push('}');
    let name = EventName::from_static("reset");
    Frame::new().event(&name).data(&data).to_bytes()
}

/// Builds the `lagging` event an outbox queues last before it closes a slow subscriber.
///
/// Data is `{"resume":"<epoch>-<seq>"}`: the id of the last event the subscriber was sent, which is
/// also what its browser will send back as `Last-Event-ID` when it reconnects.
#[must_use]
pub fn lagging_frame(resume: Position) -> Bytes {
    lagging_frame_with(&format!("{{\"resume\":\"{resume}\"}}"))
}

/// The `lagging` event for a subscriber that overflowed before it was sent any event with an id.
///
/// There is no position to name: the client's own cursor (whatever it connected with) is still the
/// right one to resume from, so the data is `{}` and the client simply reconnects with what it has.
pub(crate) fn lagging_frame_without_resume() -> Bytes {
    lagging_frame_with("{}")
}

fn lagging_frame_with(data: &str) -> Bytes {
    let name = EventName::from_static("lagging");
    Frame::new().event(&name).data(data).to_bytes()
}

/// Builds the first frame of every stream: `retry: <retry_ms>\n: open\n\n`.
///
/// The `retry:` line sets the client's reconnection delay; the comment line makes sure the first
/// write has a body byte that flushes headers through buffering intermediaries. No event is
/// dispatched (there is no `data:` line) and no `id:` is sent.
#[must_use]
pub fn open_frame(retry_ms: u64) -> Bytes {
    // Written by hand rather than with `Frame`, whose field order puts comments first: the brief
    // fixes `retry:` as the very first line. Both lines are safe by construction (digits and a
    // constant).
    Bytes::from(format!("retry: {retry_ms}\n: {OPEN_COMMENT}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_frame_exact_bytes() {
        let oldest = Some(Position {
            epoch: 1_700_000_000_000,
            seq: 42,
        });
        let cases: [(GapReason, Option<Position>, Option<&str>, &str); 5] = [
            (
                GapReason::Evicted,
                oldest,
                None,
                "event: reset\ndata: {\"reason\":\"evicted\",\"oldest\":\"1700000000000-42\"}\n\n",
            ),
            (
                GapReason::OtherEpoch,
                None,
                None,
                "event: reset\ndata: {\"reason\":\"other_epoch\",\"oldest\":null}\n\n",
            ),
            (
                GapReason::Malformed,
                oldest,
                Some("{\"stages\":[]}"),
                "event: reset\ndata: {\"reason\":\"malformed\",\"oldest\":\"1700000000000-42\",\"snapshot\":{\"stages\":[]}}\n\n",
            ),
            (
                GapReason::Ahead,
                None,
                Some("null"),
                "event: reset\ndata: {\"reason\":\"ahead\",\"oldest\":null,\"snapshot\":null}\n\n",
            ),
            // A pretty-printed snapshot becomes several data lines; the client joins them with LF.
            (
                GapReason::Evicted,
                None,
                Some("{\n\"a\": 1\n}"),
                "event: reset\ndata: {\"reason\":\"evicted\",\"oldest\":null,\"snapshot\":{\ndata: \"a\": 1\ndata: }}\n\n",
            ),
        ];
        for (reason, oldest, snapshot, expected) in cases {
            let frame = reset_frame(reason, oldest, snapshot);
            assert_eq!(
                core::str::from_utf8(&frame).unwrap(),
                expected,
                "{reason:?} {oldest:?} {snapshot:?}"
            );
        }
    }

    #[test]
    fn lagging_frames_exact_bytes() {
        let frame = lagging_frame(Position { epoch: 7, seq: 12 });
        assert_eq!(
            &frame[..],
            b"event: lagging\ndata: {\"resume\":\"7-12\"}\n\n"
        );
        let frame = lagging_frame_without_resume();
        assert_eq!(&frame[..], b"event: lagging\ndata: {}\n\n");
    }

    #[test]
    fn open_frame_exact_bytes() {
        assert_eq!(&open_frame(3000)[..], b"retry: 3000\n: open\n\n");
        assert_eq!(&open_frame(0)[..], b"retry: 0\n: open\n\n");
        assert_eq!(
            &open_frame(u64::MAX)[..],
            b"retry: 18446744073709551615\n: open\n\n"
        );
    }
}

//! Live reads and caching (PROTOCOL.md §5.8, §10): SSE `data` and `control` events, cursors, ETags.

use alloc::string::String;
use alloc::vec::Vec;

use base64::Engine as _;

use super::offset::Offset;

/// `Cache-Control` of a catch-up read (§10.1): cacheable for a minute, `private` because every
/// Herald stream is behind a credential ("servers SHOULD use `private` instead of `public`" for
/// streams that "may contain user-specific or confidential data").
pub const CACHE_CONTROL_CATCH_UP: &str = "private, max-age=60, stale-while-revalidate=300";

/// `Cache-Control` of `HEAD`, `offset=now` and long-poll `204` answers (§5.5, §8, §10.1): never
/// cached, since they describe the tail, which moves.
pub const CACHE_CONTROL_NO_STORE: &str = "no-store";

/// `Cache-Control` of an SSE response: a live stream is never served from a cache.
pub const CACHE_CONTROL_SSE: &str = "no-cache";

/// The cursor interval (§10.1 "default: 20 seconds").
pub const CURSOR_INTERVAL_MS: i64 = 20_000;

/// The cursor epoch (§10.1 "default: October 9, 2024 00:00:00 UTC"), in ms since the Unix epoch.
pub const CURSOR_EPOCH_MS: i64 = 1_728_432_000_000;

/// The `Stream-Cursor` of a live response at `now_ms` (§10.1): the interval number, and strictly
/// greater than the client's `cursor` when that is not behind (by `jitter_s`, 1..=3600, which the
/// caller draws at random: "adding random jitter of 1-3600 seconds").
#[must_use]
pub fn next_cursor(now_ms: i64, client_cursor: Option<&str>, jitter_s: u32) -> String {
    let interval = (now_ms - CURSOR_EPOCH_MS)
        .div_euclid(CURSOR_INTERVAL_MS)
        .max(0);
    let client = client_cursor.and_then(|c| c.parse::<i64>().ok());
    let cursor = match client {
        Some(client) if client >= interval => {
            let jitter_intervals = (i64::from(jitter_s.clamp(1, 3600)) * 1000)
                .div_euclid(CURSOR_INTERVAL_MS)
                .max(1);
            client.saturating_add(jitter_intervals)
        }
        _ => interval,
    };
    alloc::format!("{cursor}")
}

/// The `ETag` of a catch-up read (§5.6 `{internal_stream_id}:{start_offset}:{end_offset}`), with
/// `:c` when the stream is closed (§10.1 "ETags MUST vary with the stream's closure status").
#[must_use]
pub fn etag(stream_id: &str, start: Offset, end: Offset, closed: bool) -> String {
    let closed = if closed { ":c" } else { "" };
    alloc::format!("\"{stream_id}:{start}:{end}{closed}\"")
}

/// Whether an `If-None-Match` value names `etag` (a list, or `*`).
#[must_use]
pub fn if_none_match_hits(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// An SSE `data` event (§5.8) carrying `payload`: text as it is for `text/*` and JSON streams
/// (`text == true`), standard base64 otherwise. Each line of the payload becomes a `data:` line, so
/// no payload can end the event early.
#[must_use]
pub fn sse_data_event(payload: &[u8], text: bool) -> Vec<u8> {
    let mut frame = Vec::from(*b"event: data\n");
    let encoded;
    let body: &[u8] = if text {
        payload
    } else {
        encoded = base64::engine::general_purpose::STANDARD.encode(payload);
        encoded.as_bytes()
    };
    let mut rest = body;
    loop {
        let end = rest.iter().position(|b| *b == b'\n' || *b == b'\r');
        frame.extend_from_slice(b"data:");
        match end {
            Some(at) => {
                frame.extend_from_slice(&rest[..at]);
                frame.push(b'\n');
                let skip = if rest[at] == b'\r' && rest.get(at + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                rest = &rest[at + skip..];
            }
            None => {
                frame.extend_from_slice(rest);
                frame.push(b'\n');
                break;
            }
        }
    }
    frame.push(b'\n');
    frame
}

/// What a `control` event says (§5.8).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Control<'a> {
    /// `streamNextOffset`: where to resume.
    pub next_offset: Offset,
    /// `streamCursor`: omitted when the stream is closed.
    pub cursor: Option<&'a str>,
    /// `upToDate`: the reader has everything there is.
    pub up_to_date: bool,
    /// `streamClosed`: the stream is closed and everything was sent.
    pub closed: bool,
}

/// An SSE `control` event: one line of JSON with camelCase fields.
#[must_use]
pub fn sse_control_event(control: &Control<'_>) -> Vec<u8> {
    let mut json = alloc::format!("{{\"streamNextOffset\":\"{}\"", control.next_offset);
    if let (Some(cursor), false) = (control.cursor, control.closed) {
        json.push_str(",\"streamCursor\":");
        json.push_str(&serde_json::to_string(cursor).unwrap_or_default());
    }
    if control.up_to_date || control.closed {
        json.push_str(",\"upToDate\":true");
    }
    if control.closed {
        json.push_str(",\"streamClosed\":true");
    }
    json.push('}');
    let mut frame = Vec::from(*b"event: control\ndata:");
    frame.extend_from_slice(json.as_bytes());
    frame.extend_from_slice(b"\n\n");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Parser;

    #[test]
    fn cursors_move_forward() {
        let now = CURSOR_EPOCH_MS + 1000 * CURSOR_INTERVAL_MS + 5;
        assert_eq!(next_cursor(now, None, 1), "1000");
        assert_eq!(next_cursor(now, Some("999"), 1), "1000");
        assert_eq!(next_cursor(now, Some("1000"), 1), "1001");
        assert_eq!(next_cursor(now, Some("1000"), 3600), "1180");
        assert_eq!(next_cursor(now, Some("junk"), 5), "1000");
    }

    #[test]
    fn etags() {
        let tag = etag("s", Offset(0), Offset(5), false);
        assert_eq!(
            tag,
            "\"s:0000000000000000_0000000000000000:0000000000000000_0000000000000005\""
        );
        assert_ne!(tag, etag("s", Offset(0), Offset(5), true));
        assert!(if_none_match_hits(&tag, &tag));
        assert!(if_none_match_hits(&alloc::format!("\"x\", {tag}"), &tag));
        assert!(!if_none_match_hits("\"x\"", &tag));
    }

    #[test]
    fn data_events_parse_back() {
        for (payload, text) in [
            (&b"a\nb\r\nc\rd"[..], true),
            (b"", true),
            (b"\x00\x01\xff", false),
        ] {
            let frame = sse_data_event(payload, text);
            let mut parser = Parser::new();
            let mut events: Vec<(String, String)> = Vec::new();
            parser.feed(&frame, |m| {
                events.push((m.event_type.into(), m.data.into()))
            });
            assert_eq!(events.len(), 1);
            assert_eq!(events[0].0, "data");
            let data = events[0].1.as_bytes();
            if text {
                let lines: Vec<&[u8]> = payload.split(|b| *b == b'\r' || *b == b'\n').collect();
                let expected: Vec<u8> = if payload == b"a\nb\r\nc\rd" {
                    b"a\nb\nc\nd".to_vec()
                } else {
                    lines.concat()
                };
                assert_eq!(data, expected.as_slice());
            } else {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap();
                assert_eq!(decoded, payload);
            }
        }
    }

    #[test]
    fn control_event_fields() {
        let open = Control {
            next_offset: Offset(3),
            cursor: Some("7"),
            up_to_date: true,
            closed: false,
        };
        assert_eq!(
            sse_control_event(&open),
            b"event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000003\",\"streamCursor\":\"7\",\"upToDate\":true}\n\n"
        );
        let closed = Control {
            closed: true,
            ..open
        };
        assert_eq!(
            sse_control_event(&closed),
            b"event: control\ndata:{\"streamNextOffset\":\"0000000000000000_0000000000000003\",\"upToDate\":true,\"streamClosed\":true}\n\n"
        );
    }
}

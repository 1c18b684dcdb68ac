//! Parser conformance: vectors from the WHATWG spec's examples and the web-platform-tests
//! `eventsource/format-*` cases (restated as streams, not copied), each fed whole, one byte at a
//! time, and split at every index into two chunks.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use herald_core::Parser;

/// A dispatched event: (type, data, last event id).
mod common;

use common::{parse_chunks, Event};

struct Vector {
    name: &'static str,
    input: Vec<u8>,
    events: &'static [(&'static str, &'static str, &'static str)],
    last_event_id: &'static str,
    retry_ms: Option<u64>,
}

/// A vector with no `retry:` and whose last event id is that of its last event (or empty).
fn v(
    name: &'static str,
    input: impl Into<Vec<u8>>,
    events: &'static [(&'static str, &'static str, &'static str)],
) -> Vector {
    let last_event_id = events.last().map_or("", |event| event.2);
    Vector {
        name,
        input: input.into(),
        events,
        last_event_id,
        retry_ms: None,
    }
}

impl Vector {
    fn last_event_id(mut self, id: &'static str) -> Self {
        self.last_event_id = id;
        self
    }

    fn retry_ms(mut self, retry_ms: u64) -> Self {
        self.retry_ms = Some(retry_ms);
        self
    }
}

fn long_comment_stream() -> Vec<u8> {
    let long = "x".repeat(2048);
    format!("data:1\r:\0\n:\r\ndata:2\n:{long}\rdata:3\n:data:fail\r:{long}\ndata:4\n\n")
        .into_bytes()
}

fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
    let mut out = if big_endian {
        vec![0xFE, 0xFF]
    } else {
        vec![0xFF, 0xFE]
    };
    for unit in text.encode_utf16() {
        out.extend_from_slice(&if big_endian {
            unit.to_be_bytes()
        } else {
            unit.to_le_bytes()
        });
    }
    out
}

fn vectors() -> Vec<Vector> {
    const M: &str = "message";
    let mut vectors = vec![
        // Byte order marks.
        v("bom stripped once", b"\xEF\xBB\xBFdata:1\n\n\xEF\xBB\xBFdata:2\n\ndata:3\n\n", &[(M, "1", ""), (M, "3", "")]),
        v("bom twice loses the first event", b"\xEF\xBB\xBF\xEF\xBB\xBFdata:1\n\ndata:2\n\ndata:3\n\n", &[(M, "2", ""), (M, "3", "")]),
        v("half a bom is content", b"\xEF\xBBdata:1\n\ndata:2\n\n", &[(M, "2", "")]),
        v("bom then blank line", b"\xEF\xBB\xBF\n\ndata:1\n\n", &[(M, "1", "")]),
        v("utf-16 le bom not honoured", utf16("data:1\n\n", false), &[]),
        v("utf-16 be bom not honoured", utf16("data:1\n\n", true), &[]),
        // Comments.
        v("comments with mixed line ends and long lines", long_comment_stream(), &[(M, "1\n2\n3\n4", "")]),
        v("comment only stream", b": hello\n:\n\n", &[]),
        v("comment does not end an event", b"data:a\n: note\ndata:b\n\n", &[(M, "a\nb", "")]),
        // Line ends.
        v("lf", b"data:1\n\ndata:2\n\n", &[(M, "1", ""), (M, "2", "")]),
        v("cr", b"data:1\r\rdata:2\r\r", &[(M, "1", ""), (M, "2", "")]),
        v("crlf", b"data:1\r\n\r\ndata:2\r\n\r\n", &[(M, "1", ""), (M, "2", "")]),
        v("mixed line ends in one event", b"data:a\rdata:b\ndata:c\r\ndata:d\r\n\n", &[(M, "a\nb\nc\nd", "")]),
        v("lf then cr is two line ends", b"data:1\n\rdata:2\n\n", &[(M, "1", ""), (M, "2", "")]),
        v("cr cr lf is two line ends", b"data:1\r\r\ndata:2\r\n\r\n", &[(M, "1", ""), (M, "2", "")]),
        v("blank lines alone dispatch nothing", b"\n\r\n\r\n\n", &[]),
        v("empty stream", b"", &[]),
        // Field parsing.
        v(
            "field parsing",
            b"data:\0\ndata:  2\rData:1\ndata\0:2\ndata:1\r\0data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n",
            &[(M, "\0\n 2\n1\n3\n\n4", "")],
        ),
        v("data alone appends an empty line", b"data:\n\ndata\ndata\n\ndata:test\n\n", &[(M, "", ""), (M, "\n", ""), (M, "test", "")]),
        v("value split at the first colon", b"data::x: y\n\n", &[(M, ":x: y", "")]),
        v("only one leading space removed", b"data:  x\n\ndata: x\n\ndata:x\n\ndata:\tx\n\n", &[(M, " x", ""), (M, "x", ""), (M, "x", ""), (M, "\tx", "")]),
        v("trailing spaces kept", b"data: x  \n\n", &[(M, "x  ", "")]),
        v("space before the colon is part of the name", b"data : x\n\n", &[]),
        v("unknown fields ignored", b"foo: bar\nfoo\ndata: x\nbar:\n\nfoo\n\n", &[(M, "x", "")]),
        v("field names are case-sensitive", b"DATA: a\n\nData: b\n\nEvent: e\ndata: c\n\nID: 7\ndata: d\n\n", &[(M, "c", ""), (M, "d", "")]),
        v("nul in data", b"data:\0\n\n", &[(M, "\0", "")]),
        v("multi-line data", b"data: YHOO\ndata: +2\ndata: 10\n\n", &[(M, "YHOO\n+2\n10", "")]),
        v("trailing empty data line kept", b"data: a\ndata:\n\n", &[(M, "a\n", "")]),
        // Event type.
        v("custom event", b"event:test\ndata:x\n\ndata:x\n\n", &[("test", "x", ""), (M, "x", "")]),
        v("empty event is message", b"event: \ndata:data\n\nevent\ndata:data\n\n", &[(M, "data", ""), (M, "data", "")]),
        v("last event field wins", b"event: a\nevent: b\ndata: x\n\n", &[("b", "x", "")]),
        v("event type reset by a blank line without data", b"event: a\n\ndata: x\n\n", &[(M, "x", "")]),
        v("event name keeps extra spaces", b"event:  a \ndata: x\n\n", &[(" a ", "x", "")]),
        // Ids.
        v("id persists", b"id: 1\ndata: 1\n\ndata:2\n\n", &[(M, "1", "1"), (M, "2", "1")]),
        v("id changes and persists", b"id: 1\ndata: 1\n\nid: 2\ndata:2\n\ndata:3\n\n", &[(M, "1", "1"), (M, "2", "2"), (M, "3", "2")]),
        v("empty id resets", b"id: 1\ndata: 1\n\nid:\ndata:2\n\ndata:3\n\n", &[(M, "1", "1"), (M, "2", ""), (M, "3", "")]),
        v("id without colon resets", b"id: 1\ndata: 1\n\nid\ndata:2\n\ndata:3\n\n", &[(M, "1", "1"), (M, "2", ""), (M, "3", "")]),
        v("id after data applies to that event", b"data: x\nid: 3\n\n", &[(M, "x", "3")]),
        v("id-only block updates the id", b"id: 5\n\ndata: x\n\n", &[(M, "x", "5")]),
        v("id-only block at the end", b"data: x\n\nid: 9\n\n", &[(M, "x", "")]).last_event_id("9"),
        v("id keeps spaces and utf-8", b"id:  a b \xE2\x80\xA6\ndata: x\n\n", &[(M, "x", " a b \u{2026}")]),
        // The spec's own example stream.
        v(
            "spec example",
            b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
            &[(M, "first event", "1"), (M, "second event", "")],
        ),
        // Retry.
        v("retry", b"retry: 2000\ndata: x\n\n", &[(M, "x", "")]).retry_ms(2000),
        v("bogus retry ignored", b"retry:2000\nretry:1000x\ndata:x\n\n", &[(M, "x", "")]).retry_ms(2000),
        v("retry with a second space ignored", b"retry:  1000\n", &[]),
        v("negative retry ignored", b"retry: -1\n", &[]),
        v("empty retry ignored", b"retry:\nretry\n", &[]),
        v("decimal retry ignored", b"retry: 1.5\nretry: 1e3\nretry: +1\n", &[]),
        v("retry leading zeros", b"retry: 007\n", &[]).retry_ms(7),
        v("huge retry saturates", b"retry: 99999999999999999999999\n", &[]).retry_ms(u64::MAX),
        v("retry applies without dispatch", b"retry: 5\ndata: x", &[]).retry_ms(5),
        // End of stream.
        v(
            "data before final empty line discarded",
            b"retry:1000\ndata:test1\n\nid:test\ndata:test2",
            &[(M, "test1", "")],
        )
        .retry_ms(1000),
        v("unterminated last line discarded", b"data: x\n", &[]),
        v("unterminated blank line", b"data: x\r", &[]),
        // UTF-8 decoding.
        v("utf-8 always", b"data:ok\xE2\x80\xA6\n\n", &[(M, "ok\u{2026}", "")]),
        v("invalid byte replaced", b"data:a\xFFb\n\n", &[(M, "a\u{FFFD}b", "")]),
        v("truncated sequence is one replacement", b"data:\xE2\x82\n\n", &[(M, "\u{FFFD}", "")]),
        v("maximal subparts", b"data:\xF0\x80\x80|\xED\xA0\x80|\xF0\x9F\x98\n\n", &[(M, "\u{FFFD}\u{FFFD}\u{FFFD}|\u{FFFD}\u{FFFD}\u{FFFD}|\u{FFFD}", "")]),
        v("four-byte character", b"event:\xF0\x9F\x98\x80\ndata:\xF0\x9F\x98\x80\n\n", &[("\u{1F600}", "\u{1F600}", "")]),
        v("invalid bytes in a field name", b"d\xFFata: x\n\n", &[]),
        v("invalid bytes in an id", b"id: \xFF\ndata: x\n\n", &[(M, "x", "\u{FFFD}")]),
        v("invalid bytes then line end", b"data:\xE2\rdata:\xE2\x82\r\n\n", &[(M, "\u{FFFD}\n\u{FFFD}", "")]),
    ];
    // An id containing U+0000 is ignored: the five placements of the web-platform-tests.
    for (name, value) in [
        ("id nul nul", &b"\0\0"[..]),
        ("id x nul", b"x\0"),
        ("id nul x", b"\0x"),
        ("id x nul x", b"x\0x"),
        ("id space nul", b" \0"),
    ] {
        let mut input = b"id: 1\ndata: a\n\nid:".to_vec();
        input.extend_from_slice(value);
        input.extend_from_slice(b"\ndata: b\n\n");
        vectors.push(v(name, input, &[(M, "a", "1"), (M, "b", "1")]));
    }
    vectors
}

#[test]
fn vectors_fed_whole_bytewise_and_split_everywhere() {
    let vectors = vectors();
    assert!(
        vectors.len() >= 60,
        "the table lost vectors: {}",
        vectors.len()
    );
    for vector in &vectors {
        let expected: Vec<Event> = vector
            .events
            .iter()
            .map(|(t, d, i)| ((*t).to_owned(), (*d).to_owned(), (*i).to_owned()))
            .collect();
        let expected = (expected, vector.last_event_id.to_owned(), vector.retry_ms);
        let input = &vector.input[..];
        assert_eq!(
            parse_chunks(&[input]),
            expected,
            "{}: fed whole",
            vector.name
        );
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(
            parse_chunks(&bytes),
            expected,
            "{}: fed one byte at a time",
            vector.name
        );
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                parse_chunks(&[a, b]),
                expected,
                "{}: split at {split}",
                vector.name
            );
        }
    }
}

#[test]
fn empty_chunks_change_nothing() {
    let input = b"\xEF\xBB\xBFid: 1\r\ndata: x\r\n\r\n";
    let mut chunks: Vec<&[u8]> = Vec::new();
    for byte in input.chunks(1) {
        chunks.push(b"");
        chunks.push(byte);
    }
    assert_eq!(parse_chunks(&chunks), parse_chunks(&[input]));
    assert_eq!(
        parse_chunks(&[input]).0,
        vec![("message".to_owned(), "x".to_owned(), "1".to_owned())]
    );
}

#[test]
fn finish_starts_a_new_stream_that_keeps_id_and_retry() {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    parser.feed(b"retry: 500\nid: 1\ndata: a\n\nid: 2\ndata: half", |m| {
        events.push(m.data.to_owned())
    });
    parser.finish();
    assert_eq!(
        parser.last_event_id(),
        "1",
        "the unfinished event's id is not committed"
    );
    // The reconnection's stream may start with its own BOM, and events without an id keep the old
    // one.
    parser.feed(b"\xEF\xBB\xBFdata: b\n\n", |m| {
        events.push(m.data.to_owned());
        assert_eq!(m.last_event_id, "1");
    });
    assert_eq!(events, ["a", "b"]);
    assert_eq!(parser.retry_ms(), Some(500));
}

#[test]
fn finish_forgets_an_unfinished_line_and_a_pending_crlf() {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    parser.feed(b"data: a\r", |m| events.push(m.data.to_owned()));
    parser.finish();
    // Without finish, this LF would complete the CRLF; after it, it is a blank line of the new
    // stream.
    parser.feed(b"\ndata: b\n\n", |m| events.push(m.data.to_owned()));
    parser.feed(b"data: c", |m| events.push(m.data.to_owned()));
    parser.finish();
    parser.feed(b"\n\n", |m| events.push(m.data.to_owned()));
    assert_eq!(events, ["b"]);
}

#[test]
fn messages_borrow_without_copying_when_an_event_fits_in_a_chunk() {
    let chunk = b"event: job\ndata: payload\n\n";
    let mut parser = Parser::new();
    let mut pointers = Vec::new();
    parser.feed(chunk, |m| {
        pointers.push((m.event_type.as_ptr(), m.data.as_ptr()))
    });
    let range = chunk.as_ptr_range();
    assert_eq!(pointers.len(), 1);
    assert!(
        range.contains(&pointers[0].0) && range.contains(&pointers[0].1),
        "type and data point into the chunk"
    );
}

//! The parser's own tests: the line limit, buffer reuse, and agreement with a plain model of the
//! WHATWG algorithm (with the line limit) at any chunking.

use super::*;
use alloc::borrow::ToOwned;
use alloc::vec;

fn parse(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<(String, String, String)> {
    let mut seen = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |m| {
            seen.push((
                m.event_type.to_owned(),
                m.data.to_owned(),
                m.last_event_id.to_owned(),
            ));
        });
    }
    seen
}

#[test]
fn oversized_lines_drop_their_event_but_not_the_stream() {
    let mut parser = Parser::with_line_bytes_max(8);
    let long = b"data: 0123456789\n\ndata: ok\n\n";
    assert_eq!(
        parse(&mut parser, &[long]),
        vec![("message".to_owned(), "ok".to_owned(), String::new())]
    );
    assert_eq!(parser.oversized_events(), 1);
    // The same cut by a chunk boundary: the long line is not kept whole.
    let mut parser = Parser::with_line_bytes_max(8);
    let seen = parse(
        &mut parser,
        &[b"data: 0123", b"456789\n\nda", b"ta: ok\n\n"],
    );
    assert_eq!(
        seen,
        vec![("message".to_owned(), "ok".to_owned(), String::new())]
    );
    assert_eq!(parser.oversized_events(), 1);
    assert!(parser.partial.capacity() <= 64);
}

#[test]
fn data_over_the_limit_drops_the_event_and_long_comments_are_harmless() {
    let mut parser = Parser::with_line_bytes_max(8);
    let seen = parse(
        &mut parser,
        &[b"data: 1234\ndata: 5678\n\n: a very long comment\ndata: 1\n\n"],
    );
    assert_eq!(
        seen,
        vec![("message".to_owned(), "1".to_owned(), String::new())]
    );
    assert_eq!(parser.oversized_events(), 1);
}

#[test]
fn the_limit_counts_decoded_bytes_however_the_line_arrives() {
    // Four invalid bytes decode to 12 bytes of U+FFFD: over a limit of 10 whole or split.
    let input = b"data:\xFF\xFF\xFF\xFF\n\n";
    for split in 0..=input.len() {
        let mut parser = Parser::with_line_bytes_max(10);
        let (a, b) = input.split_at(split);
        assert_eq!(parse(&mut parser, &[a, b]), vec![], "split at {split}");
        assert_eq!(parser.oversized_events(), 1, "split at {split}");
    }
}

#[test]
fn a_warm_parser_reuses_its_buffers() {
    let mut parser = Parser::new();
    let stream = b"id: 1\nevent: a\ndata: x\ndata: y\n\nid: 2\nevent: b\ndata: z\n\n";
    parse(&mut parser, &[&stream[..7], &stream[7..]]);
    let capacities = (
        parser.data.capacity(),
        parser.event_type.capacity(),
        parser.id_buffer.capacity(),
    );
    for _ in 0..100 {
        parse(&mut parser, &[&stream[..7], &stream[7..]]);
    }
    let after = (
        parser.data.capacity(),
        parser.event_type.capacity(),
        parser.id_buffer.capacity(),
    );
    assert_eq!(capacities, after);
}

#[test]
fn a_cr_before_an_unfinished_line_with_invalid_bytes_is_a_whole_line_end() {
    // The chunk's tail (after the CR) is not valid UTF-8, so only its complete lines are decoded:
    // the CR that ends them is followed by the tail, and the next chunk's LF is a line end of
    // its own.
    let input = b"data: a\rdata: \xFF\n\ndata: b\n\n";
    let whole = parse(&mut Parser::new(), &[input]);
    assert_eq!(whole.len(), 2);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(
            parse(&mut Parser::new(), &[a, b]),
            whole,
            "split at {split}"
        );
    }
}

/// What a stream gave: its events (type, data, last event id), then the last event id, the retry
/// and the count of oversized events.
#[cfg(not(target_arch = "wasm32"))]
type Outcome = (Vec<(String, String, String)>, String, Option<u64>, u64);

/// The WHATWG algorithm with the line limit, written as plainly as possible on the whole input at
/// once.
#[cfg(not(target_arch = "wasm32"))]
fn model(input: &[u8], line_bytes_max: usize) -> Outcome {
    let input = input.strip_prefix(&BOM[..]).unwrap_or(input);
    let text = String::from_utf8_lossy(input);
    let (mut data, mut event_type, mut id_buffer, mut last_event_id) =
        (String::new(), String::new(), String::new(), String::new());
    let (mut retry, mut oversized, mut oversized_events) = (None, false, 0);
    let mut events = Vec::new();
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\r' && c != '\n' {
            line.push(c);
            continue;
        }
        if c == '\r' && chars.peek() == Some(&'\n') {
            chars.next();
        }
        if line.is_empty() {
            last_event_id.clone_from(&id_buffer);
            if oversized {
                oversized_events += 1;
            } else if !data.is_empty() {
                data.pop();
                let kind = if event_type.is_empty() {
                    "message"
                } else {
                    &event_type
                };
                events.push((kind.to_owned(), data.clone(), last_event_id.clone()));
            }
            oversized = false;
            data.clear();
            event_type.clear();
        } else if line.starts_with(':') {
            // A comment, whatever its length.
        } else if line.len() > line_bytes_max {
            oversized = true;
        } else {
            let (field, value) = match line.split_once(':') {
                Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => event_type = value.to_owned(),
                "data" if !oversized => {
                    data.push_str(value);
                    data.push('\n');
                    if data.len() > line_bytes_max {
                        oversized = true;
                        data.clear();
                    }
                }
                "id" if !value.contains('\0') => id_buffer = value.to_owned(),
                "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                    retry = Some(value.parse::<u64>().unwrap_or(u64::MAX));
                }
                _ => {}
            }
        }
        line.clear();
    }
    (events, last_event_id, retry, oversized_events)
}

/// Every line end (CR, LF, CRLF) at every offset around the scan's 64-byte windows, after lines
/// holding the bytes the scan cannot tell from line ends (0x08 to 0x0F) and a multi-byte
/// character, fed whole and split in two everywhere (so also inside the character and the CRLF).
#[cfg(not(target_arch = "wasm32"))]
#[test]
fn line_ends_at_window_edges_and_look_alike_bytes_agree_with_the_model() {
    let limit = Parser::LINE_BYTES_MAX_DEFAULT;
    for end in [&b"\r"[..], b"\n", b"\r\n"] {
        for pad in 0..70 {
            let mut input = b"data: ".to_vec();
            input.extend(core::iter::repeat_n(b'x', pad));
            input.extend_from_slice(b"\t\x08\x0B\x0C\x0E\x0F\xE2\x82\xAC");
            input.extend_from_slice(end);
            input.extend_from_slice(b"id:\t");
            input.extend_from_slice(end);
            input.extend_from_slice(end);
            input.extend_from_slice(b"data:\x0F");
            input.extend_from_slice(end);
            let expected = model(&input, limit);
            assert_eq!(expected.0.len(), 1, "pad {pad}");
            for split in 0..=input.len() {
                let (a, b) = input.split_at(split);
                let mut parser = Parser::new();
                let events = parse(&mut parser, &[a, b]);
                parser.finish();
                assert_eq!(
                    (events, parser.last_event_id().to_owned()),
                    (expected.0.clone(), expected.1.clone()),
                    "pad {pad}, split at {split}"
                );
            }
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod against_the_model {
    use super::*;
    use proptest::prelude::*;

    /// Stream-like bytes: the fields, separators, all line ends, NUL, BOM pieces, valid and invalid
    /// UTF-8, and runs of text long enough to cross a small line limit.
    fn stream_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(&b"data:"[..]),
            Just(&b"data: "[..]),
            Just(&b"event: "[..]),
            Just(&b"id: "[..]),
            Just(&b"id:"[..]),
            Just(&b"retry: "[..]),
            Just(&b"data"[..]),
            Just(&b":"[..]),
            Just(&b" "[..]),
            Just(&b"\r"[..]),
            Just(&b"\n"[..]),
            Just(&b"\n\n"[..]),
            Just(&b"\r\n"[..]),
            Just(&b"\0"[..]),
            Just(&b"\xEF\xBB\xBF"[..]),
            Just(&b"\xE2\x82\xAC"[..]),
            Just(&b"\xF0\x9F"[..]),
            Just(&b"\xFF"[..]),
            Just(&b"42"[..]),
            Just(&b"x"[..]),
            Just(&b"0123456789abcdefghijklmnopqrstuvwxyz"[..]),
        ];
        prop::collection::vec(piece, 0..80).prop_map(|pieces| pieces.concat())
    }

    fn run(input: &[u8], cuts: &[usize], line_bytes_max: usize) -> Outcome {
        let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (input.len() + 1)).collect();
        cuts.sort_unstable();
        let mut parser = Parser::with_line_bytes_max(line_bytes_max);
        let mut events = Vec::new();
        let mut start = 0;
        for end in cuts.into_iter().chain([input.len()]) {
            parser.feed(&input[start..end], |m| {
                events.push((
                    m.event_type.to_owned(),
                    m.data.to_owned(),
                    m.last_event_id.to_owned(),
                ));
            });
            start = end;
        }
        parser.finish();
        (
            events,
            parser.last_event_id().to_owned(),
            parser.retry_ms(),
            parser.oversized_events(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_parser_agrees_with_the_model_at_any_chunking_and_line_limit(
            input in stream_bytes(),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
            line_bytes_max in prop_oneof![1..48usize, Just(Parser::LINE_BYTES_MAX_DEFAULT)],
        ) {
            prop_assert_eq!(run(&input, &cuts, line_bytes_max), model(&input, line_bytes_max.max(1)));
        }

        #[test]
        fn the_parser_agrees_with_the_model_on_arbitrary_bytes(
            input in prop::collection::vec(any::<u8>(), 0..200),
            cuts in prop::collection::vec(any::<usize>(), 0..8),
        ) {
            let limit = Parser::LINE_BYTES_MAX_DEFAULT;
            prop_assert_eq!(run(&input, &cuts, limit), model(&input, limit));
        }
    }
}

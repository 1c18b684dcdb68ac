//! Property tests: encode then parse gives the event back, whatever the text and the chunking; and
//! the push parser agrees with a naive whole-input model of the WHATWG algorithm on arbitrary
//! bytes.

#![cfg(not(target_arch = "wasm32"))]

use herald_core::{EventId, EventName, Frame};
use proptest::prelude::*;

mod common;

use common::parse_chunks;

/// Bytes allowed in an id (printable ASCII minus the CORS-unsafe ones).
const ID_BYTES: &[u8] =
    b"!#$%&'*+,-./0123456789;=ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz|~";

/// `bytes` cut at the given points (taken modulo the length, sorted).
fn chunks<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for cut in cuts {
        out.push(&bytes[start..cut]);
        start = cut;
    }
    out.push(&bytes[start..]);
    out
}

fn normalise(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

fn event_id() -> impl Strategy<Value = EventId> {
    prop::collection::vec(prop::sample::select(ID_BYTES), 1..=128)
        .prop_map(|bytes| EventId::new(core::str::from_utf8(&bytes).unwrap()).unwrap())
}

fn event_name() -> impl Strategy<Value = EventName> {
    "[^\r\n\0]{1,32}".prop_filter_map("too long", |name| EventName::new(&name).ok())
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![any::<String>(), "[a \r\n:\0\u{e9}]{0,24}"]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_then_parse_gives_the_event_back(
        id in proptest::option::of(event_id()),
        name in proptest::option::of(event_name()),
        data in text(),
        comment in proptest::option::of(text()),
        retry_ms in proptest::option::of(any::<u64>()),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut frame = Frame::new().data(&data);
        if let Some(id) = &id { frame = frame.id(id); }
        if let Some(name) = &name { frame = frame.event(name); }
        if let Some(comment) = &comment { frame = frame.comment(comment); }
        if let Some(retry_ms) = retry_ms { frame = frame.retry_ms(retry_ms); }
        let mut bytes = Vec::new();
        frame.encode_into(&mut bytes);
        prop_assert_eq!(bytes.len(), frame.encoded_len());
        prop_assert!(!bytes.starts_with(b"\xEF\xBB\xBF"));
        let id = id.as_ref().map_or("", EventId::as_str).to_owned();
        let kind = name.as_ref().map_or("message", EventName::as_str).to_owned();
        let (events, last_event_id, got_retry) = parse_chunks(&chunks(&bytes, &cuts));
        prop_assert_eq!(events, vec![(kind, normalise(&data), id.clone())]);
        prop_assert_eq!(last_event_id, id);
        prop_assert_eq!(got_retry, retry_ms);
    }

    #[test]
    fn a_stream_of_frames_parses_back_in_order_with_ids_persisting(
        frames in prop::collection::vec((proptest::option::of(event_id()), text()), 1..8),
        cuts in prop::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        let mut current_id = String::new();
        for (id, data) in &frames {
            let mut frame = Frame::new().data(data);
            if let Some(id) = id {
                frame = frame.id(id);
                current_id = id.as_str().to_owned();
            }
            frame.encode_into(&mut bytes);
            expected.push(("message".to_owned(), normalise(data), current_id.clone()));
        }
        prop_assert_eq!(parse_chunks(&chunks(&bytes, &cuts)).0, expected);
    }

    #[test]
    fn ids_are_valid_exactly_when_the_rules_say(id in "[\\x00-\\x7f\u{e9}]{0,130}") {
        let valid = (1..=128).contains(&id.len()) && id.bytes().all(|b| ID_BYTES.contains(&b));
        prop_assert_eq!(EventId::new(&id).is_ok(), valid);
    }

    #[test]
    fn names_are_valid_exactly_when_the_rules_say(name in "[a\r\n\0\u{e9} ]{0,70}") {
        let valid = (1..=128).contains(&name.len()) && !name.contains(['\r', '\n', '\0']);
        prop_assert_eq!(EventName::new(&name).is_ok(), valid);
    }
}

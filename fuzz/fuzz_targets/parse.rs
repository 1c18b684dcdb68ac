//! Arbitrary bytes, cut at an arbitrary point: the parser must not panic, and must see the same events
//! (and end with the same last event id and retry) as when the bytes arrive in one chunk.
#![no_main]

use herald_core::Parser;
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]]) -> (Vec<(String, String, String)>, String, Option<u64>) {
    let (mut parser, mut events) = (Parser::new(), Vec::new());
    for chunk in chunks {
        parser.feed(chunk, |m| events.push((m.event_type.into(), m.data.into(), m.last_event_id.into())));
    }
    parser.finish();
    (events, parser.last_event_id().into(), parser.retry_ms())
}

fuzz_target!(|input: (u16, &[u8])| {
    let (cut, bytes) = (usize::from(input.0) % (input.1.len() + 1), input.1);
    let (a, b) = bytes.split_at(cut);
    assert_eq!(run(&[bytes]), run(&[a, b]));
});

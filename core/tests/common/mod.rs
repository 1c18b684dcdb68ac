//! What the conformance tests share: feeding a parser and collecting what it dispatched.

use herald_core::Parser;

/// A dispatched event: (type, data, last event id).
pub(crate) type Event = (String, String, String);

/// Feeds `chunks` to a new parser, then finishes; returns the events, the last event id and the
/// retry.
pub(crate) fn parse_chunks(chunks: &[&[u8]]) -> (Vec<Event>, String, Option<u64>) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, |m| {
            events.push((
                m.event_type.to_owned(),
                m.data.to_owned(),
                m.last_event_id.to_owned(),
            ))
        });
    }
    parser.finish();
    (events, parser.last_event_id().to_owned(), parser.retry_ms())
}

//! The parser cases. Each is fed the same 16 KiB chunks of the reference stream and reports how
//! many events it dispatched and the total length of their data, id and event type (compared with
//! the corpus after every run).

use std::convert::Infallible;

use bytes::{Bytes, BytesMut};
use eventsource_stream::Eventsource as _;
use futures::{executor::block_on, StreamExt as _};
use herald_core::Parser;
use tokio_util::codec::Decoder as _;

/// Events dispatched and their summed `data.len() + id.len() + event_type.len()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Parsed {
    pub(crate) events: u64,
    pub(crate) field_bytes: u64,
}

impl Parsed {
    #[inline]
    fn saw(&mut self, data: &str, id: &str, event_type: &str) {
        self.events += 1;
        self.field_bytes += (data.len() + id.len() + event_type.len()) as u64;
    }
}

/// herald-core: `Parser::feed` per chunk, then `finish`.
pub(crate) fn herald(chunks: &[Bytes]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut parser = Parser::new();
    for chunk in chunks {
        parser.feed(chunk, |m| parsed.saw(m.data, m.last_event_id, m.event_type));
    }
    parser.finish();
    parsed
}

/// sse-stream: `SseByteStream` over a `futures::stream::iter` of the chunks, driven by `block_on`.
pub(crate) fn sse_stream(chunks: &[Bytes]) -> Parsed {
    let mut parsed = Parsed::default();
    let input = futures::stream::iter(chunks.iter().cloned().map(Ok::<_, std::io::Error>));
    let mut events = sse_stream::SseByteStream::new(input);
    block_on(async {
        while let Some(event) = events.next().await {
            let event = event.expect("reference stream parses");
            parsed.saw(
                event.data.as_deref().unwrap_or(""),
                event.id.as_deref().unwrap_or(""),
                event.event.as_deref().unwrap_or(""),
            );
        }
    });
    parsed
}

/// eventsource-stream: `Eventsource::eventsource` over a `futures::stream::iter` of the chunks,
/// driven by `block_on`.
pub(crate) fn eventsource_stream(chunks: &[Bytes]) -> Parsed {
    let mut parsed = Parsed::default();
    let input = futures::stream::iter(chunks.iter().cloned().map(Ok::<_, Infallible>));
    let mut events = input.eventsource();
    block_on(async {
        while let Some(event) = events.next().await {
            let event = event.expect("reference stream parses");
            parsed.saw(&event.data, &event.id, &event.event);
        }
    });
    parsed
}

/// russe: its synchronous `Decoder` (a tokio-util codec) over one `BytesMut` each chunk is appended
/// to, which is how a `FramedRead` drives it minus the I/O.
pub(crate) fn russe(chunks: &[Bytes]) -> Parsed {
    let mut parsed = Parsed::default();
    let mut decoder = russe::Decoder::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(event) = decoder.decode(&mut buf).expect("reference stream parses") {
            if let russe::Event::Message(m) = event {
                parsed.saw(
                    &m.data,
                    m.id.as_deref().unwrap_or(""),
                    m.event.as_deref().unwrap_or(""),
                );
            }
        }
    }
    parsed
}

/// Floor: count LFs in the same chunks with `memchr::memchr_iter` (every parser must at least find
/// line ends).
pub(crate) fn memchr_lines(chunks: &[Bytes]) -> u64 {
    chunks
        .iter()
        .map(|c| memchr::memchr_iter(b'\n', c).count() as u64)
        .sum()
}

//! The encoder cases. Each turns the whole corpus into wire bytes through one library's public API
//! and reports how many frames and bytes it produced.
//!
//! Every case starts from the representation its API takes, built once before timing where that
//! representation is cheap to share (Herald's validated `EventId`/`EventName`, russe's
//! reference-counted `ByteString`s), and from the corpus's `&str`s where the API insists on owning
//! `String`s (sse-stream) or builds as it goes (axum).

use std::{convert::Infallible, hint::black_box};

use axum::response::{
    sse::{Event as AxumEvent, Sse as AxumSse},
    IntoResponse as _,
};
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use futures::executor::block_on;
use herald_core::{EventId, EventName, Frame};
use http_body_util::BodyExt as _;
use tokio_util::codec::Encoder as _;

use crate::corpus::{RawEvent, NAMES};

/// Bytes the rolling output buffer holds before it is "written out" (counted and cleared): a
/// socket-sized buffer that stays in cache, so the cases measure formatting rather than DRAM
/// bandwidth.
const FLUSH_BYTES: usize = 64 * 1024;

/// Frames and bytes one pass produced; compared against the expected totals after every timed run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Output {
    pub(crate) frames: u64,
    pub(crate) bytes: u64,
}

/// Where encoded bytes go: a rolling buffer (timed runs) or a buffer that keeps everything
/// (verification).
pub(crate) struct Sink {
    pub(crate) buf: Vec<u8>,
    capture: bool,
    out: Output,
}

impl Sink {
    pub(crate) fn rolling() -> Sink {
        Sink {
            buf: Vec::with_capacity(FLUSH_BYTES + 4096),
            capture: false,
            out: Output::default(),
        }
    }

    pub(crate) fn capture() -> Sink {
        Sink {
            buf: Vec::new(),
            capture: true,
            out: Output::default(),
        }
    }

    /// After a frame was appended to `buf`.
    #[inline]
    fn wrote_frame(&mut self) {
        self.out.frames += 1;
        if !self.capture && self.buf.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    /// A frame produced as its own `Bytes` (axum, sse-stream): counted, not copied, in timed runs.
    #[inline]
    fn frame(&mut self, frame: Bytes) {
        self.out.frames += 1;
        if self.capture {
            self.buf.extend_from_slice(&frame);
        } else {
            self.out.bytes += frame.len() as u64;
            black_box(&frame);
        }
    }

    fn flush(&mut self) {
        self.out.bytes += self.buf.len() as u64;
        // The buffer escapes here, so the writes into it cannot be optimised away.
        black_box(self.buf.as_slice());
        self.buf.clear();
    }

    /// Ends a pass and returns its totals; in capture mode the bytes stay in `buf`.
    pub(crate) fn finish(&mut self) -> Output {
        if self.capture {
            self.out.bytes += self.buf.len() as u64;
        } else {
            self.flush();
        }
        std::mem::take(&mut self.out)
    }
}

/// Per-event inputs in the forms the libraries take, built once.
pub(crate) struct Inputs {
    pub(crate) raw: &'static [RawEvent],
    herald_ids: Vec<EventId>,
    herald_names: Vec<EventName>,
    russe: Vec<[ByteString; 2]>,
    russe_names: Vec<ByteString>,
}

impl Inputs {
    /// `raw` is `'static` because axum's `Sse` body requires a `'static` stream.
    pub(crate) fn new(raw: &'static [RawEvent]) -> Inputs {
        Inputs {
            raw,
            herald_ids: raw
                .iter()
                .map(|e| EventId::new(&e.id).expect("corpus id is valid"))
                .collect(),
            herald_names: NAMES
                .iter()
                .map(|n| EventName::new(n).expect("corpus name is valid"))
                .collect(),
            russe: raw
                .iter()
                .map(|e| {
                    [
                        ByteString::from(e.id.as_str()),
                        ByteString::from(e.data.as_str()),
                    ]
                })
                .collect(),
            russe_names: NAMES.iter().map(|&n| ByteString::from_static(n)).collect(),
        }
    }
}

/// herald-core: `Frame` builder over pre-validated id and name, `encode_into` one reused `Vec`.
pub(crate) fn herald(inputs: &Inputs, sink: &mut Sink) {
    for (event, id) in inputs.raw.iter().zip(&inputs.herald_ids) {
        Frame::new()
            .id(id)
            .event(&inputs.herald_names[event.name])
            .data(&event.data)
            .encode_into(&mut sink.buf);
        sink.wrote_frame();
    }
}

/// herald-core, from the raw strings: validates `EventId` and `EventName` per event, then encodes.
pub(crate) fn herald_validating(inputs: &Inputs, sink: &mut Sink) {
    for event in inputs.raw {
        let id = EventId::new(&event.id).expect("corpus id is valid");
        let name = EventName::new(event.name()).expect("corpus name is valid");
        Frame::new()
            .id(&id)
            .event(&name)
            .data(&event.data)
            .encode_into(&mut sink.buf);
        sink.wrote_frame();
    }
}

/// herald-core: one `Bytes` per frame (`to_bytes`), the form Herald fans out to subscribers.
pub(crate) fn herald_to_bytes(inputs: &Inputs, sink: &mut Sink) {
    for (event, id) in inputs.raw.iter().zip(&inputs.herald_ids) {
        let frame = Frame::new()
            .id(id)
            .event(&inputs.herald_names[event.name])
            .data(&event.data)
            .to_bytes();
        sink.frame(frame);
    }
}

/// russe: `Encoder` (a tokio-util codec) appending to one reused `BytesMut`; the `Message` is built
/// from `ByteString` clones (reference-count increments, no copies).
pub(crate) fn russe(inputs: &Inputs, sink: &mut Sink, buf: &mut BytesMut) {
    let mut encoder = russe::Encoder::default();
    for (event, [id, data]) in inputs.raw.iter().zip(&inputs.russe) {
        let message = russe::Message {
            data: data.clone(),
            event: Some(inputs.russe_names[event.name].clone()),
            retry: None,
            id: Some(id.clone()),
        };
        encoder
            .encode(russe::Event::Message(message), buf)
            .expect("corpus event encodes");
        sink.out.frames += 1;
        if sink.capture {
            sink.buf.extend_from_slice(buf);
            buf.clear();
        } else if buf.len() >= FLUSH_BYTES {
            sink.out.bytes += buf.len() as u64;
            black_box(&buf[..]);
            buf.clear();
        }
    }
    if !buf.is_empty() {
        sink.out.bytes += buf.len() as u64;
        black_box(&buf[..]);
        buf.clear();
    }
}

/// sse-stream: `Sse` (owned `String` fields, as its builder requires) then `Sse::encode` to
/// `Bytes`.
pub(crate) fn sse_stream(inputs: &Inputs, sink: &mut Sink) {
    for event in inputs.raw {
        let frame = sse_stream::Sse::default()
            .id(event.id.as_str())
            .event(event.name())
            .data(event.data.as_str())
            .encode()
            .expect("corpus event encodes");
        sink.frame(frame);
    }
}

/// axum: `Event::default().id().event().data()`, and the bytes through axum's only public way out
/// of an `Event`: an `Sse` response over a stream of events, polled frame by frame with
/// `http_body_util` (`Event::finalize` is private and `Event` implements neither `Display` nor
/// `Into<Bytes>`).
pub(crate) fn axum(inputs: &Inputs, sink: &mut Sink) {
    let raw: &'static [RawEvent] = inputs.raw;
    let events = futures::stream::iter(raw.iter().map(|e| {
        Ok::<_, Infallible>(AxumEvent::default().id(&e.id).event(e.name()).data(&e.data))
    }));
    let mut body = AxumSse::new(events).into_response().into_body();
    block_on(async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("infallible stream").into_data() {
                sink.frame(data);
            }
        }
    });
}

/// Floor: copy each pre-encoded frame into the same rolling buffer (what any encoder must at least
/// do).
pub(crate) fn memcpy(stream: &[u8], frame_ends: &[usize], sink: &mut Sink) {
    let mut start = 0;
    for &end in frame_ends {
        sink.buf.extend_from_slice(&stream[start..end]);
        sink.wrote_frame();
        start = end;
    }
}

/// Floor: append the same fields from the same memory the Herald case reads (the `EventId`s, the
/// name table, the corpus data), with the fixed prefixes and no checks. What an encoder of this
/// input cannot beat; the gap between it and `memcpy` is the cost of gathering three separate
/// strings per event instead of one run.
pub(crate) fn gather(inputs: &Inputs, sink: &mut Sink) {
    for (event, id) in inputs.raw.iter().zip(&inputs.herald_ids) {
        let out = &mut sink.buf;
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_str().as_bytes());
        out.extend_from_slice(b"\nevent: ");
        out.extend_from_slice(inputs.herald_names[event.name].as_str().as_bytes());
        out.extend_from_slice(b"\ndata: ");
        out.extend_from_slice(event.data.as_bytes());
        out.extend_from_slice(b"\n\n");
        sink.wrote_frame();
    }
}

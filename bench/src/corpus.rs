//! The one input every case is timed on: a deterministic list of events, their canonical encoding,
//! and that encoding cut into fixed-size chunks for the parsers.

use bytes::Bytes;

/// Event names drawn from Sluice's vocabulary; a handful of distinct names, as in a real hub.
pub(crate) const NAMES: [&str; 4] = [
    "job:state_change",
    "job:progress",
    "worker:heartbeat",
    "queue:depth",
];

const EPOCH_MS: u64 = 1_732_250_000_000;
const STATES: [&str; 5] = ["queued", "running", "succeeded", "failed", "cancelled"];

/// One event as a publisher hands it to the hub.
pub(crate) struct RawEvent {
    /// `<epoch>-<seq>`, as Herald's `Position` prints it.
    pub(crate) id: String,
    /// Index into [`NAMES`].
    pub(crate) name: usize,
    /// Single-line JSON, about 200 bytes.
    pub(crate) data: String,
}

impl RawEvent {
    pub(crate) fn name(&self) -> &'static str {
        NAMES[self.name]
    }
}

/// A fixed xorshift generator: the corpus must be identical on every run and every machine.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Builds `count` events. Ids are `1732250000000-<seq>` with seq from 1; data lengths vary between
/// about 180 and 220 bytes so no encoder sees one fixed size.
pub(crate) fn events(count: usize) -> Vec<RawEvent> {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    (1..=count as u64)
        .map(|seq| {
            let name = rng.below(NAMES.len() as u64) as usize;
            let state = STATES[rng.below(STATES.len() as u64) as usize];
            let mut data = format!(
                r#"{{"job_id":"job-{:08}","state":"{state}","progress":{},"attempt":{},"worker":"worker-{:02}","queue":"default","ts":{},"note":""#,
                rng.below(100_000_000),
                rng.below(101),
                1 + rng.below(5),
                rng.below(64),
                EPOCH_MS + seq * 7,
            );
            let target = 180 + rng.below(41) as usize;
            while data.len() + 2 < target {
                data.push((b'a' + rng.below(26) as u8) as char);
            }
            data.push_str("\"}");
            RawEvent { id: format!("{EPOCH_MS}-{seq}"), name, data }
        })
        .collect()
}

/// The reference wire form of the corpus, written plainly (`id`, `event`, `data`, blank line, one
/// space after each colon) so that the parsers' input does not depend on any encoder under test.
pub(crate) struct Encoded {
    /// Every frame back to back.
    pub(crate) stream: Bytes,
    /// `frame_ends[i]` is the end offset of frame `i` in `stream`.
    pub(crate) frame_ends: Vec<usize>,
}

pub(crate) fn encode_reference(events: &[RawEvent]) -> Encoded {
    let mut stream = Vec::with_capacity(events.len() * 260);
    let mut frame_ends = Vec::with_capacity(events.len());
    for event in events {
        stream.extend_from_slice(b"id: ");
        stream.extend_from_slice(event.id.as_bytes());
        stream.extend_from_slice(b"\nevent: ");
        stream.extend_from_slice(event.name().as_bytes());
        stream.extend_from_slice(b"\ndata: ");
        stream.extend_from_slice(event.data.as_bytes());
        stream.extend_from_slice(b"\n\n");
        frame_ends.push(stream.len());
    }
    Encoded {
        stream: Bytes::from(stream),
        frame_ends,
    }
}

/// Cuts `stream` into `chunk_bytes` pieces (the last may be shorter); frames straddle chunk
/// boundaries, as they do on a real connection. Slicing `Bytes` shares the one allocation.
pub(crate) fn chunks(stream: &Bytes, chunk_bytes: usize) -> Vec<Bytes> {
    (0..stream.len())
        .step_by(chunk_bytes)
        .map(|start| stream.slice(start..(start + chunk_bytes).min(stream.len())))
        .collect()
}

/// What a parser must report for the corpus: the sum over events of `data.len() + id.len() +
/// event.len()`, so that dropping or truncating any of the three fields changes the answer.
pub(crate) fn field_bytes(events: &[RawEvent]) -> u64 {
    events
        .iter()
        .map(|e| (e.data.len() + e.id.len() + e.name().len()) as u64)
        .sum()
}

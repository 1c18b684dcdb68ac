//! Herald's engine benchmark: herald-core's SSE encoder and parser against peer crates and the
//! memcpy/memchr floors, on one deterministic corpus, in one run. `cargo run --profile bench -p
//! herald-bench` (see `scripts/bench-core.sh`; plain `--release` works too but builds at this
//! workspace's size-tuned opt-level "z").
//!
//! Knobs (environment): `HERALD_BENCH_EVENTS` (default 1,000,000) and `HERALD_BENCH_ROUNDS`
//! (default 5, best of). With 1,000,000 events the inputs stream from DRAM;
//! `HERALD_BENCH_EVENTS=2000 HERALD_BENCH_ROUNDS=3000` measures the cache-hot regime instead.
//! `HERALD_BENCH_ONLY=<text>` runs only the cases whose name contains the text (for `perf record`),
//! skipping the slow parse-back check of encoder output.

mod corpus;
mod encoders;
mod parsers;
mod report;
mod verify;

use std::{
    hint::black_box,
    time::{Duration, Instant},
};

use bytes::BytesMut;

use crate::{
    encoders::{Inputs, Sink},
    report::{Case, Group, Role},
};

const CHUNK_BYTES: usize = 16 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, got {v:?}")),
        Err(_) => default,
    }
}

fn main() {
    let event_count = env_usize("HERALD_BENCH_EVENTS", 1_000_000);
    let rounds = env_usize("HERALD_BENCH_ROUNDS", 5).max(1);

    eprintln!("building corpus of {event_count} events ...");
    // Leaked once: axum's `Sse` body needs a `'static` stream, and the corpus lives for the whole
    // run anyway.
    let raw: &'static [corpus::RawEvent] = Vec::leak(corpus::events(event_count));
    let reference = corpus::encode_reference(raw);
    let chunks = corpus::chunks(&reference.stream, CHUNK_BYTES);
    let inputs = Inputs::new(raw);
    let frames = event_count as u64;
    let stream_bytes = reference.stream.len() as u64;
    let field_bytes = corpus::field_bytes(raw);

    // For profiling one case: only the cases whose name contains this text run, and the (slow)
    // parse-back check of encoder output is skipped.
    let only = std::env::var("HERALD_BENCH_ONLY").ok();

    eprintln!("verifying every encoder's output ...");
    let mut notes = Vec::new();
    let mut verify = |name: &str, run: &dyn Fn(&mut Sink)| {
        let mut sink = Sink::capture();
        run(&mut sink);
        let out = sink.finish();
        assert_eq!(out.frames, frames, "{name}: frame count");
        if only.is_some() {
            return out.bytes;
        }
        let verdict = verify::encoder_output(name, sink.buf, raw, &reference.stream);
        notes.push(format!(
            "{name}: {} bytes, all {frames} events parse back identical{}",
            out.bytes,
            if verdict.identical_to_reference {
                ", bytes identical to the reference encoding"
            } else {
                ""
            },
        ));
        out.bytes
    };
    let herald_bytes = verify("herald encode_into", &|s| encoders::herald(&inputs, s));
    let herald_validating_bytes = verify("herald encode_into + validation", &|s| {
        encoders::herald_validating(&inputs, s)
    });
    let herald_to_bytes_bytes = verify("herald to_bytes", &|s| {
        encoders::herald_to_bytes(&inputs, s)
    });
    let russe_bytes = verify("russe", &|s| {
        encoders::russe(&inputs, s, &mut BytesMut::new())
    });
    let sse_stream_bytes = verify("sse-stream", &|s| encoders::sse_stream(&inputs, s));
    let axum_bytes = verify("axum", &|s| encoders::axum(&inputs, s));
    let gather_bytes = verify("gather floor", &|s| encoders::gather(&inputs, s));
    let memcpy_bytes = verify("memcpy floor", &|s| {
        encoders::memcpy(&reference.stream, &reference.frame_ends, s)
    });

    let mut russe_buf = BytesMut::with_capacity(80 * 1024);
    let mut sink = Sink::rolling();
    type EncodeRun<'a> = Box<dyn FnMut(&mut Sink) + 'a>;
    let encode_case = |name, role, expect_bytes, run| -> (&str, Role, u64, EncodeRun<'_>) {
        (name, role, expect_bytes, run)
    };
    let mut encode_cases = vec![
        encode_case(
            "herald  Frame::encode_into, reused Vec",
            Role::Herald,
            herald_bytes,
            Box::new(|s: &mut Sink| encoders::herald(&inputs, s)),
        ),
        encode_case(
            "russe   Encoder into reused BytesMut",
            Role::Peer,
            russe_bytes,
            Box::new(|s: &mut Sink| encoders::russe(&inputs, s, &mut russe_buf)),
        ),
        encode_case(
            "sse-stream  Sse::encode -> Bytes",
            Role::Peer,
            sse_stream_bytes,
            Box::new(|s: &mut Sink| encoders::sse_stream(&inputs, s)),
        ),
        encode_case(
            "axum    Event via Sse body frames",
            Role::Peer,
            axum_bytes,
            Box::new(|s: &mut Sink| encoders::axum(&inputs, s)),
        ),
        encode_case(
            "floor   memcpy of encoded frames",
            Role::Floor,
            memcpy_bytes,
            Box::new(|s: &mut Sink| encoders::memcpy(&reference.stream, &reference.frame_ends, s)),
        ),
        encode_case(
            "floor   gather: same fields, no checks",
            Role::FloorInfo,
            gather_bytes,
            Box::new(|s: &mut Sink| encoders::gather(&inputs, s)),
        ),
        encode_case(
            "herald  Frame::to_bytes (Bytes per frame)",
            Role::HeraldVariant,
            herald_to_bytes_bytes,
            Box::new(|s: &mut Sink| encoders::herald_to_bytes(&inputs, s)),
        ),
        encode_case(
            "herald  EventId/EventName::new + encode_into",
            Role::HeraldVariant,
            herald_validating_bytes,
            Box::new(|s: &mut Sink| encoders::herald_validating(&inputs, s)),
        ),
    ];

    type ParseRun<'a> = Box<dyn Fn() -> (u64, u64) + 'a>;
    let chunks = &chunks;
    let mut parse_cases: Vec<(&str, Role, (u64, u64), ParseRun<'_>)> = vec![
        (
            "herald  Parser::feed",
            Role::Herald,
            (frames, field_bytes),
            Box::new(|| pair(parsers::herald(chunks))),
        ),
        (
            "sse-stream  SseByteStream",
            Role::Peer,
            (frames, field_bytes),
            Box::new(|| pair(parsers::sse_stream(chunks))),
        ),
        (
            "eventsource-stream  EventStream",
            Role::Peer,
            (frames, field_bytes),
            Box::new(|| pair(parsers::eventsource_stream(chunks))),
        ),
        (
            "russe   Decoder (extra peer)",
            Role::Peer,
            (frames, field_bytes),
            Box::new(|| pair(parsers::russe(chunks))),
        ),
        (
            "floor   memchr_iter(b'\\n') count",
            Role::Floor,
            (frames * 4, 0),
            Box::new(|| (parsers::memchr_lines(chunks), 0)),
        ),
    ];

    if let Some(only) = &only {
        encode_cases.retain(|case| case.0.contains(only.as_str()));
        parse_cases.retain(|case| case.0.contains(only.as_str()));
    }

    let mut encode_best = vec![Duration::MAX; encode_cases.len()];
    let mut parse_best = vec![Duration::MAX; parse_cases.len()];
    // One untimed warm-up round, then `rounds` timed ones; cases interleave so a noisy moment on
    // this shared machine hits one sample of each rather than every sample of one.
    for round in 0..=rounds {
        eprintln!(
            "{}",
            if round == 0 {
                "warm-up round ...".to_string()
            } else {
                format!("round {round}/{rounds} ...")
            }
        );
        for (i, (name, _, expect_bytes, run)) in encode_cases.iter_mut().enumerate() {
            let start = Instant::now();
            run(&mut sink);
            let out = sink.finish();
            let took = start.elapsed();
            assert_eq!(
                (out.frames, out.bytes),
                (frames, *expect_bytes),
                "{name}: output changed between runs"
            );
            if round > 0 {
                encode_best[i] = encode_best[i].min(took);
            }
        }
        for (i, (name, _, expect, run)) in parse_cases.iter().enumerate() {
            let start = Instant::now();
            let got = black_box(run());
            let took = start.elapsed();
            assert_eq!(
                got, *expect,
                "{name}: (events, field bytes) differ from the corpus"
            );
            if round > 0 {
                parse_best[i] = parse_best[i].min(took);
            }
        }
    }

    let cases = encode_cases
        .iter()
        .zip(&encode_best)
        .map(|((name, role, bytes, _), best)| Case {
            name,
            group: Group::Encode,
            role: *role,
            best: *best,
            bytes: *bytes,
        })
        .chain(
            parse_cases
                .iter()
                .zip(&parse_best)
                .map(|((name, role, _, _), best)| Case {
                    name,
                    group: Group::Parse,
                    role: *role,
                    best: *best,
                    bytes: stream_bytes,
                }),
        )
        .collect::<Vec<_>>();
    report::print(
        &report::Setup {
            events: frames,
            stream_bytes,
            chunk_bytes: CHUNK_BYTES,
            rounds,
            notes,
        },
        &cases,
    );
}

fn pair(p: parsers::Parsed) -> (u64, u64) {
    (p.events, p.field_bytes)
}

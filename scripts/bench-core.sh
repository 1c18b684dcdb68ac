#!/usr/bin/env bash
# Runs Herald's engine benchmark (bench/): herald-core's SSE encoder and parser against russe, sse-stream, axum and
# eventsource-stream, and the memcpy/memchr floors, on 1,000,000 generated events; prints a table and the targets.
#
# It builds with the `bench` profile (release at opt-level 3): plain `--release` in this workspace is tuned for
# Wasm size (opt-level "z"), which would measure the size-tuned build rather than the code. `cargo run --release -p
# herald-bench` still works and says so in its output. Extra arguments go to cargo (e.g. `--release`).
# HERALD_BENCH_EVENTS and HERALD_BENCH_ROUNDS (default 1000000 and 5): 1,000,000 events stream from DRAM;
# HERALD_BENCH_EVENTS=2000 HERALD_BENCH_ROUNDS=3000 measures the cache-hot regime. HERALD_BENCH_ONLY=<text> runs
# only the cases whose name contains the text (for profiling with perf).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
profile=(--profile bench)
for arg in "$@"; do
  if [[ "$arg" == --release || "$arg" == --profile* ]]; then profile=(); fi
done
exec cargo run -q "${profile[@]}" -p herald-bench "$@"

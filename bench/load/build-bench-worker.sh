#!/usr/bin/env bash
# Builds one of the yardstick workers in bench/ (hello-worker, baseline-worker) exactly as
# scripts/build-worker.sh builds Herald's: worker-build --release with the locally installed
# wasm-bindgen, wasm-opt (npm binaryen) and esbuild. Both share one target directory under the
# repository's ignored /target so the second build reuses the first one's dependencies.
# Usage: bench/load/build-bench-worker.sh bench/baseline-worker
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(cd "$1" && pwd)
cd "$dir"
export PATH="$root/node_modules/.bin:$PATH" # Node 22 from npm (scripts/setup.sh) for wrangler and node
export CARGO_TARGET_DIR="${HERALD_BENCH_TARGET_DIR:-$root/target/bench-workers}"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
exec worker-build --release

#!/usr/bin/env bash
# Builds the worker (edge-worker/build/worker/shim.mjs + wasm) with the locally installed wasm-bindgen,
# wasm-opt (npm binaryen) and esbuild, since worker-build's own downloads fail offline.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ "${HERALD_SKIP_BUILD:-}" == 1 && -f "$root/edge-worker/build/worker/shim.mjs" ]]; then
  exit 0
fi
export PATH="$root/node_modules/.bin:$PATH" # Node 22 from npm (scripts/setup.sh) for wrangler and node
cd "$root/edge-worker"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-wasm-bindgen}"
export WASM_OPT_BIN="${WASM_OPT_BIN:-$root/node_modules/.bin/wasm-opt}"
export ESBUILD_BIN="${ESBUILD_BIN:-$root/node_modules/.bin/esbuild}"
exec worker-build --release

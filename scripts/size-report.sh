#!/usr/bin/env bash
# Size report: builds Herald's worker and the workers-rs hello world (bench/hello-worker) the same way
# in this run (worker-build --release, same worker/wasm-bindgen versions, same release profile,
# wasm-opt from npm binaryen) and prints what Cloudflare counts: the gzip size of the script, i.e.
# the .wasm plus the JS glue. Targets: at most 2x the hello world, far under the 3 MB free-plan limit.
# When over 2x it also prints where the bytes go (bench/load/wasm-sizes.py, a twiggy stand-in).
# Usage: scripts/size-report.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
echo "== building Herald's worker" >&2
HERALD_SKIP_BUILD=0 bash scripts/build-worker.sh >&2
echo "== building the hello world" >&2
bash bench/load/build-bench-worker.sh bench/hello-worker >&2

gz() { gzip -9 -c "$@" | wc -c; }
# name, build dir: prints "raw_wasm gz_wasm gz_js"
measure() {
  local build=$1
  local js=("$build/index.js")
  [[ -f $build/worker/shim.mjs ]] && js+=("$build/worker/shim.mjs")
  # Each file is a separate module in the upload; gzip each and add up.
  local gz_js=0
  for file in "${js[@]}"; do gz_js=$((gz_js + $(gz "$file"))); done
  echo "$(stat -c %s "$build/index_bg.wasm") $(gz "$build/index_bg.wasm") $gz_js"
}
read -r h_raw h_wasm h_js < <(measure edge-worker/build)
read -r w_raw w_wasm w_js < <(measure bench/hello-worker/build)
h_total=$((h_wasm + h_js))
w_total=$((w_wasm + w_js))
ratio=$(awk -v a="$h_total" -v b="$w_total" 'BEGIN { printf "%.2f", a / b }')
wasm_ratio=$(awk -v a="$h_wasm" -v b="$w_wasm" 'BEGIN { printf "%.2f", a / b }')
limit=$((3 * 1024 * 1024))

echo
echo "Worker size (after wasm-opt; gzip -9; JS glue = index.js + worker/shim.mjs)"
printf '%-22s %12s %12s %12s %14s\n' worker "wasm bytes" "wasm gzip" "JS gzip" "total gzip"
printf '%-22s %12d %12d %12d %14d\n' "herald (edge-worker)" "$h_raw" "$h_wasm" "$h_js" "$h_total"
printf '%-22s %12d %12d %12d %14d\n' "workers-rs hello" "$w_raw" "$w_wasm" "$w_js" "$w_total"
printf '%-22s %12s %12s %12s %14s\n' "herald / hello" "" "${wasm_ratio}x" "" "${ratio}x"
echo
verdict() { if [[ $1 == 1 ]]; then echo met; else echo "NOT MET"; fi; }
within_2x=$(awk -v r="$ratio" 'BEGIN { print (r <= 2.0) ? 1 : 0 }')
printf '%-52s %-28s %s\n' target measured verdict
printf '%-52s %-28s %s\n' "total gzip at most 2x the workers-rs hello world" "${ratio}x ($h_total B)" "$(verdict "$within_2x")"
printf '%-52s %-28s %s\n' "far under Cloudflare's 3 MB (gzip) free-plan limit" \
  "$(awk -v a="$h_total" -v l="$limit" 'BEGIN { printf "%.1f%% of 3 MB", 100 * a / l }')" \
  "$(verdict "$(( h_total * 10 < limit ))")"

if [[ $within_2x != 1 ]]; then
  target_dir=${CARGO_TARGET_DIR:-$root/target}
  bench_dir=${HERALD_BENCH_TARGET_DIR:-$root/target/bench-workers}
  echo
  echo "Over 2x. What ships (a names section is debug information: it costs bytes and does nothing):"
  python3 bench/load/wasm-sizes.py --sections edge-worker/build/index_bg.wasm bench/hello-worker/build/index_bg.wasm
  echo
  echo "Where Herald's code comes from (cargo's output before wasm-bindgen and wasm-opt, so raw"
  echo "sizes; __wbindgen_describe_* and unused code are removed later)"
  python3 bench/load/wasm-sizes.py \
    "$target_dir/wasm32-unknown-unknown/release/herald_worker.wasm" \
    "$bench_dir/wasm32-unknown-unknown/release/hello_worker.wasm" 25
fi

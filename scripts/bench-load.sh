#!/usr/bin/env bash
# The load benchmark (not part of scripts/test.sh): builds Herald's worker and the baseline worker
# (bench/baseline-worker) the same way, builds the load generator (bench/load) with full
# optimisation, then runs it: it starts each worker on a fresh workerd (the binary wrangler ships,
# without wrangler dev, whose setup halves what this machine delivers) on a free loopback port, runs
# flat out (closed loop) and then 100 / 1,000 / 5,000 SSE streams at half the runtime's ceiling,
# drops and resumes every stream once, and prints a table with Herald's ratios to the same-shape
# baseline (the Worker holds the SSE response and relays from a hibernatable Durable Object) and the
# targets. Takes about 6 minutes; `--quick` under 2.
# Usage: scripts/bench-load.sh [--quick] [--measure-s S] [--sides herald,baseline-ws,...]
#        [--phases max,s100,s1000,s5000] [--runtime workerd|wrangler|...] [--ceiling E|measured]
# (every option is described at the top of bench/load/src/main.rs)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/node_modules/.bin:$PATH" # Node 22 from npm (scripts/setup.sh) for wrangler and node
# 5,000 streams are 5,000 sockets on each side of loopback, plus workerd's own.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (( $(ulimit -n) < 16384 )); then
  echo "warning: ulimit -n is $(ulimit -n); 5,000 streams need more than 10,000 descriptors" >&2
fi
echo "== building Herald's worker" >&2
bash scripts/build-worker.sh >&2
echo "== building the baseline worker" >&2
bash bench/load/build-bench-worker.sh bench/baseline-worker >&2
echo "== building the load generator" >&2
# Its own target directory and full speed: the workspace's release profile optimises for size.
CARGO_TARGET_DIR="$root/target/bench-load" CARGO_PROFILE_RELEASE_OPT_LEVEL=3 \
  CARGO_PROFILE_RELEASE_STRIP=false cargo build -q --release -p herald-load >&2
exec "$root/target/bench-load/release/herald-load" "$@"

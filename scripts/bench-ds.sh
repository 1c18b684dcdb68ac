#!/usr/bin/env bash
# The Durable Streams benchmark (not part of scripts/test.sh): builds the worker, starts it under
# `wrangler dev` on a free loopback port with fresh state, mints a token, and runs bench/ds/bench.mjs,
# which starts the protocol's Node reference server (@durable-streams/server) on this machine, measures
# append and catch-up read throughput of both in one run, and prints Herald's ratios.
# Knobs (environment): APPENDS, APPEND_BYTES, CONCURRENCY, READ_MB, READS (see bench/ds/bench.mjs).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/node_modules/.bin:$PATH"
[[ "${HERALD_SKIP_BUILD:-}" == 1 ]] || bash scripts/build-worker.sh >&2
key="bench-ds-key-$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
state=$(mktemp -d)
cleanup() { [[ -n "${pid:-}" ]] && kill -- "-$pid" 2>/dev/null; rm -rf "$state"; }
trap cleanup EXIT
HERALD_SKIP_BUILD=1 CI=true WRANGLER_SEND_METRICS=false WRANGLER_LOG_PATH="$state/logs" \
  setsid npx wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$state/do" \
  --var "HERALD_TOKEN_KEY:$key" >"$state/wrangler.log" 2>&1 &
pid=$!
for _ in $(seq 120); do curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 1; done
curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" || { cat "$state/wrangler.log" >&2; exit 1; }
token=$(HERALD_TOKEN_KEY="$key" cargo run -q -p herald-cli -- token --tenant bench --ttl-s 3600)
HERALD_URL="http://127.0.0.1:$port" DS_TOKEN="$token" node bench/ds/bench.mjs

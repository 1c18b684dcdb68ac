#!/usr/bin/env bash
# Sets up what is missing, then builds and runs Herald locally under `wrangler dev`
# (workerd with local Durable Object storage). PORT=8787 and HERALD_STATE_DIR=.wrangler/state by default.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
port="${PORT:-8787}"
state_dir="${HERALD_STATE_DIR:-.wrangler/state}"
bash scripts/setup.sh
export PATH="$root/node_modules/.bin:$PATH" # Node 22 from npm (scripts/setup.sh) for wrangler and node

# The token key lives in .dev.vars (git-ignored), created once with a random key.
if [[ ! -f .dev.vars ]]; then
  printf 'HERALD_TOKEN_KEY=%s\nHERALD_CORS_ORIGINS=http://localhost:8000,http://127.0.0.1:8000\n' \
    "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" > .dev.vars
  echo "[dev] created .dev.vars with a fresh HERALD_TOKEN_KEY"
fi

# The dev profile: the release profile is tuned for the worker's Wasm size (see Cargo.toml), which
# makes a slow build of a CLI that only mints a token here.
cargo build -q -p herald-cli
token=$(target/debug/herald token --dev-vars .dev.vars --tenant local --scope publish,subscribe --ttl-s 86400)

cat <<TXT

Herald is starting on http://127.0.0.1:$port (tenant "local"; token valid 24 h).

Live page (the token rides in the link's fragment, which never reaches a server):

  http://127.0.0.1:$port/#token=$token

In another terminal:

  export HERALD_TOKEN='$token'

  # subscribe (leave running)
  curl -N -H "Authorization: Bearer \$HERALD_TOKEN" http://127.0.0.1:$port/v1/streams/demo

  # publish
  curl -H "Authorization: Bearer \$HERALD_TOKEN" -H 'content-type: application/json' \\
       -d '{"event":"job:state_change","data":{"id":"j1","state":"active"}}' \\
       http://127.0.0.1:$port/v1/streams/demo/events

  # or with the herald command line
  export HERALD_URL=http://127.0.0.1:$port
  target/debug/herald tail demo
  target/debug/herald publish demo job:state_change '{"id":"j1","state":"active"}'

TXT
# wrangler runs scripts/build-worker.sh (wrangler.toml [build]) now and again whenever a source changes.
export CI=true WRANGLER_SEND_METRICS=false
export WRANGLER_LOG_PATH="$root/.wrangler/logs"
exec npx wrangler dev --ip 127.0.0.1 --port "$port" --persist-to "$state_dir"

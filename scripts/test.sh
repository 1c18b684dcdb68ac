#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test: format, lints, docs, the engine's tests
# natively and on wasm32 (Node), the no_std build, bounded fuzzing, a deploy dry run, and the end-to-end
# suite against the worker under `wrangler dev` with real clients (curl, npm eventsource, headless Chromium).
#   FUZZ_SECONDS=30 per fuzz target (0 skips fuzzing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash scripts/setup.sh --test
export PATH="$root/node_modules/.bin:$PATH" # Node 22 from npm (scripts/setup.sh) for wrangler and node
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
step() { printf '\n\033[1m== %s\033[0m\n' "$1"; shift; "$@"; }

step "format" cargo fmt --all --check
# Comments share the code's width (rustfmt.toml); only nightly rustfmt wraps comments.
comment_width() {
  if cargo +nightly fmt --version >/dev/null 2>&1; then
    cargo +nightly fmt --all --check -- --config wrap_comments=true,comment_width=100
  else
    echo "skipped: no nightly rustfmt on this machine"
  fi
}
step "comment width (nightly rustfmt)" comment_width
step "clippy (native)" cargo clippy --workspace --all-targets -- -D warnings
step "clippy (worker, wasm32)" cargo clippy -p herald-worker --target wasm32-unknown-unknown -- -D warnings
step "docs (herald-core)" env RUSTDOCFLAGS="-D warnings" cargo doc -q -p herald-core --no-deps
step "no_std build (x86_64-unknown-none)" cargo build -q -p herald-core --target x86_64-unknown-none
step "unit and property tests (native)" cargo test -q --workspace --exclude herald-e2e
step "live page stream reader (node --test)" node --disable-warning=MODULE_TYPELESS_PACKAGE_JSON --test tests/page/*.test.mjs
step "engine tests on wasm32 (wasm-bindgen-test under Node)" cargo test -p herald-core --target wasm32-unknown-unknown --tests

fuzz_seconds="${FUZZ_SECONDS:-30}"
if [[ "$fuzz_seconds" != 0 ]]; then
  for target in parse roundtrip; do
    step "fuzz $target (${fuzz_seconds}s)" bash -c "cd fuzz && cargo +nightly fuzz run $target -- -max_total_time=$fuzz_seconds"
  done
fi

step "plan runner types (mypy --strict, integrations/sqlmesh)" bash -c "cd integrations/sqlmesh && ../../.venv-sqlmesh/bin/mypy herald_runner tests fixtures"
step "plan runner unit tests (Python, integrations/sqlmesh)" bash -c "cd integrations/sqlmesh && ../../.venv-sqlmesh/bin/python -m unittest discover -s tests"
step "build worker" bash scripts/build-worker.sh

# `wrangler deploy` up to the upload: runs the [build] (reusing the build above), bundles the shim and the
# Wasm, checks the Durable Object binding against the exports and reads the assets directory, then stops.
# Needs no account and no network; a config that cannot deploy fails here instead of on deploy day.
deploy_dry_run() {
  local out status=0
  out=$(mktemp -d)
  HERALD_SKIP_BUILD=1 CI=true WRANGLER_SEND_METRICS=false WRANGLER_LOG_PATH="$out/logs" \
    npx wrangler deploy --dry-run --outdir "$out/bundle" || status=$?
  rm -rf "$out"
  return "$status"
}
step "deploy dry run (wrangler deploy --dry-run)" deploy_dry_run
step "end-to-end (wrangler dev + curl, eventsource, Chromium)" env HERALD_SKIP_BUILD=1 cargo test -q -p herald-e2e --no-fail-fast -- --test-threads=2
printf '\n\033[1mall tests passed\033[0m\n'

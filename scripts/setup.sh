#!/usr/bin/env bash
# Installs what a fresh machine lacks and skips what is there (a warm machine takes seconds).
#   scripts/setup.sh           what `wrangler dev` needs: Rust targets, worker-build, wasm-bindgen-cli, npm packages
#   scripts/setup.sh --test    also what the tests need: Chromium (apt), cargo-fuzz (nightly), and Python
#                              virtualenvs: Celery and sluice-celery (.venv-e2e/), SQLMesh (.venv-sqlmesh/);
#                              python3-venv from apt if missing
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

# Rust targets: wasm32 for the worker and the Wasm tests, x86_64-unknown-none to prove no_std.
installed_targets=$(rustup target list --installed)
for target in wasm32-unknown-unknown x86_64-unknown-none; do
  grep -qx "$target" <<<"$installed_targets" || { say "rustup target add $target"; rustup target add "$target"; }
done

# worker-build: the version must match the worker crate (0.8.x).
if ! worker-build --version 2>/dev/null | grep -q '0\.8\.7'; then
  say "cargo install worker-build 0.8.7"
  cargo install worker-build --version 0.8.7 --locked
fi

# wasm-bindgen-cli must equal the wasm-bindgen crate version in Cargo.lock exactly.
bindgen_version=$(awk '/^name = "wasm-bindgen"$/{getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $bindgen_version\$"; then
  say "cargo install wasm-bindgen-cli $bindgen_version"
  # No --locked: its own lockfile pins a crate version the registry no longer serves.
  cargo install wasm-bindgen-cli --version "$bindgen_version"
fi

# npm packages: Node 22 itself (npm package `node`; wrangler 4.164 needs Node >= 22.12, while npm keeps
# running on the system Node 20), wrangler, binaryen for wasm-opt, esbuild, test clients. The scripts put
# node_modules/.bin first on PATH, so wrangler, wasm-opt and the Node test clients run on that Node 22.
lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ "$(cat node_modules/.herald-lock-hash 2>/dev/null)" != "$lock_hash" ]] ||
  ! node_modules/.bin/node --version >/dev/null 2>&1; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock_hash" > node_modules/.herald-lock-hash
fi

if [[ $want_test == 1 ]]; then
  if ! command -v chromium >/dev/null; then
    say "apt-get install chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
  fi
  # Python for the sluice-celery end-to-end test: Celery and sluice's SDK in .venv-e2e/, pinned by
  # tests/e2e/python-requirements.txt (reinstalled when that file changes).
  venv="$root/.venv-e2e"
  reqs="$root/tests/e2e/python-requirements.txt"
  reqs_hash=$(sha256sum "$reqs" | cut -d' ' -f1)
  if [[ "$(cat "$venv/.herald-reqs-hash" 2>/dev/null)" != "$reqs_hash" ]] ||
    ! "$venv/bin/python" -c 'import celery, sluice' >/dev/null 2>&1; then
    if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
      say "apt-get install python3-venv"
      export DEBIAN_FRONTEND=noninteractive
      apt-get install -y -q python3-venv >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q python3-venv >/dev/null; }
    fi
    say "python3 -m venv .venv-e2e; pip install -r tests/e2e/python-requirements.txt"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$reqs"
    echo "$reqs_hash" > "$venv/.herald-reqs-hash"
  fi
  # Durable Streams interop: the Python client in .venv (tests/interop/requirements.txt).
  if ! .venv/bin/python -c "import durable_streams, httpx" >/dev/null 2>&1; then
    say "python venv: tests/interop/requirements.txt"
    python3 -m venv .venv
    .venv/bin/pip install -q -r tests/interop/requirements.txt
  fi
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    say "cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked
  fi
  # Python: SQLMesh (with DuckDB) for the plan runner in integrations/sqlmesh and its end-to-end test,
  # in a virtualenv. Reinstalled only when the requirement files change (about 20 s cold).
  sqlmesh_venv=.venv-sqlmesh
  sqlmesh_hash=$(cat integrations/sqlmesh/requirements.txt integrations/sqlmesh/constraints.txt | sha256sum | cut -d' ' -f1)
  if [[ "$(cat "$sqlmesh_venv/.herald-requirements-hash" 2>/dev/null)" != "$sqlmesh_hash" ]] ||
    ! "$sqlmesh_venv/bin/python" --version >/dev/null 2>&1; then
    say "pip install sqlmesh into $sqlmesh_venv"
    python3 -m venv "$sqlmesh_venv"
    "$sqlmesh_venv/bin/pip" install -q --disable-pip-version-check \
      -r integrations/sqlmesh/requirements.txt -c integrations/sqlmesh/constraints.txt
    echo "$sqlmesh_hash" > "$sqlmesh_venv/.herald-requirements-hash"
  fi
fi
say "ready"

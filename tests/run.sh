#!/usr/bin/env bash
# Runs the whole test suite: the pure core, storage (with openraft's storage suite), the engine,
# the HTTP API against real node processes, crash safety with SIGKILL, and the official Conductor
# Python SDK against a real node. Installs what it needs: libclang, cargo-nextest, and a Python
# virtualenv with conductor-python.
# Extra arguments go to `cargo nextest run` (e.g. -E 'test(crash)').
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/lib.sh"
ensure_build_deps
cd "$overture_root"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

# The official SDK, pinned, in a virtualenv outside the clone.
venv="${OVERTURE_VENV:-$HOME/.cache/overture-python}"
if ! "$venv/bin/python" -c 'import conductor.client' >/dev/null 2>&1; then
  echo "creating $venv with the Conductor Python SDK" >&2
  python3 -m venv "$venv" 2>/dev/null || { as_root apt-get install -y -qq python3-venv >/dev/null && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/python/requirements.txt
fi
export OVERTURE_PYTHON="$venv/bin/python"

# The process tests spawn the `overture` binary, which a test build alone does not refresh.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"

#!/usr/bin/env bash
# Starts one Overture node on this machine: a ready, single-member cluster with its data in
# ./overture-data, serving the Conductor API on http://127.0.0.1:8080.
# Extra arguments go to `overture dev` (e.g. --listen 127.0.0.1:9090 --data-dir /tmp/ov).
# The first run compiles Overture and RocksDB (about 20 minutes on two cores).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_build_deps
cd "$overture_root"
cargo build --release --workspace --bin overture
exec "$CARGO_TARGET_DIR/release/overture" dev "$@"

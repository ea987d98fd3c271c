#!/usr/bin/env bash
# Runs the whole test suite: the pure core, storage (with openraft's storage suite), the engine,
# the HTTP API against real node processes, crash safety with SIGKILL, three-node clusters with
# failover and snapshots, backups and restores, upgrades, the deployment files with a real
# Prometheus, the official Conductor Python SDK against a real node and a cluster, the official
# JavaScript SDK against a real node, and the web UI in headless Chromium in English and
# Chinese; then the fault suite again with six partitions. Installs what it needs: libclang,
# cargo-nextest, a Python virtualenv with conductor-python, nats-py, pika, confluent-kafka and
# PyYAML, Debian's chromium, fonts-noto-cjk, nats-server, rabbitmq-server and prometheus (with
# promtool), Tansu (a Kafka-protocol broker, built once from crates.io), and from npm
# playwright-core, the JavaScript SDK and s3rver (an S3-compatible server, for external payload
# storage).
# Building needs npm too: the UI's libraries come from the npm registry.
# Extra arguments go to `cargo nextest run` (e.g. -E 'test(crash)').
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../deploy/lib.sh"
ensure_build_deps
cd "$overture_root"

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest" >&2
  cargo install --locked cargo-nextest
fi

# The official SDK (and PyYAML, to check deployment files), pinned, in a virtualenv outside the
# clone.
ensure_python_sdk
# Chromium and playwright-core for the web UI's browser tests.
ensure_browser
# The official JavaScript SDK and s3rver (npm, pinned) for their tests.
ensure_js_sdk
# Message brokers for the event queue tests.
ensure_brokers
# Prometheus and promtool for the alert rules and the metrics tests.
ensure_prometheus

# The process tests spawn the `overture` binary, which a test build alone does not refresh.
cargo build --workspace --bins
cargo nextest run --workspace --no-fail-fast "$@"
# The whole suite, not a chosen part: the fault suite (cut-offs, full disks, clocks), the cluster
# tests (kill -9, SIGSTOP, membership) and the crash tests once more with six partitions, each
# fault met by a workload spread over partition groups that different nodes lead.
if [ $# -eq 0 ]; then
  OVERTURE_TEST_PARTITIONS=6 cargo nextest run --workspace --no-fail-fast -E 'binary(faults) | binary(cluster) | binary(crash)'
fi

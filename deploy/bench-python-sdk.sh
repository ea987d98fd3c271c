#!/usr/bin/env bash
# The linear benchmark with the official Conductor Python SDK's workers instead of the
# benchmark's own: tests/python/bench_workers.py runs one TaskHandler worker per task type
# (SDK defaults but `thread_count`), and `overture bench --external-workers` starts each workflow
# with the synchronous execute call and times it to completion.
#
#   OVERTURE_URL=http://127.0.0.1:8080 deploy/bench-python-sdk.sh --workflows 2000
#
# Environment: OVERTURE_URL (one node), BENCH_TASKS (steps per workflow, 5), BENCH_THREADS
# (threads per worker, 8). Extra arguments go to `overture bench`. Needs a running node.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_build_deps
ensure_python_sdk
cd "$overture_root"
url="${OVERTURE_URL:-http://127.0.0.1:8080}"
tasks="${BENCH_TASKS:-5}"
threads="${BENCH_THREADS:-8}"
cargo build --release --workspace --bin overture
overture="$CARGO_TARGET_DIR/release/overture"

# The workers stop when their stdin closes: when this script ends, however it ends.
coproc WORKERS { cd tests/python && exec "$OVERTURE_PYTHON" bench_workers.py --url "$url" --tasks "$tasks" --threads "$threads"; }
trap 'kill "$WORKERS_PID" 2>/dev/null || true' EXIT
# Wait until every worker has polled once, so the clock does not run while Python starts.
for _ in $(seq 1 150); do
  polled=0
  for i in $(seq 0 $((tasks - 1))); do
    if curl -sf "$url/api/tasks/queue/polldata?taskType=bench_task_$i" | grep -q lastPollTime; then
      polled=$((polled + 1))
    fi
  done
  [ "$polled" = "$tasks" ] && break
  sleep 0.2
done
[ "$polled" = "$tasks" ] || { echo "the SDK workers did not start polling" >&2; exit 1; }
"$overture" bench --url "$url" --tasks "$tasks" --external-workers "$@"

"""Workers for `overture bench --external-workers`, written with the official SDK's TaskHandler
the way a Conductor user writes them: one worker per task type of the benchmark's linear
workflow, each with `--threads` threads, the SDK's own polling (batch poll, update-v2) and
defaults otherwise. Runs until stdin closes or the process is told to stop.

    python bench_workers.py --url http://127.0.0.1:8080 --tasks 5 --threads 8
"""

import argparse
import signal
import sys
import threading

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.http.models import Task
from conductor.client.worker.worker import Worker

from sdk_common import connect


def step(task: Task) -> dict:
    """Each step reports its number, which the next step of the workflow takes as input."""
    return {"step": int(task.task_def_name.rsplit("_", 1)[1])}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="base URL of a node (one node: the SDK takes one)")
    parser.add_argument("--tasks", type=int, default=5, help="task types: bench_task_0 .. bench_task_{N-1}")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker (the SDK's thread_count)")
    args = parser.parse_args()
    config, _, _, _ = connect(args.url)
    workers = [
        Worker(task_definition_name=f"bench_task_{i}", execute_function=step, thread_count=args.threads)
        for i in range(args.tasks)
    ]
    handler = TaskHandler(workers=workers, configuration=config, scan_for_annotated_workers=False)
    handler.start_processes()
    print(f"{len(workers)} workers for {args.url}, {args.threads} threads each", flush=True)
    print("SDK workers polling", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    handler.stop_processes()


if __name__ == "__main__":
    main()

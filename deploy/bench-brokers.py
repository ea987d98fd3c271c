#!/usr/bin/env python3
"""Messages per second from a broker to started workflows, on one node: the leader consumes an
event queue whose handler starts a one-task workflow (SET_VARIABLE), and N messages are published
with the broker's own client (nats-py) as fast as it goes.

  deploy/bench-brokers.py N jsm|nats

Needs nats-server on PATH, nats-py (tests/python/requirements.txt) and a release build
(`cargo build --release --bin overture`, or OVERTURE_BIN). Prints one JSON line: how long the
publisher took (the broker's ceiling with this client) and how long until every message was
handled, then how many workflows exist and completed.
"""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import nats

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def http(method, url, body=None):
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.read().decode()

def metric(url, name):
    text = http("GET", url + "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))

async def main(n, kind):
    d = tempfile.mkdtemp(prefix="overture-bench-brokers-")
    np_, op = free_port(), free_port()
    ns = subprocess.Popen(["nats-server", "-a", "127.0.0.1", "-p", str(np_), "-js", "-sd", d + "/nats"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = dict(os.environ, OVERTURE_JSM_URL=f"nats://127.0.0.1:{np_}", OVERTURE_NATS_URL=f"nats://127.0.0.1:{np_}", RUST_LOG="warn")
    node = subprocess.Popen([os.environ.get("OVERTURE_BIN") or os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/overture-target")), "release", "overture"), "dev", "--listen", f"127.0.0.1:{op}", "--data-dir", d + "/node"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(d + "/node.log", "w"))
    url = f"http://127.0.0.1:{op}"
    for _ in range(100):
        try:
            http("GET", url + "/ready"); break
        except Exception:
            time.sleep(0.1)
    http("POST", url + "/api/metadata/workflow", {"name": "greeted", "version": 1, "tasks": [{"name": "hello",
          "taskReferenceName": "hello", "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}]})
    event = "jsm:tput.in" if kind == "jsm" else "nats:tput.in"
    http("POST", url + "/api/event", {"name": "h", "event": event, "active": True, "actions": [{"action": "start_workflow",
          "start_workflow": {"name": "greeted", "correlationId": "${id}", "input": {"who": "${who}"}}}]})
    name = f'overture_event_queue_consumers{{queueType="{kind}"}}'
    while metric(url, name) < 1:
        time.sleep(0.1)
    nc = await nats.connect(f"nats://127.0.0.1:{np_}")
    js = nc.jetstream()
    subject = "conductor_jsm_notify_test_tput.in" if kind == "jsm" else "tput.in"
    t0 = time.time()
    if kind == "jsm":
        futs = []
        for i in range(n):
            futs.append(js.publish(subject, json.dumps({"who": "w", "id": f"m-{i}"}).encode()))
            if len(futs) >= 256:
                await asyncio.gather(*futs); futs = []
        await asyncio.gather(*futs)
    else:
        for i in range(n):
            await nc.publish(subject, json.dumps({"who": "w", "id": f"m-{i}"}).encode())
        await nc.flush()
    t_pub = time.time() - t0
    handled = f'overture_event_queue_messages_processed_total{{queueType="{kind}",outcome="handled"}}'
    while metric(url, handled) < n:
        time.sleep(0.05)
    t_all = time.time() - t0
    print(json.dumps({"kind": kind, "messages": n, "publish_s": round(t_pub, 2), "publish_per_s": round(n / t_pub),
                      "handled_s": round(t_all, 2), "workflows_per_s": round(n / t_all)}))
    hits = json.loads(http("GET", url + "/api/workflow/search?size=1&query=workflowType%3D%27greeted%27"))["totalHits"]
    done = json.loads(http("GET", url + "/api/workflow/search?size=1&query=workflowType%3D%27greeted%27%20AND%20status%3D%27COMPLETED%27"))["totalHits"]
    print(json.dumps({"workflows": hits, "completed": done}))
    await nc.close()
    node.terminate(); node.wait(); ns.terminate(); ns.wait()
    shutil.rmtree(d, ignore_errors=True)

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))

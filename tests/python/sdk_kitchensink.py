"""A kitchensink workflow, built with the official conductor-python SDK's builders and run by its
TaskHandler workers: SIMPLE → EVENT → DYNAMIC → SWITCH (case 0: FORK_JOIN_DYNAMIC + JOIN; case
1: FORK_JOIN of a SIMPLE and a SUB_WORKFLOW + JOIN) → HTTP against a local server → JSON_JQ_TRANSFORM
→ SIMPLE.

Usage: python sdk_kitchensink.py http://HOST:PORT [workflows]
Prints STARTED once every workflow is started (a test may kill a node then), and a JSON summary
at the end. Exits 0 when every workflow completed as expected. Calls that fail while the cluster
elects a new leader are retried, as a patient client would.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.http.models import StartWorkflowRequest, TaskDef
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.dynamic_fork_task import DynamicForkTask
from conductor.client.workflow.task.dynamic_task import DynamicTask
from conductor.client.workflow.task.event_task import ConductorEventTask
from conductor.client.workflow.task.fork_task import ForkTask
from conductor.client.workflow.task.http_task import HttpInput, HttpMethod, HttpTask
from conductor.client.workflow.task.join_task import JoinTask
from conductor.client.workflow.task.json_jq_task import JsonJQTask
from conductor.client.workflow.task.simple_task import SimpleTask
from conductor.client.workflow.task.sub_workflow_task import SubWorkflowTask
from conductor.client.workflow.task.switch_task import SwitchTask

import sdk_workers  # noqa: F401  (registers the @worker_task functions)
from sdk_common import Checks, connect


class Echo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"method": "GET", "path": self.path, "status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def patiently(what, call, seconds=60):
    """Retries a client call through a leader election."""
    deadline = time.time() + seconds
    while True:
        try:
            return call()
        except Exception as e:  # noqa: BLE001 (the SDK raises plain exceptions)
            if time.time() > deadline:
                raise RuntimeError(f"{what} kept failing: {e}") from e
            time.sleep(0.5)


def main(base_url: str, count: int) -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    echo_url = f"http://127.0.0.1:{server.server_address[1]}/status"

    config, metadata, workflows, executor = connect(base_url)
    check = Checks()
    failures = check.failures

    for name in ["ks_prepare", "ks_picked", "ks_leaf", "ks_branch", "ks_child_step", "ks_final"]:
        td = TaskDef(name=name, retry_count=2, retry_delay_seconds=0, response_timeout_seconds=10,
                     timeout_seconds=0, owner_email="sdk@overture.test")
        patiently("register a task definition", lambda: metadata.register_task_def(td))

    child = ConductorWorkflow(executor=executor, name="ks_child", version=1)
    child_step = SimpleTask("ks_child_step", "child_step")
    child_step.input_parameters.update({"n": "${workflow.input.n}"})
    child >> child_step
    child.output_parameters({"child_saw": "${child_step.output.child_saw}"})
    patiently("register the child", lambda: child.register(overwrite=True))

    wf = ConductorWorkflow(executor=executor, name="ks_kitchensink", version=1)
    prepare = SimpleTask("ks_prepare", "prepare")
    prepare.input_parameters.update({"n": "${workflow.input.n}"})
    event = ConductorEventTask("event", "kitchensink_event")
    event.input_parameters.update({"n": "${workflow.input.n}"})
    dynamic = DynamicTask("${prepare.output.taskToExecute}", "dynamic")

    fan = DynamicForkTask("fan", tasks_param="forks", tasks_input_param_name="forkInputs")
    fan.input_parameters.update({"forks": "${prepare.output.forks}", "forkInputs": "${prepare.output.forkInputs}"})
    fan_join = JoinTask("fan_join")

    branch = SimpleTask("ks_branch", "branch")
    branch.input_parameters.update({"side": "left"})
    sub = SubWorkflowTask("sub", "ks_child", version=1)
    sub.input_parameters.update({"n": "${workflow.input.n}"})
    # Inside a case the builder adds no JOIN by itself; join_on makes it emit one.
    pair = ForkTask("pair", [[branch], [sub]], join_on=["branch", "sub"])

    route = SwitchTask("route", "${prepare.output.oddEven}")
    route.switch_case("0", [fan, fan_join])
    route.switch_case("1", [pair])

    http = HttpTask("http", HttpInput(method=HttpMethod.GET, uri=echo_url, accept=["application/json"],
                                      headers={"X-Test": ["kitchensink"]}))
    shape = JsonJQTask("shape", "{status: .response.body.status, path: .response.body.path}")
    shape.input_parameters.update({"response": "${http.output.response}"})
    final = SimpleTask("ks_final", "final")
    final.input_parameters.update({"method": "${http.output.response.body.method}", "shaped": "${shape.output.result}"})

    wf >> prepare >> event >> dynamic >> route >> http >> shape >> final
    wf.output_parameters({"method": "${final.output.method}", "shaped": "${final.output.shaped}",
                          "picked": "${dynamic.output.picked}", "fan": "${fan_join.output}",
                          "child": "${sub.output.child_saw}", "side": "${branch.output.side}"})
    patiently("register the kitchensink", lambda: wf.register(overwrite=True))

    handler = TaskHandler(workers=[], configuration=config, scan_for_annotated_workers=True,
                          import_modules=["sdk_workers"])
    handler.start_processes()
    try:
        ids = []
        for n in range(count):
            req = StartWorkflowRequest(name="ks_kitchensink", version=1, input={"n": n}, correlation_id=f"ks-{n}")
            ids.append((n, patiently("start a workflow", lambda: workflows.start_workflow(req))))
        print("STARTED", flush=True)

        deadline = time.time() + 180
        pending = dict(ids)
        done = {}
        while pending and time.time() < deadline:
            for n, wid in list(pending.items()):
                try:
                    status = workflows.get_workflow_status(wid, include_output=True, include_variables=False)
                except Exception:  # noqa: BLE001 (a node may be down for a moment)
                    continue
                if status.status in ("COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"):
                    done[n] = status
                    del pending[n]
            time.sleep(0.3)
        check(not pending, f"workflows still running after 180 s: {sorted(pending)}")

        for n, status in sorted(done.items()):
            check(status.status == "COMPLETED", f"workflow {n} is {status.status}")
            out = status.output or {}
            check(out.get("method") == "GET", f"workflow {n}: HTTP response reached the last task: {out}")
            check(out.get("shaped") == {"status": "ok", "path": "/status"}, f"workflow {n}: jq shaped it: {out}")
            check(out.get("picked") == "ks_picked", f"workflow {n}: DYNAMIC ran the named task: {out}")
            if n % 2 == 0:
                fan_out = out.get("fan") or {}
                check(sorted(fan_out) == ["leaf_0", "leaf_1", "leaf_2"], f"workflow {n}: dynamic fork joined: {out}")
            else:
                check(out.get("child") == n and out.get("side") == "left", f"workflow {n}: fork with a sub-workflow: {out}")
        full = patiently("get a workflow", lambda: workflows.get_workflow(ids[0][1], include_tasks=True))
        types = sorted({t.task_type for t in full.tasks})
        check({"EVENT", "FORK", "JOIN", "SWITCH", "HTTP", "JSON_JQ_TRANSFORM"} <= set(types), f"task types: {types}")
    finally:
        handler.stop_processes()
        server.shutdown()

    print(json.dumps({"workflows": count, "failures": failures}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 10))

"""Runs the official conductor-python SDK against an Overture node and checks the results.

Usage: python sdk_workload.py http://127.0.0.1:PORT
Exits 0 when every check passes; prints what failed otherwise.
"""

import json
import sys
import time
import urllib.request

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.http.api.task_resource_api import TaskResourceApi
from conductor.client.http.api_client import ApiClient
from conductor.client.http.models import StartWorkflowRequest, TaskDef
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.simple_task import SimpleTask

import sdk_workers  # noqa: F401  (registers the @worker_task functions)
from sdk_common import Checks, connect

WORKFLOWS = 20


BIG_PAYLOAD = 4_200_000


def wait_ended(workflows, wid, seconds):
    """The workflow with its tasks once it is no longer RUNNING, or as it is after `seconds`."""
    deadline = time.time() + seconds
    wf = None
    while time.time() < deadline:
        wf = workflows.get_workflow(wid, include_tasks=True)
        if wf is not None and wf.status != "RUNNING":
            break
        time.sleep(0.2)
    return wf


def check_big_payload(config, workflows, wid, check):
    """The large output went to external payload storage, the next worker read it, and the SDK's
    own location API gives it back."""
    wf = wait_ended(workflows, wid, 120)
    check(wf is not None and wf.status == "COMPLETED", f"the large-payload workflow: {wf and wf.status}")
    if wf is None or wf.status != "COMPLETED":
        return
    chars = BIG_PAYLOAD // 3
    check(wf.output == {"length": chars, "head": "大大大"}, f"the next worker read the large output: {wf.output}")
    emit, measure = wf.tasks
    check(emit.output_data == {} and (emit.external_output_payload_storage_path or "").startswith("task/output/"),
          f"the output is stored elsewhere: {emit.external_output_payload_storage_path}")
    check(measure.input_data == {} and measure.external_input_payload_storage_path,
          f"so is the next task's input: {measure.external_input_payload_storage_path}")
    tasks_api = TaskResourceApi(ApiClient(config))
    location = tasks_api.get_external_storage_location1(emit.external_output_payload_storage_path, "READ", "TASK_OUTPUT")
    with urllib.request.urlopen(location.uri, timeout=60) as r:
        stored = json.loads(r.read())
    check(len(stored.get("blob", "")) == chars and stored.get("size") == BIG_PAYLOAD,
          f"the stored output reads back through its location: {len(stored.get('blob', ''))} characters")


def main(base_url: str) -> int:
    config, metadata, workflows, executor = connect(base_url)
    check = Checks()
    failures = check.failures

    # Task definitions, through the metadata client.
    for name, retries in [("sdk_greet", 0), ("sdk_flaky", 2), ("sdk_slow", 0), ("sdk_fatal", 3),
                          ("sdk_big_emit", 0), ("sdk_big_measure", 0)]:
        td = TaskDef(name=name, retry_count=retries, retry_delay_seconds=0, response_timeout_seconds=30,
                     timeout_seconds=0, owner_email="sdk@overture.test")
        metadata.register_task_def(td)
    fetched = metadata.get_task_def("sdk_flaky")
    check(fetched is not None and fetched.retry_count == 2, f"get_task_def round-trips retryCount: {fetched}")

    # A workflow built and registered with the SDK's builder.
    wf = ConductorWorkflow(executor=executor, name="sdk_pipeline", version=1, description="SDK compatibility")
    greet = SimpleTask("sdk_greet", "greet")
    greet.input_parameters.update({"name": "${workflow.input.name}"})
    flaky = SimpleTask("sdk_flaky", "flaky")
    flaky.input_parameters.update({"previous": "${greet.output.greeting}"})
    slow = SimpleTask("sdk_slow", "slow")
    wf >> greet >> flaky >> slow
    wf.output_parameters({"greeting": "${greet.output.greeting}", "attempt": "${flaky.output.attempt}",
                          "polls": "${slow.output.polls}"})
    wf.register(overwrite=True)
    registered = metadata.get_workflow_def("sdk_pipeline", version=1)
    check(registered is not None and len(registered.tasks) == 3, f"get_workflow_def returns the definition: {registered}")

    fatal_wf = ConductorWorkflow(executor=executor, name="sdk_fatal_flow", version=1)
    fatal_task = SimpleTask("sdk_fatal", "fatal")
    fatal_task.input_parameters.update({"reason": "cannot continue"})
    fatal_wf >> fatal_task

    # A 4.2 MB output, over the 3 MiB threshold, read by the next worker.
    big_wf = ConductorWorkflow(executor=executor, name="sdk_big_payload", version=1)
    emit = SimpleTask("sdk_big_emit", "emit")
    emit.input_parameters.update({"size": BIG_PAYLOAD})
    measure = SimpleTask("sdk_big_measure", "measure")
    measure.input_parameters.update({"blob": "${emit.output.blob}"})
    big_wf >> emit >> measure
    big_wf.output_parameters({"length": "${measure.output.length}", "head": "${measure.output.head}"})
    big_wf.register(overwrite=True)

    handler = TaskHandler(workers=[], configuration=config, scan_for_annotated_workers=True,
                          import_modules=["sdk_workers"])
    handler.start_processes()
    try:
        ids = []
        for i in range(WORKFLOWS):
            if i % 2 == 0:
                req = StartWorkflowRequest(name="sdk_pipeline", version=1, input={"name": f"user{i}"},
                                           correlation_id=f"sdk-{i}")
                ids.append((i, workflows.start_workflow(req)))
            else:
                ids.append((i, workflows.start_workflow_by_name("sdk_pipeline", {"name": f"user{i}"},
                                                                version=1, correlationId=f"sdk-{i}")))
        # The builder's start embeds the definition in the request (an inline workflowDef).
        fatal_id = fatal_wf.start_workflow_with_input(workflow_input={})
        big_id = workflows.start_workflow(StartWorkflowRequest(name="sdk_big_payload", version=1, input={}))

        deadline = time.time() + 120
        pending = dict(ids)
        results = {}
        while pending and time.time() < deadline:
            for i, wid in list(pending.items()):
                status = workflows.get_workflow_status(wid, include_output=True, include_variables=False)
                if status.status in ("COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"):
                    results[i] = (wid, status)
                    del pending[i]
            time.sleep(0.2)
        check(not pending, f"workflows still running after 120 s: {sorted(pending)}")

        for i, (wid, status) in sorted(results.items()):
            check(status.status == "COMPLETED", f"workflow {i} {wid} is {status.status}")
            out = status.output or {}
            check(out.get("greeting") == f"hello user{i}", f"workflow {i} greeting: {out}")
            check(out.get("attempt") == 1, f"workflow {i} flaky task succeeded on its retry: {out}")
            check((out.get("polls") or 0) >= 2, f"workflow {i} slow task was re-polled after IN_PROGRESS: {out}")

        # Full workflow model: decodes (the SDK drops the whole object on one bad field) and
        # shows the retry.
        wid = results[0][0] if 0 in results else ids[0][1]
        full = workflows.get_workflow(wid, include_tasks=True)
        check(full is not None, "get_workflow decodes")
        if full is not None:
            flaky_attempts = [t for t in full.tasks if t.reference_task_name == "flaky"]
            check([t.status for t in flaky_attempts] == ["FAILED", "COMPLETED"],
                  f"flaky attempts: {[t.status for t in flaky_attempts]}")
            check(flaky_attempts[0].reason_for_incompletion and "transient" in flaky_attempts[0].reason_for_incompletion,
                  f"failure reason recorded: {flaky_attempts[0].reason_for_incompletion}")
            check(full.correlation_id == "sdk-0", f"correlation id: {full.correlation_id}")

        fatal = wait_ended(workflows, fatal_id, 60)
        check(fatal is not None and fatal.status == "FAILED", f"non-retryable failure fails the workflow: {fatal and fatal.status}")
        if fatal is not None:
            check([t.status for t in fatal.tasks] == ["FAILED_WITH_TERMINAL_ERROR"],
                  f"terminal error is not retried: {[t.status for t in fatal.tasks]}")
            check("cannot continue" in (fatal.reason_for_incompletion or ""), f"reason: {fatal.reason_for_incompletion}")

        check_big_payload(config, workflows, big_id, check)

        # Terminate through the client (the pipeline's slow step keeps it running for a second).
        running = workflows.start_workflow(StartWorkflowRequest(name="sdk_pipeline", version=1, input={"name": "x"}))
        workflows.terminate_workflow(running, reason="stopped by the SDK test")
        terminated = workflows.get_workflow(running, include_tasks=False)
        check(terminated.status == "TERMINATED", f"terminate: {terminated.status}")

        # Search through the SDK: WorkflowSummary decodes, with its string-typed times and input.
        found = workflows.search(start=0, size=10, free_text="*",
                                 query=f"workflowType = 'sdk_pipeline' AND workflowId = '{running}'")
        results = (found.results or []) if found is not None else []
        check(len(results) == 1, f"search finds the terminated workflow: {found}")
        if results:
            summary = results[0]
            check(summary.status == "TERMINATED" and summary.workflow_id == running, f"summary: {summary}")
            check(isinstance(summary.start_time, str) and summary.start_time.endswith("Z"), f"startTime: {summary.start_time}")
            check(summary.input == "{name=x}", f"input as Conductor prints a map: {summary.input}")
        correlated = workflows.search(query="correlationId = 'sdk-0'")
        check(correlated is not None and [w.correlation_id for w in correlated.results or []] == ["sdk-0"],
              f"search by correlation id: {correlated}")
    finally:
        handler.stop_processes()

    print(json.dumps({"workflows": WORKFLOWS, "failures": failures}), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

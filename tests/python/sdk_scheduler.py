"""The official SDK's scheduler client against a node: save, read, list, next fire times,
pause and resume (the SDK's PUT), searching the fires, delete."""

import json
import sys
import time

from conductor.client.http.models import StartWorkflowRequest
from conductor.client.http.rest import ApiException
from conductor.client.http.models.save_schedule_request import SaveScheduleRequest
from conductor.client.orkes_clients import OrkesClients
from conductor.client.workflow.conductor_workflow import ConductorWorkflow
from conductor.client.workflow.task.simple_task import SimpleTask

from sdk_common import Checks, connect


def main(base_url: str) -> int:
    check = Checks()
    config, _, workflows, _ = connect(base_url)
    clients = OrkesClients(configuration=config)
    scheduler = clients.get_scheduler_client()
    executor = clients.get_workflow_executor()
    wf = ConductorWorkflow(executor=executor, name="sdk_cron", version=1)
    wf.add(SimpleTask(task_def_name="sdk_cron_task", task_reference_name="t"))
    wf.register(overwrite=True)

    request = SaveScheduleRequest(
        name="sdk_every_second",
        cron_expression="* * * * * *",
        start_workflow_request=StartWorkflowRequest(name="sdk_cron", version=1, input={"by": "sdk"}),
        zone_id="UTC",
        description="fires every second",
    )
    scheduler.save_schedule(request)
    got = scheduler.get_schedule("sdk_every_second")
    check(got is not None and got.cron_expression == "* * * * * *" and got.zone_id == "UTC", f"get_schedule: {got}")
    check(got is not None and got.start_workflow_request is not None
          and got.start_workflow_request.name == "sdk_cron", f"its start request decodes: {got}")
    listed = scheduler.get_all_schedules("sdk_cron")
    check([s.name for s in listed] == ["sdk_every_second"], f"get_all_schedules: {listed}")
    times = scheduler.get_next_few_schedule_execution_times("0 0 * * * *", limit=2)
    check(len(times) == 2 and times[1] - times[0] == 3_600_000, f"next few: {times}")

    deadline = time.time() + 15
    found = None
    while time.time() < deadline:
        found = scheduler.search_schedule_executions(query="scheduleName = 'sdk_every_second'")
        if found is not None and len(found.results or []) >= 2:
            break
        time.sleep(0.3)
    results = (found.results or []) if found is not None else []
    check(len(results) >= 2, f"the schedule fired: {found}")
    if results:
        check(results[0].state == "EXECUTED" and results[0].workflow_id, f"execution record: {results[0]}")
        started = workflows.get_workflow(results[0].workflow_id, include_tasks=False)
        check(started is not None and started.input.get("by") == "sdk", f"the fire's workflow: {started}")

    scheduler.pause_schedule("sdk_every_second")
    paused = scheduler.get_schedule("sdk_every_second")
    check(paused is not None and paused.paused, f"paused: {paused}")
    scheduler.resume_schedule("sdk_every_second")
    resumed = scheduler.get_schedule("sdk_every_second")
    check(resumed is not None and not resumed.paused, f"resumed: {resumed}")
    scheduler.delete_schedule("sdk_every_second")
    # conductor-oss answers 404 for a schedule that does not exist, which the SDK raises.
    try:
        gone = scheduler.get_schedule("sdk_every_second")
        check(False, f"deleted: get_schedule raises not found, not {gone}")
    except ApiException as e:
        check(e.status == 404, f"deleted: get_schedule raises 404, not {e.status}")

    print(json.dumps({"failures": check.failures}), flush=True)
    return 1 if check.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

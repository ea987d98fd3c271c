"""Workers for the SDK compatibility test, written as a Conductor user writes them.

They live in their own module because TaskHandler starts one process per worker (spawn), and
each process imports this module by name.
"""

from conductor.client.context.task_context import TaskInProgress
from conductor.client.http.models import Task
from conductor.client.worker.exception import NonRetryableException
from conductor.client.worker.worker_task import worker_task


@worker_task(task_definition_name="sdk_greet")
def greet(name: str) -> dict:
    return {"greeting": f"hello {name}"}


@worker_task(task_definition_name="sdk_flaky")
def flaky(task: Task) -> dict:
    # The first attempt fails with an ordinary exception, which the SDK reports as FAILED;
    # the server retries it per the task definition.
    if task.retry_count < 1:
        raise RuntimeError("transient failure on the first attempt")
    return {"attempt": task.retry_count, "previous": task.input_data.get("previous")}


@worker_task(task_definition_name="sdk_slow")
def slow(task: Task):
    # IN_PROGRESS with a callback: the server re-queues the task and hands it out again later.
    if task.poll_count < 2:
        return TaskInProgress(callback_after_seconds=1, output={"progress": 50})
    return {"progress": 100, "polls": task.poll_count}


@worker_task(task_definition_name="sdk_fatal")
def fatal(reason: str) -> dict:
    raise NonRetryableException(reason)


@worker_task(task_definition_name="sdk_big_emit")
def big_emit(size: int) -> dict:
    # An output over the node's 3 MiB threshold: the node stores it as an external payload.
    return {"blob": "大" * (size // 3), "size": size}


@worker_task(task_definition_name="sdk_big_measure")
def big_measure(blob: str) -> dict:
    return {"length": len(blob), "head": blob[:3]}


# Workers of the kitchensink workflow (sdk_kitchensink.py).

@worker_task(task_definition_name="ks_prepare")
def ks_prepare(n: int) -> dict:
    forks = [{"name": "ks_leaf", "taskReferenceName": f"leaf_{i}", "type": "SIMPLE"} for i in range(3)]
    return {
        "oddEven": n % 2,
        "taskToExecute": "ks_picked",
        "forks": forks,
        "forkInputs": {f"leaf_{i}": {"i": i} for i in range(3)},
    }


@worker_task(task_definition_name="ks_picked")
def ks_picked(task: Task) -> dict:
    return {"picked": task.task_def_name}


@worker_task(task_definition_name="ks_leaf")
def ks_leaf(i: int) -> dict:
    return {"leaf": i}


@worker_task(task_definition_name="ks_branch")
def ks_branch(side: str) -> dict:
    return {"side": side}


@worker_task(task_definition_name="ks_child_step")
def ks_child_step(n: int) -> dict:
    return {"child_saw": n}


@worker_task(task_definition_name="ks_final")
def ks_final(method: str, shaped: dict) -> dict:
    return {"method": method, "shaped": shaped}

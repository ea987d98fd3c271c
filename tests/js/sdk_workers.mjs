// The SDK's workers against a node, written as a Conductor user writes them: a legacy
// TaskManager running workers that complete (with Chinese input and output), fail once and are
// retried by the server, report IN_PROGRESS with a callback, and fail terminally
// (NonRetryableException); and a TaskHandler running a worker given to it and a worker
// registered with the worker() decorator (which registers its task definition).

import {
  MetadataClient,
  NonRetryableException,
  TaskHandler,
  TaskManager,
  TaskRunner,
  WorkflowExecutor,
  simpleTask,
  taskDefinition,
  worker,
  workflow,
} from "@io-orkes/conductor-javascript";

import { Checks, connect, logger, run, waitFor } from "./sdk_common.mjs";

const NAMES = ["世界", "张三", "数据流水线"];

/** Records what the workers' runners report going wrong: failed polls and lost updates. */
function listener(c) {
  return {
    onPollFailure: (e) => c.check(false, `poll of ${e.taskType} failed: ${e.cause?.message ?? e.cause}`),
    onTaskUpdateFailure: (e) => c.check(false, `update of ${e.taskType} ${e.taskId} lost: ${e.cause?.message ?? e.cause}`),
  };
}

const workers = [
  {
    taskDefName: "js_greet",
    execute: async (task) => ({
      status: "COMPLETED",
      outputData: { greeting: `你好，${task.inputData.name}`, chars: [...task.inputData.name].length },
    }),
  },
  {
    // The first attempt throws, which the SDK reports as FAILED; the server retries it.
    taskDefName: "js_flaky",
    execute: async (task) => {
      if ((task.retryCount ?? 0) < 1) throw new Error("第一次失败 (transient)");
      return { status: "COMPLETED", outputData: { attempt: task.retryCount, previous: task.inputData.previous } };
    },
  },
  {
    // IN_PROGRESS with a callback: the server hands the task out again later.
    taskDefName: "js_slow",
    execute: async (task) => {
      if ((task.pollCount ?? 0) < 2) return { status: "IN_PROGRESS", callbackAfterSeconds: 1, outputData: { progress: 50 } };
      return { status: "COMPLETED", outputData: { progress: 100, polls: task.pollCount } };
    },
  },
  {
    taskDefName: "js_fatal",
    execute: async (task) => {
      throw new NonRetryableException(`无法处理 ${task.inputData.reason}`);
    },
  },
];

async function main(baseUrl) {
  const { client, exchanges, errors } = await connect(baseUrl);
  const c = new Checks(exchanges);
  const metadata = new MetadataClient(client);
  const executor = new WorkflowExecutor(client);

  await c.call("registerTasks", () =>
    metadata.registerTasks([
      taskDefinition({ name: "js_greet", retryCount: 0, timeoutSeconds: 60, responseTimeoutSeconds: 30 }),
      taskDefinition({ name: "js_flaky", retryCount: 1, retryDelaySeconds: 0, timeoutSeconds: 60, responseTimeoutSeconds: 30 }),
      taskDefinition({ name: "js_slow", retryCount: 0, timeoutSeconds: 60, responseTimeoutSeconds: 30 }),
      taskDefinition({ name: "js_fatal", retryCount: 3, retryDelaySeconds: 0, timeoutSeconds: 60, responseTimeoutSeconds: 30 }),
      taskDefinition({ name: "js_handled", retryCount: 0, timeoutSeconds: 60, responseTimeoutSeconds: 30 }),
    ]),
  );
  await c.call("register js_workers_flow", () =>
    executor.registerWorkflow(true, {
      ...workflow("js_workers_flow", [
        simpleTask("greet", "js_greet", { name: "${workflow.input.name}" }),
        simpleTask("flaky", "js_flaky", { previous: "${greet.output.greeting}" }),
        simpleTask("slow", "js_slow", {}),
        simpleTask("handled", "js_handled", { greeting: "${greet.output.greeting}" }),
        simpleTask("decorated", "js_decorated", { name: "${workflow.input.name}" }),
      ]),
      version: 1,
      outputParameters: {
        greeting: "${greet.output.greeting}",
        chars: "${greet.output.chars}",
        attempt: "${flaky.output.attempt}",
        previous: "${flaky.output.previous}",
        polls: "${slow.output.polls}",
        handled: "${handled.output.echo}",
        decorated: "${decorated.output.reversed}",
      },
    }),
  );
  await c.call("register js_workers_fatal", () =>
    executor.registerWorkflow(true, {
      ...workflow("js_workers_fatal", [simpleTask("fatal", "js_fatal", { reason: "${workflow.input.reason}" })]),
      version: 1,
    }),
  );

  // The legacy TaskManager, polling every 50 ms with two concurrent tasks per worker.
  const manager = new TaskManager(client, workers, {
    logger,
    options: { workerID: "js-task-manager", pollInterval: 50, concurrency: 2 },
    eventListeners: [listener(c)],
  });
  manager.startPolling();
  c.check(manager.isPolling, "the TaskManager polls");

  // A worker registered by the decorator (called as a function: plain JavaScript has no
  // decorator syntax), which also registers its task definition (create if missing).
  worker({ taskDefName: "js_decorated", pollInterval: 50, registerTaskDef: true, overwriteTaskDef: false })(
    async function decorated(task) {
      return { status: "COMPLETED", outputData: { reversed: [...task.inputData.name].reverse().join("") } };
    },
  );
  const handler = new TaskHandler({
    client,
    logger,
    scanForDecorated: true,
    workers: [
      {
        taskDefName: "js_handled",
        pollInterval: 50,
        execute: async (task) => ({ status: "COMPLETED", outputData: { echo: task.inputData.greeting } }),
      },
    ],
    eventListeners: [listener(c)],
  });
  await handler.startWorkers();

  const ids = [];
  for (const name of NAMES) {
    const id = await c.call(`start js_workers_flow for ${name}`, () =>
      executor.startWorkflow({ name: "js_workers_flow", version: 1, input: { name } }),
    );
    if (id) ids.push([name, id]);
  }
  const fatalId = await c.call("start js_workers_fatal", () =>
    executor.startWorkflow({ name: "js_workers_fatal", version: 1, input: { reason: "坏数据" } }),
  );

  const ended = async (id) => {
    const s = await executor.getWorkflowStatus(id, true, false);
    return ["COMPLETED", "FAILED", "TERMINATED", "TIMED_OUT"].includes(s.status) ? s : undefined;
  };
  for (const [name, id] of ids) {
    const done = await waitFor(() => ended(id), 30000);
    c.check(done?.status === "COMPLETED", `${name}: the workflow completes: ${JSON.stringify(done)}`);
    const out = done?.output ?? {};
    c.check(out.greeting === `你好，${name}` && out.chars === [...name].length, `${name}: greeting ${JSON.stringify(out)}`);
    c.check(out.attempt === 1 && out.previous === `你好，${name}`, `${name}: retried once after a failure: ${JSON.stringify(out)}`);
    c.check(out.polls >= 2, `${name}: IN_PROGRESS was polled again: ${JSON.stringify(out)}`);
    c.check(out.handled === `你好，${name}`, `${name}: the TaskHandler's worker ran: ${JSON.stringify(out)}`);
    c.check(out.decorated === [...name].reverse().join(""), `${name}: the decorated worker ran: ${JSON.stringify(out)}`);
    const wf = await c.call(`getWorkflow ${id}`, () => executor.getWorkflow(id, true));
    const flaky = (wf?.tasks ?? []).filter((t) => t.referenceTaskName === "flaky");
    c.check(flaky.length === 2 && flaky[0].status === "FAILED" && flaky[0].reasonForIncompletion === "第一次失败 (transient)",
      `${name}: the failed attempt is kept with its reason: ${JSON.stringify(flaky.map((t) => [t.status, t.reasonForIncompletion]))}`);
    const greet = (wf?.tasks ?? []).find((t) => t.referenceTaskName === "greet");
    c.check(greet?.workerId === "js-task-manager", `${name}: the worker id is recorded: ${greet?.workerId}`);
  }

  if (fatalId) {
    const failed = await waitFor(() => ended(fatalId), 30000);
    c.check(failed?.status === "FAILED", `a NonRetryableException fails the workflow: ${JSON.stringify(failed)}`);
    const wf = await c.call("getWorkflow of the failed one", () => executor.getWorkflow(fatalId, true));
    const tasks = wf?.tasks ?? [];
    c.check(tasks.length === 1 && tasks[0].status === "FAILED_WITH_TERMINAL_ERROR",
      `it is not retried: ${JSON.stringify(tasks.map((t) => t.status))}`);
    c.check(tasks[0]?.reasonForIncompletion === "无法处理 坏数据", `its reason: ${tasks[0]?.reasonForIncompletion}`);
  }

  const registered = await c.call("getTask js_decorated", () => metadata.getTask("js_decorated"));
  c.check(registered?.name === "js_decorated", `the decorator registered its task definition: ${JSON.stringify(registered)}`);

  await handler.stopWorkers();
  await manager.stopPolling();
  c.check(!manager.isPolling, "the TaskManager stops");

  // The runners report results through /api/tasks/update-v2 (falling back to /api/tasks only on
  // a 404 or 405, silently), and no request was refused but the decorator's look-up of its task
  // definition before it creates it.
  c.check(TaskRunner.updateV2Available === true, `update-v2 was used: ${TaskRunner.updateV2Available}`);
  const unexpected = errors.filter((e) => !(e.method === "GET" && e.path === "/api/metadata/taskdefs/js_decorated"));
  c.check(unexpected.length === 0, `requests refused: ${JSON.stringify(unexpected)}`);
  return c.finish();
}

run(main);

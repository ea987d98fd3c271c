// The SDK's workflow executor against a node: register definitions (the executor's
// registerWorkflow and the ConductorWorkflow builder), start a workflow, read its status and
// execution, move it on by updating tasks, execute workflows synchronously (executeWorkflow and
// ConductorWorkflow.execute), pause, resume, terminate, restart, retry and search.

import {
  ConductorWorkflow,
  WorkflowExecutor,
  inlineTask,
  simpleTask,
  taskDefinition,
  MetadataClient,
  waitTaskDuration,
  workflow,
} from "@io-orkes/conductor-javascript";

import { Checks, connect, run, waitFor } from "./sdk_common.mjs";

const CITY = "北京";

async function main(baseUrl) {
  const { client, exchanges } = await connect(baseUrl);
  const c = new Checks(exchanges);
  const executor = new WorkflowExecutor(client);
  const metadata = new MetadataClient(client);

  await c.call("registerTasks", () =>
    metadata.registerTasks([
      taskDefinition({ name: "js_wf_first", retryCount: 0, timeoutSeconds: 300, responseTimeoutSeconds: 300 }),
      taskDefinition({ name: "js_wf_second", retryCount: 0, timeoutSeconds: 300, responseTimeoutSeconds: 300 }),
    ]),
  );

  // Two SIMPLE tasks, moved on by hand through the executor.
  const twoSteps = {
    ...workflow("js_wf_two_steps", [
      simpleTask("first", "js_wf_first", { city: "${workflow.input.city}" }),
      simpleTask("second", "js_wf_second", { from: "${first.output.greeting}" }),
    ]),
    version: 1,
    outputParameters: { greeting: "${first.output.greeting}", done: "${second.output.done}" },
  };
  await c.call("registerWorkflow", () => executor.registerWorkflow(true, twoSteps));

  const id = await c.call("startWorkflow", () =>
    executor.startWorkflow({ name: "js_wf_two_steps", version: 1, input: { city: CITY }, correlationId: "js-corr" }),
  );
  c.check(typeof id === "string" && id.length > 0, `startWorkflow returns an id: ${JSON.stringify(id)}`);
  if (id) {
    const status = await c.call("getWorkflowStatus", () => executor.getWorkflowStatus(id, true, true));
    c.check(status?.status === "RUNNING" && status?.workflowId === id, `getWorkflowStatus: ${JSON.stringify(status)}`);
    const wf = await c.call("getWorkflow", () => executor.getWorkflow(id, true));
    c.check(wf?.input?.city === CITY, `the input keeps its Chinese value: ${JSON.stringify(wf?.input)}`);
    c.check(wf?.correlationId === "js-corr", `correlationId: ${wf?.correlationId}`);
    const first = wf?.tasks?.[0];
    c.check(first?.referenceTaskName === "first" && first?.status === "SCHEDULED", `first task: ${JSON.stringify(first)}`);
    c.check(first?.inputData?.city === CITY, `the first task's input: ${JSON.stringify(first?.inputData)}`);

    await c.call("updateTaskByRefName", () =>
      executor.updateTaskByRefName("first", id, "COMPLETED", { greeting: `你好，${CITY}` }),
    );
    const second = await waitFor(async () => {
      const w = await executor.getWorkflow(id, true);
      return w.tasks?.find((t) => t.referenceTaskName === "second");
    });
    c.check(second?.inputData?.from === `你好，${CITY}`, `the second task's input: ${JSON.stringify(second?.inputData)}`);
    const task = second ? await c.call("getTask", () => executor.getTask(second.taskId)) : undefined;
    c.check(task?.taskId === second?.taskId && task?.status === "SCHEDULED", `getTask: ${JSON.stringify(task)}`);
    if (second) {
      await c.call("updateTask", () => executor.updateTask(second.taskId, id, "COMPLETED", { done: true }));
    }
    const done = await waitFor(async () => {
      const s = await executor.getWorkflowStatus(id, true, false);
      return s.status === "COMPLETED" ? s : undefined;
    });
    c.check(done?.output?.greeting === `你好，${CITY}` && done?.output?.done === true,
      `the workflow completes with its output: ${JSON.stringify(done)}`);

    // Restart it: it runs again from the first task.
    await c.call("restart", () => executor.restart(id, false));
    const restarted = await c.call("getWorkflow after restart", () => executor.getWorkflow(id, true));
    c.check(restarted?.status === "RUNNING" && restarted?.tasks?.length === 1,
      `restarted: ${restarted?.status}, ${restarted?.tasks?.length} tasks`);
    await c.call("terminate", () => executor.terminate(id, "测试结束"));
    const terminated = await c.call("getWorkflow after terminate", () => executor.getWorkflow(id, false));
    c.check(terminated?.status === "TERMINATED" && terminated?.reasonForIncompletion === "测试结束",
      `terminated: ${terminated?.status} ${terminated?.reasonForIncompletion}`);
    // Retry the terminated workflow: its last task is scheduled again.
    await c.call("retry", () => executor.retry(id, false));
    const retried = await c.call("getWorkflow after retry", () => executor.getWorkflow(id, true));
    c.check(retried?.status === "RUNNING", `retried: ${retried?.status}`);
    await c.call("terminate again", () => executor.terminate(id, "done"));
  }

  // Pause and resume.
  const other = await c.call("startWorkflowByName", () =>
    executor.startWorkflowByName("js_wf_two_steps", { city: "上海" }, 1, "js-pause"),
  );
  if (other) {
    await c.call("pause", () => executor.pause(other));
    const paused = await c.call("getWorkflowStatus paused", () => executor.getWorkflowStatus(other, false, false));
    c.check(paused?.status === "PAUSED", `paused: ${paused?.status}`);
    await c.call("resume", () => executor.resume(other));
    const resumed = await c.call("getWorkflowStatus resumed", () => executor.getWorkflowStatus(other, false, false));
    c.check(resumed?.status === "RUNNING", `resumed: ${resumed?.status}`);
  }

  // Search (the index is written with the state, so no wait is needed on a single node).
  const found = await c.call("search", () =>
    executor.search(0, 10, "workflowType = 'js_wf_two_steps' AND status = 'RUNNING'", "*"),
  );
  const foundIds = (found?.results ?? []).map((w) => w.workflowId);
  c.check(other && foundIds.includes(other) && found?.totalHits >= 1, `search finds the running one: ${JSON.stringify(found)}`);

  // Synchronous execution of a workflow of system tasks: the answer carries the output.
  const inline = new ConductorWorkflow(executor, "js_wf_inline", 1)
    .add(inlineTask("greet", "(function () { return '你好，' + $.city; })()", "javascript"))
    .outputParameters({ greeting: "${greet.output.result}" });
  const inlineDef = inline.toWorkflowDef();
  inlineDef.tasks[0].inputParameters.city = "${workflow.input.city}";
  await c.call("register the inline workflow", () => executor.registerWorkflow(true, inlineDef));
  const runResult = await c.call("executeWorkflow", () =>
    executor.executeWorkflow({ name: "js_wf_inline", version: 1, input: { city: CITY } }, "js_wf_inline", 1, "req-1"),
  );
  c.check(runResult?.status === "COMPLETED", `executeWorkflow status: ${JSON.stringify(runResult)}`);
  c.check(runResult?.output?.greeting === `你好，${CITY}`, `executeWorkflow output: ${JSON.stringify(runResult?.output)}`);
  c.check(typeof runResult?.workflowId === "string" && runResult.workflowId.length > 0,
    `executeWorkflow workflowId: ${runResult?.workflowId}`);

  // The builder registers and executes too.
  const built = new ConductorWorkflow(executor, "js_wf_built", 1)
    .add(inlineTask("double", "(function () { return $.n * 2; })()", "javascript"))
    .outputParameters({ doubled: "${double.output.result}" });
  const builtDef = built.toWorkflowDef();
  builtDef.tasks[0].inputParameters.n = "${workflow.input.n}";
  await c.call("register the built workflow", () => executor.registerWorkflow(true, builtDef));
  const builtRun = await c.call("ConductorWorkflow.execute", () => built.execute({ n: 21 }));
  c.check(builtRun?.status === "COMPLETED" && builtRun?.output?.doubled === 42,
    `ConductorWorkflow.execute: ${JSON.stringify(builtRun)}`);

  // A synchronous execution answers as soon as the workflow blocks on a WAIT, and
  // waitUntilTaskRef answers as soon as that task finishes.
  const waiting = {
    ...workflow("js_wf_wait", [
      inlineTask("before", "(function () { return 1; })()", "javascript"),
      { name: "hold", taskReferenceName: "hold", type: "WAIT", inputParameters: {} },
      simpleTask("after", "js_wf_second", {}),
    ]),
    version: 1,
  };
  await c.call("register the WAIT workflow", () => executor.registerWorkflow(true, waiting));
  const started = Date.now();
  const blocked = await c.call("executeWorkflow until the WAIT", () =>
    executor.executeWorkflow({ name: "js_wf_wait", version: 1, input: {} }, "js_wf_wait", 1, "req-2", "", 20),
  );
  c.check(blocked?.status === "RUNNING" && Date.now() - started < 10000,
    `executeWorkflow answers when the workflow blocks on its WAIT: ${JSON.stringify(blocked)} after ${Date.now() - started} ms`);
  const untilRef = await c.call("executeWorkflow waitUntilTaskRef", () =>
    executor.executeWorkflow({ name: "js_wf_wait", version: 1, input: {} }, "js_wf_wait", 1, "req-3", "before", 20),
  );
  c.check(untilRef?.status === "RUNNING" && untilRef?.workflowId,
    `executeWorkflow with waitUntilTaskRef: ${JSON.stringify(untilRef)}`);
  if (blocked?.workflowId) {
    await c.call("complete the WAIT", () =>
      executor.updateTaskByRefName("hold", blocked.workflowId, "COMPLETED", { 批准: true }),
    );
    const after = await waitFor(async () => {
      const w = await executor.getWorkflow(blocked.workflowId, true);
      return w.tasks?.find((t) => t.referenceTaskName === "after");
    });
    c.check(after?.status === "SCHEDULED", `the WAIT completed and the next task is scheduled: ${JSON.stringify(after)}`);
  }

  // A WAIT with a duration (the SDK's builder) holds the synchronous execution until it ends.
  const timed = { ...workflow("js_wf_timed", [waitTaskDuration("nap", "1s")]), version: 1 };
  await c.call("register a workflow with a duration WAIT", () => executor.registerWorkflow(true, timed));
  const napped = await c.call("executeWorkflow a 1 s WAIT", () =>
    executor.executeWorkflow({ name: "js_wf_timed", version: 1, input: {} }, "js_wf_timed", 1, "req-4", "", 20),
  );
  c.check(napped?.status === "COMPLETED", `a 1 s WAIT ends and the execution answers COMPLETED: ${JSON.stringify(napped)}`);

  return c.finish();
}

run(main);

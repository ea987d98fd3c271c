// The SDK's event client against a node: add an event handler (the SDK sends a list of one),
// add several, list them all and by event, update one, see a handler act on a message an EVENT
// task publishes (start_workflow), and remove them.

import { EventClient, WorkflowExecutor, conductorEventTask, workflow } from "@io-orkes/conductor-javascript";

import { Checks, connect, run, waitFor } from "./sdk_common.mjs";

const EVENT = "conductor:js_evt_source:js_evt_queue";

async function main(baseUrl) {
  const { client, exchanges } = await connect(baseUrl);
  const c = new Checks(exchanges);
  const events = new EventClient(client);
  const executor = new WorkflowExecutor(client);

  // The workflow the handler starts, and the workflow whose EVENT task publishes the message.
  await c.call("register the target workflow", () =>
    executor.registerWorkflow(true, {
      ...workflow("js_evt_target", [
        { name: "noop", taskReferenceName: "noop", type: "NOOP", inputParameters: {} },
      ]),
      version: 1,
    }),
  );
  await c.call("register the source workflow", () =>
    executor.registerWorkflow(true, {
      ...workflow("js_evt_source", [conductorEventTask("publish", "js_evt_queue")]),
      version: 1,
    }),
  );

  const handler = {
    name: "js_start_target",
    event: EVENT,
    active: true,
    actions: [
      {
        action: "start_workflow",
        start_workflow: { name: "js_evt_target", version: 1, input: { 来源: "事件处理器" } },
      },
    ],
  };
  await c.call("addEventHandler", () => events.addEventHandler(handler));
  await c.call("addEventHandlers", () =>
    events.addEventHandlers([
      {
        name: "js_idle_a",
        event: "conductor:js_evt_source:idle",
        active: false,
        actions: [{ action: "fail_task", fail_task: { workflowId: "${workflowId}", taskRefName: "x" } }],
      },
      {
        name: "js_idle_b",
        event: "conductor:js_evt_source:idle",
        active: true,
        actions: [{ action: "complete_task", complete_task: { workflowId: "${workflowId}", taskRefName: "x" } }],
      },
    ]),
  );

  const all = (await c.call("getAllEventHandlers", () => events.getAllEventHandlers())) ?? [];
  const names = all.map((h) => h.name).sort();
  c.check(JSON.stringify(names) === '["js_idle_a","js_idle_b","js_start_target"]', `getAllEventHandlers: ${names}`);
  const ours = all.find((h) => h.name === "js_start_target");
  c.check(ours?.event === EVENT && ours?.active === true, `the handler as listed: ${JSON.stringify(ours)}`);
  c.check(ours?.actions?.[0]?.action === "start_workflow"
    && ours?.actions?.[0]?.start_workflow?.input?.["来源"] === "事件处理器",
    `its action keeps its Chinese input: ${JSON.stringify(ours?.actions)}`);

  const forEvent = (await c.call("getEventHandlersForEvent", () => events.getEventHandlersForEvent(EVENT))) ?? [];
  c.check(JSON.stringify(forEvent.map((h) => h.name)) === '["js_start_target"]',
    `getEventHandlersForEvent: ${JSON.stringify(forEvent)}`);
  const idleAll = (await c.call("getEventHandlersForEvent (all)", () =>
    events.getEventHandlersForEvent("conductor:js_evt_source:idle", false))) ?? [];
  c.check(idleAll.length === 2, `getEventHandlersForEvent with inactive ones: ${JSON.stringify(idleAll)}`);
  const idleActive = (await c.call("getEventHandlersForEvent (active only)", () =>
    events.getEventHandlersForEvent("conductor:js_evt_source:idle", true))) ?? [];
  c.check(JSON.stringify(idleActive.map((h) => h.name)) === '["js_idle_b"]',
    `getEventHandlersForEvent active only: ${JSON.stringify(idleActive)}`);

  await c.call("updateEventHandler", () => events.updateEventHandler({ ...handler, condition: "true" }));
  const updated = ((await c.call("getAllEventHandlers after update", () => events.getAllEventHandlers())) ?? [])
    .find((h) => h.name === "js_start_target");
  c.check(updated?.condition === "true", `updateEventHandler: ${JSON.stringify(updated)}`);

  // The handler acts: an EVENT task publishes on its event, and it starts the target workflow.
  const source = await c.call("start the source workflow", () =>
    executor.startWorkflow({ name: "js_evt_source", version: 1, input: {} }),
  );
  const started = await waitFor(async () => {
    const r = await executor.search(0, 10, "workflowType = 'js_evt_target'", "*");
    return (r?.results ?? []).length > 0 ? r.results[0] : undefined;
  });
  c.check(started?.workflowId, `the handler started js_evt_target after ${source} published`);
  if (started?.workflowId) {
    const target = await c.call("getWorkflow of the started one", () => executor.getWorkflow(started.workflowId, false));
    c.check(target?.input?.["来源"] === "事件处理器", `the started workflow's input: ${JSON.stringify(target?.input)}`);
  }

  for (const name of ["js_start_target", "js_idle_a", "js_idle_b"]) {
    await c.call(`removeEventHandler ${name}`, () => events.removeEventHandler(name));
  }
  const left = (await c.call("getAllEventHandlers after remove", () => events.getAllEventHandlers())) ?? [];
  c.check(left.length === 0, `no handler left: ${JSON.stringify(left)}`);
  const missing = await c.rejects("updateEventHandler of a removed handler", () => events.updateEventHandler(handler));
  c.check(missing?.status === 404, `updateEventHandler of a removed handler answers 404: ${JSON.stringify(missing)}`);

  return c.finish();
}

run(main);

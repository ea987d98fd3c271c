// The SDK's scheduler client against a node: save a schedule, read and list it, preview the next
// fire times, see it fire (searching the recorded executions), pause it (with a reason) and
// resume it, delete it, and read it again (404, as conductor-oss answers).

import { SchedulerClient, WorkflowExecutor, simpleTask, workflow } from "@io-orkes/conductor-javascript";

import { Checks, connect, run, waitFor } from "./sdk_common.mjs";

async function main(baseUrl) {
  const { client, exchanges } = await connect(baseUrl);
  const c = new Checks(exchanges);
  const scheduler = new SchedulerClient(client);
  const executor = new WorkflowExecutor(client);

  await c.call("register the scheduled workflow", () =>
    executor.registerWorkflow(true, { ...workflow("js_cron", [simpleTask("t", "js_cron_task", {})]), version: 1 }),
  );

  await c.call("saveSchedule", () =>
    scheduler.saveSchedule({
      name: "js_every_second",
      cronExpression: "* * * * * *",
      startWorkflowRequest: { name: "js_cron", version: 1, input: { 来源: "定时器" } },
      zoneId: "UTC",
      description: "每秒一次",
    }),
  );
  const got = await c.call("getSchedule", () => scheduler.getSchedule("js_every_second"));
  c.check(got?.name === "js_every_second" && got?.cronExpression === "* * * * * *" && got?.zoneId === "UTC",
    `getSchedule: ${JSON.stringify(got)}`);
  c.check(got?.startWorkflowRequest?.name === "js_cron" && got?.startWorkflowRequest?.input?.["来源"] === "定时器",
    `its start request: ${JSON.stringify(got?.startWorkflowRequest)}`);
  c.check(got?.description === "每秒一次" && !got?.paused, `description and not paused: ${JSON.stringify(got)}`);

  const listed = (await c.call("getAllSchedules", () => scheduler.getAllSchedules("js_cron"))) ?? [];
  c.check(JSON.stringify(listed.map((s) => s.name)) === '["js_every_second"]', `getAllSchedules: ${JSON.stringify(listed)}`);
  const none = (await c.call("getAllSchedules of another workflow", () => scheduler.getAllSchedules("js_other"))) ?? [];
  c.check(Array.isArray(none) && none.length === 0, `getAllSchedules of another workflow: ${JSON.stringify(none)}`);

  const times = await c.call("getNextFewSchedules", () =>
    scheduler.getNextFewSchedules("0 0 * * * *", undefined, undefined, 3),
  );
  c.check(Array.isArray(times) && times.length === 3 && times[1] - times[0] === 3_600_000 && times[2] - times[1] === 3_600_000,
    `getNextFewSchedules: ${JSON.stringify(times)}`);

  // It fires every second: wait for two recorded executions.
  const fired = await waitFor(async () => {
    const r = await scheduler.search(0, 10, "", "*", "scheduleName = 'js_every_second'");
    return (r?.results ?? []).length >= 2 ? r : undefined;
  }, 15000, 200);
  const results = fired?.results ?? [];
  c.check(results.length >= 2, `the schedule fired twice: ${JSON.stringify(fired)}`);
  if (results.length > 0) {
    const first = results[0];
    c.check(first.state === "EXECUTED" && first.workflowId && first.scheduleName === "js_every_second",
      `execution record: ${JSON.stringify(first)}`);
    const started = first.workflowId
      ? await c.call("getWorkflow of a fire", () => executor.getWorkflow(first.workflowId, false))
      : undefined;
    c.check(started?.workflowName === "js_cron" && started?.input?.["来源"] === "定时器",
      `the fire's workflow: ${JSON.stringify(started)}`);
  }

  await c.call("pauseSchedule", () => scheduler.pauseSchedule("js_every_second", "维护窗口"));
  const paused = await c.call("getSchedule paused", () => scheduler.getSchedule("js_every_second"));
  c.check(paused?.paused === true, `paused: ${JSON.stringify(paused)}`);
  c.check(paused?.pausedReason === "维护窗口", `pausedReason: ${paused?.pausedReason}`);
  await c.call("resumeSchedule", () => scheduler.resumeSchedule("js_every_second"));
  const resumed = await c.call("getSchedule resumed", () => scheduler.getSchedule("js_every_second"));
  c.check(resumed && resumed.paused === false, `resumed: ${JSON.stringify(resumed)}`);

  await c.call("deleteSchedule", () => scheduler.deleteSchedule("js_every_second"));
  const gone = await c.rejects("getSchedule of a deleted schedule", () => scheduler.getSchedule("js_every_second"));
  c.check(gone?.status === 404, `getSchedule of a deleted schedule answers 404: ${JSON.stringify(gone)}`);
  const after = (await c.call("getAllSchedules after delete", () => scheduler.getAllSchedules("js_cron"))) ?? [];
  c.check(after.length === 0, `no schedule listed after delete: ${JSON.stringify(after)}`);

  return c.finish();
}

run(main);

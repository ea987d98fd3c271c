// The SDK's metadata client against a node: task definitions (register one and several, get,
// update, list, unregister) and workflow definitions (register, overwrite, get by version,
// list, unregister), as a Conductor user calls them.

import { MetadataClient, simpleTask, taskDefinition, workflow } from "@io-orkes/conductor-javascript";

import { Checks, connect, run } from "./sdk_common.mjs";

async function main(baseUrl) {
  const { client, exchanges } = await connect(baseUrl);
  const c = new Checks(exchanges);
  const metadata = new MetadataClient(client);

  // Task definitions.
  const def = taskDefinition({
    name: "js_meta_task",
    description: "注册的任务",
    retryCount: 2,
    retryDelaySeconds: 1,
    timeoutSeconds: 120,
    responseTimeoutSeconds: 60,
    inputKeys: ["城市"],
  });
  await c.call("registerTask", () => metadata.registerTask(def));
  const got = await c.call("getTask", () => metadata.getTask("js_meta_task"));
  c.check(got?.name === "js_meta_task", `getTask name: ${JSON.stringify(got)}`);
  c.check(got?.retryCount === 2 && got?.timeoutSeconds === 120, `getTask fields: ${JSON.stringify(got)}`);
  c.check(got?.description === "注册的任务", `getTask keeps the Chinese description: ${got?.description}`);
  c.check(JSON.stringify(got?.inputKeys) === JSON.stringify(["城市"]), `getTask inputKeys: ${got?.inputKeys}`);

  await c.call("registerTasks", () =>
    metadata.registerTasks([
      taskDefinition({ name: "js_meta_a", timeoutSeconds: 30, responseTimeoutSeconds: 10 }),
      taskDefinition({ name: "js_meta_b", timeoutSeconds: 30, responseTimeoutSeconds: 10 }),
    ]),
  );
  await c.call("updateTask", () => metadata.updateTask({ ...def, retryCount: 5 }));
  const updated = await c.call("getTask after update", () => metadata.getTask("js_meta_task"));
  c.check(updated?.retryCount === 5, `updateTask: retryCount ${updated?.retryCount}`);

  const all = (await c.call("getAllTaskDefs", () => metadata.getAllTaskDefs())) ?? [];
  const names = all.map((t) => t.name);
  for (const name of ["js_meta_task", "js_meta_a", "js_meta_b"]) {
    c.check(names.includes(name), `getAllTaskDefs lists ${name}: ${names}`);
  }

  await c.call("unregisterTask", () => metadata.unregisterTask("js_meta_b"));
  const gone = await c.rejects("getTask of an unregistered task", () => metadata.getTask("js_meta_b"));
  c.check(gone?.status === 404, `getTask of an unregistered task answers 404: ${JSON.stringify(gone)}`);
  const after = ((await c.call("getAllTaskDefs again", () => metadata.getAllTaskDefs())) ?? []).map((t) => t.name);
  c.check(!after.includes("js_meta_b") && after.includes("js_meta_a"), `unregistered task not listed: ${after}`);

  // Workflow definitions.
  const v1 = {
    ...workflow("js_meta_wf", [simpleTask("step", "js_meta_task", { 城市: "${workflow.input.城市}" })]),
    version: 1,
    description: "第一版",
    outputParameters: { out: "${step.output.result}" },
  };
  await c.call("registerWorkflowDef v1", () => metadata.registerWorkflowDef(v1));
  const wf1 = await c.call("getWorkflowDef v1", () => metadata.getWorkflowDef("js_meta_wf", 1));
  c.check(wf1?.name === "js_meta_wf" && wf1?.version === 1, `getWorkflowDef: ${JSON.stringify(wf1)}`);
  c.check(wf1?.description === "第一版", `getWorkflowDef description: ${wf1?.description}`);
  c.check(wf1?.tasks?.[0]?.taskReferenceName === "step" && wf1?.tasks?.[0]?.type === "SIMPLE",
    `getWorkflowDef tasks: ${JSON.stringify(wf1?.tasks)}`);
  c.check(wf1?.tasks?.[0]?.inputParameters?.["城市"] === "${workflow.input.城市}",
    `getWorkflowDef input parameters: ${JSON.stringify(wf1?.tasks?.[0]?.inputParameters)}`);

  // Registering an existing version without overwrite is a conflict, as in conductor-oss.
  const conflict = await c.rejects("registerWorkflowDef of an existing version", () =>
    metadata.registerWorkflowDef(v1, false),
  );
  c.check(conflict?.status === 409, `registering an existing version answers 409: ${JSON.stringify(conflict)}`);

  // Overwrite version 1, then add version 2.
  await c.call("registerWorkflowDef v1 overwrite", () =>
    metadata.registerWorkflowDef({ ...v1, description: "第一版（改）" }, true),
  );
  const wf1b = await c.call("getWorkflowDef v1 again", () => metadata.getWorkflowDef("js_meta_wf", 1));
  c.check(wf1b?.description === "第一版（改）", `overwrite took: ${wf1b?.description}`);
  await c.call("registerWorkflowDef v2", () =>
    metadata.registerWorkflowDef({ ...v1, version: 2, description: "第二版" }, true),
  );
  const latest = await c.call("getWorkflowDef latest", () => metadata.getWorkflowDef("js_meta_wf"));
  c.check(latest?.version === 2, `getWorkflowDef without a version gives the latest: ${latest?.version}`);

  const wfs = (await c.call("getAllWorkflowDefs", () => metadata.getAllWorkflowDefs())) ?? [];
  const versions = wfs.filter((w) => w.name === "js_meta_wf").map((w) => w.version).sort();
  c.check(JSON.stringify(versions) === "[1,2]", `getAllWorkflowDefs lists both versions: ${versions}`);

  await c.call("unregisterWorkflow v2", () => metadata.unregisterWorkflow("js_meta_wf", 2));
  const missing = await c.rejects("getWorkflowDef of an unregistered version", () =>
    metadata.getWorkflowDef("js_meta_wf", 2),
  );
  c.check(missing?.status === 404, `getWorkflowDef of an unregistered version answers 404: ${JSON.stringify(missing)}`);
  const back = await c.call("getWorkflowDef latest after unregister", () => metadata.getWorkflowDef("js_meta_wf"));
  c.check(back?.version === 1, `the latest is version 1 again: ${back?.version}`);
  await c.call("unregisterWorkflow v1", () => metadata.unregisterWorkflow("js_meta_wf", 1));
  const none = await c.rejects("getWorkflowDef of a fully unregistered workflow", () =>
    metadata.getWorkflowDef("js_meta_wf"),
  );
  c.check(none?.status === 404, `no version left answers 404: ${JSON.stringify(none)}`);

  return c.finish();
}

run(main);

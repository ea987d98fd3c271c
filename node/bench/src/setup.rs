//! The definitions a run needs, registered before it begins: a task definition per task type and
//! the workflow of the chosen shape (and, for the mix, its child workflow).

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::args::{BenchArgs, Shape, task_name};

/// Registers the run's task definitions and workflow definition on the node at `base`.
pub(crate) async fn setup(client: &reqwest::Client, base: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let defs: Vec<Value> = (0..args.task_types().max(1))
        .map(|i| {
            json!({"name": task_name(i), "retryCount": 3, "retryDelaySeconds": 0,
                   "responseTimeoutSeconds": args.response_timeout, "ownerEmail": "bench@overture"})
        })
        .collect();
    let r =
        client.post(format!("{base}/metadata/taskdefs")).json(&defs).send().await.context("is the node running?")?;
    if !r.status().is_success() {
        bail!("registering task definitions: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let tasks = args.tasks;
    let (steps, output) = match args.shape {
        Shape::Linear => {
            let steps: Vec<Value> = (0..tasks)
                .map(|i| {
                    let input = if i == 0 { json!({"n": "${workflow.input.n}"}) } else { json!({"prev": format!("${{t{}.output.step}}", i - 1)}) };
                    json!({"name": task_name(i), "taskReferenceName": format!("t{i}"), "type": "SIMPLE", "inputParameters": input})
                })
                .collect();
            (json!(steps), json!({"last": format!("${{t{}.output.step}}", tasks - 1)}))
        }
        Shape::Fork => (
            json!([
                {"name": "fan_out", "taskReferenceName": "fan_out", "type": "FORK_JOIN_DYNAMIC",
                 "inputParameters": {"forkTaskName": task_name(0), "forkTaskInputs": "${workflow.input.items}"}},
                {"name": "fan_in", "taskReferenceName": "fan_in", "type": "JOIN"}
            ]),
            json!({}),
        ),
        Shape::StartOnly => (json!([{"name": "noop", "taskReferenceName": "noop", "type": "NOOP"}]), json!({})),
        Shape::Waiting => (json!([{"name": task_name(0), "taskReferenceName": "t0", "type": "SIMPLE"}]), json!({})),
        Shape::Mix => {
            let child = json!([{"name": "bench_mix_child", "version": 1, "schemaVersion": 2,
                "tasks": [
                    {"name": task_name(1), "taskReferenceName": "c1", "type": "SIMPLE", "inputParameters": {"n": "${workflow.input.n}"}},
                    {"name": task_name(2), "taskReferenceName": "c2", "type": "SIMPLE", "inputParameters": {"prev": "${c1.output.step}"}}
                ],
                "outputParameters": {"step": "${c2.output.step}"}}]);
            let r = client.put(format!("{base}/metadata/workflow")).json(&child).send().await?;
            if !r.status().is_success() {
                bail!(
                    "registering the child workflow definition: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            (
                json!([
                    {"name": task_name(0), "taskReferenceName": "first", "type": "SIMPLE", "inputParameters": {"n": "${workflow.input.n}"}},
                    {"name": "route", "taskReferenceName": "route", "type": "SWITCH", "evaluatorType": "value-param",
                     "expression": "route", "inputParameters": {"route": "${workflow.input.route}"},
                     "decisionCases": {"child": [
                         {"name": "bench_mix_child", "taskReferenceName": "child", "type": "SUB_WORKFLOW",
                          "subWorkflowParam": {"name": "bench_mix_child", "version": 1},
                          "inputParameters": {"n": "${workflow.input.n}"}}
                     ]},
                     "defaultCase": [
                         {"name": task_name(1), "taskReferenceName": "inline", "type": "SIMPLE", "inputParameters": {"prev": "${first.output.step}"}}
                     ]},
                    {"name": task_name(3), "taskReferenceName": "last", "type": "SIMPLE", "inputParameters": {"route": "${workflow.input.route}"}}
                ]),
                json!({"last": "${last.output.step}"}),
            )
        }
        Shape::Loop => (
            json!([
                {"name": "repeat", "taskReferenceName": "repeat", "type": "DO_WHILE",
                 "loopCondition": format!("$.repeat['iteration'] < {}", args.width),
                 "loopOver": [{"name": task_name(0), "taskReferenceName": "t0", "type": "SIMPLE",
                               "inputParameters": {"i": "${repeat.output.iteration}"}}]}
            ]),
            json!({"iterations": "${repeat.output.iteration}"}),
        ),
    };
    let def = json!([{"name": args.workflow_name(), "version": 1, "tasks": steps, "schemaVersion": 2,
                      "outputParameters": output}]);
    let r = client.put(format!("{base}/metadata/workflow")).json(&def).send().await?;
    if !r.status().is_success() {
        bail!("registering the workflow definition: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

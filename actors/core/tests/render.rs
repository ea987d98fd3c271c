//! Rendering tasks as Conductor's `Task` JSON.

mod common;

use common::*;
use overture_core::render;
use serde_json::{Value, json};

/// A task of the plan embeds its definition's JSON, made once per plan: the same JSON as the
/// models themselves, on the first render and on every one after.
#[test]
fn a_plan_task_embeds_its_workflow_task_and_task_definition() {
    let def = json!({
        "name": "one", "version": 1, "schemaVersion": 2,
        "tasks": [{
            "name": "step", "taskReferenceName": "a", "type": "SIMPLE",
            "inputParameters": {"n": "${workflow.input.n}"},
            "taskDefinition": {"name": "step", "retryCount": 2, "timeoutSeconds": 60, "responseTimeoutSeconds": 9,
                "inputKeys": ["n"], "rateLimitPerFrequency": 0}
        }]
    });
    let run = Run::start(def, json!({"n": 3}));
    let task = &run.state.tasks[0];
    let node = run.state.plan.task("a").expect("a task of the plan");
    let want_task = serde_json::to_value(&node.task).expect("JSON");
    let want_def = serde_json::to_value(node.task.task_definition.as_ref().expect("embedded")).expect("JSON");
    for _ in 0..2 {
        let view: Value = serde_json::to_value(render::task(&run.state, task, run.now)).expect("JSON");
        assert_eq!(view["workflowTask"], want_task);
        assert_eq!(view["taskDefinition"], want_def);
        assert_eq!(view["workflowTask"]["taskDefinition"]["responseTimeoutSeconds"], 9);
        assert_eq!(view["inputData"], json!({"n": 3}));
    }
}

//! Idempotency keys that API starts and START_WORKFLOW tasks share: the scenario both the
//! one-node test and the partitioned cluster's test run.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{client, send_retrying, wait_status_at};

/// A workflow that waits, so it keeps holding the key it was started with.
pub const HELD: &str = "keyed_held";
/// A workflow whose START_WORKFLOW tasks start [`HELD`] with the keys in its input.
pub const SPAWNER: &str = "keyed_spawner";

/// Registers [`HELD`] and [`SPAWNER`] through `url`.
pub async fn register(url: &str) {
    let start = |key: &str, strategy: &str| {
        json!({"startWorkflow": {"name": HELD, "input": {"by": "spawner"},
                                 "idempotencyKey": key, "idempotencyStrategy": strategy}})
    };
    let held = json!({"name": HELD, "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}
    ]});
    let spawner = json!({"name": SPAWNER, "version": 1, "tasks": [
        {"name": "reuse", "taskReferenceName": "reuse", "type": "START_WORKFLOW",
         "inputParameters": start("${workflow.input.key}", "RETURN_EXISTING")},
        {"name": "refused", "taskReferenceName": "refused", "type": "START_WORKFLOW", "optional": true,
         "inputParameters": start("${workflow.input.key}", "FAIL")},
        {"name": "fresh", "taskReferenceName": "fresh", "type": "START_WORKFLOW",
         "inputParameters": start("${workflow.input.fresh}", "FAIL")}
    ]});
    for def in [held, spawner] {
        let r = send_retrying(client().post(format!("{url}/api/metadata/workflow")).json(&def)).await;
        assert!(r.status == 200 || r.status == 409, "{}", r.text);
    }
}

/// Starts [`HELD`] with `key` through `api`, then a [`SPAWNER`] through `spawner_at` that reuses
/// `key` and takes `fresh`. Checks that the task reusing the key with `RETURN_EXISTING`
/// completes with the API start's workflow, the one with `FAIL` is refused naming it, and an
/// API start with `fresh` and `RETURN_EXISTING` answers the workflow the task started. Answers
/// the spawner's id.
pub async fn check(api: &str, spawner_at: &str, key: &str, fresh: &str) -> String {
    // `path` under `/api/workflow`: empty for a start request, `/{name}` for an input.
    let start = |url: &str, path: &str, body: Value| {
        let request = client().post(format!("{url}/api/workflow{path}")).json(&body);
        async move {
            let r = send_retrying(request).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.text
        }
    };
    let held = start(api, "", json!({"name": HELD, "input": {"by": "api"}, "idempotencyKey": key})).await;
    let spawner = start(spawner_at, &format!("/{SPAWNER}"), json!({"key": key, "fresh": fresh})).await;
    let wf = wait_status_at(spawner_at, &spawner, "COMPLETED", Duration::from_secs(30)).await;
    let task = |reference: &str| {
        wf["tasks"].as_array().and_then(|ts| ts.iter().find(|t| t["referenceTaskName"] == reference)).cloned()
    };
    let (reuse, refused, fresh_task) = (task("reuse"), task("refused"), task("fresh"));
    let (Some(reuse), Some(refused), Some(fresh_task)) = (reuse, refused, fresh_task) else {
        panic!("the spawner ran its three tasks: {wf:#}")
    };
    assert_eq!(reuse["status"], "COMPLETED", "{reuse:#}");
    assert_eq!(reuse["outputData"]["workflowId"], held.as_str(), "RETURN_EXISTING answers the key's workflow");
    assert_eq!(refused["status"], "COMPLETED_WITH_ERRORS", "{refused:#}");
    let reason = refused["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.contains(&held) && reason.contains(key), "FAIL names the key's workflow: {reason}");
    let spawned = fresh_task["outputData"]["workflowId"].as_str().unwrap_or_default().to_owned();
    assert!(!spawned.is_empty() && spawned != held, "{fresh_task:#}");
    let body = json!({"name": HELD, "input": {}, "idempotencyKey": fresh, "idempotencyStrategy": "RETURN_EXISTING"});
    assert_eq!(start(api, "", body).await, spawned, "an API start meets the key a START_WORKFLOW task took");
    spawner
}

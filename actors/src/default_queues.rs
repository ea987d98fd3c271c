//! Default event queues (conductor-oss's `conductor.default-event-queue.type`): one queue per task
//! status, COMPLETED and FAILED, on a broker, where another system reports on a task it waits
//! for. A message names its task through `externalId`, a JSON text (or, here, an object) with
//! `workflowId` and `taskId` or `taskRefName`; found anywhere in the message (so a Kafka record's
//! wrapper works). The task it names, or else the workflow's first open WAIT task, gets that
//! status and the whole message merged into its output. `POST /api/queue/update/...` publishes
//! such a message. The queues' names: [`crate::brokers::DefaultQueues`].
//!
//! A message that names nothing, or no open task, is logged and acknowledged, as conductor-oss
//! does. Updating a task that has ended changes nothing, so a message handled twice (a
//! redelivery after a failover) has its effect once.

use overture_core::{Object, TaskResultStatus, TaskUpdate};
use serde_json::Value;

use crate::error::Error;
use crate::router::Op;
use crate::workflows::Workflows;

/// What a default queue's message names.
#[derive(Debug, PartialEq)]
struct Target {
    workflow_id: String,
    task_id: Option<String>,
    task_ref_name: Option<String>,
}

/// The first `externalId` anywhere in the message, depth first, read as conductor-oss reads it.
fn target(payload: &Value) -> Option<Target> {
    fn find(v: &Value) -> Option<&Value> {
        match v {
            Value::Object(m) => m.get("externalId").or_else(|| m.values().find_map(find)),
            Value::Array(a) => a.iter().find_map(find),
            _ => None,
        }
    }
    let external = find(payload)?;
    let external = match external {
        Value::String(text) => serde_json::from_str::<Value>(text).ok()?,
        other => other.clone(),
    };
    let text = |k: &str| external.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned);
    Some(Target { workflow_id: text("workflowId")?, task_id: text("taskId"), task_ref_name: text("taskRefName") })
}

/// `ref` without a loop iteration suffix (`task__3` → `task`), as conductor-oss compares them.
fn base(reference: &str) -> &str {
    reference.split("__").next().unwrap_or(reference)
}

/// Applies one message of a default queue, where the workflow it names is led (tried again
/// while its partition has no leader); answers why no task was updated, if none was.
pub(crate) async fn apply(workflows: &Workflows, status: TaskResultStatus, payload: &Value) -> Result<(), String> {
    let Some(t) = target(payload) else {
        return Err("the message has no externalId with a workflowId".into());
    };
    let host = workflows.host();
    let op = || {
        let op = Op::FromDefaultQueue { workflow_id: t.workflow_id.clone(), status, payload: payload.clone() };
        host.router.act(op)
    };
    crate::router::until_it_lands(|| host.is_stopped(), op).await.map_err(|e| e.to_string())
}

/// Applies one message of a default queue on this node, which leads its workflow's partition;
/// answers the task updated.
pub(crate) async fn apply_here(
    workflows: &Workflows,
    status: TaskResultStatus,
    payload: &Value,
) -> Result<String, Error> {
    let Some(t) = target(payload) else {
        return Err(Error::BadRequest("the message has no externalId with a workflowId".into()));
    };
    let wf = match workflows.workflow(&t.workflow_id) {
        Ok(wf) => wf,
        Err(Error::NotFound(_)) => return Err(Error::NotFound(format!("workflow {} does not exist", t.workflow_id))),
        Err(e) => return Err(e),
    };
    let mut open = wf.tasks.iter().filter(|task| !task.status.is_terminal());
    let task = match (&t.task_id, &t.task_ref_name) {
        (Some(id), _) => open.find(|task| &task.task_id == id),
        (None, Some(reference)) => open.find(|task| base(&task.reference_task_name) == base(reference)),
        (None, None) => open.find(|task| task.kind() == overture_core::plan::TaskKind::Wait),
    };
    let Some(task) = task else {
        return Err(Error::NotFound(format!("workflow {} has no open task the message names", t.workflow_id)));
    };
    let output: Object = payload.as_object().cloned().unwrap_or_default();
    let update = TaskUpdate {
        task_id: task.task_id.clone(),
        status,
        output: Some(output),
        merge_output: true,
        reason: None,
        worker_id: None,
        callback_after_seconds: 0,
        extend_lease: false,
        logs: Vec::new(),
        output_stored_at: None,
    };
    workflows.update(&t.workflow_id, update).await?;
    Ok(task.task_id.clone())
}

/// The message `POST /api/queue/update/...` publishes: `externalId` naming the task (as JSON
/// text) with the request's body over it.
pub fn update_message(workflow_id: &str, task_ref_name: Option<&str>, task_id: Option<&str>, body: Object) -> Value {
    let mut external = serde_json::Map::new();
    external.insert("workflowId".into(), workflow_id.into());
    if let Some(r) = task_ref_name {
        external.insert("taskRefName".into(), r.into());
    }
    if let Some(id) = task_id {
        external.insert("taskId".into(), id.into());
    }
    let mut message = serde_json::Map::new();
    message.insert("externalId".into(), Value::Object(external).to_string().into());
    message.extend(body);
    Value::Object(message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_external_id_is_found_anywhere_as_text_or_object() {
        let message = update_message("wf-1", Some("等待__2"), None, Object::from_iter([("结果".into(), json!("好"))]));
        assert_eq!(message["结果"], "好");
        let t = target(&message).expect("found");
        assert_eq!((t.workflow_id.as_str(), t.task_ref_name.as_deref()), ("wf-1", Some("等待__2")));
        let wrapped = json!({"key": "k", "payload": {"externalId": {"workflowId": "wf-2", "taskId": "t"}}});
        assert_eq!(target(&wrapped).expect("found").task_id.as_deref(), Some("t"));
        for nothing in [json!({}), json!({"externalId": "not json"}), json!({"externalId": "{\"taskId\": \"t\"}"})] {
            assert_eq!(target(&nothing), None, "{nothing}");
        }
        assert_eq!((base("wait__3"), base("wait")), ("wait", "wait"));
    }
}

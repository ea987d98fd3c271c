//! EVENT tasks and event handlers, on the `conductor` sink.
//!
//! An EVENT task publishes its input (with the workflow's id, name, version and correlation id)
//! as a message on `conductor:<workflow name>:<task reference>` (sink `conductor`) or
//! `conductor:<workflow name>:<queue>` (sink `conductor:<queue>`). Every active handler listening
//! on that event whose `condition` holds runs its actions, with `${...}` in their parameters
//! read from the message: start a workflow, complete or fail a task, terminate a workflow, or
//! update a workflow's variables.
//!
//! The leader's executor publishes (see `executor`), so a message is delivered at
//! least once. A workflow an action starts has an id derived from the message and the action,
//! so a second delivery finds it instead of starting another; updating a finished task or
//! terminating a finished workflow changes nothing. Sinks on brokers (`nats:`, `jsm:`) publish
//! there (`crate::brokers`); a queue type not served, or whose broker is not configured, fails
//! the task with a reason.
//!
//! A workflow with `workflowStatusListenerEnabled` publishes its summary when it ends, on
//! `conductor:_callbackSuccessQueue` or `conductor:_callbackFailureQueue` and on
//! `conductor:_callbackFinalizeQueue` (the queues of Conductor's queue publisher).

use overture_core::dsl::{EventAction, StartWorkflowRequest};
use overture_core::expr::{Document, resolve_value};
use overture_core::{Object, TaskResultStatus, TaskUpdate};
use serde_json::{Map, Value};

use crate::brokers::{BrokerQueue, Brokers};
use crate::error::Error;
use crate::names;
use crate::outcome::Outcome;
use crate::router::Op;
use crate::workflows::Workflows;

/// Publishes an EVENT task's message and completes the task (or leaves it IN_PROGRESS for an
/// `asyncComplete` task, which something else completes).
pub(crate) async fn publish(workflows: &Workflows, brokers: &Brokers, task: &Value) -> Outcome {
    let input = task["inputData"].as_object().cloned().unwrap_or_default();
    let workflow_name = task["workflowType"].as_str().unwrap_or_default();
    let reference = task["referenceTaskName"].as_str().unwrap_or_default();
    let sink = input.get("sink").and_then(Value::as_str).unwrap_or_default().trim().to_owned();
    let mut broker = None;
    let event = match sink.as_str() {
        "conductor" => format!("conductor:{workflow_name}:{reference}"),
        s if s.starts_with("conductor:") => format!("conductor:{workflow_name}:{}", &s["conductor:".len()..]),
        "" => return Outcome::failed("The EVENT task has no sink"),
        other => match BrokerQueue::parse(other) {
            Ok(Some(queue)) if brokers.serves(&queue) => {
                let event = queue.event();
                broker = Some(queue);
                event
            }
            Ok(Some(queue)) => {
                return Outcome::failed(format!(
                    "Sink {other}: {} is not configured on this server ([event_queues] in its configuration)",
                    queue.kind()
                ));
            }
            Ok(None) => return Outcome::failed(format!("Sink {other} is not a queue")),
            Err(why) => return Outcome::failed(format!("Sink {other}: {why}")),
        },
    };
    // As conductor-oss: the message is the task's whole output (its input with `sink` and
    // `asyncComplete`, the workflow's identity and `event_produced`).
    let mut payload = input.clone();
    let workflow_id = task["workflowInstanceId"].as_str().unwrap_or_default().to_owned();
    payload.insert("workflowInstanceId".into(), workflow_id.clone().into());
    payload.insert("workflowType".into(), workflow_name.into());
    if let Ok(wf) = workflows.workflow(&workflow_id) {
        payload.insert("workflowVersion".into(), wf.header.workflow_version.into());
        payload.insert("correlationId".into(), wf.header.correlation_id.clone().into());
    }
    payload.insert("event_produced".into(), event.clone().into());
    let message_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    let mut output = payload.clone();
    match &broker {
        None => {
            deliver(workflows, &event, &message_id, &Value::Object(payload)).await;
        }
        Some(queue) => match publish_until_taken(brokers, queue, &message_id, &Value::Object(payload)).await {
            Ok(receipt) => output.extend(receipt.fields),
            Err(outcome) => return outcome,
        },
    }
    let async_complete = input.get("asyncComplete").and_then(Value::as_bool).unwrap_or(false);
    let status = if async_complete { TaskResultStatus::InProgress } else { TaskResultStatus::Completed };
    Outcome { status, output, reason: None }
}

/// How long an EVENT task tries a broker before it fails (then its retry policy applies); under
/// the executor's response timeout.
const PUBLISH_DEADLINE: std::time::Duration = std::time::Duration::from_secs(45);

/// Publishes to a broker, trying again with backoff (0.5 s doubling to 8 s) until it takes the
/// message or [`PUBLISH_DEADLINE`] passes; each failed attempt is logged.
async fn publish_until_taken(
    brokers: &Brokers,
    queue: &BrokerQueue,
    message_id: &str,
    payload: &Value,
) -> Result<crate::brokers::Receipt, Outcome> {
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    let deadline = tokio::time::Instant::now() + PUBLISH_DEADLINE;
    let mut pause = std::time::Duration::from_millis(500);
    loop {
        match brokers.publish(queue, message_id, bytes.clone()).await {
            Ok(receipt) => return Ok(receipt),
            Err(e @ Error::Unavailable(_)) if tokio::time::Instant::now() + pause < deadline => {
                tracing::warn!(event = %queue.event(), error = %e, retry_in_ms = pause.as_millis() as u64, "publishing failed; trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(8));
            }
            Err(e) => return Err(Outcome::failed(format!("Could not publish to {}: {e}", queue.event()))),
        }
    }
}

/// Runs the handlers listening on `event` for one message; answers what failed (conditions
/// that threw, actions that failed), each said for a person.
pub(crate) async fn deliver(workflows: &Workflows, event: &str, message_id: &str, payload: &Value) -> Vec<String> {
    let mut failures = Vec::new();
    let handlers = match workflows.read().event_handlers() {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(event, error = %e, "cannot read event handlers");
            return vec![format!("reading event handlers: {e}")];
        }
    };
    for handler in handlers.iter().filter(|h| h.active && h.event == event) {
        if let Some(condition) = handler.condition.as_deref().filter(|c| !c.trim().is_empty()) {
            // Up to the script's time limit: off this runtime worker, as a decision's scripts are.
            let holds = crate::actor::blocking_if(true, || {
                overture_script::javascript(condition, payload, overture_script::Limits::default())
            })
            .map(|v| overture_core::system::truthy(&v) || v.as_str() == Some("true"));
            match holds {
                Ok(true) => {}
                Ok(false) => {
                    metrics::counter!(names::EVENT_ACTIONS, "outcome" => "skipped").increment(1);
                    continue;
                }
                Err(e) => {
                    tracing::warn!(handler = %handler.name, error = %e, "event handler condition failed");
                    metrics::counter!(names::EVENT_ACTIONS, "outcome" => "failed").increment(1);
                    failures.push(format!("handler {}: condition: {e}", handler.name));
                    continue;
                }
            }
        }
        for (i, action) in handler.actions.iter().enumerate() {
            let key = format!("{message_id}:{}:{i}", handler.name);
            // Tried again while its workflow's partition has no leader (a failover): each action is
            // idempotent, so it is done once.
            let run = || run_action(workflows, action, event, message_id, payload, &key);
            let stopped = || workflows.host().is_stopped();
            let outcome = match crate::router::until_it_lands(stopped, run).await {
                Ok(()) => "completed",
                Err(e) => {
                    tracing::warn!(handler = %handler.name, action = %action.action, error = %e, "event action failed");
                    failures.push(format!("handler {}: {}: {e}", handler.name, action.action));
                    "failed"
                }
            };
            metrics::counter!(names::EVENT_ACTIONS, "outcome" => outcome).increment(1);
        }
    }
    failures
}

fn text(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The message's metadata, as Conductor adds it to what an action starts or completes.
fn event_metadata(event: &str, message_id: &str) -> Object {
    Map::from_iter([
        ("conductor.event.messageId".to_owned(), Value::String(message_id.to_owned())),
        ("conductor.event.name".to_owned(), Value::String(event.to_owned())),
    ])
}

async fn run_action(
    workflows: &Workflows,
    action: &EventAction,
    event: &str,
    message_id: &str,
    payload: &Value,
    key: &str,
) -> Result<(), Error> {
    let resolve = |params: &Option<Value>| -> Result<Option<Value>, Error> {
        params
            .as_ref()
            .map(|p| resolve_value(p, &Document(payload)))
            .transpose()
            .map_err(|e| Error::BadRequest(format!("the parameters of {} {e}", action.action)))
    };
    match action.action.as_str() {
        "start_workflow" => {
            let params = resolve(&action.start_workflow)?.unwrap_or(Value::Null);
            let mut input = params.get("input").and_then(Value::as_object).cloned().unwrap_or_default();
            input.extend(event_metadata(event, message_id));
            let request = StartWorkflowRequest {
                name: text(&params, "name"),
                version: params.get("version").and_then(Value::as_i64).and_then(|v| i32::try_from(v).ok()),
                correlation_id: text(&params, "correlationId"),
                input: Some(input),
                task_to_domain: params
                    .get("taskToDomain")
                    .and_then(Value::as_object)
                    .map(|m| m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect())
                    .unwrap_or_default(),
                workflow_def: None,
                priority: 0,
                created_by: None,
                idempotency_key: None,
                idempotency_strategy: None,
                external_input_payload_storage_path: None,
            };
            // In the partition the id hashes to, wherever it is led.
            workflows.host().router.start_child(request, crate::derived_id("event", key).into(), None).await.map(|_| ())
        }
        "complete_task" | "fail_task" => {
            let params = if action.action == "complete_task" {
                resolve(&action.complete_task)?
            } else {
                resolve(&action.fail_task)?
            }
            .unwrap_or(Value::Null);
            let status =
                if action.action == "complete_task" { TaskResultStatus::Completed } else { TaskResultStatus::Failed };
            let mut output = params.get("output").and_then(Value::as_object).cloned().unwrap_or_default();
            output.extend(event_metadata(event, message_id));
            if let Some(task_id) = text(&params, "taskId") {
                let update = TaskUpdate {
                    task_id,
                    status,
                    output: Some(output),
                    merge_output: true,
                    reason: text(&params, "reasonForIncompletion"),
                    worker_id: None,
                    callback_after_seconds: 0,
                    extend_lease: false,
                    logs: Vec::new(),
                    output_stored_at: None,
                };
                return workflows.host().router.act(Op::Update(Box::new(update))).await;
            }
            let (Some(workflow_id), Some(reference)) = (text(&params, "workflowId"), text(&params, "taskRefName"))
            else {
                return Err(Error::BadRequest(format!(
                    "{} needs taskId, or workflowId and taskRefName",
                    action.action
                )));
            };
            workflows.host().router.act(Op::UpdateByRef { workflow_id, reference, status, output }).await
        }
        "terminate_workflow" => {
            let params = resolve(&action.terminate_workflow)?.unwrap_or(Value::Null);
            let workflow_id = text(&params, "workflowId")
                .ok_or_else(|| Error::BadRequest("terminate_workflow needs workflowId".into()))?;
            let reason = text(&params, "terminationReason");
            workflows.host().router.act(Op::Terminate { workflow_id, reason }).await
        }
        "update_workflow_variables" => {
            let params = resolve(&action.update_workflow_variables)?.unwrap_or(Value::Null);
            let workflow_id = text(&params, "workflowId")
                .ok_or_else(|| Error::BadRequest("update_workflow_variables needs workflowId".into()))?;
            let variables = params.get("variables").and_then(Value::as_object).cloned().unwrap_or_default();
            let append = params.get("appendArray").and_then(Value::as_bool).unwrap_or(false);
            workflows.host().router.act(Op::UpdateVariables { workflow_id, variables, append }).await
        }
        other => Err(Error::BadRequest(format!("event action {other} is not supported"))),
    }
}

/// Conductor's `WorkflowSummary` of an execution, as the status listener publishes it.
pub(crate) fn workflow_summary(wf: &overture_core::WorkflowState) -> Value {
    let h = &wf.header;
    serde_json::json!({
        "workflowType": h.workflow_name,
        "version": h.workflow_version,
        "workflowId": h.workflow_id,
        "correlationId": h.correlation_id,
        "status": h.status.as_str(),
        "input": h.input,
        "output": h.output,
        "reasonForIncompletion": h.reason_for_incompletion,
        "executionTime": (h.end_time - h.create_time).max(0),
        "failedReferenceTaskNames": h.failed_reference_task_names.join(","),
        "priority": h.priority,
        "createdBy": h.created_by,
        "parentWorkflowId": h.parent_workflow_id.clone().unwrap_or_default(),
    })
}

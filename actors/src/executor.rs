//! The leader's executor for system tasks that reach outside their workflow: SUB_WORKFLOW and
//! START_WORKFLOW start workflows, HTTP calls a service, EVENT publishes a message to the event
//! handlers ([`crate::events`]), KAFKA_PUBLISH appends a record to a Kafka topic
//! ([`crate::kafka_publish`]).
//!
//! Such a task is queued like a worker task, on an internal queue (`_system:HTTP`, ...) that no
//! worker can poll, and the executor polls it the way a worker does: the poll commits the hand-off
//! (`TaskPolled`), then the executor does the work and reports the result as a task update. So
//! the work survives a failover: a task still SCHEDULED is queued again by the next leader; one
//! handed out by a leader that died is handed out again once its response timeout passes. The
//! work is done at least once; starting a workflow is done exactly once, because the started
//! workflow's id is derived from the task, so a second start finds the first.

use std::sync::Arc;
use std::time::Duration;

use overture_core::dsl::{StartWorkflowRequest, WorkflowDef};
use overture_core::plan::TaskKind;
use overture_core::queue::QueueName;
use overture_core::{Object, TaskResultStatus, TaskUpdate};
use serde_json::{Map, Value, json};
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;

use crate::error::Error;
use crate::names;
use crate::outcome::Outcome;
use crate::workflows::Workflows;

/// The system tasks the executor runs.
const KINDS: [TaskKind; 5] =
    [TaskKind::SubWorkflow, TaskKind::StartWorkflow, TaskKind::Http, TaskKind::Event, TaskKind::KafkaPublish];
/// Tasks of one type run at once.
const CONCURRENCY: usize = 64;
/// The `workerId` the executor's tasks show.
const WORKER_ID: &str = "overture-leader";

/// Runs one executor loop per type until `stop` says leadership ended.
pub(crate) fn spawn(
    workflows: Workflows,
    http: reqwest::Client,
    brokers: crate::brokers::Brokers,
    max_output_bytes: usize,
    stop: &watch::Receiver<bool>,
) {
    let executor = Executor { workflows, http, brokers, max_output_bytes };
    for task_type in KINDS.iter().filter_map(TaskKind::system_type) {
        tokio::spawn(run(executor.clone(), task_type, stop.clone()));
    }
}

/// What the executor's loops share: the workflows they report to, the HTTP client, the limit on
/// a task's output.
#[derive(Clone)]
struct Executor {
    workflows: Workflows,
    http: reqwest::Client,
    brokers: crate::brokers::Brokers,
    max_output_bytes: usize,
}

async fn run(ex: Executor, task_type: &'static str, mut stop: watch::Receiver<bool>) {
    let queue = QueueName::system(task_type).into_string();
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        if *stop.borrow() {
            return;
        }
        let Ok(permit) = slots.clone().acquire_many_owned(1).await else { return };
        let free = slots.available_permits() + 1;
        let polled = tokio::select! {
            r = ex.workflows.poll_queue(&queue, task_type, Some(WORKER_ID.to_owned()), free.min(32), Duration::from_secs(1)) => r,
            _ = stop.changed() => return,
        };
        drop(permit);
        match polled {
            Ok(tasks) => {
                for raw in tasks {
                    let Ok(task) = serde_json::from_str::<Value>(raw.get()) else { continue };
                    let Ok(permit) = slots.clone().acquire_owned().await else { return };
                    let ex = ex.clone();
                    tokio::spawn(async move {
                        execute(&ex, task_type, &task).await;
                        drop(permit);
                    });
                }
            }
            Err(e) => {
                if !matches!(e, Error::Unavailable(_)) {
                    tracing::warn!(task_type, error = %e, "system task poll failed");
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

/// Reads a response body of at most `limit` bytes. A larger one fails the task for good: the
/// same call would answer the same way again.
async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, Outcome> {
    let too_large = |size: String| Outcome {
        status: TaskResultStatus::FailedWithTerminalError,
        output: Object::new(),
        reason: Some(format!(
            "The HTTP response body ({size} bytes) is larger than the limit on a task's output ({limit} bytes)"
        )),
    };
    if let Some(length) = response.content_length().filter(|l| *l > limit as u64) {
        return Err(too_large(length.to_string()));
    }
    let mut bytes = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if bytes.len() + chunk.len() > limit => {
                return Err(too_large(format!("over {}", bytes.len() + chunk.len())));
            }
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) => return Ok(bytes),
            Err(e) => return Err(Outcome::failed(format!("Failed to read the HTTP response: {e}"))),
        }
    }
}

async fn execute(ex: &Executor, task_type: &str, task: &Value) {
    let task_id = task["taskId"].as_str().unwrap_or_default().to_owned();
    let workflow_id = task["workflowInstanceId"].as_str().unwrap_or_default().to_owned();
    let span = tracing::info_span!("system_task", task_type, %task_id, %workflow_id);
    run_and_report(ex, task_type, task, task_id).instrument(span).await;
}

/// Runs a system task and reports its result, inside the task's span (a span entered with a
/// guard would follow the thread, not the future, across each await).
async fn run_and_report(ex: &Executor, task_type: &str, task: &Value, task_id: String) {
    let started = std::time::Instant::now();
    let outcome = match TaskKind::of(task_type) {
        TaskKind::SubWorkflow => sub_workflow(&ex.workflows, task).await,
        TaskKind::StartWorkflow => start_workflow(&ex.workflows, task).await,
        TaskKind::Http => http_call(&ex.http, task, ex.max_output_bytes).await,
        TaskKind::Event => crate::events::publish(&ex.workflows, &ex.brokers, task).await,
        TaskKind::KafkaPublish => crate::kafka_publish::run(&ex.brokers, task).await,
        _ => Outcome::failed(format!("no executor for {task_type}")),
    };
    metrics::histogram!(names::SYSTEM_TASK_SECONDS, "taskType" => task_type.to_owned())
        .record(started.elapsed().as_secs_f64());
    let update = TaskUpdate {
        task_id,
        status: outcome.status,
        output: Some(outcome.output),
        merge_output: false,
        reason: outcome.reason,
        worker_id: Some(WORKER_ID.to_owned()),
        callback_after_seconds: 0,
        extend_lease: false,
        logs: Vec::new(),
        output_stored_at: None,
    };
    // A report lost here (leadership moved) is made good by the task's response timeout.
    if let Err(e) = ex.workflows.update_task(update).await {
        tracing::warn!(error = %e, "could not report a system task's result");
    }
}

fn object(v: &Value) -> Object {
    v.as_object().cloned().unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    v.as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// Starts the child (idempotently: its id is derived from the task) and reports the task
/// IN_PROGRESS with `subWorkflowId`; the child's end completes the task later.
async fn sub_workflow(workflows: &Workflows, task: &Value) -> Outcome {
    let input = &task["inputData"];
    let parent_id = task["workflowInstanceId"].as_str().unwrap_or_default();
    let task_id = task["taskId"].as_str().unwrap_or_default();
    let parent = match workflows.workflow(parent_id) {
        Ok(p) => p,
        Err(e) => return Outcome::failed(e.to_string()),
    };
    let definition = match &input["subWorkflowDefinition"] {
        Value::Null => None,
        v => match serde_json::from_value::<WorkflowDef>(v.clone()) {
            Ok(def) => Some(def),
            Err(e) => return Outcome::failed(format!("subWorkflowDefinition is not a workflow definition: {e}")),
        },
    };
    let mut child_input = object(&input["workflowInput"]);
    if child_input.is_empty() {
        child_input = object(input);
    }
    let task_to_domain = match &input["subWorkflowTaskToDomain"] {
        Value::Object(m) => m.iter().filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned()))).collect(),
        _ => parent.header.task_to_domain.clone(),
    };
    let request = StartWorkflowRequest {
        name: text(&input["subWorkflowName"]).or_else(|| definition.as_ref().map(|d| d.name.clone())),
        version: input["subWorkflowVersion"].as_i64().and_then(|v| i32::try_from(v).ok()),
        correlation_id: parent.header.correlation_id.clone(),
        input: Some(child_input),
        task_to_domain,
        workflow_def: definition,
        priority: input["priority"].as_i64().and_then(|p| i32::try_from(p).ok()).unwrap_or(parent.header.priority),
        created_by: None,
        idempotency_key: text(&input["idempotencyKey"]),
        idempotency_strategy: text(&input["idempotencyStrategy"]),
        external_input_payload_storage_path: None,
    };
    // In the parent's partition: the child's end notifies the parent there.
    let child_id = workflows.host().derived_id("sub-workflow", task_id);
    match workflows.start_child(request, child_id.into(), Some((parent_id.into(), task_id.to_owned()))).await {
        Ok(child_id) => Outcome {
            status: TaskResultStatus::InProgress,
            output: Map::from_iter([("subWorkflowId".to_owned(), Value::String(child_id.into_string()))]),
            reason: None,
        },
        Err(e) => Outcome::failed(format!("Unable to start the sub workflow: {e}")),
    }
}

/// Starts the workflow in `startWorkflow` (its id derived from the task) and completes with its
/// id. A start with an idempotency key goes to the key's partition, where API starts with the
/// key go too; `RETURN_EXISTING` completes with the id of the workflow that holds the key.
async fn start_workflow(workflows: &Workflows, task: &Value) -> Outcome {
    let input = &task["inputData"];
    let Some(spec) = input.get("startWorkflow").filter(|v| v.is_object()) else {
        return Outcome::failed("Missing or invalid 'startWorkflow' in the task input");
    };
    let mut request: StartWorkflowRequest = match serde_json::from_value(spec.clone()) {
        Ok(r) => r,
        Err(e) => return Outcome::failed(format!("Invalid startWorkflow request: {e}")),
    };
    let caller_id = task["workflowInstanceId"].as_str().unwrap_or_default();
    if let Ok(caller) = workflows.workflow(caller_id) {
        if request.correlation_id.is_none() {
            request.correlation_id = caller.header.correlation_id.clone();
        }
        if request.task_to_domain.is_empty() {
            request.task_to_domain = caller.header.task_to_domain.clone();
        }
    }
    let host = workflows.host();
    let task_id = task["taskId"].as_str().unwrap_or_default();
    let id = crate::derived_start_id("start-workflow", task_id, &request, Some(host.group), host.partitions);
    match host.router.start_child(request, id.into(), None).await {
        Ok(id) => Outcome {
            status: TaskResultStatus::Completed,
            output: Map::from_iter([("workflowId".to_owned(), Value::String(id.into_string()))]),
            reason: None,
        },
        Err(e) => Outcome::failed(format!("Unable to start the workflow: {e}")),
    }
}

/// Makes the call in `http_request` (or the same keys at the top of the input). A response body
/// larger than `max_body` bytes (the limit on a task's output) fails the task, and is not read
/// past the limit.
async fn http_call(client: &reqwest::Client, task: &Value, max_body: usize) -> Outcome {
    let input = &task["inputData"];
    let spec = input.get("http_request").filter(|v| v.is_object()).unwrap_or(input);
    let (Some(uri), Some(method)) = (text(&spec["uri"]), text(&spec["method"])) else {
        return Outcome::failed("Missing HTTP URI or method in the task input (http_request.uri, http_request.method)");
    };
    let Ok(method) = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()) else {
        return Outcome::failed(format!("Invalid HTTP method: {method}"));
    };
    let millis = |key: &str, default: u64| spec[key].as_u64().filter(|m| *m > 0).unwrap_or(default);
    let timeout = Duration::from_millis(millis("connectionTimeOut", 3_000) + millis("readTimeOut", 3_000));
    let mut request = client.request(method, &uri).timeout(timeout);
    let accept = match &spec["accept"] {
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "),
        v => v.as_str().unwrap_or("application/json").to_owned(),
    };
    request = request.header("Accept", accept);
    if let Value::Object(headers) = &spec["headers"] {
        for (k, v) in headers {
            // A header's value is a string, or a list of them (the SDKs' `HttpInput` sends lists).
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Array(items) => items
                    .iter()
                    .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            request = request.header(k.as_str(), value);
        }
    }
    match &spec["body"] {
        Value::Null => {}
        Value::String(s) => request = request.body(s.clone()),
        body => {
            let content_type = spec["contentType"].as_str().unwrap_or("application/json");
            request = request.header("Content-Type", content_type).body(body.to_string());
        }
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            // Without the URL: it may hold a secret put in at hand-over, and the reason is stored.
            let e = e.without_url();
            let reason = format!("Failed to invoke HTTP task due to: {e}");
            let output = Map::from_iter([("response".to_owned(), Value::String(e.to_string()))]);
            return Outcome { status: TaskResultStatus::Failed, output, reason: Some(reason) };
        }
    };
    let status = response.status();
    let mut headers = Map::new();
    for (name, value) in response.headers() {
        let entry = headers.entry(name.as_str().to_owned()).or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(value.to_str().unwrap_or_default().to_owned()));
        }
    }
    let bytes = match read_body(response, max_body).await {
        Ok(bytes) => bytes,
        Err(outcome) => return outcome,
    };
    let body = serde_json::from_slice::<Value>(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    let result = json!({
        "statusCode": status.as_u16(), "headers": headers, "body": body,
        "reasonPhrase": status.canonical_reason().unwrap_or_default()
    });
    let output = Map::from_iter([("response".to_owned(), result)]);
    let async_complete = input.get("asyncComplete").and_then(Value::as_bool).unwrap_or(false)
        || task["workflowTask"]["asyncComplete"].as_bool().unwrap_or(false);
    if status.is_success() {
        // An asyncComplete call leaves the task IN_PROGRESS for someone else to complete.
        let status = if async_complete { TaskResultStatus::InProgress } else { TaskResultStatus::Completed };
        Outcome { status, output, reason: None }
    } else {
        let reason = format!(
            "Failed to invoke HTTP task due to: status code: {} {}",
            status.as_u16(),
            String::from_utf8_lossy(&bytes).chars().take(200).collect::<String>()
        );
        Outcome { status: TaskResultStatus::Failed, output, reason: Some(reason) }
    }
}

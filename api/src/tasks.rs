//! `/api/tasks`: what workers call.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use overture_core::{Object, TaskResultStatus, TaskUpdate, render};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::{json_response, signal, text_response};

/// Conductor caps a batch poll's long-poll timeout at 5 s.
const MAX_POLL_TIMEOUT_MS: i64 = 5_000;
/// The single-task poll waits this long, as Conductor's does.
const SINGLE_POLL_WAIT: Duration = Duration::from_millis(100);
/// Upper bound on tasks returned by one batch poll.
const MAX_BATCH: i64 = 1_000;

/// `GET /tasks/poll/{type}?workerid=&domain=`: one task, or 204.
pub async fn poll_one(
    State(s): State<AppState>,
    Path(task_type): Path<String>,
    q: Params,
) -> Result<Response, ApiError> {
    let worker = q.str("workerid").map(str::to_owned);
    let mut tasks = s.engine.poll(&task_type, q.str("domain"), worker, 1, SINGLE_POLL_WAIT).await?;
    match tasks.pop() {
        Some(task) => json_response(&task),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `GET /tasks/poll/batch/{type}?count=&timeout=&workerid=&domain=`: up to `count` tasks, waiting
/// up to `timeout` ms for the first; `200 []` when there is none.
pub async fn poll_batch(
    State(s): State<AppState>,
    Path(task_type): Path<String>,
    q: Params,
) -> Result<Response, ApiError> {
    let count = q.int("count")?.unwrap_or(1);
    if count < 1 {
        return Err(ApiError::bad_request(format!("count must be at least 1, not {count}")));
    }
    let timeout = q.int("timeout")?.unwrap_or(100);
    if timeout > MAX_POLL_TIMEOUT_MS {
        return Err(ApiError::bad_request("Long Poll Timeout value cannot be more than 5 seconds"));
    }
    let worker = q.str("workerid").map(str::to_owned);
    let wait = Duration::from_millis(timeout.max(0) as u64);
    let tasks = s.engine.poll(&task_type, q.str("domain"), worker, count.min(MAX_BATCH) as usize, wait).await?;
    json_response(&tasks)
}

/// Conductor's `TaskExecLog` as a worker sends it.
#[derive(Deserialize)]
struct LogLine {
    #[serde(default)]
    log: Option<String>,
}

/// Conductor's `TaskResult`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TaskResultBody {
    #[serde(default)]
    workflow_instance_id: Option<String>,
    #[serde(default)]
    task_id: Option<String>,
    #[serde(default)]
    reason_for_incompletion: Option<String>,
    #[serde(default)]
    callback_after_seconds: Option<i64>,
    #[serde(default)]
    worker_id: Option<String>,
    #[serde(default)]
    status: Option<TaskResultStatus>,
    #[serde(default)]
    output_data: Option<Object>,
    #[serde(default)]
    logs: Option<Vec<LogLine>>,
    #[serde(default)]
    extend_lease: Option<bool>,
    #[serde(default)]
    external_output_payload_storage_path: Option<String>,
}

///
/// An output over `max_task_output_bytes` (in a body the node accepts) fails the task with
/// FAILED_WITH_TERMINAL_ERROR and an empty output, as conductor-oss fails a task whose payload is
/// over its maximum, rather than refusing the update: a worker that retried a refused update
/// would leave the task running until its response timeout.
async fn task_update(s: &AppState, body: &RawBody) -> Result<TaskUpdate, ApiError> {
    let r: TaskResultBody = body.json(None)?;
    let workflow_id = r.workflow_instance_id.clone().filter(|w| !w.is_empty());
    let Some(workflow_id) = workflow_id else {
        return Err(ApiError::bad_request("Workflow Id cannot be null or empty"));
    };
    let task_id =
        r.task_id.filter(|t| !t.is_empty()).ok_or_else(|| ApiError::bad_request("Task ID cannot be null or empty"))?;
    let mut status = r.status.ok_or_else(|| ApiError::bad_request("Task status cannot be null"))?;
    let mut output = r.output_data;
    let mut reason = r.reason_for_incompletion;
    // A worker that uploaded its output (the Java SDK over its threshold) sends where it is; the
    // engine decides on the content and the task refers to the stored payload.
    // Entries sent inline as well are added to it, and the whole is then stored anew if large.
    let mut stored_at = r.external_output_payload_storage_path.filter(|p| !p.trim().is_empty());
    if let Some(path) = &stored_at {
        let mut stored = s.engine.payload_object(path).await?;
        let inline = output.take().unwrap_or_default();
        let mixed = !inline.is_empty();
        stored.extend(inline);
        output = Some(stored);
        if mixed {
            stored_at = None;
        }
    }
    if let Some((size, limit)) = s.limits.task_output_excess(body, output.as_ref()) {
        tracing::warn!(%task_id, %workflow_id, size, limit, "a task output over max_task_output_bytes fails its task");
        status = TaskResultStatus::FailedWithTerminalError;
        output = None;
        reason = Some(format!(
            "The payload size: {size} of task: {task_id} in workflow: {workflow_id}  is greater than the permissible limit: {limit} bytes"
        ));
    }
    Ok(TaskUpdate {
        task_id,
        status,
        output: Some(output.unwrap_or_default()),
        merge_output: false,
        reason,
        worker_id: r.worker_id,
        callback_after_seconds: r.callback_after_seconds.unwrap_or(0),
        extend_lease: r.extend_lease.unwrap_or(false),
        logs: r.logs.unwrap_or_default().into_iter().filter_map(|l| l.log).collect(),
        output_stored_at: stored_at,
    })
}

/// `POST /tasks`: record a result; answers the task id as text.
pub async fn update(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let update = task_update(&s, &body).await?;
    let task_id = update.task_id.clone();
    s.engine.update_task(update).await?;
    Ok(text_response(task_id))
}

/// `POST /tasks/update-v2`: record a result and receive the next task of the same queue, or 204.
pub async fn update_v2(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    match s.engine.update_task_and_poll(task_update(&s, &body).await?).await? {
        Some(next) => json_response(&next),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `POST /tasks/{workflowId}/{taskRefName}/{status}?workerid=`: update the open task with that
/// reference name, merging the body into its output; answers its id as text (empty if none).
pub async fn update_by_ref(
    State(s): State<AppState>,
    Path((workflow_id, reference, status)): Path<(String, String, String)>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    if status == "signal" {
        // `/tasks/{workflowId}/{status}/signal`: the reference segment is the status.
        return signal(s, workflow_id, &reference, body).await;
    }
    let status = signal_status(&status)?;
    let output: Object = body.json(Some(Object::new()))?;
    s.limits.check_task_output(&body, Some(&output))?;
    let worker = q.str("workerid").map(str::to_owned);
    let updated = s.engine.update_task_by_ref(&workflow_id, &reference, status, output, worker).await?;
    Ok(text_response(updated.unwrap_or_default()))
}

fn signal_status(status: &str) -> Result<TaskResultStatus, ApiError> {
    TaskResultStatus::parse(status).ok_or_else(|| {
        ApiError::bad_request(format!(
            "Unknown task status {status:?}: use IN_PROGRESS, FAILED, FAILED_WITH_TERMINAL_ERROR, COMPLETED or CANCELED"
        ))
    })
}

/// `POST /tasks/{workflowId}/{status}/signal` (routed through [`update_by_ref`]): updates the
/// first open WAIT task of the workflow or, depth first, of its running sub-workflows, merging
/// the body into its output. 200 with no body, also when nothing was waiting.
async fn signal(s: AppState, workflow_id: String, status: &str, body: RawBody) -> Result<Response, ApiError> {
    let status = signal_status(status)?;
    let output: Object = body.json(Some(Object::new()))?;
    s.limits.check_task_output(&body, Some(&output))?;
    s.engine.signal(&workflow_id, status, output).await?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /tasks/{workflowId}/{status}/signal/sync?returnStrategy=&timeoutMillis=5000`: as
/// `signal`, then waits, up to `timeoutMillis`, until the workflow ends or blocks again, and
/// answers Conductor's `SignalResponse` (see [`crate::signal`]). 404 if no WAIT was open.
pub async fn signal_sync(
    State(s): State<AppState>,
    Path((workflow_id, status, signal)): Path<(String, String, String)>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    if signal != "signal" {
        // `/tasks/{workflowId}/{taskRefName}/{status}/sync`: update by reference, answer the
        // workflow; 404 if no task with that reference is open.
        let (reference, status) = (status, signal_status(&signal)?);
        let output: Object = body.json(Some(Object::new()))?;
        s.limits.check_task_output(&body, Some(&output))?;
        let worker = q.str("workerid").map(str::to_owned);
        let updated = s.engine.update_task_by_ref(&workflow_id, &reference, status, output, worker).await?;
        if updated.is_none() {
            return Err(ApiError::not_found(format!("No open task {reference} in workflow {workflow_id}")));
        }
        let wf = s.engine.workflow(&workflow_id)?;
        return json_response(&render::workflow(&wf, true, overture_actors::now_ms()));
    }
    let status = signal_status(&status)?;
    let strategy = signal::Strategy::of(&q)?;
    let wait = std::time::Duration::from_millis(
        q.int("timeoutMillis")?.filter(|m| *m > 0).unwrap_or(5_000).min(300_000) as u64,
    );
    let output: Object = body.json(Some(Object::new()))?;
    s.limits.check_task_output(&body, Some(&output))?;
    if s.engine.signal(&workflow_id, status, output).await?.is_none() {
        return Err(ApiError::not_found(format!("Found no blocked task in workflow {workflow_id} to signal")));
    }
    // Answered on the leader: the wait starts from the state the signal's decision committed.
    let run = s.engine.await_run(&workflow_id, &[], wait).await?;
    signal::response(&run, strategy, &signal::request_id(None))
}

/// `GET /tasks/{taskId}`.
pub async fn get(State(s): State<AppState>, Path(task_id): Path<String>) -> Result<Response, ApiError> {
    let (wf, task) = s.engine.task(&task_id)?;
    json_response(&render::task(&wf, &task, overture_actors::now_ms()))
}

/// `POST /tasks/{taskId}/log`: the body is the raw log line.
pub async fn add_log(State(s): State<AppState>, Path(task_id): Path<String>, body: RawBody) -> Result<(), ApiError> {
    let text = body.text()?;
    // The Python SDK sends the raw text; other clients JSON-encode it. Accept both.
    let line = serde_json::from_str::<String>(&text).unwrap_or(text);
    Ok(s.engine.add_task_log(&task_id, line).await?)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskExecLog<'a> {
    log: &'a str,
    task_id: &'a str,
    created_time: i64,
}

/// `GET /tasks/{taskId}/log`: the task's log lines, or 204 if there are none.
pub async fn logs(State(s): State<AppState>, Path(task_id): Path<String>) -> Result<Response, ApiError> {
    let rows = s.engine.task_logs(&task_id)?;
    if rows.is_empty() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let logs: Vec<TaskExecLog<'_>> =
        rows.iter().map(|r| TaskExecLog { log: &r.log, task_id: &task_id, created_time: r.created_time }).collect();
    json_response(&logs)
}

/// `GET /tasks/queue/sizes?taskType=a&taskType=b`.
pub async fn queue_sizes(
    State(s): State<AppState>,
    q: Params,
) -> Result<Json<std::collections::BTreeMap<String, usize>>, ApiError> {
    Ok(Json(s.engine.queue_sizes(&q.all("taskType"))?))
}

/// `GET /tasks/queue/size?taskType=&domain=`: tasks waiting in one queue, as a number.
pub async fn queue_size(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let task_type = q.str("taskType").ok_or_else(|| ApiError::bad_request("taskType is required"))?;
    let queue = overture_core::queue::QueueName::worker(task_type, q.str("domain")).into_string();
    let sizes = s.engine.queue_sizes(std::slice::from_ref(&queue))?;
    json_response(&sizes.get(&queue).copied().unwrap_or(0))
}

/// `GET /tasks/queue/all`: every worker queue and its size, by name.
pub async fn queue_all(State(s): State<AppState>) -> Result<Response, ApiError> {
    json_response(&s.engine.queue_all()?)
}

/// `GET /tasks/queue/all/verbose`: `{queue: {shard: {size, uacked}}}`, with the one shard `a`
/// that conductor-oss's SQL backends answer: tasks waiting, and tasks handed out and not finished.
pub async fn queue_all_verbose(State(s): State<AppState>) -> Result<Response, ApiError> {
    let verbose: std::collections::BTreeMap<String, serde_json::Value> = s
        .engine
        .queue_all_verbose()?
        .into_iter()
        .map(|(queue, (size, uacked))| (queue, serde_json::json!({"a": {"size": size, "uacked": uacked}})))
        .collect();
    json_response(&verbose)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PollData {
    queue_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<String>,
    last_poll_time: i64,
}

async fn poll_data(s: &AppState, task_type: Option<&str>) -> Result<Response, ApiError> {
    let data: Vec<PollData> = s
        .engine
        .poll_data(task_type)
        .await?
        .into_iter()
        .map(|p| PollData {
            queue_name: p.task_type.into(),
            domain: p.domain,
            worker_id: p.worker_id,
            last_poll_time: p.last_poll_time,
        })
        .collect();
    json_response(&data)
}

/// `GET /tasks/queue/polldata?taskType=`: who polled that task type last, per domain, and when
/// (answered by the leader, which saw the polls; with partitions, merged from every node).
pub async fn queue_poll_data(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let task_type = q.str("taskType").ok_or_else(|| ApiError::bad_request("taskType is required"))?;
    poll_data(&s, Some(task_type)).await
}

/// `GET /tasks/queue/polldata/all`.
pub async fn queue_poll_data_all(State(s): State<AppState>) -> Result<Response, ApiError> {
    poll_data(&s, None).await
}

/// `POST /tasks/queue/requeue/{taskType}`: Conductor re-pushes lost queue messages. Here queue
/// entries are derived from the tasks' state and cannot be lost, so nothing needs pushing; the
/// answer is the number of tasks queued for that type.
pub async fn queue_requeue(State(s): State<AppState>, Path(task_type): Path<String>) -> Result<Response, ApiError> {
    let sizes = s.engine.queue_sizes(std::slice::from_ref(&task_type))?;
    Ok(text_response(sizes.get(&task_type).copied().unwrap_or(0).to_string()))
}

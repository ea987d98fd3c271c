//! `/api/workflow`: start, read, operate on and terminate executions; `/api/workflow/bulk`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use overture_core::command::Rerun;
use overture_core::dsl::StartWorkflowRequest;
use overture_core::{Command, Object, render};
use serde::Deserialize;

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::partitioned::{BulkResponse, Resend};
use crate::{json_response, signal, text_response};

/// `POST /workflow`: start from a `StartWorkflowRequest`; answers the id as text.
pub async fn start(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let request: StartWorkflowRequest = body.json(None)?;
    s.limits.check_workflow_input(&body, request.input.as_ref())?;
    Ok(text_response(s.engine.start_workflow(request).await?.into()))
}

/// `POST /workflow/{name}?version=&correlationId=&priority=`: start with the body as input.
pub async fn start_by_name(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let input: Object = body.json(Some(Object::new()))?;
    s.limits.check_workflow_input(&body, Some(&input))?;
    let request = StartWorkflowRequest {
        name: Some(name),
        version: q.int("version")?.map(|v| i32::try_from(v).unwrap_or(i32::MAX)),
        correlation_id: q.str("correlationId").map(str::to_owned),
        input: Some(input),
        task_to_domain: Default::default(),
        workflow_def: None,
        priority: q.int("priority")?.map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX)),
        created_by: None,
        idempotency_key: None,
        idempotency_strategy: None,
        external_input_payload_storage_path: None,
    };
    Ok(text_response(s.engine.start_workflow(request).await?.into()))
}

/// `GET /workflow/{id}?includeTasks=true`.
pub async fn get(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<Response, ApiError> {
    let include_tasks = q.bool("includeTasks", true)?;
    let wf = s.engine.workflow(&id)?;
    json_response(&render::workflow(&wf, include_tasks, overture_actors::now_ms()))
}

/// `POST /workflow/test` with a `WorkflowTestRequest`: runs the workflow with mocked task
/// results and no worker, and answers it as it stands once it ends or an open task has no mock
/// left (see [`overture_actors::Engine::test_workflow`]). The run is a stored execution.
pub async fn test(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let request: overture_actors::WorkflowTestRequest = body.json(None)?;
    s.limits.check_workflow_input(&body, request.start.input.as_ref())?;
    if request.start.name.as_deref().is_none_or(str::is_empty) && request.start.workflow_def.is_none() {
        return Err(ApiError::bad_request("The workflow test request needs a name (or a workflowDef)"));
    }
    let wf = s.engine.test_workflow(request).await?;
    json_response(&render::workflow(&wf, true, overture_actors::now_ms()))
}

/// `GET /workflow/{id}/status?includeOutput=&includeVariables=`.
pub async fn status(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<Response, ApiError> {
    let (output, variables) = (q.bool("includeOutput", false)?, q.bool("includeVariables", false)?);
    let header = s.engine.workflow_header(&id)?;
    json_response(&render::status(&header, output, variables))
}

/// `DELETE /workflow/{id}?reason=`: terminate.
pub async fn terminate(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<(), ApiError> {
    Ok(s.engine.terminate(&id, q.str("reason").map(str::to_owned)).await?)
}

// ---- operations (Conductor's WorkflowResource and WorkflowBulkResource) ----

/// `PUT /workflow/{id}/pause`: 200; 409 if the workflow has ended; pausing twice is a no-op.
pub async fn pause(State(s): State<AppState>, Path(id): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.operate(&id, Command::Pause).await?)
}

/// `PUT /workflow/{id}/resume`: 200; 409 if it is not PAUSED (Conductor answers 500).
pub async fn resume(State(s): State<AppState>, Path(id): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.operate(&id, Command::Resume).await?)
}

/// `PUT /workflow/decide/{id}`: run the decider now.
pub async fn decide(State(s): State<AppState>, Path(id): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.operate(&id, Command::Decide).await?)
}

/// `POST /workflow/{id}/resetcallbacks`: 204; 409 if the workflow has ended.
pub async fn reset_callbacks(State(s): State<AppState>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    s.engine.operate(&id, Command::ResetCallbacks).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Conductor's `SkipTaskRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct SkipTaskRequest {
    #[serde(default)]
    task_input: Option<Object>,
    #[serde(default)]
    task_output: Option<Object>,
}

/// `PUT /workflow/{id}/skiptask/{taskReferenceName}`: 200; 409 if the workflow is not RUNNING,
/// the task is not in its definition or has run already (Conductor answers 500). The task's
/// input and output may come as a JSON body (`taskInput`, `taskOutput`).
pub async fn skip_task(
    State(s): State<AppState>,
    Path((id, reference)): Path<(String, String)>,
    body: RawBody,
) -> Result<(), ApiError> {
    let request: SkipTaskRequest = body.json(Some(SkipTaskRequest::default()))?;
    let command = Command::Skip {
        reference,
        input: request.task_input.unwrap_or_default(),
        output: request.task_output.unwrap_or_default(),
    };
    Ok(s.engine.operate(&id, command).await?)
}

/// `POST /workflow/{id}/retry?resumeSubworkflowTasks=`: 204; **404** if it is still running
/// (as Conductor), 409 if nothing can be retried.
pub async fn retry(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<StatusCode, ApiError> {
    let resume = q.bool("resumeSubworkflowTasks", false)?;
    s.engine.retry(&id, resume).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /workflow/{id}/restart?useLatestDefinitions=`: 204; 409 if it is still running; 404 if
/// it COMPLETED and its definition is not restartable.
pub async fn restart(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<StatusCode, ApiError> {
    let latest = q.bool("useLatestDefinitions", false)?;
    s.engine.restart(&id, latest).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Conductor's `RerunWorkflowRequest`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RerunRequest {
    #[serde(default)]
    re_run_from_task_id: Option<String>,
    #[serde(default)]
    task_input: Option<Object>,
    #[serde(default)]
    workflow_input: Option<Object>,
    #[serde(default)]
    correlation_id: Option<String>,
}

/// `POST /workflow/{id}/rerun`: the id as text; 409 if it is still running; 400 for an unknown
/// task.
pub async fn rerun(State(s): State<AppState>, Path(id): Path<String>, body: RawBody) -> Result<Response, ApiError> {
    let request: RerunRequest = body.json(Some(RerunRequest::default()))?;
    s.limits.check_workflow_input(&body, request.workflow_input.as_ref())?;
    let rerun = Rerun {
        from_task_id: request.re_run_from_task_id.filter(|t| !t.is_empty()),
        task_input: request.task_input,
        workflow_input: request.workflow_input,
        correlation_id: request.correlation_id,
    };
    s.engine.operate(&id, Command::Rerun(Box::new(rerun))).await?;
    Ok(text_response(id))
}

/// `DELETE /workflow/{id}/remove?archiveWorkflow=true`: delete an execution; archiving (the
/// default) needs a finished one (400 otherwise).
pub async fn remove(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<(), ApiError> {
    let archive = q.bool("archiveWorkflow", true)?;
    Ok(s.engine.remove_workflow(&id, archive).await?)
}

/// `DELETE /workflow/{id}/terminate-remove?reason=&archiveWorkflow=true`.
pub async fn terminate_remove(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<(), ApiError> {
    let archive = q.bool("archiveWorkflow", true)?;
    Ok(terminate_and_remove(&s, &id, q.str("reason").map(str::to_owned), archive).await?)
}

/// Terminates a workflow unless it has ended, then removes it.
async fn terminate_and_remove(
    s: &AppState,
    id: &str,
    reason: Option<String>,
    archive: bool,
) -> Result<(), overture_actors::Error> {
    match s.engine.terminate(id, reason).await {
        Ok(()) | Err(overture_actors::Error::Conflict(_)) => {}
        Err(e) => return Err(e),
    }
    s.engine.remove_workflow(id, archive).await
}

/// The ids of a bulk request: 1 to 1,000.
fn bulk_ids(body: &RawBody) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = body.json(None)?;
    if ids.is_empty() || ids.len() > 1000 {
        return Err(ApiError::bad_request(format!(
            "Cannot process more than 1000 workflows. Please use multiple requests. (got {})",
            ids.len()
        )));
    }
    Ok(ids)
}

/// Runs `op` for each id of a bulk request, each on its own. In a partitioned cluster, the ids
/// of workflows another node leads are sent there in one bulk request per node (`resend`), and
/// its answer merged in.
async fn bulk<F, Fut>(s: &AppState, resend: Resend, body: RawBody, op: F) -> Result<Response, ApiError>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), overture_actors::Error>>,
{
    let ids = bulk_ids(&body)?;
    let results = futures::future::join_all(ids.iter().map(|id| op(id.clone()))).await;
    let mut response = BulkResponse::default();
    let mut elsewhere: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (id, result) in ids.into_iter().zip(results) {
        match result {
            Ok(()) => response.bulk_successful_results.push(id),
            Err(overture_actors::Error::Elsewhere { address, .. }) if !resend.was_forwarded() => {
                elsewhere.entry(address).or_default().push(id);
            }
            Err(e) => {
                response.bulk_error_results.insert(id, e.to_string());
            }
        }
    }
    for (address, ids) in elsewhere {
        match resend.bulk_to(s, &address, &ids).await {
            Ok(theirs) => {
                response.bulk_successful_results.extend(theirs.bulk_successful_results);
                response.bulk_error_results.extend(theirs.bulk_error_results);
            }
            Err(why) => response.bulk_error_results.extend(ids.into_iter().map(|id| (id, why.clone()))),
        }
    }
    json_response(&response)
}

/// `PUT /workflow/bulk/pause`.
pub async fn bulk_pause(State(s): State<AppState>, resend: Resend, body: RawBody) -> Result<Response, ApiError> {
    bulk(&s, resend, body, |id| {
        let s = s.clone();
        async move { s.engine.operate(&id, Command::Pause).await }
    })
    .await
}

/// `PUT /workflow/bulk/resume`.
pub async fn bulk_resume(State(s): State<AppState>, resend: Resend, body: RawBody) -> Result<Response, ApiError> {
    bulk(&s, resend, body, |id| {
        let s = s.clone();
        async move { s.engine.operate(&id, Command::Resume).await }
    })
    .await
}

/// `POST /workflow/bulk/retry`.
pub async fn bulk_retry(State(s): State<AppState>, resend: Resend, body: RawBody) -> Result<Response, ApiError> {
    bulk(&s, resend, body, |id| {
        let s = s.clone();
        async move { s.engine.retry(&id, false).await }
    })
    .await
}

/// `POST /workflow/bulk/restart?useLatestDefinitions=`.
pub async fn bulk_restart(
    State(s): State<AppState>,
    resend: Resend,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let latest = q.bool("useLatestDefinitions", false)?;
    bulk(&s, resend, body, |id| {
        let s = s.clone();
        async move { s.engine.restart(&id, latest).await }
    })
    .await
}

/// `POST /workflow/bulk/terminate?reason=`.
pub async fn bulk_terminate(
    State(s): State<AppState>,
    resend: Resend,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let reason = q.str("reason").map(str::to_owned);
    bulk(&s, resend, body, |id| {
        let (s, reason) = (s.clone(), reason.clone());
        async move { s.engine.terminate(&id, reason).await }
    })
    .await
}

/// `DELETE /workflow/bulk/remove?archiveWorkflow=true`.
pub async fn bulk_remove(
    State(s): State<AppState>,
    resend: Resend,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let archive = q.bool("archiveWorkflow", true)?;
    bulk(&s, resend, body, |id| {
        let s = s.clone();
        async move { s.engine.remove_workflow(&id, archive).await }
    })
    .await
}

/// `DELETE /workflow/bulk/terminate-remove?reason=&archiveWorkflow=true`: terminates each
/// workflow that has not ended, then removes it. Each id is listed once, as a success or with
/// why it failed (conductor-oss lists a running workflow twice, once per step).
pub async fn bulk_terminate_remove(
    State(s): State<AppState>,
    resend: Resend,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let (archive, reason) = (q.bool("archiveWorkflow", true)?, q.str("reason").map(str::to_owned));
    bulk(&s, resend, body, |id| {
        let (s, reason) = (s.clone(), reason.clone());
        async move { terminate_and_remove(&s, &id, reason, archive).await }
    })
    .await
}

/// `POST /workflow/bulk/search?includeTasks=true` with a list of ids: `BulkResponse` whose
/// successes are the workflows (Conductor's `Workflow` JSON), an unknown id listed with why.
pub async fn bulk_search(State(s): State<AppState>, q: Params, body: RawBody) -> Result<Response, ApiError> {
    let include_tasks = q.bool("includeTasks", true)?;
    let now = overture_actors::now_ms();
    let mut errors = std::collections::BTreeMap::new();
    let mut found = Vec::new();
    for id in bulk_ids(&body)? {
        match s.engine.workflow(&id) {
            Ok(wf) => found.push(
                serde_json::to_value(render::workflow(&wf, include_tasks, now))
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering {id}: {e}")))?,
            ),
            Err(e) => {
                errors.insert(id, e.to_string());
            }
        }
    }
    json_response(&serde_json::json!({"bulkErrorResults": errors, "bulkSuccessfulResults": found}))
}

/// `GET /workflow/{id}/history`: every event of the execution, oldest first (Overture's own
/// endpoint): what happened to it and why it is where it is.
pub async fn history(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let wf = s.engine.workflow(&id)?;
    let events = s.engine.history(&id)?;
    let view: Vec<serde_json::Value> = events.iter().map(|(rev, e)| render::event(&wf, *rev, e)).collect();
    json_response(&view)
}

/// `GET /workflow/{id}/tasks?start=0&count=15&status=`: a page of its tasks as
/// `SearchResult<Task>`; `status` may repeat and is matched ignoring case.
pub async fn tasks(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<Response, ApiError> {
    let wf = s.engine.workflow(&id)?;
    let start = q.int("start")?.unwrap_or(0).max(0) as usize;
    let count = q.int("count")?.unwrap_or(15).max(0) as usize;
    let statuses: Vec<String> = q.all("status").iter().map(|s| s.to_ascii_uppercase()).collect();
    let matching: Vec<_> = wf
        .tasks
        .iter()
        .filter(|t| !t.is_pruned() && (statuses.is_empty() || statuses.iter().any(|s| s == t.status.as_str())))
        .collect();
    let now = overture_actors::now_ms();
    let results: Vec<_> = matching.iter().skip(start).take(count).map(|t| render::task(&wf, t, now)).collect();
    json_response(&serde_json::json!({"totalHits": matching.len(), "results": results}))
}

/// `POST /workflow/execute/{name}/{version}?requestId=&waitUntilTaskRef=&waitForSeconds=10&returnStrategy=&consistency=`:
/// start, then answer once the workflow ends or blocks (an open WAIT without a deadline, or a
/// finished task of `waitUntilTaskRef`, in it or in a running sub-workflow), or when the wait runs
/// out (`signalTimeout: true`): Conductor's `SignalResponse` by `returnStrategy` (see
/// [`crate::signal`]). Version 0 is the latest. Every start is committed through Raft before it is
/// answered, so `consistency` (`SYNCHRONOUS`, `DURABLE`, `REGION_DURABLE`) changes nothing.
pub async fn execute(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let version: i32 =
        version.parse().map_err(|_| ApiError::bad_request(format!("version must be an integer: {version}")))?;
    let strategy = signal::Strategy::of(&q)?;
    let mut request: StartWorkflowRequest = body.json(None)?;
    s.limits.check_workflow_input(&body, request.input.as_ref())?;
    request.name = Some(name);
    request.version = (version > 0).then_some(version);
    let refs: Vec<String> = q
        .all("waitUntilTaskRef")
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    let seconds = q.int("waitForSeconds")?.filter(|s| *s > 0).unwrap_or(10).min(300);
    let run = s.engine.execute_sync(request, &refs, std::time::Duration::from_secs(seconds as u64)).await?;
    signal::response(&run, strategy, &signal::request_id(q.str("requestId")))
}

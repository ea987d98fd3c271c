//! Conductor's `SignalResponse`: how a synchronous execution (`POST /workflow/execute/...`) and a
//! synchronous signal (`POST /tasks/{id}/{status}/signal/sync`) answer, by `returnStrategy`.
//!
//! Every answer carries `responseType`, `targetWorkflowId`, `targetWorkflowStatus`, `requestId`
//! and `signalTimeout`. `TARGET_WORKFLOW` adds the target's `WorkflowRun` (the workflow JSON),
//! `BLOCKING_WORKFLOW` that of the workflow the wait stopped in (a sub-workflow, maybe), and
//! `BLOCKING_TASK` / `BLOCKING_TASK_INPUT` the `TaskRun` of the task it stopped at. With no task
//! to show (the workflow ended or the wait ran out), the task strategies answer the target's
//! `WorkflowRun`; conductor-oss answers 500 there.

use axum::http::StatusCode;
use axum::response::Response;
use overture_actors::SyncRun;
use overture_core::render;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::input::Params;
use crate::json_response;

/// Conductor's `returnStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strategy {
    TargetWorkflow,
    BlockingWorkflow,
    BlockingTask,
    BlockingTaskInput,
}

impl Strategy {
    /// `returnStrategy` from the query, `TARGET_WORKFLOW` if absent; 400 for another value.
    pub(crate) fn of(q: &Params) -> Result<Strategy, ApiError> {
        Ok(match q.str("returnStrategy").unwrap_or("TARGET_WORKFLOW") {
            "TARGET_WORKFLOW" => Strategy::TargetWorkflow,
            "BLOCKING_WORKFLOW" => Strategy::BlockingWorkflow,
            "BLOCKING_TASK" => Strategy::BlockingTask,
            "BLOCKING_TASK_INPUT" => Strategy::BlockingTaskInput,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown returnStrategy {other:?}: use TARGET_WORKFLOW, BLOCKING_WORKFLOW, BLOCKING_TASK or BLOCKING_TASK_INPUT"
                )));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Strategy::TargetWorkflow => "TARGET_WORKFLOW",
            Strategy::BlockingWorkflow => "BLOCKING_WORKFLOW",
            Strategy::BlockingTask => "BLOCKING_TASK",
            Strategy::BlockingTaskInput => "BLOCKING_TASK_INPUT",
        }
    }
}

/// The `requestId` a client gave, or a new one: conductor-oss echoes it and uses it for nothing
/// else.
pub(crate) fn request_id(given: Option<&str>) -> String {
    given.filter(|r| !r.trim().is_empty()).map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}

/// The answer for `run` under `strategy`.
pub(crate) fn response(run: &SyncRun, strategy: Strategy, request_id: &str) -> Result<Response, ApiError> {
    let now = overture_actors::now_ms();
    let body = match (strategy, &run.blocking) {
        (Strategy::BlockingTask | Strategy::BlockingTaskInput, Some((wf, seq))) => match wf.task(*seq) {
            Some(task) => task_run(wf, task, now)?,
            None => workflow_run(&run.target, now)?,
        },
        (Strategy::BlockingWorkflow, Some((wf, _))) => workflow_run(wf, now)?,
        _ => workflow_run(&run.target, now)?,
    };
    let mut out = Map::new();
    out.insert("responseType".into(), strategy.as_str().into());
    out.insert("targetWorkflowId".into(), run.target.header.workflow_id.to_string().into());
    out.insert("targetWorkflowStatus".into(), run.target.header.status.as_str().into());
    out.insert("requestId".into(), request_id.into());
    out.insert("signalTimeout".into(), run.timed_out.into());
    for (k, v) in body {
        out.entry(k).or_insert(v);
    }
    json_response(&out)
}

fn object(value: impl serde::Serialize) -> Result<Map<String, Value>, ApiError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Ok(Map::new()),
        Err(e) => Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the response: {e}"))),
    }
}

/// Conductor's `WorkflowRun`: the workflow's own JSON (`workflowId`, `input`, `output`, `tasks`,
/// `status`, `createTime`, `updateTime`, `priority`, `variables`, ...).
fn workflow_run(wf: &overture_core::WorkflowState, now: i64) -> Result<Map<String, Value>, ApiError> {
    object(render::workflow(wf, true, now))
}

/// Conductor's `TaskRun`: the task's JSON, with `TaskRun`'s own names for the fields it renames
/// (`workflowId`, `input`, `output`, `priority`, `createdBy`, `createTime`).
fn task_run(
    wf: &overture_core::WorkflowState,
    task: &overture_core::TaskState,
    now: i64,
) -> Result<Map<String, Value>, ApiError> {
    let mut run = object(render::task(wf, task, now))?;
    let copy = |run: &mut Map<String, Value>, from: &str, to: &str| {
        if let Some(v) = run.get(from).cloned() {
            run.insert(to.into(), v);
        }
    };
    copy(&mut run, "workflowInstanceId", "workflowId");
    copy(&mut run, "inputData", "input");
    copy(&mut run, "outputData", "output");
    copy(&mut run, "workflowPriority", "priority");
    copy(&mut run, "workerId", "createdBy");
    copy(&mut run, "startTime", "createTime");
    Ok(run)
}

//! `/api/scheduler`: workflow schedules, as the official SDKs' scheduler clients call them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use overture_core::schedule::WorkflowSchedule;
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::json_response;

/// `POST /scheduler/schedules` with a `SaveScheduleRequest`: create or replace; 400 with the
/// reason for an invalid expression, zone or request.
pub async fn save(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let schedule: WorkflowSchedule = body.json(None)?;
    let by = schedule.updated_by.clone();
    s.engine.save_schedule(schedule, by).await?;
    Ok(StatusCode::OK.into_response())
}

/// `GET /scheduler/schedules?workflowName=`: `List<WorkflowSchedule>`.
pub async fn list(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    json_response(&s.engine.schedules(q.str("workflowName"))?)
}

/// `GET /scheduler/schedules/{name}`: the schedule, or 200 with `null` when there is none, as
/// Conductor answers (the SDKs read that as "no such schedule").
pub async fn get(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    json_response(&s.engine.schedule(&name)?)
}

/// `DELETE /scheduler/schedules/{name}`: 404 if there is none.
pub async fn delete(State(s): State<AppState>, Path(name): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.delete_schedule(&name).await?)
}

/// `PUT` (or `GET`) `/scheduler/schedules/{name}/pause?reason=`.
pub async fn pause(State(s): State<AppState>, Path(name): Path<String>, q: Params) -> Result<(), ApiError> {
    Ok(s.engine.pause_schedules(Some(&name), true, q.str("reason").map(str::to_owned)).await?)
}

/// `PUT` (or `GET`) `/scheduler/schedules/{name}/resume`.
pub async fn resume(State(s): State<AppState>, Path(name): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.pause_schedules(Some(&name), false, None).await?)
}

/// `GET /scheduler/admin/pause`: pause every schedule.
pub async fn pause_all(State(s): State<AppState>) -> Result<Response, ApiError> {
    s.engine.pause_schedules(None, true, Some("paused by admin".into())).await?;
    json_response(&serde_json::json!({}))
}

/// `GET /scheduler/admin/resume`: resume every schedule.
pub async fn resume_all(State(s): State<AppState>) -> Result<Response, ApiError> {
    s.engine.pause_schedules(None, false, None).await?;
    json_response(&serde_json::json!({}))
}

/// `GET /scheduler/admin/requeue`: Conductor re-queues its execution records; here every fire
/// is already a committed entry, so there is nothing to re-queue.
pub async fn requeue_all() -> Result<Response, ApiError> {
    json_response(&serde_json::json!({}))
}

/// `GET /scheduler/nextFewSchedules?cronExpression=&scheduleStartTime=&scheduleEndTime=&limit=3`:
/// the next fire times (epoch millis, UTC).
pub async fn next_few(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let expression = q.str("cronExpression").ok_or_else(|| ApiError::bad_request("cronExpression is required"))?;
    let limit = q.count("limit", 3)?;
    let times =
        s.engine.next_few_schedules(expression, q.int("scheduleStartTime")?, q.int("scheduleEndTime")?, limit)?;
    json_response(&times)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchResult<T> {
    total_hits: u64,
    results: Vec<T>,
}

/// `GET /scheduler/search/executions?start=0&size=100&sort=&freeText=&query=`: recorded fires
/// (`scheduleName`, `workflowName`, `workflowId`, `state`, `scheduledTime`, `executionTime`),
/// newest first.
pub async fn executions(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_schedule_executions(
        q.str("query").unwrap_or_default(),
        q.str("freeText").unwrap_or_default(),
        &q.all("sort").join("|"),
        q.count("start", 0)?,
        q.count("size", 100)?.min(5000),
    )?;
    json_response(&SearchResult { total_hits: page.total, results: page.results })
}

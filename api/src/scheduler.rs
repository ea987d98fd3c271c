//! `/api/scheduler`: workflow schedules, as the official SDKs' scheduler clients call them.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::response::Response;
use overture_core::schedule::WorkflowSchedule;
use serde::Serialize;
use serde_json::json;

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::json_response;

/// `POST /scheduler/schedules` with a `SaveScheduleRequest`: create or replace, and answer the
/// schedule as saved (its times, and its next fire, which conductor-oss leaves out); 400 with the
/// reason for an invalid expression, zone or request.
pub async fn save(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let schedule: WorkflowSchedule = body.json(None)?;
    let (name, by) = (schedule.name.clone(), schedule.updated_by.clone());
    s.engine.save_schedule(schedule, by).await?;
    json_response(&found(&s, &name)?)
}

/// The schedule called `name`, or Conductor's 404.
fn found(s: &AppState, name: &str) -> Result<WorkflowSchedule, ApiError> {
    s.engine.schedule(name)?.ok_or_else(|| ApiError::not_found(format!("Schedule '{name}' not found")))
}

/// `GET /scheduler/schedules?workflowName=`: `List<WorkflowSchedule>`.
pub async fn list(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    json_response(&s.engine.schedules(q.str("workflowName"))?)
}

/// `GET /scheduler/schedules/{name}`: the schedule, or 404.
pub async fn get(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    json_response(&found(&s, &name)?)
}

/// `GET /scheduler/schedules/search?workflowName=&scheduleName=&paused=&start=0&size=100`:
/// `SearchResult<WorkflowSchedule>`, sorted by name; `scheduleName` matches a part of the name,
/// ignoring case. `freeText` and `sort` are accepted and, as in conductor-oss, not used.
pub async fn search(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let part = q.str("scheduleName").map(str::to_lowercase);
    let paused = match q.str("paused") {
        None => None,
        Some(_) => Some(q.bool("paused", false)?),
    };
    let mut matching: Vec<WorkflowSchedule> = s
        .engine
        .schedules(q.str("workflowName"))?
        .into_iter()
        .filter(|x| part.as_deref().is_none_or(|p| x.name.to_lowercase().contains(p)))
        .filter(|x| paused.is_none_or(|p| x.paused == p))
        .collect();
    matching.sort_by(|a, b| a.name.cmp(&b.name));
    let total_hits = matching.len() as u64;
    let results = matching.into_iter().skip(q.count("start", 0)?).take(q.count("size", 100)?.min(5000)).collect();
    json_response(&SearchResult { total_hits, results })
}

/// `PUT /scheduler/bulk/pause` and `/bulk/resume` with a list of schedule names: Conductor's
/// `BulkResponse`, a name that fails listed with why.
pub async fn bulk_pause(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    bulk(&s, body, true).await
}

/// `PUT /scheduler/bulk/resume`; see [`bulk_pause`].
pub async fn bulk_resume(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    bulk(&s, body, false).await
}

async fn bulk(s: &AppState, body: RawBody, paused: bool) -> Result<Response, ApiError> {
    let names: Vec<String> = body.json(None)?;
    if names.len() > 1000 {
        return Err(ApiError::bad_request("Cannot process more than 1000 schedules. Please use multiple requests."));
    }
    let mut errors = BTreeMap::new();
    let mut done = Vec::new();
    for name in names {
        match s.engine.pause_schedules(Some(&name), paused, None).await {
            Ok(()) => done.push(name),
            Err(e) => {
                errors.insert(name, e.to_string());
            }
        }
    }
    json_response(&json!({"bulkErrorResults": errors, "bulkSuccessfulResults": done}))
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

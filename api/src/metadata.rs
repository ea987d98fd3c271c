//! `/api/metadata`: task and workflow definitions; `/api/event`: event handlers.

use axum::Json;
use axum::extract::{Path, State};
use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};

/// `POST /metadata/taskdefs`: create or replace each definition in the list.
pub async fn create_task_defs(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    let defs: Vec<TaskDef> = body.json(None)?;
    if defs.is_empty() {
        return Err(ApiError::bad_request("TaskDef list cannot be empty"));
    }
    Ok(s.engine.put_task_defs(defs).await?)
}

/// `PUT /metadata/taskdefs`: replace one existing definition.
pub async fn update_task_def(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    Ok(s.engine.update_task_def(body.json(None)?).await?)
}

/// `GET /metadata/taskdefs`.
pub async fn task_defs(State(s): State<AppState>) -> Result<Json<Vec<TaskDef>>, ApiError> {
    Ok(Json(s.engine.task_defs()?))
}

/// `GET /metadata/taskdefs/{name}`.
pub async fn task_def(State(s): State<AppState>, Path(name): Path<String>) -> Result<Json<TaskDef>, ApiError> {
    Ok(Json(s.engine.task_def(&name)?))
}

/// `DELETE /metadata/taskdefs/{name}`.
pub async fn delete_task_def(State(s): State<AppState>, Path(name): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.delete_task_def(&name).await?)
}

/// `POST /metadata/workflow?overwrite=`: 409 if the version exists and `overwrite` is false.
pub async fn create_workflow_def(State(s): State<AppState>, q: Params, body: RawBody) -> Result<(), ApiError> {
    let def: WorkflowDef = body.json(None)?;
    Ok(s.engine.put_workflow_defs(vec![def], q.bool("overwrite", false)?).await?)
}

/// `PUT /metadata/workflow`: create or replace every definition in the list.
pub async fn update_workflow_defs(State(s): State<AppState>, body: RawBody) -> Result<Json<Value>, ApiError> {
    let defs: Vec<WorkflowDef> = body.json(None)?;
    if defs.is_empty() {
        return Err(ApiError::bad_request("WorkflowDef list cannot be empty"));
    }
    let names: Vec<String> = defs.iter().map(|d| d.name.clone()).collect();
    s.engine.put_workflow_defs(defs, true).await?;
    Ok(Json(json!({"bulkErrorResults": {}, "bulkSuccessfulResults": names})))
}

/// `GET /metadata/workflow/{name}?version=`: the version, or the latest.
pub async fn workflow_def(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Params,
) -> Result<Json<WorkflowDef>, ApiError> {
    let version = q.int("version")?.map(|v| i32::try_from(v).unwrap_or(i32::MAX));
    Ok(Json(s.engine.workflow_def(&name, version)?))
}

/// `GET /metadata/workflow`: every version of every definition.
pub async fn workflow_defs(State(s): State<AppState>) -> Result<Json<Vec<WorkflowDef>>, ApiError> {
    Ok(Json(s.engine.workflow_defs()?))
}

/// `DELETE /metadata/workflow/{name}/{version}`.
pub async fn delete_workflow_def(
    State(s): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> Result<(), ApiError> {
    let version: i32 =
        version.parse().map_err(|_| ApiError::bad_request(format!("version must be an integer, not {version:?}")))?;
    Ok(s.engine.delete_workflow_def(&name, version).await?)
}

/// `POST /event`: adds an event handler; 409 if the name is taken.
pub async fn create_event_handler(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    Ok(s.engine.put_event_handler(body.json(None)?, true).await?)
}

/// `PUT /event`: replaces an event handler; 404 if there is none by that name.
pub async fn update_event_handler(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    Ok(s.engine.put_event_handler(body.json(None)?, false).await?)
}

/// `GET /event`: every event handler.
pub async fn event_handlers(State(s): State<AppState>) -> Result<Json<Vec<EventHandler>>, ApiError> {
    Ok(Json(s.engine.event_handlers()?))
}

/// `GET /event/{event}?activeOnly=`: the handlers listening on exactly that event (active ones
/// only unless `activeOnly=false`).
pub async fn event_handlers_for(
    State(s): State<AppState>,
    Path(event): Path<String>,
    q: Params,
) -> Result<Json<Vec<EventHandler>>, ApiError> {
    let active_only = q.bool("activeOnly", true)?;
    let handlers = s.engine.event_handlers()?;
    Ok(Json(handlers.into_iter().filter(|h| h.event == event && (h.active || !active_only)).collect()))
}

/// `DELETE /event/{name}`.
pub async fn delete_event_handler(State(s): State<AppState>, Path(name): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.delete_event_handler(&name).await?)
}

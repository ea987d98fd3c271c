//! `/api/metadata`: task and workflow definitions.

use axum::Json;
use axum::extract::{Path, State};
use overture_core::dsl::{TaskDef, WorkflowDef};
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

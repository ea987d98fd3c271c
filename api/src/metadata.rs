//! `/api/metadata`: task and workflow definitions; `/api/event`: event handlers.

use std::collections::{BTreeMap, BTreeSet};

use axum::Json;
use axum::extract::{Path, State};
use axum::response::Response;
use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use serde::Serialize;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::{AppState, json_response};

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

/// Conductor's `WorkflowDefSummary`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Summary<'a> {
    name: &'a str,
    version: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    create_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_time: Option<i64>,
}

impl<'a> Summary<'a> {
    fn of(def: &'a WorkflowDef) -> Summary<'a> {
        Summary {
            name: &def.name,
            version: def.version,
            create_time: def.audit.create_time,
            update_time: def.audit.update_time,
        }
    }
}

/// `GET /metadata/workflow/names`: every definition name, sorted, once.
pub async fn workflow_names(State(s): State<AppState>) -> Result<Json<Vec<String>>, ApiError> {
    let names: BTreeSet<String> = s.engine.workflow_defs()?.into_iter().map(|d| d.name).collect();
    Ok(Json(names.into_iter().collect()))
}

/// `GET /metadata/workflow/names-and-versions`: name → the summaries of its versions, oldest first.
pub async fn workflow_names_and_versions(State(s): State<AppState>) -> Result<Response, ApiError> {
    let defs = s.engine.workflow_defs()?;
    let mut by_name: BTreeMap<&str, Vec<Summary<'_>>> = BTreeMap::new();
    for def in &defs {
        by_name.entry(&def.name).or_default().push(Summary::of(def));
    }
    for versions in by_name.values_mut() {
        versions.sort_by_key(|s| s.version);
    }
    json_response(&by_name)
}

/// `GET /metadata/workflow/latest-versions`: the latest version of each definition, whole.
pub async fn workflow_latest_versions(State(s): State<AppState>) -> Result<Json<Vec<WorkflowDef>>, ApiError> {
    let mut latest: BTreeMap<String, WorkflowDef> = BTreeMap::new();
    for def in s.engine.workflow_defs()? {
        if latest.get(&def.name).is_none_or(|l| l.version < def.version) {
            latest.insert(def.name.clone(), def);
        }
    }
    Ok(Json(latest.into_values().collect()))
}

/// `GET /metadata/workflow/{name}/versions`: the summaries of its versions, oldest first; `[]`
/// for a name nobody registered, as Conductor answers.
pub async fn workflow_versions(State(s): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let mut defs: Vec<WorkflowDef> = s.engine.workflow_defs()?.into_iter().filter(|d| d.name == name).collect();
    defs.sort_by_key(|d| d.version);
    let summaries: Vec<Summary<'_>> = defs.iter().map(|d| Summary { update_time: None, ..Summary::of(d) }).collect();
    json_response(&summaries)
}

/// `POST /metadata/workflow/validate`: checks a definition as registering it would, and stores
/// nothing. 200 when it would be accepted, with `warnings` (what Overture checks beyond
/// conductor-oss, which does not stop a registration); 400 with the violations otherwise.
pub async fn validate_workflow_def(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let def: WorkflowDef = body.json(None)?;
    let warnings = s.engine.validate_workflow_def(&def)?;
    json_response(&json!({ "warnings": warnings }))
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

/// `POST /event`: adds an event handler; 409 if the name is taken. The body is one handler, or a
/// list of them (the JavaScript SDK's `addEventHandler` sends a list of one), added in order.
pub async fn create_event_handler(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    let handlers = match body.json::<Value>(None)? {
        Value::Array(items) => items,
        one => vec![one],
    };
    if handlers.is_empty() {
        return Err(ApiError::bad_request("The event handler list is empty"));
    }
    for handler in handlers {
        let handler: EventHandler = serde_json::from_value(handler)
            .map_err(|e| ApiError::bad_request(format!("Invalid event handler: {e}")))?;
        s.engine.put_event_handler(handler, true).await?;
    }
    Ok(())
}

/// `PUT /event`: replaces an event handler; 404 if there is none by that name.
pub async fn update_event_handler(State(s): State<AppState>, body: RawBody) -> Result<(), ApiError> {
    Ok(s.engine.put_event_handler(body.json(None)?, false).await?)
}

/// `GET /event`: every event handler.
pub async fn event_handlers(State(s): State<AppState>) -> Result<Json<Vec<EventHandler>>, ApiError> {
    Ok(Json(s.engine.event_handlers()?))
}

/// `GET /event/queues` (Overture's own): every handler with its queue's state on the leader
/// (`consuming`, `handled`, `invalid`, `failed`, `lag`, `lastError`, `lastErrorTime`).
pub async fn event_handler_queues(State(s): State<AppState>) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    Ok(Json(s.engine.event_handler_queues()?))
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

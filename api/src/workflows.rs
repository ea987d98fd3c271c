//! `/api/workflow`: start, read and terminate executions.

use axum::extract::{Path, State};
use axum::response::Response;
use overture_core::dsl::StartWorkflowRequest;
use overture_core::{Object, render};

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::{json_response, text_response};

/// `POST /workflow`: start from a `StartWorkflowRequest`; answers the id as text.
pub async fn start(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let request: StartWorkflowRequest = body.json(None)?;
    Ok(text_response(s.engine.start_workflow(request).await?))
}

/// `POST /workflow/{name}?version=&correlationId=&priority=`: start with the body as input.
pub async fn start_by_name(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let input: Object = body.json(Some(Object::new()))?;
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
        external_input_payload_storage_path: None,
    };
    Ok(text_response(s.engine.start_workflow(request).await?))
}

/// `GET /workflow/{id}?includeTasks=true`.
pub async fn get(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<Response, ApiError> {
    let include_tasks = q.bool("includeTasks", true)?;
    let wf = s.engine.workflow(&id)?;
    json_response(&render::workflow(&wf, include_tasks, overture_actors::now_ms()))
}

/// `GET /workflow/{id}/status?includeOutput=&includeVariables=`.
pub async fn status(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<Response, ApiError> {
    let (output, variables) = (q.bool("includeOutput", false)?, q.bool("includeVariables", false)?);
    let wf = s.engine.workflow(&id)?;
    json_response(&render::status(&wf, output, variables))
}

/// `DELETE /workflow/{id}?reason=`: terminate.
pub async fn terminate(State(s): State<AppState>, Path(id): Path<String>, q: Params) -> Result<(), ApiError> {
    Ok(s.engine.terminate(&id, q.str("reason").map(str::to_owned)).await?)
}

//! `/api/environment` and `/api/secrets`: the variables `${workflow.env.NAME}` and
//! `${workflow.secrets.NAME}` read, replicated like definitions.
//!
//! conductor-oss reads both from its process environment (`CONDUCTOR_ENV_*`,
//! `CONDUCTOR_SECRET_*`), read-only; Overture stores them, with the write routes of Orkes'
//! clients (`PUT`/`DELETE /environment/{key}`, `PUT`/`DELETE /secrets/{key}`). A secret's value
//! is never answered: `GET /secrets/{key}` is refused with 403, and lists give names only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use overture_raft::types::VariableKind;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::input::RawBody;
use crate::{AppState, json_response, text_response};

/// A variable's value from a request body: the raw text, or the string a JSON string holds (the
/// clients send either).
fn value_of(body: &RawBody) -> Result<String, ApiError> {
    let text = body.text()?;
    Ok(serde_json::from_str::<String>(&text).unwrap_or(text))
}

/// `GET /environment`: `[{name, value}]`, by name.
pub async fn environment(State(s): State<AppState>) -> Result<Response, ApiError> {
    let vars: Vec<Value> =
        s.engine.environment()?.into_iter().map(|(name, value)| json!({"name": name, "value": value})).collect();
    json_response(&vars)
}

/// `GET /environment/{key}`: the value as text; empty when there is none, as conductor-oss answers.
pub async fn env_var(State(s): State<AppState>, Path(key): Path<String>) -> Result<Response, ApiError> {
    Ok(text_response(s.engine.env_var(&key)?.unwrap_or_default()))
}

/// `PUT /environment/{key}` with the value as the body.
pub async fn put_env_var(State(s): State<AppState>, Path(key): Path<String>, body: RawBody) -> Result<(), ApiError> {
    Ok(s.engine.put_variable(VariableKind::Env, &key, value_of(&body)?).await?)
}

/// `DELETE /environment/{key}`: 404 if there is none.
pub async fn delete_env_var(State(s): State<AppState>, Path(key): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.delete_variable(VariableKind::Env, &key).await?)
}

/// `GET /secrets` (and Orkes' `POST /secrets`): the names of every secret, sorted.
pub async fn secret_names(State(s): State<AppState>) -> Result<Json<Vec<String>>, ApiError> {
    Ok(Json(s.engine.variable_names(VariableKind::Secret)?))
}

/// `GET /secrets/v2`: `[{name, partial}]`, where `partial` shows nothing of the value.
pub async fn secret_metadata(State(s): State<AppState>) -> Result<Response, ApiError> {
    let names = s.engine.variable_names(VariableKind::Secret)?;
    json_response(&names.into_iter().map(|name| json!({"name": name, "partial": "..."})).collect::<Vec<_>>())
}

/// `GET /secrets/{key}`: refused. A secret is used only inside a task's input, as
/// `${workflow.secrets.NAME}`; no read answers its value.
pub async fn secret(Path(key): Path<String>) -> Result<Response, ApiError> {
    Err(ApiError::new(
        StatusCode::FORBIDDEN,
        format!("The value of secret {key:?} is never returned; use ${{workflow.secrets.{key}}} in a task's input"),
    ))
}

/// `GET /secrets/{key}/exists`: `true` or `false`.
pub async fn secret_exists(State(s): State<AppState>, Path(key): Path<String>) -> Result<Json<bool>, ApiError> {
    Ok(Json(s.engine.secret_exists(&key)?))
}

/// `PUT /secrets/{key}` with the value as the body; 400 if it is empty.
pub async fn put_secret(
    State(s): State<AppState>,
    Path(key): Path<String>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let value = value_of(&body)?;
    if value.is_empty() {
        return Err(ApiError::bad_request("value is required"));
    }
    s.engine.put_variable(VariableKind::Secret, &key, value).await?;
    Ok(StatusCode::OK.into_response())
}

/// `DELETE /secrets/{key}`: 404 if there is none.
pub async fn delete_secret(State(s): State<AppState>, Path(key): Path<String>) -> Result<(), ApiError> {
    Ok(s.engine.delete_variable(VariableKind::Secret, &key).await?)
}

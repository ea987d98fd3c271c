//! `/api/admin`: pending tasks of a type, requeue (a decision now), the consistency check, the
//! configuration; `/api/version`.

use axum::extract::{Path, State};
use axum::response::Response;
use overture_actors::SearchRequest;
use overture_core::Command;

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::{json_response, text_response};

/// A text value quoted for a search query.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `GET /admin/task/{type}?start=0&count=100`: the type's tasks that have not ended (SCHEDULED
/// or IN_PROGRESS), oldest first, as `List<Task>`.
pub async fn pending_tasks(
    State(s): State<AppState>,
    Path(task_type): Path<String>,
    q: Params,
) -> Result<Response, ApiError> {
    let request = SearchRequest {
        query: format!("taskType = {} AND status IN (SCHEDULED, IN_PROGRESS)", quoted(&task_type)),
        free_text: String::new(),
        sort: "scheduledTime:ASC".into(),
        start: q.count("start", 0)?,
        size: q.count("count", 100)?.min(overture_actors::search::MAX_PAGE_SIZE),
    };
    let page = s.engine.search_tasks(&request).await?;
    let tasks = crate::search::task_models(&s, &page.results).await?;
    json_response(&tasks)
}

/// `POST /admin/sweep/requeue/{workflowId}`: Conductor pushes the workflow to its decider queue;
/// here the workflow decides now. Text `true.<id>`.
pub async fn sweep(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.engine.operate(&id, Command::Decide).await?;
    Ok(text_response(format!("true.{id}")))
}

/// `POST /admin/consistency/verifyAndRepair/{workflowId}`: queue entries and timers are derived
/// from the state in the same write, so there is nothing to repair; `true` once the workflow is
/// known to exist (404 otherwise).
pub async fn verify_and_repair(State(s): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.engine.workflow(&id)?;
    Ok(text_response("true".into()))
}

/// `POST /admin/backup?name=`: backs this node up into `<data_dir>/backups/<name>` (a name of
/// letters, digits, `.`, `_` and `-`; by default `backup-` and the time), once it holds every
/// write acknowledged before the call. Answers where, and the backup's manifest.
pub async fn backup(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let name = match q.str("name") {
        Some(name) => name.to_owned(),
        None => {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            let at = chrono::DateTime::from_timestamp_millis(now.as_millis() as i64).unwrap_or_default();
            at.format("backup-%Y%m%dT%H%M%S%.3fZ").to_string()
        }
    };
    let valid = name.len() <= 100
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if name.is_empty() || !valid {
        return Err(ApiError::bad_request(format!(
            "a backup name has 1 to 100 ASCII letters, digits, '.', '_' or '-' and does not start with '.': {name:?}"
        )));
    }
    let (dir, manifest) = s.engine.backup(&name).await?;
    json_response(&serde_json::json!({"path": dir.display().to_string(), "manifest": manifest}))
}

/// `GET /admin/config`: what this node runs.
pub async fn config(State(s): State<AppState>) -> Result<Response, ApiError> {
    let status = s.engine.cluster_status();
    json_response(&serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "server": "overture",
        "nodeId": status.node_id,
        "members": status.members.len(),
        "maxBodyBytes": s.max_body_bytes,
        "externalPayloadStorage": s.engine.payload_storage().kind(),
    }))
}

/// `GET /version`: text.
pub async fn version() -> Response {
    text_response(env!("CARGO_PKG_VERSION").into())
}

/// `GET /admin/queues?verbose=false`: the event queues of the active event handlers, event →
/// queue name (`conductor:wf:ref` listens on queue `wf:ref`); with `verbose`, event → {queue:
/// messages waiting}. A `conductor` message is handled as it is published, so none waits.
pub async fn event_queues(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let verbose = q.bool("verbose", false)?;
    let mut out = serde_json::Map::new();
    for handler in s.engine.event_handlers()?.into_iter().filter(|h| h.active) {
        let queue = handler.event.split_once(':').map_or(handler.event.as_str(), |(_, rest)| rest).to_owned();
        let value = if verbose { serde_json::json!({ queue: 0 }) } else { serde_json::Value::String(queue) };
        out.insert(handler.event.clone(), value);
    }
    json_response(&out)
}

/// `GET /queue/`: the default event queues by the task status their messages carry
/// (conductor-oss's QueueAdminResource); `{}` when none are configured, as in a stock
/// conductor-oss.
pub async fn default_queues(State(s): State<AppState>) -> Result<Response, ApiError> {
    json_response(&s.engine.default_event_queues())
}

/// `GET /queue/size`: messages waiting on each default event queue, by name (answered by the
/// leader, whose consumers count them).
pub async fn default_queue_sizes(State(s): State<AppState>) -> Result<Response, ApiError> {
    json_response(&s.engine.default_event_queue_sizes())
}

/// `POST /queue/update/{workflowId}/{taskRefName}/{status}` and
/// `/queue/update/{workflowId}/task/{taskId}/{status}`: publish a task status message (the
/// body, a JSON object, with `externalId` naming the task) to the default event queue of that
/// status; 400 when there is none, as conductor-oss answers.
pub async fn update_by_status_queue(
    State(s): State<AppState>,
    Path(path): Path<Vec<(String, String)>>,
    body: RawBody,
) -> Result<Response, ApiError> {
    let get = |k: &str| path.iter().find(|(name, _)| name == k).map(|(_, v)| v.as_str());
    let body: serde_json::Map<String, serde_json::Value> = body.json(Some(Default::default()))?;
    let task = (get("taskRefName"), get("taskId"));
    s.engine
        .publish_task_status(get("workflowId").unwrap_or_default(), task, get("status").unwrap_or(""), body)
        .await?;
    Ok(text_response(String::new()))
}

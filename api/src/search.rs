//! Searches and listings: `/api/workflow/search` (and `-v2`, `-by-tasks`), `/api/tasks/search`
//! (and `-v2`), the correlation listings and `/api/workflow/running/{name}`.
//!
//! `SearchResult<T>` is `{totalHits, results}`. Summaries carry ISO times and Java-style
//! input/output strings; the `-v2` forms carry full `Workflow` (without tasks) and `Task` models.

use axum::extract::{Path, State};
use axum::response::Response;
use overture_actors::SearchRequest;
use overture_core::{WorkflowId, render};
use serde::Serialize;

use crate::AppState;
use crate::error::ApiError;
use crate::input::{Params, RawBody};
use crate::json_response;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchResult<T> {
    total_hits: u64,
    results: Vec<T>,
}

fn request(q: &Params) -> Result<SearchRequest, ApiError> {
    Ok(SearchRequest {
        query: q.str("query").unwrap_or_default().to_owned(),
        free_text: q.str("freeText").unwrap_or_default().to_owned(),
        sort: q.all("sort").join("|"),
        start: q.count("start", 0)?,
        size: q.count("size", 100)?,
    })
}

/// Found tasks as Conductor's `Task` models, read with their workflows.
pub(crate) async fn task_models(
    s: &AppState,
    found: &[overture_raft::search::FoundTask],
) -> Result<Vec<serde_json::Value>, ApiError> {
    let mut ids: Vec<WorkflowId> = found.iter().map(|t| t.workflow.workflow_id.clone()).collect();
    ids.sort();
    ids.dedup();
    let workflows = s.engine.workflows(ids).await?;
    let now = overture_actors::now_ms();
    Ok(found
        .iter()
        .filter_map(|f| {
            let wf = workflows.iter().find(|w| w.header.workflow_id == f.workflow.workflow_id)?;
            let task = wf.tasks.iter().find(|t| t.task_id == f.task.task_id)?;
            serde_json::to_value(render::task(wf, task, now)).ok()
        })
        .collect())
}

/// `GET /workflow/search`: `SearchResult<WorkflowSummary>`.
pub async fn workflows(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_workflows(&request(&q)?).await?;
    json_response(&SearchResult {
        total_hits: page.total,
        results: page.results.iter().map(render::workflow_summary).collect(),
    })
}

/// `GET /workflow/search-v2`: `SearchResult<Workflow>`, without tasks.
pub async fn workflows_v2(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_workflows(&request(&q)?).await?;
    full_workflows(&s, page.total, page.results.into_iter().map(|h| h.workflow_id).collect()).await
}

/// `GET /workflow/search-by-tasks`: `SearchResult<WorkflowSummary>` of workflows with a task
/// matching the (task) query.
pub async fn workflows_by_tasks(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_workflows_by_tasks(&request(&q)?).await?;
    json_response(&SearchResult {
        total_hits: page.total,
        results: page.results.iter().map(render::workflow_summary).collect(),
    })
}

/// `GET /workflow/search-by-tasks-v2`: as above with `Workflow` models.
pub async fn workflows_by_tasks_v2(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_workflows_by_tasks(&request(&q)?).await?;
    full_workflows(&s, page.total, page.results.into_iter().map(|h| h.workflow_id).collect()).await
}

async fn full_workflows(s: &AppState, total: u64, ids: Vec<WorkflowId>) -> Result<Response, ApiError> {
    let found = s.engine.workflows(ids).await?;
    let now = overture_actors::now_ms();
    json_response(&SearchResult {
        total_hits: total,
        results: found.iter().map(|w| render::workflow(w, false, now)).collect(),
    })
}

/// `GET /tasks/search`: `SearchResult<TaskSummary>`.
pub async fn tasks(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_tasks(&request(&q)?).await?;
    json_response(&SearchResult {
        total_hits: page.total,
        results: page.results.iter().map(|t| render::task_summary(&t.workflow, &t.task)).collect(),
    })
}

/// `GET /tasks/search-v2`: `SearchResult<Task>`.
pub async fn tasks_v2(State(s): State<AppState>, q: Params) -> Result<Response, ApiError> {
    let page = s.engine.search_tasks(&request(&q)?).await?;
    let results = task_models(&s, &page.results).await?;
    json_response(&SearchResult { total_hits: page.total, results })
}

/// `GET /workflow/{name}/correlated/{correlationId}?includeClosed=false&includeTasks=false`:
/// `List<Workflow>`.
pub async fn correlated(
    State(s): State<AppState>,
    Path((name, correlation_id)): Path<(String, String)>,
    q: Params,
) -> Result<Response, ApiError> {
    let (closed, tasks) = (q.bool("includeClosed", false)?, q.bool("includeTasks", false)?);
    let found = s.engine.correlated(&name, vec![correlation_id], closed).await?;
    let now = overture_actors::now_ms();
    let list: Vec<_> = found.values().flatten().map(|w| render::workflow(w, tasks, now)).collect();
    json_response(&list)
}

/// `POST /workflow/{name}/correlated?includeClosed=&includeTasks=` with a list of correlation
/// ids: `{correlationId: [Workflow]}`.
pub async fn correlated_many(
    State(s): State<AppState>,
    Path(name): Path<String>,
    q: Params,
    body: RawBody,
) -> Result<Response, ApiError> {
    let (closed, tasks) = (q.bool("includeClosed", false)?, q.bool("includeTasks", false)?);
    let ids: Vec<String> = body.json(None)?;
    let found = s.engine.correlated(&name, ids, closed).await?;
    let now = overture_actors::now_ms();
    let map: std::collections::BTreeMap<&str, Vec<_>> = found
        .iter()
        .map(|(cid, list)| (cid.as_str(), list.iter().map(|w| render::workflow(w, tasks, now)).collect()))
        .collect();
    json_response(&map)
}

/// `GET /workflow/running/{name}?version=1&startTime=&endTime=`: ids of RUNNING executions of
/// that version (Conductor's default is version 1, not the latest), or with both times non-zero,
/// of every execution of that version started between them.
pub async fn running(State(s): State<AppState>, Path(name): Path<String>, q: Params) -> Result<Response, ApiError> {
    let version = q.int("version")?.unwrap_or(1);
    let version = i32::try_from(version)
        .map_err(|_| ApiError::bad_request(format!("query parameter version is out of range: {version}")))?;
    let range = match (q.int("startTime")?.unwrap_or(0), q.int("endTime")?.unwrap_or(0)) {
        (0, _) | (_, 0) => None,
        (from, to) => Some((from, to)),
    };
    json_response(&s.engine.running_ids(&name, version, range).await?)
}

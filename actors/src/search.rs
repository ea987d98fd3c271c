//! Searches and listings of executions, from this node's replica: Conductor's `/search`
//! endpoints, the correlation and running listings. They read, never propose, and run on the
//! blocking pool since a search may read many rows.

use std::collections::BTreeMap;

use overture_core::search::{Condition, Fields, Literal, Op, Query, Sort, TASK_FIELDS, WORKFLOW_FIELDS};
use overture_core::{WorkflowHeader, WorkflowId, WorkflowState, WorkflowStatus};
use overture_raft::ReadView;
use overture_raft::search::{FoundTask, Page, Window};
use tracing::Instrument;

use crate::Engine;
use crate::error::Error;
use crate::names;

/// Conductor's largest page.
pub const MAX_PAGE_SIZE: usize = 5000;

/// A search as Conductor's `/search` endpoints take it.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// Conditions (`status = 'FAILED' AND startTime > …`); empty for all.
    pub query: String,
    /// Words that must appear; `*` or empty for all.
    pub free_text: String,
    /// `field:ASC|field:DESC`; empty for newest first.
    pub sort: String,
    /// Offset of the first result.
    pub start: usize,
    /// Results per page, at most [`MAX_PAGE_SIZE`].
    pub size: usize,
}

impl SearchRequest {
    fn parse(&self, fields: Fields, default_sort: &str) -> Result<(Query, Sort, Window), Error> {
        if self.size > MAX_PAGE_SIZE {
            return Err(Error::BadRequest(format!(
                "Cannot return more than {MAX_PAGE_SIZE} results per page; size was {}",
                self.size
            )));
        }
        let query = Query::parse(&self.query, &self.free_text, fields).map_err(Error::BadRequest)?;
        let sort_text = if self.sort.trim().is_empty() { default_sort } else { &self.sort };
        let sort = Sort::parse(sort_text, fields).map_err(Error::BadRequest)?;
        Ok((query, sort, Window { start: self.start, size: self.size }))
    }
}

fn text(field: &'static str, value: &str) -> Condition {
    Condition { field, op: Op::Eq, values: vec![Literal::Text(value.to_owned())] }
}

fn number(field: &'static str, op: Op, value: i64) -> Condition {
    Condition { field, op, values: vec![Literal::Number(value)] }
}

impl Engine {
    /// Runs `f` on a clone of the read view on the blocking pool, timing it as `kind`.
    async fn read_blocking<T: Send + 'static>(
        &self,
        kind: &'static str,
        f: impl FnOnce(&ReadView) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let read = self.replica().read().clone();
        let started = std::time::Instant::now();
        let span = tracing::debug_span!("search", kind);
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| f(&read)))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| Error::Internal(format!("search task: {e}")))?;
        metrics::histogram!(names::SEARCH_SECONDS, "kind" => kind).record(started.elapsed().as_secs_f64());
        result
    }

    /// `GET /workflow/search`: workflows matching a search, newest first unless sorted.
    pub async fn search_workflows(&self, request: &SearchRequest) -> Result<Page<WorkflowHeader>, Error> {
        let (query, sort, window) = request.parse(WORKFLOW_FIELDS, "startTime:DESC")?;
        self.read_blocking("workflows", move |read| Ok(read.search_workflows(&query, &sort, window)?)).await
    }

    /// `GET /workflow/search-by-tasks`: workflows with a task matching a task search.
    pub async fn search_workflows_by_tasks(&self, request: &SearchRequest) -> Result<Page<WorkflowHeader>, Error> {
        let (query, _, window) = request.parse(TASK_FIELDS, "")?;
        let sort_text = if request.sort.trim().is_empty() { "startTime:DESC" } else { &request.sort };
        let sort = Sort::parse(sort_text, WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
        self.read_blocking("workflows_by_tasks", move |read| Ok(read.search_workflows_by_tasks(&query, &sort, window)?))
            .await
    }

    /// `GET /tasks/search`: tasks matching a search, most recently scheduled first unless sorted.
    pub async fn search_tasks(&self, request: &SearchRequest) -> Result<Page<FoundTask>, Error> {
        let (query, sort, window) = request.parse(TASK_FIELDS, "scheduledTime:DESC")?;
        self.read_blocking("tasks", move |read| Ok(read.search_tasks(&query, &sort, window)?)).await
    }

    /// Executions (with their tasks) for `ids`, in order, skipping any removed meanwhile.
    pub async fn workflows(&self, ids: Vec<WorkflowId>) -> Result<Vec<WorkflowState>, Error> {
        self.read_blocking("load", move |read| {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(read.workflow(&id)?);
            }
            Ok(out)
        })
        .await
    }

    /// `GET /workflow/{name}/correlated/{cid}` and its POST form: per correlation id, the
    /// executions of `name` with it, oldest first; only RUNNING ones unless `include_closed`.
    pub async fn correlated(
        &self,
        name: &str,
        correlation_ids: Vec<String>,
        include_closed: bool,
    ) -> Result<BTreeMap<String, Vec<WorkflowState>>, Error> {
        let name = name.to_owned();
        self.read_blocking("correlated", move |read| {
            let sort = Sort::parse("startTime:ASC", WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
            let mut out = BTreeMap::new();
            for cid in correlation_ids {
                let mut conditions = vec![text("correlationId", &cid), text("workflowType", &name)];
                if !include_closed {
                    conditions.push(text("status", WorkflowStatus::Running.as_str()));
                }
                let page = read.search_workflows(&Query::all_of(conditions), &sort, Window::ALL)?;
                let mut found = Vec::with_capacity(page.results.len());
                for h in page.results {
                    found.extend(read.workflow(&h.workflow_id)?);
                }
                out.insert(cid, found);
            }
            Ok(out)
        })
        .await
    }

    /// `GET /workflow/running/{name}?version=&startTime=&endTime=`: ids of RUNNING executions of
    /// one version, or, with both times, of executions of that version started between them.
    pub async fn running_ids(
        &self,
        name: &str,
        version: i32,
        time_range: Option<(i64, i64)>,
    ) -> Result<Vec<WorkflowId>, Error> {
        let mut conditions = vec![text("workflowType", name), number("version", Op::Eq, i64::from(version))];
        match time_range {
            Some((from, to)) => {
                conditions.push(number("startTime", Op::Ge, from));
                conditions.push(number("startTime", Op::Le, to));
            }
            None => conditions.push(text("status", WorkflowStatus::Running.as_str())),
        }
        self.read_blocking("running", move |read| {
            let sort = Sort::parse("startTime:ASC", WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
            let page = read.search_workflows(&Query::all_of(conditions), &sort, Window::ALL)?;
            Ok(page.results.into_iter().map(|h| h.workflow_id).collect())
        })
        .await
    }
}

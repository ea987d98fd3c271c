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
    /// Runs `f` on the read view of every group that holds workflows (one, or each partition's
    /// replica on this node), on the blocking pool, timing it as `kind`; answers each group's
    /// result, in group order.
    async fn read_blocking<T: Send + 'static>(
        &self,
        kind: &'static str,
        f: impl Fn(&ReadView) -> Result<T, Error> + Send + 'static,
    ) -> Result<Vec<T>, Error> {
        let reads = self.workflow_reads();
        let started = std::time::Instant::now();
        let span = tracing::debug_span!("search", kind, groups = reads.len());
        let result = tokio::task::spawn_blocking(move || span.in_scope(|| reads.iter().map(&f).collect()))
            .instrument(tracing::Span::current())
            .await
            .map_err(|e| Error::Internal(format!("search task: {e}")))?;
        metrics::histogram!(names::SEARCH_SECONDS, "kind" => kind).record(started.elapsed().as_secs_f64());
        result
    }

    /// The window each group is searched with: the request's own with one group; with several,
    /// every match up to the window's end, which [`merge`] cuts the window from.
    fn window_per_group(&self, window: Window) -> Window {
        if self.partitioned() { Window { start: 0, size: window.start.saturating_add(window.size) } } else { window }
    }

    /// `GET /workflow/search`: workflows matching a search, newest first unless sorted.
    pub async fn search_workflows(&self, request: &SearchRequest) -> Result<Page<WorkflowHeader>, Error> {
        let (query, sort, window) = request.parse(WORKFLOW_FIELDS, "startTime:DESC")?;
        let per_group = self.window_per_group(window);
        let order = sort.clone();
        let pages =
            self.read_blocking("workflows", move |read| Ok(read.search_workflows(&query, &sort, per_group)?)).await?;
        Ok(merge(pages, window, |a, b| order.compare(a, b).then_with(|| a.workflow_id.cmp(&b.workflow_id))))
    }

    /// `GET /workflow/search-by-tasks`: workflows with a task matching a task search.
    pub async fn search_workflows_by_tasks(&self, request: &SearchRequest) -> Result<Page<WorkflowHeader>, Error> {
        let (query, _, window) = request.parse(TASK_FIELDS, "")?;
        let sort_text = if request.sort.trim().is_empty() { "startTime:DESC" } else { &request.sort };
        let sort = Sort::parse(sort_text, WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
        let per_group = self.window_per_group(window);
        let order = sort.clone();
        let pages = self
            .read_blocking("workflows_by_tasks", move |read| {
                Ok(read.search_workflows_by_tasks(&query, &sort, per_group)?)
            })
            .await?;
        Ok(merge(pages, window, |a, b| order.compare(a, b).then_with(|| a.workflow_id.cmp(&b.workflow_id))))
    }

    /// `GET /tasks/search`: tasks matching a search, most recently scheduled first unless sorted.
    pub async fn search_tasks(&self, request: &SearchRequest) -> Result<Page<FoundTask>, Error> {
        let (query, sort, window) = request.parse(TASK_FIELDS, "scheduledTime:DESC")?;
        let per_group = self.window_per_group(window);
        let order = sort.clone();
        let pages = self.read_blocking("tasks", move |read| Ok(read.search_tasks(&query, &sort, per_group)?)).await?;
        Ok(merge(pages, window, |a, b| order.compare(a, b).then_with(|| a.task.task_id.cmp(&b.task.task_id))))
    }

    /// Executions (with their tasks) for `ids`, in order, skipping any removed meanwhile.
    pub async fn workflows(&self, ids: Vec<WorkflowId>) -> Result<Vec<WorkflowState>, Error> {
        let engine = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                out.extend(engine.read_of(&id).workflow(&id)?);
            }
            Ok(out)
        })
        .await
        .map_err(|e| Error::Internal(format!("search task: {e}")))?
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
        let found = self
            .read_blocking("correlated", move |read| {
                let sort = Sort::parse("startTime:ASC", WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
                let mut out = Vec::new();
                for cid in &correlation_ids {
                    let mut conditions = vec![text("correlationId", cid), text("workflowType", &name)];
                    if !include_closed {
                        conditions.push(text("status", WorkflowStatus::Running.as_str()));
                    }
                    let page = read.search_workflows(&Query::all_of(conditions), &sort, Window::ALL)?;
                    let mut found = Vec::with_capacity(page.results.len());
                    for h in page.results {
                        found.extend(read.workflow(&h.workflow_id)?);
                    }
                    out.push((cid.clone(), found));
                }
                Ok(out)
            })
            .await?;
        let mut out: BTreeMap<String, Vec<WorkflowState>> = BTreeMap::new();
        for (cid, found) in found.into_iter().flatten() {
            out.entry(cid).or_default().extend(found);
        }
        for found in out.values_mut() {
            found.sort_by(|a, b| {
                (a.header.create_time, &a.header.workflow_id).cmp(&(b.header.create_time, &b.header.workflow_id))
            });
        }
        Ok(out)
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
        let pages = self
            .read_blocking("running", move |read| {
                let sort = Sort::parse("startTime:ASC", WORKFLOW_FIELDS).map_err(Error::BadRequest)?;
                Ok(read.search_workflows(&Query::all_of(conditions.clone()), &sort, Window::ALL)?)
            })
            .await?;
        let merged =
            merge(pages, Window::ALL, |a, b| (a.create_time, &a.workflow_id).cmp(&(b.create_time, &b.workflow_id)));
        Ok(merged.results.into_iter().map(|h| h.workflow_id).collect())
    }
}

/// One page of the matches of several groups' pages, each holding its group's first
/// `window.start + window.size` matches in the same order: the groups' totals summed, their
/// matches merged in `order`, the window cut from the merge. With one group, that group's page
/// as it is (searched with the window itself, see [`Engine::window_per_group`]).
fn merge<T>(mut pages: Vec<Page<T>>, window: Window, order: impl Fn(&T, &T) -> std::cmp::Ordering) -> Page<T> {
    if pages.len() == 1
        && let Some(page) = pages.pop()
    {
        return page;
    }
    let total = pages.iter().map(|p| p.total).sum();
    let mut results: Vec<T> = pages.into_iter().flat_map(|p| p.results).collect();
    results.sort_by(&order);
    Page { total, results: results.into_iter().skip(window.start).take(window.size).collect() }
}

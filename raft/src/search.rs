//! Search over the replica's own rows: candidates from the index families, matching and order
//! from the core's [`overture_core::search`].
//!
//! Index rows are written in the same batch as the state they describe, so a search on the
//! leader sees every committed change, and one on a follower sees what it has applied.
//!
//! Workflows: the most selective of `workflowId`, `correlationId`, `workflowType` and `status`
//! (each `=` or `IN`) picks the `wf_index` prefixes to read, bounded by the `startTime` range.
//! When those rows answer the whole query and the order is by start time, the page is cut from
//! the index keys alone and only its workflows are read; otherwise every candidate is read and
//! matched. Tasks: by `taskId`, `workflowId`, `taskType` (the `task_index` family), or else
//! every task.

use std::collections::{HashMap, HashSet};
use std::io;

use overture_core::search::{Query, Sort, TaskDoc};
use overture_core::{TaskState, WorkflowHeader, WorkflowId};
use rocksdb::{Direction, IteratorMode, ReadOptions};

use crate::codec::decode;
use crate::keys::{self, TaskRef, index};
use crate::read::ReadView;
use crate::{cf, io_err};

/// One page of results and how many matched in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// Matches in all, across pages.
    pub total: u64,
    /// The matches in this window, in the search's sort order.
    pub results: Vec<T>,
}

/// Where results start and how many to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Number of matches to skip before the first one returned (Conductor's `start`).
    pub start: usize,
    /// Most matches to return (Conductor's `size`).
    pub size: usize,
}

impl Window {
    /// Every result.
    pub const ALL: Window = Window { start: 0, size: usize::MAX };

    fn cut<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().skip(self.start).take(self.size).collect()
    }
}

/// A task found by a task search, with its workflow's header.
#[derive(Debug, Clone)]
pub struct FoundTask {
    /// Header of the workflow the task belongs to, shared by its tasks found in one search.
    pub workflow: std::sync::Arc<WorkflowHeader>,
    /// The task as stored in its `wf_tasks` row.
    pub task: TaskState,
}

impl ReadView {
    /// A workflow's header alone.
    pub fn workflow_header(&self, id: &str) -> Result<Option<WorkflowHeader>, io::Error> {
        self.shared.load_header(id)
    }

    /// Workflows matching `query`, in `sort` order (ties by workflow id), one window of them.
    pub fn search_workflows(
        &self,
        query: &Query,
        sort: &Sort,
        window: Window,
    ) -> Result<Page<WorkflowHeader>, io::Error> {
        let by_start = sort.by_only("startTime");
        if let Some(ids) = query.equals("workflowId") {
            let unique: HashSet<&str> = ids.into_iter().collect();
            let mut found = Vec::new();
            for id in unique {
                if let Some(h) = self.workflow_header(id)?.filter(|h| query.matches(h)) {
                    found.push(h);
                }
            }
            return Ok(sorted_page(found, sort, window, |h| h.workflow_id.as_str()));
        }
        let (mut prefixes, indexed) = workflow_prefixes(query);
        let range = query.range("startTime");
        if let Some(descending) = by_start
            && query.answered_by(&indexed, "startTime")
        {
            return self.index_page(&mut prefixes, range, descending, window);
        }
        let mut keys: Vec<(i64, String)> = Vec::new();
        for prefix in &prefixes {
            self.scan_index(prefix, range, false, |start, id| {
                keys.push((start, id.to_owned()));
                true
            })?;
        }
        keys.sort_unstable();
        keys.dedup();
        let mut found = Vec::new();
        for (_, id) in keys {
            if let Some(h) = self.workflow_header(&id)?.filter(|h| query.matches(h)) {
                found.push(h);
            }
        }
        Ok(sorted_page(found, sort, window, |h| h.workflow_id.as_str()))
    }

    /// A page in start order cut from index keys alone. The prefixes' sets are disjoint (one
    /// status, type or correlation id per workflow), so the total is the count of their keys;
    /// of each only the first `start + size` in the page's order are kept (with any ties at the
    /// cut, so ties order by id as a full sort would), and only the page's workflows are read.
    fn index_page(
        &self,
        prefixes: &mut Vec<Vec<u8>>,
        range: (i64, i64),
        descending: bool,
        window: Window,
    ) -> Result<Page<WorkflowHeader>, io::Error> {
        prefixes.sort_unstable();
        prefixes.dedup();
        let wanted = window.start.saturating_add(window.size);
        // Over all time, a counted prefix's size is known without a scan.
        let counted = if range == (i64::MIN, i64::MAX) { self.index_count(prefixes)? } else { None };
        let mut total = 0u64;
        let mut keys: Vec<(i64, String)> = Vec::new();
        for prefix in prefixes.iter() {
            let mut kept = 0usize;
            let mut last_start = None;
            self.scan_index(prefix, range, descending, |start, id| {
                total += 1;
                if kept < wanted || last_start == Some(start) {
                    keys.push((start, id.to_owned()));
                    kept += 1;
                    last_start = Some(start);
                    true
                } else {
                    counted.is_none()
                }
            })?;
        }
        let total = counted.unwrap_or(total);
        if descending {
            keys.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        } else {
            keys.sort_unstable();
        }
        let mut results = Vec::new();
        for (_, id) in window.cut(keys) {
            results.extend(self.workflow_header(&id)?);
        }
        Ok(Page { total, results })
    }

    /// Up to `limit` workflows with one of `statuses`, oldest start first among those started in
    /// `[lo, hi]`: a walk of the index rows alone (retention uses it).
    pub fn workflows_started_between(
        &self,
        statuses: &[&str],
        (lo, hi): (i64, i64),
        limit: usize,
    ) -> Result<Vec<String>, io::Error> {
        let mut keys: Vec<(i64, String)> = Vec::new();
        for status in statuses {
            let prefix = keys::workflow_index_prefix(index::STATUS, &[status]);
            let mut taken = 0;
            self.scan_index(&prefix, (lo, hi), false, |start, id| {
                keys.push((start, id.to_owned()));
                taken += 1;
                taken < limit
            })?;
        }
        keys.sort_unstable();
        Ok(keys.into_iter().take(limit).map(|(_, id)| id).collect())
    }

    /// How many `wf_index` rows the prefixes hold together, if all are counted ones (see
    /// [`keys::counted_prefixes`]). The first call counts the rows, holding off apply meanwhile.
    fn index_count(&self, prefixes: &[Vec<u8>]) -> Result<Option<u64>, io::Error> {
        if !prefixes.iter().all(|p| keys::is_counted_prefix(p)) {
            return Ok(None);
        }
        let sum = |counts: &std::collections::HashMap<Vec<u8>, u64>| {
            prefixes.iter().map(|p| counts.get(p).copied().unwrap_or(0)).sum::<u64>()
        };
        if let Some(counts) = &self.shared.index_counts.lock().0 {
            return Ok(Some(sum(counts)));
        }
        // Apply holds `inner` from its first write to adding its counts: with it held, the rows
        // are exactly what the counts must say. An apply that holds it long (waiting for disk
        // space) makes this search count by scanning instead of waiting.
        let Some(mut inner) = self.shared.inner.try_lock_for(std::time::Duration::from_millis(100)) else {
            return Ok(None);
        };
        let mut state = self.shared.index_counts.lock();
        if state.0.is_none() {
            state.0 = Some(self.count_index_rows()?);
            inner.count_deltas = Some(Default::default());
        }
        Ok(state.0.as_ref().map(sum))
    }

    /// Counts every workflow's rows from the by-name-and-status rows (one per workflow).
    fn count_index_rows(&self) -> Result<std::collections::HashMap<Vec<u8>, u64>, io::Error> {
        let started = std::time::Instant::now();
        let db = &self.shared.db;
        let mut counts: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        let mut by_name_status: std::collections::HashMap<Vec<u8>, u64> = Default::default();
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound([index::TYPE_STATUS + 1]);
        options.fill_cache(false);
        let mut it = db.raw_iterator_cf_opt(cf(db, keys::CF_WF_INDEX), options);
        it.seek([index::TYPE_STATUS]);
        while let Some(key) = it.key() {
            // `n` name 0x00 status 0x00 start(8) id: count by everything up to the second 0x00.
            let fields = key.iter().enumerate().filter(|(_, b)| **b == 0).nth(1).map(|(at, _)| at + 1);
            if let Some(end) = fields {
                match by_name_status.get_mut(&key[..end]) {
                    Some(count) => *count += 1,
                    None => {
                        by_name_status.insert(key[..end].to_vec(), 1);
                    }
                }
            }
            it.next();
        }
        it.status().map_err(io_err)?;
        for (prefix, count) in by_name_status {
            let mut parts = prefix[1..].split(|b| *b == 0);
            let (Some(name), Some(status)) = (parts.next(), parts.next()) else { continue };
            let (name, status) = (String::from_utf8_lossy(name), String::from_utf8_lossy(status));
            for counted in keys::counted_prefixes(&name, &status) {
                *counts.entry(counted).or_default() += count;
            }
        }
        tracing::debug!(prefixes = counts.len(), seconds = started.elapsed().as_secs_f64(), "counted the search index");
        Ok(counts)
    }

    /// Reads the `wf_index` keys under `prefix` whose start time is in `[lo, hi]`, in start
    /// order (newest first if `descending`), while `visit` answers true.
    fn scan_index(
        &self,
        prefix: &[u8],
        (lo, hi): (i64, i64),
        descending: bool,
        mut visit: impl FnMut(i64, &str) -> bool,
    ) -> io::Result<()> {
        if hi < 0 || lo > hi {
            return Ok(());
        }
        let db = &self.shared.db;
        let mut from = prefix.to_vec();
        from.extend_from_slice(&(lo.max(0) as u64).to_be_bytes());
        let mut to = prefix.to_vec();
        match hi.checked_add(1) {
            Some(end) => to.extend_from_slice(&(end as u64).to_be_bytes()),
            None => to.extend_from_slice(&[0xFF; 9]),
        }
        let mut options = ReadOptions::default();
        options.set_iterate_lower_bound(from.clone());
        options.set_iterate_upper_bound(to.clone());
        let mode = if descending {
            IteratorMode::From(&to, Direction::Reverse)
        } else {
            IteratorMode::From(&from, Direction::Forward)
        };
        for item in db.iterator_cf_opt(cf(db, keys::CF_WF_INDEX), options, mode) {
            let (key, _) = item.map_err(io_err)?;
            if let Some((start, id)) = keys::parse_workflow_index(prefix, &key)
                && !visit(start, id)
            {
                break;
            }
        }
        Ok(())
    }

    /// RUNNING workflows per definition name (zero for names with none running), from the
    /// `wf_index` rows by name and status: one seek per name, then the running ones' keys.
    pub fn running_counts(&self) -> Result<std::collections::BTreeMap<String, u64>, io::Error> {
        let db = &self.shared.db;
        let mut out = std::collections::BTreeMap::new();
        let mut it = db.raw_iterator_cf(cf(db, keys::CF_WF_INDEX));
        it.seek([index::TYPE_STATUS]);
        while let Some(key) = it.key() {
            let Some(rest) = key.strip_prefix(&[index::TYPE_STATUS]) else { break };
            let Some(end) = rest.iter().position(|b| *b == 0) else { break };
            let name = String::from_utf8_lossy(&rest[..end]).into_owned();
            let running = keys::workflow_index_prefix(index::TYPE_STATUS, &[&name, "RUNNING"]);
            it.seek(&running);
            let mut count = 0;
            while it.key().is_some_and(|k| k.starts_with(&running)) {
                count += 1;
                it.next();
            }
            let mut next_name = vec![index::TYPE_STATUS];
            next_name.extend_from_slice(name.as_bytes());
            next_name.push(1);
            out.insert(name, count);
            it.seek(&next_name);
        }
        it.status().map_err(io_err)?;
        Ok(out)
    }

    /// Tasks matching `query`, in `sort` order (ties by task id), one window of them.
    pub fn search_tasks(&self, query: &Query, sort: &Sort, window: Window) -> Result<Page<FoundTask>, io::Error> {
        let found = self.matching_tasks(query)?;
        Ok(sorted_page(found, sort, window, |t| t.task.task_id.as_str()))
    }

    /// Workflows with a task matching `task_query`, in `sort` order, one window of them.
    pub fn search_workflows_by_tasks(
        &self,
        task_query: &Query,
        sort: &Sort,
        window: Window,
    ) -> Result<Page<WorkflowHeader>, io::Error> {
        let mut seen = HashSet::new();
        let mut found = Vec::new();
        for t in self.matching_tasks(task_query)? {
            if seen.insert(t.workflow.workflow_id.clone()) {
                found.push(WorkflowHeader::clone(&t.workflow));
            }
        }
        Ok(sorted_page(found, sort, window, |h| h.workflow_id.as_str()))
    }

    fn matching_tasks(&self, query: &Query) -> Result<Vec<FoundTask>, io::Error> {
        let db = &self.shared.db;
        let mut refs: Vec<TaskRef> = Vec::new();
        if let Some(ids) = query.equals("taskId") {
            for id in ids.into_iter().collect::<HashSet<_>>() {
                refs.extend(self.task_owner(id)?);
            }
        } else if let Some(ids) = query.equals("workflowId") {
            for id in ids.into_iter().collect::<HashSet<_>>() {
                let prefix = keys::prefix(id);
                for item in db.iterator_cf(cf(db, keys::CF_WF_TASKS), IteratorMode::From(&prefix, Direction::Forward)) {
                    let (key, value) = item.map_err(io_err)?;
                    if !key.starts_with(&prefix) {
                        break;
                    }
                    let task: TaskState = decode(&value).map_err(io_err)?;
                    refs.push(TaskRef { workflow_id: id.into(), seq: task.seq });
                }
            }
        } else if let Some(types) = query.equals("taskType") {
            for task_type in types.into_iter().collect::<HashSet<_>>() {
                refs.extend(self.scan::<TaskRef>(keys::CF_TASK_INDEX, &keys::prefix(task_type))?);
            }
        } else {
            refs = self.scan::<TaskRef>(keys::CF_TASKS, &[])?;
        }
        let mut headers: HashMap<WorkflowId, Option<std::sync::Arc<WorkflowHeader>>> = HashMap::new();
        let mut found = Vec::new();
        for r in refs {
            let header = match headers.get(&r.workflow_id) {
                Some(h) => h.clone(),
                None => {
                    let h = self.workflow_header(&r.workflow_id)?.map(std::sync::Arc::new);
                    headers.insert(r.workflow_id.clone(), h.clone());
                    h
                }
            };
            let Some(workflow) = header else { continue };
            let Some(bytes) =
                db.get_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(&r.workflow_id, r.seq)).map_err(io_err)?
            else {
                continue;
            };
            let task: TaskState = decode(&bytes).map_err(io_err)?;
            if query.matches(&TaskDoc { workflow: &workflow, task: &task }) {
                found.push(FoundTask { workflow, task });
            }
        }
        Ok(found)
    }
}

/// The `wf_index` prefixes that hold every match of `query`, and the fields they decide.
fn workflow_prefixes(query: &Query) -> (Vec<Vec<u8>>, Vec<&'static str>) {
    if let Some(ids) = query.equals("correlationId") {
        let prefixes = ids.iter().map(|c| keys::workflow_index_prefix(index::CORRELATION, &[c])).collect();
        return (prefixes, vec!["correlationId"]);
    }
    match (query.equals("workflowType"), query.equals("status")) {
        (Some(types), Some(statuses)) => {
            let prefixes = types
                .iter()
                .flat_map(|t| statuses.iter().map(move |s| keys::workflow_index_prefix(index::TYPE_STATUS, &[t, s])))
                .collect();
            (prefixes, vec!["workflowType", "status"])
        }
        (Some(types), None) => {
            let prefixes = types.iter().map(|t| keys::workflow_index_prefix(index::TYPE, &[t])).collect();
            (prefixes, vec!["workflowType"])
        }
        (None, Some(statuses)) => {
            let prefixes = statuses.iter().map(|s| keys::workflow_index_prefix(index::STATUS, &[s])).collect();
            (prefixes, vec!["status"])
        }
        (None, None) => (vec![keys::workflow_index_prefix(index::ALL, &[])], Vec::new()),
    }
}

impl overture_core::search::Searchable for FoundTask {
    fn field(&self, name: &str) -> overture_core::search::FieldValue<'_> {
        TaskDoc { workflow: &self.workflow, task: &self.task }.value(name)
    }
    fn contains_text(&self, word: &str) -> bool {
        TaskDoc { workflow: &self.workflow, task: &self.task }.contains_text(word)
    }
}

fn sorted_page<T: overture_core::search::Searchable>(
    mut items: Vec<T>,
    sort: &Sort,
    window: Window,
    id: impl Fn(&T) -> &str,
) -> Page<T> {
    items.sort_by(|a, b| sort.compare(a, b).then_with(|| id(a).cmp(id(b))));
    Page { total: items.len() as u64, results: window.cut(items) }
}

//! Applying workflow batches, removals and purges: the version guard, `evolve`, and the rows the
//! new state implies written as a difference from the rows the old state implied.
//!
//! Which tasks' derived rows (queue entry, timers, running row) are recomputed is chosen here:
//! the tasks the events name, and every task when the workflow ends or is reopened (their rows
//! depend on the workflow's status). The property test in `raft/tests/derived_rows.rs` checks
//! that this always equals deriving every row from the final state.

use std::collections::{BTreeSet, HashMap};
use std::io;

use overture_core::event::Event;
use overture_core::evolve;
use overture_core::idempotency::{self, Claim, Strategy};
use overture_core::queries;
use overture_core::rows::{self, QueueItem, RunningItem, TimerItem};
use overture_core::{TaskState, TaskType, WorkflowHeader, WorkflowId, WorkflowState, WorkflowStatus};
use rocksdb::WriteBatch;

use super::derived::{write_diff, write_diff_all};
use super::{Changes, Inner, Shared, Written, count_index};
use crate::codec::{decode, encode};
use crate::keys::{self, TaskLogRow, TaskRef, WorkflowRow};
use crate::types::{Response, WorkflowBatch};
use crate::{cf, io_err};

/// The rows derived from one task: its queue entry, timers and running row.
type Derived = (Option<QueueItem>, Vec<TimerItem>, Option<RunningItem>);

fn derive(h: &WorkflowHeader, t: &TaskState) -> Derived {
    (rows::queue_item(h, t), rows::task_timers(h, t), rows::running_item(h, t))
}

/// What the search index rows are keyed by; most batches change none of it.
type Indexed = (WorkflowStatus, i64, Option<String>);

fn indexed(h: &WorkflowHeader) -> Indexed {
    (h.status, h.create_time, h.correlation_id.clone())
}

/// What a batch's rows are written against: the rows the state implied before its events.
struct Before {
    /// Tasks the events change (`Event::changed_tasks`); their task rows are written.
    touched: BTreeSet<u32>,
    /// Tasks the events create; their id lookups are written.
    created: BTreeSet<u32>,
    /// Tasks whose derived rows are recomputed.
    rederive: BTreeSet<u32>,
    /// Every task before a reopen, which may drop some: seq, id, type.
    before_reopen: Vec<(u32, String, TaskType)>,
    /// Tasks `keepLastN` drops (`Event::IterationsPruned`): seq, id, type.
    pruned: Vec<(u32, String, TaskType)>,
    /// The derived rows of the tasks in `rederive`, before.
    rows: HashMap<u32, Derived>,
    workflow_timers: Vec<TimerItem>,
    indexed: Option<Indexed>,
    /// The batch ends the workflow.
    ends: bool,
}

impl Before {
    fn of(state: &WorkflowState, events: &[&Event], existed: bool) -> Before {
        let ends = events.iter().any(|e| matches!(e, Event::WorkflowEnded(_)));
        // A reopened workflow (retry, restart, rerun) may drop tasks and runs again: every
        // task's rows are re-derived, and dropped tasks' rows deleted.
        let reopens = events.iter().any(|e| matches!(e, Event::WorkflowReopened(_)));
        let touched: BTreeSet<u32> = events.iter().flat_map(|e| e.changed_tasks()).collect();
        let created = events
            .iter()
            .filter_map(|e| if let Event::TaskScheduled(s) = e { Some(s.task.seq) } else { None })
            .collect();
        // Queue entries and timers depend on the workflow's status too, so when it ends every
        // task's derived rows are re-derived.
        let rederive: BTreeSet<u32> = if ends || reopens {
            (1..=state.tasks.len() as u32).chain(touched.iter().copied()).collect()
        } else {
            touched.clone()
        };
        let before_reopen = if reopens {
            state.tasks.iter().map(|t| (t.seq, t.task_id.clone(), t.task_type.clone())).collect()
        } else {
            Vec::new()
        };
        let pruned = events
            .iter()
            .filter_map(|e| if let Event::IterationsPruned { tasks, .. } = e { Some(tasks) } else { None })
            .flatten()
            .filter_map(|&seq| state.task(seq).filter(|t| !t.is_pruned()))
            .map(|t| (t.seq, t.task_id.clone(), t.task_type.clone()))
            .collect();
        let rows =
            rederive.iter().filter_map(|&seq| state.task(seq).map(|t| (seq, derive(&state.header, t)))).collect();
        Before {
            touched,
            created,
            rederive,
            before_reopen,
            pruned,
            rows,
            workflow_timers: if existed { rows::workflow_timers(state) } else { Vec::new() },
            indexed: existed.then(|| indexed(&state.header)),
            ends,
        }
    }
}

impl Shared {
    /// Applies one workflow's events if it is still at the batch's expected revision.
    pub(super) fn apply_workflow(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        batch: WorkflowBatch,
    ) -> Result<Response, io::Error> {
        let id = batch.workflow_id.as_str();
        let current = self.take_current(inner, id)?;
        let current_revision = current.as_ref().map_or(0, |(s, _)| s.header.revision);
        if current_revision != batch.expected_revision || batch.events.is_empty() {
            if let Some((state, hash)) = current {
                self.cache.lock().put(state, hash);
            }
            return Ok(if current_revision == batch.expected_revision {
                Response::Applied { revision: current_revision }
            } else {
                Response::RevisionConflict { current: current_revision }
            });
        }
        let mut events = batch.events.iter();
        let existed = current.is_some();
        let (mut state, mut def_hash) = match current {
            Some(found) => found,
            None => match self.begin(inner, wb, changes, id, events.next())? {
                Ok(begun) => begun,
                Err(refused) => return Ok(refused),
            },
        };
        let rest: Vec<&Event> = events.collect();
        let before = Before::of(&state, &rest, existed);
        let externals_before = state.externals().clone();
        for event in &rest {
            evolve::evolve(&mut state, event);
            def_hash = self.write_event(wb, &state, event, def_hash);
        }
        let ends = before.ends;
        self.write_index(inner, wb, &state, &before.indexed);
        self.write_rows(wb, changes, &state, before);
        super::payloads::write_externals(&self.db, wb, &state, &externals_before);
        if ends {
            changes.ended.push((state.header.workflow_name.clone(), state.header.status));
        }
        changes.workflows.push(id.into());
        let row = WorkflowRow { header: state.header.clone(), def_hash, task_count: state.tasks.len() as u32 };
        wb.put_cf(cf(&self.db, keys::CF_WORKFLOWS), id.as_bytes(), encode(&row));
        let revision = state.header.revision;
        // Cached even if it ended, for the rest of this group (see `Inner::written`).
        if state.header.status.is_terminal() {
            inner.written.insert(id.into(), Written::Ended);
        } else {
            inner.written.remove(id);
        }
        self.cache.lock().put(state, def_hash);
        Ok(Response::Applied { revision })
    }

    /// A new workflow from its first event: claims its idempotency key and stores its plan and
    /// the event. `Ok(Err)` answers a start that may not happen.
    fn begin(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        id: &str,
        first: Option<&Event>,
    ) -> Result<Result<(WorkflowState, [u8; 32]), Response>, io::Error> {
        let not_found = || Response::NotFound(format!("No such workflow found by id: {id}"));
        let Some(first) = first else { return Ok(Err(not_found())) };
        let Some(mut state) = evolve::start(first) else { return Ok(Err(not_found())) };
        if let Some(refused) = self.claim_idempotency_key(inner, wb, &state.header)? {
            return Ok(Err(refused));
        }
        let (hash, plan) = self.store_plan(wb, &state.plan);
        state.plan = plan;
        wb.put_cf(cf(&self.db, keys::CF_EVENTS), keys::event(id, 1), encode(first));
        changes.started.push(state.header.workflow_name.clone());
        Ok(Ok((state, hash)))
    }

    /// Writes one applied event, and what it adds besides the state: a task log line, the plan
    /// of a restart on the latest definition. Answers the definition hash from now on.
    fn write_event(&self, wb: &mut WriteBatch, state: &WorkflowState, event: &Event, def_hash: [u8; 32]) -> [u8; 32] {
        let (db, id, revision) = (&self.db, state.header.workflow_id.as_str(), state.header.revision);
        wb.put_cf(cf(db, keys::CF_EVENTS), keys::event(id, revision), encode(event));
        if let Event::TaskLogged { seq, log, time } = event
            && let Some(task) = state.task(*seq)
        {
            let row = TaskLogRow { log: log.clone(), created_time: *time };
            wb.put_cf(cf(db, keys::CF_TASK_LOGS), keys::task_log(&task.task_id, revision), encode(&row));
        }
        match event {
            // A restart on the latest definition: store its snapshot like a start does.
            Event::WorkflowReopened(r) => r.plan.as_ref().map_or(def_hash, |plan| self.store_plan(wb, plan).0),
            _ => def_hash,
        }
    }

    /// Task rows, id lookups and the difference in derived rows, against `before`.
    fn write_rows(&self, wb: &mut WriteBatch, changes: &mut Changes, state: &WorkflowState, before: Before) {
        let (db, id) = (&self.db, state.header.workflow_id.as_str());
        // Tasks a reopen dropped: their rows, their id lookups and what they implied.
        for (seq, task_id, task_type) in &before.before_reopen {
            if state.task(*seq).is_none_or(|t| &t.task_id != task_id) {
                wb.delete_cf(cf(db, keys::CF_TASKS), task_id.as_bytes());
                wb.delete_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(task_type, task_id));
            }
            if state.task(*seq).is_none() {
                wb.delete_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(id, *seq));
                let (old_q, old_t, old_r) = before.rows.get(seq).cloned().unwrap_or_default();
                write_diff(db, wb, changes, old_q, None);
                write_diff_all(db, wb, changes, old_t, Vec::new());
                write_diff(db, wb, changes, old_r, None);
            }
        }
        // Tasks `keepLastN` dropped: nothing of them is stored (their places are kept in memory).
        for (seq, task_id, task_type) in &before.pruned {
            wb.delete_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(id, *seq));
            wb.delete_cf(cf(db, keys::CF_TASKS), task_id.as_bytes());
            wb.delete_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(task_type, task_id));
            let (from, to) = keys::prefix_range(task_id);
            wb.delete_range_cf(cf(db, keys::CF_TASK_LOGS), from, to);
        }
        for &seq in &before.touched {
            let Some(task) = state.task(seq).filter(|t| !t.is_pruned()) else { continue };
            wb.put_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(id, seq), encode(task));
            if before.created.contains(&seq) {
                let r = TaskRef { workflow_id: id.into(), seq };
                wb.put_cf(cf(db, keys::CF_TASKS), task.task_id.as_bytes(), encode(&r));
                wb.put_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(&task.task_type, &task.task_id), encode(&r));
            }
        }
        for &seq in &before.rederive {
            let Some(task) = state.task(seq) else { continue };
            let (old_q, old_t, old_r) = before.rows.get(&seq).cloned().unwrap_or_default();
            let (new_q, new_t, new_r) = derive(&state.header, task);
            write_diff(db, wb, changes, old_q, new_q);
            write_diff_all(db, wb, changes, old_t, new_t);
            write_diff(db, wb, changes, old_r, new_r);
        }
        write_diff_all(db, wb, changes, before.workflow_timers, rows::workflow_timers(state));
    }

    /// The search index rows and counts, if what they are keyed by changed.
    fn write_index(&self, inner: &mut Inner, wb: &mut WriteBatch, state: &WorkflowState, before: &Option<Indexed>) {
        if before.as_ref() == Some(&indexed(&state.header)) {
            return;
        }
        let db = &self.db;
        let old_index = match before {
            Some((status, start, correlation)) => {
                keys::workflow_index_of(&state.header, *status, *start, correlation.as_deref())
            }
            None => Vec::new(),
        };
        let new_index = keys::workflow_index(&state.header);
        for gone in old_index.iter().filter(|k| !new_index.contains(k)) {
            wb.delete_cf(cf(db, keys::CF_WF_INDEX), gone);
        }
        for added in new_index.iter().filter(|k| !old_index.contains(k)) {
            wb.put_cf(cf(db, keys::CF_WF_INDEX), added, []);
        }
        let (name, status) = (state.header.workflow_name.as_str(), state.header.status);
        match before {
            None => count_index(&mut inner.count_deltas, name, status.as_str(), 1),
            Some((was, ..)) if *was != status => {
                count_index(&mut inner.count_deltas, name, was.as_str(), -1);
                count_index(&mut inner.count_deltas, name, status.as_str(), 1);
            }
            Some(_) => {}
        }
    }

    /// Takes a start's idempotency key, or answers why the start may not happen (the core's
    /// rule, [`idempotency::claim`]): checked here, in log order, so two concurrent starts with
    /// one key make one workflow.
    fn claim_idempotency_key(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        header: &WorkflowHeader,
    ) -> Result<Option<Response>, io::Error> {
        let Some(key) = header.idempotency_key.as_deref().filter(|k| !k.is_empty()) else { return Ok(None) };
        let row_key = keys::idempotency(&header.workflow_name, key);
        let existing = match inner.pending_keys.get(&row_key) {
            Some(id) => Some(id.clone()),
            None => match self.db.get_cf(cf(&self.db, keys::CF_IDEMPOTENCY), &row_key).map_err(io_err)? {
                Some(bytes) => Some(decode::<keys::IdempotencyRow>(&bytes).map_err(io_err)?.workflow_id),
                None => None,
            },
        };
        if let Some(existing) = existing {
            let running = || -> Result<bool, io::Error> {
                if inner.pending_keys.values().any(|id| id == &existing) {
                    return Ok(true);
                }
                self.is_running(inner, &existing)
            };
            let strategy = Strategy::of(header.idempotency_strategy.as_deref());
            match idempotency::claim(strategy, key, &existing, running)? {
                Claim::Take => {}
                Claim::Existing(workflow_id) => return Ok(Some(Response::Existing { workflow_id })),
                Claim::Refused(message) => return Ok(Some(Response::Conflict(message))),
            }
        }
        let row = keys::IdempotencyRow { workflow_id: header.workflow_id.clone() };
        wb.put_cf(cf(&self.db, keys::CF_IDEMPOTENCY), &row_key, encode(&row));
        inner.pending_keys.insert(row_key, header.workflow_id.clone());
        Ok(None)
    }

    /// Purges ended executions that retention chose, each only if it is still purgeable by the
    /// core's rule ([`queries::purgeable`]); answers how many were.
    pub(super) fn apply_purge(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        workflows: Vec<(WorkflowId, i64)>,
    ) -> Result<Response, io::Error> {
        let mut count = 0;
        for (id, ended_before) in workflows {
            let Some((state, def_hash)) = self.take_current(inner, &id)? else { continue };
            if queries::purgeable(&state, ended_before) {
                self.remove_state(wb, changes, &mut inner.count_deltas, &state)?;
                inner.written.insert(id, Written::Removed);
                count += 1;
            } else {
                self.cache.lock().put(state, def_hash);
            }
        }
        Ok(Response::Purged { count })
    }

    /// Deletes an execution and everything derived from it, in the batch.
    pub(super) fn apply_remove(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        id: &str,
    ) -> Result<Response, io::Error> {
        let Some((state, _)) = self.take_current(inner, id)? else {
            return Ok(Response::NotFound(format!("No such workflow found by id: {id}")));
        };
        self.remove_state(wb, changes, &mut inner.count_deltas, &state)?;
        inner.written.insert(id.into(), Written::Removed);
        Ok(Response::Ok)
    }

    /// Deletes a loaded execution and everything derived from it, in the batch.
    fn remove_state(
        &self,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        deltas: &mut Option<HashMap<Vec<u8>, i64>>,
        state: &WorkflowState,
    ) -> Result<(), io::Error> {
        let id = state.header.workflow_id.as_str();
        let db = &self.db;
        for task in &state.tasks {
            write_diff(db, wb, changes, rows::queue_item(&state.header, task), None);
            write_diff_all(db, wb, changes, rows::task_timers(&state.header, task), Vec::new());
            write_diff(db, wb, changes, rows::running_item(&state.header, task), None);
            wb.delete_cf(cf(db, keys::CF_TASKS), task.task_id.as_bytes());
            let (from, to) = keys::prefix_range(&task.task_id);
            wb.delete_range_cf(cf(db, keys::CF_TASK_LOGS), from, to);
        }
        write_diff_all(db, wb, changes, rows::workflow_timers(state), Vec::new());
        for key in keys::workflow_index(&state.header) {
            wb.delete_cf(cf(db, keys::CF_WF_INDEX), key);
        }
        count_index(deltas, &state.header.workflow_name, state.header.status.as_str(), -1);
        for task in &state.tasks {
            wb.delete_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(&task.task_type, &task.task_id));
        }
        let (from, to) = keys::prefix_range(id);
        wb.delete_range_cf(cf(db, keys::CF_WF_TASKS), &from, &to);
        wb.delete_range_cf(cf(db, keys::CF_EVENTS), &from, &to);
        wb.delete_range_cf(cf(db, keys::CF_WF_EXTERNALS), &from, &to);
        super::payloads::delete_externals(db, wb, state);
        wb.delete_cf(cf(db, keys::CF_WORKFLOWS), id.as_bytes());
        if let Some(key) = state.header.idempotency_key.as_deref() {
            let row_key = keys::idempotency(&state.header.workflow_name, key);
            let owner = match db.get_cf(cf(db, keys::CF_IDEMPOTENCY), &row_key).map_err(io_err)? {
                Some(bytes) => Some(decode::<keys::IdempotencyRow>(&bytes).map_err(io_err)?.workflow_id),
                None => None,
            };
            if owner.as_deref() == Some(id) {
                wb.delete_cf(cf(db, keys::CF_IDEMPOTENCY), row_key);
            }
        }
        Ok(())
    }
}

//! The replicated state machine.
//!
//! Applying a workflow batch is: version check → `evolve` each event → compute the rows the new
//! state implies (task rows, queue entries, timers, logs, the definition blob) and the difference
//! from the rows the old state implied → one RocksDB `WriteBatch` with all of it and the applied
//! log id. Entries that openraft hands over together are written in one batch, so a burst of
//! proposals costs one write.
//!
//! Writes here are not fsynced: the Raft log is, and after a crash openraft re-applies whatever
//! the state machine lost from the log, which is never purged past a durable snapshot.
//!
//! On the leader an [`ApplyListener`] learns about every queue entry and timer added or removed,
//! after the write, so in-memory queues and timer heaps follow the durable rows.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use overture_core::dsl::WorkflowDef;
use overture_core::event::Event;
use overture_core::evolve;
use overture_core::rows::{self, QueueItem, RunningItem, TimerItem};
use overture_core::{Plan, WorkflowState, WorkflowStatus};
use parking_lot::{Mutex, RwLock};
use rocksdb::{DB, WriteBatch};
use sha2::{Digest, Sha256};

use crate::codec::{JsonBytes, decode, encode};
use crate::keys::{self, TaskLogRow, TaskRef, WorkflowRow, meta};
use crate::snapshot::{SnapshotBuilder, SnapshotFile};
use crate::types::{LogId, Request, Response, SnapshotMeta, StoredMembership, TypeConfig, WorkflowBatch};
use crate::{cf, io_err};

/// A change to a queue entry or timer row, in the order apply made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    #[allow(missing_docs)]
    QueueAdded(QueueItem),
    #[allow(missing_docs)]
    QueueRemoved(QueueItem),
    #[allow(missing_docs)]
    TimerAdded(TimerItem),
    #[allow(missing_docs)]
    TimerRemoved(TimerItem),
    #[allow(missing_docs)]
    RunningAdded(RunningItem),
    #[allow(missing_docs)]
    RunningRemoved(RunningItem),
}

/// What one apply changed that leader-only services must mirror in memory.
#[derive(Debug, Default, Clone)]
pub struct Changes {
    /// Index of the last entry applied.
    pub log_index: u64,
    /// Queue and timer rows added and removed, in order: a task scheduled and then polled
    /// within one group appears as an add followed by a remove.
    pub rows: Vec<RowChange>,
    /// Workflows that started: definition name.
    pub started: Vec<String>,
    /// Workflows that ended: definition name and final status.
    pub ended: Vec<(String, WorkflowStatus)>,
    /// Workflows whose state changed, by id (for waiters on a workflow).
    pub workflows: Vec<String>,
}

impl Changes {
    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.started.is_empty() && self.ended.is_empty() && self.workflows.is_empty()
    }
}

/// Receives [`Changes`] after they are written. Called on the state machine's task with the apply
/// lock held: it must be quick and must not call back into storage.
pub trait ApplyListener: Send + Sync {
    /// One apply's changes.
    fn applied(&self, changes: &Changes);
}

/// The answer to an entry whose payload does not parse: the same on every replica, and nothing
/// written.
pub(crate) fn rejected(what: &str, error: serde_json::Error) -> Response {
    tracing::warn!(%error, "refused to apply {what}: it does not parse");
    metrics::counter!(crate::APPLY_REJECTED).increment(1);
    Response::Rejected(format!("{what} could not be applied: {error}"))
}

/// A response to send once the group's write is done, and where to send it.
type Reply = (Option<openraft::storage::ApplyResponder<TypeConfig>>, Response);

/// State shared between the state machine (owned by openraft) and the read side.
pub(crate) struct Shared {
    pub db: Arc<DB>,
    pub inner: Mutex<Inner>,
    /// Recently applied executions. Apply changes it with `inner` held; readers take only this
    /// lock, briefly, so a read never waits for an apply (which may be waiting for disk space).
    pub cache: Mutex<WorkflowCache>,
    /// The index of the last entry applied, for readers that must not wait on `inner`.
    pub applied_index: std::sync::atomic::AtomicU64,
    pub listener: RwLock<Option<Arc<dyn ApplyListener>>>,
    pub plans: Mutex<HashMap<[u8; 32], Arc<Plan>>>,
    /// Plans of the stored definitions that starts use, by name and version asked for.
    pub start_plans: Mutex<StartPlans>,
    /// Sizes of the counted search index prefixes. Locked after `inner` when both are.
    pub index_counts: Mutex<IndexCounts>,
    pub snapshot_dir: PathBuf,
    /// The data directory's free space; writes wait out a full disk.
    pub disk: Arc<crate::disk::DiskGuard>,
}

/// Compiled plans of stored definitions, as starts ask for them (`None`: the latest version),
/// so a start neither reads and parses its definition nor compiles it again, and every execution
/// of a definition shares one plan. Any change to the definitions empties it.
#[derive(Default)]
pub(crate) struct StartPlans {
    /// Bumped by every definition change; a plan built from reads before a bump is not kept.
    pub generation: u64,
    pub plans: HashMap<(String, Option<i32>), Arc<Plan>>,
}

impl StartPlans {
    /// Forgets every plan: the definitions changed.
    pub fn invalidate(&mut self) {
        self.generation += 1;
        self.plans.clear();
    }
}

pub(crate) struct Inner {
    pub applied: Option<LogId>,
    pub membership: StoredMembership,
    /// Idempotency keys taken by this apply group and not written to disk yet.
    pub pending_keys: HashMap<Vec<u8>, String>,
    /// Workflows this apply group ended or removed, which the disk shows only once the group's
    /// batch is written. Later entries of the group see them as the group left them, wherever
    /// the group boundaries fall: the leader and each follower group entries differently, and
    /// reading the disk here made a batch apply on one replica and conflict on another.
    pub written: HashMap<String, Written>,
    /// How this apply group changes the counted `wf_index` prefixes' sizes; added to
    /// [`Shared::index_counts`] once its batch is written. `None` while nothing is counted (no
    /// search has asked yet, or a snapshot replaced the rows), so apply keeps no deltas then.
    /// Switched only with this lock held, so it holds for a whole apply group.
    pub count_deltas: Option<HashMap<Vec<u8>, i64>>,
}

/// What an apply group did to a workflow that the disk does not show yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// It ended: its state is in the cache until the group is written, then evicted.
    Ended,
    /// It was removed (deleted or purged).
    Removed,
}

/// The number of `wf_index` rows under each counted prefix (see [`keys::counted_prefixes`]), so
/// a search's total needs no scan. Counted from the rows the first time a search asks, then
/// kept by apply; forgotten when a snapshot replaces the rows.
#[derive(Default)]
pub(crate) struct IndexCounts(pub Option<HashMap<Vec<u8>, u64>>);

impl IndexCounts {
    /// Adds an apply group's changes.
    fn add(&mut self, deltas: &mut HashMap<Vec<u8>, i64>) {
        if let Some(counts) = &mut self.0 {
            for (prefix, delta) in deltas.drain() {
                let count = counts.entry(prefix).or_default();
                *count = count.saturating_add_signed(delta);
            }
        }
    }
}

/// Counts a workflow's `wf_index` rows in or out of the counted prefixes, if counting.
fn count_index(deltas: &mut Option<HashMap<Vec<u8>, i64>>, name: &str, status: &str, delta: i64) {
    let Some(deltas) = deltas else { return };
    for prefix in keys::counted_prefixes(name, status) {
        *deltas.entry(prefix).or_default() += delta;
    }
}

/// Recently applied executions, so a burst of events for one workflow does not reload it from
/// disk each time. Filled only by apply (readers never insert), so it is never behind the disk.
pub(crate) struct WorkflowCache {
    entries: HashMap<String, Cached>,
    clock: u64,
    capacity: usize,
}

pub(crate) struct Cached {
    pub state: WorkflowState,
    pub def_hash: [u8; 32],
    last_used: u64,
}

impl WorkflowCache {
    pub fn new(capacity: usize) -> WorkflowCache {
        WorkflowCache { entries: HashMap::new(), clock: 0, capacity: capacity.max(16) }
    }

    pub fn get(&self, id: &str) -> Option<&Cached> {
        self.entries.get(id)
    }

    fn take(&mut self, id: &str) -> Option<Cached> {
        self.entries.remove(id)
    }

    fn put(&mut self, state: WorkflowState, def_hash: [u8; 32]) {
        self.clock += 1;
        let id = state.header.workflow_id.clone();
        self.entries.insert(id, Cached { state, def_hash, last_used: self.clock });
    }

    /// Drops the least recently used half when over capacity.
    fn trim(&mut self) {
        if self.entries.len() <= self.capacity {
            return;
        }
        let mut ages: Vec<u64> = self.entries.values().map(|c| c.last_used).collect();
        ages.sort_unstable();
        let cutoff = ages[ages.len() / 2];
        self.entries.retain(|_, c| c.last_used > cutoff);
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

impl Shared {
    /// A workflow's header from disk, without its tasks.
    pub fn load_header(&self, id: &str) -> Result<Option<overture_core::WorkflowHeader>, io::Error> {
        match self.db.get_cf(cf(&self.db, keys::CF_WORKFLOWS), id.as_bytes()).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => Ok(Some(decode::<WorkflowRow>(&bytes).map_err(io_err)?.header)),
        }
    }

    /// A workflow as this apply group has left it, taken out of the cache: `None` if the group
    /// removed it, else the cached state, else the state on disk.
    fn take_current(&self, inner: &Inner, id: &str) -> Result<Option<(WorkflowState, [u8; 32])>, io::Error> {
        if inner.written.get(id) == Some(&Written::Removed) {
            return Ok(None);
        }
        match self.cache.lock().take(id) {
            Some(c) => Ok(Some((c.state, c.def_hash))),
            None => self.load_from_disk(id),
        }
    }

    /// Whether a workflow runs as this apply group has left it.
    fn is_running(&self, inner: &Inner, id: &str) -> Result<bool, io::Error> {
        if inner.written.contains_key(id) {
            return Ok(false);
        }
        if let Some(cached) = self.cache.lock().get(id) {
            return Ok(!cached.state.header.status.is_terminal());
        }
        Ok(self.load_from_disk(id)?.is_some_and(|(s, _)| !s.header.status.is_terminal()))
    }

    /// Loads an execution from disk (not from the cache).
    pub fn load_from_disk(&self, id: &str) -> Result<Option<(WorkflowState, [u8; 32])>, io::Error> {
        let db = &self.db;
        let Some(bytes) = db.get_cf(cf(db, keys::CF_WORKFLOWS), id.as_bytes()).map_err(io_err)? else {
            return Ok(None);
        };
        let row: WorkflowRow = decode(&bytes).map_err(io_err)?;
        let plan = self.plan(&row.def_hash)?;
        let mut tasks = Vec::with_capacity(row.task_count as usize);
        let prefix = keys::prefix(id);
        for item in db.prefix_iterator_cf(cf(db, keys::CF_WF_TASKS), &prefix) {
            let (key, value) = item.map_err(io_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            tasks.push(decode(&value).map_err(io_err)?);
        }
        Ok(Some((WorkflowState::new(row.header, plan, tasks), row.def_hash)))
    }

    /// Writes the search index rows of every stored workflow and task if the index is empty
    /// while workflows exist: a data directory from a build before the index had none.
    pub fn rebuild_indexes_if_missing(&self) -> Result<(), io::Error> {
        let db = &self.db;
        let empty = |family| db.iterator_cf(cf(db, family), rocksdb::IteratorMode::Start).next().is_none();
        if !empty(keys::CF_WF_INDEX) || empty(keys::CF_WORKFLOWS) {
            return Ok(());
        }
        let started = Instant::now();
        let mut wb = WriteBatch::default();
        let mut count = 0usize;
        for item in db.iterator_cf(cf(db, keys::CF_WORKFLOWS), rocksdb::IteratorMode::Start) {
            let (_, value) = item.map_err(io_err)?;
            let row: WorkflowRow = decode(&value).map_err(io_err)?;
            for key in keys::workflow_index(&row.header) {
                wb.put_cf(cf(db, keys::CF_WF_INDEX), key, []);
            }
            count += 1;
        }
        for item in db.iterator_cf(cf(db, keys::CF_WF_TASKS), rocksdb::IteratorMode::Start) {
            let (key, value) = item.map_err(io_err)?;
            let task: overture_core::TaskState = decode(&value).map_err(io_err)?;
            let Some(split) = key.iter().position(|b| *b == 0) else { continue };
            let workflow_id = String::from_utf8_lossy(&key[..split]).into_owned();
            let r = TaskRef { workflow_id, seq: task.seq };
            wb.put_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(&task.task_type, &task.task_id), encode(&r));
        }
        db.write(wb).map_err(io_err)?;
        tracing::info!(workflows = count, elapsed_ms = started.elapsed().as_millis() as u64, "built the search index");
        Ok(())
    }

    /// The hash an execution references its definition by, and the plan every execution of it
    /// shares (an entry read back from the log, or received by a follower, brings a copy of its
    /// own). The definition's blob is written the first time its hash is seen: a known hash was
    /// read from disk or written with an earlier batch, and blobs are never deleted.
    fn store_plan(&self, wb: &mut WriteBatch, plan: &Arc<Plan>) -> ([u8; 32], Arc<Plan>) {
        let hash = plan.def_hash(|json| Sha256::digest(json).into());
        let mut plans = self.plans.lock();
        if let Some(known) = plans.get(&hash) {
            return (hash, known.clone());
        }
        wb.put_cf(cf(&self.db, keys::CF_DEF_BLOBS), hash, encode(&JsonBytes(plan.def_json().to_vec())));
        plans.insert(hash, plan.clone());
        (hash, plan.clone())
    }

    /// The compiled definition with this hash.
    fn plan(&self, hash: &[u8; 32]) -> Result<Arc<Plan>, io::Error> {
        if let Some(plan) = self.plans.lock().get(hash) {
            return Ok(plan.clone());
        }
        let bytes = self
            .db
            .get_cf(cf(&self.db, keys::CF_DEF_BLOBS), hash)
            .map_err(io_err)?
            .ok_or_else(|| io_err("a workflow references a definition blob that is missing"))?;
        let json: JsonBytes = decode(&bytes).map_err(io_err)?;
        let def: WorkflowDef = json.parse().map_err(io_err)?;
        let plan = Arc::new(Plan::new(def));
        let mut plans = self.plans.lock();
        if plans.len() > 4096 {
            plans.clear();
        }
        plans.insert(*hash, plan.clone());
        Ok(plan)
    }

    /// Applies a group of entries in one write.
    fn apply_group(&self, group: Vec<EntryResponder<TypeConfig>>) -> Result<Vec<Reply>, io::Error> {
        let started = Instant::now();
        let mut inner = self.inner.lock();
        inner.pending_keys.clear();
        inner.written.clear();
        let mut wb = WriteBatch::default();
        let mut changes = Changes::default();
        let mut replies = Vec::with_capacity(group.len());
        let count = group.len();
        for (entry, responder) in group {
            let response = match entry.payload {
                EntryPayload::Blank => Response::Ok,
                EntryPayload::Normal(request) => self.apply_request(&mut inner, &mut wb, &mut changes, request)?,
                EntryPayload::Membership(membership) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), membership);
                    wb.put_cf(cf(&self.db, keys::CF_SM_META), meta::MEMBERSHIP, encode(&inner.membership));
                    Response::Ok
                }
            };
            changes.log_index = entry.log_id.index;
            inner.applied = Some(entry.log_id);
            replies.push((responder, response));
        }
        if let Some(applied) = &inner.applied {
            wb.put_cf(cf(&self.db, keys::CF_SM_META), meta::APPLIED, encode(applied));
        }
        crate::write_state(&self.db, &self.disk, wb)?;
        if let Some(applied) = &inner.applied {
            self.applied_index.store(applied.index, std::sync::atomic::Ordering::Release);
        }
        // Ended workflows stayed cached only for the rest of the group; the disk has them now.
        {
            let mut cache = self.cache.lock();
            for (id, written) in inner.written.drain() {
                if written == Written::Ended {
                    cache.take(&id);
                }
            }
        }
        if let Some(deltas) = inner.count_deltas.as_mut().filter(|d| !d.is_empty()) {
            self.index_counts.lock().add(deltas);
        }
        self.cache.lock().trim();
        if !changes.is_empty()
            && let Some(listener) = self.listener.read().as_ref()
        {
            listener.applied(&changes);
        }
        drop(inner);
        metrics::histogram!("overture_raft_apply_seconds").record(started.elapsed().as_secs_f64());
        metrics::counter!("overture_raft_entries_applied_total").increment(count as u64);
        Ok(replies)
    }

    fn apply_request(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        request: Request,
    ) -> Result<Response, io::Error> {
        match request {
            Request::Workflow(batch) => self.apply_workflow(inner, wb, changes, batch),
            Request::Workflows(batches) => Ok(Response::Many(
                batches
                    .into_iter()
                    .map(|batch| self.apply_workflow(inner, wb, changes, batch))
                    .collect::<Result<_, _>>()?,
            )),
            Request::RemoveWorkflow { workflow_id } => self.apply_remove(inner, wb, changes, &workflow_id),
            Request::PutSchedule { schedule } => {
                use overture_core::schedule::WorkflowSchedule;
                let mut parsed: WorkflowSchedule = match schedule.parse() {
                    Ok(parsed) => parsed,
                    Err(e) => return Ok(rejected("the schedule", e)),
                };
                crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
                let key = parsed.name.clone().into_bytes();
                // A schedule never fires twice for one time: whatever the new definition says, it
                // keeps its last fire and moves its next one past it.
                let stored = self.db.get_cf(cf(&self.db, keys::CF_SCHEDULES), &key).map_err(io_err)?;
                if let Some(bytes) = stored {
                    let existing: WorkflowSchedule = match decode::<JsonBytes>(&bytes).map_err(io_err)?.parse() {
                        Ok(existing) => existing,
                        Err(e) => return Ok(rejected("the stored schedule", e)),
                    };
                    parsed.last_run_time = existing.last_run_time.max(parsed.last_run_time);
                    if let (Some(last), Some(next)) = (parsed.last_run_time, parsed.next_run_time)
                        && next <= last
                    {
                        parsed.next_run_time = parsed.next_from(next);
                    }
                }
                wb.put_cf(cf(&self.db, keys::CF_SCHEDULES), key, encode(&JsonBytes::of(&parsed)));
                Ok(Response::Ok)
            }
            Request::DeleteSchedule { name } => {
                crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
                if self.db.get_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes()).map_err(io_err)?.is_none() {
                    return Ok(Response::NotFound(format!("Schedule {name} not found")));
                }
                wb.delete_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes());
                let (from, to) = keys::prefix_range(&name);
                wb.delete_range_cf(cf(&self.db, keys::CF_SCHEDULE_RUNS), from, to);
                Ok(Response::Ok)
            }
            Request::FireSchedule { name, scheduled_time, next_run_time, execution, start } => {
                self.apply_fire(inner, wb, changes, &name, scheduled_time, next_run_time, execution, start)
            }
            Request::PurgeWorkflows { workflows } => {
                let mut count = 0;
                for (id, ended_before) in workflows {
                    // Still ended, in time, and done with its follow-ups (telling its parent,
                    // starting its failure workflow, publishing its status, cancelling children).
                    let due = |state: &WorkflowState| {
                        let h = &state.header;
                        h.status.is_terminal()
                            && h.end_time > 0
                            && h.end_time <= ended_before
                            && rows::workflow_timers(state).is_empty()
                    };
                    let Some((state, def_hash)) = self.take_current(inner, &id)? else {
                        continue;
                    };
                    if due(&state) {
                        self.remove_state(wb, changes, &mut inner.count_deltas, &state)?;
                        inner.written.insert(id, Written::Removed);
                        count += 1;
                    } else {
                        self.cache.lock().put(state, def_hash);
                    }
                }
                Ok(Response::Purged { count })
            }
            other => {
                // Definition changes read what is stored; write out what this group has pending
                // first so they see it.
                crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
                let response = crate::defs::apply(&self.db, &self.disk, other);
                self.start_plans.lock().invalidate();
                response
            }
        }
    }

    /// Takes a start's idempotency key, or answers why the start may not happen: checked here,
    /// in log order, so two concurrent starts with one key make one workflow.
    fn claim_idempotency_key(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        header: &overture_core::WorkflowHeader,
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
            let strategy = header.idempotency_strategy.as_deref().unwrap_or("FAIL");
            let refused = match strategy {
                "RETURN_EXISTING" => Some(Response::Existing { workflow_id: existing.clone() }),
                "FAIL_ON_RUNNING" if !running()? => None,
                _ => Some(Response::Conflict(format!(
                    "Workflow {existing} was already started with idempotencyKey {key} (idempotencyStrategy {strategy})"
                ))),
            };
            if refused.is_some() {
                return Ok(refused);
            }
        }
        let row = keys::IdempotencyRow { workflow_id: header.workflow_id.clone() };
        wb.put_cf(cf(&self.db, keys::CF_IDEMPOTENCY), &row_key, encode(&row));
        inner.pending_keys.insert(row_key, header.workflow_id.clone());
        Ok(None)
    }

    /// One fire of a schedule: only if it is still due at `scheduled_time` and not paused.
    #[allow(clippy::too_many_arguments)]
    fn apply_fire(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        name: &str,
        scheduled_time: i64,
        next_run_time: Option<i64>,
        execution: Option<JsonBytes>,
        start: Option<WorkflowBatch>,
    ) -> Result<Response, io::Error> {
        use overture_core::schedule::{ScheduleExecution, WorkflowSchedule};
        // Read what earlier entries of this group wrote.
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        let schedules = cf(&self.db, keys::CF_SCHEDULES);
        let Some(bytes) = self.db.get_cf(schedules, name.as_bytes()).map_err(io_err)? else {
            return Ok(Response::NotFound(format!("Schedule {name} not found")));
        };
        let mut schedule: WorkflowSchedule = match decode::<JsonBytes>(&bytes).map_err(io_err)?.parse() {
            Ok(schedule) => schedule,
            Err(e) => return Ok(rejected("the stored schedule", e)),
        };
        // Everything the fire writes is read first, so a rejection writes nothing.
        let record: Option<ScheduleExecution> = match execution.map(|e| e.parse()).transpose() {
            Ok(record) => record,
            Err(e) => return Ok(rejected("the schedule's execution record", e)),
        };
        let fired_already = schedule.last_run_time.is_some_and(|last| scheduled_time <= last);
        if schedule.paused || schedule.next_run_time != Some(scheduled_time) || fired_already {
            return Ok(Response::Conflict(format!("Schedule {name} is not due at {scheduled_time}")));
        }
        schedule.next_run_time = next_run_time;
        schedule.last_run_time = Some(scheduled_time);
        wb.put_cf(schedules, name.as_bytes(), encode(&JsonBytes::of(&schedule)));
        if let Some(mut record) = record {
            if let Some(batch) = start {
                match self.apply_workflow(inner, wb, changes, batch)? {
                    Response::Applied { .. } => {}
                    other => {
                        record.state = "FAILED".into();
                        record.reason = Some(format!("The workflow did not start: {other}"));
                        record.workflow_id = None;
                    }
                }
            }
            let runs = cf(&self.db, keys::CF_SCHEDULE_RUNS);
            wb.put_cf(runs, keys::schedule_run(name, scheduled_time), encode(&JsonBytes::of(&record)));
            // Keep the most recent records of each schedule.
            const KEEP: usize = 100;
            let prefix = keys::prefix(name);
            let stored: Vec<Box<[u8]>> = self
                .db
                .prefix_iterator_cf(runs, &prefix)
                .map_while(|item| item.ok().map(|(k, _)| k).filter(|k| k.starts_with(&prefix)))
                .collect();
            for old in stored.iter().take((stored.len() + 1).saturating_sub(KEEP)) {
                wb.delete_cf(runs, old);
            }
        }
        Ok(Response::Ok)
    }

    /// Deletes an execution and everything derived from it, in the batch.
    fn apply_remove(
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
        inner.written.insert(id.to_owned(), Written::Removed);
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

    fn apply_workflow(
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
        let db = &self.db;
        let mut events = batch.events.iter();
        let existed = current.is_some();
        let (mut state, def_hash) = match current {
            Some(found) => found,
            None => {
                let Some(first) = events.next() else { unreachable!("checked non-empty above") };
                let Some(state) = evolve::start(first) else {
                    return Ok(Response::NotFound(format!("No such workflow found by id: {id}")));
                };
                if let Some(refused) = self.claim_idempotency_key(inner, wb, &state.header)? {
                    return Ok(refused);
                }
                let mut state = state;
                let (hash, plan) = self.store_plan(wb, &state.plan);
                state.plan = plan;
                wb.put_cf(cf(db, keys::CF_EVENTS), keys::event(id, 1), encode(first));
                changes.started.push(state.header.workflow_name.clone());
                (state, hash)
            }
        };
        let rest: Vec<&Event> = events.collect();
        let ends = rest.iter().any(|e| matches!(e, Event::WorkflowEnded(_)));
        // Tasks whose rows change are the ones events name. Their queue entries and timers depend
        // on the workflow's status too, so when it ends every task's derived rows are re-derived.
        // A reopened workflow (retry, restart, rerun) may drop tasks and runs again: every task's
        // rows are re-derived, and dropped tasks' rows deleted.
        let reopens = rest.iter().any(|e| matches!(e, Event::WorkflowReopened(_)));
        let touched: BTreeSet<u32> = rest.iter().filter_map(|e| e.task_seq()).collect();
        let created: BTreeSet<u32> =
            rest.iter().filter_map(|e| if let Event::TaskScheduled(s) = e { Some(s.task.seq) } else { None }).collect();
        let rederive: BTreeSet<u32> = if ends || reopens {
            (1..=state.tasks.len() as u32).chain(touched.iter().copied()).collect()
        } else {
            touched.clone()
        };
        let old_task_ids: Vec<(u32, String, String)> = if reopens {
            state.tasks.iter().map(|t| (t.seq, t.task_id.clone(), t.task_type.clone())).collect()
        } else {
            Vec::new()
        };
        // What the search index rows are keyed by; most batches change none of it.
        let indexed = |h: &overture_core::WorkflowHeader| (h.status, h.create_time, h.correlation_id.clone());
        let indexed_before = existed.then(|| indexed(&state.header));
        type Derived = (Option<QueueItem>, Vec<TimerItem>, Option<RunningItem>);
        let derive = |h: &overture_core::WorkflowHeader, t: &overture_core::TaskState| -> Derived {
            (rows::queue_item(h, t), rows::task_timers(h, t), rows::running_item(h, t))
        };
        let old_rows: HashMap<u32, Derived> =
            rederive.iter().filter_map(|&seq| state.task(seq).map(|t| (seq, derive(&state.header, t)))).collect();
        let old_workflow_timers = if existed { rows::workflow_timers(&state) } else { Vec::new() };
        let mut def_hash = def_hash;
        for event in &rest {
            evolve::evolve(&mut state, event);
            let revision = state.header.revision;
            wb.put_cf(cf(db, keys::CF_EVENTS), keys::event(id, revision), encode(*event));
            if let Event::TaskLogged { seq, log, time } = event
                && let Some(task) = state.task(*seq)
            {
                let row = TaskLogRow { log: log.clone(), created_time: *time };
                wb.put_cf(cf(db, keys::CF_TASK_LOGS), keys::task_log(&task.task_id, revision), encode(&row));
            }
            if let Event::WorkflowReopened(r) = event
                && let Some(plan) = &r.plan
            {
                // A restart on the latest definition: store its snapshot like a start does.
                def_hash = self.store_plan(wb, plan).0;
            }
        }
        // Tasks a reopen dropped: their rows, their id lookups and what they implied.
        for (seq, task_id, task_type) in &old_task_ids {
            if state.task(*seq).is_none_or(|t| &t.task_id != task_id) {
                wb.delete_cf(cf(db, keys::CF_TASKS), task_id.as_bytes());
                wb.delete_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(task_type, task_id));
            }
            if state.task(*seq).is_none() {
                wb.delete_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(id, *seq));
                let (old_q, old_t, old_r) = old_rows.get(seq).cloned().unwrap_or_default();
                write_diff(db, wb, changes, old_q, None);
                write_diff_all(db, wb, changes, old_t, Vec::new());
                write_diff(db, wb, changes, old_r, None);
            }
        }
        // New task rows, and the difference in queue entries and timers.
        for &seq in &touched {
            let Some(task) = state.task(seq) else { continue };
            wb.put_cf(cf(db, keys::CF_WF_TASKS), keys::wf_task(id, seq), encode(task));
            if created.contains(&seq) {
                let r = TaskRef { workflow_id: id.to_owned(), seq };
                wb.put_cf(cf(db, keys::CF_TASKS), task.task_id.as_bytes(), encode(&r));
                wb.put_cf(cf(db, keys::CF_TASK_INDEX), keys::task_index(&task.task_type, &task.task_id), encode(&r));
            }
        }
        for &seq in &rederive {
            let Some(task) = state.task(seq) else { continue };
            let (old_q, old_t, old_r) = old_rows.get(&seq).cloned().unwrap_or_default();
            let (new_q, new_t, new_r) = derive(&state.header, task);
            write_diff(db, wb, changes, old_q, new_q);
            write_diff_all(db, wb, changes, old_t, new_t);
            write_diff(db, wb, changes, old_r, new_r);
        }
        write_diff_all(db, wb, changes, old_workflow_timers, rows::workflow_timers(&state));
        if indexed_before != Some(indexed(&state.header)) {
            let old_index = match &indexed_before {
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
            let name = state.header.workflow_name.as_str();
            let status = state.header.status;
            match &indexed_before {
                None => count_index(&mut inner.count_deltas, name, status.as_str(), 1),
                Some((before, ..)) if *before != status => {
                    count_index(&mut inner.count_deltas, name, before.as_str(), -1);
                    count_index(&mut inner.count_deltas, name, status.as_str(), 1);
                }
                Some(_) => {}
            }
        }
        if ends {
            changes.ended.push((state.header.workflow_name.clone(), state.header.status));
        }
        changes.workflows.push(id.to_owned());
        let row = WorkflowRow { header: state.header.clone(), def_hash, task_count: state.tasks.len() as u32 };
        wb.put_cf(cf(db, keys::CF_WORKFLOWS), id.as_bytes(), encode(&row));
        let revision = state.header.revision;
        // Cached even if it ended, for the rest of this group (see `Inner::written`).
        if state.header.status.is_terminal() {
            inner.written.insert(id.to_owned(), Written::Ended);
        } else {
            inner.written.remove(id);
        }
        self.cache.lock().put(state, def_hash);
        Ok(Response::Applied { revision })
    }
}

/// A row derived from state: where it is stored and how its changes are reported.
trait DerivedRow: PartialEq + crate::codec::Versioned + Sized {
    const FAMILY: &'static str;
    fn key(&self) -> Vec<u8>;
    fn added(self) -> RowChange;
    fn removed(self) -> RowChange;
}

impl DerivedRow for QueueItem {
    const FAMILY: &'static str = keys::CF_QUEUE;
    fn key(&self) -> Vec<u8> {
        keys::queue(self)
    }
    fn added(self) -> RowChange {
        RowChange::QueueAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::QueueRemoved(self)
    }
}

impl DerivedRow for RunningItem {
    const FAMILY: &'static str = keys::CF_RUNNING;
    fn key(&self) -> Vec<u8> {
        keys::running(self)
    }
    fn added(self) -> RowChange {
        RowChange::RunningAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::RunningRemoved(self)
    }
}

impl DerivedRow for TimerItem {
    const FAMILY: &'static str = keys::CF_TIMERS;
    fn key(&self) -> Vec<u8> {
        keys::timer(self)
    }
    fn added(self) -> RowChange {
        RowChange::TimerAdded(self)
    }
    fn removed(self) -> RowChange {
        RowChange::TimerRemoved(self)
    }
}

/// Writes the change from the row an old state implied to the row the new state implies, and
/// records it for the listener.
fn write_diff<T: DerivedRow>(db: &DB, wb: &mut WriteBatch, changes: &mut Changes, old: Option<T>, new: Option<T>) {
    if old == new {
        return;
    }
    if let Some(old) = old {
        wb.delete_cf(cf(db, T::FAMILY), old.key());
        changes.rows.push(old.removed());
    }
    if let Some(new) = new {
        wb.put_cf(cf(db, T::FAMILY), new.key(), encode(&new));
        changes.rows.push(new.added());
    }
}

/// [`write_diff`] for a set of rows of one kind.
fn write_diff_all<T: DerivedRow + Clone>(
    db: &DB,
    wb: &mut WriteBatch,
    changes: &mut Changes,
    old: Vec<T>,
    new: Vec<T>,
) {
    for gone in old.iter().filter(|o| !new.contains(o)) {
        write_diff(db, wb, changes, Some(gone.clone()), None);
    }
    for added in new.into_iter().filter(|n| !old.contains(n)) {
        write_diff(db, wb, changes, None, Some(added));
    }
}

/// The state machine openraft drives.
pub struct StateMachine {
    pub(crate) shared: Arc<Shared>,
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let inner = self.shared.inner.lock();
        Ok((inner.applied, inner.membership.clone()))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        const MAX_GROUP: usize = 512;
        while let Some(first) = entries.try_next().await? {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match entries.try_next().now_or_never() {
                    Some(Ok(Some(next))) => group.push(next),
                    Some(Err(e)) => return Err(e),
                    Some(Ok(None)) | None => break,
                }
            }
            for (responder, response) in self.shared.apply_group(group)? {
                if let Some(responder) = responder {
                    responder.send(response);
                }
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder { shared: self.shared.clone() }
    }

    async fn install_snapshot(&mut self, meta: &SnapshotMeta, snapshot: SnapshotFile) -> Result<(), io::Error> {
        let shared = self.shared.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || crate::snapshot::install(&shared, &meta, snapshot)).await.map_err(io_err)?
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>>, io::Error> {
        crate::snapshot::current(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::entry::RaftEntry;
    use overture_core::command::{Command, Ctx, IdSource, StartWorkflow};

    use super::*;
    use crate::replica::{ReplicaOptions, Storage};
    use crate::types::Entry;

    struct Ids(u32);
    impl IdSource for Ids {
        fn next_id(&mut self) -> String {
            self.0 += 1;
            format!("task-{}", self.0)
        }
    }

    /// A child workflow's life in three batches: it starts, it is terminated, and it records
    /// that its parent was told (a follow-up an ended workflow acknowledges).
    fn a_child_that_ends_and_tells_its_parent() -> Vec<Request> {
        let def: WorkflowDef = serde_json::from_value(serde_json::json!({
            "name": "child", "tasks": [{"name": "a", "taskReferenceName": "a"}]
        }))
        .expect("a definition");
        let start = StartWorkflow {
            parent: Some(("parent".into(), "parent-task".into())),
            ..StartWorkflow::new("wf", Arc::new(Plan::new(def)))
        };
        let mut ids = Ids(0);
        let (mut state, events) = overture_core::decide::start(start, &mut Ctx::new(1_000, &mut ids));
        let started = WorkflowBatch { workflow_id: "wf".into(), expected_revision: 0, events };
        let revision = state.header.revision;
        let terminate = Command::Terminate { reason: Some("done".into()) };
        let events =
            overture_core::decide::decide(&mut state, terminate, &mut Ctx::new(2_000, &mut ids)).expect("ends");
        let ended = WorkflowBatch { workflow_id: "wf".into(), expected_revision: revision, events };
        let revision = state.header.revision;
        let events = overture_core::decide::decide(&mut state, Command::ParentNotified, &mut Ctx::new(3_000, &mut ids))
            .expect("acknowledged");
        let notified = WorkflowBatch { workflow_id: "wf".into(), expected_revision: revision, events };
        vec![Request::Workflow(started), Request::Workflow(ended), Request::Workflow(notified)]
    }

    /// Applies `requests` in groups of `sizes`; the responses and every state-machine row.
    fn apply_in_groups(requests: &[Request], sizes: &[usize]) -> (Vec<Response>, BTreeMap<Vec<u8>, Vec<u8>>) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let storage = Storage::open(&ReplicaOptions::new(1, dir.path().to_path_buf())).expect("opens");
        let shared = storage.state_machine.shared.clone();
        let mut entries = requests.iter().enumerate().map(|(i, r)| {
            (Entry::new_normal(openraft::testing::log_id::<TypeConfig>(1, 1, i as u64 + 1), r.clone()), None)
        });
        let mut responses = Vec::new();
        for size in sizes {
            let group: Vec<_> = entries.by_ref().take(*size).collect();
            responses.extend(shared.apply_group(group).expect("applies").into_iter().map(|(_, r)| r));
        }
        let mut rows = BTreeMap::new();
        for family in keys::STATE_MACHINE.iter().filter(|f| **f != keys::CF_SM_META) {
            for item in shared.db.iterator_cf(cf(&shared.db, family), rocksdb::IteratorMode::Start) {
                let (k, v) = item.expect("a row");
                rows.insert([family.as_bytes(), b"/", &k].concat(), v.to_vec());
            }
        }
        (responses, rows)
    }

    /// Followers group entries differently from the leader. An ended workflow used to be read
    /// back from disk by a later entry of the same group, before the group was written: the
    /// entry conflicted on one replica and applied on another, and their states diverged (the
    /// soak found it).
    #[test]
    fn entries_apply_the_same_however_they_are_grouped() {
        let requests = a_child_that_ends_and_tells_its_parent();
        let (one_by_one, rows) = apply_in_groups(&requests, &[1, 1, 1]);
        assert!(one_by_one.iter().all(|r| matches!(r, Response::Applied { .. })), "{one_by_one:?}");
        for sizes in [&[3][..], &[2, 1], &[1, 2]] {
            let (grouped, grouped_rows) = apply_in_groups(&requests, sizes);
            assert_eq!(grouped, one_by_one, "groups of {sizes:?}");
            assert!(grouped_rows == rows, "groups of {sizes:?} wrote other rows");
        }
    }
}

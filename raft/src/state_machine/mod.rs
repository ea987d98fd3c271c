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

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use openraft::EntryPayload;
use openraft::storage::EntryResponder;
use overture_core::rows::{QueueItem, RunningItem, TimerItem};
use overture_core::{Plan, WorkflowId, WorkflowState, WorkflowStatus};
use parking_lot::{Mutex, RwLock};
use rocksdb::WriteBatch;
use sha2::{Digest, Sha256};

use crate::GroupDb;
use crate::codec::{JsonBytes, decode, encode};
use crate::defs::Defs;
use crate::keys::{self, TaskRef, WorkflowRow, meta};
use crate::types::{LogId, Request, Response, StoredMembership, TypeConfig};

mod derived;
mod payloads;
mod schedules;
mod workflows;
use crate::{cf, io_err};

/// A change to a queue entry or timer row, in the order apply made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowChange {
    /// A task entered a worker queue: its `queue` row was written.
    QueueAdded(QueueItem),
    /// A task's `queue` row was deleted: it is no longer SCHEDULED, or its workflow ended.
    QueueRemoved(QueueItem),
    /// A durable timer was armed: its `timers` row was written.
    TimerAdded(TimerItem),
    /// A timer's `timers` row was deleted: it fired, or its deadline no longer applies.
    TimerRemoved(TimerItem),
    /// A worker task became IN_PROGRESS: its `running` row was written.
    RunningAdded(RunningItem),
    /// A worker task's `running` row was deleted: it left IN_PROGRESS, or its workflow ended.
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
    pub workflows: Vec<WorkflowId>,
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

/// A response to send once the group's write is done, and where to send it.
type Reply = (Option<openraft::storage::ApplyResponder<TypeConfig>>, Response);

/// State shared between the state machine (owned by openraft) and the read side.
pub(crate) struct Shared {
    pub db: Arc<GroupDb>,
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
    pub pending_keys: HashMap<Vec<u8>, WorkflowId>,
    /// Workflows this apply group ended or removed, which the disk shows only once the group's
    /// batch is written. Later entries of the group see them as the group left them, wherever
    /// the group boundaries fall: the leader and each follower group entries differently, and
    /// reading the disk here made a batch apply on one replica and conflict on another.
    pub written: HashMap<WorkflowId, Written>,
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
    entries: HashMap<WorkflowId, Cached>,
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
        let mut state = WorkflowState::new(row.header, plan, tasks);
        state.pad_pruned(row.task_count);
        for item in db.prefix_iterator_cf(cf(db, keys::CF_WF_EXTERNALS), &prefix) {
            let (key, value) = item.map_err(io_err)?;
            let Some(target) = key.strip_prefix(prefix.as_slice()) else { break };
            let Some(target) = overture_core::external::PayloadTarget::from_key(target) else { continue };
            let row: keys::ExternalRow = decode(&value).map_err(io_err)?;
            state.set_external(target, row.path, false);
        }
        Ok(Some((state, row.def_hash)))
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
            let workflow_id = String::from_utf8_lossy(&key[..split]).into_owned().into();
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
        let plan = Plan::from_def_json(json.0).map_err(io_err)?;
        let mut plans = self.plans.lock();
        if plans.len() > 4096 {
            plans.clear();
        }
        plans.insert(*hash, plan.clone());
        Ok(plan)
    }

    /// Applies a group of entries in one write.
    pub(crate) fn apply_group(&self, group: Vec<EntryResponder<TypeConfig>>) -> Result<Vec<Reply>, io::Error> {
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

    /// Applies one request: the one place every [`Request`] variant is dispatched.
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
            Request::PurgeWorkflows { workflows } => self.apply_purge(inner, wb, changes, workflows),
            Request::PutSchedule { schedule } => self.put_schedule(wb, schedule),
            Request::DeleteSchedule { name } => self.delete_schedule(wb, &name),
            Request::FireSchedule { name, scheduled_time, next_run_time, execution, start } => {
                let fire = schedules::Fire { name, scheduled_time, next_run_time, execution, start };
                self.apply_fire(inner, wb, changes, fire)
            }
            Request::PutTaskDefs { defs } => self.apply_defs(wb, |d| d.put_task_defs(defs)),
            Request::PutVariable { kind, name, value } => self.apply_defs(wb, |d| d.put_variable(kind, &name, &value)),
            Request::DeleteVariable { kind, name } => self.apply_defs(wb, |d| d.delete_variable(kind, &name)),
            Request::UpdateTaskDef { def, time } => self.apply_defs(wb, |d| d.update_task_def(def, time)),
            Request::DeleteTaskDef { name } => self.apply_defs(wb, |d| d.delete_task_def(&name)),
            Request::PutWorkflowDefs { defs, overwrite, time } => {
                self.apply_defs(wb, |d| d.put_workflow_defs(defs, overwrite, time))
            }
            Request::DeleteWorkflowDef { name, version } => {
                self.apply_defs(wb, |d| d.delete_workflow_def(&name, version))
            }
            Request::PutEventHandler { handler, create } => {
                self.apply_defs(wb, |d| d.put_event_handler(handler, create))
            }
            Request::DeleteEventHandler { name } => self.apply_defs(wb, |d| d.delete_event_handler(&name)),
            Request::PutPayloadPart { path, index, parts, bytes } => {
                self.apply_payload_part(wb, &path, index, parts, bytes)
            }
            Request::PutQueuePositions { queue, positions } => {
                // Written as they come: only the leader's one consumer of a queue proposes them.
                for (partition, offset) in positions {
                    let key = keys::queue_position(&queue, partition);
                    wb.put_cf(cf(&self.db, keys::CF_DEFS), key, encode(&keys::QueuePosition { offset }));
                }
                Ok(Response::Ok)
            }
        }
    }

    /// Applies a definition change. It reads what is stored, so what this group has pending is
    /// written first; the compiled plans of stored definitions are dropped after.
    fn apply_defs(
        &self,
        wb: &mut WriteBatch,
        apply: impl FnOnce(&Defs<'_>) -> Result<Response, io::Error>,
    ) -> Result<Response, io::Error> {
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        let response = apply(&Defs { db: &self.db, disk: &self.disk });
        self.start_plans.lock().invalidate();
        response
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use openraft::entry::RaftEntry;
    use overture_core::command::{Command, Ctx, IdSource, StartWorkflow};
    use overture_core::dsl::WorkflowDef;

    use super::*;
    use crate::replica::{ReplicaOptions, Storage};
    use crate::types::{Entry, WorkflowBatch};

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

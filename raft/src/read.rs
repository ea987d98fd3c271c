//! Reads of the local replica: what a node serves without asking the leader.
//!
//! On the leader this is the committed state. On a follower it may lag by the entries it has not
//! applied yet.

use std::io;
use std::sync::Arc;

use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use overture_core::rows::{QueueItem, RunningItem, TimerItem};
use overture_core::{Event, Plan, WorkflowState};
use rocksdb::{Direction, IteratorMode};

use crate::codec::{JsonBytes, Versioned, decode};
use crate::keys::{self, CF_DEFS, TaskLogRow, TaskRef};
use crate::state_machine::Shared;
use crate::types::{Hidden, VariableKind};
use crate::{cf, io_err};

/// Start plans kept at most; beyond, the cache starts over.
const START_PLANS_KEPT: usize = 1024;

/// A cheap, cloneable reader of the replica's state.
///
/// A partition group's view reads definitions, event handlers, schedules, variables and broker
/// positions from the metadata group's replica on the same node ([`ReadView::metadata`]): they
/// live there, and every node replicates it.
#[derive(Clone)]
pub struct ReadView {
    pub(crate) shared: Arc<Shared>,
    pub(crate) meta: Option<Arc<ReadView>>,
}

impl ReadView {
    /// A view of a group's state machine that holds its own metadata.
    pub(crate) fn new(shared: Arc<Shared>) -> ReadView {
        ReadView { shared, meta: None }
    }

    /// The view metadata is read from: the metadata group's on a partition, else this one.
    pub fn metadata(&self) -> &ReadView {
        self.meta.as_deref().unwrap_or(self)
    }

    /// An execution with its tasks and definition.
    pub fn workflow(&self, id: &str) -> Result<Option<WorkflowState>, io::Error> {
        if let Some(cached) = self.shared.cache.lock().get(id) {
            return Ok(Some(cached.state.clone()));
        }
        Ok(self.shared.load_from_disk(id)?.map(|(state, _)| state))
    }

    /// The plan a start of `name` runs (`version`, or the latest with `None`): compiled by
    /// `build` from the stored definitions on first use, then shared by every start until a
    /// definition changes. `build` answers `None` when there is no such definition.
    pub fn start_plan<E>(
        &self,
        name: &str,
        version: Option<i32>,
        build: impl FnOnce(&ReadView) -> Result<Option<Plan>, E>,
    ) -> Result<Option<Arc<Plan>>, E> {
        if let Some(meta) = &self.meta {
            return meta.start_plan(name, version, build);
        }
        let key = (name.to_owned(), version);
        let generation = {
            let plans = self.shared.start_plans.lock();
            if let Some(plan) = plans.plans.get(&key) {
                return Ok(Some(plan.clone()));
            }
            plans.generation
        };
        let Some(plan) = build(self)?.map(Arc::new) else { return Ok(None) };
        let mut plans = self.shared.start_plans.lock();
        // Built from reads made before a definition changed: good for this start, which raced
        // the change, but not to keep.
        if plans.generation == generation {
            if plans.plans.len() >= START_PLANS_KEPT {
                plans.plans.clear();
            }
            plans.plans.insert(key, plan.clone());
        }
        Ok(Some(plan))
    }

    /// Which workflow owns a task.
    pub fn task_owner(&self, task_id: &str) -> Result<Option<TaskRef>, io::Error> {
        self.get(keys::CF_TASKS, task_id.as_bytes())
    }

    /// A task definition.
    pub fn task_def(&self, name: &str) -> Result<Option<TaskDef>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.task_def(name);
        }
        self.def(&keys::task_def(name))
    }

    /// Every task definition, by name.
    pub fn task_defs(&self) -> Result<Vec<TaskDef>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.task_defs();
        }
        self.defs(keys::TASK_DEF_PREFIX)
    }

    /// A workflow definition: the given version, or the latest.
    pub fn workflow_def(&self, name: &str, version: Option<i32>) -> Result<Option<WorkflowDef>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.workflow_def(name, version);
        }
        match version {
            Some(v) => self.def(&keys::workflow_def(name, v)),
            None => {
                let prefix = keys::workflow_def_versions(name);
                let mut upper = prefix.clone();
                upper.extend_from_slice(&[0xFF; 5]);
                let db = &self.shared.db;
                let mut it = db.iterator_cf(cf(db, CF_DEFS), IteratorMode::From(&upper, Direction::Reverse));
                match it.next() {
                    Some(item) => {
                        let (key, value) = item.map_err(io_err)?;
                        if !key.starts_with(&prefix) {
                            return Ok(None);
                        }
                        let json: JsonBytes = decode(&value).map_err(io_err)?;
                        json.parse().map(Some).map_err(io_err)
                    }
                    None => Ok(None),
                }
            }
        }
    }

    /// Every version of every workflow definition, by name then version.
    pub fn workflow_defs(&self) -> Result<Vec<WorkflowDef>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.workflow_defs();
        }
        self.defs(keys::WORKFLOW_DEF_PREFIX)
    }

    /// Every event handler, by name.
    pub fn event_handlers(&self) -> Result<Vec<EventHandler>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.event_handlers();
        }
        self.defs(keys::EVENT_HANDLER_PREFIX)
    }

    /// A task's execution log, oldest first.
    pub fn task_logs(&self, task_id: &str) -> Result<Vec<TaskLogRow>, io::Error> {
        self.scan(keys::CF_TASK_LOGS, &keys::prefix(task_id))
    }

    /// Tasks waiting in one worker queue.
    pub fn queue_size(&self, queue: &str) -> Result<usize, io::Error> {
        let db = &self.shared.db;
        let prefix = keys::prefix(queue);
        let mut n = 0;
        for item in db.iterator_cf(cf(db, keys::CF_QUEUE), IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, _) = item.map_err(io_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Every queue entry, for rebuilding in-memory queues.
    pub fn queue_entries(&self) -> Result<Vec<QueueItem>, io::Error> {
        self.scan(keys::CF_QUEUE, &[])
    }

    /// A workflow's events with their revisions, oldest first.
    pub fn events(&self, workflow_id: &str) -> Result<Vec<(u64, Event)>, io::Error> {
        let db = &self.shared.db;
        let prefix = keys::prefix(workflow_id);
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, keys::CF_EVENTS), IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            if !key.starts_with(&prefix) {
                break;
            }
            let revision = key[prefix.len()..].try_into().map(u64::from_be_bytes).unwrap_or(0);
            out.push((revision, decode(&value).map_err(io_err)?));
        }
        Ok(out)
    }

    /// Every IN_PROGRESS worker task, by task definition.
    pub fn running_entries(&self) -> Result<Vec<RunningItem>, io::Error> {
        self.scan(keys::CF_RUNNING, &[])
    }

    /// The IN_PROGRESS worker tasks of one task definition.
    pub fn running_of(&self, task_def_name: &str) -> Result<Vec<RunningItem>, io::Error> {
        self.scan(keys::CF_RUNNING, &keys::prefix(task_def_name))
    }

    /// Every timer, in firing order.
    pub fn timers(&self) -> Result<Vec<TimerItem>, io::Error> {
        self.scan(keys::CF_TIMERS, &[])
    }

    /// Every schedule, by name.
    pub fn schedules(&self) -> Result<Vec<overture_core::schedule::WorkflowSchedule>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.schedules();
        }
        self.json_rows(keys::CF_SCHEDULES, &[])
    }

    /// One schedule.
    pub fn schedule(&self, name: &str) -> Result<Option<overture_core::schedule::WorkflowSchedule>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.schedule(name);
        }
        match self.get::<JsonBytes>(keys::CF_SCHEDULES, name.as_bytes())? {
            None => Ok(None),
            Some(json) => json.parse().map(Some).map_err(io_err),
        }
    }

    /// The recorded fires of every schedule, by schedule then time.
    pub fn schedule_runs(&self) -> Result<Vec<overture_core::schedule::ScheduleExecution>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.schedule_runs();
        }
        self.json_rows(keys::CF_SCHEDULE_RUNS, &[])
    }

    /// Index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.shared.applied_index.load(std::sync::atomic::Ordering::Acquire)
    }

    fn get<T: Versioned>(&self, family: &str, key: &[u8]) -> Result<Option<T>, io::Error> {
        let db = &self.shared.db;
        match db.get_cf(cf(db, family), key).map_err(io_err)? {
            None => Ok(None),
            Some(bytes) => decode(&bytes).map(Some).map_err(io_err),
        }
    }

    /// The names of every variable of `kind`, sorted.
    pub fn variable_names(&self, kind: VariableKind) -> Result<Vec<String>, io::Error> {
        Ok(self.variables(kind)?.into_iter().map(|(name, _)| name).collect())
    }

    /// Every variable of `kind` with its value, sorted by name.
    pub fn variables(&self, kind: VariableKind) -> Result<Vec<(String, String)>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.variables(kind);
        }
        let db = &self.shared.db;
        let prefix = keys::variable_prefix(kind);
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, CF_DEFS), IteratorMode::From(prefix, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            let Some(name) = key.strip_prefix(prefix) else { break };
            let value: Hidden = decode(&value).map_err(io_err)?;
            out.push((String::from_utf8_lossy(name).into_owned(), value.0));
        }
        Ok(out)
    }

    /// The size of the payload stored at `path`, if one is stored there completely (in this
    /// group, or else in the metadata group, where clients' uploads go).
    pub fn payload_size(&self, path: &str) -> Result<Option<u64>, io::Error> {
        match self.get::<keys::PayloadManifest>(keys::CF_PAYLOADS, &keys::payload_manifest(path))? {
            Some(manifest) => Ok(Some(manifest.size)),
            None => self.meta.as_ref().map_or(Ok(None), |meta| meta.payload_size(path)),
        }
    }

    /// The payload stored at `path`, if one is stored there completely (in this group, or else
    /// in the metadata group).
    pub fn payload(&self, path: &str) -> Result<Option<Vec<u8>>, io::Error> {
        let Some(manifest) = self.get::<keys::PayloadManifest>(keys::CF_PAYLOADS, &keys::payload_manifest(path))?
        else {
            return self.meta.as_ref().map_or(Ok(None), |meta| meta.payload(path));
        };
        let mut out = Vec::with_capacity(manifest.size as usize);
        for index in 0..manifest.parts {
            let part: keys::PayloadPart = self
                .get(keys::CF_PAYLOADS, &keys::payload_part(path, index))?
                .ok_or_else(|| io_err(format!("part {index} of the payload at {path} is missing")))?;
            out.extend_from_slice(&part.0);
        }
        Ok(Some(out))
    }

    /// The positions kept for a broker queue's consumer (`kafka:topic`): partition → offset to
    /// read next.
    pub fn queue_positions(&self, queue: &str) -> Result<std::collections::BTreeMap<u32, i64>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.queue_positions(queue);
        }
        let db = &self.shared.db;
        let prefix = keys::queue_positions(queue);
        let mut out = std::collections::BTreeMap::new();
        for item in db.iterator_cf(cf(db, CF_DEFS), IteratorMode::From(&prefix, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            let Some(partition) = key.strip_prefix(prefix.as_slice()) else { break };
            let Ok(partition) = <[u8; 4]>::try_from(partition) else { continue };
            let position: keys::QueuePosition = decode(&value).map_err(io_err)?;
            out.insert(u32::from_be_bytes(partition), position.offset);
        }
        Ok(out)
    }

    /// The value of one variable of `kind`.
    pub fn variable(&self, kind: VariableKind, name: &str) -> Result<Option<String>, io::Error> {
        if let Some(meta) = &self.meta {
            return meta.variable(kind, name);
        }
        Ok(self.get::<Hidden>(CF_DEFS, &keys::variable(kind, name))?.map(|h| h.0))
    }

    fn def<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Option<T>, io::Error> {
        match self.get::<JsonBytes>(CF_DEFS, key)? {
            None => Ok(None),
            Some(json) => json.parse().map(Some).map_err(io_err),
        }
    }

    fn defs<T: serde::de::DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, io::Error> {
        self.json_rows(CF_DEFS, prefix)
    }

    /// Rows of JSON values under `prefix`, parsed.
    fn json_rows<T: serde::de::DeserializeOwned>(&self, family: &str, prefix: &[u8]) -> Result<Vec<T>, io::Error> {
        self.scan::<JsonBytes>(family, prefix)?.iter().map(|j| j.parse().map_err(io_err)).collect()
    }

    /// Rows of one stored type under `prefix`, in key order.
    pub(crate) fn scan<T: Versioned>(&self, family: &str, prefix: &[u8]) -> Result<Vec<T>, io::Error> {
        let db = &self.shared.db;
        let mut out = Vec::new();
        for item in db.iterator_cf(cf(db, family), IteratorMode::From(prefix, Direction::Forward)) {
            let (key, value) = item.map_err(io_err)?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push(decode(&value).map_err(io_err)?);
        }
        Ok(out)
    }
}

//! Column families and key encodings: the storage layout in one place.
//!
//! | family | key | value |
//! |---|---|---|
//! | `raft_log` | index (u64 BE) | [`crate::types::Entry`] |
//! | `raft_meta` | `vote`, `committed`, `purged` | vote / log id |
//! | `sm_meta` | `applied`, `membership`, `snapshot`, `installing` | log id, membership, snapshot info |
//! | `defs` | `t` name · `w` name 0x00 version (u32 BE) | definition JSON |
//! | `defs` | `e` name · `s` name · `v` name | event handler JSON · secret · environment variable |
//! | `defs` | `p` queue 0x00 partition (u32 BE) | [`QueuePosition`] |
//! | `def_blobs` | SHA-256 of a definition's JSON | that JSON (definitions of running executions) |
//! | `workflows` | workflow id | [`WorkflowRow`] |
//! | `wf_tasks` | workflow id 0x00 seq (u32 BE) | [`overture_core::TaskState`] |
//! | `tasks` | task id | [`TaskRef`] |
//! | `events` | workflow id 0x00 revision (u64 BE) | [`overture_core::Event`] |
//! | `queue` | queue name 0x00 task id | [`overture_core::rows::QueueItem`] |
//! | `timers` | fire-at (u64 BE) workflow id 0x00 kind seq (u32 BE) | [`overture_core::rows::TimerItem`] |
//! | `task_logs` | task id 0x00 revision (u64 BE) | [`TaskLogRow`] |
//! | `running` | task def name 0x00 task id | [`overture_core::rows::RunningItem`] |
//! | `idempotency` | workflow name 0x00 idempotency key | [`IdempotencyRow`] |
//! | `wf_index` | kind, fields 0x00 …, start time (u64 BE), workflow id | empty (see [`workflow_index`]) |
//! | `task_index` | task type 0x00 task id | [`TaskRef`] |
//! | `schedules` | schedule name | schedule JSON (`WorkflowSchedule`, with its next fire) |
//! | `schedule_runs` | schedule name 0x00 scheduled time (u64 BE) | execution JSON (`ScheduleExecution`) |
//!
//! Ids and names never contain 0x00 (validation rejects it), so 0x00 separates key parts and
//! keeps prefix scans exact.

use overture_core::rows::{QueueItem, RunningItem, TimerItem};
use overture_core::{Event, TaskState, WorkflowHeader, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::codec::{JsonBytes, Versioned};

/// The Raft log.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Vote, committed and purged log ids.
pub const CF_RAFT_META: &str = "raft_meta";
/// Applied log id, membership, snapshot bookkeeping.
pub const CF_SM_META: &str = "sm_meta";
/// Registered definitions.
pub const CF_DEFS: &str = "defs";
/// Definitions referenced by executions, by content hash.
pub const CF_DEF_BLOBS: &str = "def_blobs";
/// Workflow headers.
pub const CF_WORKFLOWS: &str = "workflows";
/// Task rows, by workflow.
pub const CF_WF_TASKS: &str = "wf_tasks";
/// Families whose keys start with a workflow id.
pub const WORKFLOW_KEYED: [&str; 4] = [CF_WORKFLOWS, CF_WF_TASKS, CF_EVENTS, CF_WF_EXTERNALS];
/// Task id → owning workflow.
pub const CF_TASKS: &str = "tasks";
/// Every event of every execution.
pub const CF_EVENTS: &str = "events";
/// Worker queue entries.
pub const CF_QUEUE: &str = "queue";
/// Durable timers.
pub const CF_TIMERS: &str = "timers";
/// Task execution logs.
pub const CF_TASK_LOGS: &str = "task_logs";
/// IN_PROGRESS worker tasks by task definition: task def name 0x00 task id → `RunningItem`.
pub const CF_RUNNING: &str = "running";
/// Idempotency keys: workflow name 0x00 key → [`IdempotencyRow`].
pub const CF_IDEMPOTENCY: &str = "idempotency";

/// Search index of workflows: see [`workflow_index`].
pub const CF_WF_INDEX: &str = "wf_index";
/// Search index of tasks by type: task type 0x00 task id → [`TaskRef`].
pub const CF_TASK_INDEX: &str = "task_index";

/// Workflow schedules: name → `WorkflowSchedule` JSON.
pub const CF_SCHEDULES: &str = "schedules";
/// Recent fires of each schedule: name 0x00 scheduled time → `ScheduleExecution` JSON.
pub const CF_SCHEDULE_RUNS: &str = "schedule_runs";
/// Payloads of executions stored outside their rows: workflow id 0x00 target key
/// ([`overture_core::external::PayloadTarget::key`]) → [`ExternalRow`].
pub const CF_WF_EXTERNALS: &str = "wf_externals";
/// External payload storage: `m` path → [`PayloadManifest`] once complete, `c` path 0x00 part
/// number (u32, big-endian) → [`PayloadPart`].
pub const CF_PAYLOADS: &str = "payloads";

/// The families that make up the state machine: what a snapshot holds and an install replaces.
/// (A snapshot names families by position: new ones go at the end.)
pub const STATE_MACHINE: [&str; 18] = [
    CF_SM_META,
    CF_DEFS,
    CF_DEF_BLOBS,
    CF_WORKFLOWS,
    CF_WF_TASKS,
    CF_TASKS,
    CF_EVENTS,
    CF_QUEUE,
    CF_TIMERS,
    CF_TASK_LOGS,
    CF_RUNNING,
    CF_IDEMPOTENCY,
    CF_WF_INDEX,
    CF_TASK_INDEX,
    CF_SCHEDULES,
    CF_SCHEDULE_RUNS,
    CF_WF_EXTERNALS,
    CF_PAYLOADS,
];

/// The families of the Raft log itself.
pub const RAFT: [&str; 2] = [CF_RAFT_LOG, CF_RAFT_META];

/// Every column family.
pub fn all() -> impl Iterator<Item = &'static str> {
    RAFT.into_iter().chain(STATE_MACHINE)
}

/// `raft_meta` / `sm_meta` keys.
pub mod meta {
    /// `raft_meta`: the `Vote` this node last saved (its term and whom it voted for).
    pub const VOTE: &[u8] = b"vote";
    /// `raft_meta`: the `LogId` of the last entry known committed; absent if none is.
    pub const COMMITTED: &[u8] = b"committed";
    /// `raft_meta`: the `LogId` of the last entry purged from the log.
    pub const PURGED: &[u8] = b"purged";
    /// `sm_meta`: the `LogId` of the last entry applied to the state machine.
    pub const APPLIED: &[u8] = b"applied";
    /// `sm_meta`: the `StoredMembership` as of the last applied entry.
    pub const MEMBERSHIP: &[u8] = b"membership";
    /// `sm_meta`: JSON of the last snapshot built or installed: its metadata and file name.
    pub const SNAPSHOT: &[u8] = b"snapshot";
    /// `sm_meta`: file name of a snapshot being installed, until the install ends (a crash
    /// resumes it).
    pub const INSTALLING: &[u8] = b"installing";
}

/// Big-endian log index.
pub fn log_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Inverse of [`log_index`].
pub fn parse_log_index(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(..8)?.try_into().ok()?))
}

fn joined(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(p);
    }
    out
}

/// `id 0x00`: the prefix of everything stored under one workflow or task id.
pub fn prefix(id: &str) -> Vec<u8> {
    let mut out = id.as_bytes().to_vec();
    out.push(0);
    out
}

/// Key of a task definition.
pub fn task_def(name: &str) -> Vec<u8> {
    let mut out = b"t".to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// Prefix of all task definitions.
pub const TASK_DEF_PREFIX: &[u8] = b"t";
/// The key range `[id 0x00, id 0x01)` of every row keyed by `id 0x00 ...`.
pub fn prefix_range(id: &str) -> (Vec<u8>, Vec<u8>) {
    let from = prefix(id);
    let mut to = id.as_bytes().to_vec();
    to.push(1);
    (from, to)
}

/// Key of a running row.
pub fn running(item: &RunningItem) -> Vec<u8> {
    let mut out = prefix(&item.task_def_name);
    out.extend_from_slice(item.task_id.as_bytes());
    out
}

/// Key of an event handler.
pub fn event_handler(name: &str) -> Vec<u8> {
    let mut out = EVENT_HANDLER_PREFIX.to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}

/// Prefix of all event handlers.
pub const EVENT_HANDLER_PREFIX: &[u8] = b"e";
/// Prefix of all secrets.
pub const SECRET_PREFIX: &[u8] = b"s";
/// Prefix of all environment variables.
pub const ENV_PREFIX: &[u8] = b"v";

/// Prefix of every consumer position kept here (for brokers that keep none for Overture).
pub const QUEUE_POSITION_PREFIX: &[u8] = b"p";

/// Prefix of the positions of one queue (`kafka:topic`).
pub fn queue_positions(queue: &str) -> Vec<u8> {
    let mut out = QUEUE_POSITION_PREFIX.to_vec();
    out.extend_from_slice(queue.as_bytes());
    out.push(0);
    out
}

/// Key of one partition's position in a queue.
pub fn queue_position(queue: &str, partition: u32) -> Vec<u8> {
    let mut out = queue_positions(queue);
    out.extend_from_slice(&partition.to_be_bytes());
    out
}

/// Prefix of every variable of one kind.
pub fn variable_prefix(kind: crate::types::VariableKind) -> &'static [u8] {
    match kind {
        crate::types::VariableKind::Secret => SECRET_PREFIX,
        crate::types::VariableKind::Env => ENV_PREFIX,
    }
}

/// Key of a secret or an environment variable.
pub fn variable(kind: crate::types::VariableKind, name: &str) -> Vec<u8> {
    let mut out = variable_prefix(kind).to_vec();
    out.extend_from_slice(name.as_bytes());
    out
}
/// Prefix of all workflow definitions.
pub const WORKFLOW_DEF_PREFIX: &[u8] = b"w";

/// Prefix of every version of one workflow definition.
pub fn workflow_def_versions(name: &str) -> Vec<u8> {
    let mut out = b"w".to_vec();
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out
}

/// Key of one workflow definition version.
pub fn workflow_def(name: &str, version: i32) -> Vec<u8> {
    let mut out = workflow_def_versions(name);
    out.extend_from_slice(&(version.max(0) as u32).to_be_bytes());
    out
}

/// Key of a task row.
pub fn wf_task(workflow_id: &str, seq: u32) -> Vec<u8> {
    joined(&[workflow_id.as_bytes(), &seq.to_be_bytes()])
}

/// Key of an event.
pub fn event(workflow_id: &str, revision: u64) -> Vec<u8> {
    joined(&[workflow_id.as_bytes(), &revision.to_be_bytes()])
}

/// Key of a queue entry.
pub fn queue(item: &QueueItem) -> Vec<u8> {
    joined(&[item.queue.as_bytes(), item.task_id.as_bytes()])
}

/// Key of a timer: ordered by fire time.
pub fn timer(item: &TimerItem) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + item.workflow_id.len() + 6);
    out.extend_from_slice(&(item.fire_at.max(0) as u64).to_be_bytes());
    out.extend_from_slice(item.workflow_id.as_bytes());
    out.push(0);
    out.push(item.kind.code());
    out.extend_from_slice(&item.seq.to_be_bytes());
    out
}

/// Key of a task log line.
pub fn task_log(task_id: &str, revision: u64) -> Vec<u8> {
    joined(&[task_id.as_bytes(), &revision.to_be_bytes()])
}

/// A workflow header as stored: the definition is referenced by content hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowRow {
    /// The execution's header as of its latest applied event.
    pub header: WorkflowHeader,
    /// Key into `def_blobs`.
    pub def_hash: [u8; 32],
    /// Number of task rows.
    pub task_count: u32,
}

/// The workflow an idempotency key started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRow {
    /// Id of the workflow the idempotency key started.
    pub workflow_id: WorkflowId,
}

/// Key of an idempotency row.
pub fn idempotency(workflow_name: &str, key: &str) -> Vec<u8> {
    let mut out = prefix(workflow_name);
    out.extend_from_slice(key.as_bytes());
    out
}

/// The kinds of `wf_index` rows. Every key is the kind's prefix, then the start time (u64 BE),
/// then the workflow id, so each prefix lists its workflows in start order.
pub mod index {
    /// All workflows.
    pub const ALL: u8 = b'a';
    /// By status: `s` status 0x00.
    pub const STATUS: u8 = b's';
    /// By definition name: `t` name 0x00.
    pub const TYPE: u8 = b't';
    /// By definition name and status: `n` name 0x00 status 0x00.
    pub const TYPE_STATUS: u8 = b'n';
    /// By correlation id: `c` correlation id 0x00.
    pub const CORRELATION: u8 = b'c';
}

/// The prefix of one kind of `wf_index` row with its field values.
pub fn workflow_index_prefix(kind: u8, fields: &[&str]) -> Vec<u8> {
    let mut out = vec![kind];
    for field in fields {
        out.extend_from_slice(field.as_bytes());
        out.push(0);
    }
    out
}

/// The `wf_index` prefixes a workflow with this name and status is counted under: the whole
/// index, by status, by name, by name and status (not by correlation id: those are many and
/// selective).
pub fn counted_prefixes(name: &str, status: &str) -> [Vec<u8>; 4] {
    [
        workflow_index_prefix(index::ALL, &[]),
        workflow_index_prefix(index::STATUS, &[status]),
        workflow_index_prefix(index::TYPE, &[name]),
        workflow_index_prefix(index::TYPE_STATUS, &[name, status]),
    ]
}

/// Whether the sizes of `wf_index` rows under this prefix are counted (see [`counted_prefixes`]).
pub fn is_counted_prefix(prefix: &[u8]) -> bool {
    matches!(prefix.first(), Some(&(index::ALL | index::STATUS | index::TYPE | index::TYPE_STATUS)))
}

/// Every `wf_index` key of a workflow, from its header.
pub fn workflow_index(h: &WorkflowHeader) -> Vec<Vec<u8>> {
    workflow_index_of(h, h.status, h.create_time, h.correlation_id.as_deref())
}

/// The `wf_index` keys of a workflow (whose id and name never change) had its status, start
/// time and correlation id been these.
pub fn workflow_index_of(
    h: &WorkflowHeader,
    status: overture_core::WorkflowStatus,
    create_time: i64,
    correlation_id: Option<&str>,
) -> Vec<Vec<u8>> {
    let (name, status) = (h.workflow_name.as_str(), status.as_str());
    let mut prefixes = vec![
        workflow_index_prefix(index::ALL, &[]),
        workflow_index_prefix(index::STATUS, &[status]),
        workflow_index_prefix(index::TYPE, &[name]),
        workflow_index_prefix(index::TYPE_STATUS, &[name, status]),
    ];
    if let Some(correlation) = correlation_id.filter(|c| !c.is_empty()) {
        prefixes.push(workflow_index_prefix(index::CORRELATION, &[correlation]));
    }
    for key in &mut prefixes {
        key.extend_from_slice(&(create_time.max(0) as u64).to_be_bytes());
        key.extend_from_slice(h.workflow_id.as_bytes());
    }
    prefixes
}

/// The workflow id and start time of a `wf_index` key under `prefix`.
pub fn parse_workflow_index<'k>(prefix: &[u8], key: &'k [u8]) -> Option<(i64, &'k str)> {
    let rest = key.strip_prefix(prefix)?;
    let start = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as i64;
    Some((start, std::str::from_utf8(&rest[8..]).ok()?))
}

/// Key of a schedule execution row.
pub fn schedule_run(name: &str, scheduled_time: i64) -> Vec<u8> {
    joined(&[name.as_bytes(), &(scheduled_time.max(0) as u64).to_be_bytes()])
}

/// Key of a `task_index` row.
pub fn task_index(task_type: &str, task_id: &str) -> Vec<u8> {
    joined(&[task_type.as_bytes(), task_id.as_bytes()])
}

/// Which workflow owns a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRef {
    /// Id of the workflow that owns the task.
    pub workflow_id: WorkflowId,
    /// The task's 1-based position in that workflow: its `wf_tasks` key is workflow id 0x00 seq.
    pub seq: u32,
}

/// One line of a task's execution log (Conductor `TaskExecLog`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskLogRow {
    /// The log line, as the worker sent it (`log` in Conductor's `TaskExecLog`).
    pub log: String,
    /// Epoch millis the line was added (`createdTime` in Conductor's `TaskExecLog`).
    pub created_time: i64,
}

/// Where one payload of an execution is stored ([`CF_WF_EXTERNALS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRow {
    /// The external payload storage path.
    pub path: String,
}

/// A complete stored payload ([`CF_PAYLOADS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadManifest {
    /// Its size in bytes.
    pub size: u64,
    /// How many parts it was written in.
    pub parts: u32,
}

/// Where the leader's consumer of a queue goes on reading one partition: the offset of the first
/// message whose effects are not known to be committed ([`CF_DEFS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuePosition {
    /// The offset to read next.
    pub offset: i64,
}

/// One part of a stored payload, in order ([`CF_PAYLOADS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadPart(#[serde(with = "overture_core::serde_util::bytes")] pub Vec<u8>);

/// Key of an execution's external payload row.
pub fn wf_external(workflow_id: &str, target: overture_core::external::PayloadTarget) -> Vec<u8> {
    let mut out = prefix(workflow_id);
    out.extend_from_slice(&target.key());
    out
}

/// Key of a stored payload's manifest.
pub fn payload_manifest(path: &str) -> Vec<u8> {
    let mut out = b"m".to_vec();
    out.extend_from_slice(path.as_bytes());
    out
}

/// Key of one part of a stored payload.
pub fn payload_part(path: &str, index: u32) -> Vec<u8> {
    let mut out = payload_parts_prefix(path);
    out.extend_from_slice(&index.to_be_bytes());
    out
}

/// `c` path 0x00: the prefix of a payload's parts (a path holds no NUL).
pub fn payload_parts_prefix(path: &str) -> Vec<u8> {
    let mut out = b"c".to_vec();
    out.extend_from_slice(path.as_bytes());
    out.push(0);
    out
}

/// The key range of every part of a payload.
pub fn payload_parts_range(path: &str) -> (Vec<u8>, Vec<u8>) {
    let from = payload_parts_prefix(path);
    let mut to = from.clone();
    if let Some(last) = to.last_mut() {
        *last = 1;
    }
    (from, to)
}

/// Declares a stored type's name (for errors) and current format version.
macro_rules! versioned {
    ($($ty:ty => $name:literal, version $version:literal;)*) => {
        $(impl Versioned for $ty {
            const NAME: &'static str = $name;
            const VERSION: u8 = $version;
        })*
    };
}

// Every stored type, with its current format version. (A definition's JSON, as stored in `defs`
// and `def_blobs`, is `JsonBytes`.)
versioned! {
    WorkflowRow => "workflow row", version 2;
    TaskState => "task row", version 2;
    Event => "event", version 2;
    QueueItem => "queue entry", version 1;
    RunningItem => "running task", version 1;
    IdempotencyRow => "idempotency key", version 1;
    TimerItem => "timer", version 1;
    TaskRef => "task reference", version 1;
    TaskLogRow => "task log", version 1;
    ExternalRow => "external payload row", version 1;
    PayloadManifest => "payload manifest", version 1;
    PayloadPart => "payload part", version 1;
    QueuePosition => "queue position", version 1;
    JsonBytes => "definition", version 1;
    crate::types::Hidden => "secret or environment variable", version 1;
    crate::types::Entry => "raft log entry", version 2;
    crate::types::Vote => "vote", version 1;
    crate::types::LogId => "log id", version 1;
    crate::types::StoredMembership => "membership", version 1;
}

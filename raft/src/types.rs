//! The openraft type configuration and what a Raft entry carries.
//!
//! A [`Request`] is one change to the replicated state. Workflow changes carry the events one
//! decision produced, guarded by the revision the decision was based on (the version guard); the
//! state machine applies them only if the workflow is still at that revision.

use overture_core::{Event, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::codec::JsonBytes;

openraft::declare_raft_types!(
    /// Overture's Raft types: node ids are `u64`, nodes are known by their address.
    pub TypeConfig:
        D = Request,
        R = Response,
);

/// A log id.
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
/// A stored membership.
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
/// A log entry.
pub type Entry = openraft::alias::EntryOf<TypeConfig>;
/// A vote.
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
/// A node's identity in the group.
pub type NodeId = u64;
/// A node's address.
pub type Node = openraft::impls::BasicNode;

/// One change to the replicated state.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    /// Events of one workflow, applied only if it is still at `expected_revision`.
    Workflow(WorkflowBatch),
    /// Create or replace task definitions (`POST /metadata/taskdefs`).
    PutTaskDefs {
        /// Each a `TaskDef` as JSON.
        defs: Vec<JsonBytes>,
    },
    /// Replace an existing task definition, keeping its create time (`PUT /metadata/taskdefs`).
    UpdateTaskDef {
        /// A `TaskDef` as JSON.
        def: JsonBytes,
        /// Epoch millis, set as `updateTime`.
        time: i64,
    },
    /// Remove a task definition.
    DeleteTaskDef {
        /// Name of the task definition to remove.
        name: String,
    },
    /// Store workflow definitions.
    PutWorkflowDefs {
        /// Each a `WorkflowDef` as JSON.
        defs: Vec<JsonBytes>,
        /// Replace an existing `(name, version)`; otherwise the request conflicts.
        overwrite: bool,
        /// Epoch millis: `createTime` for new definitions, `updateTime` for replaced ones.
        time: i64,
    },
    /// Remove one version of a workflow definition.
    DeleteWorkflowDef {
        /// Name of the workflow definition.
        name: String,
        /// The version to remove.
        version: i32,
    },
    /// Store an event handler: a new one (`create`, conflicts if the name exists) or a
    /// replacement (not found if it does not).
    PutEventHandler {
        /// An `EventHandler` as JSON.
        handler: JsonBytes,
        /// `true` to add a new handler, `false` to replace an existing one.
        create: bool,
    },
    /// Remove an event handler.
    DeleteEventHandler {
        /// Name of the event handler to remove.
        name: String,
    },
    /// Delete a workflow execution: its state, tasks, events, logs and derived rows.
    RemoveWorkflow {
        /// Id of the execution to delete.
        workflow_id: WorkflowId,
    },
    /// Create or replace a schedule (its JSON carries its next fire).
    PutSchedule {
        /// A `WorkflowSchedule` as JSON.
        schedule: JsonBytes,
    },
    /// Delete a schedule and its execution records.
    DeleteSchedule {
        /// Name of the schedule to delete.
        name: String,
    },
    /// One fire of a schedule, applied only if the schedule is still due at `scheduled_time`
    /// and not paused: it moves to `next_run_time`, records `execution` (if any) and starts
    /// `start` (if any) in the same write, so a fire happens once.
    FireSchedule {
        /// Name of the schedule that fires.
        name: String,
        /// Epoch millis it is due at: the schedule's `nextRunTime`, else the fire conflicts.
        scheduled_time: i64,
        /// Epoch millis of its next fire after this one; none if it never fires again.
        next_run_time: Option<i64>,
        /// A `ScheduleExecution` as JSON; none when a missed fire is skipped.
        execution: Option<JsonBytes>,
        /// The start of the workflow the fire runs.
        start: Option<WorkflowBatch>,
    },
    /// Retention: delete these executions, each only if it is still ended and ended at or
    /// before its time (epoch millis), so one restarted or rerun meanwhile stays.
    PurgeWorkflows {
        /// Each a workflow id and the latest end time (epoch millis) at which it may be purged.
        workflows: Vec<(WorkflowId, i64)>,
    },
    /// Batches of several workflows, proposed at about the same moment and written as one entry
    /// (`crate::proposer`). Each is applied as a [`Request::Workflow`] would be, under its own
    /// version guard, and gets its own response, in order, in a [`Response::Many`].
    Workflows(Vec<WorkflowBatch>),
    /// Create or replace a secret or an environment variable (`PUT /secrets/{name}`,
    /// `PUT /environment/{name}`).
    PutVariable {
        /// A secret or an environment variable.
        kind: VariableKind,
        /// Its name.
        name: String,
        /// Its value.
        value: Hidden,
    },
    /// Remove a secret or an environment variable.
    DeleteVariable {
        /// A secret or an environment variable.
        kind: VariableKind,
        /// Its name.
        name: String,
    },
    /// One part of a payload for external payload storage. Parts are written in order from 0;
    /// part 0 drops any earlier unfinished parts of the path, and the last part makes the
    /// payload readable. A path is written once: a path already complete conflicts.
    PutPayloadPart {
        /// The storage path.
        path: String,
        /// This part's number, from 0.
        index: u32,
        /// How many parts the payload has.
        parts: u32,
        /// The part's bytes.
        #[serde(with = "overture_core::serde_util::bytes")]
        bytes: Vec<u8>,
    },
    /// Where the leader's consumer of a broker queue goes on reading, for brokers that keep no
    /// position for Overture (Kafka): per partition, the first offset whose message's effects
    /// are not known to be committed. Replaces the partitions named; others stay.
    PutQueuePositions {
        /// The queue, as an event names it (`kafka:topic`).
        queue: String,
        /// Partition and offset to read next.
        positions: Vec<(u32, i64)>,
    },
}

/// What a named variable is: `${workflow.secrets.NAME}` or `${workflow.env.NAME}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VariableKind {
    /// A secret: its value is substituted only when a task is handed to whoever runs it, and
    /// no read answers it.
    Secret,
    /// An environment variable: resolved like any other expression when a task is scheduled.
    Env,
}

/// A value that is never shown: its `Debug` prints no text, so a request or row that is logged
/// never shows a secret. Encoded as the string it holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Hidden(pub String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<hidden, {} bytes>", self.0.len())
    }
}

/// The events one decision produced for one workflow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowBatch {
    /// Id of the workflow the events belong to.
    pub workflow_id: WorkflowId,
    /// The revision the decision read; 0 for a start.
    pub expected_revision: u64,
    /// The events to apply, in order; each raises the workflow's revision by one.
    pub events: Vec<Event>,
}

/// What applying a [`Request`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Applied.
    Ok,
    /// A workflow batch was applied; the workflow is now at this revision.
    Applied {
        /// The workflow's revision now: the number of events applied to it.
        revision: u64,
    },
    /// A workflow batch was skipped: the workflow is at another revision (0 = absent).
    RevisionConflict {
        /// The workflow's current revision; 0 if it does not exist.
        current: u64,
    },
    /// The request refers to something that does not exist.
    NotFound(String),
    /// The request would overwrite something it may not.
    Conflict(String),
    /// A start whose idempotency key (strategy `RETURN_EXISTING`) already started this workflow.
    Existing {
        /// Id of the workflow the idempotency key started earlier.
        workflow_id: WorkflowId,
    },
    /// How many executions a purge deleted.
    Purged {
        /// Number of executions deleted.
        count: u64,
    },
    /// One response per batch of a [`Request::Workflows`] entry, in its order.
    Many(Vec<Response>),
    /// The entry's content could not be applied (a payload that does not parse): nothing was
    /// written, on any replica. Only storage failures stop a replica; content never does.
    Rejected(String),
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Workflow(b) => {
                write!(f, "workflow {} @{}: {} events", b.workflow_id, b.expected_revision, b.events.len())
            }
            Request::PutTaskDefs { defs } => write!(f, "put {} task definitions", defs.len()),
            Request::UpdateTaskDef { .. } => write!(f, "update a task definition"),
            Request::DeleteTaskDef { name } => write!(f, "delete task definition {name}"),
            Request::PutWorkflowDefs { defs, overwrite, .. } => {
                write!(f, "put {} workflow definitions (overwrite: {overwrite})", defs.len())
            }
            Request::DeleteWorkflowDef { name, version } => write!(f, "delete workflow definition {name} v{version}"),
            Request::PutEventHandler { create, .. } => {
                write!(f, "{} an event handler", if *create { "add" } else { "replace" })
            }
            Request::DeleteEventHandler { name } => write!(f, "delete event handler {name}"),
            Request::RemoveWorkflow { workflow_id } => write!(f, "remove workflow {workflow_id}"),
            Request::PurgeWorkflows { workflows } => write!(f, "purge {} ended workflows", workflows.len()),
            Request::Workflows(batches) => write!(f, "{} workflow batches", batches.len()),
            Request::PutSchedule { .. } => write!(f, "put a schedule"),
            Request::DeleteSchedule { name } => write!(f, "delete schedule {name}"),
            Request::FireSchedule { name, scheduled_time, .. } => write!(f, "fire schedule {name} at {scheduled_time}"),
            Request::PutVariable { kind, name, .. } => write!(f, "put {kind:?} {name}"),
            Request::DeleteVariable { kind, name } => write!(f, "delete {kind:?} {name}"),
            Request::PutPayloadPart { path, index, parts, bytes } => {
                write!(f, "put part {index}/{parts} of payload {path} ({} bytes)", bytes.len())
            }
            Request::PutQueuePositions { queue, positions } => {
                write!(f, "put {} positions of {queue}", positions.len())
            }
        }
    }
}

impl std::fmt::Display for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

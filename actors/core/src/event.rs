//! Events: the facts a decision produces, appended to a workflow's history and replicated in the
//! Raft log. [`crate::evolve`] is the only way they change state.
//!
//! Events are stored (bincode, JSON payloads as JSON bytes). Variants are encoded by position:
//! append new ones at the end, never reorder or remove; a changed variant needs a new entry format
//! version in the storage codec.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::external::PayloadTarget;
use crate::ids::WorkflowId;
use crate::plan::Plan;
use crate::serde_util::json_bytes;
use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowStatus};

/// A fact about one workflow execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The execution exists, with this header and definition.
    WorkflowStarted(Box<WorkflowStarted>),
    /// A task attempt was created.
    TaskScheduled(Box<TaskScheduled>),
    /// A worker received the task; it is now IN_PROGRESS.
    TaskPolled {
        /// The task's `seq`.
        seq: u32,
        /// The polling worker's id (the poll's `workerid`), recorded as the task's `workerId`.
        worker_id: Option<String>,
        /// Epoch millis of the poll: the task's `updateTime`, and its `startTime` on the first poll.
        time: i64,
    },
    /// A worker (or the API) reported on the task.
    TaskUpdated(Box<TaskUpdated>),
    /// A worker extended its lease on an IN_PROGRESS task.
    TaskLeaseExtended {
        /// The task's `seq`.
        seq: u32,
        /// Epoch millis: the task's new `updateTime`, from which its response timeout counts again.
        time: i64,
    },
    /// The task changed status for a reason of the engine's own (timeout, cancel, optional failure).
    TaskStatusChanged {
        /// The task's `seq`.
        seq: u32,
        /// The task's new status.
        status: TaskStatus,
        /// The task's new `reasonForIncompletion`; `None` keeps the old one.
        reason: Option<String>,
        /// Epoch millis: the task's `updateTime`, and its `endTime` if the status is terminal.
        time: i64,
    },
    /// The decider has acted on the task's terminal status.
    TaskExecuted {
        /// The task's `seq`.
        seq: u32,
    },
    /// A line was added to the task's execution log.
    TaskLogged {
        /// The task's `seq`.
        seq: u32,
        /// The log line, as sent.
        log: String,
        /// Epoch millis the line was added.
        time: i64,
    },
    /// The workflow reached a terminal status.
    WorkflowEnded(Box<WorkflowEnded>),
    /// `workflow.variables` now hold exactly these values (SET_VARIABLE).
    VariablesSet {
        /// The complete new `workflow.variables`, replacing the old ones.
        #[serde(with = "json_bytes")]
        variables: Object,
        /// Epoch millis: the workflow's new `updateTime`.
        time: i64,
    },
    /// A DO_WHILE finished an iteration and starts the next one.
    TaskIterated {
        /// The DO_WHILE task's `seq`.
        seq: u32,
        /// The iteration now running.
        iteration: i32,
        /// The DO_WHILE's output so far.
        #[serde(with = "json_bytes")]
        output: Object,
        /// Epoch millis the iteration's first task is scheduled at, if not in this decision.
        resume_at: i64,
        /// Epoch millis: the DO_WHILE task's new `updateTime`.
        time: i64,
    },
    /// The parent workflow has been told how this child ended.
    ParentNotified,
    /// The workflow's end was published to the status listener queues.
    StatusPublished,
    /// The failure workflow was started (its id), or could not be (why).
    FailureWorkflowStarted {
        /// The failure workflow's id, if it started.
        workflow_id: Option<WorkflowId>,
        /// Why it could not be started.
        error: Option<String>,
    },
    /// The workflow is PAUSED.
    WorkflowPaused {
        /// Epoch millis: the workflow's new `updateTime`.
        time: i64,
    },
    /// The workflow is RUNNING again after a pause.
    WorkflowResumed {
        /// Epoch millis: the workflow's new `updateTime` and `lastRetriedTime`.
        time: i64,
    },
    /// A SCHEDULED task waiting out a callback may be polled now.
    TaskCallbackReset {
        /// The task's `seq`.
        seq: u32,
    },
    /// A finished workflow runs again: RUNNING, its end cleared, `lastRetriedTime` set. Its
    /// tasks from `keep_tasks` on are dropped (all of them for a restart, none for a retry),
    /// and a new definition, input or correlation id replaces the old one if given.
    WorkflowReopened(Box<WorkflowReopened>),
    /// A DO_WHILE with `keepLastN` started an iteration: the tasks of its iterations up to
    /// `through` are dropped (their places kept, see `TaskState::pruned`).
    IterationsPruned {
        /// The DO_WHILE task's `seq`.
        seq: u32,
        /// The last iteration dropped.
        through: i32,
        /// The `seq`s of the tasks dropped.
        tasks: Vec<u32>,
    },
    /// A payload is stored outside the execution's rows, at `path` (see [`crate::external`]);
    /// the event before it that set the payload carries `{}` in its place.
    PayloadExternalized {
        /// Which payload.
        target: PayloadTarget,
        /// Where it is stored.
        path: String,
    },
}

/// Payload of [`Event::WorkflowReopened`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowReopened {
    /// How many tasks stay (by `seq` order).
    pub keep_tasks: u32,
    /// Whether this is a restart (`createTime` moves to now) rather than a retry or rerun.
    pub restart: bool,
    /// A new definition snapshot (`useLatestDefinitions`).
    #[serde(with = "opt_plan_as_def_json")]
    pub plan: Option<Arc<Plan>>,
    /// New workflow input.
    #[serde(with = "json_bytes")]
    pub input: Option<Object>,
    /// A new correlation id (a rerun's); `None` keeps the old one.
    pub correlation_id: Option<String>,
    /// Epoch millis: the workflow's new `updateTime`, and its `createTime` on a restart or its
    /// `lastRetriedTime` otherwise.
    pub time: i64,
}

impl PartialEq for WorkflowReopened {
    fn eq(&self, other: &Self) -> bool {
        self.keep_tasks == other.keep_tasks
            && self.restart == other.restart
            && self.plan.as_ref().map(|p| &p.def) == other.plan.as_ref().map(|p| &p.def)
            && self.input == other.input
            && self.correlation_id == other.correlation_id
            && self.time == other.time
    }
}

/// Stores an optional plan as the JSON of its definition.
mod opt_plan_as_def_json {
    use std::sync::Arc;

    use serde::{Deserializer, Serializer};

    use crate::plan::Plan;
    use crate::serde_util::bytes;

    pub fn serialize<S: Serializer>(plan: &Option<Arc<Plan>>, serializer: S) -> Result<S::Ok, S::Error> {
        // The bytes of the JSON of `Option<WorkflowDef>`, as `json_bytes` writes them.
        serializer.serialize_bytes(plan.as_ref().map_or(b"null".as_slice(), |p| p.def_json()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Arc<Plan>>, D::Error> {
        let json = bytes::deserialize(deserializer)?;
        if json.trim_ascii() == b"null" {
            return Ok(None);
        }
        Plan::from_def_json(json).map(Some).map_err(serde::de::Error::custom)
    }
}

/// Payload of [`Event::WorkflowStarted`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkflowStarted {
    /// The header as it starts: RUNNING, revision 0, no tasks.
    pub header: WorkflowHeader,
    /// The definition snapshot, with task definitions filled in.
    #[serde(with = "plan_as_def_json")]
    pub plan: Arc<Plan>,
}

impl PartialEq for WorkflowStarted {
    fn eq(&self, other: &Self) -> bool {
        self.header == other.header && self.plan.def == other.plan.def
    }
}

/// Payload of [`Event::TaskScheduled`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskScheduled {
    /// The new attempt; its `seq` is the next one.
    pub task: TaskState,
    /// The attempt it retries, marked `retried`.
    pub retry_of: Option<u32>,
}

/// Payload of [`Event::TaskUpdated`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskUpdated {
    /// The task's `seq`.
    pub seq: u32,
    /// The task's new status (a worker's IN_PROGRESS is stored as SCHEDULED, as in Conductor).
    pub status: TaskStatus,
    /// The new output, replacing the old one; `None` keeps it.
    #[serde(with = "json_bytes")]
    pub output: Option<Object>,
    /// The task's new `reasonForIncompletion`; `None` keeps the old one.
    pub reason: Option<String>,
    /// The reporting worker's id, as the task's `workerId`; `None` keeps the old one.
    pub worker_id: Option<String>,
    /// Seconds after `time` before a SCHEDULED task may be polled again (a worker's
    /// `callbackAfterSeconds`); 0 for at once.
    pub callback_after_seconds: i64,
    /// Epoch millis: the task's `updateTime`, and its `endTime` if the status is terminal.
    pub time: i64,
}

/// Payload of [`Event::WorkflowEnded`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowEnded {
    /// COMPLETED, FAILED, TIMED_OUT or TERMINATED.
    pub status: WorkflowStatus,
    /// The workflow's `reasonForIncompletion`, if any.
    pub reason: Option<String>,
    /// The workflow's final output.
    #[serde(with = "json_bytes")]
    pub output: Object,
    /// Reference names of the tasks that ended FAILED or FAILED_WITH_TERMINAL_ERROR,
    /// sorted, without duplicates.
    pub failed_reference_task_names: Vec<String>,
    /// The task definition names of those tasks, sorted, without duplicates.
    pub failed_task_names: Vec<String>,
    /// Epoch millis: the workflow's `endTime`.
    pub time: i64,
    /// The end starts the definition's `failureWorkflow`.
    pub failure_workflow: bool,
    /// The end is published to the status listener queues.
    pub status_listener: bool,
}

impl Event {
    /// The task this event touches, if any.
    pub fn task_seq(&self) -> Option<u32> {
        match self {
            Event::WorkflowStarted(_)
            | Event::WorkflowEnded(_)
            | Event::VariablesSet { .. }
            | Event::ParentNotified
            | Event::StatusPublished
            | Event::FailureWorkflowStarted { .. }
            | Event::WorkflowPaused { .. }
            | Event::WorkflowResumed { .. }
            | Event::WorkflowReopened(_) => None,
            Event::PayloadExternalized { target, .. } => target.seq(),
            Event::TaskCallbackReset { seq } => Some(*seq),
            Event::TaskScheduled(s) => Some(s.task.seq),
            Event::TaskUpdated(u) => Some(u.seq),
            Event::TaskPolled { seq, .. }
            | Event::TaskLeaseExtended { seq, .. }
            | Event::TaskStatusChanged { seq, .. }
            | Event::TaskExecuted { seq }
            | Event::TaskLogged { seq, .. }
            | Event::TaskIterated { seq, .. }
            | Event::IterationsPruned { seq, .. } => Some(*seq),
        }
    }

    /// Each payload this event sets, with its map (at most two; none for most events).
    pub fn payloads_set(&self) -> impl Iterator<Item = (PayloadTarget, &Object)> {
        let (a, b) = match self {
            Event::WorkflowStarted(s) => (Some((PayloadTarget::WorkflowInput, &s.header.input)), None),
            Event::TaskScheduled(s) => (
                Some((PayloadTarget::TaskInput(s.task.seq), &s.task.input)),
                Some((PayloadTarget::TaskOutput(s.task.seq), &s.task.output)),
            ),
            Event::TaskUpdated(u) => (u.output.as_ref().map(|o| (PayloadTarget::TaskOutput(u.seq), o)), None),
            Event::WorkflowEnded(e) => (Some((PayloadTarget::WorkflowOutput, &e.output)), None),
            Event::WorkflowReopened(r) => (r.input.as_ref().map(|i| (PayloadTarget::WorkflowInput, i)), None),
            _ => (None, None),
        };
        a.into_iter().chain(b)
    }

    /// The map of `target` this event sets, to replace with `{}` once it is stored elsewhere.
    pub fn payload_mut(&mut self, target: PayloadTarget) -> Option<&mut Object> {
        match self {
            Event::WorkflowStarted(s) if target == PayloadTarget::WorkflowInput => Some(&mut s.header.input),
            Event::TaskScheduled(s) => match target {
                PayloadTarget::TaskInput(seq) if seq == s.task.seq => Some(&mut s.task.input),
                PayloadTarget::TaskOutput(seq) if seq == s.task.seq => Some(&mut s.task.output),
                _ => None,
            },
            Event::TaskUpdated(u) if target == PayloadTarget::TaskOutput(u.seq) => u.output.as_mut(),
            Event::WorkflowEnded(e) if target == PayloadTarget::WorkflowOutput => Some(&mut e.output),
            Event::WorkflowReopened(r) if target == PayloadTarget::WorkflowInput => r.input.as_mut(),
            _ => None,
        }
    }

    /// Every task whose state this event changes: its task, and for a retry's `TaskScheduled`
    /// also the attempt it retries (marked retried). The state machine rewrites these tasks'
    /// rows; a task this leaves out would keep a stale row on disk.
    pub fn changed_tasks(&self) -> impl Iterator<Item = u32> + '_ {
        let retried = match self {
            Event::TaskScheduled(s) => s.retry_of,
            _ => None,
        };
        let pruned: &[u32] = match self {
            Event::IterationsPruned { tasks, .. } => tasks,
            _ => &[],
        };
        self.task_seq().into_iter().chain(retried).chain(pruned.iter().copied())
    }

    /// A short name for logs, metrics and the history endpoint.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::WorkflowStarted(_) => "WorkflowStarted",
            Event::TaskScheduled(_) => "TaskScheduled",
            Event::TaskPolled { .. } => "TaskPolled",
            Event::TaskUpdated(_) => "TaskUpdated",
            Event::TaskLeaseExtended { .. } => "TaskLeaseExtended",
            Event::TaskStatusChanged { .. } => "TaskStatusChanged",
            Event::TaskExecuted { .. } => "TaskExecuted",
            Event::TaskLogged { .. } => "TaskLogged",
            Event::WorkflowEnded(_) => "WorkflowEnded",
            Event::VariablesSet { .. } => "VariablesSet",
            Event::TaskIterated { .. } => "TaskIterated",
            Event::ParentNotified => "ParentNotified",
            Event::StatusPublished => "StatusPublished",
            Event::WorkflowPaused { .. } => "WorkflowPaused",
            Event::WorkflowResumed { .. } => "WorkflowResumed",
            Event::TaskCallbackReset { .. } => "TaskCallbackReset",
            Event::WorkflowReopened(_) => "WorkflowReopened",
            Event::FailureWorkflowStarted { .. } => "FailureWorkflowStarted",
            Event::IterationsPruned { .. } => "IterationsPruned",
            Event::PayloadExternalized { .. } => "PayloadExternalized",
        }
    }
}

/// Stores a plan as the JSON of its definition and compiles it again on load.
mod plan_as_def_json {
    use std::sync::Arc;

    use serde::{Deserializer, Serializer};

    use crate::plan::Plan;
    use crate::serde_util::bytes;

    pub fn serialize<S: Serializer>(plan: &Arc<Plan>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(plan.def_json())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<Plan>, D::Error> {
        Plan::from_def_json(bytes::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

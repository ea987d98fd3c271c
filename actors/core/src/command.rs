//! Commands: what can be asked of a workflow, and what a refusal looks like.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::dsl::TaskDef;

use crate::ids::WorkflowId;
use crate::plan::Plan;
use crate::rows::TimerKind;
use crate::state::{Object, TaskStatus};

/// Where new ids come from. The leader uses random UUIDs; tests use a counter.
pub trait IdSource {
    /// A fresh, unique id.
    fn next_id(&mut self) -> String;
}

/// Why a script (JavaScript or jq) gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// It failed: a syntax error, an exception, a query error. Its task fails; retries apply.
    Failed(String),
    /// It hit a limit (time, memory, stack): it would again, so its task fails for good
    /// (`FAILED_WITH_TERMINAL_ERROR`).
    Limit(String),
}

impl ScriptError {
    /// What went wrong, for a task's reason.
    pub fn message(&self) -> &str {
        match self {
            ScriptError::Failed(m) | ScriptError::Limit(m) => m,
        }
    }

    /// The status a task that ran the script gets: `failed` for a failure, terminal for a limit.
    pub fn task_status(&self, failed: crate::TaskStatus) -> crate::TaskStatus {
        match self {
            ScriptError::Failed(_) => failed,
            ScriptError::Limit(_) => crate::TaskStatus::FailedWithTerminalError,
        }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// What a decision may consult besides the state: script engines and the registered task
/// definitions. Whatever it answers is recorded in the events (a SWITCH's chosen case, an INLINE
/// task's result, a DYNAMIC task's definition), so replaying them never asks again.
pub trait Environment {
    /// Evaluates JavaScript with `$` bound to `input`; the completion value is the result.
    fn javascript(&self, script: &str, input: &Value) -> Result<Value, ScriptError> {
        let _ = (script, input);
        Err(ScriptError::Failed("JavaScript evaluation is not available".to_owned()))
    }
    /// Runs a jq query on `input`; every output value.
    fn jq(&self, query: &str, input: &Value) -> Result<Vec<Value>, ScriptError> {
        let _ = (query, input);
        Err(ScriptError::Failed("jq evaluation is not available".to_owned()))
    }
    /// How many bytes resolving one task's input or a workflow's output may produce: at least
    /// [`crate::payload::MAX_RESOLVED_BYTES`], more where payloads may be larger (external
    /// payload storage takes what is over its threshold).
    fn max_resolved_bytes(&self) -> usize {
        crate::payload::MAX_RESOLVED_BYTES
    }
    /// The registered task definition with this name.
    fn task_def(&self, name: &str) -> Option<TaskDef> {
        let _ = name;
        None
    }
    /// A uniformly random number in `0..=bound` (retry jitter); 0 where there is no randomness.
    fn random(&self, bound: u64) -> u64 {
        let _ = bound;
        0
    }
    /// When a worker last polled for this task type in this domain (epoch millis).
    fn last_poll(&self, task_type: &str, domain: Option<&str>) -> Option<i64> {
        let _ = (task_type, domain);
        None
    }
    /// The environment variable `${workflow.env.NAME}` reads (stored with `PUT /environment`).
    fn env_var(&self, name: &str) -> Option<String> {
        let _ = name;
        None
    }
}

/// An environment with no scripts and no registered definitions.
pub struct NoEnvironment;
impl Environment for NoEnvironment {}

/// Everything a decision may depend on besides the state and the command. Chosen by the leader and
/// recorded in the events, so replaying them never needs it again.
pub struct Ctx<'a> {
    /// Epoch millis, the leader's clock.
    pub now: i64,
    /// Where new task ids come from.
    pub ids: &'a mut dyn IdSource,
    /// Scripts and registered task definitions the decision may consult.
    pub env: &'a dyn Environment,
}

impl<'a> Ctx<'a> {
    /// A context without scripts or registered definitions.
    pub fn new(now: i64, ids: &'a mut dyn IdSource) -> Ctx<'a> {
        Ctx { now, ids, env: &NoEnvironment }
    }
}

/// Start a new execution.
#[derive(Debug, Clone)]
pub struct StartWorkflow {
    /// Conductor's `workflowId`: the new execution's id, chosen by the caller.
    pub workflow_id: WorkflowId,
    /// The definition to run, with task definitions filled in.
    pub plan: Arc<Plan>,
    /// The workflow input; the definition's `inputTemplate` defaults are merged in at start.
    pub input: Object,
    /// Conductor's `correlationId`: the caller's label for the execution.
    pub correlation_id: Option<String>,
    /// Conductor's `priority`, 0–99; copied to every task as its queue priority.
    pub priority: i32,
    /// Conductor's `taskToDomain`: task name (or `*`) → comma-separated domains its worker
    /// tasks are queued in.
    pub task_to_domain: BTreeMap<String, String>,
    /// Conductor's `createdBy`, stored on the execution.
    pub created_by: Option<String>,
    /// Conductor's `idempotencyKey`: a later start with the same key does what `idempotency_strategy` says.
    pub idempotency_key: Option<String>,
    /// `FAIL`, `RETURN_EXISTING` or `FAIL_ON_RUNNING`, when `idempotency_key` is set.
    pub idempotency_strategy: Option<String>,
    /// The parent workflow and its SUB_WORKFLOW task, for a child.
    pub parent: Option<(WorkflowId, String)>,
    /// Where `input` is stored already (the client uploaded it to external payload storage and
    /// sent `externalInputPayloadStoragePath`): the execution refers to it there.
    pub input_stored_at: Option<String>,
}

impl StartWorkflow {
    /// A start of `plan` under `workflow_id` with no input, correlation, priority, domains,
    /// idempotency key or parent; set what else a start carries on the value.
    pub fn new(workflow_id: impl Into<WorkflowId>, plan: Arc<Plan>) -> StartWorkflow {
        StartWorkflow {
            workflow_id: workflow_id.into(),
            plan,
            input: Object::new(),
            correlation_id: None,
            priority: 0,
            task_to_domain: BTreeMap::new(),
            created_by: None,
            idempotency_key: None,
            idempotency_strategy: None,
            parent: None,
            input_stored_at: None,
        }
    }
}

/// The statuses a worker may report (Conductor `TaskResult.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskResultStatus {
    /// Still working: a worker task goes back to its queue (SCHEDULED, pollable again after
    /// `callbackAfterSeconds`); a system task stays IN_PROGRESS.
    InProgress,
    /// Failed; retried if the task's `retryCount` allows.
    Failed,
    /// Failed for good; not retried.
    FailedWithTerminalError,
    /// Done.
    Completed,
    /// Canceled; not retried.
    Canceled,
}

impl TaskResultStatus {
    /// Parses a path segment such as `COMPLETED`.
    pub fn parse(s: &str) -> Option<TaskResultStatus> {
        Some(match s {
            "IN_PROGRESS" => Self::InProgress,
            "FAILED" => Self::Failed,
            "FAILED_WITH_TERMINAL_ERROR" => Self::FailedWithTerminalError,
            "COMPLETED" => Self::Completed,
            "CANCELED" => Self::Canceled,
            _ => return None,
        })
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Failed => "FAILED",
            Self::FailedWithTerminalError => "FAILED_WITH_TERMINAL_ERROR",
            Self::Completed => "COMPLETED",
            Self::Canceled => "CANCELED",
        }
    }

    fn terminal_status(self) -> Option<TaskStatus> {
        match self {
            Self::InProgress => None,
            Self::Failed => Some(TaskStatus::Failed),
            Self::FailedWithTerminalError => Some(TaskStatus::FailedWithTerminalError),
            Self::Completed => Some(TaskStatus::Completed),
            Self::Canceled => Some(TaskStatus::Canceled),
        }
    }

    pub(crate) fn resulting_status(self) -> TaskStatus {
        // A worker's IN_PROGRESS puts the task back in its queue, as Conductor does.
        self.terminal_status().unwrap_or(TaskStatus::Scheduled)
    }
}

/// A worker's (or an operator's) report on a task. Its JSON form is only passed between nodes
/// (an event handler's action done where the task's partition is led), not the API's `TaskResult`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct TaskUpdate {
    /// Conductor's `taskId`: the task reported on.
    pub task_id: String,
    /// Conductor's `status`: the reported status.
    pub status: TaskResultStatus,
    /// `None` leaves the output as it is.
    pub output: Option<Object>,
    /// Merge `output` into the existing output instead of replacing it.
    pub merge_output: bool,
    /// Conductor's `reasonForIncompletion`, cut to 500 characters; `None` keeps the task's
    /// current one.
    pub reason: Option<String>,
    /// Conductor's `workerId`; `None` keeps the task's current one.
    pub worker_id: Option<String>,
    /// Conductor's `callbackAfterSeconds`: with IN_PROGRESS, seconds before a worker task may
    /// be polled again; negative counts as 0.
    pub callback_after_seconds: i64,
    /// A lease heartbeat: only push the response timeout back.
    pub extend_lease: bool,
    /// Lines for the task's execution log.
    pub logs: Vec<String>,
    /// Where `output` is stored already (the worker uploaded it to external payload storage and
    /// sent `externalOutputPayloadStoragePath`): the task refers to it there instead of storing
    /// it again.
    pub output_stored_at: Option<String>,
}

/// Something asked of an existing execution.
#[derive(Debug, Clone)]
pub enum Command {
    /// Hand the task to a worker.
    Poll {
        /// The task to hand out.
        task_id: String,
        /// The polling worker's id (the poll's `workerid`), if it gave one.
        worker_id: Option<String>,
    },
    /// Record a task result.
    Update(Box<TaskUpdate>),
    /// Append to a task's execution log.
    AddLog {
        /// The task the line is for.
        task_id: String,
        /// The log line.
        log: String,
    },
    /// Stop the workflow.
    Terminate {
        /// Why, as the workflow's `reasonForIncompletion`.
        reason: Option<String>,
    },
    /// A child workflow of a SUB_WORKFLOW task ended.
    ChildEnded(Box<ChildEnded>),
    /// This (child) workflow's parent has been told how it ended.
    ParentNotified,
    /// This workflow's end has been published to the status listener queues.
    StatusPublished,
    /// The failure workflow was started, or could not be.
    FailureWorkflowStarted {
        /// The failure workflow's id, if it started.
        workflow_id: Option<WorkflowId>,
        /// Why it could not be started.
        error: Option<String>,
    },
    /// Merge these into `workflow.variables` (an event handler's `update_workflow_variables`);
    /// with `append_array`, lists are appended to existing lists.
    UpdateVariables {
        /// Variables to set, by name.
        variables: Object,
        /// Append a list value to an existing list instead of replacing it.
        append_array: bool,
    },
    /// The child of this canceled SUB_WORKFLOW task has been terminated (or had ended).
    ChildCanceled {
        /// The SUB_WORKFLOW task's `seq`.
        seq: u32,
    },
    /// Stop scheduling new tasks until resumed (`PUT /workflow/{id}/pause`).
    Pause,
    /// Go on after a pause.
    Resume,
    /// Run the decider now (`PUT /workflow/decide/{id}`).
    Decide,
    /// Make every SCHEDULED worker task waiting out a callback pollable now.
    ResetCallbacks,
    /// Mark a task of the definition that has not run yet as SKIPPED; the flow steps over it.
    Skip {
        /// The task's `taskReferenceName` in the definition.
        reference: String,
        /// The skipped task's input (the request's `taskInput`).
        input: Object,
        /// The skipped task's output (the request's `taskOutput`).
        output: Object,
    },
    /// Run the failed (or canceled, or timed-out) tasks of a finished workflow again.
    Retry {
        /// SUB_WORKFLOW tasks (by id) to resume rather than run again: their child is being
        /// retried, and the task waits for it (`resumeSubworkflowTasks`).
        resume: Vec<String>,
    },
    /// Run a finished workflow again from the start, on this definition if given.
    Restart {
        /// The latest definition (`useLatestDefinitions`); `None` keeps the execution's own.
        plan: Option<Arc<Plan>>,
    },
    /// Run a finished workflow again from the start, or from one of its tasks.
    Rerun(Box<Rerun>),
    /// A durable timer is due.
    Timer {
        /// Which deadline it is.
        kind: TimerKind,
        /// The task's `seq`, or 0 for a timer of the workflow itself.
        seq: u32,
        /// Epoch millis it is due; a timer whose deadline has since moved is stale and changes nothing.
        fire_at: i64,
    },
}

/// Conductor's `RerunWorkflowRequest`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rerun {
    /// Rerun from this task (dropping it and everything after it); from the start if `None`.
    pub from_task_id: Option<String>,
    /// New input for that task.
    pub task_input: Option<Object>,
    /// New input for the workflow (a rerun from the start).
    pub workflow_input: Option<Object>,
    /// New correlation id.
    pub correlation_id: Option<String>,
}

/// How a child workflow ended, for its parent's SUB_WORKFLOW task.
#[derive(Debug, Clone, PartialEq)]
pub struct ChildEnded {
    /// The parent's SUB_WORKFLOW task.
    pub task_id: String,
    /// The child workflow's id; the task's output gets it as `subWorkflowId`.
    pub child_id: WorkflowId,
    /// The child's terminal status.
    pub status: crate::state::WorkflowStatus,
    /// The child's output.
    pub output: Object,
    /// The child's `reasonForIncompletion`.
    pub reason: Option<String>,
}

/// Why a command was refused. Each maps to a Conductor status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
}

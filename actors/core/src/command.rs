//! Commands: what can be asked of a workflow, and what a refusal looks like.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::dsl::TaskDef;

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
}

/// An environment with no scripts and no registered definitions.
pub struct NoEnvironment;
impl Environment for NoEnvironment {}

/// Everything a decision may depend on besides the state and the command. Chosen by the leader and
/// recorded in the events, so replaying them never needs it again.
pub struct Ctx<'a> {
    /// Epoch millis, the leader's clock.
    pub now: i64,
    #[allow(missing_docs)]
    pub ids: &'a mut dyn IdSource,
    #[allow(missing_docs)]
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
    #[allow(missing_docs)]
    pub workflow_id: String,
    /// The definition to run, with task definitions filled in.
    pub plan: Arc<Plan>,
    #[allow(missing_docs)]
    pub input: Object,
    #[allow(missing_docs)]
    pub correlation_id: Option<String>,
    #[allow(missing_docs)]
    pub priority: i32,
    #[allow(missing_docs)]
    pub task_to_domain: BTreeMap<String, String>,
    #[allow(missing_docs)]
    pub created_by: Option<String>,
    #[allow(missing_docs)]
    pub idempotency_key: Option<String>,
    /// `FAIL`, `RETURN_EXISTING` or `FAIL_ON_RUNNING`, when `idempotency_key` is set.
    pub idempotency_strategy: Option<String>,
    /// The parent workflow and its SUB_WORKFLOW task, for a child.
    pub parent: Option<(String, String)>,
}

impl StartWorkflow {
    /// A start of `plan` under `workflow_id` with no input, correlation, priority, domains,
    /// idempotency key or parent; set what else a start carries on the value.
    pub fn new(workflow_id: impl Into<String>, plan: Arc<Plan>) -> StartWorkflow {
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
        }
    }
}

/// The statuses a worker may report (Conductor `TaskResult.Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[allow(missing_docs)]
pub enum TaskResultStatus {
    InProgress,
    Failed,
    FailedWithTerminalError,
    Completed,
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

/// A worker's (or an operator's) report on a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskUpdate {
    #[allow(missing_docs)]
    pub task_id: String,
    #[allow(missing_docs)]
    pub status: TaskResultStatus,
    /// `None` leaves the output as it is.
    pub output: Option<Object>,
    /// Merge `output` into the existing output instead of replacing it.
    pub merge_output: bool,
    #[allow(missing_docs)]
    pub reason: Option<String>,
    #[allow(missing_docs)]
    pub worker_id: Option<String>,
    #[allow(missing_docs)]
    pub callback_after_seconds: i64,
    /// A lease heartbeat: only push the response timeout back.
    pub extend_lease: bool,
    /// Lines for the task's execution log.
    pub logs: Vec<String>,
}

/// Something asked of an existing execution.
#[derive(Debug, Clone)]
pub enum Command {
    /// Hand the task to a worker.
    Poll {
        #[allow(missing_docs)]
        task_id: String,
        #[allow(missing_docs)]
        worker_id: Option<String>,
    },
    /// Record a task result.
    Update(Box<TaskUpdate>),
    /// Append to a task's execution log.
    AddLog {
        #[allow(missing_docs)]
        task_id: String,
        #[allow(missing_docs)]
        log: String,
    },
    /// Stop the workflow.
    Terminate {
        #[allow(missing_docs)]
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
        #[allow(missing_docs)]
        workflow_id: Option<String>,
        #[allow(missing_docs)]
        error: Option<String>,
    },
    /// Merge these into `workflow.variables` (an event handler's `update_workflow_variables`);
    /// with `append_array`, lists are appended to existing lists.
    UpdateVariables {
        #[allow(missing_docs)]
        variables: Object,
        #[allow(missing_docs)]
        append_array: bool,
    },
    /// The child of this canceled SUB_WORKFLOW task has been terminated (or had ended).
    ChildCanceled {
        #[allow(missing_docs)]
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
        #[allow(missing_docs)]
        reference: String,
        #[allow(missing_docs)]
        input: Object,
        #[allow(missing_docs)]
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
        #[allow(missing_docs)]
        plan: Option<Arc<Plan>>,
    },
    /// Run a finished workflow again from the start, or from one of its tasks.
    Rerun(Box<Rerun>),
    /// A durable timer is due.
    Timer {
        #[allow(missing_docs)]
        kind: TimerKind,
        #[allow(missing_docs)]
        seq: u32,
        #[allow(missing_docs)]
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
    #[allow(missing_docs)]
    pub child_id: String,
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

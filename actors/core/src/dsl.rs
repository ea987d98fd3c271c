//! Conductor's definition language: task definitions, workflow definitions and their tasks.
//!
//! Field names, defaults and `null` handling follow Conductor's Java models
//! (`TaskDef`, `WorkflowDef`, `WorkflowTask`), so definitions written for Conductor load unchanged
//! and read back the way Conductor clients decode them: `null` fields are omitted, primitives and
//! empty collections are always present. Unknown fields are ignored. Fields Overture carries but
//! does not interpret yet (schemas, cache and rate-limit configs, metadata) are kept as raw JSON so a
//! definition round-trips.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::serde_util::{default_true, null_as_default};

/// How a task's retry delay grows between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RetryLogic {
    /// The same delay before every retry.
    #[default]
    Fixed,
    /// `delay × 2^attempt`.
    ExponentialBackoff,
    /// `delay × backoffScaleFactor × (attempt + 1)`.
    LinearBackoff,
}

/// What happens when a task exceeds its `timeoutSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskTimeoutPolicy {
    /// Time the task out and retry it.
    Retry,
    /// Time the task and its workflow out.
    #[default]
    TimeOutWf,
    /// Only report it.
    AlertOnly,
}

impl TaskTimeoutPolicy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskTimeoutPolicy::Retry => "RETRY",
            TaskTimeoutPolicy::TimeOutWf => "TIME_OUT_WF",
            TaskTimeoutPolicy::AlertOnly => "ALERT_ONLY",
        }
    }
}

/// What happens when a workflow exceeds its `timeoutSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowTimeoutPolicy {
    /// Time the workflow out.
    TimeOutWf,
    /// Only report it.
    #[default]
    AlertOnly,
}

fn d_retry_count() -> i32 {
    3
}
fn d_retry_delay() -> i32 {
    60
}
fn d_response_timeout() -> i64 {
    3600
}
fn d_one() -> i32 {
    1
}
fn d_schema_version() -> i32 {
    2
}

/// A registered task definition (Conductor `TaskDef`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDef {
    /// Unique name; SIMPLE tasks are polled by this name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    /// Retries after the first attempt.
    #[serde(default = "d_retry_count", deserialize_with = "null_as_default")]
    pub retry_count: i32,
    /// Overall time limit of one attempt, 0 = none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeout_seconds: i64,
    /// Documentation only.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_keys: Vec<String>,
    /// Documentation only.
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_keys: Vec<String>,
    /// Names resolved into `Task.runtimeMetadata` at poll.
    #[serde(default, deserialize_with = "null_as_default")]
    pub runtime_metadata: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub timeout_policy: TaskTimeoutPolicy,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub retry_logic: RetryLogic,
    #[serde(default = "d_retry_delay", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub retry_delay_seconds: i32,
    /// Time a worker may hold an IN_PROGRESS task without reporting.
    #[serde(default = "d_response_timeout", deserialize_with = "null_as_default")]
    pub response_timeout_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub concurrent_exec_limit: Option<i32>,
    /// Defaults merged into the task input.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_template: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rate_limit_per_frequency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rate_limit_frequency_in_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub isolation_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub execution_name_space: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub owner_email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub poll_timeout_seconds: Option<i32>,
    #[serde(default = "d_one", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub backoff_scale_factor: i32,
    /// Cap on the retry delay, 0 = none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub max_retry_delay_seconds: i32,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub backoff_jitter_ms: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub base_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub total_timeout_seconds: i64,
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub task_status_listener_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub output_schema: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub enforce_schema: bool,
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub audit: Audit,
}

impl TaskDef {
    /// A definition with Conductor's defaults; also what Conductor makes up for a SIMPLE task that
    /// has none registered.
    pub fn with_defaults(name: &str) -> TaskDef {
        TaskDef {
            name: name.to_owned(),
            description: None,
            retry_count: d_retry_count(),
            timeout_seconds: 0,
            input_keys: Vec::new(),
            output_keys: Vec::new(),
            runtime_metadata: Vec::new(),
            timeout_policy: TaskTimeoutPolicy::default(),
            retry_logic: RetryLogic::default(),
            retry_delay_seconds: d_retry_delay(),
            response_timeout_seconds: d_response_timeout(),
            concurrent_exec_limit: None,
            input_template: Map::new(),
            rate_limit_per_frequency: None,
            rate_limit_frequency_in_seconds: None,
            isolation_group_id: None,
            execution_name_space: None,
            owner_email: None,
            poll_timeout_seconds: None,
            backoff_scale_factor: d_one(),
            max_retry_delay_seconds: 0,
            backoff_jitter_ms: 0,
            base_type: None,
            total_timeout_seconds: 0,
            task_status_listener_enabled: true,
            input_schema: None,
            output_schema: None,
            enforce_schema: false,
            audit: Audit::default(),
        }
    }
}

/// Conductor's `Auditable` fields, shared by definitions and executions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub owner_app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub create_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub update_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub updated_by: Option<String>,
}

/// A workflow definition (Conductor `WorkflowDef`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDef {
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    #[serde(default = "d_one", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub version: i32,
    #[serde(default, deserialize_with = "top_level_tasks")]
    #[allow(missing_docs)]
    pub tasks: Vec<WorkflowTask>,
    /// Documentation only.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_parameters: Vec<String>,
    /// Expressions evaluated into the workflow output.
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_parameters: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub failure_workflow: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub failure_workflow_version: Option<i32>,
    #[serde(default = "d_schema_version", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub schema_version: i32,
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub restartable: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub workflow_status_listener_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub workflow_status_listener_sink: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub owner_email: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub timeout_policy: WorkflowTimeoutPolicy,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub timeout_seconds: i64,
    /// Initial `workflow.variables`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variables: Map<String, Value>,
    /// Defaults merged into the start input.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_template: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rate_limit_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub input_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub output_schema: Option<Value>,
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub enforce_schema: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub metadata: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cache_config: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub masked_fields: Vec<String>,
    /// Overture's own: seconds an ended execution of this definition is kept before it is
    /// purged; absent means the node's default, 0 means forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<i64>,
    #[serde(flatten)]
    #[allow(missing_docs)]
    pub audit: Audit,
}

fn d_simple() -> String {
    "SIMPLE".to_owned()
}

/// One task of a workflow definition (Conductor `WorkflowTask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTask {
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub task_reference_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub description: Option<String>,
    /// Expressions resolved into the task input when it is scheduled.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_parameters: Map<String, Value>,
    /// The task type; any string that is not a system type is a worker task.
    #[serde(rename = "type", default = "d_simple", deserialize_with = "de_task_type")]
    pub task_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub dynamic_task_name_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub case_value_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub case_expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub script_expression: Option<String>,
    #[serde(default, deserialize_with = "nested_cases")]
    #[allow(missing_docs)]
    pub decision_cases: BTreeMap<String, Vec<WorkflowTask>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub dynamic_fork_join_tasks_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub dynamic_fork_tasks_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub dynamic_fork_tasks_input_param_name: Option<String>,
    #[serde(default, deserialize_with = "nested_list")]
    #[allow(missing_docs)]
    pub default_case: Vec<WorkflowTask>,
    #[serde(default, deserialize_with = "nested_branches")]
    #[allow(missing_docs)]
    pub fork_tasks: Vec<Vec<WorkflowTask>>,
    /// Seconds before the first poll may receive the task.
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_delay: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sub_workflow_param: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub join_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub sink: Option<String>,
    /// A failed optional task ends COMPLETED_WITH_ERRORS and the workflow goes on.
    #[serde(default, deserialize_with = "null_as_default")]
    pub optional: bool,
    /// An embedded task definition; overrides the registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<TaskDef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub rate_limited: Option<bool>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub default_exclusive_join_task: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub async_complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub loop_condition: Option<String>,
    #[serde(default, deserialize_with = "nested_list")]
    #[allow(missing_docs)]
    pub loop_over: Vec<WorkflowTask>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub items: Option<String>,
    /// Overrides the definition's `retryCount` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub evaluator_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub on_state_change: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub join_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub cache_config: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub permissive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub join_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub metadata: Option<Value>,
}

/// How deeply tasks may nest inside one another: a task in a SWITCH case, a FORK_JOIN branch or
/// a DO_WHILE body is one level deeper than the task that holds it, and the definition's own
/// tasks are at level 0. Reading a task is recursive and takes tens of kilobytes of stack per
/// level in a debug build, so a definition nested deeper than this is refused while it is read,
/// before it can overflow the stack. Real definitions nest a handful of levels.
pub const MAX_TASK_NESTING: usize = 32;

/// How many tasks one definition may hold, at every depth. A task takes over a kilobyte once
/// read and again once planned, and `{}` is a task: an 8 MiB body of them would be gigabytes. So
/// the count is checked while the definition is read, before that memory is taken.
pub const MAX_TASKS: usize = 10_000;

thread_local! {
    /// How many nested tasks the deserializer on this thread is inside.
    static TASK_NESTING: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Tasks read so far of the definition this thread is reading; `None` outside one.
    static TASKS_READ: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Counts one more task of the definition being read, failing past [`MAX_TASKS`].
fn count_task<E: serde::de::Error>() -> Result<(), E> {
    let read = TASKS_READ.with(|n| {
        let read = n.get().map(|c| c + 1);
        n.set(read);
        read
    });
    match read {
        Some(read) if read > MAX_TASKS => {
            Err(E::custom(format_args!("a workflow definition may hold at most {MAX_TASKS} tasks")))
        }
        _ => Ok(()),
    }
}

/// A task of a definition's own list, counted towards [`MAX_TASKS`].
struct Counted(WorkflowTask);

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        count_task()?;
        WorkflowTask::deserialize(deserializer).map(Counted)
    }
}

/// Reads a definition's `tasks` (`null` as none), counting every task at every depth within it
/// towards [`MAX_TASKS`].
fn top_level_tasks<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<WorkflowTask>, D::Error> {
    /// Puts back the count of an enclosing read however this one ends.
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            TASKS_READ.with(|n| n.set(self.0));
        }
    }
    let _restore = Restore(TASKS_READ.with(|n| n.replace(Some(0))));
    let tasks: Vec<Counted> = null_as_default(deserializer)?;
    Ok(tasks.into_iter().map(|t| t.0).collect())
}

/// A task inside another task, read one nesting level deeper.
struct Nested(WorkflowTask);

impl<'de> Deserialize<'de> for Nested {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// Leaves the level again however reading the task ends.
        struct Level;
        impl Drop for Level {
            fn drop(&mut self) {
                TASK_NESTING.with(|n| n.set(n.get().saturating_sub(1)));
            }
        }
        let depth = TASK_NESTING.with(|n| {
            n.set(n.get() + 1);
            n.get()
        });
        let _level = Level;
        if depth > MAX_TASK_NESTING {
            return Err(serde::de::Error::custom(format_args!("tasks nest deeper than {MAX_TASK_NESTING} levels")));
        }
        count_task()?;
        WorkflowTask::deserialize(deserializer).map(Nested)
    }
}

fn unwrap_nested(list: Vec<Nested>) -> Vec<WorkflowTask> {
    list.into_iter().map(|n| n.0).collect()
}

/// Reads a list of child tasks (`null` as empty), within [`MAX_TASK_NESTING`].
fn nested_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<WorkflowTask>, D::Error> {
    null_as_default(deserializer).map(unwrap_nested)
}

/// Reads `decisionCases` (`null` as none), within [`MAX_TASK_NESTING`].
fn nested_cases<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, Vec<WorkflowTask>>, D::Error> {
    let cases: BTreeMap<String, Vec<Nested>> = null_as_default(deserializer)?;
    Ok(cases.into_iter().map(|(name, list)| (name, unwrap_nested(list))).collect())
}

/// Reads `forkTasks` (`null` as none), within [`MAX_TASK_NESTING`].
fn nested_branches<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<Vec<WorkflowTask>>, D::Error> {
    let branches: Vec<Vec<Nested>> = null_as_default(deserializer)?;
    Ok(branches.into_iter().map(unwrap_nested).collect())
}

fn de_task_type<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?.unwrap_or_else(d_simple))
}

/// The request that starts a workflow (Conductor `StartWorkflowRequest`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartWorkflowRequest {
    /// Name of the definition to run; required.
    #[serde(default)]
    pub name: Option<String>,
    /// Version to run; latest when absent.
    #[serde(default)]
    pub version: Option<i32>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub correlation_id: Option<String>,
    /// Workflow input. Conductor rejects an explicit `null`; absent means `{}`.
    #[serde(default = "absent_input")]
    pub input: Option<Map<String, Value>>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub task_to_domain: BTreeMap<String, String>,
    /// An inline definition to run instead of a registered one.
    #[serde(default)]
    pub workflow_def: Option<WorkflowDef>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub priority: i32,
    #[serde(default)]
    #[allow(missing_docs)]
    pub created_by: Option<String>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub idempotency_key: Option<String>,
    /// What a start does when `idempotency_key` is taken: `FAIL` (the default),
    /// `RETURN_EXISTING` or `FAIL_ON_RUNNING`.
    #[serde(default)]
    pub idempotency_strategy: Option<String>,
    #[serde(default)]
    #[allow(missing_docs)]
    pub external_input_payload_storage_path: Option<String>,
}

fn absent_input() -> Option<Map<String, Value>> {
    Some(Map::new())
}

/// An event handler (Conductor `EventHandler`): when a message arrives on `event` and
/// `condition` holds, run `actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventHandler {
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub name: String,
    /// The queue it listens on, e.g. `conductor:workflow:task`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub event: String,
    /// JavaScript over the message (`$`); absent means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub evaluator_type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub active: bool,
    #[serde(default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub actions: Vec<EventAction>,
}

/// One action of an event handler. Parameters may hold `${...}` paths into the message. The
/// action keys are snake_case on the wire, as in Conductor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventAction {
    /// `start_workflow`, `complete_task`, `fail_task`, `terminate_workflow` or
    /// `update_workflow_variables`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub start_workflow: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub complete_task: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub fail_task: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub terminate_workflow: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[allow(missing_docs)]
    pub update_workflow_variables: Option<Value>,
    #[serde(rename = "expandInlineJSON", default, deserialize_with = "null_as_default")]
    #[allow(missing_docs)]
    pub expand_inline_json: bool,
}

/// The actions Overture runs.
pub const EVENT_ACTIONS: [&str; 5] =
    ["start_workflow", "complete_task", "fail_task", "terminate_workflow", "update_workflow_variables"];

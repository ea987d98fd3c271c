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
    /// Conductor's `description`: free text for people; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
    /// Conductor's `timeoutPolicy`: what running out of `timeoutSeconds`, `pollTimeoutSeconds` or
    /// `totalTimeoutSeconds` does; default TIME_OUT_WF.
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeout_policy: TaskTimeoutPolicy,
    /// Conductor's `retryLogic`: how the retry delay grows; default FIXED.
    #[serde(default, deserialize_with = "null_as_default")]
    pub retry_logic: RetryLogic,
    /// Conductor's `retryDelaySeconds`: base delay before a retry, in seconds; default 60.
    #[serde(default = "d_retry_delay", deserialize_with = "null_as_default")]
    pub retry_delay_seconds: i32,
    /// Time a worker may hold an IN_PROGRESS task without reporting.
    #[serde(default = "d_response_timeout", deserialize_with = "null_as_default")]
    pub response_timeout_seconds: i64,
    /// Conductor's `concurrentExecLimit`: at most this many tasks of this definition IN_PROGRESS at
    /// once; absent or 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent_exec_limit: Option<i32>,
    /// Defaults merged into the task input.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_template: Map<String, Value>,
    /// Conductor's `rateLimitPerFrequency`: at most this many tasks handed to workers per
    /// `rateLimitFrequencyInSeconds` window; absent or 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_frequency: Option<i32>,
    /// Conductor's `rateLimitFrequencyInSeconds`: the rate-limit window in seconds; absent means 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_frequency_in_seconds: Option<i32>,
    /// Conductor's `isolationGroupId`: copied onto each task; does not split its queue yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation_group_id: Option<String>,
    /// Conductor's `executionNameSpace`: copied onto each task; does not split its queue yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_name_space: Option<String>,
    /// Conductor's `ownerEmail`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    /// Conductor's `pollTimeoutSeconds`: seconds a pollable task may wait for a worker before it
    /// times out; absent or 0 means no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poll_timeout_seconds: Option<i32>,
    /// Conductor's `backoffScaleFactor`: multiplier of LINEAR_BACKOFF delays; at least 1, default 1.
    #[serde(default = "d_one", deserialize_with = "null_as_default")]
    pub backoff_scale_factor: i32,
    /// Cap on the retry delay, 0 = none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub max_retry_delay_seconds: i32,
    /// Conductor's `backoffJitterMs`: up to this many random millis added to each retry's delay.
    #[serde(default, deserialize_with = "null_as_default")]
    pub backoff_jitter_ms: i32,
    /// Conductor's `baseType`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_type: Option<String>,
    /// Conductor's `totalTimeoutSeconds`: time limit in seconds for all attempts together, from
    /// the first one's scheduling; 0 = none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub total_timeout_seconds: i64,
    /// Conductor's `taskStatusListenerEnabled`: stored and returned; not used.
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    pub task_status_listener_enabled: bool,
    /// Conductor's `inputSchema`, kept as raw JSON; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Conductor's `outputSchema`, kept as raw JSON; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Conductor's `enforceSchema`: stored and returned; schemas are not checked.
    #[serde(default, deserialize_with = "null_as_default")]
    pub enforce_schema: bool,
    /// Conductor's audit fields (`createTime`, `updatedBy`, ...), inline in the definition's JSON.
    #[serde(flatten)]
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
    /// Conductor's `ownerApp`: stored as the client sends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_app: Option<String>,
    /// Conductor's `createTime`: epoch millis the definition was first registered; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Conductor's `updateTime`: epoch millis the definition was last replaced; set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_time: Option<i64>,
    /// Conductor's `createdBy`: who registered it, as the client says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Conductor's `updatedBy`: who last changed it, as the client says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
}

/// A workflow definition (Conductor `WorkflowDef`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowDef {
    /// Conductor's `name`: what start requests and SUB_WORKFLOW tasks name; required.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Conductor's `description`: free text for people; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Conductor's `version`: 1 or more, default 1; a start that names no version runs the latest.
    #[serde(default = "d_one", deserialize_with = "null_as_default")]
    pub version: i32,
    /// Conductor's `tasks`: the top-level task list, run in order; at most [`MAX_TASKS`] at all depths.
    #[serde(default, deserialize_with = "top_level_tasks")]
    pub tasks: Vec<WorkflowTask>,
    /// Documentation only.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_parameters: Vec<String>,
    /// Expressions evaluated into the workflow output.
    #[serde(default, deserialize_with = "null_as_default")]
    pub output_parameters: Map<String, Value>,
    /// Conductor's `failureWorkflow`: the workflow started when an execution ends other than
    /// COMPLETED (not when terminated through the API); may be a `${workflow.input.x}` expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_workflow: Option<String>,
    /// Conductor's `failureWorkflowVersion`: the failure workflow's version; latest when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_workflow_version: Option<i32>,
    /// Conductor's `schemaVersion`: only 2 is accepted.
    #[serde(default = "d_schema_version", deserialize_with = "null_as_default")]
    pub schema_version: i32,
    /// Conductor's `restartable`: whether a COMPLETED execution may be restarted; default true.
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    pub restartable: bool,
    /// Conductor's `workflowStatusListenerEnabled`: an ended execution publishes its summary
    /// to the `conductor:_callback*Queue` queues.
    #[serde(default, deserialize_with = "null_as_default")]
    pub workflow_status_listener_enabled: bool,
    /// Conductor's `workflowStatusListenerSink`: a queue (`kafka:topic`, `conductor:name`, ...)
    /// an ended execution's summary is also published on, if the listener is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_status_listener_sink: Option<String>,
    /// Conductor's `ownerEmail`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_email: Option<String>,
    /// Conductor's `timeoutPolicy`: what running out of `timeoutSeconds` does; default ALERT_ONLY.
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeout_policy: WorkflowTimeoutPolicy,
    /// Conductor's `timeoutSeconds`: time limit of an execution in seconds, from its start or
    /// last retry or resume; 0 = none.
    #[serde(default, deserialize_with = "null_as_default")]
    pub timeout_seconds: i64,
    /// Initial `workflow.variables`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub variables: Map<String, Value>,
    /// Defaults merged into the start input.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_template: Map<String, Value>,
    /// Conductor's `rateLimitConfig`, kept as raw JSON; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_config: Option<Value>,
    /// Conductor's `inputSchema`, kept as raw JSON; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// Conductor's `outputSchema`, kept as raw JSON; not enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Conductor's `enforceSchema`: stored and returned; schemas are not checked.
    #[serde(default = "default_true", deserialize_with = "null_as_default")]
    pub enforce_schema: bool,
    /// Conductor's `metadata`, kept as raw JSON; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Conductor's `cacheConfig`, kept as raw JSON; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_config: Option<Value>,
    /// Conductor's `maskedFields`: stored and returned; nothing is masked.
    #[serde(default, deserialize_with = "null_as_default")]
    pub masked_fields: Vec<String>,
    /// Overture's own: seconds an ended execution of this definition is kept before it is
    /// purged; absent means the node's default, 0 means forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_seconds: Option<i64>,
    /// Conductor's audit fields (`createTime`, `updatedBy`, ...), inline in the definition's JSON.
    #[serde(flatten)]
    pub audit: Audit,
}

fn d_simple() -> String {
    "SIMPLE".to_owned()
}

/// One task of a workflow definition (Conductor `WorkflowTask`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTask {
    /// Conductor's `name`: the task definition it runs; SIMPLE tasks are queued and polled by it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// Conductor's `taskReferenceName`: unique in the definition; expressions (`${ref.output}`)
    /// and the API find the task by it.
    #[serde(default, deserialize_with = "null_as_default")]
    pub task_reference_name: String,
    /// Conductor's `description`: free text for people; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Expressions resolved into the task input when it is scheduled.
    #[serde(default, deserialize_with = "null_as_default")]
    pub input_parameters: Map<String, Value>,
    /// The task type; any string that is not a system type is a worker task.
    #[serde(rename = "type", default = "d_simple", deserialize_with = "de_task_type")]
    pub task_type: String,
    /// Conductor's `dynamicTaskNameParam`: for DYNAMIC, the input key naming the task to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_task_name_param: Option<String>,
    /// Conductor's `caseValueParam`: for DECISION, the input key whose value picks the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_value_param: Option<String>,
    /// Conductor's `caseExpression`: for DECISION without `caseValueParam`, JavaScript over the
    /// input (`$`) whose result picks the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case_expression: Option<String>,
    /// Conductor's `scriptExpression`: for LAMBDA, a JavaScript function body with `$` bound to the input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_expression: Option<String>,
    /// Conductor's `decisionCases`: for SWITCH and DECISION, case value → the tasks it runs.
    #[serde(default, deserialize_with = "nested_cases")]
    pub decision_cases: BTreeMap<String, Vec<WorkflowTask>>,
    /// Conductor's `dynamicForkJoinTasksParam`: for FORK_JOIN_DYNAMIC (legacy form), the
    /// input key holding `{dynamicTasks: [...]}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_fork_join_tasks_param: Option<String>,
    /// Conductor's `dynamicForkTasksParam`: for FORK_JOIN_DYNAMIC, the input key holding the tasks to fork.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_fork_tasks_param: Option<String>,
    /// Conductor's `dynamicForkTasksInputParamName`: for FORK_JOIN_DYNAMIC, the input key
    /// holding each forked task's input, by reference name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_fork_tasks_input_param_name: Option<String>,
    /// Conductor's `defaultCase`: for SWITCH and DECISION, the tasks run when no case matches.
    #[serde(default, deserialize_with = "nested_list")]
    pub default_case: Vec<WorkflowTask>,
    /// Conductor's `forkTasks`: for FORK_JOIN, the branches run in parallel, each a task list.
    #[serde(default, deserialize_with = "nested_branches")]
    pub fork_tasks: Vec<Vec<WorkflowTask>>,
    /// Seconds before the first poll may receive the task.
    #[serde(default, deserialize_with = "null_as_default")]
    pub start_delay: i32,
    /// Conductor's `subWorkflowParam`: for SUB_WORKFLOW, the child's `name`, `version`,
    /// `taskToDomain`, inline `workflowDefinition`, ...; raw JSON resolved when scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_workflow_param: Option<Value>,
    /// Conductor's `joinOn`: for JOIN and EXCLUSIVE_JOIN, the reference names it waits for.
    #[serde(default, deserialize_with = "null_as_default")]
    pub join_on: Vec<String>,
    /// Conductor's `sink`: for EVENT, where the message goes: `conductor` or `conductor:<queue>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sink: Option<String>,
    /// A failed optional task ends COMPLETED_WITH_ERRORS and the workflow goes on.
    #[serde(default, deserialize_with = "null_as_default")]
    pub optional: bool,
    /// An embedded task definition; overrides the registered one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition: Option<TaskDef>,
    /// Conductor's `rateLimited`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limited: Option<bool>,
    /// Conductor's `defaultExclusiveJoinTask`: for EXCLUSIVE_JOIN, the references used when
    /// none of `joinOn` ran.
    #[serde(default, deserialize_with = "null_as_default")]
    pub default_exclusive_join_task: Vec<String>,
    /// Conductor's `asyncComplete`: an HTTP or EVENT task stays IN_PROGRESS after its call or
    /// message, for something else to complete.
    #[serde(default, deserialize_with = "null_as_default")]
    pub async_complete: bool,
    /// Conductor's `loopCondition`: for DO_WHILE, JavaScript evaluated after each iteration;
    /// the loop goes on while it is true or a number above zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_condition: Option<String>,
    /// Conductor's `loopOver`: for DO_WHILE, the tasks of one iteration.
    #[serde(default, deserialize_with = "nested_list")]
    pub loop_over: Vec<WorkflowTask>,
    /// Conductor's `items`: for DO_WHILE, an expression giving a list; one iteration per item, with
    /// `loopIndex` and `loopItem` in the loop's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    /// Overrides the definition's `retryCount` when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i32>,
    /// Conductor's `evaluatorType`: for SWITCH, `value-param` (the default), `javascript` or `graaljs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_type: Option<String>,
    /// Conductor's `expression`: for SWITCH, the input key (`value-param`) or the JavaScript whose
    /// result picks the case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Conductor's `onStateChange`, kept as raw JSON; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_state_change: Option<Value>,
    /// Conductor's `joinStatus`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_status: Option<String>,
    /// Conductor's `cacheConfig`, kept as raw JSON; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_config: Option<Value>,
    /// Conductor's `permissive`: a failure lets the flow go on, and the workflow fails once all its
    /// tasks have ended; a JOIN waits for all its tasks before failing.
    #[serde(default, deserialize_with = "null_as_default")]
    pub permissive: bool,
    /// Conductor's `joinMode`: stored and returned; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_mode: Option<String>,
    /// Conductor's `metadata`, kept as raw JSON; not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl WorkflowTask {
    /// Gives an embedded `taskDefinition` that has no name of its own the task's name.
    ///
    /// Conductor's Python SDK embeds definitions without a name, and conductor-oss accepts them:
    /// it never validates an embedded definition, and the task's `name` is what the task runs
    /// as. Wherever Overture shows or keys on the embedded definition's name (a polled task's
    /// `taskDefinition`, its messages), it is the task's name.
    pub fn name_embedded_definition(&mut self) {
        if let Some(def) = self.task_definition.as_mut()
            && def.name.trim().is_empty()
        {
            def.name.clone_from(&self.name);
        }
    }
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartWorkflowRequest {
    /// Name of the definition to run; required.
    #[serde(default)]
    pub name: Option<String>,
    /// Version to run; latest when absent.
    #[serde(default)]
    pub version: Option<i32>,
    /// Conductor's `correlationId`: the caller's label for the execution; searchable.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// Workflow input. Conductor rejects an explicit `null`; absent means `{}`.
    #[serde(default = "absent_input")]
    pub input: Option<Map<String, Value>>,
    /// Conductor's `taskToDomain`: task name (or `*`) → comma-separated domains its worker
    /// tasks are queued in.
    #[serde(default, deserialize_with = "null_as_default")]
    pub task_to_domain: BTreeMap<String, String>,
    /// An inline definition to run instead of a registered one.
    #[serde(default)]
    pub workflow_def: Option<WorkflowDef>,
    /// Conductor's `priority`: 0–99, default 0; copied to every task as its queue priority.
    #[serde(default, deserialize_with = "null_as_default")]
    pub priority: i32,
    /// Conductor's `createdBy`: stored on the execution.
    #[serde(default)]
    pub created_by: Option<String>,
    /// Conductor's `idempotencyKey`: a start reusing it does what `idempotency_strategy` says.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// What a start does when `idempotency_key` is taken: `FAIL` (the default),
    /// `RETURN_EXISTING` or `FAIL_ON_RUNNING`.
    #[serde(default)]
    pub idempotency_strategy: Option<String>,
    /// Conductor's `externalInputPayloadStoragePath`: where the client stored the input in
    /// external payload storage (the Java SDK does over its threshold); read at start.
    #[serde(default)]
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
    /// Conductor's `name`: the handler's unique name.
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    /// The queue it listens on, e.g. `conductor:workflow:task`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub event: String,
    /// JavaScript over the message (`$`); absent means always.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Conductor's `evaluatorType`: stored and returned; `condition` always runs as JavaScript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluator_type: Option<String>,
    /// Conductor's `active`: only active handlers run.
    #[serde(default, deserialize_with = "null_as_default")]
    pub active: bool,
    /// Conductor's `actions`: run in order for each message that matches.
    #[serde(default, deserialize_with = "null_as_default")]
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
    /// For `start_workflow`: the workflow's `name`, `version`, `correlationId`, `input`, `taskToDomain`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_workflow: Option<Value>,
    /// For `complete_task`: `taskId` (or `workflowId` and `taskRefName`), `output` and
    /// `reasonForIncompletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete_task: Option<Value>,
    /// For `fail_task`: `taskId` (or `workflowId` and `taskRefName`), `output` and `reasonForIncompletion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_task: Option<Value>,
    /// For `terminate_workflow`: `workflowId` and `terminationReason`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminate_workflow: Option<Value>,
    /// For `update_workflow_variables`: `workflowId`, `variables` and `appendArray`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_workflow_variables: Option<Value>,
    /// Conductor's `expandInlineJSON`: stored and returned; not used.
    #[serde(rename = "expandInlineJSON", default, deserialize_with = "null_as_default")]
    pub expand_inline_json: bool,
}

/// The actions Overture runs.
pub const EVENT_ACTIONS: [&str; 5] =
    ["start_workflow", "complete_task", "fail_task", "terminate_workflow", "update_workflow_variables"];

//! Execution state: what a workflow instance and its tasks are right now.
//!
//! These types are both the in-memory state the decider reads and the rows the state machine
//! stores (bincode; JSON payloads as JSON bytes). Changing a field means a new row format version in
//! the storage codec. Enum variants are encoded by position: append new ones, never reorder.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::dsl::WorkflowTask;
use crate::external::{External, PayloadTarget};
use crate::ids::{TaskType, WorkflowId};
use crate::plan::{Plan, PlanTask, TaskKind, base_reference};
use crate::serde_util::json_bytes;

/// A JSON object: task input and output, workflow input, output and variables.
pub type Object = Map<String, Value>;

/// Conductor's `Workflow.WorkflowStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WorkflowStatus {
    /// Scheduling and running tasks.
    Running,
    /// Ended successfully.
    Completed,
    /// Ended by a failure: a task's, an unusable definition's, or a TERMINATE task's.
    Failed,
    /// Ended by its own `timeoutSeconds`, or by a task that timed out and was not retried.
    TimedOut,
    /// Stopped before its end: through the API, an event handler, a TERMINATE task or a canceled task.
    Terminated,
    /// Schedules no new tasks until resumed.
    Paused,
}

impl WorkflowStatus {
    /// No further change without an explicit restart, retry or rerun.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::TimedOut | Self::Terminated)
    }
    /// COMPLETED or PAUSED, as Conductor defines it.
    pub fn is_successful(self) -> bool {
        matches!(self, Self::Completed | Self::Paused)
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Completed => "COMPLETED",
            Self::Failed => "FAILED",
            Self::TimedOut => "TIMED_OUT",
            Self::Terminated => "TERMINATED",
            Self::Paused => "PAUSED",
        }
    }
}

/// Conductor's `Task.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskStatus {
    /// Started: a worker or the leader's executor holds it, or a system task (WAIT, JOIN, ...) waits.
    InProgress,
    /// Ended unfinished: its workflow ended first, it was reported CANCELED, or its child was terminated.
    Canceled,
    /// Failed; may be retried.
    Failed,
    /// Failed for good; never retried.
    FailedWithTerminalError,
    /// Done.
    Completed,
    /// Ended with tolerated errors: an optional task that failed, or a JOIN over one.
    CompletedWithErrors,
    /// Created and waiting to be handed to a worker or the leader's executor.
    Scheduled,
    /// One of its timeouts ran out, or its child workflow timed out.
    TimedOut,
    /// Skipped through the API before it ran; the flow steps over it.
    Skipped,
}

impl TaskStatus {
    /// The task will not change again.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Self::InProgress | Self::Scheduled)
    }
    /// Terminal and good enough for the workflow to go on.
    pub fn is_successful(self) -> bool {
        matches!(self, Self::InProgress | Self::Completed | Self::CompletedWithErrors | Self::Scheduled | Self::Skipped)
    }
    /// A failure in this status may be retried.
    pub fn is_retriable(self) -> bool {
        !matches!(self, Self::Canceled | Self::FailedWithTerminalError | Self::Skipped)
    }
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "IN_PROGRESS",
            Self::Canceled => "CANCELED",
            Self::Failed => "FAILED",
            Self::FailedWithTerminalError => "FAILED_WITH_TERMINAL_ERROR",
            Self::Completed => "COMPLETED",
            Self::CompletedWithErrors => "COMPLETED_WITH_ERRORS",
            Self::Scheduled => "SCHEDULED",
            Self::TimedOut => "TIMED_OUT",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// The workflow-level part of an execution: everything but its tasks and definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowHeader {
    /// Conductor's `workflowId`: the execution's unique id.
    pub workflow_id: WorkflowId,
    /// Definition name.
    pub workflow_name: String,
    /// Definition version.
    pub workflow_version: i32,
    /// Conductor's `status`.
    pub status: WorkflowStatus,
    /// Conductor's `input`: the start input, with the definition's `inputTemplate` defaults merged in.
    #[serde(with = "json_bytes")]
    pub input: Object,
    /// Conductor's `output`: empty until the workflow ends.
    #[serde(with = "json_bytes")]
    pub output: Object,
    /// Conductor's `variables` (`workflow.variables`): the definition's `variables` at start, then
    /// what SET_VARIABLE tasks and event handlers set.
    #[serde(with = "json_bytes")]
    pub variables: Object,
    /// Conductor's `correlationId`: the caller's label from the start request; searchable.
    pub correlation_id: Option<String>,
    /// 0–99; copied to every task as its queue priority.
    pub priority: i32,
    /// Conductor's `taskToDomain`: task name (or `*`) → comma-separated domains its worker
    /// tasks are queued in; from the start request.
    pub task_to_domain: BTreeMap<String, String>,
    /// Epoch millis; Conductor's `createTime` and `startTime`.
    pub create_time: i64,
    /// Epoch millis of the last change.
    pub update_time: i64,
    /// Epoch millis, 0 while not terminal.
    pub end_time: i64,
    /// Conductor's `reasonForIncompletion`: why the workflow did not complete, if it did not.
    pub reason_for_incompletion: Option<String>,
    /// Sorted, without duplicates.
    pub failed_reference_task_names: Vec<String>,
    /// Sorted, without duplicates.
    pub failed_task_names: Vec<String>,
    /// Conductor's `parentWorkflowId`: for a child, the workflow whose SUB_WORKFLOW task started it.
    pub parent_workflow_id: Option<WorkflowId>,
    /// Conductor's `parentWorkflowTaskId`: for a child, that SUB_WORKFLOW task's id.
    pub parent_workflow_task_id: Option<String>,
    /// Epoch millis, 0 if never retried or resumed.
    pub last_retried_time: i64,
    /// Conductor's `createdBy`, from the start request.
    pub created_by: Option<String>,
    /// Conductor's `idempotencyKey`, from the start request.
    pub idempotency_key: Option<String>,
    /// What a second start with the same `idempotency_key` does (checked when the start applies).
    pub idempotency_strategy: Option<String>,
    /// Number of events applied so far; the version guard compares it.
    pub revision: u64,
    /// A child workflow has told its parent how it ended.
    pub parent_notified: bool,
    /// The workflow ended in a way that starts its `failureWorkflow`, which has not started yet.
    pub failure_workflow_pending: bool,
    /// The workflow ended with `workflowStatusListenerEnabled` and its status has not been
    /// published yet.
    pub status_listener_pending: bool,
}

/// One task execution (one attempt of one workflow task).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskState {
    /// Conductor's `taskId`: unique; new for every attempt.
    pub task_id: String,
    /// 1-based position in the workflow's task list; events address tasks by it.
    pub seq: u32,
    /// Conductor's `referenceTaskName`: the definition's `taskReferenceName`, with `__N` appended
    /// inside DO_WHILE iteration N.
    pub reference_task_name: String,
    /// Conductor's `taskDefName`: the task definition's name (`FORK` for a fork).
    pub task_def_name: String,
    /// For SIMPLE tasks the task name, as in Conductor.
    pub task_type: TaskType,
    /// Conductor's `status`.
    pub status: TaskStatus,
    /// Conductor's `inputData`: the resolved `inputParameters`, plus the task definition's
    /// `inputTemplate` defaults for a worker task.
    #[serde(with = "json_bytes")]
    pub input: Object,
    /// Conductor's `outputData`.
    #[serde(with = "json_bytes")]
    pub output: Object,
    /// Conductor's `retryCount`: how many attempts came before this one; 0 for the first.
    pub retry_count: i32,
    /// Conductor's `pollCount`: how many times it has been handed to a worker.
    pub poll_count: i32,
    /// Epoch millis.
    pub scheduled_time: i64,
    /// Epoch millis of the first poll, 0 before.
    pub start_time: i64,
    /// Epoch millis, 0 while not terminal.
    pub end_time: i64,
    /// Epoch millis of the last change.
    pub update_time: i64,
    /// Conductor's `startDelayInSeconds`: seconds before it may first be polled: the workflow task's
    /// `startDelay`, or a retry's delay; 0 for a system task that starts at once.
    pub start_delay_in_seconds: i32,
    /// A SCHEDULED task is pollable from `update_time + callback_after_seconds`.
    pub callback_after_seconds: i64,
    /// Conductor's `responseTimeoutSeconds`: how long it may stay IN_PROGRESS without an update: the
    /// task definition's, else 3600 for a worker task or 60 for the leader's executor; 0 = none.
    pub response_timeout_seconds: i64,
    /// Conductor's `retriedTaskId`: the attempt this one retries.
    pub retried_task_id: Option<String>,
    /// A later attempt replaced this one.
    pub retried: bool,
    /// The decider has acted on this task's terminal status.
    pub executed: bool,
    /// Conductor's `workerId`: the worker that last polled or updated it.
    pub worker_id: Option<String>,
    /// Conductor's `reasonForIncompletion`: why it failed, timed out or was canceled.
    pub reason_for_incompletion: Option<String>,
    /// Conductor's `domain`: the domain a worker task is queued in, picked from the workflow's
    /// `taskToDomain`.
    pub domain: Option<String>,
    /// The queue a worker polls for this task; `None` for tasks no worker executes.
    pub queue: Option<String>,
    /// Conductor's `rateLimitPerFrequency`, copied from the task definition; 0 if none.
    pub rate_limit_per_frequency: i32,
    /// Conductor's `rateLimitFrequencyInSeconds`, copied from the task definition; 1 if none.
    pub rate_limit_frequency_in_seconds: i32,
    /// Conductor's `isolationGroupId`, copied from the task definition.
    pub isolation_group_id: Option<String>,
    /// Conductor's `executionNameSpace`, copied from the task definition.
    pub execution_name_space: Option<String>,
    /// DO_WHILE iteration this task belongs to (1-based), or, for a DO_WHILE, its current one.
    pub iteration: i32,
    /// The task as it runs when it is not the definition's own: a dynamically forked task, or a
    /// DYNAMIC task with its resolved name and definition.
    #[serde(with = "json_bytes")]
    pub workflow_task: Option<Box<WorkflowTask>>,
    /// Epoch millis a WAIT task completes at; 0 if it waits for an update.
    pub wait_timeout: i64,
    /// The child execution of a SUB_WORKFLOW task.
    pub sub_workflow_id: Option<WorkflowId>,
    /// Epoch millis the first attempt of this task was scheduled (for `totalTimeoutSeconds`).
    pub first_scheduled_time: i64,
    /// The definition's `timeoutSeconds`: how long an attempt may run after its first poll.
    pub timeout_seconds: i64,
    /// The definition's `pollTimeoutSeconds`: how long a pollable task may wait for a worker.
    pub poll_timeout_seconds: i64,
    /// The definition's `totalTimeoutSeconds`: how long all attempts together may take.
    pub total_timeout_seconds: i64,
    /// Extra millis before a retry may be polled (`backoffJitterMs`), on top of its delay.
    pub jitter_ms: i64,
}

impl TaskState {
    /// What is left of a task a DO_WHILE's `keepLastN` dropped: its `seq` stays taken, so the
    /// tasks after it keep theirs; nothing else is kept, nothing is stored for it, and no read
    /// shows it ([`TaskState::is_pruned`]).
    pub fn pruned(seq: u32) -> TaskState {
        TaskState {
            task_id: String::new(),
            seq,
            reference_task_name: String::new(),
            task_def_name: String::new(),
            task_type: TaskType::default(),
            status: TaskStatus::Skipped,
            input: Object::new(),
            output: Object::new(),
            retry_count: 0,
            poll_count: 0,
            scheduled_time: 0,
            start_time: 0,
            end_time: 0,
            update_time: 0,
            start_delay_in_seconds: 0,
            callback_after_seconds: 0,
            response_timeout_seconds: 0,
            retried_task_id: None,
            retried: false,
            executed: true,
            worker_id: None,
            reason_for_incompletion: None,
            domain: None,
            queue: None,
            rate_limit_per_frequency: 0,
            rate_limit_frequency_in_seconds: 0,
            isolation_group_id: None,
            execution_name_space: None,
            iteration: 0,
            workflow_task: None,
            wait_timeout: 0,
            sub_workflow_id: None,
            first_scheduled_time: 0,
            timeout_seconds: 0,
            poll_timeout_seconds: 0,
            total_timeout_seconds: 0,
            jitter_ms: 0,
        }
    }

    /// A task `keepLastN` dropped (see [`TaskState::pruned`]): the only tasks without an id.
    pub fn is_pruned(&self) -> bool {
        self.task_id.is_empty()
    }

    /// When a SCHEDULED task may be handed to a worker.
    pub fn ready_at(&self) -> i64 {
        self.update_time.saturating_add(self.callback_after_seconds.saturating_mul(1000)).saturating_add(self.jitter_ms)
    }

    /// When a started attempt runs out of `timeoutSeconds`.
    pub fn timeout_deadline(&self) -> Option<i64> {
        (!self.status.is_terminal() && self.start_time > 0 && self.timeout_seconds > 0)
            .then(|| self.start_time.saturating_add(self.timeout_seconds.saturating_mul(1000)))
    }

    /// When a pollable task has waited `pollTimeoutSeconds` for a worker.
    pub fn poll_deadline(&self) -> Option<i64> {
        (self.status == TaskStatus::Scheduled && self.queue.is_some() && self.poll_timeout_seconds > 0)
            .then(|| self.ready_at().saturating_add(self.poll_timeout_seconds.saturating_mul(1000)))
    }

    /// When all attempts together run out of `totalTimeoutSeconds`.
    pub fn total_deadline(&self) -> Option<i64> {
        (!self.status.is_terminal() && self.total_timeout_seconds > 0)
            .then(|| self.first_scheduled_time.saturating_add(self.total_timeout_seconds.saturating_mul(1000)))
    }

    /// The reference name without a DO_WHILE iteration suffix.
    pub fn base_reference(&self) -> &str {
        base_reference(&self.reference_task_name, self.iteration)
    }

    /// What kind of task it is, by its type.
    pub fn kind(&self) -> TaskKind {
        self.task_type.kind()
    }

    /// A worker polls it (not the leader's executor, not nobody).
    pub fn is_worker_task(&self) -> bool {
        self.queue.as_deref().is_some_and(|q| !crate::queue::QueueName::is_system_name(q))
    }

    /// A SUB_WORKFLOW task canceled with its workflow, whose child still needs terminating.
    pub fn child_to_cancel(&self) -> bool {
        self.kind() == TaskKind::SubWorkflow
            && self.status == TaskStatus::Canceled
            && self.sub_workflow_id.is_some()
            && !self.executed
    }

    /// When an IN_PROGRESS task times out for lack of a worker response, if it can. A
    /// SUB_WORKFLOW task that started its child waits for the child instead.
    pub fn response_deadline(&self) -> Option<i64> {
        // A system task whose executor already reported on it (a SUB_WORKFLOW waiting for its
        // child, an asyncComplete EVENT) waits for someone else, not for the executor.
        let reported_by_executor = !self.is_worker_task() && !self.output.is_empty();
        if self.status != TaskStatus::InProgress
            || self.response_timeout_seconds <= 0
            || self.queue.is_none()
            || self.sub_workflow_id.is_some()
            || reported_by_executor
        {
            return None;
        }
        let seconds = self.response_timeout_seconds.saturating_add(self.callback_after_seconds);
        Some(self.update_time.saturating_add(seconds.saturating_mul(1000)))
    }
}

/// A whole execution: header, compiled definition and tasks in `seq` order.
#[derive(Debug, Clone)]
pub struct WorkflowState {
    /// The workflow-level fields: ids, status, input, output, times.
    pub header: WorkflowHeader,
    /// The definition snapshot this execution runs.
    pub plan: Arc<Plan>,
    /// `tasks[i].seq == i + 1`. Only [`crate::evolve`] adds tasks, keeping the indexes below.
    pub tasks: Vec<TaskState>,
    /// Task id → seq.
    by_id: HashMap<String, u32>,
    /// Reference name → seq of its latest attempt; a loop task is also found by its base name.
    by_ref: HashMap<String, u32>,
    /// Payloads stored outside the rows ([`crate::external`]).
    externals: BTreeMap<PayloadTarget, External>,
}

impl WorkflowState {
    /// An execution from its parts (as loaded from storage).
    pub fn new(header: WorkflowHeader, plan: Arc<Plan>, tasks: Vec<TaskState>) -> WorkflowState {
        let mut state = WorkflowState {
            header,
            plan,
            tasks: Vec::with_capacity(tasks.len()),
            by_id: HashMap::new(),
            by_ref: HashMap::new(),
            externals: BTreeMap::new(),
        };
        for task in tasks {
            // Rows of pruned tasks are not stored: their places are kept.
            while (state.tasks.len() as u32) + 1 < task.seq {
                state.push(TaskState::pruned(state.tasks.len() as u32 + 1));
            }
            state.push(task);
        }
        state
    }

    /// Payloads stored outside the rows, by target.
    pub fn externals(&self) -> &BTreeMap<PayloadTarget, External> {
        &self.externals
    }

    /// Where `target` is stored, if it is stored outside the rows.
    pub fn external(&self, target: PayloadTarget) -> Option<&External> {
        self.externals.get(&target)
    }

    /// Records that `target` is stored at `path`; `loaded` if the state holds its content too.
    pub fn set_external(&mut self, target: PayloadTarget, path: String, loaded: bool) {
        self.externals.insert(target, External { path, loaded });
    }

    /// The payload map `target` names, to fill in with the stored content.
    pub fn payload_mut(&mut self, target: PayloadTarget) -> Option<&mut Object> {
        match target {
            PayloadTarget::WorkflowInput => Some(&mut self.header.input),
            PayloadTarget::WorkflowOutput => Some(&mut self.header.output),
            PayloadTarget::TaskInput(seq) => self.task_mut(seq).map(|t| &mut t.input),
            PayloadTarget::TaskOutput(seq) => self.task_mut(seq).map(|t| &mut t.output),
        }
    }

    /// Forgets that `target` is stored elsewhere: something set it again.
    pub(crate) fn forget_external(&mut self, target: PayloadTarget) {
        self.externals.remove(&target);
    }

    /// Fills the places of pruned tasks after the last stored one, up to `count` tasks.
    pub fn pad_pruned(&mut self, count: u32) {
        while (self.tasks.len() as u32) < count {
            self.push(TaskState::pruned(self.tasks.len() as u32 + 1));
        }
    }

    /// Replaces these tasks with what is left of a pruned task ([`TaskState::pruned`]),
    /// forgetting their ids and reference names.
    pub(crate) fn prune(&mut self, seqs: &[u32]) {
        for &seq in seqs {
            let Some(slot) = (seq as usize).checked_sub(1).and_then(|i| self.tasks.get_mut(i)) else { continue };
            let old = std::mem::replace(slot, TaskState::pruned(seq));
            self.externals.remove(&PayloadTarget::TaskInput(seq));
            self.externals.remove(&PayloadTarget::TaskOutput(seq));
            self.by_id.remove(&old.task_id);
            for reference in [old.reference_task_name.as_str(), old.base_reference()] {
                if self.by_ref.get(reference) == Some(&seq) {
                    self.by_ref.remove(reference);
                }
            }
        }
    }

    /// Drops the tasks from position `keep` on and indexes the rest again.
    pub(crate) fn truncate_tasks(&mut self, keep: usize) {
        let tasks = std::mem::take(&mut self.tasks);
        self.externals.retain(|t, _| t.seq().is_none_or(|seq| seq as usize <= keep));
        self.by_id.clear();
        self.by_ref.clear();
        for task in tasks.into_iter().take(keep) {
            self.push(task);
        }
    }

    /// Appends a task and indexes it.
    pub(crate) fn push(&mut self, task: TaskState) {
        let seq = task.seq;
        if task.is_pruned() {
            self.tasks.push(task);
            return;
        }
        self.by_id.insert(task.task_id.clone(), seq);
        if task.iteration > 0 && task.base_reference() != task.reference_task_name {
            self.by_ref.insert(task.base_reference().to_owned(), seq);
        }
        self.by_ref.insert(task.reference_task_name.clone(), seq);
        // A task is large: most executions are short and many wait, so a short one grows
        // exactly rather than to four tasks at once.
        if self.tasks.len() < 8 {
            self.tasks.reserve_exact(1);
        }
        self.tasks.push(task);
    }

    /// The task with this id.
    pub fn task_by_id(&self, task_id: &str) -> Option<&TaskState> {
        self.by_id.get(task_id).and_then(|&seq| self.task(seq))
    }

    /// When the workflow runs out of its definition's `timeoutSeconds`, counted from its start or
    /// its last retry or resume.
    pub fn timeout_deadline(&self) -> Option<i64> {
        let seconds = self.plan.def.timeout_seconds;
        let h = &self.header;
        let counting = matches!(h.status, WorkflowStatus::Running | WorkflowStatus::Paused);
        (counting && seconds > 0).then(|| {
            let from = if h.last_retried_time > 0 { h.last_retried_time } else { h.create_time };
            from.saturating_add(seconds.saturating_mul(1000))
        })
    }

    /// A DO_WHILE's output as Conductor shows it. While the loop runs, only `iteration` (and
    /// `loopIndex`/`loopItem` over items) is stored, so an iteration costs the same however many
    /// came before; the outputs of each iteration's tasks, under the iteration number and by
    /// reference name, are filled in from the tasks themselves. A finished loop stores them all.
    pub fn loop_output(&self, dw: &TaskState) -> Object {
        let mut out = dw.output.clone();
        if dw.kind() != TaskKind::DoWhile || dw.status.is_terminal() {
            return out;
        }
        let Some(node) = self.plan.task(&dw.reference_task_name) else { return out };
        for t in &self.tasks {
            if t.retried || t.iteration == 0 || t.seq == dw.seq {
                continue;
            }
            let Some(n) = self.plan.task(t.base_reference()) else { continue };
            if !self.plan.is_inside(n.index, node.index) {
                continue;
            }
            let entry = out.entry(t.iteration.to_string()).or_insert_with(|| Value::Object(Object::new()));
            if let Value::Object(m) = entry {
                m.insert(t.base_reference().to_owned(), Value::Object(t.output.clone()));
            }
        }
        out
    }

    /// The task a signal completes here, as in conductor-oss: the first open WAIT task (with a
    /// deadline or without). HUMAN and worker tasks are completed by their own updates.
    pub fn blocking_task(&self) -> Option<&TaskState> {
        self.tasks.iter().find(|t| !t.status.is_terminal() && !t.retried && t.kind() == TaskKind::Wait)
    }

    /// The task at this `seq`.
    pub fn task(&self, seq: u32) -> Option<&TaskState> {
        (seq as usize).checked_sub(1).and_then(|i| self.tasks.get(i))
    }

    /// The definition task this task runs, and its plan node when it has one (a dynamically
    /// forked task has none).
    pub fn workflow_task<'a>(&'a self, task: &'a TaskState) -> Option<(&'a WorkflowTask, Option<&'a PlanTask>)> {
        let node = self.plan.task(task.base_reference());
        match &task.workflow_task {
            Some(wt) => Some((wt, node)),
            None => node.map(|n| (&n.task, Some(n))),
        }
    }

    /// The latest attempt of the task with this reference name (`ref__N` for one loop
    /// iteration; a loop task's base name finds its latest iteration).
    pub fn latest(&self, reference: &str) -> Option<&TaskState> {
        self.by_ref.get(reference).and_then(|&seq| self.task(seq))
    }

    pub(crate) fn task_mut(&mut self, seq: u32) -> Option<&mut TaskState> {
        (seq as usize).checked_sub(1).and_then(|i| self.tasks.get_mut(i))
    }
}

//! Rows derived from execution state: queue entries and timers.
//!
//! The state machine never decides whether a task is queued or a timer armed; it computes these
//! rows from the state before and after each event and writes the difference in the same batch.
//! Because they are a function of the state, they cannot drift from it, and a new leader rebuilds
//! its in-memory queues and timer heap by scanning them.

use serde::{Deserialize, Serialize};

use crate::ids::WorkflowId;
use crate::state::{TaskState, TaskStatus, WorkflowHeader, WorkflowState};

/// A task waiting in a worker queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueItem {
    /// `[domain:]taskType[@executionNameSpace][-isolationGroupId]`.
    pub queue: String,
    /// Conductor's `taskId` of the queued task.
    pub task_id: String,
    /// Id of the workflow the task belongs to.
    pub workflow_id: WorkflowId,
    /// Higher is served first.
    pub priority: i32,
    /// Epoch millis from which the task may be handed out.
    pub ready_at: i64,
}

/// A worker task that is IN_PROGRESS: what `concurrentExecLimit` counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RunningItem {
    /// Conductor's `taskDefName`: the definition whose `concurrentExecLimit` counts this task.
    pub task_def_name: String,
    /// Conductor's `taskId` of the running task.
    pub task_id: String,
    /// Id of the workflow the task belongs to.
    pub workflow_id: WorkflowId,
}

/// The running row a task implies, if any.
pub fn running_item(header: &WorkflowHeader, task: &TaskState) -> Option<RunningItem> {
    (task.status == TaskStatus::InProgress && task.is_worker_task() && !header.status.is_terminal()).then(|| {
        RunningItem {
            task_def_name: task.task_def_name.clone(),
            task_id: task.task_id.clone(),
            workflow_id: header.workflow_id.clone(),
        }
    })
}

/// Why a timer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    /// An IN_PROGRESS task's `responseTimeoutSeconds` runs out.
    ResponseTimeout,
    /// A WAIT task's `duration` or `until` is reached, or a paused DO_WHILE resumes.
    WaitTimeout,
    /// A started task's `timeoutSeconds` runs out.
    TaskTimeout,
    /// A pollable task's `pollTimeoutSeconds` runs out.
    PollTimeout,
    /// A task's `totalTimeoutSeconds` (all attempts) runs out.
    TotalTimeout,
    /// The workflow's `timeoutSeconds` runs out (timer `seq` 0).
    WorkflowTimeout,
    /// A finished child workflow has not told its parent yet (`seq` 0, due at once).
    NotifyParent,
    /// A failed workflow's `failureWorkflow` has not been started yet (`seq` 0, due at once).
    StartFailureWorkflow,
    /// A canceled SUB_WORKFLOW task's child has not been terminated yet (due at once).
    CancelChild,
    /// An ended workflow with `workflowStatusListenerEnabled` has not published its status yet
    /// (`seq` 0, due at once).
    PublishStatus,
}

impl TimerKind {
    const ALL: [TimerKind; 10] = [
        TimerKind::ResponseTimeout,
        TimerKind::WaitTimeout,
        TimerKind::TaskTimeout,
        TimerKind::PollTimeout,
        TimerKind::TotalTimeout,
        TimerKind::WorkflowTimeout,
        TimerKind::NotifyParent,
        TimerKind::StartFailureWorkflow,
        TimerKind::CancelChild,
        TimerKind::PublishStatus,
    ];

    /// Stable byte for storage keys.
    pub fn code(self) -> u8 {
        match self {
            TimerKind::ResponseTimeout => 1,
            TimerKind::WaitTimeout => 2,
            TimerKind::TaskTimeout => 3,
            TimerKind::PollTimeout => 4,
            TimerKind::TotalTimeout => 5,
            TimerKind::WorkflowTimeout => 6,
            TimerKind::NotifyParent => 7,
            TimerKind::StartFailureWorkflow => 8,
            TimerKind::CancelChild => 9,
            TimerKind::PublishStatus => 10,
        }
    }
    /// Inverse of [`TimerKind::code`].
    pub fn from_code(code: u8) -> Option<TimerKind> {
        Self::ALL.into_iter().find(|k| k.code() == code)
    }
    /// A name for metrics and logs.
    pub fn name(self) -> &'static str {
        match self {
            TimerKind::ResponseTimeout => "response_timeout",
            TimerKind::WaitTimeout => "wait",
            TimerKind::TaskTimeout => "task_timeout",
            TimerKind::PollTimeout => "poll_timeout",
            TimerKind::TotalTimeout => "total_timeout",
            TimerKind::WorkflowTimeout => "workflow_timeout",
            TimerKind::NotifyParent => "notify_parent",
            TimerKind::StartFailureWorkflow => "start_failure_workflow",
            TimerKind::CancelChild => "cancel_child",
            TimerKind::PublishStatus => "publish_status",
        }
    }
}

/// A durable deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerItem {
    /// Epoch millis.
    pub fire_at: i64,
    /// Id of the workflow the deadline concerns.
    pub workflow_id: WorkflowId,
    /// Why it exists: which deadline or follow-up it is.
    pub kind: TimerKind,
    /// The task it concerns.
    pub seq: u32,
}

/// The queue entry a task implies, if any.
pub fn queue_item(header: &WorkflowHeader, task: &TaskState) -> Option<QueueItem> {
    if task.status != TaskStatus::Scheduled || header.status.is_terminal() {
        return None;
    }
    Some(QueueItem {
        queue: task.queue.clone()?,
        task_id: task.task_id.clone(),
        workflow_id: header.workflow_id.clone(),
        priority: header.priority,
        ready_at: task.ready_at(),
    })
}

/// The timers a task implies: each deadline it has, at most one of each kind.
pub fn task_timers(header: &WorkflowHeader, task: &TaskState) -> Vec<TimerItem> {
    if header.status.is_terminal() {
        // Only the follow-up of a canceled child remains.
        let cancel = task.child_to_cancel().then_some(task.end_time);
        return cancel
            .map(|fire_at| TimerItem {
                fire_at,
                workflow_id: header.workflow_id.clone(),
                kind: TimerKind::CancelChild,
                seq: task.seq,
            })
            .into_iter()
            .collect();
    }
    let wait = (task.status == TaskStatus::InProgress && task.wait_timeout > 0).then_some(task.wait_timeout);
    [
        (TimerKind::ResponseTimeout, task.response_deadline()),
        (TimerKind::WaitTimeout, wait),
        (TimerKind::TaskTimeout, task.timeout_deadline()),
        (TimerKind::PollTimeout, task.poll_deadline()),
        (TimerKind::TotalTimeout, task.total_deadline()),
    ]
    .into_iter()
    .filter_map(|(kind, at)| {
        at.map(|fire_at| TimerItem { fire_at, workflow_id: header.workflow_id.clone(), kind, seq: task.seq })
    })
    .collect()
}

/// The workflow-level timers a state implies (`seq` 0): its timeout while it runs; once it has
/// ended, telling its parent and starting its failure workflow, until done.
pub fn workflow_timers(state: &WorkflowState) -> Vec<TimerItem> {
    let h = &state.header;
    let ended = h.status.is_terminal();
    [
        (TimerKind::WorkflowTimeout, state.timeout_deadline()),
        (
            TimerKind::NotifyParent,
            (ended && h.parent_workflow_id.is_some() && !h.parent_notified).then_some(h.end_time),
        ),
        (TimerKind::StartFailureWorkflow, (ended && h.failure_workflow_pending).then_some(h.end_time)),
        (TimerKind::PublishStatus, (ended && h.status_listener_pending).then_some(h.end_time)),
    ]
    .into_iter()
    .filter_map(|(kind, at)| at.map(|fire_at| TimerItem { fire_at, workflow_id: h.workflow_id.clone(), kind, seq: 0 }))
    .collect()
}

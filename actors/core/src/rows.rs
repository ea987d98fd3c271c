//! Rows derived from execution state: queue entries and timers.
//!
//! The state machine never decides whether a task is queued or a timer armed; it computes these
//! rows from the state before and after each event and writes the difference in the same batch.
//! Because they are a function of the state, they cannot drift from it, and a new leader rebuilds
//! its in-memory queues and timer heap by scanning them.

use serde::{Deserialize, Serialize};

use crate::state::{TaskState, TaskStatus, WorkflowHeader};

/// A task waiting in a worker queue.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueItem {
    /// `[domain:]taskType[@executionNameSpace][-isolationGroupId]`.
    pub queue: String,
    #[allow(missing_docs)]
    pub task_id: String,
    #[allow(missing_docs)]
    pub workflow_id: String,
    /// Higher is served first.
    pub priority: i32,
    /// Epoch millis from which the task may be handed out.
    pub ready_at: i64,
}

/// Why a timer exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TimerKind {
    /// An IN_PROGRESS task's `responseTimeoutSeconds` runs out.
    ResponseTimeout,
    /// A WAIT task's `duration` or `until` is reached.
    WaitTimeout,
}

impl TimerKind {
    /// Stable byte for storage keys.
    pub fn code(self) -> u8 {
        match self {
            TimerKind::ResponseTimeout => 1,
            TimerKind::WaitTimeout => 2,
        }
    }
    /// Inverse of [`TimerKind::code`].
    pub fn from_code(code: u8) -> Option<TimerKind> {
        match code {
            1 => Some(TimerKind::ResponseTimeout),
            2 => Some(TimerKind::WaitTimeout),
            _ => None,
        }
    }
}

/// A durable deadline.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerItem {
    /// Epoch millis.
    pub fire_at: i64,
    #[allow(missing_docs)]
    pub workflow_id: String,
    #[allow(missing_docs)]
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

/// The timer a task implies, if any.
pub fn task_timer(header: &WorkflowHeader, task: &TaskState) -> Option<TimerItem> {
    if header.status.is_terminal() {
        return None;
    }
    let (kind, fire_at) = match task.response_deadline() {
        Some(at) => (TimerKind::ResponseTimeout, at),
        None if task.status == TaskStatus::InProgress && task.wait_timeout > 0 => {
            (TimerKind::WaitTimeout, task.wait_timeout)
        }
        None => return None,
    };
    Some(TimerItem { fire_at, workflow_id: header.workflow_id.clone(), kind, seq: task.seq })
}

/// The name of the queue a worker task is polled from.
pub fn queue_name(
    task_type: &str,
    domain: Option<&str>,
    namespace: Option<&str>,
    isolation_group: Option<&str>,
) -> String {
    let mut name = String::with_capacity(task_type.len() + 16);
    if let Some(d) = domain.filter(|d| !d.is_empty()) {
        name.push_str(d);
        name.push(':');
    }
    name.push_str(task_type);
    if let Some(ns) = namespace.filter(|s| !s.is_empty()) {
        name.push('@');
        name.push_str(ns);
    }
    if let Some(iso) = isolation_group.filter(|s| !s.is_empty()) {
        name.push('-');
        name.push_str(iso);
    }
    name
}

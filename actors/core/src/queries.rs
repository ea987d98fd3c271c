//! Questions about executions that the leader asks before it acts: whether a sub-workflow can be
//! retried in place, which workflow a signal lands in, whether a synchronous execution can
//! answer. Pure rules over state, kept here with the decider rather than in the runtime.

use crate::ids::WorkflowId;
use crate::plan::TaskKind;
use crate::rows;
use crate::state::{TaskState, TaskStatus, WorkflowState, WorkflowStatus};

/// How deep a signal looks into running sub-workflows for a waiting task.
pub const MAX_SIGNAL_DEPTH: usize = 16;

/// Whether a retry would run this (child) workflow again: it failed, timed out or was
/// terminated, and it timed out or has a failed, timed-out or canceled task to run again.
pub fn retryable(wf: &WorkflowState) -> bool {
    let status = wf.header.status;
    matches!(status, WorkflowStatus::Failed | WorkflowStatus::TimedOut | WorkflowStatus::Terminated)
        && (status == WorkflowStatus::TimedOut
            || wf.tasks.iter().any(|t| {
                !t.retried
                    && matches!(
                        t.status,
                        TaskStatus::Failed
                            | TaskStatus::FailedWithTerminalError
                            | TaskStatus::TimedOut
                            | TaskStatus::Canceled
                    )
            }))
}

/// The SUB_WORKFLOW tasks of `wf` that ended and were not retried yet, with their child's id.
pub fn ended_children(wf: &WorkflowState) -> impl Iterator<Item = (&TaskState, &str)> {
    wf.tasks
        .iter()
        .filter(|t| t.kind() == TaskKind::SubWorkflow && !t.retried && t.status.is_terminal())
        .filter_map(|t| t.sub_workflow_id.as_deref().map(|child| (t, child)))
}

/// The workflow a signal lands in: the first with an open WAIT task (see
/// [`WorkflowState::blocking_task`]), looking at `wf` and then, depth first, its running
/// sub-workflows (read with `load`), at most [`MAX_SIGNAL_DEPTH`] levels down; `None` if no WAIT
/// is open anywhere, as conductor-oss decides.
pub fn signal_target(wf: &WorkflowState, load: &dyn Fn(&str) -> Option<WorkflowState>) -> Option<WorkflowId> {
    target_at(wf, load, 0)
}

fn target_at(wf: &WorkflowState, load: &dyn Fn(&str) -> Option<WorkflowState>, depth: usize) -> Option<WorkflowId> {
    if wf.blocking_task().is_some() {
        return Some(wf.header.workflow_id.clone());
    }
    if depth >= MAX_SIGNAL_DEPTH {
        return None;
    }
    running_children(wf).filter_map(load).find_map(|child| target_at(&child, load, depth + 1))
}

/// The ids of `wf`'s SUB_WORKFLOW tasks still open, with a child started, in task order.
fn running_children(wf: &WorkflowState) -> impl Iterator<Item = &str> {
    wf.tasks
        .iter()
        .filter(|t| !t.status.is_terminal() && !t.retried && t.kind() == TaskKind::SubWorkflow)
        .filter_map(|t| t.sub_workflow_id.as_deref())
}

/// Where a synchronous execution (or a synchronous signal) may answer: the first task, in task
/// order and depth first into running sub-workflows, that is an open WAIT without a deadline or a
/// finished task of `wait_refs` (a loop task also by its base name), with the workflow it is in.
/// The workflow and the task's `seq` there; `None` while nothing blocks.
pub fn blocking(
    wf: &WorkflowState,
    wait_refs: &[String],
    load: &dyn Fn(&str) -> Option<WorkflowState>,
) -> Option<(WorkflowState, u32)> {
    blocking_at(wf, wait_refs, load, 0)
}

fn blocking_at(
    wf: &WorkflowState,
    wait_refs: &[String],
    load: &dyn Fn(&str) -> Option<WorkflowState>,
    depth: usize,
) -> Option<(WorkflowState, u32)> {
    for t in wf.tasks.iter().filter(|t| !t.retried) {
        let waits = t.kind() == TaskKind::Wait && t.status == TaskStatus::InProgress && t.wait_timeout == 0;
        let named = wait_refs.iter().any(|r| r == &t.reference_task_name || r == t.base_reference());
        if waits || (named && t.status.is_terminal()) {
            return Some((wf.clone(), t.seq));
        }
        let child = t
            .sub_workflow_id
            .as_deref()
            .filter(|_| depth < MAX_SIGNAL_DEPTH && t.kind() == TaskKind::SubWorkflow && !t.status.is_terminal());
        if let Some(found) = child.and_then(load).and_then(|c| blocking_at(&c, wait_refs, load, depth + 1)) {
            return Some(found);
        }
    }
    None
}

/// Whether `POST /workflow/test` needs a mock for an open task of this kind before the workflow
/// can move on: what a worker, a person or the leader's executor would do (HTTP, EVENT,
/// START_WORKFLOW). The rest are conductor-oss's operators, which run by themselves; a
/// SUB_WORKFLOW runs its child, which is driven with its own mocks.
pub fn needs_mock(kind: &TaskKind) -> bool {
    matches!(
        kind,
        TaskKind::Simple
            | TaskKind::UserDefined
            | TaskKind::Dynamic
            | TaskKind::Wait
            | TaskKind::Human
            | TaskKind::Http
            | TaskKind::Event
            | TaskKind::KafkaPublish
            | TaskKind::StartWorkflow
            | TaskKind::Unsupported(_)
    )
}

/// Whether `wf` runs sub-workflows now, whose changes a wait on `wf` alone would not see.
pub fn has_running_children(wf: &WorkflowState) -> bool {
    running_children(wf).next().is_some()
}

/// Whether retention may delete this execution, chosen for having ended by `ended_before`: it is
/// still ended, by then, and done with its follow-ups, which keep timers while pending: telling
/// its parent, starting its failure workflow and publishing its status (workflow timers), and
/// terminating the children of its canceled SUB_WORKFLOW tasks (task timers).
pub fn purgeable(wf: &WorkflowState, ended_before: i64) -> bool {
    let h = &wf.header;
    h.status.is_terminal()
        && h.end_time > 0
        && h.end_time <= ended_before
        && rows::workflow_timers(wf).is_empty()
        && wf.tasks.iter().all(|t| rows::task_timers(h, t).is_empty())
}

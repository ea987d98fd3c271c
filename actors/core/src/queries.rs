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

/// The workflow a signal lands in: the first with an open WAIT or HUMAN task, looking at `wf`
/// and then, depth first, its running sub-workflows (read with `load`), at most
/// [`MAX_SIGNAL_DEPTH`] levels down; `None` if there is none.
pub fn signal_target(wf: &WorkflowState, load: &dyn Fn(&str) -> Option<WorkflowState>) -> Option<WorkflowId> {
    target_at(wf, load, 0)
}

fn target_at(wf: &WorkflowState, load: &dyn Fn(&str) -> Option<WorkflowState>, depth: usize) -> Option<WorkflowId> {
    let open = |t: &&TaskState| !t.status.is_terminal() && !t.retried;
    if wf.tasks.iter().filter(open).any(|t| matches!(t.kind(), TaskKind::Wait | TaskKind::Human)) {
        return Some(wf.header.workflow_id.clone());
    }
    if depth >= MAX_SIGNAL_DEPTH {
        return None;
    }
    wf.tasks
        .iter()
        .filter(open)
        .filter(|t| t.kind() == TaskKind::SubWorkflow)
        .filter_map(|t| t.sub_workflow_id.as_deref().and_then(load))
        .find_map(|child| target_at(&child, load, depth + 1))
}

/// Whether a synchronous execution can answer: the workflow ended, waits on a WAIT without a
/// deadline, or finished one of `wait_refs` (a loop task also by its base name).
pub fn settled(wf: &WorkflowState, wait_refs: &[String]) -> bool {
    wf.header.status.is_terminal()
        || wf
            .tasks
            .iter()
            .any(|t| t.kind() == TaskKind::Wait && t.status == TaskStatus::InProgress && t.wait_timeout == 0)
        || wait_refs.iter().any(|r| wf.latest(r).is_some_and(|t| t.status.is_terminal()))
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

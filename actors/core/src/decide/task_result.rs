//! Results from workers and children: a poll, an update, a sub-workflow that ended, and what a
//! failed task leads to (a retry, tolerance, or the workflow's end).

use crate::command::{Rejection, TaskResultStatus, TaskUpdate};
use crate::event::{Event, TaskUpdated};
use crate::plan::TaskKind;
use crate::retry;
use crate::state::{TaskStatus, WorkflowStatus};
use serde_json::Value;

use super::{Decider, MAX_REASON_CHARS, failure_reason, truncate_chars};

impl Decider<'_, '_> {
    pub(super) fn poll(&mut self, task_id: &str, worker_id: Option<String>) -> Result<(), Rejection> {
        let seq = self.task_seq(task_id)?;
        let task = &self.state.tasks[seq as usize - 1];
        if self.state.header.status.is_terminal() {
            return Err(Rejection::Conflict(format!(
                "Workflow {} is {}",
                self.state.header.workflow_id,
                self.state.header.status.as_str()
            )));
        }
        if task.status != TaskStatus::Scheduled {
            return Err(Rejection::Conflict(format!("Task {task_id} is {}, not SCHEDULED", task.status.as_str())));
        }
        if task.ready_at() > self.ctx.now {
            return Err(Rejection::Conflict(format!("Task {task_id} is not ready before {}", task.ready_at())));
        }
        let time = self.ctx.now;
        self.emit(Event::TaskPolled { seq, worker_id, time });
        Ok(())
    }

    pub(super) fn update(&mut self, u: TaskUpdate) -> Result<(), Rejection> {
        let seq = self.task_seq(&u.task_id)?;
        let task = &self.state.tasks[seq as usize - 1];
        // Updates of finished tasks or workflows are acknowledged and change nothing.
        if task.status.is_terminal() || self.state.header.status.is_terminal() {
            return Ok(());
        }
        let time = self.ctx.now;
        let in_progress = task.status == TaskStatus::InProgress;
        let mut output = u.output;
        if u.merge_output
            && let Some(extra) = output.take()
        {
            let mut merged = task.output.clone();
            merged.extend(extra);
            output = Some(merged);
        }
        for log in u.logs {
            self.emit(Event::TaskLogged { seq, log, time });
        }
        if u.extend_lease && u.status == TaskResultStatus::InProgress {
            if in_progress {
                self.emit(Event::TaskLeaseExtended { seq, time });
            }
            return Ok(());
        }
        let reason = u.reason.map(|r| truncate_chars(r, MAX_REASON_CHARS));
        // A worker's IN_PROGRESS puts its task back in the queue; a system task (WAIT, HUMAN, ...)
        // simply stays IN_PROGRESS.
        let worker_task = self.state.tasks[seq as usize - 1].is_worker_task();
        let status = match u.status {
            TaskResultStatus::InProgress if !worker_task => TaskStatus::InProgress,
            other => other.resulting_status(),
        };
        self.emit(Event::TaskUpdated(Box::new(TaskUpdated {
            seq,
            status,
            output,
            reason,
            worker_id: u.worker_id,
            callback_after_seconds: u.callback_after_seconds.max(0),
            time,
        })));
        self.run();
        Ok(())
    }

    /// A SUB_WORKFLOW task's child ended: the task ends the same way, with the child's output.
    pub(super) fn child_ended(&mut self, child: crate::command::ChildEnded) {
        let Some(task) = self.state.task_by_id(&child.task_id) else { return };
        if task.kind() != TaskKind::SubWorkflow || task.status.is_terminal() || self.state.header.status.is_terminal() {
            return;
        }
        let status = match child.status {
            WorkflowStatus::Completed => TaskStatus::Completed,
            WorkflowStatus::Terminated => TaskStatus::Canceled,
            WorkflowStatus::TimedOut => TaskStatus::TimedOut,
            WorkflowStatus::Failed => TaskStatus::Failed,
            WorkflowStatus::Running | WorkflowStatus::Paused => return,
        };
        let mut output = task.output.clone();
        output.extend(child.output);
        output.insert("subWorkflowId".to_owned(), Value::String(child.child_id.to_string()));
        let reason = (status != TaskStatus::Completed).then(|| {
            format!("Sub workflow {} failure reason: {}", child.child_id, child.reason.as_deref().unwrap_or("null"))
        });
        let (seq, time) = (task.seq, self.ctx.now);
        self.emit(Event::TaskUpdated(Box::new(TaskUpdated {
            seq,
            status,
            output: Some(output),
            reason,
            worker_id: None,
            callback_after_seconds: 0,
            time,
        })));
        self.run();
    }

    /// Retries, tolerates or escalates a failed task. Returns `false` if the workflow ended.
    pub(super) fn handle_failure(&mut self, seq: u32) -> bool {
        let task = self.state.tasks[seq as usize - 1].clone();
        let Some((wt, node)) = self.state.workflow_task(&task).map(|(wt, n)| (wt.clone(), n.map(|n| n.index))) else {
            let reason = format!("Task {} has no definition in the workflow", task.reference_task_name);
            self.end(WorkflowStatus::Failed, Some(reason));
            return false;
        };
        let kind = TaskKind::of(&wt.task_type);
        let def = wt.task_definition.as_ref();
        let expected_retries = wt.retry_count.or_else(|| def.map(|d| d.retry_count)).unwrap_or(0);
        // `totalTimeoutSeconds` bounds all attempts together: once spent, no more retries.
        let total = task.total_timeout_seconds.saturating_mul(1000);
        let budget_spent = total > 0 && self.ctx.now >= task.first_scheduled_time.saturating_add(total);
        if task.status.is_retriable() && !kind.is_built_in() && task.retry_count < expected_retries && !budget_spent {
            let delay = def.map_or(0, |d| retry::delay_seconds(d, task.retry_count));
            match node {
                Some(index) if task.workflow_task.is_none() || kind == TaskKind::Dynamic => {
                    let plan = self.plan();
                    self.schedule(plan.at(index), task.iteration, Some((&task, delay)));
                }
                _ => self.schedule_task(&wt, task.iteration, Some((&task, delay))),
            }
            return true;
        }
        if wt.optional {
            let time = self.ctx.now;
            self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::CompletedWithErrors, reason: None, time });
            return true;
        }
        if wt.permissive {
            return true;
        }
        let status = match task.status {
            TaskStatus::Canceled => WorkflowStatus::Terminated,
            TaskStatus::TimedOut => WorkflowStatus::TimedOut,
            _ => WorkflowStatus::Failed,
        };
        self.end(status, Some(failure_reason(&task, status)));
        false
    }
}

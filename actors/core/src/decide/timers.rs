//! Timers that fired: task timeouts (poll, response, total), a WAIT's end, a paused loop's next
//! iteration and the workflow's own timeout.

use crate::dsl::{TaskTimeoutPolicy, WorkflowTimeoutPolicy};
use crate::event::{Event, TaskUpdated};
use crate::plan::TaskKind;
use crate::rows::TimerKind;
use crate::state::{TaskStatus, WorkflowStatus};

use super::Decider;

impl Decider<'_, '_> {
    pub(super) fn timer(&mut self, kind: TimerKind, seq: u32, fire_at: i64) {
        if self.state.header.status.is_terminal() || self.ctx.now < fire_at {
            return;
        }
        if kind == TimerKind::WorkflowTimeout {
            self.workflow_timeout(fire_at);
            return;
        }
        let Some(task) = self.state.task(seq) else { return };
        match kind {
            // Handled by the leader, which reports back with their own commands.
            TimerKind::WorkflowTimeout
            | TimerKind::PublishStatus
            | TimerKind::NotifyParent
            | TimerKind::StartFailureWorkflow
            | TimerKind::CancelChild => {}
            TimerKind::TaskTimeout | TimerKind::PollTimeout | TimerKind::TotalTimeout => {
                let (deadline, what, seconds) = match kind {
                    TimerKind::TaskTimeout => (task.timeout_deadline(), "Task timed out", task.timeout_seconds),
                    TimerKind::PollTimeout => (task.poll_deadline(), "Task poll timed out", task.poll_timeout_seconds),
                    _ => (task.total_deadline(), "Task total timeout exceeded", task.total_timeout_seconds),
                };
                if deadline != Some(fire_at) {
                    return;
                }
                let policy = self
                    .state
                    .workflow_task(task)
                    .and_then(|(wt, _)| wt.task_definition.as_ref().map(|d| d.timeout_policy))
                    .unwrap_or_default();
                let reason = format!(
                    "{what} after {seconds} seconds. Timeout configured as {seconds} seconds. Timeout policy configured to {}",
                    policy.as_str()
                );
                let time = self.ctx.now;
                match policy {
                    TaskTimeoutPolicy::AlertOnly => {}
                    TaskTimeoutPolicy::Retry if kind != TimerKind::TotalTimeout => {
                        self.emit(Event::TaskStatusChanged {
                            seq,
                            status: TaskStatus::TimedOut,
                            reason: Some(reason),
                            time,
                        });
                        self.run();
                    }
                    _ => {
                        // TIME_OUT_WF, or a total budget that is spent: no more attempts.
                        let task_id = task.task_id.clone();
                        self.emit(Event::TaskStatusChanged {
                            seq,
                            status: TaskStatus::TimedOut,
                            reason: Some(reason.clone()),
                            time,
                        });
                        let reason = format!("Task {task_id} failed with status: TIMED_OUT and reason: '{reason}'");
                        self.end(WorkflowStatus::TimedOut, Some(reason));
                    }
                }
            }
            TimerKind::ResponseTimeout => {
                // A timer that no longer matches the task's deadline is stale: the task moved on.
                if task.response_deadline() != Some(fire_at) {
                    return;
                }
                if !task.is_worker_task() {
                    // The leader's executor lost it (a failover): hand it out again.
                    let time = self.ctx.now;
                    self.emit(Event::TaskUpdated(Box::new(TaskUpdated {
                        seq,
                        status: TaskStatus::Scheduled,
                        output: None,
                        reason: None,
                        worker_id: None,
                        callback_after_seconds: 0,
                        time,
                    })));
                    return;
                }
                let reason = format!(
                    "responseTimeout: {} exceeded for the taskId: {} with Task Definition: {}",
                    task.response_timeout_seconds, task.task_id, task.task_def_name
                );
                let time = self.ctx.now;
                self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::TimedOut, reason: Some(reason), time });
                self.run();
            }
            TimerKind::WaitTimeout => {
                if task.status != TaskStatus::InProgress || task.wait_timeout != fire_at {
                    return;
                }
                let time = self.ctx.now;
                if task.kind() == TaskKind::DoWhile {
                    // A loop paused between iterations goes on.
                    let (iteration, output) = (task.iteration, task.output.clone());
                    let plan = self.plan();
                    self.emit(Event::TaskIterated { seq, iteration, output, resume_at: 0, time });
                    if let Some(head) = plan
                        .task(&self.state.tasks[seq as usize - 1].reference_task_name)
                        .and_then(|n| plan.loop_head(n.index))
                    {
                        self.schedule(head, iteration, None);
                    }
                    self.run();
                    return;
                }
                self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::Completed, reason: None, time });
                self.run();
            }
        }
    }

    /// The workflow's `timeoutSeconds` ran out.
    pub(super) fn workflow_timeout(&mut self, fire_at: i64) {
        if self.state.timeout_deadline() != Some(fire_at) {
            return;
        }
        let def = &self.state.plan.def;
        if def.timeout_policy == WorkflowTimeoutPolicy::TimeOutWf {
            let reason = format!(
                "Workflow timed out after {} seconds. Timeout configured as {} seconds. Timeout policy configured to TIME_OUT_WF",
                (self.ctx.now - self.state.header.create_time) / 1000,
                def.timeout_seconds
            );
            self.end(WorkflowStatus::TimedOut, Some(reason));
        }
    }
}

//! Operations on a whole execution through the API: terminate, pause, resume, reset callbacks,
//! skip a task, retry, restart and rerun.

use std::sync::Arc;

use crate::command::Rejection;
use crate::event::{Event, TaskScheduled};
use crate::plan::{Plan, TaskKind};
use crate::state::{Object, TaskState, TaskStatus, WorkflowStatus};
use serde_json::Value;

use super::Decider;

impl Decider<'_, '_> {
    pub(super) fn terminate(&mut self, reason: Option<String>) -> Result<(), Rejection> {
        match self.state.header.status {
            WorkflowStatus::Completed => Err(Rejection::Conflict(format!(
                "Cannot terminate workflow {}: it is COMPLETED",
                self.state.header.workflow_id
            ))),
            WorkflowStatus::Terminated => Ok(()),
            _ => {
                self.end(WorkflowStatus::Terminated, reason);
                Ok(())
            }
        }
    }

    pub(super) fn pause(&mut self) -> Result<(), Rejection> {
        match self.state.header.status {
            WorkflowStatus::Paused => Ok(()),
            s if s.is_terminal() => {
                Err(Rejection::Conflict(format!("Workflow {} has ended, status cannot be updated.", self.id())))
            }
            _ => {
                let time = self.ctx.now;
                self.emit(Event::WorkflowPaused { time });
                Ok(())
            }
        }
    }

    pub(super) fn resume(&mut self) -> Result<(), Rejection> {
        if self.state.header.status != WorkflowStatus::Paused {
            return Err(Rejection::Conflict(format!(
                "The workflow {} is not PAUSED so cannot resume. Current status is {}",
                self.id(),
                self.state.header.status.as_str()
            )));
        }
        let time = self.ctx.now;
        self.emit(Event::WorkflowResumed { time });
        self.run();
        Ok(())
    }

    pub(super) fn reset_callbacks(&mut self) -> Result<(), Rejection> {
        if self.state.header.status.is_terminal() {
            return Err(Rejection::Conflict(format!(
                "Workflow {} is in terminal state: {}",
                self.id(),
                self.state.header.status.as_str()
            )));
        }
        let waiting: Vec<u32> = self
            .state
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Scheduled && t.is_worker_task() && t.callback_after_seconds > 0)
            .map(|t| t.seq)
            .collect();
        for seq in waiting {
            self.emit(Event::TaskCallbackReset { seq });
        }
        Ok(())
    }

    /// Sets workflow variables (arrays appended to when asked). As in Conductor, also on a finished
    /// workflow: its record is updated.
    pub(super) fn update_variables(&mut self, variables: Object, append_array: bool) {
        let mut merged = self.state.header.variables.clone();
        for (k, v) in variables {
            match (merged.get_mut(&k), v) {
                (Some(Value::Array(old)), Value::Array(new)) if append_array => old.extend(new),
                (_, v) => {
                    merged.insert(k, v);
                }
            }
        }
        let time = self.ctx.now;
        self.emit(Event::VariablesSet { variables: merged, time });
    }

    /// Inserts a SKIPPED task for a task of the definition that has not run; the flow steps over
    /// it when it gets there.
    pub(super) fn skip(&mut self, reference: &str, input: Object, output: Object) -> Result<(), Rejection> {
        if self.state.header.status != WorkflowStatus::Running {
            return Err(Rejection::Conflict(format!(
                "The workflow {} is not RUNNING so cannot skip any task. Current status is {}",
                self.id(),
                self.state.header.status.as_str()
            )));
        }
        let plan = self.plan();
        let Some(node) = plan.task(reference) else {
            return Err(Rejection::Conflict(format!(
                "The task {reference} is not part of the workflow {}",
                self.state.header.workflow_name
            )));
        };
        if self.state.latest(reference).is_some() {
            return Err(Rejection::Conflict(format!(
                "The task {reference} in the workflow {} has already run, so it cannot be skipped",
                self.id()
            )));
        }
        let kind = node.kind.clone();
        // The skipped task's input is the one given; whatever its parameters resolve to is unused.
        let (mut task, _) = self.new_task(&node.task, &kind, 0, None);
        let now = self.ctx.now;
        task.status = TaskStatus::Skipped;
        task.input = input;
        task.output = output;
        task.start_time = now;
        task.end_time = now;
        task.callback_after_seconds = 0;
        self.emit(Event::TaskScheduled(Box::new(TaskScheduled { task, retry_of: None })));
        self.run();
        Ok(())
    }

    /// Conductor's retry: each failed, canceled or timed-out task (its latest attempt) runs
    /// again; joins and loops that failed wait again in place.
    pub(super) fn retry(&mut self, resume: &[String]) -> Result<(), Rejection> {
        let h = &self.state.header;
        if !h.status.is_terminal() {
            return Err(Rejection::NotFound(format!("Workflow is still running.  status={}", h.status.as_str())));
        }
        if self.state.tasks.is_empty() {
            return Err(Rejection::Conflict(format!("Workflow {} has not started any tasks", self.id())));
        }
        let retryable = |t: &TaskState| {
            matches!(
                t.status,
                TaskStatus::Failed | TaskStatus::FailedWithTerminalError | TaskStatus::TimedOut | TaskStatus::Canceled
            )
        };
        let failed: Vec<u32> = self.state.tasks.iter().filter(|t| !t.retried && retryable(t)).map(|t| t.seq).collect();
        if failed.is_empty() && h.status != WorkflowStatus::TimedOut {
            return Err(Rejection::Conflict(
                "There are no retryable tasks! Use restart if you want to attempt entire workflow execution again."
                    .to_owned(),
            ));
        }
        let keep = self.state.tasks.len() as u32;
        self.reopen(keep, false, None, None, None);
        let plan = self.plan();
        for seq in failed {
            let task = self.state.tasks[seq as usize - 1].clone();
            let time = self.ctx.now;
            let resumed = task.kind() == TaskKind::SubWorkflow
                && task.sub_workflow_id.is_some()
                && resume.contains(&task.task_id);
            if resumed || matches!(task.kind(), TaskKind::Join | TaskKind::ExclusiveJoin | TaskKind::DoWhile) {
                // Waits again: for its child, which is retried too, or for the tasks it joins.
                self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::InProgress, reason: None, time });
                continue;
            }
            let node = plan.task(task.base_reference());
            match node {
                Some(n) if task.workflow_task.is_none() || n.kind == TaskKind::Dynamic => {
                    self.schedule(n, task.iteration, Some((&task, 0)));
                }
                _ => {
                    if let Some(wt) = &task.workflow_task {
                        let wt = (**wt).clone();
                        self.schedule_task(&wt, task.iteration, Some((&task, 0)));
                    }
                }
            }
            if !self.running() {
                return Ok(());
            }
        }
        self.run();
        Ok(())
    }

    pub(super) fn ensure_ended(&self) -> Result<(), Rejection> {
        if self.state.header.status.is_terminal() {
            Ok(())
        } else {
            Err(Rejection::Conflict(format!(
                "Workflow {} is still {}; only a finished workflow can be restarted or rerun",
                self.id(),
                self.state.header.status.as_str()
            )))
        }
    }

    /// Conductor's restart: the same workflow id runs from the start again.
    pub(super) fn restart(&mut self, plan: Option<Arc<Plan>>) -> Result<(), Rejection> {
        self.ensure_ended()?;
        if self.state.header.status == WorkflowStatus::Completed && !self.state.plan.def.restartable {
            return Err(Rejection::NotFound(format!(
                "Workflow {} is COMPLETED and its definition is not restartable",
                self.id()
            )));
        }
        self.reopen(0, true, plan, None, None);
        self.start_over();
        Ok(())
    }

    /// Conductor's rerun: from the start with new input, or from one of its tasks.
    pub(super) fn rerun(&mut self, rerun: crate::command::Rerun) -> Result<(), Rejection> {
        self.ensure_ended()?;
        let Some(task_id) = rerun.from_task_id else {
            self.reopen(0, false, None, rerun.workflow_input, rerun.correlation_id);
            self.start_over();
            return Ok(());
        };
        let Some(task) = self.state.task_by_id(&task_id).cloned() else {
            return Err(Rejection::BadRequest(format!("Task {task_id} not found")));
        };
        let plan = self.plan();
        let Some(node) = plan.task(task.base_reference()) else {
            return Err(Rejection::BadRequest(format!(
                "Task {task_id} is not a task of the definition and cannot be rerun from"
            )));
        };
        self.reopen(task.seq - 1, false, None, rerun.workflow_input, rerun.correlation_id);
        let mut wt = node.task.clone();
        if let Some(input) = rerun.task_input {
            // The given input is the task's input as is, not expressions.
            wt.input_parameters = input.into_iter().map(|(k, v)| (k, escape_expressions(v))).collect();
        }
        self.schedule_task(&wt, task.iteration, None);
        self.run();
        Ok(())
    }

    pub(super) fn reopen(
        &mut self,
        keep_tasks: u32,
        restart: bool,
        plan: Option<Arc<Plan>>,
        input: Option<Object>,
        correlation_id: Option<String>,
    ) {
        let time = self.ctx.now;
        let reopened = crate::event::WorkflowReopened { keep_tasks, restart, plan, input, correlation_id, time };
        self.emit(Event::WorkflowReopened(Box::new(reopened)));
    }

    pub(super) fn start_over(&mut self) {
        match self.plan().first().cloned() {
            Some(task) => {
                self.schedule(&task, 0, None);
                self.run();
            }
            None => self.end(WorkflowStatus::Completed, None),
        }
    }
}

/// A literal value as an input parameter: `${` becomes `$${`, so resolution gives it back as is.
fn escape_expressions(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace("${", "$${")),
        Value::Array(items) => Value::Array(items.into_iter().map(escape_expressions).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, escape_expressions(v))).collect()),
        other => other,
    }
}

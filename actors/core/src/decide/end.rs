//! Ending a workflow: cancelling what is open, its output, and the outcome recorded.

use crate::event::{Event, WorkflowEnded};
use crate::expr::{Scope, resolve_object};
use crate::state::{Object, TaskStatus, WorkflowStatus};

use super::Decider;

impl Decider<'_, '_> {
    /// Ends the workflow: cancels what is still open, computes the output, records the outcome.
    pub(super) fn end(&mut self, status: WorkflowStatus, reason: Option<String>) {
        self.end_with(status, reason, None, status != WorkflowStatus::Completed);
    }

    /// Ends the workflow with `output` (else the computed output), cancelling open tasks if asked.
    pub(super) fn end_with(
        &mut self,
        status: WorkflowStatus,
        reason: Option<String>,
        output: Option<Object>,
        cancel_open: bool,
    ) {
        let time = self.ctx.now;
        let open: Vec<u32> = self.state.tasks.iter().filter(|t| !t.status.is_terminal()).map(|t| t.seq).collect();
        if cancel_open {
            for seq in open {
                self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::Canceled, reason: None, time });
            }
        }
        let (status, reason, output) = match output.map_or_else(|| self.workflow_output(), Ok) {
            Ok(output) => (status, reason, output),
            Err(e) => {
                let why = format!("The workflow's output {e} once its expressions are resolved");
                (WorkflowStatus::Failed, Some(reason.map_or(why.clone(), |r| format!("{r}; {why}"))), Object::new())
            }
        };
        let mut failed_refs: Vec<String> = Vec::new();
        let mut failed_names: Vec<String> = Vec::new();
        for t in &self.state.tasks {
            if matches!(t.status, TaskStatus::Failed | TaskStatus::FailedWithTerminalError) {
                failed_refs.push(t.reference_task_name.clone());
                failed_names.push(t.task_def_name.clone());
            }
        }
        failed_refs.sort();
        failed_refs.dedup();
        failed_names.sort();
        failed_names.dedup();
        let failure_workflow = !self.by_api
            && status != WorkflowStatus::Completed
            && self.state.plan.def.failure_workflow.as_deref().is_some_and(|f| !f.trim().is_empty());
        self.emit(Event::WorkflowEnded(Box::new(WorkflowEnded {
            status,
            reason,
            output,
            failed_reference_task_names: failed_refs,
            failed_task_names: failed_names,
            time,
            failure_workflow,
            status_listener: self.state.plan.def.workflow_status_listener_enabled,
        })));
    }

    /// `outputParameters` resolved, or the last task's output when there are none.
    pub(super) fn workflow_output(&self) -> Result<Object, crate::payload::Exceeded> {
        let params = &self.state.plan.def.output_parameters;
        if params.is_empty() {
            return Ok(self.state.tasks.last().map(|t| t.output.clone()).unwrap_or_default());
        }
        let scope = Scope { state: self.state, task_id: None, env: self.ctx.env };
        resolve_object(params, &scope)
    }
}

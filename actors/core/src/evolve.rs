//! `evolve`: the one function that changes execution state, one event at a time.
//!
//! It is total and deterministic: every input it reads is in the event or the state; an event
//! that does not fit the state (a task `seq` that does not exist) changes nothing but the revision,
//! so replaying any committed history always succeeds.

use crate::event::{Event, TaskScheduled, TaskUpdated, WorkflowEnded, WorkflowReopened};
use crate::external::PayloadTarget;
use crate::plan::TaskKind;
use crate::state::{TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};

/// Builds the state of a new execution from its first event; `None` if the event is not a start.
pub fn start(event: &Event) -> Option<WorkflowState> {
    let Event::WorkflowStarted(started) = event else { return None };
    let mut header = started.header.clone();
    header.revision = 1;
    Some(WorkflowState::new(header, started.plan.clone(), Vec::new()))
}

/// Applies one event to the state: one applier per event.
pub fn evolve(state: &mut WorkflowState, event: &Event) {
    state.header.revision += 1;
    match event {
        Event::WorkflowStarted(_) | Event::TaskLogged { .. } => {}
        Event::IterationsPruned { tasks, .. } => state.prune(tasks),
        Event::TaskScheduled(scheduled) => task_scheduled(state, scheduled),
        Event::TaskPolled { seq, worker_id, time } => {
            if let Some(t) = state.task_mut(*seq) {
                task_polled(t, worker_id, *time);
            }
        }
        Event::TaskUpdated(u) => task_updated(state, u),
        Event::TaskLeaseExtended { seq, time } => {
            if let Some(t) = state.task_mut(*seq) {
                t.update_time = *time;
            }
        }
        Event::TaskStatusChanged { seq, status, reason, time } => {
            if let Some(t) = state.task_mut(*seq) {
                task_status_changed(t, *status, reason, *time);
            }
            state.header.update_time = *time;
        }
        Event::TaskExecuted { seq } => {
            if let Some(t) = state.task_mut(*seq) {
                t.executed = true;
            }
        }
        Event::VariablesSet { variables, time } => {
            state.header.variables = variables.clone();
            state.header.update_time = *time;
        }
        Event::TaskIterated { seq, iteration, output, resume_at, time } => {
            state.forget_external(PayloadTarget::TaskOutput(*seq));
            if let Some(t) = state.task_mut(*seq) {
                t.iteration = *iteration;
                t.wait_timeout = *resume_at;
                t.output = output.clone();
                t.update_time = *time;
            }
        }
        Event::WorkflowEnded(ended) => {
            state.forget_external(PayloadTarget::WorkflowOutput);
            workflow_ended(&mut state.header, ended);
        }
        Event::ParentNotified => state.header.parent_notified = true,
        Event::StatusPublished => state.header.status_listener_pending = false,
        Event::WorkflowPaused { time } => {
            state.header.status = WorkflowStatus::Paused;
            state.header.update_time = *time;
        }
        Event::WorkflowResumed { time } => {
            state.header.status = WorkflowStatus::Running;
            state.header.last_retried_time = *time;
            state.header.update_time = *time;
        }
        Event::TaskCallbackReset { seq } => {
            if let Some(t) = state.task_mut(*seq) {
                t.callback_after_seconds = 0;
                t.jitter_ms = 0;
            }
        }
        Event::WorkflowReopened(r) => workflow_reopened(state, r),
        Event::PayloadExternalized { target, path } => state.set_external(*target, path.clone(), false),
        Event::FailureWorkflowStarted { workflow_id, error } => {
            let h = &mut state.header;
            h.failure_workflow_pending = false;
            let note = workflow_id.clone().map(String::from).or_else(|| error.clone()).unwrap_or_default();
            h.output.insert("conductor.failure_workflow".to_owned(), serde_json::Value::String(note));
        }
    }
}

fn task_scheduled(state: &mut WorkflowState, scheduled: &TaskScheduled) {
    if let Some(old) = scheduled.retry_of.and_then(|seq| state.task_mut(seq)) {
        old.retried = true;
    }
    let mut task = scheduled.task.clone();
    task.seq = state.tasks.len() as u32 + 1;
    state.header.update_time = task.scheduled_time;
    state.push(task);
}

fn task_polled(t: &mut TaskState, worker_id: &Option<String>, time: i64) {
    t.status = TaskStatus::InProgress;
    if t.start_time == 0 {
        t.start_time = time;
    }
    t.callback_after_seconds = 0;
    t.jitter_ms = 0;
    t.worker_id = worker_id.clone();
    t.poll_count += 1;
    t.update_time = time;
}

fn task_updated(state: &mut WorkflowState, u: &TaskUpdated) {
    if u.output.is_some() {
        state.forget_external(PayloadTarget::TaskOutput(u.seq));
    }
    if let Some(t) = state.task_mut(u.seq) {
        t.status = u.status;
        if let Some(output) = &u.output {
            t.output = output.clone();
            if let Some(id) = output.get("subWorkflowId").and_then(|v| v.as_str())
                && t.kind() == TaskKind::SubWorkflow
            {
                t.sub_workflow_id = Some(id.into());
            }
        }
        if u.reason.is_some() {
            t.reason_for_incompletion = u.reason.clone();
        }
        if u.worker_id.is_some() {
            t.worker_id = u.worker_id.clone();
        }
        t.callback_after_seconds = u.callback_after_seconds;
        t.jitter_ms = 0;
        t.update_time = u.time;
        if u.status.is_terminal() {
            t.end_time = u.time;
        }
    }
    state.header.update_time = u.time;
}

fn task_status_changed(t: &mut TaskState, status: TaskStatus, reason: &Option<String>, time: i64) {
    t.status = status;
    if !status.is_terminal() {
        t.end_time = 0;
    }
    if reason.is_some() {
        t.reason_for_incompletion = reason.clone();
    }
    t.update_time = time;
    if status.is_terminal() && t.end_time == 0 {
        t.end_time = time;
    }
}

fn workflow_ended(h: &mut WorkflowHeader, ended: &WorkflowEnded) {
    h.status = ended.status;
    h.reason_for_incompletion = ended.reason.clone();
    h.output = ended.output.clone();
    h.failed_reference_task_names = ended.failed_reference_task_names.clone();
    h.failed_task_names = ended.failed_task_names.clone();
    h.end_time = ended.time;
    h.update_time = ended.time;
    h.failure_workflow_pending = ended.failure_workflow;
    h.status_listener_pending = ended.status_listener;
}

fn workflow_reopened(state: &mut WorkflowState, r: &WorkflowReopened) {
    state.truncate_tasks(r.keep_tasks as usize);
    state.forget_external(PayloadTarget::WorkflowOutput);
    if r.input.is_some() {
        state.forget_external(PayloadTarget::WorkflowInput);
    }
    if let Some(plan) = &r.plan {
        state.plan = plan.clone();
        state.header.workflow_version = plan.def.version;
    }
    let h = &mut state.header;
    h.status = WorkflowStatus::Running;
    h.reason_for_incompletion = None;
    h.output = Default::default();
    h.end_time = 0;
    h.failed_reference_task_names.clear();
    h.failed_task_names.clear();
    h.parent_notified = false;
    h.failure_workflow_pending = false;
    h.status_listener_pending = false;
    h.update_time = r.time;
    if r.restart {
        h.create_time = r.time;
        h.last_retried_time = 0;
    } else {
        h.last_retried_time = r.time;
    }
    if let Some(input) = &r.input {
        h.input = input.clone();
    }
    if r.correlation_id.is_some() {
        h.correlation_id = r.correlation_id.clone();
    }
}

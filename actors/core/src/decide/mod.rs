//! `decide`: from the current state and a command to the events that should follow.
//!
//! The decider applies each event to the state as it emits it (through [`evolve`]), so later steps
//! of one decision see the effect of earlier ones, and the caller's state ends equal to
//! `evolve(old, events)`. A rejection is returned before any event is emitted, leaving the state
//! as it was.

//!
//! One file per family of commands, each adding its part of `Decider`:
//!
//! - `task_result`: a worker's poll and update, a sub-workflow that ended, and what a failed task
//!   leads to;
//! - `operations`: terminate, pause, resume, skip, retry, restart, rerun through the API;
//! - `timers`: task and workflow timeouts, a WAIT's end, a paused loop;
//! - `flow`: stepping from finished tasks to what follows, loops and joins;
//! - `schedule`: creating a task (its input, queue, timeouts, retries);
//! - `system_tasks`: what a system task comes to when scheduled, as a `Started`
//!   value; the one place a system task's failure becomes the task's outcome or the workflow's end;
//! - `end`: ending the workflow.

use std::sync::Arc;

use crate::command::{Command, Ctx, Rejection, StartWorkflow};
use crate::event::{Event, TaskUpdated, WorkflowStarted};
use crate::evolve::{evolve, start as evolve_start};
use crate::plan::Plan;
use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};

mod end;
mod flow;
mod operations;
mod schedule;
mod system_tasks;
mod task_result;
mod timers;

/// Conductor truncates `reasonForIncompletion` to this many characters.
const MAX_REASON_CHARS: usize = 500;
/// DO_WHILE iterations one decision starts at most. A loop of system tasks that never waits
/// for a worker goes on in the next decision (through a timer due at once), so one decision, one
/// Raft entry and one actor turn stay bounded even for `loopCondition: "true"`.
const MAX_ITERATIONS_PER_DECISION: u32 = 100;
/// How long the leader's executor may hold a task (an HTTP call, starting a child) before it is
/// handed out again; covers an executor lost in a failover.
const EXECUTOR_RESPONSE_TIMEOUT_SECONDS: i64 = 60;
/// Response timeout of a SIMPLE task without a definition.
const DEFAULT_RESPONSE_TIMEOUT_SECONDS: i64 = 3600;

/// Starts an execution: its state and the events that created it.
pub fn start(cmd: StartWorkflow, ctx: &mut Ctx<'_>) -> (WorkflowState, Vec<Event>) {
    let def = &cmd.plan.def;
    let mut input = cmd.input;
    for (k, v) in &def.input_template {
        input.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let header = WorkflowHeader {
        workflow_id: cmd.workflow_id,
        workflow_name: def.name.clone(),
        workflow_version: def.version,
        status: WorkflowStatus::Running,
        input,
        output: Object::new(),
        variables: def.variables.clone(),
        correlation_id: cmd.correlation_id,
        priority: cmd.priority,
        task_to_domain: cmd.task_to_domain,
        create_time: ctx.now,
        update_time: ctx.now,
        end_time: 0,
        reason_for_incompletion: None,
        failed_reference_task_names: Vec::new(),
        failed_task_names: Vec::new(),
        parent_workflow_id: cmd.parent.as_ref().map(|(w, _)| w.clone()),
        parent_workflow_task_id: cmd.parent.as_ref().map(|(_, t)| t.clone()),
        last_retried_time: 0,
        created_by: cmd.created_by,
        idempotency_key: cmd.idempotency_key,
        idempotency_strategy: cmd.idempotency_strategy,
        revision: 0,
        parent_notified: false,
        failure_workflow_pending: false,
        status_listener_pending: false,
    };
    let first = Event::WorkflowStarted(Box::new(WorkflowStarted { header, plan: cmd.plan.clone() }));
    let Some(mut state) = evolve_start(&first) else { unreachable!("a WorkflowStarted event starts a state") };
    let mut d = Decider { state: &mut state, events: vec![first], ctx, iterations: 0, by_api: false };
    match d.plan().first().cloned() {
        Some(task) => {
            d.schedule(&task, 0, None);
            d.run();
        }
        None => d.end(WorkflowStatus::Completed, None),
    }
    let events = d.events;
    (state, events)
}

/// Decides what a command does to an existing execution.
pub fn decide(state: &mut WorkflowState, cmd: Command, ctx: &mut Ctx<'_>) -> Result<Vec<Event>, Rejection> {
    let mut d = Decider { state, events: Vec::new(), ctx, iterations: 0, by_api: false };
    match cmd {
        Command::Poll { task_id, worker_id } => d.poll(&task_id, worker_id)?,
        Command::Update(update) => d.update(*update)?,
        Command::AddLog { task_id, log } => {
            let seq = d.task_seq(&task_id)?;
            let time = d.ctx.now;
            d.emit(Event::TaskLogged { seq, log, time });
        }
        Command::Terminate { reason } => {
            d.by_api = true;
            d.terminate(reason)?
        }
        Command::ChildEnded(child) => d.child_ended(*child),
        Command::Pause => d.pause()?,
        Command::Resume => d.resume()?,
        Command::Decide => d.run(),
        Command::ResetCallbacks => d.reset_callbacks()?,
        Command::Skip { reference, input, output } => d.skip(&reference, input, output)?,
        Command::Retry { resume } => d.retry(&resume)?,
        Command::Restart { plan } => d.restart(plan)?,
        Command::Rerun(rerun) => d.rerun(*rerun)?,
        Command::StatusPublished => {
            if d.state.header.status_listener_pending {
                d.emit(Event::StatusPublished);
            }
        }
        Command::ParentNotified => {
            if d.state.header.status.is_terminal() && !d.state.header.parent_notified {
                d.emit(Event::ParentNotified);
            }
        }
        Command::FailureWorkflowStarted { workflow_id, error } => {
            if d.state.header.failure_workflow_pending {
                d.emit(Event::FailureWorkflowStarted { workflow_id, error });
            }
        }
        Command::UpdateVariables { variables, append_array } => d.update_variables(variables, append_array),
        Command::ChildCanceled { seq } => {
            if d.state.task(seq).is_some_and(TaskState::child_to_cancel) {
                d.emit(Event::TaskExecuted { seq });
            }
        }
        Command::Timer { kind, seq, fire_at } => d.timer(kind, seq, fire_at),
    }
    Ok(d.events)
}

/// One decision in progress: the state it changes and the events it has emitted so far.
struct Decider<'s, 'c> {
    state: &'s mut WorkflowState,
    events: Vec<Event>,
    ctx: &'s mut Ctx<'c>,
    /// DO_WHILE iterations started by this decision.
    iterations: u32,
    /// The workflow is being terminated through the API (which starts no failure workflow).
    by_api: bool,
}

impl Decider<'_, '_> {
    pub(super) fn emit(&mut self, event: Event) {
        evolve(self.state, &event);
        self.events.push(event);
    }

    pub(super) fn plan(&self) -> Arc<Plan> {
        self.state.plan.clone()
    }

    pub(super) fn task_seq(&self, task_id: &str) -> Result<u32, Rejection> {
        self.state
            .task_by_id(task_id)
            .map(|t| t.seq)
            .ok_or_else(|| Rejection::NotFound(format!("No such task found by id: {task_id}")))
    }

    pub(super) fn id(&self) -> &str {
        &self.state.header.workflow_id
    }

    pub(super) fn running(&self) -> bool {
        self.state.header.status == WorkflowStatus::Running
    }

    pub(super) fn finish_system_task(
        &mut self,
        seq: u32,
        status: TaskStatus,
        output: Option<Object>,
        reason: Option<String>,
    ) {
        let time = self.ctx.now;
        self.emit(Event::TaskUpdated(Box::new(TaskUpdated {
            seq,
            status,
            output,
            reason,
            worker_id: None,
            callback_after_seconds: 0,
            time,
        })));
    }
}

/// `ref` as scheduled in loop iteration `iteration` (`ref__N`; unchanged outside loops).
fn with_iteration(reference: &str, iteration: i32) -> String {
    if iteration > 0 { format!("{reference}__{iteration}") } else { reference.to_owned() }
}

/// Conductor's reason for a workflow ended by a task's failure.
fn failure_reason(task: &TaskState, status: WorkflowStatus) -> String {
    format!(
        "Task {} failed with status: {} and reason: '{}'",
        task.task_id,
        status.as_str(),
        task.reason_for_incompletion.as_deref().unwrap_or("null")
    )
}

/// `s` cut to at most `max` characters (not bytes: a cut never splits a character).
fn truncate_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s,
    }
}

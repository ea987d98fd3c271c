//! `decide`: from the current state and a command to the events that should follow.
//!
//! The decider applies each event to the state as it emits it (through [`evolve`]), so later steps
//! of one decision see the effect of earlier ones, and the caller's state ends equal to
//! `evolve(old, events)`. A rejection is returned before any event is emitted, leaving the state
//! as it was.

use std::sync::Arc;

use crate::command::{Command, Ctx, Rejection, StartWorkflow, TaskResultStatus, TaskUpdate};
use crate::event::{Event, TaskScheduled, TaskUpdated, WorkflowEnded, WorkflowStarted};
use crate::evolve::{evolve, start as evolve_start};
use crate::expr::{Scope, resolve_object};
use crate::plan::{Plan, PlanTask, TaskKind};
use crate::retry;
use crate::rows::{TimerKind, queue_name};
use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};

/// Conductor truncates `reasonForIncompletion` to this many characters.
const MAX_REASON_CHARS: usize = 500;
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
        parent_workflow_id: None,
        parent_workflow_task_id: None,
        last_retried_time: 0,
        created_by: cmd.created_by,
        idempotency_key: cmd.idempotency_key,
        revision: 0,
    };
    let first = Event::WorkflowStarted(Box::new(WorkflowStarted { header, plan: cmd.plan.clone() }));
    let Some(mut state) = evolve_start(&first) else { unreachable!("a WorkflowStarted event starts a state") };
    let mut d = Decider { state: &mut state, events: vec![first], ctx };
    match d.plan().first().cloned() {
        Some(task) => {
            d.schedule(&task, None);
            d.run();
        }
        None => d.end(WorkflowStatus::Completed, None),
    }
    let events = d.events;
    (state, events)
}

/// Decides what a command does to an existing execution.
pub fn decide(state: &mut WorkflowState, cmd: Command, ctx: &mut Ctx<'_>) -> Result<Vec<Event>, Rejection> {
    let mut d = Decider { state, events: Vec::new(), ctx };
    match cmd {
        Command::Poll { task_id, worker_id } => d.poll(&task_id, worker_id)?,
        Command::Update(update) => d.update(*update)?,
        Command::AddLog { task_id, log } => {
            let seq = d.task_seq(&task_id)?;
            let time = d.ctx.now;
            d.emit(Event::TaskLogged { seq, log, time });
        }
        Command::Terminate { reason } => d.terminate(reason)?,
        Command::Timer { kind, seq, fire_at } => d.timer(kind, seq, fire_at),
    }
    Ok(d.events)
}

struct Decider<'s, 'c> {
    state: &'s mut WorkflowState,
    events: Vec<Event>,
    ctx: &'s mut Ctx<'c>,
}

impl Decider<'_, '_> {
    fn emit(&mut self, event: Event) {
        evolve(self.state, &event);
        self.events.push(event);
    }

    fn plan(&self) -> Arc<Plan> {
        self.state.plan.clone()
    }

    fn task_seq(&self, task_id: &str) -> Result<u32, Rejection> {
        self.state
            .task_by_id(task_id)
            .map(|t| t.seq)
            .ok_or_else(|| Rejection::NotFound(format!("No such task found by id: {task_id}")))
    }

    fn poll(&mut self, task_id: &str, worker_id: Option<String>) -> Result<(), Rejection> {
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

    fn update(&mut self, u: TaskUpdate) -> Result<(), Rejection> {
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
        self.emit(Event::TaskUpdated(Box::new(TaskUpdated {
            seq,
            status: u.status.resulting_status(),
            output,
            reason,
            worker_id: u.worker_id,
            callback_after_seconds: u.callback_after_seconds.max(0),
            time,
        })));
        self.run();
        Ok(())
    }

    fn terminate(&mut self, reason: Option<String>) -> Result<(), Rejection> {
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

    fn timer(&mut self, kind: TimerKind, seq: u32, fire_at: i64) {
        if self.state.header.status.is_terminal() || self.ctx.now < fire_at {
            return;
        }
        let Some(task) = self.state.task(seq) else { return };
        match kind {
            TimerKind::ResponseTimeout => {
                // A timer that no longer matches the task's deadline is stale: the task moved on.
                if task.response_deadline() != Some(fire_at) {
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
        }
    }

    /// Acts on every task that reached a terminal status and was not acted on yet, until nothing
    /// changes; then completes the workflow if nothing is left to do.
    fn run(&mut self) {
        loop {
            let status = self.state.header.status;
            if status.is_terminal() || status == WorkflowStatus::Paused {
                return;
            }
            let mut progressed = false;
            let mut i = 0;
            while i < self.state.tasks.len() {
                let t = &self.state.tasks[i];
                i += 1;
                if t.retried || t.executed || !t.status.is_terminal() {
                    continue;
                }
                progressed = true;
                let (seq, reference) = (t.seq, t.reference_task_name.clone());
                if t.status.is_successful() {
                    self.emit(Event::TaskExecuted { seq });
                    if let Some(next) = self.plan().next_after(&reference).cloned() {
                        self.schedule(&next, None);
                    }
                } else if !self.handle_failure(seq) {
                    return;
                }
            }
            if !progressed {
                break;
            }
        }
        if self.state.header.status == WorkflowStatus::Running
            && self.state.tasks.iter().all(|t| t.status.is_terminal())
        {
            self.end(WorkflowStatus::Completed, None);
        }
    }

    /// Retries, tolerates or escalates a failed task. Returns `false` if the workflow ended.
    fn handle_failure(&mut self, seq: u32) -> bool {
        let plan = self.plan();
        let task = self.state.tasks[seq as usize - 1].clone();
        let Some(plan_task) = plan.task(&task.reference_task_name) else {
            let reason = format!("Task {} has no definition in the workflow", task.reference_task_name);
            self.end(WorkflowStatus::Failed, Some(reason));
            return false;
        };
        let expected_retries =
            plan_task.task.retry_count.or_else(|| plan_task.task_def().map(|d| d.retry_count)).unwrap_or(0);
        if task.status.is_retriable() && task.retry_count < expected_retries {
            let delay = plan_task.task_def().map_or(0, |d| retry::delay_seconds(d, task.retry_count));
            self.schedule(plan_task, Some((&task, delay)));
            return true;
        }
        if plan_task.task.optional {
            let time = self.ctx.now;
            self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::CompletedWithErrors, reason: None, time });
            return true;
        }
        let status = match task.status {
            TaskStatus::Canceled => WorkflowStatus::Terminated,
            TaskStatus::TimedOut => WorkflowStatus::TimedOut,
            _ => WorkflowStatus::Failed,
        };
        let reason = format!(
            "Task {} failed with status: {} and reason: '{}'",
            task.task_id,
            status.as_str(),
            task.reason_for_incompletion.as_deref().unwrap_or("null")
        );
        self.end(status, Some(reason));
        false
    }

    /// Schedules a task of the definition: a first attempt, or a retry of `retry` after a delay.
    fn schedule(&mut self, plan_task: &PlanTask, retry: Option<(&TaskState, i64)>) {
        match &plan_task.kind {
            TaskKind::Simple => {
                let task = self.new_simple_task(plan_task, retry);
                let retry_of = retry.map(|(old, _)| old.seq);
                self.emit(Event::TaskScheduled(Box::new(TaskScheduled { task, retry_of })));
            }
            TaskKind::Unsupported(kind) => {
                let reason = format!(
                    "Task {} has type {kind}, which this Overture release does not run",
                    plan_task.task.task_reference_name
                );
                self.end(WorkflowStatus::Failed, Some(reason));
            }
        }
    }

    fn new_simple_task(&mut self, plan_task: &PlanTask, retry: Option<(&TaskState, i64)>) -> TaskState {
        let wt = &plan_task.task;
        let def = plan_task.task_def();
        let task_id = self.ctx.ids.next_id();
        let now = self.ctx.now;

        let mut params = wt.input_parameters.clone();
        if let Some(def) = def {
            for (k, v) in &def.input_template {
                params.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let scope = Scope { header: &self.state.header, tasks: &self.state.tasks, task_id: Some(&task_id) };
        let mut input = resolve_object(&params, &scope);
        if let Some(def) = def {
            for (k, v) in &def.input_template {
                if input.get(k).is_none_or(|x| x.is_null()) {
                    input.insert(k.clone(), v.clone());
                }
            }
        }

        let domain = domain_for(&self.state.header.task_to_domain, &wt.name);
        let namespace = def.and_then(|d| d.execution_name_space.clone());
        let isolation = def.and_then(|d| d.isolation_group_id.clone());
        // Workers poll by type and domain only, so the queue name carries nothing else; execution
        // namespaces and isolation groups are recorded on the task but do not split its queue yet.
        let queue = queue_name(&wt.name, domain.as_deref(), None, None);
        let delay = match retry {
            Some((_, delay)) => delay,
            None => i64::from(wt.start_delay.max(0)),
        };
        TaskState {
            task_id,
            seq: self.state.tasks.len() as u32 + 1,
            reference_task_name: wt.task_reference_name.clone(),
            task_def_name: wt.name.clone(),
            task_type: wt.name.clone(),
            status: TaskStatus::Scheduled,
            input,
            output: Object::new(),
            retry_count: retry.map_or(0, |(old, _)| old.retry_count + 1),
            poll_count: 0,
            scheduled_time: now,
            start_time: 0,
            end_time: 0,
            update_time: now,
            start_delay_in_seconds: i32::try_from(delay).unwrap_or(i32::MAX),
            callback_after_seconds: delay,
            response_timeout_seconds: def.map_or(DEFAULT_RESPONSE_TIMEOUT_SECONDS, |d| d.response_timeout_seconds),
            retried_task_id: retry.map(|(old, _)| old.task_id.clone()),
            retried: false,
            executed: false,
            worker_id: None,
            reason_for_incompletion: None,
            domain,
            queue: Some(queue),
            rate_limit_per_frequency: def.and_then(|d| d.rate_limit_per_frequency).unwrap_or(0),
            rate_limit_frequency_in_seconds: def.and_then(|d| d.rate_limit_frequency_in_seconds).unwrap_or(1),
            isolation_group_id: isolation,
            execution_name_space: namespace,
            iteration: 0,
        }
    }

    /// Ends the workflow: cancels what is still open, computes the output, records the outcome.
    fn end(&mut self, status: WorkflowStatus, reason: Option<String>) {
        let time = self.ctx.now;
        let open: Vec<u32> = self.state.tasks.iter().filter(|t| !t.status.is_terminal()).map(|t| t.seq).collect();
        if status != WorkflowStatus::Completed {
            for seq in open {
                self.emit(Event::TaskStatusChanged { seq, status: TaskStatus::Canceled, reason: None, time });
            }
        }
        let output = self.workflow_output();
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
        self.emit(Event::WorkflowEnded(Box::new(WorkflowEnded {
            status,
            reason,
            output,
            failed_reference_task_names: failed_refs,
            failed_task_names: failed_names,
            time,
        })));
    }

    /// `outputParameters` resolved, or the last task's output when there are none.
    fn workflow_output(&self) -> Object {
        let params = &self.state.plan.def.output_parameters;
        if params.is_empty() {
            return self.state.tasks.last().map(|t| t.output.clone()).unwrap_or_default();
        }
        let scope = Scope { header: &self.state.header, tasks: &self.state.tasks, task_id: None };
        resolve_object(params, &scope)
    }
}

/// The domain a task of this name runs in: its own `taskToDomain` entry, else `*`. A comma list
/// takes its first entry (choosing by recent worker activity is not implemented yet);
/// `NO_DOMAIN` means none.
fn domain_for(task_to_domain: &std::collections::BTreeMap<String, String>, name: &str) -> Option<String> {
    let value = task_to_domain.get(name).or_else(|| task_to_domain.get("*"))?;
    let first = value.split(',').map(str::trim).find(|s| !s.is_empty())?;
    (first != "NO_DOMAIN").then(|| first.to_owned())
}

fn truncate_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s,
    }
}

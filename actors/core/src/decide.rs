//! `decide`: from the current state and a command to the events that should follow.
//!
//! The decider applies each event to the state as it emits it (through [`evolve`]), so later steps
//! of one decision see the effect of earlier ones, and the caller's state ends equal to
//! `evolve(old, events)`. A rejection is returned before any event is emitted, leaving the state
//! as it was.

use std::sync::Arc;

use crate::command::{Command, Ctx, Rejection, StartWorkflow, TaskResultStatus, TaskUpdate};
use crate::dsl::{TaskTimeoutPolicy, WorkflowTask, WorkflowTimeoutPolicy};
use crate::event::{Event, TaskScheduled, TaskUpdated, WorkflowEnded, WorkflowStarted};
use crate::evolve::{evolve, start as evolve_start};
use crate::expr::{Scope, resolve_object};
use crate::plan::{CaseChoice, Plan, PlanTask, Slot, TaskKind};
use crate::retry;
use crate::rows::{TimerKind, queue_name};
use crate::system;
use serde_json::{Value, json};

use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};

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
        Command::UpdateVariables { variables, append_array } => {
            // As in Conductor, also on a finished workflow (its record is updated).
            {
                let mut merged = d.state.header.variables.clone();
                for (k, v) in variables {
                    match (merged.get_mut(&k), v) {
                        (Some(Value::Array(old)), Value::Array(new)) if append_array => old.extend(new),
                        (_, v) => {
                            merged.insert(k, v);
                        }
                    }
                }
                let time = d.ctx.now;
                d.emit(Event::VariablesSet { variables: merged, time });
            }
        }
        Command::ChildCanceled { seq } => {
            if d.state.task(seq).is_some_and(TaskState::child_to_cancel) {
                d.emit(Event::TaskExecuted { seq });
            }
        }
        Command::Timer { kind, seq, fire_at } => d.timer(kind, seq, fire_at),
    }
    Ok(d.events)
}

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

    fn id(&self) -> &str {
        &self.state.header.workflow_id
    }

    fn pause(&mut self) -> Result<(), Rejection> {
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

    fn resume(&mut self) -> Result<(), Rejection> {
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

    fn reset_callbacks(&mut self) -> Result<(), Rejection> {
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

    /// Inserts a SKIPPED task for a task of the definition that has not run; the flow steps over
    /// it when it gets there.
    fn skip(&mut self, reference: &str, input: Object, output: Object) -> Result<(), Rejection> {
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
    fn retry(&mut self, resume: &[String]) -> Result<(), Rejection> {
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
            let resumed =
                task.task_type == "SUB_WORKFLOW" && task.sub_workflow_id.is_some() && resume.contains(&task.task_id);
            if resumed || matches!(task.task_type.as_str(), "JOIN" | "EXCLUSIVE_JOIN" | "DO_WHILE") {
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

    fn ensure_ended(&self) -> Result<(), Rejection> {
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
    fn restart(&mut self, plan: Option<Arc<Plan>>) -> Result<(), Rejection> {
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
    fn rerun(&mut self, rerun: crate::command::Rerun) -> Result<(), Rejection> {
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

    fn reopen(
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

    fn start_over(&mut self) {
        match self.plan().first().cloned() {
            Some(task) => {
                self.schedule(&task, 0, None);
                self.run();
            }
            None => self.end(WorkflowStatus::Completed, None),
        }
    }

    /// A SUB_WORKFLOW task's child ended: the task ends the same way, with the child's output.
    fn child_ended(&mut self, child: crate::command::ChildEnded) {
        let Some(task) = self.state.task_by_id(&child.task_id) else { return };
        if task.task_type != "SUB_WORKFLOW" || task.status.is_terminal() || self.state.header.status.is_terminal() {
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
        output.insert("subWorkflowId".to_owned(), Value::String(child.child_id.clone()));
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

    fn timer(&mut self, kind: TimerKind, seq: u32, fire_at: i64) {
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
                if task.task_type == "DO_WHILE" {
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
    fn workflow_timeout(&mut self, fire_at: i64) {
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

    /// Acts on every task that reached a terminal status and was not acted on yet, and on every
    /// JOIN that can complete, until nothing changes; then completes the workflow if nothing is
    /// left to do.
    fn run(&mut self) {
        loop {
            if !self.running() {
                return;
            }
            let mut progressed = false;
            let mut i = 0;
            while i < self.state.tasks.len() {
                let t = &self.state.tasks[i];
                i += 1;
                // A SKIPPED task is stepped over where the flow reaches it, not acted on here.
                if t.retried || t.executed || !t.status.is_terminal() || t.status == TaskStatus::Skipped {
                    continue;
                }
                progressed = true;
                let seq = t.seq;
                if t.status.is_successful() {
                    self.emit(Event::TaskExecuted { seq });
                    self.after(seq);
                } else if self.handle_failure(seq) {
                    // Tolerated (permissive): the flow goes on as if it had succeeded.
                    if self.state.tasks[seq as usize - 1].status.is_terminal()
                        && !self.state.tasks[seq as usize - 1].retried
                    {
                        self.emit(Event::TaskExecuted { seq });
                        self.after(seq);
                    }
                }
                if !self.running() {
                    return;
                }
            }
            progressed |= self.evaluate_joins();
            if !progressed {
                break;
            }
        }
        if self.state.header.status == WorkflowStatus::Running
            && self.state.tasks.iter().all(|t| t.status.is_terminal())
        {
            let permissive_failure = self.state.tasks.iter().find(|t| {
                !t.retried
                    && !t.status.is_successful()
                    && self.state.workflow_task(t).is_some_and(|(wt, _)| wt.permissive && !wt.optional)
            });
            match permissive_failure {
                Some(t) => {
                    let reason = failure_reason(t, WorkflowStatus::Failed);
                    self.end(WorkflowStatus::Failed, Some(reason));
                }
                None => self.end(WorkflowStatus::Completed, None),
            }
        }
    }

    fn running(&self) -> bool {
        self.state.header.status == WorkflowStatus::Running
    }

    /// What follows a task that finished well: a SWITCH enters its case, a fork starts its
    /// branches, a TERMINATE ends the workflow, anything else continues with the next task.
    fn after(&mut self, seq: u32) {
        let plan = self.plan();
        let task = self.state.tasks[seq as usize - 1].clone();
        let Some(node) = plan.task(task.base_reference()) else { return };
        if task.workflow_task.is_some() && node.kind != TaskKind::Dynamic {
            // A dynamically forked task: its branch ends here and the JOIN takes over.
            return;
        }
        if task.workflow_task.is_none() && node.kind == TaskKind::Dynamic {
            return;
        }
        let iteration = if node.kind == TaskKind::DoWhile { 0 } else { task.iteration };
        if matches!(node.kind, TaskKind::ForkJoin | TaskKind::ForkJoinDynamic)
            && plan.next_in_list(node.index).is_none_or(|n| n.kind != TaskKind::Join)
        {
            let reason = "Fork task definition is not followed by a join task.  Check the blueprint".to_owned();
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        match node.kind {
            TaskKind::Switch | TaskKind::Decision => {
                let case = task.input.get("case").and_then(Value::as_str).unwrap_or("null");
                match plan.case(node.index, case) {
                    CaseChoice::Task(head) => self.schedule(plan.at(head), iteration, None),
                    CaseChoice::Nothing => self.continue_after(node.index, iteration),
                }
            }
            TaskKind::ForkJoin => {
                for head in plan.branch_heads(node.index) {
                    self.schedule(head, iteration, None);
                }
                self.continue_after(node.index, iteration);
            }
            TaskKind::ForkJoinDynamic => {
                let forked: Vec<WorkflowTask> = task
                    .input
                    .get("forkedTaskDefs")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                for wt in &forked {
                    self.schedule_dynamic(wt, iteration);
                    if !self.running() {
                        return;
                    }
                }
                self.continue_after(node.index, iteration);
            }
            TaskKind::Terminate => {
                let (status, reason) = match system::terminate(&task.input) {
                    Ok((status, reason, _)) => (status, reason),
                    Err(_) => (WorkflowStatus::Failed, None),
                };
                let reason = reason.or_else(|| {
                    (status != WorkflowStatus::Completed)
                        .then(|| format!("Workflow is {} by TERMINATE task: {}", status.as_str(), task.task_id))
                });
                self.end_with(status, reason, Some(task.output.clone()), true);
            }
            _ => self.continue_after(node.index, iteration),
        }
    }

    /// Schedules what follows the plan task at `index` once it (and anything it contains) is done:
    /// the next task in its list; at the end of a case, what follows the SWITCH; at the end of a
    /// fork branch, nothing (the JOIN waits); at the end of a loop body, the loop's next step.
    fn continue_after(&mut self, index: usize, iteration: i32) {
        let plan = self.plan();
        let mut at = index;
        loop {
            if let Some(next) = plan.next_in_list(at) {
                self.schedule(next, iteration, None);
                return;
            }
            match plan.at(at).slot {
                Slot::Top | Slot::Branch(..) => return,
                Slot::Case(owner, _) => at = owner,
                Slot::Loop(owner) => {
                    self.iteration_done(owner, iteration);
                    return;
                }
            }
        }
    }

    /// A DO_WHILE's body finished iteration `iteration`: record its outputs, then start the next
    /// iteration or complete the loop.
    fn iteration_done(&mut self, loop_index: usize, iteration: i32) {
        let plan = self.plan();
        let node = plan.at(loop_index);
        let Some(dw) = self.state.latest(&node.task.task_reference_name).cloned() else { return };
        if dw.status != TaskStatus::InProgress || dw.iteration != iteration {
            return;
        }
        // The latest output of each task of the body, by reference name, for the condition.
        let mut latest_by_ref = Object::new();
        for n in plan.tasks().filter(|p| plan.is_inside(p.index, loop_index)) {
            if let Some(t) = self.state.latest(&n.task.task_reference_name).filter(|t| t.iteration > 0) {
                latest_by_ref.insert(n.task.task_reference_name.clone(), Value::Object(t.output.clone()));
            }
        }
        let mut output = dw.output.clone();
        output.insert("iteration".to_owned(), Value::from(iteration));
        // Every iteration's outputs: assembled only when the condition reads them or the loop ends.
        let full = || self.state.loop_output(&dw);
        let condition_sees_iterations = node
            .task
            .loop_condition
            .as_deref()
            .is_some_and(|c| system::reads_loop_iterations(c, &node.task.task_reference_name));
        let time = self.ctx.now;

        let items = dw.input.get("_items").and_then(Value::as_array).cloned();
        let more_items = items.as_ref().is_none_or(|items| (iteration as usize) < items.len());
        let wants_more = if !more_items {
            Ok(false)
        } else {
            match node.task.loop_condition.as_deref().filter(|c| !c.trim().is_empty()) {
                None => Ok(items.is_some()),
                Some(condition) => {
                    let scope = Scope { state: self.state, task_id: Some(&dw.task_id) };
                    match resolve_object(&node.task.input_parameters, &scope) {
                        Err(e) => Err(format!("the loop's input {e}")),
                        Ok(mut input) => {
                            // The loop's own output, with every iteration's outputs only if the
                            // condition can read them (copying them all each iteration would make
                            // a long loop slow).
                            let own = if condition_sees_iterations { full() } else { output.clone() };
                            input.insert(node.task.task_reference_name.clone(), Value::Object(own));
                            for (k, v) in latest_by_ref {
                                input.insert(k, v);
                            }
                            self.ctx
                                .env
                                .javascript(condition, &Value::Object(input))
                                .map(|v| system::truthy(&v))
                                .map_err(|e| e.to_string())
                        }
                    }
                }
            }
        };
        match wants_more {
            Ok(true) => {
                let next = iteration + 1;
                output.insert("iteration".to_owned(), Value::from(next));
                if let Some(items) = &items {
                    output.insert("loopIndex".to_owned(), Value::from(next - 1));
                    output.insert("loopItem".to_owned(), items[(next - 1) as usize].clone());
                }
                self.iterations += 1;
                if self.iterations > MAX_ITERATIONS_PER_DECISION {
                    // Pause here; the WaitTimeout timer resumes the loop in a fresh decision.
                    self.emit(Event::TaskIterated { seq: dw.seq, iteration: next, output, resume_at: time, time });
                    return;
                }
                self.emit(Event::TaskIterated { seq: dw.seq, iteration: next, output, resume_at: 0, time });
                if let Some(head) = plan.loop_head(loop_index) {
                    self.schedule(head, next, None);
                }
            }
            Ok(false) => {
                let full = full();
                self.finish_system_task(dw.seq, TaskStatus::Completed, Some(full), None);
            }
            Err(e) => {
                let full = full();
                let reason = format!("Unable to evaluate the loop condition: {e}");
                self.finish_system_task(dw.seq, TaskStatus::FailedWithTerminalError, Some(full), Some(reason));
            }
        }
    }

    /// Completes every open JOIN and EXCLUSIVE_JOIN whose tasks are done. Returns whether any did.
    fn evaluate_joins(&mut self) -> bool {
        let mut changed = false;
        let open: Vec<u32> = self
            .state
            .tasks
            .iter()
            .filter(|t| {
                t.status == TaskStatus::InProgress && (t.task_type == "JOIN" || t.task_type == "EXCLUSIVE_JOIN")
            })
            .map(|t| t.seq)
            .collect();
        for seq in open {
            let t = &self.state.tasks[seq as usize - 1];
            let strings = |key: &str| -> Vec<String> {
                t.input
                    .get(key)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let join_on = strings("joinOn");
            let outcome = if t.task_type == "JOIN" {
                let permissive = self.state.workflow_task(t).is_some_and(|(wt, _)| wt.permissive);
                system::join_outcome(self.state, &join_on, permissive)
            } else {
                system::exclusive_join_outcome(self.state, &join_on, &strings("defaultExclusiveJoinTask"))
            };
            if let Some(outcome) = outcome {
                self.finish_system_task(seq, outcome.status, Some(outcome.output), outcome.reason);
                changed = true;
            }
        }
        changed
    }

    fn finish_system_task(&mut self, seq: u32, status: TaskStatus, output: Option<Object>, reason: Option<String>) {
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

    /// Retries, tolerates or escalates a failed task. Returns `false` if the workflow ended.
    fn handle_failure(&mut self, seq: u32) -> bool {
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

    /// Schedules a task of the definition in loop iteration `iteration` (0 outside loops): a
    /// first attempt, or a retry of `retry` after a delay.
    fn schedule(&mut self, node: &PlanTask, iteration: i32, retry: Option<(&TaskState, i64)>) {
        if retry.is_none() {
            let reference = with_iteration(&node.task.task_reference_name, iteration);
            if let Some(existing) = self.state.latest(&reference).filter(|t| !t.retried) {
                if existing.status == TaskStatus::Skipped {
                    // Skipped through the API: the flow goes on after it.
                    self.continue_after(node.index, iteration);
                }
                return;
            }
        }
        if node.kind == TaskKind::Dynamic {
            // Only the parameter naming the task is needed here; the task's input is resolved
            // once, when it is created.
            let scope = Scope { state: self.state, task_id: None };
            let param = node.task.dynamic_task_name_param.as_deref().unwrap_or("taskToExecute");
            let name = match node.task.input_parameters.get(param).map(|v| crate::expr::resolve_value(v, &scope)) {
                Some(Err(e)) => {
                    let reason = format!("The name of the dynamic task {} {e}", node.task.task_reference_name);
                    self.end(WorkflowStatus::Failed, Some(reason));
                    return;
                }
                Some(Ok(v)) => v.as_str().map(str::to_owned).unwrap_or_default(),
                None => String::new(),
            };
            let def = (!name.is_empty()).then(|| self.ctx.env.task_def(&name)).flatten();
            let Some(def) = def else {
                let reason = format!("Invalid task specified. Cannot find task by name {name} in the task definitions");
                self.end(WorkflowStatus::Failed, Some(reason));
                return;
            };
            let mut wt = node.task.clone();
            wt.name = name;
            wt.task_definition = Some(def);
            self.schedule_task(&wt, iteration, retry);
            return;
        }
        let wt = node.task.clone();
        self.schedule_task(&wt, iteration, retry);
    }

    /// Schedules a task that is not (only) the definition's: a dynamically forked task.
    fn schedule_dynamic(&mut self, wt: &WorkflowTask, iteration: i32) {
        let mut wt = wt.clone();
        if wt.task_definition.is_none() {
            wt.task_definition = self.ctx.env.task_def(&wt.name);
        }
        let kind = TaskKind::of(&wt.task_type);
        if kind.is_built_in() || kind == TaskKind::Dynamic || matches!(kind, TaskKind::Unsupported(_)) {
            let reason = format!(
                "Task {} of type {} cannot be forked dynamically by this Overture release",
                wt.task_reference_name, wt.task_type
            );
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        if self.plan().task(&wt.task_reference_name).is_some() {
            let reason = format!(
                "Dynamically forked task {} uses the reference name of a task of the definition",
                wt.task_reference_name
            );
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        self.schedule_task_as(&wt, iteration, None, true);
    }

    fn schedule_task(&mut self, wt: &WorkflowTask, iteration: i32, retry: Option<(&TaskState, i64)>) {
        let dynamic = retry.is_some_and(|(old, _)| old.workflow_task.is_some())
            || TaskKind::of(&wt.task_type) == TaskKind::Dynamic;
        self.schedule_task_as(wt, iteration, retry, dynamic);
    }

    /// Creates the task for `wt` and runs it as far as its type allows right now: worker tasks are
    /// queued, WAIT, HUMAN and the joins wait, everything else completes or fails at once.
    fn schedule_task_as(
        &mut self,
        wt: &WorkflowTask,
        iteration: i32,
        retry: Option<(&TaskState, i64)>,
        keep_workflow_task: bool,
    ) {
        let kind = TaskKind::of(&wt.task_type);
        if let TaskKind::Unsupported(t) = &kind {
            let reason =
                format!("Task {} has type {t}, which this Overture release does not run", wt.task_reference_name);
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        if kind == TaskKind::UserDefined && wt.task_definition.is_none() {
            let reason =
                format!("Invalid task specified. Cannot find task by name {} in the task definitions", wt.name);
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        let (mut task, input_error) = self.new_task(wt, &kind, iteration, retry);
        if keep_workflow_task {
            task.workflow_task = Some(Box::new(wt.clone()));
        }
        let now = self.ctx.now;
        let mut variables: Option<Object> = None;
        let outcome: Option<(TaskStatus, Object, Option<String>)> = match &kind {
            // Its input could not be resolved: it fails before it runs, whatever it is.
            _ if input_error.is_some() => Some((TaskStatus::FailedWithTerminalError, Object::new(), input_error)),
            TaskKind::Simple | TaskKind::UserDefined | TaskKind::Dynamic => None,
            // Queued for the leader's executor.
            TaskKind::SubWorkflow | TaskKind::StartWorkflow | TaskKind::Http | TaskKind::Event => None,
            TaskKind::Noop | TaskKind::ForkJoin => Some((TaskStatus::Completed, Object::new(), None)),
            TaskKind::Switch | TaskKind::Decision => {
                let case = if kind == TaskKind::Switch {
                    system::switch_case(wt, &task.input, self.ctx.env)
                } else {
                    system::decision_case(wt, &task.input, self.ctx.env)
                };
                match case {
                    Ok(case) => {
                        task.input.insert("case".to_owned(), Value::String(case.clone()));
                        let mut output = Object::new();
                        if kind == TaskKind::Switch {
                            output.insert("evaluationResult".to_owned(), json!([case]));
                            output.insert("selectedCase".to_owned(), Value::String(case));
                        } else {
                            output.insert("caseOutput".to_owned(), json!([case]));
                        }
                        Some((TaskStatus::Completed, output, None))
                    }
                    Err(f) => Some(match self.failure(f) {
                        Some(r) => r,
                        None => return,
                    }),
                }
            }
            TaskKind::ForkJoinDynamic => match system::dynamic_fork(wt, &task.input) {
                Ok(forked) => {
                    let refs: Vec<Value> = forked
                        .iter()
                        .map(|t| Value::String(with_iteration(&t.task_reference_name, iteration)))
                        .collect();
                    task.input.insert("forkedTasks".to_owned(), Value::Array(refs));
                    let defs = serde_json::to_value(&forked).unwrap_or(Value::Null);
                    task.input.insert("forkedTaskDefs".to_owned(), defs);
                    Some((TaskStatus::Completed, Object::new(), None))
                }
                Err(f) => Some(match self.failure(f) {
                    Some(r) => r,
                    None => return,
                }),
            },
            TaskKind::Join | TaskKind::ExclusiveJoin => {
                let join_on = self.join_on(wt, iteration);
                task.input.insert("joinOn".to_owned(), json!(join_on));
                if kind == TaskKind::ExclusiveJoin {
                    let defaults: Vec<String> =
                        wt.default_exclusive_join_task.iter().map(|r| with_iteration(r, iteration)).collect();
                    task.input.insert("defaultExclusiveJoinTask".to_owned(), json!(defaults));
                }
                task.status = TaskStatus::InProgress;
                None
            }
            TaskKind::DoWhile => {
                task.status = TaskStatus::InProgress;
                task.iteration = 1;
                task.output.insert("iteration".to_owned(), Value::from(1));
                if let Some(expr) = wt.items.as_deref() {
                    let scope = Scope { state: self.state, task_id: None };
                    let items = match crate::expr::resolve_value(&Value::String(expr.to_owned()), &scope) {
                        Ok(Value::Array(items)) => Ok(items),
                        Ok(Value::Null) => Ok(Vec::new()),
                        Ok(other) => Ok(vec![other]),
                        Err(e) => Err(format!("The loop's items {e}")),
                    };
                    match items {
                        Err(reason) => Some((TaskStatus::FailedWithTerminalError, Object::new(), Some(reason))),
                        Ok(items) if items.is_empty() => {
                            task.iteration = 0;
                            task.output.insert("iteration".to_owned(), Value::from(0));
                            task.input.insert("_items".to_owned(), Value::Array(items));
                            Some((TaskStatus::Completed, task.output.clone(), None))
                        }
                        Ok(items) => {
                            task.output.insert("loopIndex".to_owned(), Value::from(0));
                            task.output.insert("loopItem".to_owned(), items[0].clone());
                            task.input.insert("_items".to_owned(), Value::Array(items));
                            None
                        }
                    }
                } else {
                    None
                }
            }
            TaskKind::Wait => match system::wait_until(&task.input, now) {
                Ok(until) => {
                    task.status = TaskStatus::InProgress;
                    task.wait_timeout = until;
                    if until > 0 {
                        task.callback_after_seconds = (until - now).max(0) / 1000;
                    }
                    None
                }
                Err(f) => Some(match self.failure(f) {
                    Some(r) => r,
                    None => return,
                }),
            },
            TaskKind::Human => {
                task.status = TaskStatus::InProgress;
                None
            }
            TaskKind::Terminate => match system::terminate(&task.input) {
                Ok((_, _, output)) => Some((TaskStatus::Completed, output, None)),
                Err(f) => Some(match self.failure(f) {
                    Some(r) => r,
                    None => return,
                }),
            },
            TaskKind::SetVariable => {
                let mut merged = self.state.header.variables.clone();
                for (k, v) in &task.input {
                    merged.insert(k.clone(), v.clone());
                }
                let size = serde_json::to_vec(&merged).map_or(usize::MAX, |b| b.len());
                if size > system::MAX_VARIABLES_BYTES {
                    let reason = format!(
                        "The variables payload size: {size} of workflow: {} is greater than the permissible limit: {} bytes",
                        self.state.header.workflow_id,
                        system::MAX_VARIABLES_BYTES
                    );
                    Some((TaskStatus::FailedWithTerminalError, Object::new(), Some(reason)))
                } else {
                    variables = Some(merged);
                    Some((TaskStatus::Completed, Object::new(), None))
                }
            }
            TaskKind::Inline | TaskKind::Lambda | TaskKind::JsonJqTransform => {
                let r = match kind {
                    TaskKind::Inline => system::inline(&task.input, self.ctx.env),
                    TaskKind::Lambda => system::lambda(wt, &task.input, self.ctx.env),
                    _ => system::json_jq(&task.input, self.ctx.env),
                };
                match r {
                    Ok(output) => Some((TaskStatus::Completed, output, None)),
                    Err(f) => Some(match self.failure(f) {
                        Some(r) => r,
                        None => return,
                    }),
                }
            }
            TaskKind::Unsupported(_) => return,
        };
        if let Some((status, output, reason)) = outcome {
            task.status = status;
            if !output.is_empty() {
                task.output = output;
            }
            task.reason_for_incompletion = reason;
        }
        if task.status != TaskStatus::Scheduled {
            task.start_time = now;
            task.callback_after_seconds = if task.wait_timeout > 0 { task.callback_after_seconds } else { 0 };
            task.start_delay_in_seconds = 0;
        }
        if task.status.is_terminal() {
            task.end_time = now;
        }
        let retry_of = retry.map(|(old, _)| old.seq);
        let (seq, loop_head) = (task.seq, (kind == TaskKind::DoWhile && task.status == TaskStatus::InProgress));
        self.emit(Event::TaskScheduled(Box::new(TaskScheduled { task, retry_of })));
        if let Some(variables) = variables {
            self.emit(Event::VariablesSet { variables, time: now });
        }
        if loop_head {
            let plan = self.plan();
            if let Some(node) = plan.task(&wt.task_reference_name) {
                match plan.loop_head(node.index) {
                    Some(head) => self.schedule(head, 1, None),
                    None => self.finish_system_task(seq, TaskStatus::Completed, None, None),
                }
            }
        }
    }

    /// A system task's failure: the task's status, output and reason, or `None` when it ended
    /// the workflow.
    fn failure(&mut self, f: system::Failure) -> Option<(TaskStatus, Object, Option<String>)> {
        match f {
            system::Failure::Task(status, reason, output) => Some((status, output, Some(reason))),
            system::Failure::Workflow(reason) => {
                self.end(WorkflowStatus::Failed, Some(reason));
                None
            }
        }
    }

    /// The reference names a JOIN waits on: its `joinOn`, or, after a dynamic fork, the tasks
    /// that fork created. Inside a loop they carry the iteration suffix.
    fn join_on(&self, wt: &WorkflowTask, iteration: i32) -> Vec<String> {
        let plan = self.plan();
        if let Some(node) = plan.task(&wt.task_reference_name) {
            let previous = plan
                .tasks()
                .find(|p| p.slot == node.slot && plan.next_in_list(p.index).is_some_and(|n| n.index == node.index));
            if let Some(fork) = previous.filter(|p| p.kind == TaskKind::ForkJoinDynamic) {
                let fork_ref = with_iteration(&fork.task.task_reference_name, iteration);
                return self
                    .state
                    .latest(&fork_ref)
                    .and_then(|t| t.input.get("forkedTasks"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
            }
        }
        wt.join_on.iter().map(|r| with_iteration(r, iteration)).collect()
    }

    fn new_task(
        &mut self,
        wt: &WorkflowTask,
        kind: &TaskKind,
        iteration: i32,
        retry: Option<(&TaskState, i64)>,
    ) -> (TaskState, Option<String>) {
        let def = wt.task_definition.as_ref();
        let task_id = self.ctx.ids.next_id();
        let now = self.ctx.now;
        let worker = kind.is_worker_task();

        let mut params = wt.input_parameters.clone();
        if let Some(def) = def.filter(|_| worker) {
            for (k, v) in &def.input_template {
                params.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let scope = Scope { state: self.state, task_id: Some(&task_id) };
        let (mut input, mut input_error) = match resolve_object(&params, &scope) {
            Ok(input) => (input, None),
            Err(e) => (Object::new(), Some(format!("The task's input {e} once its expressions are resolved"))),
        };
        if let Some(def) = def.filter(|_| worker) {
            for (k, v) in &def.input_template {
                if input.get(k).is_none_or(|x| x.is_null()) {
                    input.insert(k.clone(), v.clone());
                }
            }
        }

        let (task_type, def_name) = match kind {
            TaskKind::Simple | TaskKind::Dynamic => (wt.name.clone(), wt.name.clone()),
            TaskKind::UserDefined => (wt.task_type.clone(), wt.name.clone()),
            TaskKind::ForkJoin | TaskKind::ForkJoinDynamic => ("FORK".to_owned(), "FORK".to_owned()),
            _ => (wt.task_type.clone(), wt.name.clone()),
        };
        let domain =
            if worker { domain_for(&self.state.header.task_to_domain, &wt.name, self.ctx.env, now) } else { None };
        let namespace = def.and_then(|d| d.execution_name_space.clone());
        let isolation = def.and_then(|d| d.isolation_group_id.clone());
        // Workers poll by type and domain only, so the queue name carries nothing else; execution
        // namespaces and isolation groups are recorded on the task but do not split its queue yet.
        let queue = if worker {
            Some(queue_name(&task_type, domain.as_deref(), None, None))
        } else if kind.is_executed_by_leader() {
            Some(crate::rows::system_queue(&task_type))
        } else {
            None
        };
        if *kind == TaskKind::SubWorkflow
            && let Err(e) = sub_workflow_input(wt, &mut input, &scope)
        {
            input_error.get_or_insert(format!("The task's subWorkflowParam {e} once its expressions are resolved"));
        }
        if *kind == TaskKind::Event {
            input.insert("sink".to_owned(), wt.sink.clone().map_or(Value::Null, Value::String));
            if wt.async_complete {
                input.insert("asyncComplete".to_owned(), Value::Bool(true));
            }
        }
        let delay = match retry {
            Some((_, delay)) => delay,
            None => i64::from(wt.start_delay.max(0)),
        };
        let response_timeout = match def {
            Some(d) => d.response_timeout_seconds,
            None if worker => DEFAULT_RESPONSE_TIMEOUT_SECONDS,
            None if kind.is_executed_by_leader() => EXECUTOR_RESPONSE_TIMEOUT_SECONDS,
            None => 0,
        };
        let task = TaskState {
            task_id,
            seq: self.state.tasks.len() as u32 + 1,
            reference_task_name: with_iteration(&wt.task_reference_name, iteration),
            task_def_name: def_name,
            task_type,
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
            response_timeout_seconds: response_timeout,
            retried_task_id: retry.map(|(old, _)| old.task_id.clone()),
            retried: false,
            executed: false,
            worker_id: None,
            reason_for_incompletion: None,
            domain,
            queue,
            rate_limit_per_frequency: def.and_then(|d| d.rate_limit_per_frequency).unwrap_or(0),
            rate_limit_frequency_in_seconds: def.and_then(|d| d.rate_limit_frequency_in_seconds).unwrap_or(1),
            isolation_group_id: isolation,
            execution_name_space: namespace,
            iteration,
            workflow_task: retry.and_then(|(old, _)| old.workflow_task.clone()),
            wait_timeout: 0,
            sub_workflow_id: None,
            first_scheduled_time: retry.map_or(now, |(old, _)| old.first_scheduled_time),
            timeout_seconds: def.map_or(0, |d| d.timeout_seconds),
            poll_timeout_seconds: def.and_then(|d| d.poll_timeout_seconds).map_or(0, i64::from),
            total_timeout_seconds: def.map_or(0, |d| d.total_timeout_seconds),
            // A retry waits its backoff plus up to `backoffJitterMs`, drawn now and recorded.
            jitter_ms: match (retry, def) {
                (Some(_), Some(d)) if d.backoff_jitter_ms > 0 => {
                    i64::try_from(self.ctx.env.random(d.backoff_jitter_ms as u64)).unwrap_or(0)
                }
                _ => 0,
            },
        };
        (task, input_error)
    }

    /// Ends the workflow: cancels what is still open, computes the output, records the outcome.
    fn end(&mut self, status: WorkflowStatus, reason: Option<String>) {
        self.end_with(status, reason, None, status != WorkflowStatus::Completed);
    }

    /// Ends the workflow with `output` (else the computed output), cancelling open tasks if asked.
    fn end_with(&mut self, status: WorkflowStatus, reason: Option<String>, output: Option<Object>, cancel_open: bool) {
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
    fn workflow_output(&self) -> Result<Object, crate::payload::Exceeded> {
        let params = &self.state.plan.def.output_parameters;
        if params.is_empty() {
            return Ok(self.state.tasks.last().map(|t| t.output.clone()).unwrap_or_default());
        }
        let scope = Scope { state: self.state, task_id: None };
        resolve_object(params, &scope)
    }
}

/// The domain a task of this name runs in: its own `taskToDomain` entry, else `*`. The value is
/// a comma list: the first domain a worker polled in the last 10 s wins; if none did, the last
/// entry; `NO_DOMAIN` means none.
fn domain_for(
    task_to_domain: &std::collections::BTreeMap<String, String>,
    name: &str,
    env: &dyn crate::command::Environment,
    now: i64,
) -> Option<String> {
    const ACTIVE_WORKER_MS: i64 = 10_000;
    let value = task_to_domain.get(name).or_else(|| task_to_domain.get("*"))?;
    let list: Vec<&str> = value.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let active = list
        .iter()
        .find(|d| **d != "NO_DOMAIN" && env.last_poll(name, Some(d)).is_some_and(|t| now - t <= ACTIVE_WORKER_MS));
    let chosen = active.or(list.last())?;
    (*chosen != "NO_DOMAIN").then(|| (*chosen).to_owned())
}

/// A SUB_WORKFLOW task's input: its resolved `inputParameters` (the child's input, also as
/// `workflowInput`) and its resolved `subWorkflowParam` spelled out as Conductor does.
fn sub_workflow_input(
    wt: &WorkflowTask,
    input: &mut Object,
    scope: &Scope<'_>,
) -> Result<(), crate::payload::Exceeded> {
    let param = wt.sub_workflow_param.as_ref().map(|p| crate::expr::resolve_value(p, scope)).transpose()?;
    let param = param.unwrap_or(Value::Null);
    let field = |k: &str| param.get(k).cloned().unwrap_or(Value::Null);
    let workflow_input = Value::Object(input.clone());
    input.insert("subWorkflowName".to_owned(), field("name"));
    input.insert("subWorkflowVersion".to_owned(), field("version"));
    input.insert("subWorkflowTaskToDomain".to_owned(), field("taskToDomain"));
    input.insert("subWorkflowDefinition".to_owned(), field("workflowDefinition"));
    input.insert("priority".to_owned(), field("priority"));
    input.insert("idempotencyKey".to_owned(), field("idempotencyKey"));
    input.insert("idempotencyStrategy".to_owned(), field("idempotencyStrategy"));
    input.insert("workflowInput".to_owned(), workflow_input);
    Ok(())
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

fn truncate_chars(s: String, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((cut, _)) => s[..cut].to_owned(),
        None => s,
    }
}

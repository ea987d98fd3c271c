//! Creating tasks: which definition a task runs (dynamic tasks, dynamic forks, retries), its
//! resolved input, domain, queue and timeouts, and running it as far as its type allows at once.

use crate::dsl::WorkflowTask;
use crate::event::{Event, TaskScheduled};
use crate::expr::{Scope, resolve_object};
use crate::plan::{PlanTask, TaskKind};
use crate::queue::QueueName;
use crate::state::{Object, TaskState, TaskStatus, WorkflowStatus};
use serde_json::Value;

use super::system_tasks::{Started, unsupported};
use super::{DEFAULT_RESPONSE_TIMEOUT_SECONDS, Decider, EXECUTOR_RESPONSE_TIMEOUT_SECONDS, with_iteration};

impl Decider<'_, '_> {
    /// Schedules a task of the definition in loop iteration `iteration` (0 outside loops): a
    /// first attempt, or a retry of `retry` after a delay.
    pub(super) fn schedule(&mut self, node: &PlanTask, iteration: i32, retry: Option<(&TaskState, i64)>) {
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
            let scope = Scope { state: self.state, task_id: None, env: self.ctx.env };
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
    pub(super) fn schedule_dynamic(&mut self, wt: &WorkflowTask, iteration: i32) {
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

    pub(super) fn schedule_task(&mut self, wt: &WorkflowTask, iteration: i32, retry: Option<(&TaskState, i64)>) {
        let dynamic = retry.is_some_and(|(old, _)| old.workflow_task.is_some())
            || TaskKind::of(&wt.task_type) == TaskKind::Dynamic;
        self.schedule_task_as(wt, iteration, retry, dynamic);
    }

    /// Creates the task for `wt` and runs it as far as its type allows right now: worker tasks are
    /// queued, WAIT, HUMAN and the joins wait, everything else completes or fails at once.
    pub(super) fn schedule_task_as(
        &mut self,
        wt: &WorkflowTask,
        iteration: i32,
        retry: Option<(&TaskState, i64)>,
        keep_workflow_task: bool,
    ) {
        let kind = TaskKind::of(&wt.task_type);
        if let TaskKind::Unsupported(t) = &kind {
            self.end(WorkflowStatus::Failed, Some(unsupported(wt, t)));
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
        // Its input could not be resolved: it fails before it runs, whatever it is.
        let started = match input_error {
            Some(reason) => Started::failed_terminal(reason),
            None => self.start_task(&kind, wt, &mut task, iteration),
        };
        let mut variables: Option<Object> = None;
        match started {
            Started::Waits => {}
            Started::Ended { status, output, reason } => {
                task.status = status;
                if !output.is_empty() {
                    task.output = output;
                }
                task.reason_for_incompletion = reason;
            }
            Started::SetsVariables(merged) => {
                task.status = TaskStatus::Completed;
                task.reason_for_incompletion = None;
                variables = Some(merged);
            }
            Started::FailsWorkflow(reason) => {
                self.end(WorkflowStatus::Failed, Some(reason));
                return;
            }
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

    /// The reference names a JOIN waits on: its `joinOn`, or, after a dynamic fork, the tasks
    /// that fork created. Inside a loop they carry the iteration suffix.
    pub(super) fn join_on(&self, wt: &WorkflowTask, iteration: i32) -> Vec<String> {
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

    /// The domain and queue a new task of type `task_type` waits in. Workers poll by type and
    /// domain only, so the queue name carries nothing else; execution namespaces and isolation
    /// groups are recorded on the task but do not split its queue yet. A workflow under test
    /// (`POST /workflow/test`) keeps the tasks the leader would run (but for SUB_WORKFLOW, which
    /// runs the child under test) in its test domain, for their mocks.
    fn placement(&self, wt: &WorkflowTask, kind: &TaskKind, task_type: &str) -> (Option<String>, Option<String>) {
        let test_domain = self.state.header.task_to_domain.get("*").filter(|d| QueueName::is_test_domain(d));
        let mocked = kind.is_executed_by_leader() && *kind != TaskKind::SubWorkflow && test_domain.is_some();
        if kind.is_worker_task() || mocked {
            let domain = if mocked {
                test_domain.cloned()
            } else {
                domain_for(&self.state.header.task_to_domain, &wt.name, self.ctx.env, self.ctx.now)
            };
            let queue = QueueName::worker(task_type, domain.as_deref()).into_string();
            (domain, Some(queue))
        } else if kind.is_executed_by_leader() {
            (None, Some(QueueName::system(task_type).into_string()))
        } else {
            (None, None)
        }
    }

    pub(super) fn new_task(
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
        let scope = Scope { state: self.state, task_id: Some(&task_id), env: self.ctx.env };
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
        let (domain, queue) = self.placement(wt, kind, &task_type);
        let namespace = def.and_then(|d| d.execution_name_space.clone());
        let isolation = def.and_then(|d| d.isolation_group_id.clone());
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
            task_type: task_type.into(),
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

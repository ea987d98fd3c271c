//! [`Workflows`]: the narrow handle the leader's services and the API go through to act on
//! workflows — start one, send one a command, record a task's result, hand out queued tasks —
//! and to read the local view. It is cheap to clone, belongs to one leader term, and fails
//! every call with a retryable error once that term stops serving.

use std::sync::Arc;
use std::time::Duration;

use overture_core::command::Command;
use overture_core::dsl::{StartWorkflowRequest, WorkflowTask};
use overture_core::queue::QueueName;
use overture_core::validate;
use overture_core::{Object, Plan, StartWorkflow, TaskResultStatus, TaskState, TaskUpdate, WorkflowId, WorkflowState};
use overture_raft::ReadView;
use serde_json::value::RawValue;

use crate::actor::{Registry, UpdateOutcome, WorkflowMsg};
use crate::error::Error;
use crate::host::Host;
use crate::limits::{Admission, TaskLimits};
use crate::names;
use crate::queues::Popped;

/// How long a caller waits for a workflow actor's answer.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Acts on workflows through their actors, for one leader term.
#[derive(Clone)]
pub(crate) struct Workflows {
    registry: Arc<Registry>,
}

impl Workflows {
    /// The handle over this term's actors.
    pub fn new(registry: Arc<Registry>) -> Workflows {
        Workflows { registry }
    }

    /// What this term's actors and services share.
    pub fn host(&self) -> &Arc<Host> {
        &self.registry.host
    }

    /// The local replica's committed state.
    pub fn read(&self) -> &ReadView {
        self.registry.host.replica.read()
    }

    /// Workflow actors live now.
    pub fn live_actors(&self) -> usize {
        self.registry.len()
    }

    /// Stops a workflow's actor, if it has one (before the workflow is removed).
    pub fn stop_actor(&self, workflow_id: &str) {
        self.registry.stop(workflow_id);
    }

    /// Stops actors idle for longer than `idle`; answers how many.
    pub fn passivate_idle(&self, idle: Duration) -> usize {
        self.registry.passivate_idle(idle)
    }

    /// Stops every actor (leadership ended).
    pub fn stop_all(&self) {
        self.registry.stop_all();
    }

    async fn send<T, P: Clone>(
        &self,
        workflow_id: &str,
        payload: P,
        wrap: impl Fn(P, tokio::sync::oneshot::Sender<Result<T, Error>>) -> WorkflowMsg,
    ) -> Result<T, Error> {
        self.host().serving()?;
        self.registry.send(workflow_id, payload, wrap, ACTOR_TIMEOUT).await
    }

    /// Starts a workflow; answers the id of the workflow that runs for the request.
    pub async fn start_workflow(&self, cmd: StartWorkflow) -> Result<WorkflowId, Error> {
        let id = cmd.workflow_id.clone();
        self.send(&id, Box::new(cmd), WorkflowMsg::Start).await
    }

    /// Hands a popped task to a worker: commits it as polled and answers it as the worker sees it.
    pub async fn claim(&self, popped: &Popped, worker_id: Option<String>) -> Result<Box<RawValue>, Error> {
        self.send(&popped.workflow_id, (popped.task_id.clone(), worker_id), |(task_id, worker_id), reply| {
            WorkflowMsg::Poll { task_id, worker_id, reply }
        })
        .await
    }

    /// Records a task's result in its workflow.
    pub async fn update(&self, workflow_id: &str, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        self.send(workflow_id, Box::new(update), WorkflowMsg::Update).await
    }

    /// Updates the open task with this reference name (`None`: the task a signal completes);
    /// answers its id, or `None` if there is none.
    pub async fn update_by_ref(
        &self,
        workflow_id: &str,
        reference: Option<String>,
        status: TaskResultStatus,
        output: Object,
        worker_id: Option<String>,
    ) -> Result<Option<String>, Error> {
        self.send(workflow_id, (reference, output, worker_id), |(reference, output, worker_id), reply| {
            WorkflowMsg::UpdateByRef { reference, status, output, worker_id, reply }
        })
        .await
    }

    /// Terminates a workflow.
    pub async fn terminate(&self, workflow_id: &str, reason: Option<String>) -> Result<(), Error> {
        self.send(workflow_id, reason, |reason, reply| WorkflowMsg::Terminate { reason, reply }).await
    }

    /// Appends a line to a task's execution log.
    pub async fn add_log(&self, workflow_id: &str, task_id: String, log: String) -> Result<(), Error> {
        self.send(workflow_id, (task_id, log), |(task_id, log), reply| WorkflowMsg::AddLog { task_id, log, reply })
            .await
    }

    /// Sends any command to a workflow; answers how many events it produced.
    pub async fn command(&self, workflow_id: &str, cmd: Command) -> Result<usize, Error> {
        self.send(workflow_id, Box::new(cmd), WorkflowMsg::Command).await
    }

    /// Fires a durable timer that its workflow's decider handles (a deadline); answers whether
    /// it changed anything (`false`: not due yet by the actor's clock, or stale).
    pub async fn fire_timer(&self, timer: &overture_core::rows::TimerItem) -> Result<bool, Error> {
        let (kind, seq, fire_at) = (timer.kind, timer.seq, timer.fire_at);
        self.send(&timer.workflow_id, (), move |(), reply| WorkflowMsg::Timer { kind, seq, fire_at, reply }).await
    }

    /// An execution, from the local replica.
    pub fn workflow(&self, id: &str) -> Result<WorkflowState, Error> {
        workflow(self.read(), id)
    }

    /// A task and its workflow, from the local replica.
    pub fn task(&self, task_id: &str) -> Result<(WorkflowState, TaskState), Error> {
        task(self.read(), task_id)
    }

    /// Records a task result, in whichever workflow the task belongs to.
    pub async fn update_task(&self, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        // Not serving: say so, rather than whether the task exists on a stale view.
        self.host().serving()?;
        let owner = task_owner(self.read(), &update.task_id)?;
        let status = update.status;
        let outcome = self.update(&owner, update).await?;
        metrics::counter!(names::TASK_UPDATE, "status" => status.as_str()).increment(1);
        Ok(outcome)
    }

    /// Starts a workflow under a given id (derived from what starts it); starting it again is a
    /// no-op. Answers the workflow that holds the start: `workflow_id`, or, for a start without
    /// a parent whose idempotency key says `RETURN_EXISTING`, the workflow that holds the key.
    /// A sub-workflow cannot take over another workflow (its end would never reach the parent):
    /// that is a conflict.
    pub async fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> Result<WorkflowId, Error> {
        self.host().serving()?;
        if self.read().workflow(&workflow_id)?.is_some() {
            return Ok(workflow_id);
        }
        let child = parent.is_some();
        let cmd = prepare_start(self.read(), request, workflow_id.clone(), parent)?;
        match self.start_workflow(cmd).await {
            Ok(id) if id == workflow_id => Ok(id),
            Ok(existing) if !child => Ok(existing),
            Ok(other) => Err(Error::Conflict(format!(
                "its idempotency key already started workflow {other}, which is not a sub-workflow of this task"
            ))),
            // Started meanwhile (a second delivery of the same effect).
            Err(Error::Conflict(_)) if self.read().workflow(&workflow_id)?.is_some() => Ok(workflow_id),
            Err(e) => Err(e),
        }
    }

    /// Merges variables into a workflow's `workflow.variables`.
    pub async fn update_variables(&self, workflow_id: &str, variables: Object, append: bool) -> Result<(), Error> {
        self.workflow(workflow_id)?;
        let cmd = Command::UpdateVariables { variables, append_array: append };
        self.command(workflow_id, cmd).await.map(|_| ())
    }

    /// Hands up to `count` tasks of `queue` to a worker, waiting up to `wait` for the first one.
    /// Each is committed as polled before it is returned.
    pub async fn poll_queue(
        &self,
        queue: &str,
        task_type: &str,
        worker_id: Option<String>,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<Box<RawValue>>, Error> {
        self.host().serving()?;
        let host = self.host().clone();
        let deadline = tokio::time::Instant::now() + wait;
        let notify = host.queues.notifier(queue);
        let mut stopped = host.stopped();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (popped, limits) = self.pop_admitted(queue, task_type, count).await?;
            if !popped.is_empty() {
                match self.claim_all(queue, task_type, &popped, limits, &worker_id).await? {
                    Some(tasks) => return Ok(tasks),
                    None => continue,
                }
            }
            if *stopped.borrow() || tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            // Wait for a task to enter the queue, or for a decision to hand one over directly.
            let (waiter, mut incoming) = host.queues.wait_for_hand_off(queue, worker_id.clone());
            let (woken, handed) = tokio::select! {
                task = &mut incoming => (Wake::HandedOff, Some(task)),
                _ = &mut notified => (Wake::Queue, None),
                _ = tokio::time::sleep_until(deadline) => (Wake::Done, None),
                _ = stopped.changed() => (Wake::Done, None),
            };
            // A decision that took this poll just before it left is committing its task: wait.
            let handed = match handed {
                Some(task) => task,
                None if host.queues.leave(queue, &waiter) => Ok(None),
                None => incoming.await,
            };
            if let Ok(Some(task)) = handed {
                if woken == Wake::Queue {
                    // The wake-up was for a queued task: another poll takes that one.
                    notify.notify_one();
                }
                return Ok(vec![task]);
            }
            if woken == Wake::Done {
                return Ok(Vec::new());
            }
        }
    }

    /// Pops up to `count` ready tasks of `queue` within the limits of their task definition;
    /// tasks over them go back to the queue, quietly. With partitions the limits count over the
    /// cluster: each task needs a permit of the metadata leader ([`crate::permits`]).
    async fn pop_admitted(
        &self,
        queue: &str,
        task_type: &str,
        count: usize,
    ) -> Result<(Vec<Popped>, TaskLimits), Error> {
        let host = self.host();
        let popped = host.queues.pop(queue, count.max(1));
        let now = crate::now_ms();
        let limits = if popped.is_empty() || QueueName::is_system_name(queue) {
            TaskLimits::default()
        } else {
            host.limits.of(task_type, now, self.read())?
        };
        let cluster_wide = host.partitions > 1 && !limits.is_unlimited();
        let mut admitted = Vec::with_capacity(popped.len());
        // With partitions, once the metadata leader refuses one task the rest are not asked
        // about: they go back, and the poll or a free slot brings them out again.
        let mut refused = None;
        for p in popped {
            let admission = match refused {
                Some(refusal) => refusal,
                None if cluster_wide => host.router.permit(task_type, &p.task_id, limits).await,
                None => host.limits.admit(task_type, limits, now),
            };
            if cluster_wide && admission != Admission::Admit {
                refused = Some(admission);
            }
            match admission {
                Admission::Admit => admitted.push(p),
                Admission::Busy => {
                    metrics::counter!(names::TASK_CONCURRENT_EXECUTION_LIMITED, "taskType" => names::task_type_label(task_type))
                        .increment(1);
                    if cluster_wide {
                        host.limits.hold(task_type);
                    }
                    host.queues.put_back(&p.item(queue), None)
                }
                Admission::NotBefore(at) => {
                    metrics::counter!(names::TASK_RATE_LIMITED, "taskType" => names::task_type_label(task_type))
                        .increment(1);
                    host.queues.put_back(&p.item(queue), Some(at))
                }
                Admission::Undecided(at) => host.queues.put_back(&p.item(queue), Some(at)),
            }
        }
        Ok((admitted, limits))
    }

    /// Claims popped tasks for a worker. Answers the tasks handed out; `None` if every claim
    /// was refused (the poll looks again); an error if none was handed out for a reason that
    /// refuses every claim alike (a full disk, lost leadership).
    async fn claim_all(
        &self,
        queue: &str,
        task_type: &str,
        popped: &[Popped],
        limits: TaskLimits,
        worker_id: &Option<String>,
    ) -> Result<Option<Vec<Box<RawValue>>>, Error> {
        let host = self.host();
        let claims = popped.iter().map(|p| self.claim(p, worker_id.clone()));
        let results = futures::future::join_all(claims).await;
        let cluster_wide = host.partitions > 1 && !limits.is_unlimited();
        if !cluster_wide {
            for _ in popped {
                host.limits.settle(task_type, limits);
            }
        }
        let mut tasks = Vec::with_capacity(results.len());
        let mut transient = None;
        for (p, result) in popped.iter().zip(results) {
            if cluster_wide && result.is_err() {
                host.router.return_permit(&p.task_id);
            }
            match result {
                Ok(task) => {
                    let waited = (crate::now_ms() - p.ready_at).max(0) as f64 / 1000.0;
                    metrics::histogram!(names::TASK_QUEUE_WAIT).record(waited);
                    tasks.push(task);
                }
                // Refused: the task moved on (finished, canceled, polled), and its queue entry
                // goes with it; or it is not ready yet by this leader's clock (the clock jumped
                // back since it was queued), and it waits until it is.
                Err(Error::NotFound(_) | Error::Conflict(_) | Error::BadRequest(_) | Error::Invalid(_)) => {
                    if self.task(&p.task_id).is_ok_and(|(wf, t)| {
                        t.status == overture_core::TaskStatus::Scheduled && !wf.header.status.is_terminal()
                    }) {
                        host.queues.put_back(&p.item(queue), None);
                    }
                }
                // Not handed out, and its durable queue row is intact: put it back. A claim that
                // did commit after all removes it again when applied, and a second claim of a
                // task already polled is refused by the decider.
                Err(e) => {
                    // A full disk or lost leadership refuses every claim alike; that is reported
                    // once, where it is detected, not per task.
                    if matches!(e, Error::DiskFull(_) | Error::Unavailable(_)) {
                        tracing::debug!(task_id = %p.task_id, error = %e, "claim refused; re-queued");
                    } else {
                        tracing::warn!(task_id = %p.task_id, error = %e, "claim failed; re-queued");
                    }
                    host.queues.add(&p.item(queue), crate::now_ms());
                    transient = Some(e);
                }
            }
        }
        if !tasks.is_empty() {
            metrics::counter!(names::TASK_POLL, "taskType" => names::task_type_label(task_type))
                .increment(tasks.len() as u64);
            return Ok(Some(tasks));
        }
        match transient {
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}

/// An execution, from `read`.
pub(crate) fn workflow(read: &ReadView, id: &str) -> Result<WorkflowState, Error> {
    read.workflow(id)?.ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {id}")))
}

/// The id of the workflow a task belongs to.
pub(crate) fn task_owner(read: &ReadView, task_id: &str) -> Result<WorkflowId, Error> {
    Ok(read
        .task_owner(task_id)?
        .ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?
        .workflow_id)
}

/// A task and its workflow, from `read`.
pub(crate) fn task(read: &ReadView, task_id: &str) -> Result<(WorkflowState, TaskState), Error> {
    let not_found = || Error::NotFound(format!("Task not found for taskId: {task_id}"));
    let owner = read.task_owner(task_id)?.ok_or_else(not_found)?;
    let workflow = read.workflow(&owner.workflow_id)?.ok_or_else(not_found)?;
    let task = workflow.task(owner.seq).cloned().ok_or_else(not_found)?;
    Ok((workflow, task))
}

/// Turns a start request into the command that starts `workflow_id`: validates it, finds its
/// definition (version absent or 0: the latest) and freezes the task definitions in the
/// execution's snapshot, as Conductor does.
pub(crate) fn prepare_start(
    read: &ReadView,
    request: StartWorkflowRequest,
    workflow_id: WorkflowId,
    parent: Option<(WorkflowId, String)>,
) -> Result<StartWorkflow, Error> {
    let input = request.input.ok_or_else(|| Error::BadRequest("Input payload cannot be null".into()))?;
    if let Some(strategy) = request.idempotency_strategy.as_deref()
        && overture_core::idempotency::Strategy::parse(strategy).is_none()
    {
        return Err(Error::BadRequest(format!(
            "idempotencyStrategy {strategy} is not one of FAIL, RETURN_EXISTING, FAIL_ON_RUNNING"
        )));
    }
    if !(0..=99).contains(&request.priority) {
        return Err(Error::BadRequest(format!("priority: {} should be between 0 and 99", request.priority)));
    }
    let plan = match request.workflow_def {
        Some(mut def) => {
            validate::workflow_def(&def).map_err(Error::Invalid)?;
            fill_task_defs(read, &mut def.tasks)?;
            Arc::new(Plan::new(def))
        }
        None => {
            let name = request.name.filter(|n| !n.trim().is_empty());
            let name = name.ok_or_else(|| Error::BadRequest("Workflow name cannot be null or empty".into()))?;
            let version = request.version.filter(|v| *v > 0);
            let build = |read: &ReadView| -> Result<Option<Plan>, Error> {
                let Some(mut def) = read.workflow_def(&name, version)? else { return Ok(None) };
                fill_task_defs(read, &mut def.tasks)?;
                Ok(Some(Plan::new(def)))
            };
            read.start_plan(&name, version, build)?.ok_or_else(|| {
                let v = version.map_or_else(|| "null".to_owned(), |v| v.to_string());
                Error::NotFound(format!("No such workflow found by name: {name}, version: {v}"))
            })?
        }
    };
    Ok(StartWorkflow {
        workflow_id,
        plan,
        input,
        correlation_id: request.correlation_id,
        priority: request.priority,
        task_to_domain: request.task_to_domain,
        created_by: request.created_by,
        idempotency_key: request.idempotency_key,
        idempotency_strategy: request.idempotency_strategy,
        parent,
        input_stored_at: None,
    })
}

/// Fills in the registered definition of every task, at any depth, that has none embedded.
pub(crate) fn fill_task_defs(read: &ReadView, tasks: &mut [WorkflowTask]) -> Result<(), Error> {
    for task in tasks {
        if task.task_definition.is_none() {
            task.task_definition = read.task_def(&task.name)?;
        }
        for case in task.decision_cases.values_mut() {
            fill_task_defs(read, case)?;
        }
        fill_task_defs(read, &mut task.default_case)?;
        for branch in &mut task.fork_tasks {
            fill_task_defs(read, branch)?;
        }
        fill_task_defs(read, &mut task.loop_over)?;
    }
    Ok(())
}

/// What ended a long poll's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A decision handed it a task (or tried to: its batch failed).
    HandedOff,
    /// A task entered the queue.
    Queue,
    /// The poll's time is up, or leadership ended.
    Done,
}

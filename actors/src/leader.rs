//! Leader-only services, built together when this node passes the readiness barrier and dropped
//! together the moment it stops leading.
//!
//! Becoming leader: attach the apply listener and scan queue and timer rows in one step (apply is
//! held off meanwhile, so no change is missed or seen twice), fill the in-memory queues and timer
//! heap, start the delay and timer loops. Actors start lazily, on their first message.
//!
//! Stepping down: detach the listener, stop every actor and loop, wake every long poll. Anything
//! in flight fails with a retryable error; nothing durable is touched.

use std::sync::Arc;
use std::time::Duration;

use overture_core::command::{ChildEnded, Command};
use overture_core::dsl::StartWorkflowRequest;
use overture_core::rows::{TimerItem, TimerKind};
use overture_core::{Object, TaskResultStatus, TaskUpdate, WorkflowState, WorkflowStatus, render};
use overture_raft::{ApplyListener, Changes, Replica, RowChange};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::actor::{Registry, UpdateOutcome, WorkflowMsg};
use crate::error::Error;
use crate::limits::Limits;
use crate::names;
use crate::queues::{PollTimes, Popped, TaskQueues};
use crate::timers::Timers;

/// How long a caller waits for a workflow actor's answer.
const ACTOR_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything that exists only while this node is the ready leader.
pub(crate) struct LeaderContext {
    pub term: u64,
    pub replica: Replica,
    pub registry: Registry,
    pub queues: Arc<TaskQueues>,
    pub timers: Arc<Timers>,
    pub limits: Arc<Limits>,
    pub polls: PollTimes,
    pub watchers: Arc<Watchers>,
    /// The sandbox processes jq queries run in.
    pub jq: overture_script::Sandbox,
    /// The engine, for follow-ups that act like a client (publishing to event handlers).
    engine: parking_lot::Mutex<Option<crate::engine::WeakEngine>>,
    /// Held while schedules are read and changed or fired, so those never interleave.
    pub schedules: tokio::sync::Mutex<()>,
    stop: watch::Sender<bool>,
    /// Whether this leader holds its lease (a majority acknowledged it recently). Without it, it
    /// takes no request and answers none waiting: another node may be leading meanwhile.
    lease: watch::Sender<bool>,
}

/// Mirrors applied queue and timer rows into memory; counts finished workflows.
struct Listener {
    queues: Arc<TaskQueues>,
    timers: Arc<Timers>,
    limits: Arc<Limits>,
    watchers: Arc<Watchers>,
}

/// Waiters on a workflow's next committed change (synchronous execution).
#[derive(Default)]
pub(crate) struct Watchers {
    waiting: parking_lot::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Notify>>>,
}

/// A watch on one workflow: its notifier is woken whenever the workflow changes. Dropping it
/// stops watching, however the watcher ends (an answer, an error, or a client that went away
/// and dropped the request), so no watch outlives its caller.
pub(crate) struct Watch {
    watchers: Arc<Watchers>,
    workflow_id: String,
    notify: Arc<tokio::sync::Notify>,
}

impl Watch {
    /// The notifier; register on it before reading the workflow's state.
    pub fn notify(&self) -> &tokio::sync::Notify {
        &self.notify
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        metrics::gauge!(names::SYNC_EXECUTIONS_WAITING).decrement(1.0);
        let mut waiting = self.watchers.waiting.lock();
        // Two counts left: this watch's and the map's. Others still watching keep it.
        if waiting.get(&self.workflow_id).is_some_and(|n| Arc::strong_count(n) == 2) {
            waiting.remove(&self.workflow_id);
        }
    }
}

impl Watchers {
    /// Watches `workflow_id` until the returned [`Watch`] is dropped.
    pub fn watch(self: &Arc<Self>, workflow_id: &str) -> Watch {
        let notify = self.waiting.lock().entry(workflow_id.to_owned()).or_default().clone();
        metrics::gauge!(names::SYNC_EXECUTIONS_WAITING).increment(1.0);
        Watch { watchers: self.clone(), workflow_id: workflow_id.to_owned(), notify }
    }

    fn changed(&self, workflow_id: &str) {
        if let Some(n) = self.waiting.lock().get(workflow_id) {
            n.notify_waiters();
        }
    }
}

impl ApplyListener for Listener {
    fn applied(&self, changes: &Changes) {
        let now = crate::now_ms();
        for change in &changes.rows {
            match change {
                RowChange::QueueAdded(q) => self.queues.add(q, now),
                RowChange::QueueRemoved(q) => self.queues.remove(&q.queue, &q.task_id),
                RowChange::TimerAdded(t) => self.timers.add(t.clone()),
                RowChange::TimerRemoved(t) => self.timers.remove(t),
                RowChange::RunningAdded(r) => self.limits.running_added(&r.task_def_name),
                RowChange::RunningRemoved(r) => {
                    self.limits.running_removed(&r.task_def_name);
                    // A slot may have freed up for a task held back by concurrentExecLimit.
                    self.queues.wake_task_type(&r.task_def_name);
                }
            }
        }
        for id in &changes.workflows {
            self.watchers.changed(id);
        }
        for (name, status) in &changes.ended {
            let status_label = status.as_str();
            let name = names::workflow_label(name);
            metrics::counter!(names::WORKFLOW_COMPLETION, "workflowName" => name.clone(), "status" => status_label)
                .increment(1);
            if *status != WorkflowStatus::Completed {
                metrics::counter!(names::WORKFLOW_FAILURE, "workflowName" => name, "status" => status_label)
                    .increment(1);
            }
        }
    }
}

impl LeaderContext {
    /// Builds the services for `term`; workflow actors are passivated after `idle_actor_timeout`
    /// without messages, or when more than `max_live_actors` are live. Fails only if the rebuild
    /// scan fails.
    pub fn start(
        replica: Replica,
        term: u64,
        idle_actor_timeout: Duration,
        max_live_actors: usize,
        jq: overture_script::Sandbox,
    ) -> Result<Arc<LeaderContext>, Error> {
        let queues = Arc::new(TaskQueues::default());
        let timers = Arc::new(Timers::default());
        let limits = Arc::new(Limits::default());
        let watchers = Arc::new(Watchers::default());
        let listener = Arc::new(Listener {
            queues: queues.clone(),
            timers: timers.clone(),
            limits: limits.clone(),
            watchers: watchers.clone(),
        });
        let rows = replica.attach_listener(listener)?;
        let now = crate::now_ms();
        for q in &rows.queue {
            queues.add(q, now);
        }
        let queued = rows.queue.len();
        for t in rows.timers {
            timers.add(t);
        }
        for r in &rows.running {
            limits.running_added(&r.task_def_name);
        }
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(LeaderContext {
            term,
            replica,
            registry: Registry::new(max_live_actors),
            queues,
            timers,
            limits,
            polls: PollTimes::default(),
            watchers,
            jq,
            engine: parking_lot::Mutex::new(None),
            schedules: tokio::sync::Mutex::new(()),
            stop,
            lease: watch::Sender::new(true),
        });
        tokio::spawn(ctx.queues.clone().run_delay_loop(stop_rx.clone()));
        tokio::spawn(ctx.timers.clone().run(Arc::downgrade(&ctx), stop_rx.clone()));
        tokio::spawn(passivation_loop(Arc::downgrade(&ctx), idle_actor_timeout, stop_rx));
        tracing::info!(term, queued, timers = ctx.timers.len(), "leader services started");
        metrics::gauge!(names::LEADER_READY).set(1.0);
        Ok(ctx)
    }

    /// Stops everything. In-flight requests see retryable errors.
    pub fn stop(&self) {
        self.replica.detach_listener();
        let _ = self.stop.send(true);
        self.registry.stop_all();
        self.queues.wake_all();
        metrics::gauge!(names::LEADER_READY).set(0.0);
        tracing::info!(term = self.term, "leader services stopped");
    }

    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Records whether this leader holds its lease; requests waiting on it see a loss at once.
    pub fn set_lease(&self, held: bool) {
        self.lease.send_if_modified(|current| std::mem::replace(current, held) != held);
    }

    /// Whether this leader holds its lease now.
    pub fn holds_lease(&self) -> bool {
        *self.lease.borrow()
    }

    /// Follows the lease, for requests that wait on this leader.
    pub fn lease_watch(&self) -> watch::Receiver<bool> {
        self.lease.subscribe()
    }

    async fn send<T, P: Clone>(
        self: &Arc<Self>,
        workflow_id: &str,
        payload: P,
        wrap: impl Fn(P, tokio::sync::oneshot::Sender<Result<T, Error>>) -> WorkflowMsg,
    ) -> Result<T, Error> {
        self.registry.send(self, workflow_id, payload, wrap, ACTOR_TIMEOUT).await
    }

    pub async fn start_workflow(self: &Arc<Self>, cmd: overture_core::StartWorkflow) -> Result<String, Error> {
        let id = cmd.workflow_id.clone();
        self.send(&id, Box::new(cmd), WorkflowMsg::Start).await
    }

    pub async fn claim(self: &Arc<Self>, popped: &Popped, worker_id: Option<String>) -> Result<Box<RawValue>, Error> {
        self.send(&popped.workflow_id, (popped.task_id.clone(), worker_id), |(task_id, worker_id), reply| {
            WorkflowMsg::Poll { task_id, worker_id, reply }
        })
        .await
    }

    pub async fn update(self: &Arc<Self>, workflow_id: &str, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        self.send(workflow_id, Box::new(update), WorkflowMsg::Update).await
    }

    pub async fn update_by_ref(
        self: &Arc<Self>,
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

    pub async fn terminate(self: &Arc<Self>, workflow_id: &str, reason: Option<String>) -> Result<(), Error> {
        self.send(workflow_id, reason, |reason, reply| WorkflowMsg::Terminate { reason, reply }).await
    }

    pub async fn add_log(self: &Arc<Self>, workflow_id: &str, task_id: String, log: String) -> Result<(), Error> {
        self.send(workflow_id, (task_id, log), |(task_id, log), reply| WorkflowMsg::AddLog { task_id, log, reply })
            .await
    }

    /// Sends any command to a workflow; answers how many events it produced.
    pub async fn command(self: &Arc<Self>, workflow_id: &str, cmd: Command) -> Result<usize, Error> {
        self.send(workflow_id, Box::new(cmd), WorkflowMsg::Command).await
    }

    /// Fires a durable timer: a deadline goes to its workflow's decider; a follow-up that
    /// involves another workflow (telling a parent, starting a failure workflow, terminating a
    /// child) is carried out here, then acknowledged to the workflow, which removes the timer.
    /// Each step is idempotent, so a follow-up cut short by a failover is simply done again.
    pub async fn timer(self: &Arc<Self>, timer: &TimerItem) -> Result<bool, Error> {
        let (kind, seq, fire_at) = (timer.kind, timer.seq, timer.fire_at);
        let id = timer.workflow_id.as_str();
        match kind {
            TimerKind::NotifyParent => self.notify_parent(id).await.map(|_| true),
            TimerKind::StartFailureWorkflow => self.start_failure_workflow(id).await.map(|_| true),
            TimerKind::CancelChild => self.cancel_child(id, seq).await.map(|_| true),
            TimerKind::PublishStatus => self.publish_status(id).await.map(|_| true),
            _ => self.send(id, (), move |(), reply| WorkflowMsg::Timer { kind, seq, fire_at, reply }).await,
        }
    }

    pub fn set_engine(&self, engine: crate::engine::WeakEngine) {
        *self.engine.lock() = Some(engine);
    }

    /// Publishes an ended workflow's summary to Conductor's status listener queues:
    /// `conductor:_callbackSuccessQueue` (COMPLETED) or `conductor:_callbackFailureQueue`, and
    /// `conductor:_callbackFinalizeQueue`, where event handlers can pick it up.
    async fn publish_status(self: &Arc<Self>, workflow_id: &str) -> Result<(), Error> {
        let wf = self.load(workflow_id)?;
        let engine = self.engine.lock().clone().and_then(|e| e.upgrade());
        let Some(engine) = engine else {
            return Err(Error::Unavailable("the engine is shutting down".into()));
        };
        let summary = crate::events::workflow_summary(&wf);
        let outcome = if wf.header.status == WorkflowStatus::Completed { "Success" } else { "Failure" };
        let message_id = format!("{workflow_id}:{}", wf.header.status.as_str());
        for queue in [format!("_callback{outcome}Queue"), "_callbackFinalizeQueue".to_owned()] {
            crate::events::deliver(&engine, &format!("conductor:{queue}"), &message_id, &summary).await;
        }
        self.command(workflow_id, Command::StatusPublished).await.map(|_| ())
    }

    fn load(&self, workflow_id: &str) -> Result<WorkflowState, Error> {
        self.replica
            .read()
            .workflow(workflow_id)?
            .ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {workflow_id}")))
    }

    async fn notify_parent(self: &Arc<Self>, child_id: &str) -> Result<(), Error> {
        let child = self.load(child_id)?;
        let h = &child.header;
        if let (Some(parent), Some(task_id)) = (&h.parent_workflow_id, &h.parent_workflow_task_id) {
            let ended = ChildEnded {
                task_id: task_id.clone(),
                child_id: child_id.to_owned(),
                status: h.status,
                output: h.output.clone(),
                reason: h.reason_for_incompletion.clone(),
            };
            match self.command(parent, Command::ChildEnded(Box::new(ended))).await {
                Ok(_) | Err(Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.command(child_id, Command::ParentNotified).await.map(|_| ())
    }

    async fn start_failure_workflow(self: &Arc<Self>, workflow_id: &str) -> Result<(), Error> {
        let failed = self.load(workflow_id)?;
        let started = match failure_workflow_request(&failed) {
            Some(request) => {
                let id = derived_id("failure-workflow", workflow_id);
                match crate::engine::prepare_start(self.replica.read(), request, id.clone(), None) {
                    Ok(cmd) => match self.start_workflow(cmd).await {
                        Ok(_) | Err(Error::Conflict(_)) => Ok(id),
                        Err(e @ Error::Unavailable(_)) => return Err(e),
                        Err(e) => Err(e.to_string()),
                    },
                    Err(e) => Err(e.to_string()),
                }
            }
            None => Err("failureWorkflow names no workflow".to_owned()),
        };
        let (workflow_id_started, error) = match started {
            Ok(id) => (Some(id), None),
            Err(e) => {
                tracing::warn!(workflow_id, error = %e, "cannot start the failure workflow");
                (None, Some(e))
            }
        };
        let cmd = Command::FailureWorkflowStarted { workflow_id: workflow_id_started, error };
        self.command(workflow_id, cmd).await.map(|_| ())
    }

    async fn cancel_child(self: &Arc<Self>, workflow_id: &str, seq: u32) -> Result<(), Error> {
        let parent = self.load(workflow_id)?;
        if let Some(child) = parent.task(seq).and_then(|t| t.sub_workflow_id.clone()) {
            let reason = Some(format!("Parent workflow {workflow_id} has been terminated"));
            match self.terminate(&child, reason).await {
                // Already ended (a COMPLETED child cannot be terminated) or gone: nothing to do.
                Ok(()) | Err(Error::Conflict(_) | Error::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.command(workflow_id, Command::ChildCanceled { seq }).await.map(|_| ())
    }
}

/// Periodically passivates idle actors, and forgets what clients made the leader remember but
/// no longer use: queues with no tasks and no one polling, and poll records idle for a day.
async fn passivation_loop(ctx: std::sync::Weak<LeaderContext>, idle: Duration, mut stop: watch::Receiver<bool>) {
    let period = (idle / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let Some(ctx) = ctx.upgrade() else { return };
        let stopped = ctx.registry.passivate_idle(idle);
        if stopped > 0 {
            tracing::debug!(stopped, "passivated idle workflow actors");
        }
        let queues = ctx.queues.forget_unused();
        let polls = ctx.polls.forget_before(crate::now_ms() - crate::queues::POLL_RECORD_TTL_MS);
        if queues + polls > 0 {
            tracing::debug!(queues, polls, "forgot unused queues and poll records");
        }
    }
}

/// An id derived from what an effect is for, so doing the effect twice (after a failover) finds
/// the first one instead of making a second.
pub(crate) fn derived_id(purpose: &str, key: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("overture:{purpose}:{key}").as_bytes()).to_string()
}

/// The start request of a failed workflow's `failureWorkflow`: its input plus `workflowId`,
/// `reason`, `failureStatus`, `failureTaskId` and the whole `failedWorkflow`; the same
/// correlation id and task domains. `$workflow.input.x` or `${workflow.input.x}` names are
/// resolved against the failed workflow.
fn failure_workflow_request(failed: &WorkflowState) -> Option<StartWorkflowRequest> {
    let def = &failed.plan.def;
    let raw = def.failure_workflow.as_deref()?.trim();
    let name = if let Some(path) = raw.strip_prefix('$') {
        let expression = if path.starts_with('{') { raw.to_owned() } else { format!("${{{path}}}") };
        let scope = overture_core::expr::Scope { state: failed, task_id: None };
        match overture_core::expr::resolve_value(&serde_json::Value::String(expression), &scope) {
            Ok(serde_json::Value::String(s)) => s,
            _ => return None,
        }
    } else {
        raw.to_owned()
    };
    if name.is_empty() {
        return None;
    }
    let h = &failed.header;
    let mut input = h.input.clone();
    input.insert("workflowId".into(), h.workflow_id.clone().into());
    input.insert("reason".into(), h.reason_for_incompletion.clone().into());
    input.insert("failureStatus".into(), h.status.as_str().into());
    let failed_task = failed.tasks.iter().rev().find(|t| !t.status.is_successful());
    if let Some(t) = failed_task {
        input.insert("failureTaskId".into(), t.task_id.clone().into());
    }
    let view = serde_json::to_value(render::workflow(failed, true, crate::now_ms())).unwrap_or_default();
    input.insert("failedWorkflow".into(), view);
    Some(StartWorkflowRequest {
        name: Some(name),
        version: def.failure_workflow_version,
        correlation_id: h.correlation_id.clone(),
        input: Some(input),
        task_to_domain: h.task_to_domain.clone(),
        workflow_def: None,
        priority: h.priority,
        created_by: None,
        idempotency_key: None,
        idempotency_strategy: None,
        external_input_payload_storage_path: None,
    })
}

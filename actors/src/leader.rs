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

use overture_core::rows::TimerItem;
use overture_core::{Object, TaskResultStatus, TaskUpdate, WorkflowStatus};
use overture_raft::{ApplyListener, Changes, Replica, RowChange};
use serde_json::value::RawValue;
use tokio::sync::watch;

use crate::actor::{Registry, UpdateOutcome, WorkflowMsg};
use crate::error::Error;
use crate::names;
use crate::queues::{Popped, TaskQueues};
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
    stop: watch::Sender<bool>,
}

/// Mirrors applied queue and timer rows into memory; counts finished workflows.
struct Listener {
    queues: Arc<TaskQueues>,
    timers: Arc<Timers>,
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
            }
        }
        for (name, status) in &changes.ended {
            let status_label = status.as_str();
            metrics::counter!(names::WORKFLOW_COMPLETION, "workflowName" => name.clone(), "status" => status_label)
                .increment(1);
            if *status != WorkflowStatus::Completed {
                metrics::counter!(names::WORKFLOW_FAILURE, "workflowName" => name.clone(), "status" => status_label)
                    .increment(1);
            }
        }
    }
}

impl LeaderContext {
    /// Builds the services for `term`. Fails only if the rebuild scan fails.
    pub fn start(replica: Replica, term: u64, idle_actor_timeout: Duration) -> Result<Arc<LeaderContext>, Error> {
        let queues = Arc::new(TaskQueues::default());
        let timers = Arc::new(Timers::default());
        let listener = Arc::new(Listener { queues: queues.clone(), timers: timers.clone() });
        let (queue_rows, timer_rows) = replica.attach_listener(listener)?;
        let now = crate::now_ms();
        for q in &queue_rows {
            queues.add(q, now);
        }
        for t in timer_rows {
            timers.add(t);
        }
        let (stop, stop_rx) = watch::channel(false);
        let ctx = Arc::new(LeaderContext { term, replica, registry: Registry::default(), queues, timers, stop });
        tokio::spawn(ctx.queues.clone().run_delay_loop(stop_rx.clone()));
        tokio::spawn(ctx.timers.clone().run(Arc::downgrade(&ctx), stop_rx.clone()));
        tokio::spawn(passivation_loop(Arc::downgrade(&ctx), idle_actor_timeout, stop_rx));
        tracing::info!(term, queued = queue_rows.len(), timers = ctx.timers.len(), "leader services started");
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

    async fn send<T, P: Clone>(
        self: &Arc<Self>,
        workflow_id: &str,
        payload: P,
        wrap: impl Fn(P, tokio::sync::oneshot::Sender<Result<T, Error>>) -> WorkflowMsg,
    ) -> Result<T, Error> {
        self.registry.send(self, workflow_id, payload, wrap, ACTOR_TIMEOUT).await
    }

    pub async fn start_workflow(self: &Arc<Self>, cmd: overture_core::StartWorkflow) -> Result<(), Error> {
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

    pub async fn timer(self: &Arc<Self>, timer: &TimerItem) -> Result<bool, Error> {
        let (kind, seq, fire_at) = (timer.kind, timer.seq, timer.fire_at);
        self.send(&timer.workflow_id, (), move |(), reply| WorkflowMsg::Timer { kind, seq, fire_at, reply }).await
    }
}

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
    }
}

//! The leader's services, built in one place when this node passes the readiness barrier and
//! dropped in one place the moment it stops leading.
//!
//! Becoming leader ([`Leader::start`]): attach the apply listener and scan queue and timer rows
//! in one step (apply is held off meanwhile, so no change is missed or seen twice), fill the
//! in-memory queues, limits and timer heap, then start each service's loop: the queues' delay
//! loop, the timers, actor passivation, retention, the scheduler and the executor. Actors start
//! lazily, on their first message.
//!
//! Each service gets only the handle it needs: the executor, the timers' follow-ups and event
//! delivery act on workflows through [`Workflows`]; retention proposes through the replica; the
//! scheduler shares the [`Host`]. None of them sees the engine.
//!
//! Stepping down ([`Leader::stop`]): detach the listener, end the term (every loop returns), stop
//! every actor, wake every long poll. Anything in flight fails with a retryable error; nothing
//! durable is touched.

use std::sync::Arc;
use std::time::Duration;

use overture_core::WorkflowStatus;
use overture_raft::{ApplyListener, Changes, Replica, RowChange};
use tokio::sync::watch;

use crate::actor::Registry;
use crate::error::Error;
use crate::host::{Host, Watchers};
use crate::limits::Limits;
use crate::names;
use crate::options::EngineOptions;
use crate::permits::Permits;
use crate::queues::TaskQueues;
use crate::scheduler::Scheduler;
use crate::timers::Timers;
use crate::workflows::Workflows;

/// Everything that exists only while this node is the ready leader of a group.
pub(crate) struct Leader {
    /// What the services share, for this term.
    pub host: Arc<Host>,
    /// Acts on workflows through their actors.
    pub workflows: Workflows,
    /// Changes to schedules, serialized with their fires (on the group that holds schedules).
    pub scheduler: Option<Arc<Scheduler>>,
    /// The cluster's count of limited tasks (on the metadata group of a partitioned cluster).
    pub permits: Option<Arc<Permits>>,
    timers: Arc<Timers>,
}

/// What a group holds, and so which services its leader runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The one group of a cluster without partitions: everything.
    Everything,
    /// The metadata group of a partitioned cluster: definitions, schedules, event handlers. Its
    /// leader fires schedules and consumes event queues; the workflows they start live in the
    /// partitions.
    Metadata,
    /// A partition: workflows, their tasks, queues and timers.
    Partition,
}

impl Role {
    /// The role of `group` in a cluster of `partitions` partitions.
    pub fn of(group: overture_raft::GroupId, partitions: u16) -> Role {
        match (group, partitions) {
            (_, 0 | 1) => Role::Everything,
            (0, _) => Role::Metadata,
            _ => Role::Partition,
        }
    }

    fn runs_metadata_services(self) -> bool {
        self != Role::Partition
    }
}

/// Mirrors applied queue and timer rows into memory; counts finished workflows.
struct Listener {
    queues: Arc<TaskQueues>,
    timers: Arc<Timers>,
    limits: Arc<Limits>,
    watchers: Arc<Watchers>,
    /// With partitions: returns the permit of a limited task that ends to the metadata leader.
    router: crate::router::Router,
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
                    let held = self.limits.running_removed(&r.task_def_name);
                    // A slot may have freed up for a task held back by concurrentExecLimit.
                    self.queues.wake_task_type(&r.task_def_name, held);
                    if self.router.partitions() > 1 && self.limits.known_concurrency_limited(&r.task_def_name) {
                        self.router.return_permit(&r.task_id);
                    }
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

impl Leader {
    /// Builds and starts every leader service for `term`. Fails only if the rebuild scan fails.
    pub fn start(
        replica: Replica,
        term: u64,
        lease: bool,
        options: &EngineOptions,
        role: Role,
        router: crate::router::Router,
    ) -> Result<Leader, Error> {
        let queues = Arc::new(TaskQueues::default());
        let timers = Arc::new(Timers::default());
        let limits = Arc::new(Limits::default());
        let watchers = Arc::new(Watchers::default());
        let listener = Arc::new(Listener {
            queues: queues.clone(),
            timers: timers.clone(),
            limits: limits.clone(),
            watchers: watchers.clone(),
            router: router.clone(),
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
        let host = Arc::new(Host::new(
            term,
            replica.clone(),
            router,
            queues,
            limits,
            watchers,
            options.jq.clone(),
            options.payloads.clone(),
        ));
        host.set_lease(lease);
        let workflows = Workflows::new(Registry::new(host.clone(), options.max_live_actors));
        let stop = host.stopped();

        tokio::spawn(host.queues.clone().run_delay_loop(stop.clone()));
        let (for_timers, brokers) = (workflows.clone(), options.brokers.clone());
        let fire = move |timer| {
            let (workflows, brokers) = (for_timers.clone(), brokers.clone());
            async move { crate::followups::fire(&workflows, &brokers, &timer).await }
        };
        tokio::spawn(timers.clone().run(fire, stop.clone()));
        tokio::spawn(passivation_loop(workflows.clone(), options.idle_actor_timeout, stop.clone()));
        crate::retention::spawn(replica, options.retention, stop.clone());
        let metadata = role.runs_metadata_services();
        let scheduler = metadata.then(|| crate::scheduler::spawn(host.clone(), options.schedule_grace, stop.clone()));
        let http = options.http_tls.client().unwrap_or_else(|e| {
            // The node checks its settings at start; this is a settings object made elsewhere.
            tracing::error!(error = %e, "HTTP tasks use the system's certificate authorities only");
            overture_raft::http::client().build().unwrap_or_default()
        });
        crate::executor::spawn(workflows.clone(), http, options.brokers.clone(), options.max_task_output_bytes, &stop);
        if metadata {
            tokio::spawn(crate::consumers::run(workflows.clone(), options.brokers.clone(), stop.clone()));
        }

        let permits = (role == Role::Metadata).then(|| Arc::new(Permits::new(host.partitions, crate::now_ms())));
        let group = host.group;
        tracing::info!(group, term, queued, timers = timers.len(), "leader services started");
        if group == 0 {
            metrics::gauge!(names::LEADER_READY).set(1.0);
        }
        Ok(Leader { host, workflows, scheduler, permits, timers })
    }

    /// The Raft term this leadership is in.
    pub fn term(&self) -> u64 {
        self.host.term
    }

    /// Stops everything. In-flight requests see retryable errors.
    pub fn stop(&self) {
        self.host.replica.detach_listener();
        self.host.stop();
        self.workflows.stop_all();
        self.host.queues.wake_all();
        if self.host.group == 0 {
            metrics::gauge!(names::LEADER_READY).set(0.0);
        }
        tracing::info!(
            group = self.host.group,
            term = self.host.term,
            timers = self.timers.len(),
            "leader services stopped"
        );
    }
}

/// Periodically passivates idle actors, and forgets what clients made the leader remember but
/// no longer use: queues with no tasks and no one polling, and poll records idle for a day.
async fn passivation_loop(workflows: Workflows, idle: Duration, mut stop: watch::Receiver<bool>) {
    let period = (idle / 2).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        let stopped = workflows.passivate_idle(idle);
        if stopped > 0 {
            tracing::debug!(stopped, "passivated idle workflow actors");
        }
        let host = workflows.host();
        let queues = host.queues.forget_unused();
        let polls = host.polls.forget_before(crate::now_ms() - crate::queues::POLL_RECORD_TTL_MS);
        if queues + polls > 0 {
            tracing::debug!(queues, polls, "forgot unused queues and poll records");
        }
    }
}

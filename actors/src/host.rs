//! What a leader's workflow actors and services share for one term: the replica they propose
//! to, the in-memory queues, limits and poll times that the apply listener keeps current, the
//! jq sandbox, the watchers of synchronous executions, and whether the term still serves.
//!
//! A [`Host`] belongs to one term. Once the term ends ([`Host::serving`] fails), anything that
//! still holds it (an actor finishing a message, a follow-up in flight) gets a retryable error
//! instead of acting for a leader that is gone.

use std::sync::Arc;

use overture_core::WorkflowId;
use overture_core::command::IdSource;
use overture_raft::Replica;
use tokio::sync::{Notify, watch};

use crate::error::Error;
use crate::limits::Limits;
use crate::names;
use crate::queues::{PollTimes, TaskQueues};

/// The state one leader term's actors and services share.
pub(crate) struct Host {
    /// The Raft term this leadership is in.
    pub term: u64,
    /// The Raft group this node leads: the metadata group 0, or a partition.
    pub group: overture_raft::GroupId,
    /// The number of partitions of the cluster.
    pub partitions: u16,
    /// Acts on workflows of other groups, wherever they are led.
    pub router: crate::router::Router,
    /// Where proposals go and reads come from.
    pub replica: Replica,
    /// Worker and executor queues, mirrored from the applied queue rows.
    pub queues: Arc<TaskQueues>,
    /// Concurrency and rate limits of task definitions.
    pub limits: Arc<Limits>,
    /// When workers last polled each (domain, task type).
    pub polls: PollTimes,
    /// Waiters on workflows' next committed change.
    pub watchers: Arc<Watchers>,
    /// The sandbox processes jq queries run in.
    pub jq: overture_script::Sandbox,
    /// When payloads go to external payload storage.
    pub payloads: crate::payloads::PayloadOptions,
    stop: watch::Sender<bool>,
    /// Whether this leader holds its lease (a majority acknowledged it recently). Without it, it
    /// takes no request and answers none waiting: another node may be leading meanwhile.
    lease: watch::Sender<bool>,
}

impl Host {
    /// A host for `term`, serving until [`Host::stop`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        term: u64,
        replica: Replica,
        router: crate::router::Router,
        queues: Arc<TaskQueues>,
        limits: Arc<Limits>,
        watchers: Arc<Watchers>,
        jq: overture_script::Sandbox,
        payloads: crate::payloads::PayloadOptions,
    ) -> Host {
        Host {
            term,
            group: replica.group(),
            partitions: router.partitions(),
            router,
            replica,
            queues,
            limits,
            polls: PollTimes::default(),
            watchers,
            jq,
            payloads,
            stop: watch::Sender::new(false),
            lease: watch::Sender::new(true),
        }
    }

    /// Where the decider's new task ids come from: ids that land in this group.
    pub fn ids(&self) -> PartitionIds {
        PartitionIds { group: self.group, partitions: self.partitions }
    }

    /// An id derived from `key` for `purpose` that lands in this group.
    pub fn derived_id(&self, purpose: &str, key: &str) -> String {
        crate::derived_id_in(purpose, key, self.group, self.partitions)
    }

    /// The decider's environment on this leader.
    pub fn env(&self) -> crate::env::LeaderEnv<'_> {
        crate::env::LeaderEnv {
            read: self.replica.read(),
            polls: &self.polls,
            jq: &self.jq,
            max_resolved: self.payloads.max_resolved(),
        }
    }

    /// Ok while this term's leader serves: not stopped, and holding its lease.
    pub fn serving(&self) -> Result<(), Error> {
        if *self.stop.borrow() {
            return Err(Error::Unavailable("this node stopped leading; retry".into()));
        }
        if !self.holds_lease() {
            return Err(Error::Unavailable(crate::error::LEASE_LOST.into()));
        }
        Ok(())
    }

    /// Whether the term ended (this node stopped leading); a lost lease alone does not end it.
    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Ends the term: every loop watching [`Host::stopped`] returns.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Follows whether the term ended, for loops that run while it lasts.
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
}

/// New task ids: see [`crate::new_id_in`]; they land in their workflow's group.
pub(crate) struct PartitionIds {
    pub group: overture_raft::GroupId,
    pub partitions: u16,
}
impl IdSource for PartitionIds {
    fn next_id(&mut self) -> String {
        crate::new_id_in(self.group, self.partitions)
    }
}

/// Waiters on a workflow's next committed change (synchronous execution).
#[derive(Default)]
pub(crate) struct Watchers {
    waiting: parking_lot::Mutex<std::collections::HashMap<WorkflowId, Arc<Notify>>>,
}

/// A watch on one workflow: its notifier is woken whenever the workflow changes. Dropping it
/// stops watching, however the watcher ends (an answer, an error, or a client that went away
/// and dropped the request), so no watch outlives its caller.
pub(crate) struct Watch {
    watchers: Arc<Watchers>,
    workflow_id: WorkflowId,
    notify: Arc<Notify>,
}

impl Watch {
    /// The notifier; register on it before reading the workflow's state.
    pub fn notify(&self) -> &Notify {
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
        let notify = self.waiting.lock().entry(workflow_id.into()).or_default().clone();
        metrics::gauge!(names::SYNC_EXECUTIONS_WAITING).increment(1.0);
        Watch { watchers: self.clone(), workflow_id: workflow_id.into(), notify }
    }

    /// Wakes whoever watches `workflow_id`.
    pub fn changed(&self, workflow_id: &str) {
        if let Some(n) = self.waiting.lock().get(workflow_id) {
            n.notify_waiters();
        }
    }
}

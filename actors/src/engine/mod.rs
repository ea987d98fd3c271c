//! The engine: what the API layer calls. It validates, routes each request to the right place
//! (workflow actor, queues, Raft, or the local read view) and maps outcomes to [`Error`]s.
//!
//! Writes need this node to be the ready leader; otherwise they fail with
//! [`Error::Unavailable`], which the API turns into a retryable 503. Reads are served from the
//! local replica on any node.

use std::sync::Arc;

use overture_core::TaskType;
use overture_raft::membership::MembershipChange;
use overture_raft::replica::ClusterStatus;
use overture_raft::rpc::RpcServer;
use overture_raft::{Leadership, ReadView, Replica, Request, Response};
use parking_lot::{Mutex, RwLock};

use crate::error::Error;
use crate::leader::Leader;
use crate::options::EngineOptions;

mod definitions;
mod executions;
pub use executions::SyncRun;
mod schedules;
mod testing;
pub use testing::{TaskMock, WorkflowTestRequest};
mod tasks;

/// The engine handle: cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// The node's Raft groups; workflows run in the metadata group's replica today.
    groups: overture_raft::Groups,
    leader: RwLock<Option<Arc<Leader>>>,
    options: EngineOptions,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The last poll of one queue (Conductor's `PollData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    /// The task type polled.
    pub task_type: TaskType,
    /// The task domain the worker polled with (`domain`); `None` for the domain-less queue.
    pub domain: Option<String>,
    /// The worker that polled last.
    pub worker_id: Option<String>,
    /// Epoch millis.
    pub last_poll_time: i64,
}

impl Engine {
    /// Starts the engine on a replica: it follows Raft leadership from now on.
    pub fn start(replica: Replica, options: EngineOptions) -> Engine {
        Engine::start_groups(overture_raft::Groups::single(replica), options)
    }

    /// Starts the engine on a node's Raft groups: it follows the metadata group's leadership
    /// from now on.
    pub fn start_groups(groups: overture_raft::Groups, options: EngineOptions) -> Engine {
        let engine =
            Engine { inner: Arc::new(Inner { groups, leader: RwLock::new(None), options, watcher: Mutex::new(None) }) };
        let watcher = tokio::spawn(engine.clone().follow_leadership());
        *engine.inner.watcher.lock() = Some(watcher);
        engine
    }

    /// Starts and stops leader services as leadership comes and goes.
    async fn follow_leadership(self) {
        let mut watch = self.replica().leadership_watch();
        loop {
            let now = watch.current();
            let current = self.inner.leader.read().clone();
            match (now.ready, current) {
                (true, Some(leader)) if leader.term() == now.term => leader.host.set_lease(now.lease),
                (true, current) => {
                    if let Some(old) = current {
                        self.step_down(&old);
                    }
                    let replica = self.replica().clone();
                    match Leader::start(replica, now.term, now.lease, &self.inner.options) {
                        Ok(leader) => *self.inner.leader.write() = Some(Arc::new(leader)),
                        Err(e) => tracing::error!(error = %e, "cannot start leader services"),
                    }
                }
                (false, Some(old)) => self.step_down(&old),
                (false, None) => {}
            }
            if !watch.changed().await {
                break;
            }
        }
    }

    fn step_down(&self, leader: &Arc<Leader>) {
        *self.inner.leader.write() = None;
        leader.stop();
    }

    /// Stops leader services and Raft. Reads keep working on what is stored.
    pub async fn shutdown(&self) {
        if let Some(w) = self.inner.watcher.lock().take() {
            w.abort();
        }
        let current = self.inner.leader.read().clone();
        if let Some(ctx) = current {
            self.step_down(&ctx);
        }
        self.inner.groups.shutdown().await;
    }

    /// The replica under the engine.
    pub fn replica(&self) -> &Replica {
        self.inner.groups.metadata()
    }

    fn read(&self) -> &ReadView {
        self.replica().read()
    }

    /// Stores a payload in external payload storage (on the leader).
    pub async fn store_payload(&self, path: &str, bytes: &[u8]) -> Result<(), Error> {
        let leader = self.leader()?;
        crate::payloads::store(&leader.host.payloads.storage, self.replica(), path, bytes).await
    }

    /// The payload stored at `path` in external payload storage, as this node has it.
    pub async fn payload(&self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        crate::payloads::fetch(&self.inner.options.payloads.storage, self.read(), path).await
    }

    /// The payload stored at `path`, as the JSON object a task's output or a workflow's input is.
    pub async fn payload_object(&self, path: &str) -> Result<overture_core::Object, Error> {
        crate::payloads::read_object(&self.inner.options.payloads.storage, self.read(), path).await
    }

    /// Where payloads are stored.
    pub fn payload_storage(&self) -> &crate::payloads::PayloadStorage {
        &self.inner.options.payloads.storage
    }

    /// Where this node stands in its group.
    pub fn leadership(&self) -> Leadership {
        self.replica().leadership()
    }

    /// This node can serve writes now: it is the ready leader and holds its lease.
    pub fn is_ready(&self) -> bool {
        self.inner.leader.read().as_ref().is_some_and(|leader| leader.host.holds_lease())
    }

    /// Why this node cannot serve writes now, as the error a request gets; `None` if it can.
    pub fn not_serving(&self) -> Option<Error> {
        self.leader().err()
    }

    fn leader(&self) -> Result<Arc<Leader>, Error> {
        if let Some(leader) = self.inner.leader.read().clone() {
            leader.host.serving()?;
            return Ok(leader);
        }
        let l = self.leadership();
        Err(Error::Unavailable(match (l.is_leader, l.leader) {
            (true, _) => "this node was just elected leader and is catching up; retry shortly".into(),
            (false, Some(id)) if id != self.replica().node_id() => {
                format!("this node is not the leader; node {id} is")
            }
            _ => "no leader is elected yet; retry shortly".into(),
        }))
    }

    async fn propose(&self, request: Request) -> Result<(), Error> {
        self.leader()?;
        match self.replica().propose(request).await? {
            Response::Ok | Response::Applied { .. } | Response::Existing { .. } | Response::Purged { .. } => Ok(()),
            Response::NotFound(m) => Err(Error::NotFound(m)),
            Response::Conflict(m) => Err(Error::Conflict(m)),
            Response::RevisionConflict { current } => Err(Error::Conflict(format!("conflicting revision {current}"))),
            Response::Many(_) => Err(Error::Internal("a single request was answered with many responses".into())),
            Response::Rejected(m) => Err(Error::BadRequest(m)),
        }
    }

    // ---- cluster ----

    /// Where the group stands, as this node sees it.
    pub fn cluster_status(&self) -> ClusterStatus {
        self.replica().status()
    }

    /// The client address of the current leader, if one is known and it is not this node.
    pub fn leader_address(&self) -> Option<String> {
        let leader = self.leadership().leader?;
        (leader != self.replica().node_id()).then(|| self.replica().node_addr(leader)).flatten()
    }

    /// Where each of this node's Raft groups stands.
    pub fn group_status(&self) -> Vec<overture_raft::groups::GroupStatus> {
        self.inner.groups.status()
    }

    /// The number of partitions: 1 when the metadata group holds everything.
    pub fn partitions(&self) -> u16 {
        self.inner.groups.partitions()
    }

    /// Adds a learner (a non-voting member) to every group and waits until it has caught up.
    pub async fn add_learner(&self, id: u64, address: String) -> Result<(), Error> {
        self.change_membership(MembershipChange::AddLearner { id, address }).await
    }

    /// Makes a learner a voter in every group.
    pub async fn promote(&self, id: u64) -> Result<(), Error> {
        self.change_membership(MembershipChange::Promote { id }).await
    }

    /// Removes a member from every group.
    pub async fn remove_member(&self, id: u64) -> Result<(), Error> {
        self.change_membership(MembershipChange::Remove { id }).await
    }

    async fn change_membership(&self, change: MembershipChange) -> Result<(), Error> {
        self.leader()?;
        Ok(self.inner.groups.change_membership(change).await?)
    }

    /// Waits until local reads reflect every write committed before the call (leader only).
    pub async fn ensure_linearizable(&self) -> Result<(), Error> {
        self.leader()?;
        Ok(self.replica().ensure_linearizable().await?)
    }

    /// A digest of the state machine and the applied index it was taken at.
    pub async fn digest(&self) -> Result<(u64, String), Error> {
        let replica = self.replica().clone();
        tokio::task::spawn_blocking(move || replica.digest())
            .await
            .map_err(|e| Error::Internal(format!("digest task: {e}")))?
            .map_err(Error::from)
    }

    /// The server half of Raft RPC.
    pub fn rpc(&self) -> &RpcServer {
        self.replica().rpc()
    }

    /// The answer to a peer asking how many Raft groups this node runs.
    pub fn group_count_answer(&self) -> Vec<u8> {
        self.inner.groups.count_answer()
    }

    /// The server half of Raft RPC for `group`, if this node is in that group.
    pub fn rpc_for(&self, group: overture_raft::GroupId) -> Option<&RpcServer> {
        self.inner.groups.get(group).map(Replica::rpc)
    }
}

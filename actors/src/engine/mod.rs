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

use overture_raft::GroupId;

use crate::error::Error;
use crate::leader::{Leader, Role};
use crate::options::EngineOptions;

mod backups;
mod definitions;
mod executions;
pub use executions::SyncRun;
mod permits;
mod polls;
mod read_index;
mod ready;
mod remote;
mod schedules;
mod testing;
pub use testing::{TaskMock, WorkflowTestRequest};
mod tasks;

/// The engine handle: cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The node's Raft groups: the metadata group 0, and with partitions one group per
    /// partition, which holds the workflows whose ids hash to it ([`overture_raft::partition_of`]).
    pub(crate) groups: overture_raft::Groups,
    /// The leader services of each group this node leads, by group.
    leaders: Vec<RwLock<Option<Arc<Leader>>>>,
    options: EngineOptions,
    watchers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Turns starts over the partitions this node leads.
    next_start: std::sync::atomic::AtomicUsize,
    /// When another node last had nothing for a queue, by (node, queue): see `polls.rs`.
    remote_empty: Mutex<std::collections::HashMap<(u64, String), std::time::Instant>>,
    /// Which nodes to tell when a task becomes ready here, and this node's waiting long polls:
    /// see `ready.rs`.
    ready: Arc<ready::ReadyNotices>,
    /// With partitions: wakes the report of limited tasks to the metadata leader (`permits.rs`).
    report_now: Arc<tokio::sync::Notify>,
    /// Permits to return with the next report: their tasks ended here, or their hand-offs did
    /// not happen.
    permits_returned: Mutex<Vec<String>>,
}

/// Who leads a group, as this node knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupLeader {
    /// This node.
    Here,
    /// Another node.
    Elsewhere {
        /// The group.
        group: GroupId,
        /// The node that leads it.
        node: u64,
        /// That node's client address.
        address: String,
    },
    /// No node this node knows of and can reach (cut off, or mid-election): nobody here can
    /// say what the group holds.
    Unknown,
}

/// The last poll of one queue (Conductor's `PollData`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
        let leaders = groups.all().iter().map(|_| RwLock::new(None)).collect();
        let (ready, notices) = ready::ReadyNotices::new();
        let engine = Engine {
            inner: Arc::new(Inner {
                groups,
                leaders,
                options,
                watchers: Mutex::new(Vec::new()),
                next_start: Default::default(),
                remote_empty: Default::default(),
                ready,
                report_now: Default::default(),
                permits_returned: Default::default(),
            }),
        };
        tokio::spawn(Engine::send_ready_notices(Arc::downgrade(&engine.inner), notices));
        let mut watchers: Vec<_> = (0..engine.inner.leaders.len() as GroupId)
            .map(|group| tokio::spawn(engine.clone().follow_leadership(group)))
            .collect();
        if engine.partitions() > 1 {
            let report = permits::report_loop(Arc::downgrade(&engine.inner), engine.inner.report_now.clone());
            watchers.push(tokio::spawn(report));
        }
        *engine.inner.watchers.lock() = watchers;
        engine
    }

    /// Starts and stops a group's leader services as its leadership comes and goes.
    async fn follow_leadership(self, group: GroupId) {
        let Some(replica) = self.inner.groups.get(group).cloned() else { return };
        let slot = &self.inner.leaders[usize::from(group)];
        let role = Role::of(group, self.partitions());
        let mut watch = replica.leadership_watch();
        loop {
            let now = watch.current();
            let current = slot.read().clone();
            match (now.ready, current) {
                (true, Some(leader)) if leader.term() == now.term => leader.host.set_lease(now.lease),
                (true, current) => {
                    if let Some(old) = current {
                        step_down(slot, &old);
                    }
                    let router = self.router();
                    match Leader::start(replica.clone(), now.term, now.lease, &self.inner.options, role, router) {
                        Ok(leader) => {
                            if role == Role::Partition {
                                let ready = self.inner.ready.clone();
                                leader.host.queues.on_ready(Box::new(move |queue| ready.ready(queue)));
                            }
                            *slot.write() = Some(Arc::new(leader));
                        }
                        Err(e) => tracing::error!(group, error = %e, "cannot start leader services"),
                    }
                }
                (false, Some(old)) => step_down(slot, &old),
                (false, None) => {}
            }
            // A group led here now, or a new metadata leader: tell it what runs at once, so it
            // need not wait for the next report to grant permits (`permits.rs`).
            if self.partitions() > 1 {
                self.inner.report_now.notify_one();
            }
            if !watch.changed().await {
                break;
            }
        }
    }

    /// Stops leader services and Raft. Reads keep working on what is stored.
    pub async fn shutdown(&self) {
        for w in self.inner.watchers.lock().drain(..) {
            w.abort();
        }
        for slot in &self.inner.leaders {
            let current = slot.read().clone();
            if let Some(leader) = current {
                step_down(slot, &leader);
            }
        }
        self.inner.groups.shutdown().await;
    }

    /// Stops Raft in every group, as a fatal storage error does (the fault suite's stop-raft);
    /// leader services stop as their groups' leadership ends.
    pub async fn stop_raft(&self) {
        self.inner.groups.shutdown().await;
    }

    /// What the leader services use to act on workflows of any group.
    pub(crate) fn router(&self) -> crate::router::Router {
        let reach: std::sync::Weak<dyn crate::router::Reach> = Arc::downgrade(&self.inner) as _;
        crate::router::Router::new(reach, self.partitions())
    }

    /// Serves an operation on a workflow (an event handler's action) another node asks of this
    /// one, the leader of the workflow's partition.
    pub async fn serve_remote_op(&self, message: &[u8]) -> Vec<u8> {
        remote::serve_op(&self.inner, message).await
    }

    /// Serves a permit to hand out a task of a limited definition, asked of this node as the
    /// metadata group's leader.
    pub fn serve_permit(&self, message: &[u8]) -> Vec<u8> {
        permits::serve_permit(&self.inner, message)
    }

    /// Serves another node's report of the limited tasks running in the partitions it leads,
    /// sent to this node as the metadata group's leader.
    pub fn serve_running_report(&self, message: &[u8]) -> Vec<u8> {
        permits::serve_report(&self.inner, message)
    }

    /// Serves a start another node asks of this one, the leader of the workflow's partition.
    pub async fn serve_remote_start(&self, message: &[u8]) -> Vec<u8> {
        remote::serve_start(&self.inner, message).await
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
        crate::payloads::fetch(&self.inner.options.payloads.storage, &self.payload_read(path), path).await
    }

    /// The payload stored at `path`, as the JSON object a task's output or a workflow's input is.
    pub async fn payload_object(&self, path: &str) -> Result<overture_core::Object, Error> {
        crate::payloads::read_object(&self.inner.options.payloads.storage, &self.payload_read(path), path).await
    }

    /// The view that holds the embedded payload at `path`: a workflow's payloads are stored in
    /// its partition, clients' uploads in the metadata group.
    fn payload_read(&self, path: &str) -> ReadView {
        self.workflow_reads()
            .into_iter()
            .find(|read| read.payload_size(path).ok().flatten().is_some())
            .unwrap_or_else(|| self.read().clone())
    }

    /// Where payloads are stored.
    pub fn payload_storage(&self) -> &crate::payloads::PayloadStorage {
        &self.inner.options.payloads.storage
    }

    /// Where this node stands in its group.
    pub fn leadership(&self) -> Leadership {
        self.replica().leadership()
    }

    /// This node can serve writes now: it is the ready leader of the metadata group and holds
    /// its lease.
    pub fn is_ready(&self) -> bool {
        self.inner.leaders[0].read().as_ref().is_some_and(|leader| leader.host.holds_lease())
    }

    /// Why this node cannot serve writes now, as the error a request gets; `None` if it can.
    pub fn not_serving(&self) -> Option<Error> {
        self.leader().err()
    }

    /// The metadata group's leader services, where definitions, schedules and membership change.
    fn leader(&self) -> Result<Arc<Leader>, Error> {
        self.inner.leader_of(0)
    }

    /// The leader services of the group that holds workflow (or task) `id`.
    fn leader_for(&self, id: &str) -> Result<Arc<Leader>, Error> {
        self.inner.leader_of(self.inner.groups.group_of(id))
    }

    /// The local replica's view of the group that holds workflow (or task) `id`.
    pub(crate) fn read_of(&self, id: &str) -> &ReadView {
        self.inner.read_of(id)
    }

    /// The leader services of every group this node leads and serves, the metadata group first.
    pub(crate) fn local_leaders(&self) -> Vec<Arc<Leader>> {
        self.inner.leaders.iter().filter_map(|slot| slot.read().clone()).filter(|l| l.host.serving().is_ok()).collect()
    }

    /// This node's view of every group that holds workflows: the partitions, or the one group.
    pub(crate) fn workflow_reads(&self) -> Vec<ReadView> {
        let groups = &self.inner.groups;
        groups.workflow_groups().filter_map(|g| groups.get(g)).map(|r| r.read().clone()).collect()
    }

    /// The applied index of every group this node leads.
    pub fn led_applied_indexes(&self) -> Vec<(GroupId, u64)> {
        self.local_leaders().iter().map(|l| (l.host.group, l.host.replica.read().applied_index())).collect()
    }

    /// Waits up to `within` until this node has applied group `group`'s log up to `index`;
    /// whether it has.
    pub async fn wait_applied(&self, group: GroupId, index: u64, within: std::time::Duration) -> bool {
        let Some(replica) = self.inner.groups.get(group) else { return true };
        if replica.read().applied_index() >= index {
            return true;
        }
        replica
            .raft()
            .wait(Some(within))
            .applied_index_at_least(Some(index), "a read after a forwarded write")
            .await
            .is_ok()
    }

    /// Who leads the group holding workflow (or task) `id`, as this node knows it.
    pub fn leader_of_id(&self, id: &str) -> GroupLeader {
        self.leader_in(self.inner.groups.group_of(id))
    }

    /// Who leads group `group`, as this node knows it, from one look at its leadership. This
    /// node is [`GroupLeader::Here`] only while it serves as the leader (it holds its lease): a
    /// leader cut off from the others still believes it leads until it hears of a new term, and
    /// must not answer for the group meanwhile (say a workflow does not exist).
    pub fn leader_in(&self, group: GroupId) -> GroupLeader {
        let Some(replica) = self.inner.groups.get(group) else { return GroupLeader::Unknown };
        match replica.leadership().leader {
            Some(node) if node == replica.node_id() => {
                if self.inner.leader_of(group).is_ok() {
                    GroupLeader::Here
                } else {
                    GroupLeader::Unknown
                }
            }
            Some(node) => match replica.node_addr(node) {
                Some(address) => GroupLeader::Elsewhere { group, node, address },
                None => GroupLeader::Unknown,
            },
            None => GroupLeader::Unknown,
        }
    }

    /// Follows group `group`'s leadership (the metadata group's if there is no such group).
    pub fn leadership_watch_of(&self, group: GroupId) -> overture_raft::LeadershipWatch {
        self.inner.groups.get(group).unwrap_or_else(|| self.replica()).leadership_watch()
    }

    /// Whether workflows live in partitions (more than one group).
    pub fn partitioned(&self) -> bool {
        self.partitions() > 1
    }

    async fn propose(&self, request: Request) -> Result<(), Error> {
        let leader = self.leader()?;
        self.propose_in(&leader, request).await
    }

    /// Proposes `request` to the group `leader` leads.
    async fn propose_in(&self, leader: &Leader, request: Request) -> Result<(), Error> {
        match leader.host.replica.propose(request).await? {
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

    /// A digest of each group's state machine (the metadata group first) and the applied index
    /// it was taken at.
    pub async fn digests(&self) -> Result<Vec<(u64, String)>, Error> {
        let replicas = self.inner.groups.all().to_vec();
        tokio::task::spawn_blocking(move || replicas.iter().map(Replica::digest).collect::<Result<Vec<_>, _>>())
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

fn step_down(slot: &RwLock<Option<Arc<Leader>>>, leader: &Arc<Leader>) {
    *slot.write() = None;
    leader.stop();
}

impl Inner {
    /// Group `group`'s leader services on this node, if it leads the group and serves; else
    /// why not: [`Error::Elsewhere`] names the node that leads it.
    pub(crate) fn leader_of(&self, group: GroupId) -> Result<Arc<Leader>, Error> {
        if let Some(leader) = self.leaders.get(usize::from(group)).and_then(|slot| slot.read().clone()) {
            leader.host.serving()?;
            return Ok(leader);
        }
        let Some(replica) = self.groups.get(group) else {
            return Err(Error::Internal(format!("this node runs no Raft group {group}")));
        };
        let what = if group == 0 { "the leader".to_owned() } else { format!("the leader of partition {group}") };
        let l = replica.leadership();
        Err(match (l.is_leader, l.leader) {
            (true, _) => {
                Error::Unavailable(format!("this node was just elected {what} and is catching up; retry shortly"))
            }
            (false, Some(id)) if id != replica.node_id() => match replica.node_addr(id) {
                Some(address) if group != 0 || self.groups.partitions() > 1 => {
                    Error::Elsewhere { group, node: id, address }
                }
                _ => Error::Unavailable(format!("this node is not {what}; node {id} is")),
            },
            _ => Error::Unavailable(format!("no leader of {} is elected yet; retry shortly", group_name(group))),
        })
    }

    /// The local replica's view of the group that holds workflow (or task) `id`.
    pub(crate) fn read_of(&self, id: &str) -> &ReadView {
        let group = self.groups.group_of(id);
        self.groups.get(group).unwrap_or_else(|| self.groups.metadata()).read()
    }
}

/// How a group is named in messages.
fn group_name(group: GroupId) -> String {
    if group == 0 { "the cluster".to_owned() } else { format!("partition {group}") }
}

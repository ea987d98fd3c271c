//! A node's replica: the RocksDB database, the Raft instance over it and the ways in.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::RaftError;
use openraft::{Config, ServerState, SnapshotPolicy};
use overture_core::rows::{QueueItem, RunningItem, TimerItem};
use parking_lot::{Mutex, RwLock};

use crate::codec::decode;
pub use crate::database::Database;
pub use crate::errors::OpenError;
use crate::errors::{ProposeError, why_stopped, write_error};
use crate::group_db::GroupId;
use crate::keys::{self, CF_SM_META, meta};
use crate::log_store::LogStore;
use crate::machine::StateMachine;
use crate::membership::MembershipChange;
use crate::network::Network;
pub use crate::options::{DEFAULT_MIN_FREE_DISK_BYTES, ReplicaOptions};
use crate::proposer::Proposer;
use crate::read::ReadView;
use crate::rpc::RpcServer;
use crate::state_machine::{ApplyListener, Inner, Shared, WorkflowCache};
use crate::types::{LogId, Node, NodeId, Request, Response, StoredMembership};
use crate::{GroupDb, Raft};
use crate::{cf, io_err};

/// Where a node stands in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leadership {
    /// This node leads the current term.
    pub is_leader: bool,
    /// It leads and has applied an entry of its own term (the readiness barrier): everything
    /// committed before it is applied, so its state is complete.
    pub ready: bool,
    /// The current Raft term, as this node knows it.
    pub term: u64,
    /// The current leader's node id, if this node knows one.
    pub leader: Option<NodeId>,
    /// This node has applied everything the leader has told it is committed.
    pub caught_up: bool,
    /// A leader that heard from a majority of its group within its lease (`election_timeout`
    /// × 2), or leads a group of one. A leader without it may be cut off from the others while
    /// they elect another: it answers nothing that depends on being the only leader.
    pub lease: bool,
}

impl Leadership {
    /// This node may serve writes and leader-only reads now: it is the ready leader and holds
    /// its lease.
    pub fn serving(&self) -> bool {
        self.ready && self.lease
    }
}

/// The storage under a replica, before Raft runs on it.
pub struct Storage {
    /// The database.
    pub db: Arc<GroupDb>,
    /// The Raft log.
    pub log_store: LogStore,
    /// The state machine.
    pub state_machine: StateMachine,
    /// Reads of the state machine.
    pub read: ReadView,
}

impl Storage {
    /// Opens (creating if needed) the database and snapshot directory under `data_dir`, and
    /// finishes a snapshot install a crash interrupted.
    pub fn open(options: &ReplicaOptions) -> Result<Storage, OpenError> {
        Storage::open_group(&Database::open(options, 1)?, 0, options)
    }

    /// Opens the storage of group `group` of `database`.
    pub fn open_group(database: &Database, group: GroupId, options: &ReplicaOptions) -> Result<Storage, OpenError> {
        let db = database.group(group)?;
        let disk = database.disk.clone();
        let applied: Option<LogId> = get(&db, meta::APPLIED)?;
        let membership: StoredMembership = get(&db, meta::MEMBERSHIP)?.unwrap_or_default();
        let shared = Arc::new(Shared {
            db: db.clone(),
            cache: Mutex::new(WorkflowCache::new(options.cache_capacity)),
            applied_index: std::sync::atomic::AtomicU64::new(applied.as_ref().map_or(0, |id| id.index)),
            inner: Mutex::new(Inner {
                applied,
                membership,
                pending_keys: Default::default(),
                written: Default::default(),
                count_deltas: Default::default(),
            }),
            listener: RwLock::new(None),
            plans: Mutex::new(Default::default()),
            start_plans: Mutex::new(Default::default()),
            index_counts: Mutex::new(Default::default()),
            snapshot_dir: options.data_dir.join(crate::group_db::family_name("snapshots", db.group())),
            disk: disk.clone(),
        });
        crate::snapshot::resume_interrupted_install(&shared)?;
        shared.rebuild_indexes_if_missing()?;
        let log_store = LogStore::new(db.clone(), disk, database.flusher.clone())?;
        Ok(Storage {
            db,
            log_store,
            state_machine: StateMachine { shared: shared.clone() },
            read: ReadView::new(shared),
        })
    }
}

/// The replica: cheap to clone.
#[derive(Clone)]
pub struct Replica {
    raft: Raft,
    read: ReadView,
    shared: Arc<Shared>,
    node_id: NodeId,
    db: Arc<GroupDb>,
    rpc: RpcServer,
    closed: Arc<Mutex<bool>>,
    proposer: Proposer,
    disk: Arc<crate::disk::DiskGuard>,
    /// The database, when this replica opened it for itself ([`Replica::open`]): closing the
    /// replica closes it.
    database: Option<Arc<Database>>,
}

/// When to snapshot. A snapshot writes the whole state, so openraft's own policy (every N
/// entries) costs more the larger the state grows: with a million executions stored, writing
/// one every 20,000 entries was most of the node's work. This one waits for `every` entries and
/// for the log since the last snapshot to reach half the size of that snapshot, so snapshots
/// write at most about twice what the log does, and the log kept on disk stays under about half
/// the state. Runs until the replica closes.
async fn snapshot_policy(
    raft: Raft,
    appended: Arc<std::sync::atomic::AtomicU64>,
    dir: std::path::PathBuf,
    every: u64,
    closed: Arc<Mutex<bool>>,
) {
    use std::sync::atomic::Ordering;
    let metrics = raft.metrics();
    let snapshot_index = || metrics.borrow_watched().snapshot.map_or(0, |id| id.index);
    let mut last = snapshot_index();
    let mut log_at_last = appended.load(Ordering::Relaxed);
    let mut requested: Option<std::time::Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        if *closed.lock() {
            return;
        }
        let (applied, running) = {
            let m = metrics.borrow_watched();
            (m.last_applied.map_or(0, |id| id.index), m.running_state.is_ok())
        };
        if !running {
            return;
        }
        let current = snapshot_index();
        if current != last {
            // Built, or installed from the leader.
            last = current;
            log_at_last = appended.load(Ordering::Relaxed);
            requested = None;
        }
        if requested.is_some_and(|at| at.elapsed() < Duration::from_secs(60)) {
            continue;
        }
        let log_bytes = appended.load(Ordering::Relaxed).saturating_sub(log_at_last);
        if applied.saturating_sub(last) >= every && log_bytes >= snapshot_bytes(&dir) / 2 {
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
            requested = Some(std::time::Instant::now());
        }
    }
}

/// Bytes of the snapshot files in `dir` (there is one, once the first is built).
fn snapshot_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "snap"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

impl Replica {
    /// Opens (creating if needed) the database under `data_dir` and starts Raft on it.
    pub async fn open(options: ReplicaOptions) -> Result<Replica, OpenError> {
        let database = Arc::new(Database::open(&options, 1)?);
        let mut replica = Replica::open_group(&database, 0, options).await?;
        replica.database = Some(database);
        Ok(replica)
    }

    /// Starts Raft for group `group` of `database`, on its families. The database stays open
    /// while the replica or `database` is held.
    pub async fn open_group(
        database: &Database,
        group: GroupId,
        options: ReplicaOptions,
    ) -> Result<Replica, OpenError> {
        let storage = Storage::open_group(database, group, &options)?;
        let heartbeat = options.heartbeat.as_millis() as u64;
        let election = options.election_timeout.as_millis() as u64;
        let config = Config {
            cluster_name: "overture".into(),
            heartbeat_interval: heartbeat,
            election_timeout_min: election,
            election_timeout_max: election * 2,
            // Snapshots are triggered by `snapshot_policy` below.
            snapshot_policy: SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: options.keep_after_snapshot,
            install_snapshot_timeout: 120_000,
            // A node that cannot win an election (cut off from the others) asks first, without
            // raising its term, so when it comes back it does not depose a healthy leader.
            enable_pre_vote: Some(true),
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(|e| OpenError::Raft(e.to_string()))?);
        let Storage { db, log_store, state_machine, read } = storage;
        let shared = state_machine.shared.clone();
        let disk = shared.disk.clone();
        let appended = log_store.appended_bytes();
        let faults = database.faults.clone();
        let network = Network::new(
            options.cluster_secret.clone(),
            options.node_id,
            db.group(),
            faults.clone(),
            options.protocol.clone(),
        );
        let raft = Raft::new(options.node_id, config, network, log_store, state_machine)
            .await
            .map_err(|e| OpenError::Raft(e.to_string()))?;
        let rpc = RpcServer {
            group: db.group(),
            raft: raft.clone(),
            secret: options.cluster_secret.as_deref().map(Arc::from),
            incoming_dir: options.data_dir.join(crate::group_db::family_name("incoming", db.group())),
            faults,
            protocol: options.protocol.clone(),
        };
        let closed = Arc::new(Mutex::new(false));
        tokio::spawn(snapshot_policy(
            raft.clone(),
            appended,
            shared.snapshot_dir.clone(),
            options.snapshot_every,
            closed.clone(),
        ));
        let proposer = Proposer::start(raft.clone());
        tokio::spawn(crate::disk::monitor(disk.clone(), closed.clone(), {
            let raft = raft.clone();
            move |low| crate::disk::on_disk_low(&raft, options.node_id, low)
        }));
        Ok(Replica { raft, read, shared, node_id: options.node_id, db, rpc, closed, proposer, disk, database: None })
    }

    /// Initializes the group with these members, unless it already is (restarts never do).
    /// Every initial member may call this with the same members, in any order: whichever starts
    /// first, the group forms once. A node that already received the group's log (it joined, or
    /// another member reached it first) is left as it is.
    pub async fn initialize(&self, members: BTreeMap<NodeId, Node>) -> Result<bool, OpenError> {
        if self.raft.is_initialized().await.map_err(|e| OpenError::Raft(e.to_string()))? {
            return Ok(false);
        }
        match self.raft.initialize(members).await {
            Ok(()) => Ok(true),
            Err(RaftError::APIError(openraft::errors::InitializeError::NotAllowed(_))) => Ok(false),
            Err(e) => Err(OpenError::Raft(e.to_string())),
        }
    }

    /// Proposes a change and waits until it is committed and applied here. Workflow batches
    /// proposed at about the same moment share an entry (`crate::proposer`).
    pub async fn propose(&self, request: Request) -> Result<Response, ProposeError> {
        if self.disk.is_low() {
            return Err(ProposeError::DiskFull(self.disk.refusal()));
        }
        if let Request::Workflow(batch) = request {
            return self.proposer.propose(batch).await;
        }
        match self.raft.client_write(request).await {
            Ok(response) => Ok(response.data),
            Err(e) => Err(write_error(e)),
        }
    }

    /// Reads of the local state.
    pub fn read(&self) -> &ReadView {
        &self.read
    }

    /// Makes this (partition) group's reads of metadata go to `metadata`, the metadata group's
    /// view on the same node. Called once, before the replica is shared.
    pub(crate) fn read_metadata_from(&mut self, metadata: &ReadView) {
        self.read.meta = Some(Arc::new(metadata.clone()));
    }

    /// The Raft instance, for metrics and waiting on conditions.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// The Raft group this replica is of.
    pub fn group(&self) -> GroupId {
        self.db.group()
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The data directory's free space.
    pub fn disk(&self) -> &crate::disk::DiskGuard {
        &self.disk
    }

    /// Where this node stands, from the latest Raft metrics.
    pub fn leadership(&self) -> Leadership {
        leadership_of(&self.raft.metrics().borrow_watched(), self.lease())
    }

    /// How long a leader's lease lasts after a majority last acknowledged it: openraft's
    /// `election_timeout_max`. Followers refuse to vote for anyone else for that long after they
    /// last heard from the leader, so no other leader can be elected while it holds.
    pub fn lease(&self) -> Duration {
        Duration::from_millis(self.raft.config().election_timeout_max)
    }

    /// The server half of Raft RPC, for the API to mount.
    pub fn rpc(&self) -> &RpcServer {
        &self.rpc
    }

    /// The address of a member, from the current membership.
    pub fn node_addr(&self, id: NodeId) -> Option<String> {
        let m = self.raft.metrics().borrow_watched().membership_config.clone();
        m.membership().get_node(&id).map(|n| n.addr.clone())
    }

    /// Where the group stands, as this node sees it.
    pub fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        let voters: std::collections::BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| MemberStatus {
                id: *id,
                address: node.addr.clone(),
                voter: voters.contains(id),
                protocol_version: if *id == self.node_id {
                    Some(self.rpc.protocol.speaks())
                } else {
                    self.rpc.protocol.peer(*id)
                },
            })
            .collect();
        let last_log_index = m.last_log_index.unwrap_or(0);
        let replication = m.replication.as_ref().map(|r| {
            r.iter()
                .filter(|(id, _)| **id != self.node_id)
                .map(|(id, matched)| {
                    let matched = matched.as_ref().map_or(0, |l| l.index);
                    (*id, FollowerStatus { matched_index: matched, lag: last_log_index.saturating_sub(matched) })
                })
                .collect()
        });
        ClusterStatus {
            node_id: self.node_id,
            state: format!("{:?}", m.state),
            term: m.current_term,
            leader: m.current_leader,
            members,
            last_log_index,
            commit_index: m.local_committed.as_ref().map_or(0, |l| l.index),
            applied_index: m.last_applied.as_ref().map_or(0, |l| l.index),
            snapshot_index: m.snapshot.as_ref().map(|l| l.index),
            purged_index: m.purged.as_ref().map(|l| l.index),
            replication,
        }
    }

    /// Adds a learner that receives the log but does not vote; waits until it has caught up.
    pub async fn add_learner(&self, id: NodeId, address: String) -> Result<(), ProposeError> {
        self.change_membership(MembershipChange::AddLearner { id, address }).await
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: NodeId) -> Result<(), ProposeError> {
        self.change_membership(MembershipChange::Promote { id }).await
    }

    /// Removes a member (voter or learner) from the group.
    pub async fn remove(&self, id: NodeId) -> Result<(), ProposeError> {
        self.change_membership(MembershipChange::Remove { id }).await
    }

    /// Changes this group's membership; this node must lead it.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ProposeError> {
        crate::membership::change(&self.raft, change).await
    }

    /// Asks the group to elect `to` in place of this node, if this node leads; returns at once.
    /// While the handover runs this node refuses writes, as a follower would.
    pub async fn transfer_leader(&self, to: NodeId) -> Result<(), ProposeError> {
        self.raft.trigger().transfer_leader(to).await.map_err(|f| ProposeError::Fatal(f.to_string()))
    }

    /// Takes a backup of this node's whole database (every group of it, `groups` in all) into
    /// `<data_dir>/backups/<name>` ([`crate::backup`]). Blocking: call it off the async threads.
    pub fn backup(
        &self,
        groups: GroupId,
        name: &str,
        version: &str,
    ) -> io::Result<(std::path::PathBuf, crate::backup::Manifest)> {
        let dir = self.disk.dir().join("backups").join(name);
        let manifest = crate::backup::create(self.db.shared(), groups, self.node_id, &dir, version)?;
        Ok((dir, manifest))
    }

    /// Waits until this node's state includes every write committed before the call: a
    /// linearizable read may follow. Only the leader can do this.
    pub async fn ensure_linearizable(&self) -> Result<(), ProposeError> {
        match self.raft.ensure_linearizable(openraft::ReadPolicy::ReadIndex).await {
            Ok(_) => Ok(()),
            Err(RaftError::APIError(openraft::errors::LinearizableReadError::ForwardToLeader(f))) => {
                Err(ProposeError::NotLeader { leader: f.leader_id })
            }
            Err(RaftError::APIError(openraft::errors::LinearizableReadError::QuorumNotEnough(_))) => {
                Err(ProposeError::NotLeader { leader: None })
            }
            Err(RaftError::Fatal(f)) => Err(ProposeError::Fatal(f.to_string())),
        }
    }

    /// A digest of the whole state machine and the applied index it was taken at, to compare
    /// replicas. It reads a snapshot of the store, so apply is held off only while it takes one.
    pub fn digest(&self) -> Result<(u64, String), io::Error> {
        use sha2::{Digest, Sha256};
        // A snapshot taken under the state machine's lock pairs the rows with the index they were
        // applied up to; the scan then reads the snapshot, so apply goes on meanwhile.
        let (applied, snapshot) = {
            let inner = self.shared.inner.lock();
            (inner.applied.as_ref().map_or(0, |l| l.index), self.db.snapshot())
        };
        let mut hasher = Sha256::new();
        for family in keys::STATE_MACHINE.iter().filter(|f| **f != CF_SM_META) {
            hasher.update(family.as_bytes());
            for item in snapshot.iterator_cf(cf(&self.db, family), rocksdb::IteratorMode::Start) {
                let (k, v) = item.map_err(io_err)?;
                hasher.update((k.len() as u32).to_be_bytes());
                hasher.update(&k);
                hasher.update((v.len() as u32).to_be_bytes());
                hasher.update(&v);
            }
        }
        let hex = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Ok((applied, hex))
    }

    /// Raft is running (it has not stopped on a fatal error or a shutdown).
    pub fn is_running(&self) -> bool {
        self.raft.metrics().borrow_watched().running_state.is_ok()
    }

    /// Why Raft stopped, if it has (a fatal error, or a shutdown).
    pub fn stopped(&self) -> Option<String> {
        why_stopped(&self.raft)
    }

    /// A watch on this node's [`Leadership`].
    pub fn leadership_watch(&self) -> LeadershipWatch {
        LeadershipWatch { metrics: self.raft.metrics(), lease: self.lease() }
    }

    /// Starts sending changes to `listener`, and returns every queue entry and timer as of the
    /// same moment, so the listener's owner can rebuild its memory without missing a change.
    pub fn attach_listener(&self, listener: Arc<dyn ApplyListener>) -> Result<DerivedRows, io::Error> {
        // Holding the apply lock keeps apply out between the scan and the attach.
        let _inner = self.shared.inner.lock();
        let rows = DerivedRows {
            queue: self.read.queue_entries()?,
            timers: self.read.timers()?,
            running: self.read.running_entries()?,
        };
        *self.shared.listener.write() = Some(listener);
        Ok(rows)
    }

    /// Stops sending changes.
    pub fn detach_listener(&self) {
        *self.shared.listener.write() = None;
    }

    /// Bytes of every file under the data directory: database (SST files, WAL, Raft log) and
    /// snapshots.
    pub fn data_dir_bytes(&self) -> u64 {
        fn walk(dir: &std::path::Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        self.shared.snapshot_dir.parent().map_or(0, walk)
    }

    /// Approximate bytes on disk of the live data (SST files).
    pub fn disk_bytes(&self) -> u64 {
        keys::all()
            .filter_map(|name| {
                self.db
                    .property_int_value_cf(cf(&self.db, name), rocksdb::properties::TOTAL_SST_FILES_SIZE)
                    .ok()
                    .flatten()
            })
            .sum()
    }

    /// Stops Raft and flushes the database. Other clones stay usable for reads.
    pub async fn shutdown(&self) {
        {
            let mut closed = self.closed.lock();
            if *closed {
                return;
            }
            *closed = true;
        }
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not shut down cleanly");
        }
        if let Err(e) = self.db.flush_wal(true) {
            tracing::warn!(error = %e, "final WAL flush failed");
        }
        // The state since the last flush is in memtables only; written out now, a restart
        // does not apply those entries again.
        if let Err(e) = crate::flush_state(&self.db) {
            tracing::warn!(error = %e, "final flush failed");
        }
    }

    /// Shuts down and waits until the database is closed, so the directory can be opened again
    /// in this process. Fails if another clone of this replica still holds it after `timeout`.
    pub async fn close(self, timeout: Duration) -> Result<(), io::Error> {
        self.shutdown().await;
        let Replica { raft, read, shared, db, database, .. } = self;
        drop((raft, read, shared));
        let deadline = tokio::time::Instant::now() + timeout;
        // openraft's tasks and the log store's threads release their handles shortly after
        // shutdown.
        sole_holder(&db, deadline).await?;
        let whole = db.shared().clone();
        drop(db);
        if database.is_some() {
            // Its own database: closed once the fsync thread (held by the last log store) ends.
            drop(database);
            sole_holder(&whole, deadline).await?;
        }
        drop(whole);
        Ok(())
    }
}

/// Waits until `arc` is the only handle left on what it holds, until `deadline`.
async fn sole_holder<T>(arc: &Arc<T>, deadline: tokio::time::Instant) -> Result<(), io::Error> {
    while Arc::strong_count(arc) > 1 {
        if tokio::time::Instant::now() >= deadline {
            return Err(io_err("the database is still in use after shutdown"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// The group as one node sees it (`overture cluster status`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// This node's id in the group.
    pub node_id: NodeId,
    /// Leader, Follower, Candidate, Learner.
    pub state: String,
    /// The current Raft term, as this node knows it.
    pub term: u64,
    /// The current leader's node id, if this node knows one.
    pub leader: Option<NodeId>,
    /// Every node in the group's membership: voters and learners.
    pub members: Vec<MemberStatus>,
    /// Raft log index of the last entry in this node's log (0 when empty).
    pub last_log_index: u64,
    /// Raft log index of the last entry this node knows is committed (0 if none).
    pub commit_index: u64,
    /// Raft log index of the last entry applied to this node's state machine (0 if none).
    pub applied_index: u64,
    /// Raft log index of the last entry covered by this node's latest snapshot, if it has one.
    pub snapshot_index: Option<u64>,
    /// Raft log index of the last entry purged from this node's log, if any was.
    pub purged_index: Option<u64>,
    /// Per follower, on the leader only.
    pub replication: Option<BTreeMap<NodeId, FollowerStatus>>,
}

/// One member of the group.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member's node id.
    pub id: NodeId,
    /// Its client (HTTP) address, which Raft RPCs also go to: `host:port` or a URL.
    pub address: String,
    /// A voter, or a learner.
    pub voter: bool,
    /// The node-to-node protocol version it speaks ([`crate::protocol`]): this node's own, or
    /// what the member's last answer or request named; `None` until this node has heard from it.
    #[serde(default)]
    pub protocol_version: Option<u16>,
}

/// How far a follower is behind the leader.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FollowerStatus {
    /// Last log index known to be on the follower.
    pub matched_index: u64,
    /// Entries the follower is behind the leader's log.
    pub lag: u64,
}

/// Follows a node's [`Leadership`] as Raft metrics change.
pub struct LeadershipWatch {
    metrics:
        openraft::alias::WatchReceiverOf<crate::types::TypeConfig, openraft::RaftMetrics<crate::types::TypeConfig>>,
    lease: Duration,
}

impl LeadershipWatch {
    /// Where the node stands now.
    pub fn current(&self) -> Leadership {
        leadership_of(&self.metrics.borrow_watched(), self.lease)
    }

    /// Waits for the next change of Raft state, or for the lease this node holds now to run
    /// out (no metric changes when acknowledgements stop coming); `false` once Raft has stopped.
    pub async fn changed(&mut self) -> bool {
        let expires = {
            let m = self.metrics.borrow_watched();
            lease_expires(&m, self.lease).filter(|_| leadership_of(&m, self.lease).lease)
        };
        let Some(at) = expires else { return self.metrics.changed().await.is_ok() };
        let left = at - <RaftInstant as openraft::Instant>::now();
        tokio::select! {
            changed = self.metrics.changed() => changed.is_ok(),
            _ = tokio::time::sleep(left + Duration::from_millis(1)) => true,
        }
    }
}

/// Computes [`Leadership`] from Raft metrics.
pub fn leadership_of(m: &openraft::RaftMetrics<crate::types::TypeConfig>, lease: Duration) -> Leadership {
    let is_leader = m.state == ServerState::Leader && m.running_state.is_ok();
    let applied_own_term = m.last_applied.as_ref().is_some_and(|id| id.leader_id.term == m.current_term);
    let applied = m.last_applied.as_ref().map_or(0, |l| l.index);
    let committed = m.cluster_committed.as_ref().map_or(0, |l| l.index);
    Leadership {
        is_leader,
        ready: is_leader && applied_own_term,
        term: m.current_term,
        leader: m.current_leader,
        caught_up: m.current_leader.is_some() && applied >= committed,
        lease: is_leader && lease_expires(m, lease).is_none_or(|at| <RaftInstant as openraft::Instant>::now() < at),
    }
}

/// openraft's clock, in which its metrics' times are.
pub(crate) type RaftInstant = openraft::alias::InstantOf<crate::types::TypeConfig>;

/// When a leader's lease ends: its last acknowledgement from a majority plus the lease. `None`
/// for a leader that is a majority by itself (its lease never ends) and for a non-leader.
fn lease_expires(m: &openraft::RaftMetrics<crate::types::TypeConfig>, lease: Duration) -> Option<RaftInstant> {
    if m.state != ServerState::Leader || m.membership_config.membership().voter_ids().count() <= 1 {
        return None;
    }
    // Never acknowledged yet: expired since the start.
    let acked = m.last_quorum_acked.as_ref().map_or_else(<RaftInstant as openraft::Instant>::now, |t| **t);
    Some(acked + lease)
}

fn get<T: crate::codec::Versioned>(db: &GroupDb, key: &[u8]) -> Result<Option<T>, io::Error> {
    match db.get_cf(cf(db, CF_SM_META), key).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => decode(&bytes).map(Some).map_err(io_err),
    }
}

/// The rows derived from workflow state that the leader mirrors in memory.
#[derive(Debug, Default)]
pub struct DerivedRows {
    /// Tasks waiting in queues.
    pub queue: Vec<QueueItem>,
    /// Durable timers.
    pub timers: Vec<TimerItem>,
    /// IN_PROGRESS worker tasks.
    pub running: Vec<RunningItem>,
}

//! A node's Raft groups: the metadata group (0) and, when the cluster is partitioned, one group
//! per partition (1 to P), all members of every group, all in one database ([`Database`]).
//!
//! A cluster is created with P partitions (`partitions` in the configuration). P = 1 keeps the
//! layout a cluster had before there were partitions: one group, 0, that holds everything. With
//! P > 1 the node runs P + 1 groups. What this module owns is what the groups do together:
//!
//! - opening and initializing them with the same members;
//! - membership: a node is added to, promoted in and removed from every group, each change made by
//!   that group's leader, wherever it is (asked over [`paths::MEMBERSHIP`]);
//! - balance: partition `p` prefers the voter at `(p - 1) mod n` of its voters in id order, so
//!   three nodes with six partitions lead two each. The leader of a partition that is not its
//!   preferred node hands it over ([`Replica::transfer_leader`]) once that node answers heartbeats
//!   and has the whole log, which moves partitions to a node that joins or comes back. A node
//!   that gives a partition back within 5 s (its disk is low, say) is left alone for five minutes.
//!
//! The metadata group has no preferred leader: it stays where it is elected.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;

use crate::errors::ProposeError;
use crate::group_db::{GroupId, group_count, partitions_of};
use crate::membership::{MembershipChange, Refusal};
use crate::network::{Network, paths};
use crate::replica::{Database, OpenError, Replica, ReplicaOptions};
use crate::types::{Node, NodeId};

/// A node's groups: cheap to clone.
#[derive(Clone)]
pub struct Groups {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: Vec<Replica>,
    /// How this node asks others to act (in the metadata group's name): one client, so its
    /// connections are reused and its TLS roots are loaded once, not on every request.
    network: Network,
    balancer: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How long a membership change may take in one group (adding a learner waits for it to catch
/// up).
const MEMBERSHIP_DEADLINE: Duration = Duration::from_secs(120);
/// How often the balancer looks at the groups this node leads.
const BALANCE_EVERY: Duration = Duration::from_millis(500);
/// A preferred node that has not answered a heartbeat for this long is not handed anything.
const ALIVE_WITHIN: Duration = Duration::from_secs(1);
/// A handover that has not moved the group in this long is tried again.
const HANDOVER_TAKES: Duration = Duration::from_secs(2);
/// A group handed to its preferred node that came back within this long ...
const BOUNCE_WITHIN: Duration = Duration::from_secs(5);
/// ... is not handed to that node again for this long, twice as long after each further bounce
/// (a node busy catching up after a restart may give a group back once, and then keep it) ...
const REFRAIN_FIRST: Duration = Duration::from_secs(10);
/// ... up to this long, for a node that cannot keep a group at all.
const REFRAIN_MAX: Duration = Duration::from_secs(300);

impl Groups {
    /// Opens (creating if needed) the database under `options.data_dir` with the groups of
    /// `partitions` partitions, and starts Raft in each. A directory made for another number of
    /// partitions is refused.
    pub async fn open(options: ReplicaOptions, partitions: u16) -> Result<Groups, OpenError> {
        // Each group's storage holds what it needs of the database; it closes with the last.
        let database = Database::open(&options, group_count(partitions))?;
        let mut replicas = Vec::new();
        for group in 0..database.groups() {
            let mut replica = Replica::open_group(&database, group, options.clone()).await?;
            if let Some(metadata) = replicas.first().map(|m: &Replica| m.read().clone()) {
                replica.read_metadata_from(&metadata);
            }
            replicas.push(replica);
        }
        let groups = Groups::new(replicas, options);
        if groups.inner.replicas.len() > 1 {
            let balancer = tokio::spawn(balance(groups.inner.replicas.clone()));
            *groups.inner.balancer.lock() = Some(balancer);
        }
        Ok(groups)
    }

    /// One group, on a replica opened on its own.
    pub fn single(replica: Replica) -> Groups {
        let options = ReplicaOptions::new(replica.node_id(), std::path::PathBuf::new());
        Groups::new(vec![replica], options)
    }

    fn new(replicas: Vec<Replica>, options: ReplicaOptions) -> Groups {
        let faults = replicas[0].rpc().faults.clone();
        let protocol = replicas[0].rpc().protocol.clone();
        protocol.register_metrics();
        let network = Network::new(options.cluster_secret.clone(), options.node_id, 0, faults, protocol);
        Groups { inner: Arc::new(Inner { replicas, network, balancer: Default::default() }) }
    }

    /// The metadata group's replica (the only group of an unpartitioned node).
    pub fn metadata(&self) -> &Replica {
        &self.inner.replicas[0]
    }

    /// Group `group`'s replica, if this node runs it.
    pub fn get(&self, group: GroupId) -> Option<&Replica> {
        self.inner.replicas.get(usize::from(group))
    }

    /// The group that holds workflow (or task) `id`: see [`crate::partition_of`].
    pub fn group_of(&self, id: &str) -> GroupId {
        crate::partition_of(id, self.partitions())
    }

    /// The groups that hold workflows: the partitions, or the metadata group when there is one.
    pub fn workflow_groups(&self) -> std::ops::RangeInclusive<GroupId> {
        let groups = self.inner.replicas.len() as GroupId;
        if groups <= 1 { 0..=0 } else { 1..=groups - 1 }
    }

    /// Every group's replica, the metadata group first.
    pub fn all(&self) -> &[Replica] {
        &self.inner.replicas
    }

    /// The number of partitions: 1 when the metadata group holds everything.
    pub fn partitions(&self) -> u16 {
        partitions_of(self.inner.replicas.len() as GroupId)
    }

    /// Initializes every group with these members, unless it already is; `true` if any group
    /// was initialized now.
    pub async fn initialize(&self, members: BTreeMap<NodeId, Node>) -> Result<bool, OpenError> {
        let mut any = false;
        for replica in self.all() {
            any |= replica.initialize(members.clone()).await?;
        }
        Ok(any)
    }

    /// Makes a membership change in every group, the metadata group first, each through its
    /// leader wherever it is (a leader that is being removed hands its group over first). A
    /// change already made in a group (a retried command) is made again harmlessly.
    pub async fn change_membership(&self, change: MembershipChange) -> Result<(), ProposeError> {
        if let MembershipChange::AddLearner { id, address } = &change {
            self.check_joiner(*id, address).await?;
        }
        for group in 0..self.inner.replicas.len() {
            self.change_in_group(group as GroupId, &change).await?;
        }
        Ok(())
    }

    async fn change_in_group(&self, group: GroupId, change: &MembershipChange) -> Result<(), ProposeError> {
        let replica = &self.inner.replicas[usize::from(group)];
        let deadline = Instant::now() + MEMBERSHIP_DEADLINE;
        loop {
            let leadership = replica.leadership();
            let result = match leadership.leader {
                _ if leadership.is_leader => replica.change_membership(change.clone()).await.map_err(Refusal::from),
                Some(leader) => match replica.node_addr(leader) {
                    Some(addr) => self.ask_leader(group, leader, &addr, change).await,
                    None => Err(Refusal::retry(format!("node {leader} leads, at no known address"))),
                },
                None => Err(Refusal::retry("no leader is elected yet".into())),
            };
            match result {
                Ok(()) => return Ok(()),
                Err(refusal) if refusal.retry && Instant::now() < deadline => {
                    tracing::debug!(group, why = %refusal.message, "membership change: trying again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(refusal) => {
                    return Err(ProposeError::Rejected(format!("Raft group {group}: {}", refusal.message)));
                }
            }
        }
    }

    /// Sends `message` to node `node` at `address`, on `path`, with the cluster secret, and
    /// waits up to `within` for its answer: how one node asks another to act on a group it leads.
    pub async fn ask<Q: serde::Serialize, A: serde::de::DeserializeOwned>(
        &self,
        node: NodeId,
        address: &str,
        path: &str,
        message: &Q,
        within: Duration,
    ) -> Result<A, String> {
        self.inner.network.connect(node, address).call_within(path, message, within).await.map_err(|e| e.to_string())
    }

    async fn ask_leader(
        &self,
        group: GroupId,
        leader: NodeId,
        addr: &str,
        change: &MembershipChange,
    ) -> Result<(), Refusal> {
        let answer: Result<(), Refusal> = self
            .inner
            .network
            .in_group(group)
            .connect(leader, addr)
            .call_within(paths::MEMBERSHIP, change, MEMBERSHIP_DEADLINE)
            .await
            .map_err(|e| Refusal::retry(e.to_string()))?;
        answer
    }

    /// Refuses to add a node that runs another number of groups than this one: it could never
    /// follow the groups it lacks. A node that cannot be asked (down, or a build without
    /// [`paths::GROUPS`]) is added as before.
    async fn check_joiner(&self, id: NodeId, address: &str) -> Result<(), ProposeError> {
        let asked: Result<GroupId, _> =
            self.inner.network.connect(id, address).call_within(paths::GROUPS, &(), Duration::from_secs(5)).await;
        let Ok(theirs) = asked else { return Ok(()) };
        let ours = self.inner.replicas.len() as GroupId;
        if theirs == ours {
            return Ok(());
        }
        Err(ProposeError::Rejected(format!(
            "node {id} at {address} runs {theirs} Raft groups (partitions = {}) and this cluster {ours} \
             (partitions = {}): start it with partitions = {} on an empty data directory",
            partitions_of(theirs),
            partitions_of(ours),
            partitions_of(ours)
        )))
    }

    /// What this node answers when asked how many groups it runs ([`paths::GROUPS`]).
    pub fn count_answer(&self) -> Vec<u8> {
        crate::codec::encode_message(&Ok::<GroupId, String>(self.inner.replicas.len() as GroupId))
    }

    /// Where each group stands, as this node sees it.
    pub fn status(&self) -> Vec<GroupStatus> {
        let partitioned = self.inner.replicas.len() > 1;
        self.all()
            .iter()
            .enumerate()
            .map(|(group, replica)| {
                let status = replica.status();
                let leader_address = status.leader.and_then(|id| replica.node_addr(id));
                GroupStatus {
                    group: group as GroupId,
                    holds: if group == 0 && partitioned {
                        "metadata"
                    } else if partitioned {
                        "partition"
                    } else {
                        "all"
                    },
                    leader: status.leader,
                    leader_address,
                    preferred_leader: (group > 0)
                        .then(|| preferred_leader(group as GroupId, &voters(replica)))
                        .flatten(),
                    state: status.state,
                    term: status.term,
                    last_log_index: status.last_log_index,
                    applied_index: status.applied_index,
                    purged_index: status.purged_index,
                }
            })
            .collect()
    }

    /// Stops Raft in every group and flushes the database. Other clones stay usable for reads.
    pub async fn shutdown(&self) {
        if let Some(balancer) = self.inner.balancer.lock().take() {
            balancer.abort();
        }
        for replica in self.all() {
            replica.shutdown().await;
        }
    }
}

/// One group, as one node sees it (`GET /api/cluster/status`, `groups`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupStatus {
    /// The group's number: 0 is the metadata group.
    pub group: GroupId,
    /// What it holds: `all` (an unpartitioned cluster's one group), `metadata` or `partition`.
    pub holds: &'static str,
    /// Its leader, if this node knows one.
    pub leader: Option<NodeId>,
    /// The leader's client address.
    pub leader_address: Option<String>,
    /// The node the balancer moves a partition's leadership to.
    pub preferred_leader: Option<NodeId>,
    /// This node's role in it: Leader, Follower, Candidate, Learner.
    pub state: String,
    /// The group's current term, as this node knows it.
    pub term: u64,
    /// The last entry in this node's log of the group.
    pub last_log_index: u64,
    /// The last entry this node applied.
    pub applied_index: u64,
    /// The last entry purged from this node's log of the group (after a snapshot), if any was.
    pub purged_index: Option<u64>,
}

/// The voters of `replica`'s group, in id order.
fn voters(replica: &Replica) -> Vec<NodeId> {
    let m = replica.raft().metrics().borrow_watched().membership_config.clone();
    let mut voters: Vec<NodeId> = m.membership().voter_ids().collect();
    voters.sort_unstable();
    voters
}

/// The node that should lead partition group `group` among `voters` (in id order): the
/// partitions are dealt out to the voters in turn.
pub fn preferred_leader(group: GroupId, voters: &[NodeId]) -> Option<NodeId> {
    if group == 0 || voters.is_empty() {
        return None;
    }
    voters.get(usize::from(group - 1) % voters.len()).copied()
}

/// What the balancer remembers of one group.
#[derive(Default)]
struct Handover {
    /// The last handover this node started: to whom, when, in which term.
    last: Option<(NodeId, Instant, u64)>,
    /// Nodes that gave the group straight back: how many times in a row, and when last.
    bounces: HashMap<NodeId, (u32, Instant)>,
}

/// How long a node that gave a group back `bounces` times in a row is left alone.
fn refrain_for(bounces: u32) -> Duration {
    REFRAIN_FIRST.saturating_mul(1 << bounces.clamp(1, 16).saturating_sub(1)).min(REFRAIN_MAX)
}

impl Handover {
    /// Called while this node leads the group in `term`: whether the handover it started last
    /// may still be under way (the term has not moved, and not for long). Once it is not, a
    /// handover to the node that is still preferred, after which the group came back to this
    /// node within [`BOUNCE_WITHIN`], makes that node one to leave alone for a while
    /// ([`refrain_for`]). A node's bounces are forgotten once it has been left alone for twice
    /// the longest wait.
    fn under_way(&mut self, group: GroupId, term: u64, preferred: Option<NodeId>, now: Instant) -> bool {
        self.bounces.retain(|_, (_, at)| now.duration_since(*at) < 2 * REFRAIN_MAX);
        let Some((to, at, handed_in)) = self.last else { return false };
        let elapsed = now.duration_since(at);
        if term == handed_in && elapsed < HANDOVER_TAKES {
            return true;
        }
        self.last = None;
        if term != handed_in && elapsed < BOUNCE_WITHIN && preferred == Some(to) {
            let bounces = self.bounces.get(&to).map_or(0, |(n, _)| *n) + 1;
            let wait = refrain_for(bounces);
            tracing::warn!(group, node = to, bounces, wait = ?wait, "a node gave a partition back; leaving it with this node for now");
            self.bounces.insert(to, (bounces, now));
        }
        false
    }

    /// Whether `node` gave the group back lately and is left alone until its wait is over.
    fn refrains_from(&self, node: NodeId, now: Instant) -> bool {
        self.bounces.get(&node).is_some_and(|(n, at)| now.duration_since(*at) < refrain_for(*n))
    }
}

/// Hands each partition this node leads to its preferred node, when that node is alive and
/// caught up. Runs until Raft stops.
async fn balance(replicas: Vec<Replica>) {
    let mut handovers: Vec<Handover> = replicas.iter().map(|_| Handover::default()).collect();
    let mut tick = tokio::time::interval(BALANCE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !replicas[0].is_running() {
            return;
        }
        for (group, replica) in replicas.iter().enumerate().skip(1) {
            let Some((to, term)) = due_handover(group as GroupId, replica, &mut handovers[group]) else { continue };
            tracing::info!(group, to, "handing a partition to its preferred leader");
            metrics::counter!("overture_partition_handovers_total").increment(1);
            handovers[group].last = Some((to, Instant::now(), term));
            if let Err(e) = replica.transfer_leader(to).await {
                tracing::warn!(group, to, error = %e, "could not hand a partition over");
            }
        }
    }
}

/// The node this node should hand `group` to now, and the current term, if any.
fn due_handover(group: GroupId, replica: &Replica, handover: &mut Handover) -> Option<(NodeId, u64)> {
    let now = Instant::now();
    let m = replica.raft().metrics().borrow_watched().clone();
    if m.state != ServerState::Leader || !replica.leadership().serving() {
        return None;
    }
    let mut voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    voters.sort_unstable();
    let preferred = preferred_leader(group, &voters);
    if handover.under_way(group, m.current_term, preferred, now) {
        return None;
    }
    let to = preferred.filter(|to| *to != m.id)?;
    if handover.refrains_from(to, now) {
        return None;
    }
    let acked = m.heartbeat.as_ref()?.get(&to)?.as_ref()?;
    let since_ack = <crate::replica::RaftInstant as openraft::Instant>::now() - **acked;
    let matched = m.replication.as_ref()?.get(&to)?.as_ref().map_or(0, |l| l.index);
    let caught_up = matched >= m.last_log_index.unwrap_or(0);
    (since_ack < ALIVE_WITHIN && caught_up).then_some((to, m.current_term))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_are_dealt_out_to_the_voters_in_turn() {
        let voters = [1, 2, 3];
        let leaders: Vec<_> = (1..=6).map(|g| preferred_leader(g, &voters)).collect();
        assert_eq!(leaders, [Some(1), Some(2), Some(3), Some(1), Some(2), Some(3)]);
        assert_eq!(preferred_leader(0, &voters), None, "the metadata group stays where it is elected");
        assert_eq!(preferred_leader(4, &[7]), Some(7));
        assert_eq!(preferred_leader(1, &[]), None);
        // A fourth node takes the fourth partition.
        assert_eq!(preferred_leader(4, &[1, 2, 3, 4]), Some(4));
    }

    #[test]
    fn a_node_that_gives_a_partition_straight_back_is_left_alone_longer_each_time() {
        let t0 = Instant::now();
        let handed = |to| Handover { last: Some((to, t0, 5)), bounces: HashMap::new() };
        // Same term, just after: the handover is under way; later it is tried again.
        let mut h = handed(2);
        assert!(h.under_way(1, 5, Some(2), t0 + Duration::from_millis(500)));
        assert!(!h.under_way(1, 5, Some(2), t0 + Duration::from_secs(3)));
        assert!(h.bounces.is_empty() && h.last.is_none());
        // Another term within seconds, node 2 still preferred: it gave the group back, and is
        // left alone for a while, not for good.
        let mut h = handed(2);
        let back = t0 + Duration::from_secs(1);
        assert!(!h.under_way(1, 7, Some(2), back));
        assert!(h.refrains_from(2, back + REFRAIN_FIRST - Duration::from_millis(1)));
        assert!(!h.refrains_from(2, back + REFRAIN_FIRST));
        assert!(!h.refrains_from(3, back), "other nodes are not left alone");
        // Given back again right after the next try: twice as long, and so on up to the cap.
        let mut at = back + REFRAIN_FIRST;
        let mut waits = Vec::new();
        for term in 8..14 {
            h.last = Some((2, at, term));
            assert!(!h.under_way(1, term + 1, Some(2), at + Duration::from_secs(1)));
            at += Duration::from_secs(1);
            let wait = (1..=400).map(Duration::from_secs).find(|d| !h.refrains_from(2, at + *d)).expect("ends");
            waits.push(wait.as_secs());
            at += wait;
        }
        assert_eq!(waits, [20, 40, 80, 160, 300, 300]);
        // Left alone long enough, its bounces are forgotten: the next one waits the least again.
        assert!(!h.under_way(1, 20, Some(2), at + 2 * REFRAIN_MAX));
        assert!(h.bounces.is_empty());
        // The group came back because the preferred node changed, or long after: no penalty.
        let mut h = handed(2);
        assert!(!h.under_way(1, 7, Some(3), t0 + Duration::from_secs(1)));
        assert!(h.bounces.is_empty());
        let mut h = handed(2);
        assert!(!h.under_way(1, 7, Some(2), t0 + Duration::from_secs(60)));
        assert!(h.bounces.is_empty());
    }

    #[test]
    fn one_partition_is_one_group() {
        assert_eq!(group_count(0), 1);
        assert_eq!(group_count(1), 1);
        assert_eq!(group_count(6), 7);
    }
}

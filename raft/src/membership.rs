//! Membership changes of one Raft group, made by its leader: what a node asks another for when
//! that one leads the group ([`crate::network::paths::MEMBERSHIP`]), and why it may refuse.

use openraft::async_runtime::WatchReceiver;

use crate::Raft;
use crate::errors::{ProposeError, write_error};
use crate::types::{Node, NodeId};

/// A change of a group's membership, as a node asks the group's leader for it
/// ([`crate::network::paths::MEMBERSHIP`] when the leader is another node).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MembershipChange {
    /// Add a learner at this client address, and wait until it has caught up.
    AddLearner {
        /// Its node id.
        id: NodeId,
        /// Its client (HTTP) address.
        address: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Its node id.
        id: NodeId,
    },
    /// Remove a voter or learner.
    Remove {
        /// Its node id.
        id: NodeId,
    },
}

/// Why a group's leader did not make a membership change another node asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    /// Asking again (of the leader then) may succeed: leadership moved, or none is known.
    pub retry: bool,
    /// What went wrong.
    pub message: String,
}

impl Refusal {
    pub(crate) fn retry(message: String) -> Refusal {
        Refusal { retry: true, message }
    }
}

impl From<ProposeError> for Refusal {
    fn from(e: ProposeError) -> Refusal {
        let retry = matches!(e, ProposeError::NotLeader { .. } | ProposeError::Unknown | ProposeError::LeaseExpired);
        Refusal { retry, message: e.to_string() }
    }
}

/// Changes the membership of the group `raft` leads.
pub(crate) async fn change(raft: &Raft, change: MembershipChange) -> Result<(), ProposeError> {
    use openraft::ChangeMembers;
    use std::collections::BTreeSet;
    match change {
        MembershipChange::AddLearner { id, address } => {
            raft.add_learner(id, Node { addr: address }, true).await.map(|_| ()).map_err(write_error)
        }
        MembershipChange::Promote { id } => raft
            .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
            .await
            .map(|_| ())
            .map_err(write_error),
        MembershipChange::Remove { id } => {
            // A leader does not remove itself (openraft stops on it): it hands the group over
            // first, and the change is asked again of the next leader.
            let m = raft.metrics().borrow_watched().clone();
            let leads = m.state == openraft::ServerState::Leader;
            if m.id == id && leads {
                if let Some(to) = crate::disk::successor(&m, id) {
                    tracing::info!(to, "handing leadership over before leaving the group");
                    raft.trigger().transfer_leader(to).await.map_err(|f| ProposeError::Fatal(f.to_string()))?;
                }
                return Err(ProposeError::NotLeader { leader: None });
            }
            let membership = m.membership_config.membership();
            if leads && !membership.nodes().any(|(member, _)| *member == id) {
                return Ok(()); // Already removed: a repeated command.
            }
            let ids = BTreeSet::from([id]);
            let is_voter = membership.voter_ids().any(|v| v == id);
            if is_voter {
                raft.change_membership(ChangeMembers::RemoveVoters(ids.clone()), false).await.map_err(write_error)?;
            }
            raft.change_membership(ChangeMembers::RemoveNodes(ids), false).await.map(|_| ()).map_err(write_error)
        }
    }
}

//! Faults a test can inject into a running node, the way tikv's fail points do: switched on only
//! by `fault_injection` in the node's configuration, never in production.
//!
//! The one kept here is a network partition at the level of the Raft transport: a node told it
//! is cut off from some peers sends them nothing (an RPC fails as if the peer were unreachable)
//! and refuses what they send (their RPCs and the requests they forward). Clients still reach
//! every node, as they would a node on the wrong side of a switch failure. The fault suite builds
//! its partitions from this (the leader cut off from both followers, one follower cut off, a ring
//! in which each node sees only one other).

use std::collections::BTreeSet;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::types::NodeId;

/// The header a node names itself in on Raft RPCs and forwarded requests.
pub const FROM_HEADER: &str = "x-overture-from";

/// Faults injected into this node.
#[derive(Debug, Default)]
pub struct Faults {
    enabled: bool,
    cut_off: RwLock<BTreeSet<NodeId>>,
}

impl Faults {
    /// Faults that may be injected only if `enabled`.
    pub fn new(enabled: bool) -> Arc<Faults> {
        Arc::new(Faults { enabled, cut_off: RwLock::default() })
    }

    /// Whether this node takes injected faults at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Cuts this node off from `peers` (and reconnects every other); empty heals it.
    pub fn cut_off(&self, peers: BTreeSet<NodeId>) {
        if self.enabled {
            tracing::warn!(?peers, "fault injection: cut off from peers");
            *self.cut_off.write() = peers;
        }
    }

    /// Whether this node is cut off from `peer`.
    pub fn is_cut_off(&self, peer: NodeId) -> bool {
        self.enabled && self.cut_off.read().contains(&peer)
    }

    /// Whether a request naming its sender in `from` ([`FROM_HEADER`]) comes from a peer this
    /// node is cut off from.
    pub fn refuses(&self, from: Option<&[u8]>) -> bool {
        let peer = from.and_then(|v| std::str::from_utf8(v).ok()).and_then(|v| v.trim().parse::<NodeId>().ok());
        peer.is_some_and(|p| self.is_cut_off(p))
    }

    /// The peers this node is cut off from.
    pub fn peers_cut_off(&self) -> BTreeSet<NodeId> {
        self.cut_off.read().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_node_takes_no_fault() {
        let off = Faults::new(false);
        off.cut_off(BTreeSet::from([2]));
        assert!(!off.is_cut_off(2));
        assert!(!off.refuses(Some(b"2")));

        let on = Faults::new(true);
        on.cut_off(BTreeSet::from([2, 3]));
        assert!(on.is_cut_off(3) && !on.is_cut_off(1));
        assert!(on.refuses(Some(b"2")) && !on.refuses(Some(b"1")) && !on.refuses(None) && !on.refuses(Some(b"x")));
        on.cut_off(BTreeSet::new());
        assert!(!on.is_cut_off(2));
    }
}

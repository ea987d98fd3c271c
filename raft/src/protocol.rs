//! The node-to-node protocol version: what lets nodes of two releases run in one cluster during a
//! rolling upgrade.
//!
//! Every request one node sends another (Raft under `/internal/raft/`, the partitions' starts,
//! polls and operations under `/internal/partitions/`, client requests forwarded to a leader)
//! names the version it speaks in
//! [`PROTOCOL_HEADER`], and every answer names the server's. A request without the header is
//! version 0: what nodes built before the header existed send, in a format identical to version
//! 1's, so it is accepted. A node serves the versions from [`MIN_PROTOCOL_VERSION`] to
//! [`PROTOCOL_VERSION`] and refuses any other with a 426 whose JSON names both; the sender logs
//! that once per peer and version and treats the peer as unreachable (Raft backs off), never as
//! a reason to stop.
//!
//! A node speaks [`PROTOCOL_VERSION`] unless configured to speak an older one
//! (`protocol_version`): during a rolling upgrade the new nodes speak the version of the oldest
//! until every node is replaced. Each node records the version each peer speaks (from their
//! answers and their requests), shown per member in the cluster status and as the gauge
//! [`PEER_VERSION_GAUGE`].
//!
//! The bodies keep their own format version byte ([`crate::codec::WIRE_VERSION`]); a body of an
//! unknown format is refused with an error naming both format versions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::types::NodeId;

/// The node-to-node protocol version this build speaks (and the newest it serves).
pub const PROTOCOL_VERSION: u16 = 1;

/// The oldest version this build serves and may be told to speak: 0, the nodes built before
/// requests carried a version.
pub const MIN_PROTOCOL_VERSION: u16 = 0;

/// The header naming the protocol version, on requests between nodes and on their answers.
/// Absent means version 0.
pub const PROTOCOL_HEADER: &str = "x-overture-protocol";

/// The gauge of the version each peer speaks, labelled `peer`.
pub const PEER_VERSION_GAUGE: &str = "overture_peer_protocol_version";

/// The gauge of the version this node speaks.
pub const VERSION_GAUGE: &str = "overture_protocol_version";

/// Requests from peers refused because this node cannot speak their version.
pub const REFUSED_COUNTER: &str = "overture_protocol_refused_total";

/// Whether this build serves requests of `version`.
pub fn supported(version: u16) -> bool {
    (MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version)
}

/// The version a request or answer names in [`PROTOCOL_HEADER`] (`None`: no header, version 0).
pub fn version_of(header: Option<&[u8]>) -> Result<u16, String> {
    let Some(value) = header else { return Ok(0) };
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        .ok_or_else(|| format!("{PROTOCOL_HEADER} must be a protocol version number, not {value:?}"))
}

/// Why a request of version `theirs` is refused, naming both sides' versions.
pub fn refusal(theirs: u16) -> String {
    let side = if theirs > PROTOCOL_VERSION { "newer" } else { "older" };
    format!(
        "node-to-node protocol version {theirs} is {side} than this node serves (versions \
         {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}); upgrade the older node, or start the newer one with \
         protocol_version = {PROTOCOL_VERSION} or lower"
    )
}

/// The version a node speaks and what it knows of its peers' versions: shared by every Raft
/// group's network and server of the node (clones share it).
#[derive(Clone)]
pub struct Protocol {
    inner: Arc<Inner>,
}

struct Inner {
    speaks: u16,
    /// [`PROTOCOL_HEADER`]'s value, made once: it goes on every request and answer.
    header: Option<reqwest::header::HeaderValue>,
    peers: RwLock<BTreeMap<NodeId, u16>>,
    /// Peers (and the versions they said they serve) whose refusal has been logged.
    warned: Mutex<BTreeSet<(NodeId, Option<u16>)>>,
}

impl Default for Protocol {
    fn default() -> Protocol {
        Protocol::speaking(PROTOCOL_VERSION)
    }
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("speaks", &self.inner.speaks)
            .field("peers", &*self.inner.peers.read())
            .finish()
    }
}

impl Protocol {
    /// A node speaking `version`, which must be one this build serves.
    pub fn new(version: u16) -> Result<Protocol, String> {
        if !supported(version) {
            return Err(format!(
                "protocol_version {version} is not one this build speaks ({MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"
            ));
        }
        Ok(Protocol::speaking(version))
    }

    fn speaking(speaks: u16) -> Protocol {
        let header = (speaks > 0).then(|| reqwest::header::HeaderValue::from(speaks));
        Protocol { inner: Arc::new(Inner { speaks, header, peers: RwLock::default(), warned: Mutex::default() }) }
    }

    /// The version this node speaks.
    pub fn speaks(&self) -> u16 {
        self.inner.speaks
    }

    /// The [`PROTOCOL_HEADER`] value this node sends: none when it speaks version 0, as the nodes
    /// before the header did.
    pub fn header(&self) -> Option<reqwest::header::HeaderValue> {
        self.inner.header.clone()
    }

    /// Sets the gauge of this node's own version.
    pub fn register_metrics(&self) {
        metrics::gauge!(VERSION_GAUGE).set(f64::from(self.inner.speaks));
    }

    /// Records that `peer` speaks `version` (its answer or its request said so).
    pub fn record(&self, peer: NodeId, version: u16) {
        if self.inner.peers.read().get(&peer) == Some(&version) {
            return;
        }
        let before = self.inner.peers.write().insert(peer, version);
        if before != Some(version) {
            tracing::info!(peer, version, before, speaks = self.inner.speaks, "a peer's node-to-node protocol version");
            metrics::gauge!(PEER_VERSION_GAUGE, "peer" => peer.to_string()).set(f64::from(version));
        }
    }

    /// The version `peer` was last seen speaking.
    pub fn peer(&self, peer: NodeId) -> Option<u16> {
        self.inner.peers.read().get(&peer).copied()
    }

    /// Every peer's version, as last seen.
    pub fn peers(&self) -> BTreeMap<NodeId, u16> {
        self.inner.peers.read().clone()
    }

    /// `peer` refused a request of this node's version; it serves up to `theirs` if it said.
    /// Logged as a warning once per peer and version, then at debug level: Raft retries often.
    /// Returns whether this refusal was the one warned of.
    pub fn refused_by(&self, peer: NodeId, theirs: Option<u16>, why: &str) -> bool {
        if let Some(theirs) = theirs {
            self.record(peer, theirs);
        }
        let first = self.inner.warned.lock().insert((peer, theirs));
        if first {
            tracing::warn!(
                peer,
                peer_version = theirs,
                our_version = self.inner.speaks,
                why,
                "a peer refuses this node's node-to-node protocol version"
            );
        } else {
            tracing::debug!(peer, peer_version = theirs, our_version = self.inner.speaks, "refused by a peer again");
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_header_is_version_zero_and_versions_outside_the_range_are_refused() {
        assert_eq!(version_of(None), Ok(0));
        assert_eq!(version_of(Some(b"1")), Ok(1));
        assert_eq!(version_of(Some(b" 7 ")), Ok(7));
        assert!(version_of(Some(b"one")).is_err());
        assert!(version_of(Some(b"-1")).is_err());
        assert!(supported(0) && supported(PROTOCOL_VERSION) && !supported(PROTOCOL_VERSION + 1));
        let why = refusal(PROTOCOL_VERSION + 1);
        assert!(why.contains(&format!("version {}", PROTOCOL_VERSION + 1)) && why.contains("newer"), "{why}");
        assert!(why.contains(&format!("{MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}")), "{why}");
    }

    #[test]
    fn a_node_speaking_version_zero_sends_no_header() {
        assert_eq!(Protocol::new(0).expect("speaks 0").header(), None);
        assert_eq!(Protocol::default().header(), Some(reqwest::header::HeaderValue::from(PROTOCOL_VERSION)));
        assert!(Protocol::new(PROTOCOL_VERSION + 1).is_err());
    }

    #[test]
    fn peers_are_recorded_and_shared_by_clones() {
        let p = Protocol::default();
        let q = p.clone();
        p.record(2, 0);
        q.record(3, 1);
        p.record(2, 1);
        assert_eq!(q.peers(), BTreeMap::from([(2, 1), (3, 1)]));
        assert!(p.refused_by(4, Some(9), "too new"), "the first refusal is warned of");
        assert!(!q.refused_by(4, Some(9), "too new"), "once per peer and version");
        assert_eq!(p.peer(4), Some(9));
        assert!(p.refused_by(4, Some(10), "too new"), "a peer at another version is warned of again");
        assert!(p.refused_by(5, None, "old"));
        assert_eq!(p.peer(5), None);
    }
}

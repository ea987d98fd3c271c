//! How a node opens its replicas: the settings every Raft group of a node shares.

use std::path::PathBuf;
use std::time::Duration;

use crate::types::NodeId;

/// How to open a replica.
#[derive(Debug, Clone)]
pub struct ReplicaOptions {
    /// This node's id in the group.
    pub node_id: NodeId,
    /// Where the database and snapshots live.
    pub data_dir: PathBuf,
    /// Build a snapshot (and purge the log behind it) after this many entries.
    pub snapshot_every: u64,
    /// Log entries kept behind a snapshot, for followers that lag a little.
    pub keep_after_snapshot: u64,
    /// Executions kept decoded in memory by the state machine.
    pub cache_capacity: usize,
    /// Raft heartbeat interval.
    pub heartbeat: Duration,
    /// Lower bound of the election timeout (the upper is twice that).
    pub election_timeout: Duration,
    /// The secret nodes present to each other; without one a node talks to no peer.
    pub cluster_secret: Option<String>,
    /// Below this many bytes free in the data directory the node refuses writes
    /// ([`crate::disk`]).
    pub min_free_disk_bytes: u64,
    /// Whether tests may inject faults into this node ([`crate::faults`]).
    pub fault_injection: bool,
    /// The node-to-node protocol version this node speaks, and what it learns of its peers'
    /// (shared by all its groups: clones of the options share it).
    pub protocol: crate::protocol::Protocol,
}

impl ReplicaOptions {
    /// Defaults for a node storing under `data_dir`.
    pub fn new(node_id: NodeId, data_dir: PathBuf) -> ReplicaOptions {
        ReplicaOptions {
            node_id,
            data_dir,
            snapshot_every: 20_000,
            keep_after_snapshot: 1_000,
            cache_capacity: 4_096,
            heartbeat: Duration::from_millis(100),
            election_timeout: Duration::from_millis(500),
            cluster_secret: None,
            min_free_disk_bytes: DEFAULT_MIN_FREE_DISK_BYTES,
            fault_injection: false,
            protocol: crate::protocol::Protocol::default(),
        }
    }
}

/// Free space a node keeps in reserve by default: writes stop below it.
pub const DEFAULT_MIN_FREE_DISK_BYTES: u64 = 256 << 20;

//! What Raft's failures mean to callers: why a proposal did not take effect, and why a node's
//! Raft stopped.

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, RaftError};

use crate::Raft;
use crate::types::NodeId;

/// Why a proposal did not take effect.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeError {
    /// This node is not the leader; retry there (or later, during an election).
    #[error("this node is not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<NodeId>,
    },
    /// Leadership changed while the entry was in flight; it may or may not have been committed.
    #[error("leadership changed while the request was in flight; it may or may not have taken effect")]
    Unknown,
    /// Raft refused the request (e.g. a membership change that is not allowed now).
    #[error("{0}")]
    Rejected(String),
    /// The Raft node stopped.
    #[error("raft stopped: {0}")]
    Fatal(String),
    /// This node's disk is too full to take writes ([`crate::disk`]); the message says how full.
    #[error("{0}")]
    DiskFull(String),
    /// This node leads, but has not heard from a majority of the group within its lease: it may
    /// be cut off, and another node may be leading. Retry (another node may be elected).
    #[error("this node leads but has not heard from a majority of the cluster within its lease; retry shortly")]
    LeaseExpired,
}

/// The proposal error an openraft write error means.
pub(crate) fn write_error(
    e: RaftError<crate::types::TypeConfig, ClientWriteError<crate::types::TypeConfig>>,
) -> ProposeError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f))
            if f.reason == openraft::errors::ForwardReason::LeaseExpired =>
        {
            ProposeError::LeaseExpired
        }
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ProposeError::NotLeader { leader: f.leader_id },
        RaftError::APIError(ClientWriteError::LogEntryDiscarded(_)) => ProposeError::Unknown,
        RaftError::APIError(other) => ProposeError::Rejected(other.to_string()),
        RaftError::Fatal(f) => ProposeError::Fatal(f.to_string()),
    }
}

/// Why `raft` stopped, if it has (a fatal error, or a shutdown).
pub(crate) fn why_stopped(raft: &Raft) -> Option<String> {
    raft.metrics().borrow_watched().running_state.as_ref().err().map(ToString::to_string)
}

/// Why the replica could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// RocksDB or the files around it.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
}

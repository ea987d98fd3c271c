//! What the engine answers when it cannot do what was asked. Each variant maps to one HTTP status.

use overture_core::Rejection;
use overture_core::validate::Violations;
use overture_raft::ProposeError;

/// An engine error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// 400.
    #[error("{0}")]
    BadRequest(String),
    /// 400 with Conductor's `validationErrors`.
    #[error("Validation failed, check below errors for detail.")]
    Invalid(Violations),
    /// 503, retryable: no leader yet, leadership moved, or the node is shutting down.
    #[error("{0}")]
    Unavailable(String),
    /// 429, retryable: more requests are waiting (for one workflow, or on this node) than it
    /// takes on; the caller should slow down.
    #[error("{0}")]
    Overloaded(String),
    /// 507, retryable: this node's disk is too full to take writes; it takes them again once
    /// space is freed.
    #[error("{0}")]
    DiskFull(String),
    /// 503, retryable: another node leads the group this request acts on (a partitioned
    /// cluster). Nothing was done; the API forwards the request to that node.
    #[error("{} is led by node {node} at {address}; ask it", if *group == 0 { "the cluster".to_owned() } else { format!("partition {group}") })]
    Elsewhere {
        /// The Raft group.
        group: overture_raft::GroupId,
        /// The node that leads it.
        node: u64,
        /// That node's client address.
        address: String,
    },
    /// 500: storage failed or a bug. Nothing acknowledged is lost.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    /// Whether the same request may succeed later: the error is about where or when it was
    /// made (no leader, another node leads, overload, a full disk, a storage failure), not
    /// about the request.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::Elsewhere { .. }
                | Error::Overloaded(_)
                | Error::DiskFull(_)
                | Error::Internal(_)
        )
    }
}

/// Why a leader that lost touch with the majority answers nothing that needs a leader.
pub(crate) const LEASE_LOST: &str = "this node was the leader but has not heard from a majority of the cluster within its lease (it may be cut off while another node takes over); retry shortly";

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Error {
        match r {
            Rejection::NotFound(m) => Error::NotFound(m),
            Rejection::Conflict(m) => Error::Conflict(m),
            Rejection::BadRequest(m) => Error::BadRequest(m),
        }
    }
}

impl From<ProposeError> for Error {
    fn from(e: ProposeError) -> Error {
        match e {
            ProposeError::NotLeader { leader: Some(id) } => {
                Error::Unavailable(format!("this node is not the leader; node {id} is"))
            }
            ProposeError::NotLeader { leader: None } => Error::Unavailable("a leader election is in progress".into()),
            ProposeError::Unknown => Error::Unavailable(
                "leadership changed while the request was in flight; retry it (it is safe to repeat)".into(),
            ),
            ProposeError::Rejected(m) => Error::Conflict(m),
            ProposeError::Fatal(m) => Error::Internal(m),
            ProposeError::DiskFull(m) => Error::DiskFull(m),
            ProposeError::LeaseExpired => Error::Unavailable(LEASE_LOST.into()),
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Internal(format!("storage: {e}"))
    }
}

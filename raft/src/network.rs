//! Raft RPC between nodes.
//!
//! A one-member group (the `overture dev` node) never sends an RPC: there is no one to send it to.
//! The inter-node transport (append, vote and snapshot streaming over an authenticated internal
//! listener) arrives with multi-node clusters; until then a node that is asked to reach a peer
//! reports it unreachable, which openraft treats as a node that is down.

use std::future::Future;

use openraft::RaftNetworkFactory;
use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};

use crate::snapshot::SnapshotFile;
use crate::types::{Node, NodeId, TypeConfig, Vote};

/// Creates connections to peers.
#[derive(Clone, Default)]
pub struct Network;

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> PeerConnection {
        PeerConnection { target }
    }
}

impl PeerConnection {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        Unreachable::from_string(format!(
            "node {} cannot be reached: this build has no inter-node transport",
            self.target
        ))
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>,
        _cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}

//! The server half of Raft RPC: what a node does with the requests [`crate::network`] sends.
//!
//! The API crate mounts these under `/internal/raft/` after checking the cluster secret with
//! [`RpcServer::authorized`]. Bodies and answers are versioned bincode messages.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use openraft::raft::{AppendEntriesRequest, TransferLeaderRequest, VoteRequest};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use crate::Raft;
use crate::codec::{decode_message, encode_message};
use crate::network::{Answer, decode_snapshot_header};
use crate::snapshot::SnapshotFile;
use crate::types::TypeConfig;

/// Handles Raft RPCs for one node.
#[derive(Clone)]
pub struct RpcServer {
    pub(crate) group: crate::GroupId,
    pub(crate) raft: Raft,
    pub(crate) secret: Option<Arc<str>>,
    pub(crate) incoming_dir: PathBuf,
    pub(crate) faults: Arc<crate::faults::Faults>,
    pub(crate) protocol: crate::protocol::Protocol,
}

fn answer<T: Serialize>(a: Answer<T>) -> Vec<u8> {
    encode_message(&a)
}

impl RpcServer {
    /// The Raft group these requests are for.
    pub fn group(&self) -> crate::GroupId {
        self.group
    }

    /// Faults injected into this node.
    pub fn faults(&self) -> &crate::faults::Faults {
        &self.faults
    }

    /// The node-to-node protocol version this node speaks, and its peers' as last seen.
    pub fn protocol(&self) -> &crate::protocol::Protocol {
        &self.protocol
    }

    /// Whether this node has a cluster secret.
    pub fn has_secret(&self) -> bool {
        self.secret.is_some()
    }

    /// Whether a request carrying this secret may talk Raft to this node. A node configured
    /// without a secret accepts no peer at all.
    pub fn authorized(&self, presented: Option<&[u8]>) -> bool {
        match (&self.secret, presented) {
            (Some(secret), Some(presented)) => constant_time_eq(secret.as_bytes(), presented),
            _ => false,
        }
    }

    /// `AppendEntries` (and heartbeats).
    pub async fn append(&self, body: &[u8]) -> Vec<u8> {
        let result = match decode_message::<AppendEntriesRequest<TypeConfig>>(body) {
            Ok(rpc) => self.raft.append_entries(rpc).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("undecodable append: {e}")),
        };
        answer(result)
    }

    /// `RequestVote`.
    pub async fn vote(&self, body: &[u8]) -> Vec<u8> {
        let result = match decode_message::<VoteRequest<TypeConfig>>(body) {
            Ok(rpc) => self.raft.vote(rpc).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("undecodable vote: {e}")),
        };
        answer(result)
    }

    /// Pre-vote.
    pub async fn pre_vote(&self, body: &[u8]) -> Vec<u8> {
        let result = match decode_message::<VoteRequest<TypeConfig>>(body) {
            Ok(rpc) => self.raft.pre_vote(rpc).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("undecodable pre-vote: {e}")),
        };
        answer(result)
    }

    /// A leader hands the group over: to this node, or to another (this node then stops
    /// standing in the way of its election).
    pub async fn transfer_leader(&self, body: &[u8]) -> Vec<u8> {
        let result = match decode_message::<TransferLeaderRequest<TypeConfig>>(body) {
            Ok(rpc) => self.raft.handle_transfer_leader(rpc).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("undecodable leader transfer: {e}")),
        };
        answer(result)
    }

    /// A membership change another node asks this node, as the group's leader, to make.
    pub async fn membership(&self, body: &[u8]) -> Vec<u8> {
        let result = match decode_message::<crate::membership::MembershipChange>(body) {
            Ok(change) => {
                Ok(crate::membership::change(&self.raft, change).await.map_err(crate::membership::Refusal::from))
            }
            Err(e) => Err(format!("undecodable membership change: {e}")),
        };
        answer(result)
    }

    /// Receives a streamed snapshot into a file, then installs it. A node whose Raft has
    /// stopped refuses it before reading any of it: the leader sends a snapshot again after each
    /// failure, and receiving a large one over and over would take the others' disk and CPU. A
    /// snapshot that is not installed leaves no file behind.
    pub async fn install_snapshot<S, E>(&self, body: S) -> Vec<u8>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        if let Some(why) = crate::errors::why_stopped(&self.raft) {
            metrics::counter!("overture_snapshot_refused_total").increment(1);
            return answer::<openraft::raft::SnapshotResponse<TypeConfig>>(Err(format!("Raft has stopped: {why}")));
        }
        let path = self.incoming_dir.join(format!("incoming-{}.snap", uuid_like()));
        let result = self.receive_and_install(body, &path).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&path).await;
        }
        answer(result)
    }

    async fn receive_and_install<S, E>(
        &self,
        mut body: S,
        path: &std::path::Path,
    ) -> Answer<openraft::raft::SnapshotResponse<TypeConfig>>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let started = std::time::Instant::now();
        tokio::fs::create_dir_all(&self.incoming_dir).await.map_err(|e| e.to_string())?;
        let mut file = tokio::fs::File::create(path).await.map_err(|e| e.to_string())?;
        let received = metrics::counter!("overture_snapshot_received_bytes_total");
        let mut head: Vec<u8> = Vec::new();
        let mut header = None;
        let mut bytes = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| format!("snapshot stream broke: {e}"))?;
            received.increment(chunk.len() as u64);
            if header.is_some() {
                file.write_all(&chunk).await.map_err(|e| e.to_string())?;
                bytes += chunk.len() as u64;
                continue;
            }
            head.extend_from_slice(&chunk);
            if head.len() < 4 {
                continue;
            }
            let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if head.len() < 4 + len {
                continue;
            }
            header = Some(decode_snapshot_header(&head[4..4 + len])?);
            let rest = &head[4 + len..];
            file.write_all(rest).await.map_err(|e| e.to_string())?;
            bytes += rest.len() as u64;
            head = Vec::new();
        }
        let (vote, meta) = header.ok_or("the snapshot stream ended before its header")?;
        file.sync_all().await.map_err(|e| e.to_string())?;
        drop(file);
        let snapshot = openraft::alias::SnapshotOf::<TypeConfig, SnapshotFile> {
            meta,
            snapshot: SnapshotFile { path: path.to_owned() },
        };
        let result = self.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string());
        let _ = tokio::fs::remove_file(path).await;
        metrics::counter!("overture_snapshot_received_total").increment(1);
        tracing::info!(bytes, seconds = started.elapsed().as_secs_f64(), "received a snapshot");
        result
    }
}

/// Compares secrets in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A unique-enough file name part: time and a counter.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default();
    format!("{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare_whole() {
        assert!(super::constant_time_eq(b"abc", b"abc"));
        assert!(!super::constant_time_eq(b"abc", b"abd"));
        assert!(!super::constant_time_eq(b"abc", b"ab"));
    }
}

//! Raft RPC between nodes, over HTTP on each node's client address.
//!
//! Requests are `POST`s under `/internal/raft/` whose bodies are versioned bincode messages
//! ([`crate::codec::encode_message`]); every request carries the cluster secret in
//! [`SECRET_HEADER`], and a node refuses requests without the right one. A snapshot is streamed:
//! a length-prefixed header (vote and metadata) followed by the snapshot file's bytes as they are
//! read, so neither side holds it in memory whole. A request for a Raft group other than 0 names
//! it in [`GROUP_HEADER`]. Requests and answers name the node-to-node protocol version they speak
//! ([`crate::protocol`]); each answer's is recorded as the peer's.
//!
//! This module is the client half; [`crate::rpc`] is the server half the API mounts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use openraft::RaftNetworkFactory;
use openraft::errors::{NetworkError, RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::network::v2::RaftNetworkV2;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, TransferLeaderRequest, TransferLeaderResponse,
    VoteRequest, VoteResponse,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode_message, encode_message};
use crate::faults::{FROM_HEADER, Faults};
use crate::group_db::GroupId;
use crate::protocol::{PROTOCOL_HEADER, Protocol};
use crate::snapshot::SnapshotFile;
use crate::types::{Node, NodeId, SnapshotMeta, TypeConfig, Vote};

/// The header carrying the cluster secret.
pub const SECRET_HEADER: &str = "x-overture-cluster-secret";

/// The header naming the Raft group a request is for; absent for group 0, so peers of a node
/// with one group are addressed as before there were several.
pub const GROUP_HEADER: &str = "x-overture-group";

/// Internal paths.
pub mod paths {
    /// Append entries (and heartbeats).
    pub const APPEND: &str = "/internal/raft/append";
    /// Request a vote.
    pub const VOTE: &str = "/internal/raft/vote";
    /// Request a pre-vote.
    pub const PRE_VOTE: &str = "/internal/raft/pre-vote";
    /// Stream a full snapshot.
    pub const SNAPSHOT: &str = "/internal/raft/snapshot";
    /// A leader hands its group over to the receiver (or tells the others it does).
    pub const TRANSFER_LEADER: &str = "/internal/raft/transfer-leader";
    /// Change the membership of a group the receiver leads
    /// ([`crate::membership::MembershipChange`]).
    pub const MEMBERSHIP: &str = "/internal/raft/membership";
    /// How many Raft groups the receiver runs (asked of a node before it is added).
    pub const GROUPS: &str = "/internal/raft/groups";
    /// Start a workflow in a partition the receiver leads (a cross-partition start: a
    /// schedule's fire, an event handler's action).
    pub const PARTITION_START: &str = "/internal/partitions/start";
    /// Hand out tasks from the partitions the receiver leads, without waiting (a poll that the
    /// sender's own partitions could not serve).
    pub const PARTITION_POLL: &str = "/internal/partitions/poll";
    /// A task is ready in a queue of a partition the sender leads, and the receiver asked for
    /// one lately: a long poll of the receiver waiting on that queue asks the sender at once.
    pub const PARTITION_READY: &str = "/internal/partitions/ready";
    /// The poll data of the partitions the receiver leads (`/api/tasks/queue/polldata`).
    pub const PARTITION_POLL_DATA: &str = "/internal/partitions/polldata";
    /// A permit to hand out a task of a limited definition, asked of the metadata group's
    /// leader (task definitions' limits count over every partition).
    pub const LIMITS_PERMIT: &str = "/internal/limits/permit";
    /// The IN_PROGRESS tasks of limited definitions in the partitions the sender leads, told
    /// to the metadata group's leader; it answers the definitions whose polls to wake.
    pub const LIMITS_REPORT: &str = "/internal/limits/report";
    /// Act on a workflow of a partition the receiver leads (an event handler's action).
    pub const PARTITION_OP: &str = "/internal/partitions/op";
    /// The receiver's committed index of a group it leads, once it has applied it (a backup or,
    /// with partitions, a consistent read on another node waits until it has applied as much).
    pub const READ_INDEX: &str = "/internal/raft/read-index";
}

/// What the server half answers: the Raft response, or why the node could not handle it.
pub(crate) type Answer<T> = Result<T, String>;

/// Creates connections to peers.
#[derive(Clone)]
pub struct Network {
    client: reqwest::Client,
    secret: Option<Arc<str>>,
    /// This node, named on every request.
    from: Arc<str>,
    /// The group, named on every request unless it is 0.
    group: Option<Arc<str>>,
    faults: Arc<Faults>,
    /// The version this node speaks, and its peers'.
    protocol: Protocol,
}

impl Network {
    /// A network for node `from` in `group` that authenticates with `secret` (a node without one
    /// can only be alone) and speaks `protocol`, subject to injected `faults`.
    pub fn new(
        secret: Option<String>,
        from: NodeId,
        group: GroupId,
        faults: Arc<Faults>,
        protocol: Protocol,
    ) -> Network {
        let client = crate::http::client()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(1))
            .build()
            .unwrap_or_default();
        let group = (group != 0).then(|| group.to_string().into());
        Network { client, secret: secret.map(Arc::from), from: from.to_string().into(), group, faults, protocol }
    }

    /// The same network, speaking for `group`: the same client and connections.
    pub fn in_group(&self, group: GroupId) -> Network {
        Network { group: (group != 0).then(|| group.to_string().into()), ..self.clone() }
    }

    /// A connection to node `target` at client address `addr` (`host:port` or a URL).
    pub fn connect(&self, target: NodeId, addr: &str) -> PeerConnection {
        let addr = addr.trim_end_matches('/');
        let base = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
        PeerConnection {
            target,
            base,
            client: self.client.clone(),
            secret: self.secret.clone(),
            from: self.from.clone(),
            group: self.group.clone(),
            faults: self.faults.clone(),
            protocol: self.protocol.clone(),
        }
    }
}

/// A connection to one peer.
pub struct PeerConnection {
    target: NodeId,
    base: String,
    client: reqwest::Client,
    secret: Option<Arc<str>>,
    from: Arc<str>,
    group: Option<Arc<str>>,
    faults: Arc<Faults>,
    protocol: Protocol,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> PeerConnection {
        self.connect(target, &node.addr)
    }
}

impl PeerConnection {
    fn request(&self, path: &str, ttl: Duration) -> reqwest::RequestBuilder {
        let mut request =
            self.client.post(format!("{}{path}", self.base)).timeout(ttl).header(FROM_HEADER, self.from.as_ref());
        if let Some(secret) = &self.secret {
            request = request.header(SECRET_HEADER, secret.as_ref());
        }
        if let Some(group) = &self.group {
            request = request.header(GROUP_HEADER, group.as_ref());
        }
        if let Some(version) = self.protocol.header() {
            request = request.header(PROTOCOL_HEADER, version);
        }
        request
    }

    async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        let body = encode_message(req);
        let ttl = option.hard_ttl() + transfer_allowance(body.len());
        self.send(path, body, ttl).await
    }

    /// Sends `req` to `path` and waits up to `ttl` for the answer.
    pub(crate) async fn call_within<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        path: &str,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        self.send(path, encode_message(req), ttl).await
    }

    async fn send<Resp: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        ttl: Duration,
    ) -> Result<Resp, RPCError<TypeConfig>> {
        self.reachable()?;
        let response = self.request(path, ttl).body(body).send().await.map_err(|e| self.failed(&e))?;
        self.answer(response).await
    }

    async fn answer<Resp: DeserializeOwned>(&self, response: reqwest::Response) -> Result<Resp, RPCError<TypeConfig>> {
        let status = response.status();
        // A peer built before versions existed names none: version 0.
        let theirs = crate::protocol::version_of(response.headers().get(PROTOCOL_HEADER).map(|v| v.as_bytes())).ok();
        let body = response.bytes().await.map_err(|e| self.failed(&e))?;
        if status == reqwest::StatusCode::UPGRADE_REQUIRED {
            let why = refusal_message(&body);
            let _first = self.protocol.refused_by(self.target, theirs, &why);
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {} (protocol version {}) refuses this node's protocol version {}: {why}",
                self.target,
                theirs.map_or_else(|| "unknown".to_owned(), |v| v.to_string()),
                self.protocol.speaks()
            ))));
        }
        if let Some(theirs) = theirs {
            self.protocol.record(self.target, theirs);
        }
        if !status.is_success() {
            let why = String::from_utf8_lossy(&body);
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {} refused: {status} {why}",
                self.target
            ))));
        }
        match decode_message::<Answer<Resp>>(&body) {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(why)) => {
                Err(RPCError::Unreachable(Unreachable::from_string(format!("node {}: {why}", self.target))))
            }
            Err(e) => {
                Err(RPCError::Network(NetworkError::from_string(format!("node {}: bad answer: {e}", self.target))))
            }
        }
    }

    /// Fails as an unreachable peer would while fault injection cuts this node off from it.
    fn reachable(&self) -> Result<(), RPCError<TypeConfig>> {
        if self.faults.is_cut_off(self.target) {
            return Err(RPCError::Unreachable(Unreachable::from_string(format!(
                "node {} is cut off (fault injection)",
                self.target
            ))));
        }
        Ok(())
    }

    /// A connection that cannot be made means the node is down: back off. Anything else
    /// (a timeout, a reset) may be retried at once.
    fn failed(&self, e: &reqwest::Error) -> RPCError<TypeConfig> {
        if e.is_connect() {
            RPCError::Unreachable(Unreachable::new(e))
        } else {
            RPCError::Network(NetworkError::new(e))
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerConnection {
    type SnapshotData = SnapshotFile;

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::APPEND, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::VOTE, &rpc, &option).await
    }

    async fn pre_vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::PRE_VOTE, &rpc, &option).await
    }

    async fn transfer_leader(
        &mut self,
        req: TransferLeaderRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<TransferLeaderResponse<TypeConfig>, RPCError<TypeConfig>> {
        self.call(paths::TRANSFER_LEADER, &req, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        self.reachable().map_err(|e| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            other => StreamingError::Unreachable(Unreachable::from_string(other.to_string())),
        })?;
        let header = encode_message(&(vote, snapshot.meta.clone()));
        let file = tokio::fs::File::open(&snapshot.snapshot.path)
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        let prefix = futures::stream::iter([
            Ok::<Bytes, std::io::Error>(Bytes::from((header.len() as u32).to_be_bytes().to_vec())),
            Ok(Bytes::from(header)),
        ]);
        let body = prefix.chain(tokio_util::io::ReaderStream::with_capacity(file, 256 << 10));
        let send = self.request(paths::SNAPSHOT, option.hard_ttl()).body(reqwest::Body::wrap_stream(body)).send();
        let response = tokio::select! {
            closed = cancel => return Err(StreamingError::Closed(closed)),
            r = send => r.map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?,
        };
        self.answer(response).await.map_err(|e| match e {
            RPCError::Unreachable(u) => StreamingError::Unreachable(u),
            RPCError::Network(n) => StreamingError::Network(n),
            other => StreamingError::Unreachable(Unreachable::from_string(other.to_string())),
        })
    }
}

/// The message of a refusal's JSON body (the body itself if it is not JSON).
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned())
}

/// The slowest transfer between peers a request still completes at, in bytes per second.
const MIN_PEER_BYTES_PER_SECOND: usize = 4 << 20;

/// Time a request of `bytes` is given on top of openraft's deadline for it. That deadline is the
/// heartbeat interval (100 ms), which an empty heartbeat meets but a follower catching up does
/// not: a batch of a few hundred large entries is tens of megabytes, and a request that times
/// out is sent again, the same size, so a lagging follower could never catch up.
fn transfer_allowance(bytes: usize) -> Duration {
    Duration::from_secs_f64(bytes as f64 / MIN_PEER_BYTES_PER_SECOND as f64)
}

/// Decodes the snapshot stream's header: its length prefix has already been read.
pub(crate) fn decode_snapshot_header(bytes: &[u8]) -> Result<(Vote, SnapshotMeta), String> {
    decode_message(bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_requests_get_time_to_travel() {
        assert!(transfer_allowance(0).is_zero(), "a heartbeat keeps openraft's deadline");
        assert!(transfer_allowance(4 << 10) < Duration::from_millis(1));
        // 300 entries of 256 KiB: what a follower back from a full disk is sent at once.
        assert!(transfer_allowance(300 * (256 << 10)) >= Duration::from_secs(18));
    }

    /// A peer on loopback that answers every request with `status`, `headers` and `body`, and
    /// sends each request's head (request line and headers) to the returned channel.
    async fn peer(
        status: &'static str,
        headers: &'static str,
        body: Vec<u8>,
    ) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (heads, received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The head, then as many body bytes as it announces.
                let head = loop {
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break Some((String::from_utf8_lossy(&request[..end]).to_lowercase(), end + 4));
                    }
                };
                let Some((head, body_at)) = head else { continue };
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while request.len() < body_at + length {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = heads.send(head);
                let mut answer = format!(
                    "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                answer.extend_from_slice(&body);
                let _ = socket.write_all(&answer).await;
            }
        });
        (addr, received)
    }

    fn network(protocol: Protocol) -> Network {
        Network::new(Some("s".into()), 1, 0, Faults::new(false), protocol)
    }

    #[tokio::test]
    async fn requests_name_the_version_spoken_and_answers_record_the_peers() {
        let ok = encode_message(&Ok::<u8, String>(7));
        let (addr, mut heads) = peer("200 OK", "x-overture-protocol: 1\r\n", ok.clone()).await;
        let protocol = Protocol::default();
        let answer: u8 = network(protocol.clone())
            .connect(2, &addr)
            .call_within(paths::GROUPS, &(), Duration::from_secs(5))
            .await
            .expect("answered");
        assert_eq!(answer, 7);
        let head = heads.recv().await.expect("a request");
        assert!(head.contains(&format!("x-overture-protocol: {}", crate::protocol::PROTOCOL_VERSION)), "{head}");
        assert_eq!(protocol.peer(2), Some(1));

        // A node speaking version 0 names none, as the nodes before versions; a peer that names
        // none is recorded at version 0.
        let (addr, mut heads) = peer("200 OK", "", ok).await;
        let old = Protocol::new(0).expect("speaks 0");
        let _: u8 = network(old.clone())
            .connect(3, &addr)
            .call_within(paths::GROUPS, &(), Duration::from_secs(5))
            .await
            .expect("answered");
        let head = heads.recv().await.expect("a request");
        assert!(!head.contains("x-overture-protocol"), "{head}");
        assert_eq!(old.peer(3), Some(0));
    }

    #[tokio::test]
    async fn a_refusal_of_the_version_names_both_and_leaves_the_peer_unreachable() {
        let body = br#"{"status":426,"message":"node-to-node protocol version 1 is newer than this node serves (versions 0 to 0)"}"#;
        let (addr, _heads) =
            peer("426 Upgrade Required", "x-overture-protocol: 0\r\ncontent-type: application/json\r\n", body.to_vec())
                .await;
        let protocol = Protocol::default();
        let connection = network(protocol.clone()).connect(4, &addr);
        for _ in 0..3 {
            let err =
                connection.call_within::<(), u8>(paths::VOTE, &(), Duration::from_secs(5)).await.expect_err("refused");
            let text = err.to_string();
            assert!(matches!(err, RPCError::Unreachable(_)), "Raft backs off: {text}");
            assert!(text.contains("node 4 (protocol version 0) refuses this node's protocol version 1"), "{text}");
            assert!(text.contains("versions 0 to 0"), "{text}");
        }
        assert_eq!(protocol.peer(4), Some(0), "the peer's version is recorded from its refusal");
    }
}

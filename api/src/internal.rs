//! `/internal/raft/*` and `/internal/partitions/*`: requests from peer nodes. Every request must
//! carry the cluster secret; anything else is refused with 403 before its body is read. A request
//! of a node-to-node protocol version this node does not serve ([`overture_raft::protocol`]) is
//! refused with 426 and a JSON body naming both versions; every answer names the version this
//! node speaks.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use overture_raft::GroupId;
use overture_raft::network::{GROUP_HEADER, SECRET_HEADER};
use overture_raft::protocol::{self, MIN_PROTOCOL_VERSION, PROTOCOL_HEADER, PROTOCOL_VERSION, Protocol};
use overture_raft::rpc::RpcServer;

use crate::AppState;
use crate::error::ApiError;

/// Appends from the leader carry up to a few hundred entries, each up to the request body
/// limit; peers are authenticated, so the bound is generous.
const MAX_RPC_BYTES: usize = 1 << 30;

/// Refuses callers without the cluster secret, and requests of a protocol version this node
/// does not serve; records the version of the sender of the others.
pub async fn authenticate(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let protocol = s.engine.rpc().protocol().clone();
    let presented = request.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
    if !s.engine.rpc().authorized(presented) {
        metrics::counter!(crate::INTERNAL_REJECTED).increment(1);
        let refused = ApiError::new(StatusCode::FORBIDDEN, "internal endpoints need the cluster secret");
        return with_version(&protocol, refused.into_response());
    }
    let from = request.headers().get(overture_raft::faults::FROM_HEADER).map(|v| v.as_bytes());
    if s.engine.rpc().faults().refuses(from) {
        let refused = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cut off from the sender (fault injection)");
        return with_version(&protocol, refused.into_response());
    }
    let theirs = match served_version(&protocol, request.headers()) {
        Ok(version) => version,
        Err(refused) => return *refused,
    };
    if let Some(sender) = sender_of(request.headers()) {
        protocol.record(sender, theirs);
    }
    with_version(&protocol, next.run(request).await)
}

/// The node a peer's request says it comes from.
fn sender_of(headers: &HeaderMap) -> Option<u64> {
    let from = headers.get(overture_raft::faults::FROM_HEADER)?;
    from.to_str().ok()?.trim().parse().ok()
}

/// The node-to-node protocol version `headers` name, if this node serves it; otherwise the
/// answer to give: 400 for a header that is no version, 426 naming both versions for one it
/// does not serve. Also checks requests other nodes forward (`crate::forward`).
pub(crate) fn served_version(protocol: &Protocol, headers: &HeaderMap) -> Result<u16, Box<Response>> {
    let theirs = protocol::version_of(headers.get(PROTOCOL_HEADER).map(|v| v.as_bytes()))
        .map_err(|why| Box::new(with_version(protocol, ApiError::bad_request(why).into_response())))?;
    if !protocol::supported(theirs) {
        metrics::counter!(protocol::REFUSED_COUNTER).increment(1);
        let why = protocol::refusal(theirs);
        tracing::debug!(version = theirs, "refused a request of a protocol version this node does not serve");
        let body = serde_json::json!({
            "status": StatusCode::UPGRADE_REQUIRED.as_u16(),
            "message": why,
            "instance": crate::instance_name(),
            "retryable": false,
            "requestProtocolVersion": theirs,
            "protocolVersion": protocol.speaks(),
            "minProtocolVersion": MIN_PROTOCOL_VERSION,
            "maxProtocolVersion": PROTOCOL_VERSION,
        });
        return Err(Box::new(with_version(protocol, (StatusCode::UPGRADE_REQUIRED, axum::Json(body)).into_response())));
    }
    Ok(theirs)
}

/// `response` naming the protocol version this node speaks, unless that is 0 (whose nodes name
/// none).
pub(crate) fn with_version(protocol: &Protocol, mut response: Response) -> Response {
    if let Some(version) = protocol.header() {
        response.headers_mut().insert(PROTOCOL_HEADER, version);
    }
    response
}

async fn body_bytes(body: Body) -> Result<axum::body::Bytes, ApiError> {
    axum::body::to_bytes(body, MAX_RPC_BYTES)
        .await
        .map_err(|e| ApiError::bad_request(format!("reading an RPC body: {e}")))
}

fn binary(bytes: Vec<u8>) -> Response {
    ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response()
}

/// The Raft group a request names ([`GROUP_HEADER`]; 0 without one), served here.
fn group_rpc(s: &AppState, headers: &HeaderMap) -> Result<RpcServer, ApiError> {
    let group = match headers.get(GROUP_HEADER) {
        None => 0,
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.parse::<GroupId>().ok())
            .ok_or_else(|| ApiError::bad_request(format!("{GROUP_HEADER} is a group number")))?,
    };
    s.engine
        .rpc_for(group)
        .cloned()
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("this node is not in Raft group {group}")))
}

/// `POST /internal/raft/append`.
pub async fn append(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    Ok(binary(rpc.append(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/vote`.
pub async fn vote(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    Ok(binary(rpc.vote(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/pre-vote`.
pub async fn pre_vote(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    Ok(binary(rpc.pre_vote(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/transfer-leader`: a leader hands its group over.
pub async fn transfer_leader(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    Ok(binary(rpc.transfer_leader(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/membership`: another node asks this one, as the group's leader, to
/// change the group's membership.
pub async fn membership(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    Ok(binary(rpc.membership(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/groups`: how many Raft groups this node runs.
pub async fn groups(State(s): State<AppState>) -> Response {
    binary(s.engine.group_count_answer())
}

/// `POST /internal/raft/snapshot`: a streamed snapshot, written to disk as it arrives.
pub async fn snapshot(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let rpc = group_rpc(&s, &headers)?;
    let stream = body.into_data_stream();
    Ok(binary(rpc.install_snapshot(Box::pin(stream)).await))
}

/// `POST /internal/partitions/start`: another node starts a workflow in a partition this node
/// leads.
pub async fn partition_start(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_start(&body_bytes(body).await?).await))
}

/// `POST /internal/limits/permit`: a permit to hand out a task of a limited definition, asked
/// of this node as the metadata group's leader.
pub async fn limits_permit(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_permit(&body_bytes(body).await?)))
}

/// `POST /internal/limits/report`: the limited tasks running in the sender's partitions.
pub async fn limits_report(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_running_report(&body_bytes(body).await?)))
}

/// `POST /internal/partitions/poll`: another node's poll, served from the partitions this node
/// leads without waiting.
pub async fn partition_poll(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_poll(&body_bytes(body).await?, sender_of(&headers)).await))
}

/// `POST /internal/partitions/polldata`: the poll data of the partitions this node leads.
pub async fn partition_poll_data(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_poll_data(&body_bytes(body).await?).await))
}

/// `POST /internal/partitions/ready`: a task is ready in a partition the sender leads, for a
/// queue this node asked it about lately.
pub async fn partition_ready(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_ready_notice(&body_bytes(body).await?).await))
}

/// `POST /internal/raft/read-index`: another node, about to take a backup or serve a consistent
/// read, asks what a group this node leads has committed.
pub async fn read_index(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_read_index(&body_bytes(body).await?).await))
}

/// `POST /internal/partitions/op`: another node acts on a workflow of a partition this node
/// leads (an event handler's action).
pub async fn partition_op(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_op(&body_bytes(body).await?).await))
}

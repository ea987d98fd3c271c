//! `/internal/raft/*`: Raft RPC from peer nodes. Every request must carry the cluster secret;
//! anything else is refused with 403 before its body is read.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use overture_raft::GroupId;
use overture_raft::network::{GROUP_HEADER, SECRET_HEADER};
use overture_raft::rpc::RpcServer;

use crate::AppState;
use crate::error::ApiError;

/// Appends from the leader carry up to a few hundred entries, each up to the request body
/// limit; peers are authenticated, so the bound is generous.
const MAX_RPC_BYTES: usize = 1 << 30;

/// Refuses callers without the cluster secret.
pub async fn authenticate(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
    if !s.engine.rpc().authorized(presented) {
        metrics::counter!(crate::INTERNAL_REJECTED).increment(1);
        return ApiError::new(StatusCode::FORBIDDEN, "internal endpoints need the cluster secret").into_response();
    }
    let from = request.headers().get(overture_raft::faults::FROM_HEADER).map(|v| v.as_bytes());
    if s.engine.rpc().faults().refuses(from) {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "cut off from the sender (fault injection)")
            .into_response();
    }
    next.run(request).await
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

/// `POST /internal/partitions/poll`: another node's poll, served from the partitions this node
/// leads without waiting.
pub async fn partition_poll(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_poll(&body_bytes(body).await?).await))
}

/// `POST /internal/partitions/op`: another node acts on a workflow of a partition this node
/// leads (an event handler's action).
pub async fn partition_op(State(s): State<AppState>, body: Body) -> Result<Response, ApiError> {
    Ok(binary(s.engine.serve_remote_op(&body_bytes(body).await?).await))
}

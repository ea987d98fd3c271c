//! `/internal/faults/*`: faults the fault suite injects into a running node. They exist only on a
//! node started with `fault_injection = true` (elsewhere every route answers 404), and need the
//! cluster secret when the node has one.
//!
//! - `PUT /internal/faults/partition` `{"cutOffFrom": [2, 3]}`: this node stops talking Raft
//!   with those peers and refuses requests they forward (`[]` heals it).
//! - `PUT /internal/faults/clock` `{"offsetMs": 60000}`: this node's wall clock jumps.
//! - `POST /internal/faults/unparseable-entry`: commits an entry whose payload does not parse,
//!   through the real log, to show every replica answers it with a rejection and goes on.
//! - `POST /internal/faults/stop-raft`: this node's Raft stops in every group, as it does on a
//!   fatal storage error, while its HTTP server goes on answering.
//! - `GET /internal/faults`: what is injected now.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use overture_raft::codec::JsonBytes;
use overture_raft::network::SECRET_HEADER;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// Refuses every fault route unless fault injection is on (404, as if they did not exist), and
/// callers without the cluster secret on a node that has one.
pub async fn guard(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let rpc = s.engine.rpc();
    if !rpc.faults().enabled() {
        return ApiError::not_found(format!("No resource found for path {}", request.uri().path())).into_response();
    }
    let presented = request.headers().get(SECRET_HEADER).map(|v| v.as_bytes());
    if rpc.has_secret() && !rpc.authorized(presented) {
        return ApiError::new(StatusCode::FORBIDDEN, "fault injection needs the cluster secret").into_response();
    }
    next.run(request).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Partition {
    cut_off_from: BTreeSet<u64>,
}

/// `PUT /internal/faults/partition`.
pub async fn partition(State(s): State<AppState>, Json(p): Json<Partition>) -> Json<Value> {
    s.engine.rpc().faults().cut_off(p.cut_off_from);
    state(State(s)).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Clock {
    offset_ms: i64,
}

/// `PUT /internal/faults/clock`.
pub async fn clock(State(s): State<AppState>, Json(c): Json<Clock>) -> Json<Value> {
    overture_actors::set_clock_offset_ms(c.offset_ms);
    state(State(s)).await
}

/// `POST /internal/faults/unparseable-entry`: proposes task definitions whose JSON is cut off.
/// The API never proposes such a thing (it parses what it is sent first); this puts one in the
/// log anyway, so a test sees what apply does with content it cannot read.
pub async fn unparseable_entry(State(s): State<AppState>) -> Result<Json<Value>, ApiError> {
    let request = overture_raft::Request::PutTaskDefs { defs: vec![JsonBytes(br#"{"name": "cut off"#.to_vec())] };
    match s.engine.replica().propose(request).await.map_err(overture_actors::Error::from)? {
        overture_raft::Response::Rejected(why) => Err(ApiError::bad_request(why)),
        other => Ok(Json(json!({"response": other.to_string()}))),
    }
}

/// `POST /internal/faults/stop-raft`.
pub async fn stop_raft(State(s): State<AppState>) -> Json<Value> {
    tracing::warn!("fault injection: Raft stops");
    s.engine.stop_raft().await;
    state(State(s)).await
}

/// `GET /internal/faults`.
pub async fn state(State(s): State<AppState>) -> Json<Value> {
    let cut_off: Vec<u64> = s.engine.rpc().faults().peers_cut_off().into_iter().collect();
    Json(json!({"cutOffFrom": cut_off, "raftRunning": s.engine.replica().is_running()}))
}

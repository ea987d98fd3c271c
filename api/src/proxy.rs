//! Sending a request on to the node that handles it and returning that node's answer
//! unchanged: what [`crate::forward`] (to the leader) and [`crate::partitioned`] (to the
//! leader of a request's Raft group) share.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::Response;

use crate::AppState;
use crate::error::ApiError;

/// Marks a request forwarded by another node.
pub const FORWARDED_HEADER: &str = "x-overture-forwarded-by";
/// On answers to forwarded requests: the leader's applied log index when it answered.
pub const APPLIED_HEADER: &str = "x-overture-applied-index";

/// Long polls last up to 5 s; leave room for them.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(65);

/// The largest body a request to `path` may have: a payload upload's is the largest payload's
/// (see `crate::payloads`).
pub(crate) fn body_limit(s: &AppState, path: &str) -> usize {
    if path.starts_with(crate::payloads::PAYLOADS_PREFIX) {
        s.max_body_bytes.max(s.limits.max_payload_bytes())
    } else {
        s.max_body_bytes
    }
}

const HOP_BY_HOP: [HeaderName; 5] =
    [header::HOST, header::CONNECTION, header::TRANSFER_ENCODING, header::CONTENT_LENGTH, header::UPGRADE];

/// Sends `request` to the node at `address` and answers its answer. `leader` is the Raft group
/// and the node that leads it the request is sent to: given up on once another node leads.
pub(crate) async fn proxy_to(
    s: &AppState,
    address: &str,
    leader: Option<(overture_raft::GroupId, u64)>,
    request: Request,
) -> Result<Response, ApiError> {
    let (group, leader_id) = (leader.map_or(0, |(g, _)| g), leader.map(|(_, id)| id));
    let (parts, body) = request.into_parts();
    let limit = body_limit(s, parts.uri.path());
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("Request body is larger than the limit of {limit} bytes"))
    })?;
    let base = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if !HOP_BY_HOP.contains(name) {
            headers.append(name.clone(), value.clone());
        }
    }
    let node = s.engine.replica().node_id().to_string();
    let protocol = s.engine.rpc().protocol().clone();
    if let Some(version) = protocol.header() {
        headers.insert(overture_raft::protocol::PROTOCOL_HEADER, version);
    }
    // The node served to goes on in this trace, under this node's span.
    if let Some(traced) = overture_actors::traces::current_request()
        && let Ok(value) = traced.header().parse()
    {
        headers.insert(overture_actors::traces::TRACEPARENT, value);
    }
    if leader_id.is_some_and(|id| s.engine.rpc().faults().is_cut_off(id)) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "this node cannot reach the leader; retry (another node may serve)",
        ));
    }
    let send = s
        .forward_client
        .request(parts.method.clone(), format!("{base}{path}"))
        .headers(headers)
        .header(FORWARDED_HEADER, node)
        .timeout(FORWARD_TIMEOUT)
        .body(body)
        .send();
    // A leader that dies or freezes mid-request is replaced within an election; give up on it as
    // soon as this node sees that, instead of waiting out the timeout.
    let mut watch = s.engine.leadership_watch_of(group);
    let moved = async move {
        if leader_id.is_none() {
            return std::future::pending().await;
        }
        while watch.current().leader == leader_id {
            if !watch.changed().await {
                break;
            }
        }
    };
    let forwarded = tokio::select! {
        r = send => r.map_err(|e| {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the leader at {address} did not answer ({e}); retry"))
        })?,
        () = moved => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "leadership moved while the request was forwarded; it may or may not have taken effect; retry",
            ));
        }
    };
    metrics::counter!(crate::HTTP_FORWARDED).increment(1);
    // An answer without the header may come from a node that forwards no version yet; only a
    // named one is recorded.
    let theirs = forwarded.headers().get(overture_raft::protocol::PROTOCOL_HEADER).map(|v| v.as_bytes());
    if let (Some(id), Some(Ok(version))) = (leader_id, theirs.map(|v| overture_raft::protocol::version_of(Some(v)))) {
        protocol.record(id, version);
    }
    let status = forwarded.status();
    let applied = forwarded.headers().get(APPLIED_HEADER).and_then(|v| v.to_str().ok());
    if s.engine.partitioned() {
        note_applied(s, applied.unwrap_or_default());
    } else if let Some(index) = applied.and_then(|v| v.parse::<u64>().ok()) {
        s.read_watermark.fetch_max(index, std::sync::atomic::Ordering::AcqRel);
    }
    let mut out_headers = HeaderMap::new();
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(v) = forwarded.headers().get(&name) {
            out_headers.insert(name, v.clone());
        }
    }
    let bytes = forwarded.bytes().await.map_err(|e| {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("the leader's answer was cut off ({e}); retry"))
    })?;
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    *response.headers_mut() = out_headers;
    Ok(response)
}

/// Records the applied indexes a forwarded answer reports (`group=index;…`).
fn note_applied(s: &AppState, header: &str) {
    for pair in header.split(';') {
        let Some((group, index)) = pair.split_once('=') else { continue };
        let (Ok(group), Ok(index)) = (group.parse::<usize>(), index.parse::<u64>()) else { continue };
        if let Some(mark) = s.group_watermarks.get(group) {
            mark.fetch_max(index, Ordering::AcqRel);
        }
    }
}

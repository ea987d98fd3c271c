//! Forwarding in a partitioned cluster. There is no one leader to send writes to: each
//! partition has its own, and the metadata group (definitions, schedules, event handlers) its
//! own. So a node handles every request itself, and the engine says when what the request acts
//! on is led by another node ([`overture_actors::Error::Elsewhere`], carried to here on the
//! [`ELSEWHERE_HEADER`] of its 503); the request is then sent there, once, and that node's
//! answer returned unchanged. A start goes to a partition this node leads, a poll is served
//! from this node's partitions first, so most requests are answered without a hop.
//!
//! Reads are served from this node's replicas of every group. A node that forwarded a write
//! keeps, per group, the applied index the answering node reported; a read of the API's data
//! waits until this node has applied that far in every group, so a client talking to one node
//! reads its own writes, and after 2 s (a node cut off from its peers) answers a retryable 503;
//! a read of definitions, event handlers or schedules needs the metadata group only, and is sent
//! to its leader when this node has not applied as far (as a follower of one group does). A read
//! of one workflow or task that this node does not have is asked of the
//! leader of its partition, which may have created it a moment ago.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use overture_actors::GroupLeader;
use overture_raft::GroupId;

use crate::AppState;
use crate::error::{ApiError, ELSEWHERE_HEADER};
use crate::proxy::{APPLIED_HEADER, FORWARDED_HEADER};

/// How long a read waits for this node to apply what a write forwarded through it reached.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(2);

/// Handles a request on a node of a partitioned cluster (see the module doc).
pub async fn handle(s: &AppState, request: Request, next: Next) -> Response {
    let forwarded_here = request.headers().contains_key(FORWARDED_HEADER);
    let read = request.method() == Method::GET || request.method() == Method::HEAD;
    if read && !forwarded_here && reads_api_data(request.uri().path()) {
        let path = request.uri().path();
        if reads_metadata_only(path)
            && !caught_up_in(s, 0, Duration::ZERO).await
            && let GroupLeader::Elsewhere { group, node, address } = s.engine.leader_in(0)
        {
            // As a follower of one group does: the leader has what this node has not applied.
            return crate::proxy::proxy_to(s, &address, Some((group, node)), request)
                .await
                .unwrap_or_else(|e| e.into_response());
        }
        if !catch_up(s, path).await {
            let message = "this node has not yet applied writes forwarded through it (it may be cut off); retry";
            return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
        }
    }
    if request.method() == Method::POST && !forwarded_here && request.uri().path().starts_with("/api/workflow") {
        // A start (or restart) reads its definition here: one registered through this node a
        // moment ago is waited for, so the workflow starts in a partition this node leads
        // rather than where the metadata leader is. Not caught up in time, the engine sends it
        // to the metadata leader as before.
        caught_up_in(s, 0, CATCH_UP_WITHIN).await;
    }
    let (parts, body) = request.into_parts();
    let limit = crate::proxy::body_limit(s, parts.uri.path());
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let message = format!("Request body is larger than the limit of {limit} bytes");
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, message).into_response();
        }
    };
    let again = Request::from_parts(parts.clone(), Body::from(bytes.clone()));
    let mut response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    let elsewhere = response.headers_mut().remove(ELSEWHERE_HEADER);
    if forwarded_here {
        // One hop: the sender learns the applied indexes of what this node leads.
        if let Ok(v) = applied_indexes(s).parse() {
            response.headers_mut().insert(APPLIED_HEADER, v);
        }
        return response;
    }
    let target = match elsewhere.as_ref().and_then(|v| v.to_str().ok()) {
        Some(header) => parse_elsewhere(header),
        // This node has not seen it; the partition's leader may have made it a moment ago.
        None if read && response.status() == StatusCode::NOT_FOUND => match named_id(again.uri().path()) {
            Some(id) => match s.engine.leader_of_id(&id) {
                GroupLeader::Elsewhere { group, node, address } => Some((group, node, address)),
                GroupLeader::Here => None,
                GroupLeader::Unknown => {
                    // Cut off, or in an election: nobody here can say it does not exist.
                    let message = "this node knows no leader of the partition that would hold it; retry";
                    return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response();
                }
            },
            None => None,
        },
        None => None,
    };
    let Some((group, node, address)) = target else { return response };
    match crate::proxy::proxy_to(s, &address, Some((group, node)), again).await {
        Ok(answer) => answer,
        Err(e) => e.into_response(),
    }
}

/// The group, node and address an [`ELSEWHERE_HEADER`] names.
fn parse_elsewhere(header: &str) -> Option<(GroupId, u64, String)> {
    let mut parts = header.splitn(3, ' ');
    let group = parts.next()?.parse().ok()?;
    let node = parts.next()?.parse().ok()?;
    Some((group, node, parts.next()?.to_owned()))
}

/// The applied index of every group this node leads, as [`note_applied`] reads them.
fn applied_indexes(s: &AppState) -> String {
    s.engine.led_applied_indexes().iter().map(|(g, i)| format!("{g}={i}")).collect::<Vec<_>>().join(";")
}

/// A read of the API's data: not the cluster's own status or health, which say how this node
/// is, nor the UI's files.
fn reads_api_data(path: &str) -> bool {
    path.starts_with("/api/") && !path.starts_with("/api/cluster/") && path != "/api/health"
}

/// Waits (up to [`CATCH_UP_WITHIN`] in all) until this node has applied, in each group the read
/// of `path` reads, what writes forwarded through it reached; whether it has. A read of
/// definitions, event handlers or schedules reads the metadata group only, so a node whose
/// partitions lag (a full disk, a slow follower) still serves it.
async fn catch_up(s: &AppState, path: &str) -> bool {
    let deadline = tokio::time::Instant::now() + CATCH_UP_WITHIN;
    let groups = if reads_metadata_only(path) { 1 } else { s.group_watermarks.len() };
    for group in 0..groups {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !caught_up_in(s, group as GroupId, left).await {
            return false;
        }
    }
    true
}

/// Waits up to `within` until this node has applied, in `group`, what writes forwarded through
/// it reached there; whether it has.
async fn caught_up_in(s: &AppState, group: GroupId, within: Duration) -> bool {
    let index = s.group_watermarks.get(usize::from(group)).map_or(0, |mark| mark.load(Ordering::Acquire));
    if index > 0 && !s.engine.wait_applied(group, index, within).await {
        tracing::debug!(group, index, "a read did not catch up with a forwarded write in time");
        return false;
    }
    true
}

/// A read of what the metadata group alone holds: definitions, event handlers, schedules (not
/// the executions schedules started).
fn reads_metadata_only(path: &str) -> bool {
    let metadata = ["/api/metadata/", "/api/event", "/api/scheduler/"].iter().any(|p| path.starts_with(p));
    metadata && !path.starts_with("/api/scheduler/search/")
}

/// The workflow or task id a read path names (`/api/workflow/{id}…`, `/api/tasks/{id}…`).
fn named_id(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/api/workflow/").or_else(|| path.strip_prefix("/api/tasks/"))?;
    let id = rest.split('/').next().filter(|id| !id.is_empty())?;
    Some(percent_decode(id))
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={segment}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

/// What a bulk request needs to be sent on to another node: its method, path and query, and
/// headers (an API key's token among them).
pub struct Resend {
    method: Method,
    path: String,
    headers: axum::http::HeaderMap,
}

impl axum::extract::FromRequestParts<AppState> for Resend {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        // The path as the client sent it, not as the nested router that took `/api` off sees it.
        let uri = parts.extensions.get::<axum::extract::OriginalUri>().map_or(&parts.uri, |o| &o.0);
        let path = uri.path_and_query().map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
        Ok(Resend { method: parts.method.clone(), path, headers: parts.headers.clone() })
    }
}

impl Resend {
    /// Whether the request was sent here by another node (and so goes no further).
    pub fn was_forwarded(&self) -> bool {
        self.headers.contains_key(FORWARDED_HEADER)
    }

    /// Sends the bulk request on to the node at `address` for `ids`; answers its
    /// `BulkResponse`, or why there is none.
    pub async fn bulk_to(&self, s: &AppState, address: &str, ids: &[String]) -> Result<BulkResponse, String> {
        let base = if address.contains("://") { address.to_owned() } else { format!("http://{address}") };
        let mut headers = axum::http::HeaderMap::new();
        for (name, value) in &self.headers {
            if *name == axum::http::header::AUTHORIZATION || name.as_str().starts_with("x-authorization") {
                headers.append(name.clone(), value.clone());
            }
        }
        let answer = s
            .forward_client
            .request(self.method.clone(), format!("{base}{}", self.path))
            .headers(headers)
            .header(FORWARDED_HEADER, s.engine.replica().node_id().to_string())
            .timeout(Duration::from_secs(60))
            .json(ids)
            .send()
            .await
            .map_err(|e| format!("the node at {address} that leads it did not answer ({e}); retry"))?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| format!("the answer of {address} was cut off ({e}); retry"))?;
        if !status.is_success() {
            return Err(format!(
                "the node at {address} that leads it answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body)
            .map_err(|e| format!("the node at {address} answered what is not a bulk response: {e}"))
    }
}

/// Conductor's `BulkResponse`.
#[derive(serde::Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BulkResponse {
    /// Why each id that failed did.
    pub bulk_error_results: std::collections::BTreeMap<String, String>,
    /// The ids done.
    pub bulk_successful_results: Vec<String>,
}

//! Any node accepts any request. A node that is not the ready leader serves reads from its own
//! state and forwards everything else — writes and polls, long polls included — to the leader,
//! passing its answer back unchanged. `?consistent=true` (or `X-Overture-Consistent: true`) makes
//! a read linearizable: it is served by the leader after confirming it still leads.
//!
//! Reads on a follower see the writes forwarded through it: the leader reports its applied index
//! with every forwarded answer, the follower keeps the highest it has seen, and serves a read
//! itself only once it has applied that far — otherwise it forwards the read too. A client talking
//! to one node always reads its own writes, as it would from Conductor.
//!
//! Forwarding is one hop: a forwarded request that reaches a node that is not the leader (the
//! leadership moved meanwhile) gets a retryable 503, as does any request while no leader is known.
//! A forwarded write whose answer is lost in transit may have taken effect; updates are idempotent,
//! a retried start creates a second workflow.
//!
//! A node whose Raft has stopped (a fatal storage error) answers every API request with a
//! retryable 503 and fails `/ready` until it is restarted.
//!
//! A node that does not lead never says something does not exist on its own authority: a read it
//! would answer with 404 (the workflow or task may have been created a moment ago, or while this
//! node was cut off) is asked of the leader, whose answer it returns; with no leader to ask, it
//! answers a retryable 503.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;
use crate::proxy::proxy_to;
pub use crate::proxy::{APPLIED_HEADER, FORWARDED_HEADER};

/// `POST /api/admin/backup`: always handled by the node it is sent to.
const BACKUP_PATH: &str = "/api/admin/backup";

/// Asks for a linearizable read.
pub const CONSISTENT_HEADER: &str = "x-overture-consistent";

fn consistent(request: &Request) -> bool {
    let in_query = request.uri().query().is_some_and(|q| {
        form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "consistent" && v.eq_ignore_ascii_case("true"))
    });
    let in_header = request
        .headers()
        .get(CONSISTENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    in_query || in_header
}

/// Whether the request must be handled by the leader.
fn needs_leader(request: &Request) -> bool {
    let path = request.uri().path();
    if path.starts_with("/internal/") || !path.starts_with("/api/") || path == "/api/health" || path == "/api/token" {
        return false;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return true;
    }
    // Poll data lives in the leader's memory, like the queues. Some scheduler GETs change
    // schedules (Conductor maps them so).
    let scheduler_write = path.starts_with("/api/scheduler/admin/")
        || (path.starts_with("/api/scheduler/schedules/") && (path.ends_with("/pause") || path.ends_with("/resume")));
    path.starts_with("/api/tasks/poll/")
        || path.starts_with("/api/tasks/queue/polldata")
        // What the leader's consumers know.
        || path == "/api/event/queues"
        || path == "/api/queue/size"
        || scheduler_write
        || consistent(request)
}

/// In a partitioned cluster: a request only the metadata group's leader answers (what its
/// consumers and scheduler know, its view of the cluster).
fn needs_metadata_leader(request: &Request) -> bool {
    let path = request.uri().path();
    let scheduler_write = path.starts_with("/api/scheduler/admin/")
        || (path.starts_with("/api/scheduler/schedules/") && (path.ends_with("/pause") || path.ends_with("/resume")));
    // A consistent read of API data catches up here (`route`); anything else asked for so (the
    // cluster's status as its leader sees it, with each follower's lag) is the leader's to say.
    path == "/api/event/queues"
        || path == "/api/queue/size"
        || scheduler_write
        || (consistent(request) && !is_api_read(request))
}

/// How long a linearizable read in a partitioned cluster waits for this node to catch up with
/// every group's leader.
const CONSISTENT_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// The forwarding middleware. A request another node sent on names the node-to-node protocol
/// version that node speaks: one this node does not serve is refused (426), and the answer names
/// this node's.
pub async fn forward(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if !request.headers().contains_key(FORWARDED_HEADER) {
        return route(s, request, next).await;
    }
    let protocol = s.engine.rpc().protocol().clone();
    if let Err(refused) = crate::internal::served_version(&protocol, request.headers()) {
        return *refused;
    }
    crate::internal::with_version(&protocol, route(s, request, next).await)
}

async fn route(s: AppState, request: Request, next: Next) -> Response {
    let forwarded_here = request.headers().contains_key(FORWARDED_HEADER);
    if let Some(why) = s.engine.replica().stopped()
        && is_api(&request)
    {
        // Its state no longer moves and it cannot follow a leader: any answer would be stale or
        // lost on the way. A retryable 503 sends the client to another node at once.
        return unavailable(&format!("this node's Raft has stopped ({why}); restart it; another node serves"));
    }
    if s.engine.rpc().faults().refuses(request.headers().get(FORWARDED_HEADER).map(|v| v.as_bytes())) {
        return unavailable("cut off from the node that forwarded this request (fault injection)");
    }
    if request.uri().path() == BACKUP_PATH {
        // A backup is of the node asked, never of another: it catches up with every leader
        // itself first.
        return next.run(request).await;
    }
    if s.engine.partitioned() && !needs_metadata_leader(&request) {
        // A linearizable read: first catch up with what every group's leader had committed,
        // then read here as any read is.
        if consistent(&request)
            && is_api_read(&request)
            && let Err(e) = s.engine.catch_up_with_leaders(CONSISTENT_WITHIN).await
        {
            return ApiError::from(e).into_response();
        }
        return crate::partitioned::handle(&s, request, next).await;
    }
    if !needs_leader(&request) && !behind_own_writes(&s, &request) {
        if forwarded_here || s.engine.is_ready() || !is_api_read(&request) {
            return next.run(request).await;
        }
        return read_confirming_misses(&s, request, next).await;
    }
    if s.engine.is_ready() {
        if consistent(&request)
            && let Err(e) = s.engine.ensure_linearizable().await
        {
            return ApiError::from(e).into_response();
        }
        let mut response = next.run(request).await;
        if forwarded_here {
            let applied = s.engine.replica().read().applied_index();
            if let Ok(v) = applied.to_string().parse() {
                response.headers_mut().insert(APPLIED_HEADER, v);
            }
        }
        return response;
    }
    if forwarded_here {
        return unavailable("leadership moved while the request was forwarded; retry");
    }
    let Some(leader) = s.engine.leader_address() else {
        // This node leads but may not serve (no lease, still catching up), or no leader is known.
        return match s.engine.not_serving() {
            Some(e) => ApiError::from(e).into_response(),
            None => unavailable("no leader is serving yet (an election may be in progress); retry shortly"),
        };
    };
    match proxy(&s, &leader, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

/// A request for the API, but for `/api/health` and the cluster's own status, which say how
/// this node is.
fn is_api(request: &Request) -> bool {
    let path = request.uri().path();
    path.starts_with("/api/") && !path.starts_with("/api/cluster/") && path != "/api/health"
}

/// A read of the API's data (not the cluster's own status, nor the UI's files).
fn is_api_read(request: &Request) -> bool {
    (request.method() == Method::GET || request.method() == Method::HEAD) && is_api(request)
}

/// Serves a read here; a 404 is asked of the leader again (see the module doc).
async fn read_confirming_misses(s: &AppState, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let again = Request::from_parts(parts.clone(), Body::empty());
    let response = next.run(Request::from_parts(parts, body)).await;
    if response.status() != StatusCode::NOT_FOUND {
        return response;
    }
    let Some(leader) = s.engine.leader_address() else {
        return unavailable("this node has not seen it and cannot ask a leader now (none is known); retry shortly");
    };
    match proxy(s, &leader, again).await {
        Ok(confirmed) => confirmed,
        Err(e) => e.into_response(),
    }
}

/// A read this follower cannot answer yet: it has not applied a write it forwarded.
fn behind_own_writes(s: &AppState, request: &Request) -> bool {
    if !is_api(request) {
        return false;
    }
    let watermark = s.read_watermark.load(std::sync::atomic::Ordering::Acquire);
    watermark > 0 && !s.engine.is_ready() && s.engine.replica().read().applied_index() < watermark
}

fn unavailable(message: &str) -> Response {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message).into_response()
}

async fn proxy(s: &AppState, leader: &str, request: Request) -> Result<Response, ApiError> {
    let leader_id = s.engine.leadership().leader;
    proxy_to(s, leader, leader_id.map(|id| (0, id)), request).await
}

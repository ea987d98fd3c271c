//! Health, readiness, metrics, and the per-request span and timing.

use std::time::Instant;

use axum::Json;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::AppState;
use crate::error::ApiError;
use crate::input::RawBody;

/// `GET /health`, `GET /api/health`: Conductor's shape. Healthy while Raft runs.
pub async fn health(State(s): State<AppState>) -> Json<Value> {
    let running = s.engine.replica().is_running();
    Json(json!({"healthResults": [], "suppressedHealthResults": [], "healthy": running}))
}

/// `GET /ready`: 200 when this node can serve client requests now — it is the ready leader, or
/// a follower that knows a leader to forward to and has applied everything that leader reports
/// committed (so its local reads are current) — and 503 otherwise, as always once its Raft has
/// stopped. A readiness probe.
pub async fn ready(State(s): State<AppState>) -> Response {
    let l = s.engine.leadership();
    let leader_here = s.engine.is_ready();
    let can_forward = !l.is_leader && l.caught_up && s.engine.leader_address().is_some();
    let ready = (leader_here || can_forward) && s.engine.replica().is_running();
    let role = if l.is_leader { "leader" } else { "follower" };
    let body = json!({"ready": ready, "role": role, "leader": l.leader, "term": l.term, "isLeader": l.is_leader, "caughtUp": l.caught_up});
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text. The `overture_raft_*` gauges are set here, at each scrape:
/// the metadata group's term, leader and indexes, its followers' lag (on its leader), and
/// `overture_raft_groups_without_leader`, how many of this node's Raft groups (the metadata
/// group and every partition) it knows no leader of.
pub async fn metrics(State(s): State<AppState>) -> Response {
    let status = s.engine.cluster_status();
    metrics::gauge!("overture_raft_term").set(status.term as f64);
    metrics::gauge!("overture_raft_is_leader").set(if status.state == "Leader" { 1.0 } else { 0.0 });
    metrics::gauge!("overture_raft_leader_id").set(status.leader.map_or(-1.0, |l| l as f64));
    metrics::gauge!("overture_raft_last_log_index").set(status.last_log_index as f64);
    metrics::gauge!("overture_raft_commit_index").set(status.commit_index as f64);
    metrics::gauge!("overture_raft_applied_index").set(status.applied_index as f64);
    metrics::gauge!("overture_raft_snapshot_index").set(status.snapshot_index.map_or(0.0, |i| i as f64));
    metrics::gauge!("overture_raft_purged_index").set(status.purged_index.map_or(0.0, |i| i as f64));
    metrics::gauge!("overture_raft_members").set(status.members.len() as f64);
    // The metadata group's and every partition's: a group this node knows no leader of cannot
    // take writes (the `OvertureNoLeader` alert).
    let leaderless = s.engine.group_status().iter().filter(|g| g.leader.is_none()).count();
    metrics::gauge!("overture_raft_groups_without_leader").set(leaderless as f64);
    for (follower, f) in status.replication.iter().flatten() {
        metrics::gauge!("overture_raft_follower_lag", "follower" => follower.to_string()).set(f.lag as f64);
        metrics::gauge!("overture_raft_follower_matched_index", "follower" => follower.to_string())
            .set(f.matched_index as f64);
    }
    metrics::gauge!("overture_rocksdb_sst_bytes").set(s.engine.replica().disk_bytes() as f64);
    metrics::gauge!("overture_data_dir_bytes").set(s.engine.replica().data_dir_bytes() as f64);
    if let Some(p) = process_stats() {
        metrics::gauge!("process_cpu_seconds_total").set(p.cpu_seconds);
        metrics::gauge!("process_resident_memory_bytes").set(p.rss_bytes as f64);
        metrics::gauge!("process_resident_memory_max_bytes").set(p.peak_rss_bytes as f64);
    }
    let mut body = s.metrics.render();
    render_gauges(&mut body, s.engine.scrape_gauges());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Appends gauges computed for this scrape in Prometheus text format: `(metric, label name,
/// label value, value)`, grouped by metric (each family's series together, after its type).
fn render_gauges(out: &mut String, mut gauges: Vec<(&'static str, &'static str, String, f64)>) {
    use std::fmt::Write;
    gauges.sort_by(|a, b| a.0.cmp(b.0).then_with(|| a.2.cmp(&b.2)));
    let mut family = "";
    for (metric, label, value, number) in gauges {
        if metric != family {
            let _ = writeln!(out, "# TYPE {metric} gauge");
            family = metric;
        }
        let _ = writeln!(out, "{metric}{{{label}=\"{}\"}} {number}", escape_label(&value));
    }
}

/// A label value as Prometheus's text format writes it.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Unknown paths. The body is read (and dropped) so the connection stays usable.
pub async fn not_found(uri: Uri, _body: RawBody) -> ApiError {
    ApiError::not_found(format!("No resource found for path {}", uri.path()))
}

/// Known paths, wrong method. The body is read (and dropped) so the connection stays usable.
pub async fn method_not_allowed(method: axum::http::Method, uri: Uri, _body: RawBody) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("Method {method} is not supported for path {}", uri.path()))
}

/// This process's CPU time and memory, from `/proc` (Linux).
struct ProcessStats {
    cpu_seconds: f64,
    rss_bytes: u64,
    peak_rss_bytes: u64,
}

fn process_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) are space-separated; utime and
    // stime are the 14th and 15th fields, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse::<u64>().ok().map(|k| k * 1024)
    };
    Some(ProcessStats { cpu_seconds: ticks / 100.0, rss_bytes: kb("VmRSS:")?, peak_rss_bytes: kb("VmHWM:")? })
}

/// Turns an error answered in plain text (axum's own rejections: a path segment that is not
/// UTF-8, say) into Conductor's JSON error with the same status and the text as its message.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let internal = request.uri().path().starts_with("/internal/");
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if internal || is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let retry_after = response.headers().get(axum::http::header::RETRY_AFTER).cloned();
    let text = axum::body::to_bytes(response.into_body(), 64 << 10).await.unwrap_or_default();
    let message = String::from_utf8_lossy(&text).trim().to_owned();
    let message = if message.is_empty() { status.canonical_reason().unwrap_or("error").to_owned() } else { message };
    let mut converted = ApiError::new(status, message).into_response();
    if let Some(v) = retry_after {
        converted.headers_mut().insert(axum::http::header::RETRY_AFTER, v);
    }
    converted
}

/// Counts requests whose handling panicked, by route.
pub const HTTP_PANICS: &str = "overture_http_panics_total";

/// Answers a request whose handling panicked with a 500 that says so, instead of dropping the
/// connection, and counts it in [`HTTP_PANICS`]. A panic is a bug in Overture, never the
/// caller's fault: the node logs where it happened (the panic hook prints the location) and
/// goes on serving.
pub async fn catch_panics(request: Request, next: Next) -> Response {
    use futures::FutureExt;
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    match std::panic::AssertUnwindSafe(next.run(request)).catch_unwind().await {
        Ok(response) => response,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".to_owned());
            tracing::error!(%route, panic = %what, "a request handler panicked");
            metrics::counter!(HTTP_PANICS, "route" => route).increment(1);
            let message = format!(
                "Overture failed on this request with an internal error ({what}); the node logged it and keeps serving. Please report it."
            );
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
        }
    }
}

/// Wraps each request in a span with a request id and records its duration by route.
pub async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!("http", %method, %route, %request_id, key_id = tracing::field::Empty);
    let traced = if overture_actors::traces::enabled() {
        let traceparent = request.headers().get(overture_actors::traces::TRACEPARENT).map(|v| v.as_bytes());
        overture_actors::traces::ServerSpan::start(traceparent, &method, &route)
    } else {
        None
    };
    let serve = next.run(request).instrument(span.clone());
    let response = match traced {
        Some(server_span) => server_span.serve(serve, |r: &Response| r.status().as_u16()).await,
        None => serve.await,
    };
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    span.in_scope(|| tracing::debug!(status, seconds, "request"));
    metrics::histogram!("http_server_requests_seconds", "method" => method, "route" => route, "status" => status.to_string())
        .record(seconds);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A handler that panics answers a 500 with a JSON error that says so; the next request on
    /// the same router is served as usual.
    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_router_goes_on() {
        async fn boom() -> &'static str {
            let text = "订单";
            // A byte index inside a multi-byte character: the kind of bug this layer is for.
            let cut = text.len() - 1;
            &text[..std::hint::black_box(cut)]
        }
        async fn fine() -> &'static str {
            "ok"
        }
        let app = axum::Router::new()
            .route("/boom", axum::routing::get(boom))
            .route("/fine", axum::routing::get(fine))
            .layer(axum::middleware::from_fn(catch_panics));
        let request = |path: &str| axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");

        let response = app.clone().oneshot(request("/boom")).await.expect("answered");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.expect("body");
        let json: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(json["status"], 500);
        let message = json["message"].as_str().unwrap_or_default();
        assert!(message.contains("internal error") && message.contains("char boundary"), "{message}");

        let response = app.oneshot(request("/fine")).await.expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[test]
    fn gauges_computed_at_scrape_render_one_family_each() {
        let mut out = String::new();
        render_gauges(
            &mut out,
            vec![
                ("task_queue_depth", "queue", "b".into(), 2.0),
                ("workflow_running", "workflowName", "订单 \"x\"\\".into(), 1.0),
                ("task_queue_depth", "queue", "a".into(), 0.0),
            ],
        );
        assert_eq!(
            out,
            "# TYPE task_queue_depth gauge\ntask_queue_depth{queue=\"a\"} 0\ntask_queue_depth{queue=\"b\"} 2\n\
             # TYPE workflow_running gauge\nworkflow_running{workflowName=\"订单 \\\"x\\\"\\\\\"} 1\n"
        );
    }
}

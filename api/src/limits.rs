//! What one node takes on: requests in flight (429 beyond, instead of growing memory), and the
//! size of workflow inputs and task outputs (413 beyond). The request body limit is in
//! [`crate::input::RawBody`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use overture_core::Object;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::error::ApiError;
use crate::input::RawBody;

/// Counter: requests refused because the node had too many in flight.
pub const ADMISSION_REFUSED: &str = "overture_http_overloaded_total";
/// Gauge: client requests in flight on this node.
pub const IN_FLIGHT: &str = "overture_http_in_flight";

/// The limits of one node.
#[derive(Debug, Clone)]
pub struct Limits {
    in_flight: Arc<Semaphore>,
    /// The [`IN_FLIGHT`] gauge, looked up once.
    gauge: metrics::Gauge,
    max_in_flight: usize,
    /// Largest workflow input (as JSON), bytes.
    pub workflow_input_bytes: usize,
    /// Largest task output (as JSON), bytes.
    pub task_output_bytes: usize,
}

impl Limits {
    /// Limits of `max_in_flight` requests, and payload sizes in bytes. (Made after the metrics
    /// recorder is installed, so its gauge reports.)
    pub fn new(max_in_flight: usize, workflow_input_bytes: usize, task_output_bytes: usize) -> Limits {
        let max_in_flight = max_in_flight.max(1);
        Limits {
            in_flight: Arc::new(Semaphore::new(max_in_flight)),
            gauge: metrics::gauge!(IN_FLIGHT),
            max_in_flight,
            workflow_input_bytes,
            task_output_bytes,
        }
    }

    /// Generous defaults: 10,000 requests in flight, 10 MiB of workflow input and of task output
    /// (conductor-oss's maximums; larger than their thresholds, payloads go to external payload
    /// storage).
    pub fn defaults() -> Limits {
        Limits::new(10_000, 10 << 20, 10 << 20)
    }

    /// The largest payload uploaded to external payload storage: the larger maximum.
    pub fn max_payload_bytes(&self) -> usize {
        self.workflow_input_bytes.max(self.task_output_bytes)
    }

    /// A 413 if a workflow input is over its limit. `body` is the request it came in: a body no
    /// larger than the limit cannot hold a larger input, so only larger ones are measured.
    pub fn check_workflow_input(&self, body: &RawBody, input: Option<&Object>) -> Result<(), ApiError> {
        check("Workflow input", "max_workflow_input_bytes", self.workflow_input_bytes, body, input)
    }

    /// A 413 if a task output is over its limit.
    pub fn check_task_output(&self, body: &RawBody, output: Option<&Object>) -> Result<(), ApiError> {
        check("Task output", "max_task_output_bytes", self.task_output_bytes, body, output)
    }

    /// The size of a task output over its limit, and the limit; `None` if it is within it.
    pub fn task_output_excess(&self, body: &RawBody, output: Option<&Object>) -> Option<(usize, usize)> {
        excess(self.task_output_bytes, body, output).map(|size| (size, self.task_output_bytes))
    }
}

/// The size of `payload` if it is over `limit` bytes of JSON. `body` is the request it came in: a
/// body no larger than the limit cannot hold a larger payload, so only larger ones are measured.
fn excess(limit: usize, body: &RawBody, payload: Option<&Object>) -> Option<usize> {
    if body.0.len() <= limit {
        return None;
    }
    let size = serde_json::to_vec(payload?).map_or(usize::MAX, |v| v.len());
    (size > limit).then_some(size)
}

fn check(what: &str, key: &str, limit: usize, body: &RawBody, payload: Option<&Object>) -> Result<(), ApiError> {
    match excess(limit, body, payload) {
        None => Ok(()),
        Some(size) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{what} of {size} bytes is larger than the limit of {limit} bytes ({key})"),
        )),
    }
}

/// Paths that are never refused for load: probes and metrics must answer an overloaded node.
fn always_admitted(path: &str) -> bool {
    matches!(path, "/health" | "/api/health" | "/ready" | "/metrics") || path.starts_with("/internal/")
}

/// The admission middleware: a request beyond `max_in_flight` gets a retryable 429 at once.
pub async fn admit(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if always_admitted(request.uri().path()) {
        return next.run(request).await;
    }
    let Ok(permit) = s.limits.in_flight.clone().try_acquire_owned() else {
        metrics::counter!(ADMISSION_REFUSED).increment(1);
        let body = serde_json::json!({
            "status": 429,
            "message": format!("This node has {} requests in flight, its limit; retry shortly", s.limits.max_in_flight),
            "instance": crate::instance_name(),
            "retryable": true,
        });
        let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    s.limits.gauge.increment(1.0);
    let response = next.run(request).await;
    s.limits.gauge.decrement(1.0);
    drop(permit);
    response
}

//! Conductor-style error responses.
//!
//! Every failure is JSON: `{"status", "message", "instance", "retryable"}` plus
//! `validationErrors` for invalid definitions. 503s, 429s and 507s carry `Retry-After` and
//! `retryable: true`.
//!
//! Where Conductor answers 500 for bad input (malformed JSON, an unknown enum value in a path),
//! Overture answers 400: a client's input error should not look like a server fault. Clients
//! treat both as errors; only the code differs.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use overture_actors::Error;
use overture_core::validate::Violation;
use serde::Serialize;

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    violations: Vec<Violation>,
    /// Who leads what the request acts on ([`Error::Elsewhere`]), as [`ELSEWHERE_HEADER`] says it.
    elsewhere: Option<String>,
}

/// On an answer that says another node leads what the request acts on: the Raft group, that
/// node's id and its address (`group node address`). The forwarding layer sends the request
/// there ([`crate::partitioned`]); a client never sees it.
pub const ELSEWHERE_HEADER: &str = "x-overture-elsewhere";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    status: u16,
    message: &'a str,
    instance: &'a str,
    retryable: bool,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    validation_errors: &'a [Violation],
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into(), violations: Vec::new(), elsewhere: None }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::BadRequest(_) | Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::Unavailable(_) | Error::Elsewhere { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Error::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            Error::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let violations = match &e {
            Error::Invalid(v) => v.0.clone(),
            _ => Vec::new(),
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "request failed");
        }
        let elsewhere = match &e {
            Error::Elsewhere { group, node, address } => Some(format!("{group} {node} {address}")),
            _ => None,
        };
        ApiError { status, message: e.to_string(), violations, elsewhere }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retryable = matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS | StatusCode::INSUFFICIENT_STORAGE
        );
        let body = Body {
            status: self.status.as_u16(),
            message: &self.message,
            instance: crate::instance_name(),
            retryable,
            validation_errors: &self.violations,
        };
        let json = serde_json::to_vec(&body).unwrap_or_default();
        let mut response =
            (self.status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], json).into_response();
        if retryable {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(address) = self.elsewhere.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(ELSEWHERE_HEADER, address);
        }
        response
    }
}

//! External payload storage over HTTP, as conductor-oss's clients use it:
//! `GET /api/{workflow,tasks}/externalstoragelocation` answers where to put or get a payload
//! (`{uri, path}`), and the URI is this node's `/api/external-payloads/{path}`, which takes a
//! `PUT` of the payload or answers it to a `GET`.
//!
//! The Java SDK uploads and downloads with a plain `HttpURLConnection`, without the API's token,
//! as it would to a presigned S3 URL; so each URI carries its own authority: the operation, an
//! expiry and an HMAC-SHA256 of both and the path, under a key every node of the cluster derives
//! from the cluster secret (a single node without one makes a key at start). A URI is good for
//! one operation on one path until it expires, and a path is written once.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use overture_core::external::{PayloadType, path_problem};
use serde::Serialize;
use sha2::Sha256;

use crate::AppState;
use crate::error::ApiError;
use crate::input::Params;

/// Counter: payloads uploaded to and downloaded from `/api/external-payloads`, by `operation`.
pub const PAYLOAD_TRANSFERS: &str = "overture_external_payload_transfers_total";
/// Counter: bytes uploaded and downloaded, by `operation`.
pub const PAYLOAD_TRANSFER_BYTES: &str = "overture_external_payload_transfer_bytes_total";
/// Counter: payload URIs refused (bad or expired signature, wrong operation).
pub const PAYLOAD_URIS_REFUSED: &str = "overture_external_payload_uris_refused_total";

/// Where the payload URIs live.
pub const PAYLOADS_PREFIX: &str = "/api/external-payloads/";

/// How long a payload URI is good for.
const URI_TTL: Duration = Duration::from_secs(3600);

/// How this node signs and checks payload URIs.
#[derive(Clone)]
pub struct PayloadUrls {
    key: [u8; 32],
    /// Scheme, host and port the URIs start with; `None` uses `http://` and the Host the
    /// location request came to.
    base: Option<String>,
}

impl std::fmt::Debug for PayloadUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayloadUrls").field("base", &self.base).finish_non_exhaustive()
    }
}

impl PayloadUrls {
    /// URIs signed with a key derived from the cluster secret (the same on every node), or
    /// without one a key made now; starting with `base` if given.
    pub fn new(cluster_secret: Option<&str>, base: Option<String>) -> PayloadUrls {
        let key: [u8; 32] = match cluster_secret {
            Some(secret) => {
                let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
                    .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
                mac.update(b"overture external payload URIs");
                mac.finalize().into_bytes().into()
            }
            None => {
                let mut key = [0u8; 32];
                key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
                key
            }
        };
        PayloadUrls { key, base: base.map(|b| b.trim_end_matches('/').to_owned()) }
    }

    fn signature(&self, operation: Operation, path: &str, expires: u64) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(operation.as_str().as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac.update(b"\n");
        mac.update(path.as_bytes());
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn uri(&self, headers: &HeaderMap, operation: Operation, path: &str) -> String {
        let base = self.base.clone().unwrap_or_else(|| {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("http://{host}")
        });
        let expires = now_secs() + URI_TTL.as_secs();
        let sig = self.signature(operation, path, expires);
        format!(
            "{base}{PAYLOADS_PREFIX}{}?operation={}&expires={expires}&signature={sig}",
            encode_path(path),
            operation.as_str()
        )
    }

    /// Ok if `q` signs `operation` on `path` and has not expired.
    fn check(&self, q: &Params, operation: Operation, path: &str) -> Result<(), ApiError> {
        let refuse = |reason: &'static str, message: &str| {
            metrics::counter!(PAYLOAD_URIS_REFUSED, "reason" => reason).increment(1);
            Err(ApiError::new(StatusCode::FORBIDDEN, message))
        };
        if q.str("operation").and_then(Operation::parse) != Some(operation) {
            return refuse(
                "operation",
                "This payload URI is not for this operation: ask externalstoragelocation for one",
            );
        }
        let expires = q.str("expires").and_then(|e| e.parse::<u64>().ok()).unwrap_or(0);
        let given = q.str("signature").unwrap_or("");
        let expected = self.signature(operation, path, expires);
        // Compared in time independent of where they differ.
        let same = given.len() == expected.len()
            && given.bytes().zip(expected.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
        if !same {
            return refuse(
                "signature",
                "This payload URI's signature does not match: ask externalstoragelocation for one",
            );
        }
        if expires < now_secs() {
            return refuse("expired", "This payload URI has expired: ask externalstoragelocation for a new one");
        }
        Ok(())
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Percent-encodes a path for a URI, keeping its `/` steps.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Conductor's `ExternalPayloadStorage.Operation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    Read,
    Write,
}

impl Operation {
    fn parse(s: &str) -> Option<Operation> {
        if s.eq_ignore_ascii_case("READ") {
            Some(Operation::Read)
        } else if s.eq_ignore_ascii_case("WRITE") {
            Some(Operation::Write)
        } else {
            None
        }
    }
    fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "READ",
            Operation::Write => "WRITE",
        }
    }
}

/// Conductor's `ExternalStorageLocation`.
#[derive(Serialize)]
struct Location {
    uri: String,
    path: String,
}

/// `GET /api/workflow/externalstoragelocation` and `/api/tasks/externalstoragelocation` (and
/// their `external-storage-location` aliases): `path`, `operation` (READ or WRITE) and
/// `payloadType` (WORKFLOW_INPUT, WORKFLOW_OUTPUT, TASK_INPUT or TASK_OUTPUT), any case. A WRITE
/// with an empty path gets a new one (`task/output/<uuid>.json`, …).
pub async fn location(State(s): State<AppState>, headers: HeaderMap, q: Params) -> Result<Response, ApiError> {
    let operation_name = q.str("operation").unwrap_or("");
    let type_name = q.str("payloadType").unwrap_or("");
    let (Some(operation), Some(payload_type)) = (Operation::parse(operation_name), PayloadType::parse(type_name))
    else {
        return Err(ApiError::bad_request(format!(
            "Invalid input - Operation: {operation_name}, PayloadType: {type_name}: operation is READ or WRITE, \
             payloadType one of WORKFLOW_INPUT, WORKFLOW_OUTPUT, TASK_INPUT, TASK_OUTPUT"
        )));
    };
    let given = q.str("path").unwrap_or("").trim();
    let path = match (operation, given.is_empty()) {
        (Operation::Write, true) => overture_actors::payloads::new_path(payload_type),
        (Operation::Read, true) => return Err(ApiError::bad_request("A READ location needs the payload's path")),
        (_, false) => given.to_owned(),
    };
    if let Some(problem) = path_problem(&path) {
        return Err(ApiError::bad_request(problem));
    }
    let uri = match s.engine.payload_storage().client_url(&path, operation == Operation::Write, URI_TTL) {
        Some(bucket_url) => bucket_url,
        None => s.payload_urls.uri(&headers, operation, &path),
    };
    crate::json_response(&Location { uri, path })
}

/// `GET /api/external-payloads/{path}` with a READ URI's query: the payload, as JSON. (With a
/// bucket, `externalstoragelocation` answers the bucket's URLs, and these are never made; one
/// signed before a restart with a bucket reads from the bucket.)
pub async fn download(State(s): State<AppState>, Path(path): Path<String>, q: Params) -> Result<Response, ApiError> {
    s.payload_urls.check(&q, Operation::Read, &path)?;
    let bytes = s
        .engine
        .payload(&path)
        .await?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("No payload is stored at {path}")))?;
    metrics::counter!(PAYLOAD_TRANSFERS, "operation" => "READ").increment(1);
    metrics::counter!(PAYLOAD_TRANSFER_BYTES, "operation" => "READ").increment(bytes.len() as u64);
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

/// `PUT /api/external-payloads/{path}` with a WRITE URI's query: stores the body, a JSON
/// object up to the largest payload maximum, once per path.
pub async fn upload(
    State(s): State<AppState>,
    Path(path): Path<String>,
    q: Params,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    s.payload_urls.check(&q, Operation::Write, &path)?;
    if let Some(problem) = path_problem(&path) {
        return Err(ApiError::bad_request(problem));
    }
    let limit = s.limits.max_payload_bytes();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("The payload is larger than the limit of {limit} bytes"))
    })?;
    if let Err(e) = overture_core::payload::from_slice::<overture_core::Object>(&bytes) {
        return Err(ApiError::bad_request(format!("A payload is a JSON object: {e}")));
    }
    s.engine.store_payload(&path, &bytes).await?;
    metrics::counter!(PAYLOAD_TRANSFERS, "operation" => "WRITE").increment(1);
    metrics::counter!(PAYLOAD_TRANSFER_BYTES, "operation" => "WRITE").increment(bytes.len() as u64);
    tracing::debug!(path, bytes = bytes.len(), "payload uploaded");
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_by_byte_and_keep_their_steps() {
        assert_eq!(encode_path("task/output/a b.json"), "task/output/a%20b.json");
        assert_eq!(encode_path("任务"), "%E4%BB%BB%E5%8A%A1");
        assert_eq!(encode_path("a?b#c&d"), "a%3Fb%23c%26d");
    }

    #[test]
    fn a_signature_binds_operation_path_and_expiry_and_the_cluster_secret() {
        let a = PayloadUrls::new(Some("s"), None);
        let b = PayloadUrls::new(Some("s"), None);
        let other = PayloadUrls::new(Some("t"), None);
        let sig = a.signature(Operation::Write, "p", 10);
        assert_eq!(sig, b.signature(Operation::Write, "p", 10), "nodes with one secret agree");
        assert_ne!(sig, other.signature(Operation::Write, "p", 10));
        assert_ne!(sig, a.signature(Operation::Read, "p", 10));
        assert_ne!(sig, a.signature(Operation::Write, "q", 10));
        assert_ne!(sig, a.signature(Operation::Write, "p", 11));
    }
}

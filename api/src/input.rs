//! Reading requests the way the official SDKs send them.
//!
//! - Query strings: booleans in any case (`True` from Python), empty values (`query=`) treated as
//!   absent, repeated keys kept.
//! - Bodies: read up to a size limit (413 beyond it), chunked or not, whatever the
//!   `Content-Type` says; an empty body where a JSON object is optional counts as `{}`.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// Query parameters.
pub struct Params(HashMap<String, Vec<String>>);

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        if let Some(q) = parts.uri.query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                map.entry(k.into_owned()).or_default().push(v.into_owned());
            }
        }
        Ok(Params(map))
    }
}

impl Params {
    /// A parameter's value; empty counts as absent.
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.first()).map(String::as_str).filter(|s| !s.is_empty())
    }

    /// Every non-empty value of a repeated parameter (also comma-separated).
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get(name)
            .into_iter()
            .flatten()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// A boolean, in any letter case.
    pub fn bool(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.str(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!("query parameter {name} must be true or false, not {v:?}"))),
        }
    }

    /// A count or offset: a non-negative integer, `default` when absent.
    pub fn count(&self, name: &str, default: usize) -> Result<usize, ApiError> {
        match self.int(name)? {
            None => Ok(default),
            Some(v) => usize::try_from(v)
                .map_err(|_| ApiError::bad_request(format!("query parameter {name} must not be negative, not {v}"))),
        }
    }

    /// An integer.
    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        self.str(name)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("query parameter {name} must be an integer, not {v:?}")))
            })
            .transpose()
    }
}

/// The raw request body, read up to the configured limit.
pub struct RawBody(pub Bytes);

impl FromRequest<AppState> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let limit = state.max_body_bytes;
        match axum::body::to_bytes(req.into_body(), limit).await {
            Ok(bytes) => Ok(RawBody(bytes)),
            Err(e) => {
                let message = e.to_string();
                let too_large = e.into_inner().downcast_ref::<http_body_util::LengthLimitError>().is_some();
                if too_large {
                    Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("Request body is larger than the limit of {limit} bytes"),
                    ))
                } else {
                    Err(ApiError::bad_request(format!("Could not read the request body: {message}")))
                }
            }
        }
    }
}

impl RawBody {
    /// Parses the body as JSON. `empty` is what an empty body means, or `None` if a body is
    /// required.
    pub fn json<T: DeserializeOwned>(&self, empty: Option<T>) -> Result<T, ApiError> {
        if self.0.iter().all(u8::is_ascii_whitespace) {
            return empty.ok_or_else(|| ApiError::bad_request("A JSON request body is required"));
        }
        let mut de = serde_json::Deserializer::from_slice(&self.0);
        let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." || path.is_empty() {
                ApiError::bad_request(format!("Invalid request body: {inner}"))
            } else {
                ApiError::bad_request(format!("Invalid request body at {path}: {inner}"))
            }
        })?;
        de.end().map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))?;
        Ok(value)
    }

    /// The body as text (task logs arrive as raw text).
    pub fn text(&self) -> Result<String, ApiError> {
        String::from_utf8(self.0.to_vec()).map_err(|_| ApiError::bad_request("The request body is not UTF-8 text"))
    }
}

//! Optional authentication with API keys, as the official SDKs speak it: `POST /api/token` with
//! `{keyId, keySecret}` answers `{token}`, and clients send the token as `X-Authorization`.
//!
//! A token names its key and its expiry and is signed (HMAC-SHA256) with that key's secret, so
//! every node that has the same keys configured accepts it, without shared state; removing a key
//! from the configuration revokes its tokens. With no keys configured authentication is off and
//! `POST /api/token` answers 404, which the SDKs read as "no authentication here".
//!
//! The web UI's page and files (`/`, `/ui/*`) hold no data and are always served without a token;
//! the page signs in with a key through `POST /api/token` like an SDK.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::AppState;
use crate::error::ApiError;
use crate::input::RawBody;

/// The header the SDKs send their token in.
pub const TOKEN_HEADER: &str = "x-authorization";
const TOKEN_VERSION: &str = "ovt1";

/// Counter: requests refused for a missing, invalid or expired token, by `reason`.
pub const AUTH_REFUSED: &str = "overture_auth_refused_total";

/// API keys and what may be reached without a token.
#[derive(Debug, Clone)]
pub struct Auth {
    keys: BTreeMap<String, String>,
    exempt: Vec<String>,
    ttl: Duration,
}

/// Why a token was not accepted; the `error` field the Python SDK reads to refresh its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token in `X-Authorization` (`MISSING_TOKEN`).
    Missing,
    /// The token is malformed, names an unknown key or has a wrong signature, or `POST /api/token`
    /// got an unknown key id or wrong secret (`INVALID_TOKEN`).
    Invalid,
    /// The token is genuine but past its expiry (`EXPIRED_TOKEN`).
    Expired,
}

impl Refusal {
    fn code(self) -> &'static str {
        match self {
            Refusal::Missing => "MISSING_TOKEN",
            Refusal::Invalid => "INVALID_TOKEN",
            Refusal::Expired => "EXPIRED_TOKEN",
        }
    }
}

/// Paths served without a token unless configured otherwise.
pub const DEFAULT_EXEMPT: [&str; 4] = ["/health", "/api/health", "/ready", "/metrics"];

impl Auth {
    /// Authentication with these keys (id → secret); `None` if there are none. `exempt` lists
    /// paths served without a token: exact, or a prefix ending in `*`.
    pub fn new(keys: BTreeMap<String, String>, exempt: Vec<String>, ttl: Duration) -> Option<Auth> {
        (!keys.is_empty()).then_some(Auth { keys, exempt, ttl })
    }

    fn mac(secret: &str, key_id: &str, expires: u64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(format!("{TOKEN_VERSION}|{key_id}|{expires}").as_bytes());
        mac
    }

    /// A token for a key whose secret matches, valid until `now_secs + ttl`.
    pub fn issue(&self, key_id: &str, secret: &str, now_secs: u64) -> Option<String> {
        let expected = self.keys.get(key_id)?;
        // Compare secrets in constant time: as MACs of one message under each.
        let given = Self::mac(secret, key_id, 0).finalize().into_bytes();
        Self::mac(expected, key_id, 0).verify_slice(&given).ok()?;
        let expires = now_secs + self.ttl.as_secs();
        let signature = Self::mac(expected, key_id, expires).finalize().into_bytes();
        Some(format!("{TOKEN_VERSION}.{}.{expires}.{}", hex(key_id.as_bytes()), hex(&signature)))
    }

    /// The key a token was issued for, if it is genuine and current.
    pub fn verify(&self, token: &str, now_secs: u64) -> Result<String, Refusal> {
        let mut parts = token.trim().split('.');
        let (Some(TOKEN_VERSION), Some(key_hex), Some(expires), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Refusal::Invalid);
        };
        let key_id = unhex(key_hex).and_then(|b| String::from_utf8(b).ok()).ok_or(Refusal::Invalid)?;
        let expires: u64 = expires.parse().map_err(|_| Refusal::Invalid)?;
        let signature = unhex(signature).ok_or(Refusal::Invalid)?;
        let secret = self.keys.get(&key_id).ok_or(Refusal::Invalid)?;
        Self::mac(secret, &key_id, expires).verify_slice(&signature).map_err(|_| Refusal::Invalid)?;
        if expires <= now_secs {
            return Err(Refusal::Expired);
        }
        Ok(key_id)
    }

    fn is_exempt(&self, path: &str) -> bool {
        path == "/api/token"
            || path.starts_with("/internal/")
            // A payload URI carries its own signature (see `crate::payloads`).
            || path.starts_with(crate::payloads::PAYLOADS_PREFIX)
            || crate::ui::is_ui_path(path)
            || self.exempt.iter().any(|e| match e.strip_suffix('*') {
                Some(prefix) => path.starts_with(prefix),
                None => e == path,
            })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

fn unauthorized(refusal: Refusal, message: &str) -> Response {
    metrics::counter!(AUTH_REFUSED, "reason" => refusal.code()).increment(1);
    let body = serde_json::json!({"status": 401, "message": message, "error": refusal.code(),
        "instance": crate::instance_name(), "retryable": false});
    (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
}

/// The middleware: with authentication on, a request to anything but the exempt paths needs a
/// valid token in `X-Authorization`.
pub async fn authenticate(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let Some(auth) = s.auth.as_deref() else { return next.run(request).await };
    if auth.is_exempt(request.uri().path()) {
        return next.run(request).await;
    }
    let Some(token) = request.headers().get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) else {
        return unauthorized(
            Refusal::Missing,
            "Authentication is on: send a token in X-Authorization (POST /api/token issues one)",
        );
    };
    match auth.verify(token, now_secs()) {
        Ok(key_id) => {
            tracing::Span::current().record("key_id", key_id.as_str());
            next.run(request).await
        }
        Err(Refusal::Expired) => {
            unauthorized(Refusal::Expired, "The token has expired: get a new one from POST /api/token")
        }
        Err(other) => unauthorized(other, "The token is not valid here: get one from POST /api/token"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    key_id: String,
    key_secret: String,
}

/// `POST /api/token` with `{keyId, keySecret}`: `{token}`; 404 when authentication is off.
pub async fn token(State(s): State<AppState>, body: RawBody) -> Result<Response, ApiError> {
    let Some(auth) = s.auth.as_deref() else {
        return Err(ApiError::not_found("Authentication is off on this server: no token is needed"));
    };
    let request: TokenRequest = body.json(None)?;
    match auth.issue(&request.key_id, &request.key_secret, now_secs()) {
        Some(token) => crate::json_response(&serde_json::json!({"token": token})),
        None => Ok(unauthorized(Refusal::Invalid, "Unknown keyId or wrong keySecret")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let keys = BTreeMap::from([("ops".to_owned(), "s3cret".to_owned()), ("ci.bot".to_owned(), "other".to_owned())]);
        Auth::new(keys, vec!["/metrics".into(), "/ui/*".into()], Duration::from_secs(3600)).expect("on")
    }

    #[test]
    fn tokens_name_their_key_and_expire() {
        let a = auth();
        let token = a.issue("ci.bot", "other", 1_000).expect("issued");
        assert_eq!(a.verify(&token, 1_000), Ok("ci.bot".to_owned()));
        assert_eq!(a.verify(&token, 4_599), Ok("ci.bot".to_owned()));
        assert_eq!(a.verify(&token, 4_600), Err(Refusal::Expired));
        assert_eq!(a.issue("ci.bot", "wrong", 1_000), None);
        assert_eq!(a.issue("nobody", "other", 1_000), None);
    }

    #[test]
    fn forged_or_revoked_tokens_are_refused() {
        let a = auth();
        let token = a.issue("ops", "s3cret", 1_000).expect("issued");
        let later = token.replace(".4600.", ".9999.");
        assert_eq!(a.verify(&later, 1_000), Err(Refusal::Invalid), "expiry is signed");
        for junk in ["", "ovt1", "ovt1.zz.1.00", "bearer abc", &format!("{token}.x")] {
            assert_eq!(a.verify(junk, 1_000), Err(Refusal::Invalid), "{junk}");
        }
        let revoked = Auth::new(BTreeMap::from([("ci.bot".into(), "other".into())]), vec![], Duration::from_secs(60))
            .expect("on");
        assert_eq!(revoked.verify(&token, 1_000), Err(Refusal::Invalid));
        let rotated =
            Auth::new(BTreeMap::from([("ops".into(), "new".into())]), vec![], Duration::from_secs(60)).expect("on");
        assert_eq!(rotated.verify(&token, 1_000), Err(Refusal::Invalid), "a new secret revokes old tokens");
        assert!(Auth::new(BTreeMap::new(), vec![], Duration::from_secs(60)).is_none(), "no keys, no auth");
    }

    #[test]
    fn exempt_paths() {
        let a = auth();
        for path in ["/api/token", "/metrics", "/ui/index.html", "/internal/raft/append", "/", "/ui/app.js"] {
            assert!(a.is_exempt(path), "{path}");
        }
        for path in ["/api/workflow", "/metricsx", "/health"] {
            assert!(!a.is_exempt(path), "{path}");
        }
    }
}

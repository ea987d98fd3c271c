//! An S3-compatible bucket as external payload storage: objects under `prefix`, reached with
//! URLs presigned by AWS Signature Version 4 (query authentication, `UNSIGNED-PAYLOAD`), which
//! clients use as they are and the node uses for its own reads and writes.
//!
//! Path-style addressing (`{endpoint}/{bucket}/{key}`), which AWS, MinIO, Ceph and the other
//! S3-compatible servers all take.

use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::Error;

/// Where the bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Config {
    /// `http(s)://host[:port]` of the S3 API.
    pub endpoint: String,
    /// The bucket payloads are stored in.
    pub bucket: String,
    /// The bucket's region (`us-east-1` for most S3-compatible servers).
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Prepended to every path to make the object key (e.g. `conductor/`); may be empty.
    pub prefix: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

/// How long the URLs the node makes for itself are good for.
const OWN_URL_TTL: Duration = Duration::from_secs(300);

impl S3Config {
    /// A presigned URL for `method` (`GET` or `PUT`) on the object of `path`, good for `ttl`
    /// from `now`.
    pub fn presign(&self, method: &str, path: &str, ttl: Duration, now: SystemTime) -> String {
        let endpoint = self.endpoint.trim_end_matches('/');
        let host = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
        let uri = format!("/{}/{}", encode(&self.bucket, false), encode(&format!("{}{path}", self.prefix), false));
        let query = presigned_url_query(self, host, method, &uri, ttl, now);
        format!("{endpoint}{uri}?{query}")
    }

    /// Stores `bytes` at `path`.
    pub async fn put(&self, client: &reqwest::Client, path: &str, bytes: Vec<u8>) -> Result<(), Error> {
        let url = self.presign("PUT", path, OWN_URL_TTL, SystemTime::now());
        let response = client.put(url).body(bytes).send().await.map_err(|e| unreachable_bucket(&e))?;
        if !response.status().is_success() {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(Error::Unavailable(format!(
                "the S3 bucket refused to store {path}: {status} {}",
                body.chars().take(300).collect::<String>()
            )));
        }
        Ok(())
    }

    /// The object at `path`; `None` if there is none.
    pub async fn get(&self, client: &reqwest::Client, path: &str) -> Result<Option<Vec<u8>>, Error> {
        let url = self.presign("GET", path, OWN_URL_TTL, SystemTime::now());
        let response = client.get(url).send().await.map_err(|e| unreachable_bucket(&e))?;
        match response.status().as_u16() {
            200 => Ok(Some(response.bytes().await.map_err(|e| unreachable_bucket(&e))?.to_vec())),
            404 => Ok(None),
            status => Err(Error::Unavailable(format!("the S3 bucket answered {status} reading {path}"))),
        }
    }
}

fn unreachable_bucket(e: &reqwest::Error) -> Error {
    Error::Unavailable(format!("the S3 bucket is unreachable: {e}"))
}

/// The query string of a presigned URL, the signature last.
fn presigned_url_query(c: &S3Config, host: &str, method: &str, uri: &str, ttl: Duration, now: SystemTime) -> String {
    let time = chrono::DateTime::<chrono::Utc>::from(now);
    let amz_date = time.format("%Y%m%dT%H%M%SZ").to_string();
    let date = time.format("%Y%m%d").to_string();
    let scope = format!("{date}/{}/s3/aws4_request", c.region);
    let credential = format!("{}/{scope}", c.access_key);
    // Sorted by name, as the canonical request needs them.
    let query = format!(
        "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
        encode(&credential, true),
        ttl.as_secs().clamp(1, 604_800),
    );
    let canonical = format!("{method}\n{uri}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
    let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", hex(&Sha256::digest(canonical.as_bytes())));
    let mut key = hmac(format!("AWS4{}", c.secret_key).as_bytes(), date.as_bytes());
    for part in [c.region.as_str(), "s3", "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    format!("{query}&X-Amz-Signature={}", hex(&hmac(&key, to_sign.as_bytes())))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URI-encodes as SigV4 wants: unreserved characters stay, `/` stays unless `slash`, every
/// other byte becomes `%XX`.
fn encode(s: &str, slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (b == b'/' && !slash) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AWS's own example of a presigned URL (Signature Version 4, "Authenticating Requests:
    /// Using Query Parameters"): virtual-hosted style, so the bucket is in the host.
    #[test]
    fn the_signature_matches_aws_documented_example() {
        let c = S3Config {
            endpoint: "https://examplebucket.s3.amazonaws.com".into(),
            bucket: String::new(),
            region: "us-east-1".into(),
            access_key: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
            prefix: String::new(),
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let query = presigned_url_query(
            &c,
            "examplebucket.s3.amazonaws.com",
            "GET",
            "/test.txt",
            Duration::from_secs(86_400),
            now,
        );
        assert!(query.starts_with(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        ));
        assert!(
            query.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{query}"
        );
    }

    #[test]
    fn paths_become_path_style_keys_under_the_prefix() {
        let c = S3Config {
            endpoint: "http://127.0.0.1:4568/".into(),
            bucket: "payloads".into(),
            region: "us-east-1".into(),
            access_key: "k".into(),
            secret_key: "s".into(),
            prefix: "conductor/".into(),
        };
        let url = c.presign("PUT", "task/output/订单 1.json", Duration::from_secs(60), SystemTime::now());
        assert!(
            url.starts_with("http://127.0.0.1:4568/payloads/conductor/task/output/%E8%AE%A2%E5%8D%95%201.json?X-Amz-"),
            "{url}"
        );
    }
}

//! An S3-compatible bucket as external payload storage: objects under `prefix`, reached with
//! URLs presigned by AWS Signature Version 4 (query authentication, `UNSIGNED-PAYLOAD`), which
//! clients use as they are and the node uses for its own reads and writes.
//!
//! Path-style addressing (`{endpoint}/{bucket}/{key}`), which AWS, MinIO, Ceph and the other
//! S3-compatible servers all take.

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::sigv4::{Signer, encode};

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
    fn signer(&self) -> Signer<'_> {
        Signer { access_key: &self.access_key, secret_key: &self.secret_key, region: &self.region, service: "s3" }
    }

    /// A presigned URL for `method` (`GET` or `PUT`) on the object of `path`, good for `ttl`
    /// from `now`.
    pub fn presign(&self, method: &str, path: &str, ttl: Duration, now: SystemTime) -> String {
        let endpoint = self.endpoint.trim_end_matches('/');
        let host = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
        let uri = format!("/{}/{}", encode(&self.bucket, false), encode(&format!("{}{path}", self.prefix), false));
        let query = self.signer().presigned_query(host, method, &uri, ttl.as_secs(), now);
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

#[cfg(test)]
mod tests {
    use super::*;

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

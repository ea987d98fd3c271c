//! AWS Signature Version 4: presigned URLs (query authentication, for S3 objects) and signed
//! requests (an `Authorization` header, for SQS).

use std::time::SystemTime;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Who signs, and for which region and service.
#[derive(Clone, Copy)]
pub(crate) struct Signer<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// `20130524T000000Z` and `20130524` of `now`.
fn dates(now: SystemTime) -> (String, String) {
    let time = chrono::DateTime::<chrono::Utc>::from(now);
    (time.format("%Y%m%dT%H%M%SZ").to_string(), time.format("%Y%m%d").to_string())
}

impl Signer<'_> {
    fn scope(&self, date: &str) -> String {
        format!("{date}/{}/{}/aws4_request", self.region, self.service)
    }

    fn signature(&self, date: &str, amz_date: &str, canonical_request: &str) -> String {
        let digest = hex(&Sha256::digest(canonical_request.as_bytes()));
        let to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{}\n{digest}", self.scope(date));
        let mut key = hmac(format!("AWS4{}", self.secret_key).as_bytes(), date.as_bytes());
        for part in [self.region, self.service, "aws4_request"] {
            key = hmac(&key, part.as_bytes());
        }
        hex(&hmac(&key, to_sign.as_bytes()))
    }

    /// The query string of a URL presigned for `method` on `uri` at `host`, good for
    /// `ttl_seconds`; the signature last. The payload is not signed.
    pub fn presigned_query(&self, host: &str, method: &str, uri: &str, ttl_seconds: u64, now: SystemTime) -> String {
        let (amz_date, date) = dates(now);
        let credential = format!("{}/{}", self.access_key, self.scope(&date));
        // Sorted by name, as the canonical request needs them.
        let query = format!(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={}&X-Amz-Date={amz_date}&X-Amz-Expires={}&X-Amz-SignedHeaders=host",
            encode(&credential, true),
            ttl_seconds.clamp(1, 604_800),
        );
        let canonical = format!("{method}\n{uri}\n{query}\nhost:{host}\n\nhost\nUNSIGNED-PAYLOAD");
        format!("{query}&X-Amz-Signature={}", self.signature(&date, &amz_date, &canonical))
    }

    /// The `x-amz-date` and `authorization` headers of a request whose other signed headers
    /// are `headers` (lower-case names, `host` among them), `query` already canonical.
    pub fn sign_request(
        &self,
        method: &str,
        uri: &str,
        query: &str,
        headers: &[(&str, &str)],
        payload: &[u8],
        now: SystemTime,
    ) -> [(&'static str, String); 2] {
        let (amz_date, date) = dates(now);
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        all.push(("x-amz-date", &amz_date));
        all.sort_by_key(|(name, _)| *name);
        let canonical_headers: String = all.iter().map(|(n, v)| format!("{n}:{}\n", v.trim())).collect();
        let signed: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        let signed = signed.join(";");
        let payload_hash = hex(&Sha256::digest(payload));
        let canonical = format!("{method}\n{uri}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}");
        let signature = self.signature(&date, &amz_date, &canonical);
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed}, Signature={signature}",
            self.access_key,
            self.scope(&date)
        );
        [("x-amz-date", amz_date), ("authorization", authorization)]
    }
}

pub(crate) fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// URI-encodes as SigV4 wants: unreserved characters stay, `/` stays unless `slash`, every
/// other byte becomes `%XX`.
pub(crate) fn encode(s: &str, slash: bool) -> String {
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
    use std::time::Duration;

    use super::*;

    /// AWS's own example of a presigned URL (Signature Version 4, "Authenticating Requests:
    /// Using Query Parameters"): virtual-hosted style, so the bucket is in the host.
    #[test]
    fn a_presigned_url_matches_aws_documented_example() {
        let signer = Signer {
            access_key: "AKIAIOSFODNN7EXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "s3",
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24T00:00:00Z
        let query = signer.presigned_query("examplebucket.s3.amazonaws.com", "GET", "/test.txt", 86_400, now);
        assert!(query.starts_with(
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        ));
        assert!(
            query.ends_with("X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"),
            "{query}"
        );
    }

    /// AWS's own example of a signed request (Signature Version 4, "Examples of the complete
    /// Version 4 signing process": IAM ListUsers).
    #[test]
    fn a_signed_request_matches_aws_documented_example() {
        let signer = Signer {
            access_key: "AKIDEXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            region: "us-east-1",
            service: "iam",
        };
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let headers =
            [("content-type", "application/x-www-form-urlencoded; charset=utf-8"), ("host", "iam.amazonaws.com")];
        let [date, authorization] =
            signer.sign_request("GET", "/", "Action=ListUsers&Version=2010-05-08", &headers, b"", now);
        assert_eq!(date.1, "20150830T123600Z");
        assert_eq!(
            authorization.1,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }
}

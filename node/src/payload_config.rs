//! The `[payloads]` table of the configuration: when payloads go to external payload storage,
//! and where (embedded, or an S3-compatible bucket in `[payloads.s3]`).

use anyhow::bail;
use overture_actors::PayloadOptions;
use overture_actors::payloads::PayloadStorage;
use overture_actors::payloads::s3::S3Config;
use serde::Deserialize;

/// `[payloads]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayloadsFile {
    /// `embedded` (the default) or `s3`.
    pub storage: Option<String>,
    /// Scheme, host and port the node's payload URIs start with (default: `http://` and the
    /// Host the location request came to).
    pub url: Option<String>,
    /// Payloads larger than these go to external payload storage, bytes of JSON.
    pub task_input_threshold_bytes: Option<usize>,
    pub task_output_threshold_bytes: Option<usize>,
    pub workflow_input_threshold_bytes: Option<usize>,
    pub workflow_output_threshold_bytes: Option<usize>,
    /// The bucket, with `storage = "s3"`.
    #[serde(default)]
    pub s3: S3File,
}

/// `[payloads.s3]` as written, or from `OVERTURE_S3_*`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3File {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    pub prefix: Option<String>,
}

impl S3File {
    /// `OVERTURE_S3_ENDPOINT`, `_BUCKET`, `_REGION`, `_ACCESS_KEY`, `_SECRET_KEY`, `_PREFIX`.
    pub fn from_env() -> S3File {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        S3File {
            endpoint: var("OVERTURE_S3_ENDPOINT"),
            bucket: var("OVERTURE_S3_BUCKET"),
            region: var("OVERTURE_S3_REGION"),
            access_key: var("OVERTURE_S3_ACCESS_KEY"),
            secret_key: var("OVERTURE_S3_SECRET_KEY"),
            prefix: var("OVERTURE_S3_PREFIX"),
        }
    }

    /// Fields set in `other` replace ours.
    pub fn then(self, other: S3File) -> S3File {
        S3File {
            endpoint: other.endpoint.or(self.endpoint),
            bucket: other.bucket.or(self.bucket),
            region: other.region.or(self.region),
            access_key: other.access_key.or(self.access_key),
            secret_key: other.secret_key.or(self.secret_key),
            prefix: other.prefix.or(self.prefix),
        }
    }
}

/// The engine's payload options from the file's table, the storage and bucket overridden by the
/// environment, and the maximums (`max_task_input_bytes`, `max_workflow_output_bytes`).
pub fn resolve(
    file: PayloadsFile,
    storage: Option<String>,
    s3: S3File,
    max_task_input: Option<usize>,
    max_workflow_output: Option<usize>,
) -> anyhow::Result<PayloadOptions> {
    let d = PayloadOptions::default();
    let storage = match storage.or(file.storage).as_deref().map(str::trim) {
        None | Some("embedded") => PayloadStorage::Embedded,
        Some("s3") => {
            let s3 = file.s3.then(s3);
            let required = |value: Option<String>, key: &str| match value.filter(|v| !v.trim().is_empty()) {
                Some(v) => Ok(v),
                None => {
                    bail!("payloads storage \"s3\" needs [payloads.s3] {key} (or OVERTURE_S3_{})", key.to_uppercase())
                }
            };
            let endpoint = required(s3.endpoint, "endpoint")?;
            if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
                bail!("[payloads.s3] endpoint must be an http:// or https:// URL, not {endpoint:?}");
            }
            let config = S3Config {
                endpoint,
                bucket: required(s3.bucket, "bucket")?,
                region: s3.region.unwrap_or_else(|| "us-east-1".to_owned()),
                access_key: required(s3.access_key, "access_key")?,
                secret_key: required(s3.secret_key, "secret_key")?,
                prefix: s3.prefix.unwrap_or_default(),
            };
            PayloadStorage::s3(config).map_err(|e| anyhow::anyhow!(e))?
        }
        Some(other) => bail!("payloads storage must be \"embedded\" or \"s3\", not {other:?}"),
    };
    Ok(PayloadOptions {
        task_input_threshold: file.task_input_threshold_bytes.unwrap_or(d.task_input_threshold),
        task_output_threshold: file.task_output_threshold_bytes.unwrap_or(d.task_output_threshold),
        workflow_input_threshold: file.workflow_input_threshold_bytes.unwrap_or(d.workflow_input_threshold),
        workflow_output_threshold: file.workflow_output_threshold_bytes.unwrap_or(d.workflow_output_threshold),
        max_task_input: max_task_input.unwrap_or(d.max_task_input),
        max_workflow_output: max_workflow_output.unwrap_or(d.max_workflow_output),
        storage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_needs_its_bucket_and_keys_and_an_http_endpoint() {
        let err = |file: &str| {
            let file: PayloadsFile = toml::from_str(file).expect("parses");
            resolve(file, None, S3File::default(), None, None).expect_err("refused").to_string()
        };
        assert!(err("storage = \"s3\"").contains("endpoint"));
        assert!(err("storage = \"s3\"\n[s3]\nendpoint = \"127.0.0.1:9000\"").contains("http://"));
        assert!(err("storage = \"disk\"").contains("embedded"));
        let file: PayloadsFile = toml::from_str(
            "storage = \"s3\"\ntask_output_threshold_bytes = 1024\n[s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"",
        )
        .expect("parses");
        let env = S3File { access_key: Some("k".into()), secret_key: Some("s".into()), ..S3File::default() };
        let options = resolve(file, None, env, Some(1 << 30), None).expect("resolved");
        assert_eq!(options.storage.kind(), "s3");
        assert_eq!(options.task_output_threshold, 1024);
        assert_eq!(options.max_task_input, 1 << 30);
        assert_eq!(options.workflow_input_threshold, 5120 << 10);
    }
}

//! The `[traces]` table of the configuration: where the node sends OpenTelemetry spans.
//!
//! ```toml
//! [traces]
//! otlp_endpoint = "http://collector:4318"   # spans go to /v1/traces under it
//! otlp_protocol = "http/protobuf"           # or "http/json"
//! sampling_ratio = 1.0                      # of the traces no start request named
//! ```
//!
//! The environment overrides it: `OVERTURE_OTLP_ENDPOINT`, `OVERTURE_OTLP_PROTOCOL`,
//! `OVERTURE_TRACES_SAMPLING_RATIO`, and OpenTelemetry's own `OTEL_EXPORTER_OTLP_ENDPOINT` and
//! `OTEL_EXPORTER_OTLP_PROTOCOL` where Overture's are not set.

use anyhow::bail;
use overture_actors::traces::{Protocol, TraceOptions};
use serde::Deserialize;

/// `[traces]` as written, or from the environment.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracesFile {
    /// The OTLP/HTTP endpoint's base URL; no traces without it.
    pub otlp_endpoint: Option<String>,
    /// `http/protobuf` (the default) or `http/json`.
    pub otlp_protocol: Option<String>,
    /// 0 to 1: of the workflows started without a sampled `traceparent`, the share traced.
    pub sampling_ratio: Option<f64>,
}

impl TracesFile {
    /// From the environment.
    pub fn from_env() -> anyhow::Result<TracesFile> {
        let var = |names: &[&str]| names.iter().find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()));
        let sampling_ratio = match var(&["OVERTURE_TRACES_SAMPLING_RATIO"]) {
            Some(v) => match v.trim().parse::<f64>() {
                Ok(ratio) => Some(ratio),
                Err(_) => bail!("OVERTURE_TRACES_SAMPLING_RATIO must be a number from 0 to 1, not {v:?}"),
            },
            None => None,
        };
        Ok(TracesFile {
            otlp_endpoint: var(&["OVERTURE_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]),
            otlp_protocol: var(&["OVERTURE_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"]),
            sampling_ratio,
        })
    }

    /// Fields set in `other` replace ours.
    pub fn then(self, other: TracesFile) -> TracesFile {
        TracesFile {
            otlp_endpoint: other.otlp_endpoint.or(self.otlp_endpoint),
            otlp_protocol: other.otlp_protocol.or(self.otlp_protocol),
            sampling_ratio: other.sampling_ratio.or(self.sampling_ratio),
        }
    }

    /// What the node does: `None` without an endpoint.
    pub fn resolve(self, node_id: u64) -> anyhow::Result<Option<TraceOptions>> {
        let Some(endpoint) = self.otlp_endpoint.map(|e| e.trim().to_owned()) else {
            if self.otlp_protocol.is_some() || self.sampling_ratio.is_some() {
                bail!("[traces] needs otlp_endpoint (the collector's OTLP/HTTP URL) for its other settings to apply");
            }
            return Ok(None);
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!("[traces] otlp_endpoint must be an http:// or https:// URL (OTLP over HTTP), not {endpoint:?}");
        }
        let protocol = match self.otlp_protocol.as_deref().map(str::trim) {
            None => Protocol::default(),
            Some(p) => match Protocol::parse(p) {
                Some(protocol) => protocol,
                None if p == "grpc" => {
                    bail!("[traces] otlp_protocol grpc is not supported; use http/protobuf (port 4318)")
                }
                None => bail!("[traces] otlp_protocol must be http/protobuf or http/json, not {p:?}"),
            },
        };
        let sampling_ratio = self.sampling_ratio.unwrap_or(1.0);
        if !(0.0..=1.0).contains(&sampling_ratio) {
            bail!("[traces] sampling_ratio must be from 0 to 1, not {sampling_ratio}");
        }
        Ok(Some(TraceOptions {
            endpoint,
            protocol,
            sampling_ratio,
            instance: format!("overture-node-{node_id}"),
            timeout: std::time::Duration::from_secs(10),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(text: &str) -> anyhow::Result<Option<TraceOptions>> {
        toml::from_str::<TracesFile>(text).expect("parses").resolve(3)
    }

    #[test]
    fn traces_are_off_without_an_endpoint_and_on_with_one() {
        assert!(resolve("").expect("valid").is_none());
        let on = resolve("otlp_endpoint = \"http://collector:4318\"").expect("valid").expect("on");
        assert_eq!(
            (on.protocol, on.sampling_ratio, on.instance.as_str()),
            (Protocol::Protobuf, 1.0, "overture-node-3")
        );
        let json = resolve("otlp_endpoint = \"https://c\"\notlp_protocol = \"http/json\"\nsampling_ratio = 0.25")
            .expect("valid")
            .expect("on");
        assert_eq!((json.protocol, json.sampling_ratio), (Protocol::Json, 0.25));
    }

    #[test]
    fn bad_trace_settings_are_refused_with_a_reason() {
        let bad = |text: &str| resolve(text).expect_err("refused").to_string();
        assert!(bad("otlp_endpoint = \"collector:4317\"").contains("http:// or https://"));
        assert!(bad("otlp_endpoint = \"http://c\"\notlp_protocol = \"grpc\"").contains("not supported"));
        assert!(bad("otlp_endpoint = \"http://c\"\notlp_protocol = \"thrift\"").contains("http/protobuf or http/json"));
        assert!(bad("otlp_endpoint = \"http://c\"\nsampling_ratio = 2.0").contains("from 0 to 1"));
        assert!(bad("sampling_ratio = 0.5").contains("needs otlp_endpoint"));
    }
}

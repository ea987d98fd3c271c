//! The `[event_queues]` table of the configuration: the message brokers event queues may be on,
//! with conductor-oss's `conductor.event-queues.<type>.*` settings under their own names.

use std::time::Duration;

use anyhow::bail;
use overture_actors::brokers::{BrokerOptions, JetStreamOptions, NatsOptions};
use serde::Deserialize;

/// `[event_queues]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQueuesFile {
    /// `[event_queues.nats]`: NATS core (`nats:subject[:group]`).
    pub nats: Option<NatsFile>,
    /// `[event_queues.jsm]`: NATS JetStream (`jsm:subject`).
    pub jsm: Option<JetStreamFile>,
}

/// `[event_queues.nats]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsFile {
    /// `nats://host:port`, several comma-separated (also `OVERTURE_NATS_URL`).
    pub url: Option<String>,
}

/// `[event_queues.jsm]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JetStreamFile {
    /// `nats://host:port` (also `OVERTURE_JSM_URL`).
    pub url: Option<String>,
    /// conductor-oss's `listener-queue-prefix`.
    pub listener_queue_prefix: Option<String>,
    pub durable_name: Option<String>,
    pub replicas: Option<usize>,
    pub ack_wait_seconds: Option<u64>,
    pub max_deliver: Option<i64>,
    pub max_ack_pending: Option<i64>,
}

fn check_url(table: &str, url: &str) -> anyhow::Result<()> {
    if !url.split(',').all(|u| u.trim().starts_with("nats://") || u.trim().starts_with("tls://")) {
        bail!("[event_queues.{table}] url must be nats://host:port (or tls://), comma-separated; not {url:?}");
    }
    Ok(())
}

/// The brokers from the file's tables, their addresses overridden by `nats_url` and `jsm_url`
/// (either of which also turns its broker on).
pub fn resolve(
    file: EventQueuesFile,
    nats_url: Option<String>,
    jsm_url: Option<String>,
) -> anyhow::Result<BrokerOptions> {
    let nats = match (file.nats, nats_url) {
        (None, None) => None,
        (file, env) => {
            let url = env.or(file.and_then(|f| f.url)).unwrap_or_else(|| "nats://127.0.0.1:4222".into());
            check_url("nats", &url)?;
            Some(NatsOptions { url })
        }
    };
    let jsm = match (file.jsm, jsm_url) {
        (None, None) => None,
        (file, env) => {
            let f = file.unwrap_or_default();
            let d = JetStreamOptions::default();
            let url = env.or(f.url).unwrap_or(d.url);
            check_url("jsm", &url)?;
            let durable_name = f.durable_name.unwrap_or(d.durable_name);
            if durable_name.is_empty()
                || !durable_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!("[event_queues.jsm] durable_name is letters, digits, _ and - only, not {durable_name:?}");
            }
            Some(JetStreamOptions {
                url,
                subject_prefix: f.listener_queue_prefix.unwrap_or(d.subject_prefix),
                durable_name,
                replicas: f.replicas.unwrap_or(d.replicas).max(1),
                ack_wait: f.ack_wait_seconds.map_or(d.ack_wait, |s| Duration::from_secs(s.max(1))),
                max_deliver: f.max_deliver.unwrap_or(d.max_deliver),
                max_ack_pending: f.max_ack_pending.unwrap_or(d.max_ack_pending),
            })
        }
    };
    Ok(BrokerOptions { nats, jsm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_are_configured_by_their_tables_or_the_environment() {
        let none = resolve(EventQueuesFile::default(), None, None).expect("none");
        assert!(none.nats.is_none() && none.jsm.is_none());
        let env = resolve(EventQueuesFile::default(), Some("nats://10.0.0.1:4222".into()), None).expect("env");
        assert_eq!(env.nats.expect("nats").url, "nats://10.0.0.1:4222");
        assert!(env.jsm.is_none());
        let file: EventQueuesFile = toml::from_str("[jsm]\nlistener_queue_prefix = \"orders_\"").expect("parses");
        let jsm = resolve(file, None, None).expect("file").jsm.expect("jsm");
        assert_eq!((jsm.url.as_str(), jsm.subject_prefix.as_str()), ("nats://127.0.0.1:4222", "orders_"));
        assert_eq!(jsm.durable_name, "defaultQueue");
        let bad: EventQueuesFile = toml::from_str("[nats]\nurl = \"http://x\"").expect("parses");
        assert!(resolve(bad, None, None).is_err());
        let bad: EventQueuesFile = toml::from_str("[jsm]\ndurable_name = \"a.b\"").expect("parses");
        assert!(resolve(bad, None, None).is_err());
    }
}

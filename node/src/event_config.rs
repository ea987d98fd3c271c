//! The `[event_queues]` table of the configuration: the message brokers event queues may be on,
//! with conductor-oss's `conductor.event-queues.<type>.*` settings under their own names.

use std::time::Duration;

use anyhow::bail;
use overture_actors::brokers::{
    AmqpOptions, BrokerOptions, DefaultQueues, JetStreamOptions, KafkaOptions, KafkaStatusOptions, NatsOptions,
    OffsetReset, SqsOptions,
};
use serde::Deserialize;

/// `[event_queues]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventQueuesFile {
    /// conductor-oss's `conductor.default-event-queue.type`: `sqs`, `amqp`, `kafka` or `jsm`, the
    /// broker of the default event queues (COMPLETED and FAILED) that report a task's status.
    pub default_queue_type: Option<String>,
    /// Their names before the status, by default `conductor_<type>_notify_test_` (the module's
    /// `listener-queue-prefix`); not used for `jsm`, whose subjects take its own prefix.
    pub default_queue_prefix: Option<String>,
    /// `[event_queues.nats]`: NATS core (`nats:subject[:group]`).
    pub nats: Option<NatsFile>,
    /// `[event_queues.jsm]`: NATS JetStream (`jsm:subject`).
    pub jsm: Option<JetStreamFile>,
    /// `[event_queues.amqp]`: RabbitMQ (`amqp_queue:name`, `amqp_exchange:name`).
    pub amqp: Option<AmqpFile>,
    /// `[event_queues.kafka]`: Kafka (`kafka:topic`).
    pub kafka: Option<KafkaFile>,
    /// `[event_queues.sqs]`: Amazon SQS or a server speaking its API (`sqs:queue`).
    pub sqs: Option<SqsFile>,
}

/// `[event_queues.sqs]` as written: conductor-oss's `conductor.event-queues.sqs.*` keys, and the
/// credentials its AWS SDK would find in the environment.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqsFile {
    /// The SQS API (also `OVERTURE_SQS_ENDPOINT`); by default AWS's for the region.
    pub endpoint: Option<String>,
    /// By default `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// By default `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Messages one receive asks for, 1 to 10 (conductor-oss: 1; here 10).
    pub batch_size: Option<u8>,
    /// How long one receive waits for messages, 0 to 20 s (conductor-oss polls every 100 ms).
    pub wait_seconds: Option<u64>,
    pub visibility_timeout_seconds: Option<u64>,
}

fn sqs(file: Option<SqsFile>, a: &BrokerAddresses) -> anyhow::Result<Option<SqsOptions>> {
    if file.is_none() && a.sqs.is_none() {
        return Ok(None);
    }
    let f = file.unwrap_or_default();
    let region = f.region.or_else(|| a.aws_region.clone()).unwrap_or_else(|| "us-east-1".into());
    let endpoint = a.sqs.clone().or(f.endpoint).unwrap_or_else(|| format!("https://sqs.{region}.amazonaws.com"));
    if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
        bail!("[event_queues.sqs] endpoint must be an http:// or https:// URL, not {endpoint:?}");
    }
    let (Some(access_key), Some(secret_key)) =
        (f.access_key.or_else(|| a.aws_access_key.clone()), f.secret_key.or_else(|| a.aws_secret_key.clone()))
    else {
        bail!("[event_queues.sqs] needs access_key and secret_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)");
    };
    let batch_size = f.batch_size.unwrap_or(10);
    let wait_seconds = f.wait_seconds.unwrap_or(10);
    if !(1..=10).contains(&batch_size) || wait_seconds > 20 {
        bail!("[event_queues.sqs] batch_size is 1 to 10 and wait_seconds 0 to 20, as SQS takes them");
    }
    Ok(Some(SqsOptions {
        endpoint,
        region,
        access_key,
        secret_key,
        batch_size,
        wait_seconds,
        visibility_timeout: Duration::from_secs(f.visibility_timeout_seconds.unwrap_or(60).clamp(1, 43_200)),
    }))
}

/// `[event_queues.kafka]` as written: conductor-oss's `conductor.event-queues.kafka.*` keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaFile {
    /// `host:port`, several comma-separated (also `OVERTURE_KAFKA_BOOTSTRAP_SERVERS`).
    pub bootstrap_servers: Option<String>,
    pub client_id: Option<String>,
    /// `latest` (the default) or `earliest`: where a queue never consumed before starts (the
    /// consumer's `auto.offset.reset`).
    pub auto_offset_reset: Option<String>,
    /// Partitions and replicas of a topic Overture creates because it did not exist.
    pub topic_partitions: Option<i32>,
    pub replication_factor: Option<i16>,
    pub request_timeout_ms: Option<u64>,
}

fn kafka(file: Option<KafkaFile>, servers: Option<String>) -> anyhow::Result<Option<KafkaOptions>> {
    if file.is_none() && servers.is_none() {
        return Ok(None);
    }
    let f = file.unwrap_or_default();
    let d = KafkaOptions::default();
    let bootstrap_servers = servers.or(f.bootstrap_servers).unwrap_or(d.bootstrap_servers);
    if bootstrap_servers
        .split(',')
        .any(|s| s.trim().is_empty() || s.contains("://") && !s.trim().starts_with("PLAINTEXT://"))
    {
        bail!("[event_queues.kafka] bootstrap_servers must be host:port, comma-separated; not {bootstrap_servers:?}");
    }
    let offset_reset = match f.auto_offset_reset.as_deref() {
        None | Some("latest") => OffsetReset::Latest,
        Some("earliest") => OffsetReset::Earliest,
        Some(other) => bail!("[event_queues.kafka] auto_offset_reset must be latest or earliest, not {other:?}"),
    };
    let topic_partitions = f.topic_partitions.unwrap_or(d.topic_partitions);
    let replication_factor = f.replication_factor.unwrap_or(d.replication_factor);
    if topic_partitions < 1 || replication_factor < 1 {
        bail!("[event_queues.kafka] topic_partitions and replication_factor must be at least 1");
    }
    Ok(Some(KafkaOptions {
        bootstrap_servers,
        client_id: f.client_id.unwrap_or(d.client_id),
        offset_reset,
        topic_partitions,
        replication_factor,
        request_timeout: f.request_timeout_ms.map_or(d.request_timeout, |ms| Duration::from_millis(ms.max(100))),
    }))
}

/// `[event_queues.amqp]` as written: conductor-oss's `conductor.event-queues.amqp.*` keys, or a
/// whole `url`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpFile {
    /// `amqp://user:password@host:port/vhost` (also `OVERTURE_AMQP_URL`); replaces the five below.
    pub url: Option<String>,
    pub hosts: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub virtual_host: Option<String>,
    /// Messages handed to a consumer before it acknowledges (conductor-oss: 1; here 128).
    pub batch_size: Option<u16>,
    pub exchange_type: Option<String>,
    pub durable: Option<bool>,
    pub delivery_mode: Option<u8>,
}

/// Percent-encodes a URL component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn amqp(file: Option<AmqpFile>, url: Option<String>) -> anyhow::Result<Option<AmqpOptions>> {
    if file.is_none() && url.is_none() {
        return Ok(None);
    }
    let f = file.unwrap_or_default();
    let d = AmqpOptions::default();
    let url = match url.or(f.url) {
        Some(url) => url,
        None => {
            let host =
                f.hosts.as_deref().unwrap_or("localhost").split(',').next().unwrap_or("localhost").trim().to_owned();
            let host = if host.contains(':') { host } else { format!("{host}:{}", f.port.unwrap_or(5672)) };
            format!(
                "amqp://{}:{}@{host}/{}",
                encode(f.username.as_deref().unwrap_or("guest")),
                encode(f.password.as_deref().unwrap_or("guest")),
                encode(f.virtual_host.as_deref().unwrap_or("/"))
            )
        }
    };
    if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
        bail!("[event_queues.amqp] url must be amqp://user:password@host:port/vhost (or amqps://)");
    }
    let delivery_mode = f.delivery_mode.unwrap_or(d.delivery_mode);
    if !matches!(delivery_mode, 1 | 2) {
        bail!("[event_queues.amqp] delivery_mode must be 1 or 2");
    }
    Ok(Some(AmqpOptions {
        url,
        prefetch: f.batch_size.unwrap_or(d.prefetch).max(1),
        exchange_type: f.exchange_type.unwrap_or(d.exchange_type),
        durable: f.durable.unwrap_or(d.durable),
        delivery_mode,
    }))
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

/// Broker addresses from the environment, each of which overrides its table and turns its broker
/// on.
#[derive(Debug, Default, Clone)]
pub struct BrokerAddresses {
    /// `OVERTURE_NATS_URL`.
    pub nats: Option<String>,
    /// `OVERTURE_JSM_URL`.
    pub jsm: Option<String>,
    /// `OVERTURE_AMQP_URL`.
    pub amqp: Option<String>,
    /// `OVERTURE_KAFKA_BOOTSTRAP_SERVERS`.
    pub kafka: Option<String>,
    /// `OVERTURE_SQS_ENDPOINT`.
    pub sqs: Option<String>,
    /// `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`: SQS's defaults, as AWS's SDKs
    /// read them (they do not turn SQS on).
    pub aws_region: Option<String>,
    pub aws_access_key: Option<String>,
    pub aws_secret_key: Option<String>,
}

impl BrokerAddresses {
    /// These, each replaced by `other`'s where it has one.
    pub fn then(self, other: BrokerAddresses) -> BrokerAddresses {
        BrokerAddresses {
            nats: other.nats.or(self.nats),
            jsm: other.jsm.or(self.jsm),
            amqp: other.amqp.or(self.amqp),
            kafka: other.kafka.or(self.kafka),
            sqs: other.sqs.or(self.sqs),
            aws_region: other.aws_region.or(self.aws_region),
            aws_access_key: other.aws_access_key.or(self.aws_access_key),
            aws_secret_key: other.aws_secret_key.or(self.aws_secret_key),
        }
    }
}

/// `[workflow_status_listener]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusListenerFile {
    /// `[workflow_status_listener.kafka]`: conductor-oss's `kafka` listener,
    /// `conductor.workflow-status-listener.kafka.*`.
    pub kafka: Option<StatusKafkaFile>,
}

/// `[workflow_status_listener.kafka]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusKafkaFile {
    /// The topic of every event type without its own (`workflow-status-events`).
    pub default_topic: Option<String>,
    /// Topics by event type: `COMPLETED`, `TERMINATED`, `FINALIZED`.
    #[serde(default)]
    pub event_topics: std::collections::BTreeMap<String, String>,
}

fn status_kafka(file: StatusListenerFile, kafka: bool) -> anyhow::Result<Option<KafkaStatusOptions>> {
    let Some(f) = file.kafka else { return Ok(None) };
    if !kafka {
        bail!(
            "[workflow_status_listener.kafka] publishes to the Kafka of [event_queues.kafka], which is not configured"
        );
    }
    const EVENTS: [&str; 3] = ["COMPLETED", "TERMINATED", "FINALIZED"];
    if let Some(other) = f.event_topics.keys().find(|k| !EVENTS.contains(&k.as_str())) {
        bail!("[workflow_status_listener.kafka] event_topics: {other:?} is not an event published; use {EVENTS:?}");
    }
    let d = KafkaStatusOptions::default();
    let default_topic = f.default_topic.unwrap_or(d.default_topic);
    if let Some(empty) = std::iter::once(&default_topic).chain(f.event_topics.values()).find(|t| t.trim().is_empty()) {
        bail!("[workflow_status_listener.kafka] topics must be named, not {empty:?}");
    }
    Ok(Some(KafkaStatusOptions { default_topic, event_topics: f.event_topics }))
}

/// The brokers from the file's tables and the addresses given apart.
pub fn resolve(
    file: EventQueuesFile,
    status: StatusListenerFile,
    addresses: BrokerAddresses,
) -> anyhow::Result<BrokerOptions> {
    let sqs = sqs(file.sqs, &addresses)?;
    let nats = match (file.nats, addresses.nats) {
        (None, None) => None,
        (file, env) => {
            let url = env.or(file.and_then(|f| f.url)).unwrap_or_else(|| "nats://127.0.0.1:4222".into());
            check_url("nats", &url)?;
            Some(NatsOptions { url })
        }
    };
    let jsm = match (file.jsm, addresses.jsm) {
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
    let kafka = kafka(file.kafka, addresses.kafka)?;
    let amqp = amqp(file.amqp, addresses.amqp)?;
    let default_queues = match file.default_queue_type.as_deref() {
        None => None,
        Some(kind) => {
            let configured = match kind {
                "sqs" => sqs.is_some(),
                "amqp" => amqp.is_some(),
                "kafka" => kafka.is_some(),
                "jsm" => jsm.is_some(),
                _ => true,
            };
            if !configured {
                bail!("[event_queues] default_queue_type = {kind:?} needs [event_queues.{kind}]");
            }
            let queues = DefaultQueues::new(kind, file.default_queue_prefix.as_deref(), "test");
            Some(queues.map_err(|e| anyhow::anyhow!("[event_queues] {e}"))?)
        }
    };
    Ok(BrokerOptions {
        default_queues,
        nats,
        jsm,
        amqp,
        status_kafka: status_kafka(status, kafka.is_some())?,
        kafka,
        sqs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queues(file: EventQueuesFile, addresses: BrokerAddresses) -> anyhow::Result<BrokerOptions> {
        resolve(file, StatusListenerFile::default(), addresses)
    }

    #[test]
    fn default_queues_are_on_a_configured_broker() {
        let file: EventQueuesFile =
            toml::from_str("default_queue_type = \"sqs\"\n[sqs]\naccess_key = \"a\"\nsecret_key = \"b\"")
                .expect("parses");
        let defaults = queues(file, BrokerAddresses::default()).expect("sqs").default_queues.expect("on");
        assert_eq!(defaults.completed.event(), "sqs:conductor_sqs_notify_test_COMPLETED");
        let file: EventQueuesFile = toml::from_str("default_queue_type = \"kafka\"").expect("parses");
        let why = queues(file, BrokerAddresses::default()).expect_err("no kafka").to_string();
        assert!(why.contains("[event_queues.kafka]"), "{why}");
        let file: EventQueuesFile = toml::from_str("default_queue_type = \"nats\"\n[nats]").expect("parses");
        assert!(queues(file, BrokerAddresses::default()).is_err(), "not a default queue type");
    }

    #[test]
    fn status_events_go_to_the_configured_kafka() {
        let with = |kafka: &str, status: &str| {
            let file: EventQueuesFile = toml::from_str(kafka).expect("parses");
            let status: StatusListenerFile = toml::from_str(status).expect("parses");
            resolve(file, status, BrokerAddresses::default())
        };
        let on = with("[kafka]", "[kafka]\nevent_topics = { FINALIZED = \"wf-done\" }").expect("kafka");
        let status = on.status_kafka.expect("on");
        assert_eq!(status.default_topic, "workflow-status-events");
        assert_eq!(status.event_topics["FINALIZED"], "wf-done");
        assert!(with("", "").expect("off").status_kafka.is_none());
        let why = with("", "[kafka]").expect_err("no kafka").to_string();
        assert!(why.contains("[event_queues.kafka]"), "{why}");
        assert!(with("[kafka]", "[kafka]\nevent_topics = { STARTED = \"s\" }").is_err(), "not published");
        assert!(with("[kafka]", "[kafka]\ndefault_topic = \" \"").is_err(), "blank topic");
    }

    #[test]
    fn brokers_are_configured_by_their_tables_or_the_environment() {
        let none = queues(EventQueuesFile::default(), BrokerAddresses::default()).expect("none");
        assert!(none.nats.is_none() && none.jsm.is_none());
        let env = queues(
            EventQueuesFile::default(),
            BrokerAddresses { nats: Some("nats://10.0.0.1:4222".into()), ..Default::default() },
        )
        .expect("env");
        assert_eq!(env.nats.expect("nats").url, "nats://10.0.0.1:4222");
        assert!(env.jsm.is_none());
        let file: EventQueuesFile = toml::from_str("[jsm]\nlistener_queue_prefix = \"orders_\"").expect("parses");
        let jsm = queues(file, BrokerAddresses::default()).expect("file").jsm.expect("jsm");
        assert_eq!((jsm.url.as_str(), jsm.subject_prefix.as_str()), ("nats://127.0.0.1:4222", "orders_"));
        assert_eq!(jsm.durable_name, "defaultQueue");
        let bad: EventQueuesFile = toml::from_str("[nats]\nurl = \"http://x\"").expect("parses");
        assert!(queues(bad, BrokerAddresses::default()).is_err());
        let bad: EventQueuesFile = toml::from_str("[jsm]\ndurable_name = \"a.b\"").expect("parses");
        assert!(queues(bad, BrokerAddresses::default()).is_err());
        let file: EventQueuesFile =
            toml::from_str("[amqp]\nhosts = \"mq.internal\"\nusername = \"u\"\npassword = \"p@ss\"").expect("parses");
        let amqp = queues(file, BrokerAddresses::default()).expect("amqp").amqp.expect("on");
        assert_eq!(amqp.url, "amqp://u:p%40ss@mq.internal:5672/%2F");
        let bad: EventQueuesFile = toml::from_str("[amqp]\ndelivery_mode = 3").expect("parses");
        assert!(queues(bad, BrokerAddresses::default()).is_err());
        let file: EventQueuesFile = toml::from_str("[kafka]\nauto_offset_reset = \"earliest\"").expect("parses");
        let kafka = queues(file, BrokerAddresses::default()).expect("kafka").kafka.expect("on");
        assert_eq!((kafka.bootstrap_servers.as_str(), kafka.offset_reset), ("127.0.0.1:9092", OffsetReset::Earliest));
        let env = BrokerAddresses { kafka: Some("k1:9092,k2:9092".into()), ..Default::default() };
        assert_eq!(
            queues(EventQueuesFile::default(), env).expect("env").kafka.expect("on").bootstrap_servers,
            "k1:9092,k2:9092"
        );
        let env = BrokerAddresses {
            sqs: Some("http://127.0.0.1:5000".into()),
            aws_access_key: Some("k".into()),
            aws_secret_key: Some("s".into()),
            ..Default::default()
        };
        let sqs = queues(EventQueuesFile::default(), env).expect("sqs").sqs.expect("on");
        assert_eq!(
            (sqs.endpoint.as_str(), sqs.region.as_str(), sqs.batch_size),
            ("http://127.0.0.1:5000", "us-east-1", 10)
        );
        let file: EventQueuesFile = toml::from_str("[sqs]\nregion = \"eu-west-1\"").expect("parses");
        assert!(queues(file, BrokerAddresses::default()).is_err(), "no credentials");
        let env = BrokerAddresses {
            aws_access_key: Some("k".into()),
            aws_secret_key: Some("s".into()),
            ..Default::default()
        };
        let file: EventQueuesFile = toml::from_str("[sqs]\nregion = \"eu-west-1\"").expect("parses");
        assert_eq!(queues(file, env).expect("sqs").sqs.expect("on").endpoint, "https://sqs.eu-west-1.amazonaws.com");
        for bad in [
            "[kafka]\nauto_offset_reset = \"none\"",
            "[kafka]\nbootstrap_servers = \"http://k:9092\"",
            "[kafka]\ntopic_partitions = 0",
        ] {
            let bad: EventQueuesFile = toml::from_str(bad).expect("parses");
            assert!(queues(bad, BrokerAddresses::default()).is_err());
        }
    }
}

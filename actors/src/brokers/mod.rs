//! Event queues on message brokers: where EVENT tasks publish and event handlers consume, beside
//! the built-in `conductor` queue (`crate::events`).
//!
//! A queue is named as in conductor-oss, `type:name`: `nats:orders.new[:group]` (NATS core),
//! `jsm:orders.new` (NATS JetStream, on the subject `{subject_prefix}orders.new`, in a stream
//! named as conductor-oss names it), `amqp_queue:orders[?params]` and
//! `amqp_exchange:orders?exchangeType=topic&routingKey=new` (RabbitMQ). A type is available when
//! its broker is configured.
//!
//! Consuming: the leader runs one consumer per queue that an active event handler listens on
//! (`crate::consumers`). Each message's actions run through `crate::events::deliver`, whose effects
//! are keyed by the message's identity (a workflow an action starts has an id derived from it),
//! and the message is acknowledged only after they are committed. A broker that redelivers
//! (JetStream) after a failover or crash therefore changes nothing twice. NATS core has no
//! redelivery: a message published while no leader listens is not seen, as with any NATS core
//! subscriber.
//!
//! Publishing: the leader's executor publishes an EVENT task's message after the commit that
//! scheduled it, and completes the task only once the broker has taken it (JetStream: its
//! acknowledgement); a broker that is down leaves the task scheduled for another attempt later.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Error;

mod amqp;
mod nats;

/// Counter: messages taken from a broker queue and handled, by `queue` type and `outcome`.
pub const MESSAGES: &str = "overture_event_queue_messages_processed_total";
/// Counter: publishes to a broker that failed (the EVENT task tries again), by queue type.
pub const PUBLISH_FAILED: &str = "overture_event_queue_publish_failed_total";
/// Counter: messages published to a broker, by queue type.
pub const PUBLISHED: &str = "overture_event_queue_published_total";
/// Gauge: consumers running on this leader, by queue type.
pub const CONSUMERS: &str = "overture_event_queue_consumers";

/// The brokers this node may use.
#[derive(Debug, Clone, Default)]
pub struct BrokerOptions {
    /// NATS core (`nats:` queues), if configured.
    pub nats: Option<NatsOptions>,
    /// NATS JetStream (`jsm:` queues), if configured.
    pub jsm: Option<JetStreamOptions>,
    /// AMQP 0-9-1 (`amqp_queue:`, `amqp_exchange:` queues), if configured.
    pub amqp: Option<AmqpOptions>,
}

/// How to reach an AMQP broker (conductor-oss: `conductor.event-queues.amqp.*`).
#[derive(Debug, Clone)]
pub struct AmqpOptions {
    /// `amqp://user:password@host:port/vhost` (the vhost percent-encoded, `%2f` for `/`).
    pub url: String,
    /// Messages handed to a consumer before it acknowledges (`batch-size`).
    pub prefetch: u16,
    /// `exchangeType` when a name does not say (`exchange-type`).
    pub exchange_type: String,
    /// `durable` when a name does not say.
    pub durable: bool,
    /// `deliveryMode` when a name does not say: 2 persistent, 1 not (`delivery-mode`).
    pub delivery_mode: u8,
}

impl Default for AmqpOptions {
    fn default() -> Self {
        AmqpOptions {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            prefetch: 128,
            exchange_type: "topic".into(),
            durable: true,
            delivery_mode: 2,
        }
    }
}

/// How to reach NATS core (conductor-oss: `conductor.event-queues.nats.*`).
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// `nats://host:port` (several comma-separated).
    pub url: String,
}

/// How to reach JetStream and name its streams (conductor-oss: `conductor.event-queues.jsm.*`).
#[derive(Debug, Clone)]
pub struct JetStreamOptions {
    /// `nats://host:port` (several comma-separated).
    pub url: String,
    /// Put before every `jsm:` subject, as conductor-oss does (`listener-queue-prefix`, by
    /// default `conductor_jsm_notify_test_`, from its app id and stack).
    pub subject_prefix: String,
    /// The durable consumer event handlers consume with (`durable-name`).
    pub durable_name: String,
    /// Replicas of a stream Overture creates (`replicas`).
    pub replicas: usize,
    /// How long a message handed to Overture may go unacknowledged before JetStream hands it
    /// out again (`ack-wait`).
    pub ack_wait: Duration,
    /// How many times JetStream hands a message out at most (`max-deliver`).
    pub max_deliver: i64,
    /// Messages handed out and not yet acknowledged at most (`max-ack-pending`).
    pub max_ack_pending: i64,
}

impl Default for JetStreamOptions {
    fn default() -> Self {
        JetStreamOptions {
            url: "nats://127.0.0.1:4222".into(),
            subject_prefix: "conductor_jsm_notify_test_".into(),
            durable_name: "defaultQueue".into(),
            replicas: 1,
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
            max_ack_pending: 100,
        }
    }
}

/// A queue on a broker, as an event names it (`type:name`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BrokerQueue {
    /// `nats:subject[:group]`: a NATS core subject, consumed in the queue group if given.
    Nats(String),
    /// `jsm:subject[:group]`: a JetStream subject (after the configured prefix).
    JetStream(String),
    /// `amqp_queue:name[?params]`: an AMQP queue.
    AmqpQueue(String),
    /// `amqp_exchange:name[?params]`: an AMQP exchange, consumed through a queue bound to it.
    AmqpExchange(String),
}

/// The queue types conductor-oss has that Overture does not serve yet.
const NOT_YET: [&str; 3] = ["sqs", "kafka", "nats_stream"];

impl BrokerQueue {
    /// The broker queue an event names; `Ok(None)` for a `conductor` event; an error for a type
    /// Overture does not serve.
    pub fn parse(event: &str) -> Result<Option<BrokerQueue>, String> {
        let Some((kind, name)) = event.split_once(':') else {
            return Err(format!("Event {event:?} is not type:name (e.g. conductor:workflow:task, nats:subject)"));
        };
        let name = name.trim();
        match kind {
            "conductor" => Ok(None),
            "nats" | "jsm" | "amqp_queue" | "amqp_exchange" if name.is_empty() => {
                Err(format!("Event {event:?} names no queue"))
            }
            "nats" => Ok(Some(BrokerQueue::Nats(name.to_owned()))),
            "jsm" => Ok(Some(BrokerQueue::JetStream(name.to_owned()))),
            "amqp_queue" => Ok(Some(BrokerQueue::AmqpQueue(name.to_owned()))),
            "amqp_exchange" => Ok(Some(BrokerQueue::AmqpExchange(name.to_owned()))),
            k if NOT_YET.contains(&k) => Err(format!(
                "Event queues of type {k} are not supported by this server yet (conductor, nats, jsm, amqp_queue and amqp_exchange are)"
            )),
            k => Err(format!(
                "Unknown event queue type {k:?} in {event:?}: use conductor, nats, jsm, amqp_queue or amqp_exchange"
            )),
        }
    }

    /// The subject and queue group of a NATS queue's name (`subject[:group]`).
    fn subject_and_group(name: &str) -> (&str, Option<&str>) {
        match name.split_once(':') {
            Some((subject, group)) if !group.is_empty() => (subject, Some(group)),
            Some((subject, _)) => (subject, None),
            None => (name, None),
        }
    }

    /// The name after the type.
    fn name(&self) -> &str {
        match self {
            BrokerQueue::Nats(s)
            | BrokerQueue::JetStream(s)
            | BrokerQueue::AmqpQueue(s)
            | BrokerQueue::AmqpExchange(s) => s,
        }
    }

    /// The queue type, as in its name and in metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerQueue::Nats(_) => "nats",
            BrokerQueue::JetStream(_) => "jsm",
            BrokerQueue::AmqpQueue(_) => "amqp_queue",
            BrokerQueue::AmqpExchange(_) => "amqp_exchange",
        }
    }

    /// `type:name`.
    pub fn event(&self) -> String {
        format!("{}:{}", self.kind(), self.name())
    }
}

/// What a broker said about a message it took: what an EVENT task's output records.
#[derive(Debug, Clone, Default)]
pub struct Receipt {
    /// Broker-specific fields (JetStream: `stream`, `sequence`).
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// A message taken from a broker queue.
pub struct Delivery {
    /// Its identity on the broker (JetStream: stream and sequence), stable across redeliveries.
    pub message_id: String,
    /// Its body.
    pub payload: Vec<u8>,
    /// Acknowledges it, once its effects are committed.
    pub ack: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, Result<(), String>> + Send>,
}

/// Connections to the configured brokers, made when first needed and kept.
#[derive(Debug, Clone, Default)]
pub struct Brokers {
    options: BrokerOptions,
    nats: Arc<tokio::sync::OnceCell<nats::Nats>>,
    jsm: Arc<tokio::sync::OnceCell<nats::JetStream>>,
    amqp: Arc<tokio::sync::OnceCell<amqp::Amqp>>,
}

/// How long a publish may take before the EVENT task tries again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

impl Brokers {
    /// Brokers as configured.
    pub fn new(options: BrokerOptions) -> Brokers {
        Brokers { options, nats: Default::default(), jsm: Default::default(), amqp: Default::default() }
    }

    /// Whether `queue`'s broker is configured here.
    pub fn serves(&self, queue: &BrokerQueue) -> bool {
        match queue {
            BrokerQueue::Nats(_) => self.options.nats.is_some(),
            BrokerQueue::JetStream(_) => self.options.jsm.is_some(),
            BrokerQueue::AmqpQueue(_) | BrokerQueue::AmqpExchange(_) => self.options.amqp.is_some(),
        }
    }

    async fn amqp(&self) -> Result<&amqp::Amqp, Error> {
        let Some(options) = &self.options.amqp else {
            return Err(Error::BadRequest("AMQP is not configured on this server ([event_queues.amqp])".into()));
        };
        self.amqp.get_or_try_init(|| amqp::Amqp::connect(options.clone())).await
    }

    async fn nats(&self) -> Result<&nats::Nats, Error> {
        let Some(options) = &self.options.nats else {
            return Err(Error::BadRequest("NATS is not configured on this server ([event_queues.nats])".into()));
        };
        self.nats.get_or_try_init(|| nats::Nats::connect(&options.url)).await
    }

    async fn jsm(&self) -> Result<&nats::JetStream, Error> {
        let Some(options) = &self.options.jsm else {
            return Err(Error::BadRequest("JetStream is not configured on this server ([event_queues.jsm])".into()));
        };
        self.jsm.get_or_try_init(|| nats::JetStream::connect(options.clone())).await
    }

    /// Publishes `payload` on `queue`; done when the broker has taken it.
    pub async fn publish(&self, queue: &BrokerQueue, message_id: &str, payload: Vec<u8>) -> Result<Receipt, Error> {
        let published = tokio::time::timeout(PUBLISH_TIMEOUT, async {
            match queue {
                BrokerQueue::Nats(name) => {
                    let (subject, _) = BrokerQueue::subject_and_group(name);
                    self.nats().await?.publish(subject, message_id, payload).await
                }
                BrokerQueue::JetStream(name) => {
                    let (subject, _) = BrokerQueue::subject_and_group(name);
                    self.jsm().await?.publish(subject, message_id, payload).await
                }
                BrokerQueue::AmqpQueue(spec) | BrokerQueue::AmqpExchange(spec) => {
                    let amqp = self.amqp().await?;
                    let target = amqp.target(matches!(queue, BrokerQueue::AmqpExchange(_)), spec)?;
                    amqp.publish(&target, message_id, payload).await
                }
            }
        })
        .await
        .unwrap_or_else(|_| Err(Error::Unavailable(format!("publishing to {} timed out", queue.event()))));
        let label = queue.kind();
        match &published {
            Ok(_) => metrics::counter!(PUBLISHED, "queueType" => label).increment(1),
            Err(_) => metrics::counter!(PUBLISH_FAILED, "queueType" => label).increment(1),
        }
        published
    }

    /// Opens a consumer of `queue`: a stream of its messages.
    pub(crate) async fn subscribe(
        &self,
        queue: &BrokerQueue,
    ) -> Result<futures::stream::BoxStream<'static, Result<Delivery, String>>, Error> {
        match queue {
            BrokerQueue::Nats(name) => {
                let (subject, group) = BrokerQueue::subject_and_group(name);
                self.nats().await?.subscribe(subject, group).await
            }
            BrokerQueue::JetStream(name) => {
                let (subject, _) = BrokerQueue::subject_and_group(name);
                self.jsm().await?.consume(subject).await
            }
            BrokerQueue::AmqpQueue(spec) | BrokerQueue::AmqpExchange(spec) => {
                let amqp = self.amqp().await?;
                let target = amqp.target(matches!(queue, BrokerQueue::AmqpExchange(_)), spec)?;
                amqp.consume(&target).await
            }
        }
    }
}

/// The broker queue types, as metric labels.
pub const QUEUE_TYPES: [&str; 4] = ["nats", "jsm", "amqp_queue", "amqp_exchange"];

/// Registers the counters with every queue type at zero.
pub fn register_metrics() {
    for kind in QUEUE_TYPES {
        metrics::counter!(PUBLISHED, "queueType" => kind).increment(0);
        metrics::counter!(PUBLISH_FAILED, "queueType" => kind).increment(0);
        metrics::gauge!(CONSUMERS, "queueType" => kind).set(0.0);
        for outcome in ["handled", "invalid"] {
            metrics::counter!(MESSAGES, "queueType" => kind, "outcome" => outcome).increment(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_queue_type_as_conductor_oss_does() {
        assert_eq!(BrokerQueue::parse("conductor:wf:task"), Ok(None));
        assert_eq!(BrokerQueue::parse("nats:订单.new"), Ok(Some(BrokerQueue::Nats("订单.new".into()))));
        assert_eq!(BrokerQueue::parse("jsm:orders"), Ok(Some(BrokerQueue::JetStream("orders".into()))));
        assert!(BrokerQueue::parse("kafka:payments").expect_err("not yet").contains("not supported"));
        assert_eq!(
            BrokerQueue::parse("amqp_exchange:orders?routingKey=a").map(|q| q.map(|q| q.event())),
            Ok(Some("amqp_exchange:orders?routingKey=a".into()))
        );
        assert!(BrokerQueue::parse("amqp:orders").expect_err("no plain amqp").contains("Unknown"));
        assert!(BrokerQueue::parse("mqtt:x").expect_err("unknown").contains("Unknown event queue type"));
        assert!(BrokerQueue::parse("nats:").is_err());
        assert!(BrokerQueue::parse("orders").is_err());
        assert_eq!(BrokerQueue::subject_and_group("a.b:workers"), ("a.b", Some("workers")));
        assert_eq!(BrokerQueue::subject_and_group("a.b"), ("a.b", None));
    }
}

//! Event queues on message brokers: where EVENT tasks publish and event handlers consume, beside
//! the built-in `conductor` queue (`crate::events`).
//!
//! A queue is named as in conductor-oss, `type:name`: `nats:orders.new[:group]` (NATS core),
//! `jsm:orders.new` (NATS JetStream, on the subject `{subject_prefix}orders.new`, in a stream
//! named as conductor-oss names it), `amqp_queue:orders[?params]` and
//! `amqp_exchange:orders?exchangeType=topic&routingKey=new` (RabbitMQ) and `kafka:orders` (Kafka).
//! A type is available when its broker is configured.
//!
//! Consuming: the leader runs one consumer per queue that an active event handler listens on
//! (`crate::consumers`). Each message's actions run through `crate::events::deliver`, whose effects
//! are keyed by the message's identity (a workflow an action starts has an id derived from it),
//! and the message is acknowledged only after they are committed. A broker that redelivers
//! (JetStream, RabbitMQ) after a failover or crash therefore changes nothing twice. Kafka keeps
//! no consumer group for Overture: each partition's position is kept in the replicated state
//! and moves past a message only once its effects are committed. NATS core has no
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
mod kafka;
mod nats;
mod settings;
mod sqs;

pub use settings::{DefaultQueues, KafkaStatusOptions};

/// Counter: messages taken from a broker queue and handled, by `queue` type and `outcome`.
pub const MESSAGES: &str = "overture_event_queue_messages_processed_total";
/// Counter: publishes to a broker that failed (the EVENT task tries again), by queue type.
pub const PUBLISH_FAILED: &str = "overture_event_queue_publish_failed_total";
/// Counter: messages published to a broker, by queue type (`kafka_publish` for KAFKA_PUBLISH
/// tasks).
pub const PUBLISHED: &str = "overture_event_queue_published_total";
/// Gauge: messages on a broker queue not yet handled (its consumer's lag), by `queue`.
pub const LAG: &str = "overture_event_queue_consumer_lag";
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
    /// Kafka (`kafka:` queues), if configured.
    pub kafka: Option<KafkaOptions>,
    /// Amazon SQS or a server that speaks its API (`sqs:` queues), if configured.
    pub sqs: Option<SqsOptions>,
    /// Workflow status events to Kafka (`[workflow_status_listener.kafka]`), if configured;
    /// they go to the cluster `kafka` names.
    pub status_kafka: Option<KafkaStatusOptions>,
    /// The default event queues (COMPLETED and FAILED) task status messages arrive on, if any.
    pub default_queues: Option<DefaultQueues>,
}

/// How to reach SQS (conductor-oss: `conductor.event-queues.sqs.*`).
#[derive(Debug, Clone)]
pub struct SqsOptions {
    /// `https://sqs.<region>.amazonaws.com`, or another server's address (`endpoint`).
    pub endpoint: String,
    /// The region requests are signed for.
    pub region: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
    /// Messages one receive asks for, 1 to 10 (`batch-size`).
    pub batch_size: u8,
    /// How long one receive waits for messages (a long poll), 0 to 20 s.
    pub wait_seconds: u64,
    /// How long a received message stays hidden before SQS hands it out again
    /// (`visibility-timeout`).
    pub visibility_timeout: Duration,
}

/// Where a Kafka queue never consumed before starts (conductor-oss: the consumer's
/// `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// At the end of the log: only messages published from then on (Kafka's default).
    #[default]
    Latest,
    /// At the start of the log: every message still kept.
    Earliest,
}

/// How to reach a Kafka cluster (conductor-oss: `conductor.event-queues.kafka.*`).
#[derive(Debug, Clone)]
pub struct KafkaOptions {
    /// `host:port` of one or more brokers, comma-separated (`bootstrap-servers`).
    pub bootstrap_servers: String,
    /// The client id the brokers see.
    pub client_id: String,
    /// Where a queue never consumed before starts.
    pub offset_reset: OffsetReset,
    /// Partitions of a topic Overture creates because it did not exist.
    pub topic_partitions: i32,
    /// Replicas of a topic Overture creates.
    pub replication_factor: i16,
    /// How long a request may take, retries included.
    pub request_timeout: Duration,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            bootstrap_servers: "127.0.0.1:9092".into(),
            client_id: "overture".into(),
            offset_reset: OffsetReset::Latest,
            topic_partitions: 1,
            replication_factor: 1,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Where consumers keep their positions when their broker keeps none for Overture (Kafka): the
/// replicated state, so they survive the leader.
pub trait PositionStore: Send + Sync + 'static {
    /// The positions kept for `queue`: partition → offset to read next.
    fn load(&self, queue: &str) -> Result<std::collections::BTreeMap<u32, i64>, Error>;
    /// Keeps these positions of `queue`.
    fn save(&self, queue: String, positions: Vec<(u32, i64)>)
    -> futures::future::BoxFuture<'static, Result<(), Error>>;
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

/// What the leader knows of one broker queue it consumes (`GET /api/event/queues`, the UI).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Whether a consumer is reading it now.
    pub consuming: bool,
    /// Messages handled since this leader started consuming it.
    pub handled: u64,
    /// Messages dropped because they were not JSON.
    pub invalid: u64,
    /// Handler conditions and actions that failed.
    pub failed: u64,
    /// Messages on the broker not yet handled, where the broker says (all but NATS core).
    pub lag: Option<i64>,
    /// The last thing that went wrong: opening or reading the queue, a message, a handler.
    pub last_error: Option<String>,
    /// When (epoch millis).
    pub last_error_time: Option<i64>,
}

/// The status of every queue this leader consumes, by event (`kafka:orders`).
#[derive(Debug, Clone, Default)]
pub struct QueueStatuses(Arc<parking_lot::Mutex<std::collections::BTreeMap<String, QueueStatus>>>);

impl QueueStatuses {
    /// Changes one queue's status.
    pub(crate) fn update(&self, queue: &str, change: impl FnOnce(&mut QueueStatus)) {
        change(self.0.lock().entry(queue.to_owned()).or_default());
    }

    /// Records what went wrong with a queue.
    pub(crate) fn error(&self, queue: &str, error: impl std::fmt::Display) {
        self.update(queue, |s| {
            s.last_error = Some(error.to_string());
            s.last_error_time = Some(crate::now_ms());
        });
    }

    /// Forgets the queues no longer consumed.
    pub(crate) fn keep_only(&self, queues: &[String]) {
        self.0.lock().retain(|q, _| queues.contains(q));
    }

    /// Every queue's status.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, QueueStatus> {
        self.0.lock().clone()
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
    /// `kafka:topic`: a Kafka topic.
    Kafka(String),
    /// `sqs:queue`: an SQS queue, by name.
    Sqs(String),
}

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
            "nats" | "jsm" | "amqp_queue" | "amqp_exchange" | "kafka" | "sqs" if name.is_empty() => {
                Err(format!("Event {event:?} names no queue"))
            }
            "nats" => Ok(Some(BrokerQueue::Nats(name.to_owned()))),
            "jsm" => Ok(Some(BrokerQueue::JetStream(name.to_owned()))),
            "amqp_queue" => Ok(Some(BrokerQueue::AmqpQueue(name.to_owned()))),
            "amqp_exchange" => Ok(Some(BrokerQueue::AmqpExchange(name.to_owned()))),
            "kafka" => Ok(Some(BrokerQueue::Kafka(name.to_owned()))),
            "sqs" => Ok(Some(BrokerQueue::Sqs(name.to_owned()))),
            // NATS Streaming (STAN) reached its end of life in June 2023; JetStream replaced it.
            "nats_stream" => Err(
                "Event queues of type nats_stream are not supported: NATS Streaming reached its end of life in 2023; use jsm: (NATS JetStream, its successor)".to_owned()
            ),
            k => Err(format!(
                "Unknown event queue type {k:?} in {event:?}: use conductor, nats, jsm, amqp_queue, amqp_exchange, kafka or sqs"
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
    pub fn name(&self) -> &str {
        match self {
            BrokerQueue::Nats(s)
            | BrokerQueue::JetStream(s)
            | BrokerQueue::AmqpQueue(s)
            | BrokerQueue::AmqpExchange(s)
            | BrokerQueue::Kafka(s)
            | BrokerQueue::Sqs(s) => s,
        }
    }

    /// The queue type, as in its name and in metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            BrokerQueue::Nats(_) => "nats",
            BrokerQueue::JetStream(_) => "jsm",
            BrokerQueue::AmqpQueue(_) => "amqp_queue",
            BrokerQueue::AmqpExchange(_) => "amqp_exchange",
            BrokerQueue::Kafka(_) => "kafka",
            BrokerQueue::Sqs(_) => "sqs",
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

/// A message's body: bytes as the broker gave them, or JSON a broker module already built (a
/// Kafka record's conductor-style wrapper), which is not written out to be read back.
pub enum Body {
    /// To be read as JSON.
    Raw(Vec<u8>),
    /// Already JSON.
    Json(serde_json::Value),
}

/// A message taken from a broker queue.
pub struct Delivery {
    /// Its identity on the broker (JetStream: stream and sequence), stable across redeliveries.
    pub message_id: String,
    /// Its body.
    pub payload: Body,
    /// Acknowledges it, once its effects are committed.
    pub ack: Box<dyn FnOnce() -> futures::future::BoxFuture<'static, Result<(), String>> + Send>,
}

/// Kafka clients by bootstrap servers, with when each was last used.
type KafkaClients = std::collections::HashMap<String, (Arc<kafka::Kafka>, std::time::Instant)>;

/// Connections to the configured brokers, made when first needed and kept.
#[derive(Debug, Clone)]
pub struct Brokers {
    options: BrokerOptions,
    nats: Arc<tokio::sync::OnceCell<nats::Nats>>,
    jsm: Arc<tokio::sync::OnceCell<nats::JetStream>>,
    amqp: Arc<tokio::sync::OnceCell<amqp::Amqp>>,
    kafka: Arc<tokio::sync::OnceCell<Arc<kafka::Kafka>>>,
    sqs: Arc<std::sync::OnceLock<Arc<sqs::Sqs>>>,
    statuses: QueueStatuses,
    /// Clients of the clusters KAFKA_PUBLISH tasks name, by bootstrap servers, with when each
    /// was last used.
    kafka_publish: Arc<parking_lot::Mutex<KafkaClients>>,
    /// Status listener publishes under way ([`STATUS_PUBLISHES`] at most).
    status_publishes: Arc<tokio::sync::Semaphore>,
}

/// Status listener publishes under way at once at most: each holds one of the leader's timer
/// firing slots, and a broker that does not answer holds it until the publish times out, so
/// the rest stay free for deadlines.
pub const STATUS_PUBLISHES: usize = 16;

/// How long a publish may take before the EVENT task tries again.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for Brokers {
    fn default() -> Brokers {
        Brokers::new(BrokerOptions::default())
    }
}

impl Brokers {
    /// Brokers as configured.
    pub fn new(options: BrokerOptions) -> Brokers {
        Brokers {
            options,
            nats: Default::default(),
            jsm: Default::default(),
            amqp: Default::default(),
            kafka: Default::default(),
            sqs: Default::default(),
            statuses: Default::default(),
            kafka_publish: Default::default(),
            status_publishes: Arc::new(tokio::sync::Semaphore::new(STATUS_PUBLISHES)),
        }
    }

    /// A slot for one status listener publish, if one is free.
    pub(crate) fn status_publish_slot(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.status_publishes.clone().try_acquire_owned().ok()
    }

    /// What the leader knows of the queues it consumes.
    pub fn statuses(&self) -> &QueueStatuses {
        &self.statuses
    }

    /// Whether `queue`'s broker is configured here.
    pub fn serves(&self, queue: &BrokerQueue) -> bool {
        match queue {
            BrokerQueue::Nats(_) => self.options.nats.is_some(),
            BrokerQueue::JetStream(_) => self.options.jsm.is_some(),
            BrokerQueue::AmqpQueue(_) | BrokerQueue::AmqpExchange(_) => self.options.amqp.is_some(),
            BrokerQueue::Kafka(_) => self.options.kafka.is_some(),
            BrokerQueue::Sqs(_) => self.options.sqs.is_some(),
        }
    }

    fn sqs(&self) -> Result<&Arc<sqs::Sqs>, Error> {
        let Some(options) = &self.options.sqs else {
            return Err(Error::BadRequest("SQS is not configured on this server ([event_queues.sqs])".into()));
        };
        Ok(self.sqs.get_or_init(|| Arc::new(sqs::Sqs::new(options.clone()))))
    }

    async fn kafka(&self) -> Result<&Arc<kafka::Kafka>, Error> {
        let Some(options) = &self.options.kafka else {
            return Err(Error::BadRequest("Kafka is not configured on this server ([event_queues.kafka])".into()));
        };
        self.kafka.get_or_try_init(|| async { kafka::Kafka::connect(options.clone()).await.map(Arc::new) }).await
    }

    /// A client of the Kafka cluster at `bootstrap_servers`, for KAFKA_PUBLISH: kept while used,
    /// up to [`KAFKA_PUBLISH_CLIENTS`] of them, each dropped after [`KAFKA_PUBLISH_IDLE`] unused
    /// (conductor-oss's producer cache).
    pub(crate) async fn kafka_client(
        &self,
        bootstrap_servers: &str,
        request_timeout: Duration,
    ) -> Result<Arc<kafka::Kafka>, Error> {
        {
            let mut cache = self.kafka_publish.lock();
            cache.retain(|_, (_, used)| used.elapsed() < KAFKA_PUBLISH_IDLE);
            if let Some((client, used)) = cache.get_mut(bootstrap_servers) {
                *used = std::time::Instant::now();
                return Ok(client.clone());
            }
        }
        let base = self.options.kafka.clone().unwrap_or_default();
        let options = KafkaOptions { bootstrap_servers: bootstrap_servers.to_owned(), request_timeout, ..base };
        let client = Arc::new(kafka::Kafka::connect(options).await?);
        let mut cache = self.kafka_publish.lock();
        if cache.len() >= KAFKA_PUBLISH_CLIENTS
            && let Some(oldest) = cache.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| k.clone())
        {
            cache.remove(&oldest);
        }
        cache.insert(bootstrap_servers.to_owned(), (client.clone(), std::time::Instant::now()));
        Ok(client)
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

    /// The default event queues, if configured on a broker configured here.
    pub fn default_queues(&self) -> Option<&DefaultQueues> {
        self.options.default_queues.as_ref().filter(|d| self.serves(&d.completed))
    }

    /// Where workflow status events go on Kafka, if they do.
    pub(crate) fn status_kafka(&self) -> Option<&KafkaStatusOptions> {
        self.options.status_kafka.as_ref().filter(|_| self.options.kafka.is_some())
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
                BrokerQueue::Kafka(topic) => {
                    let key = Some(message_id.as_bytes().to_vec());
                    self.kafka().await?.publish(topic, key, payload, Default::default()).await
                }
                BrokerQueue::Sqs(name) => self.sqs()?.publish(name, payload).await,
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

    /// How many messages of `queue` are on its broker and not yet handled, where the broker can
    /// say and no one else reports it: JetStream, AMQP and SQS (Kafka's consumer measures its
    /// own lag; NATS core keeps nothing).
    pub(crate) async fn backlog(&self, queue: &BrokerQueue) -> Result<Option<i64>, Error> {
        match queue {
            BrokerQueue::JetStream(name) => {
                let (subject, _) = BrokerQueue::subject_and_group(name);
                self.jsm().await?.backlog(subject).await.map(Some)
            }
            BrokerQueue::AmqpQueue(spec) | BrokerQueue::AmqpExchange(spec) => {
                let amqp = self.amqp().await?;
                let target = amqp.target(matches!(queue, BrokerQueue::AmqpExchange(_)), spec)?;
                amqp.backlog(&target).await.map(Some)
            }
            BrokerQueue::Sqs(name) => self.sqs()?.backlog(name).await.map(Some),
            BrokerQueue::Nats(_) | BrokerQueue::Kafka(_) => Ok(None),
        }
    }

    /// Opens a consumer of `queue`: a stream of its messages.
    pub(crate) async fn subscribe(
        &self,
        queue: &BrokerQueue,
        positions: Arc<dyn PositionStore>,
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
            BrokerQueue::Kafka(topic) => {
                self.kafka().await?.consume(topic, queue.event(), positions, self.statuses.clone()).await
            }
            BrokerQueue::Sqs(name) => self.sqs()?.consume(name).await,
        }
    }
}

/// Clients KAFKA_PUBLISH keeps at most (conductor-oss: `conductor.tasks.kafka-publish.cacheSize`).
const KAFKA_PUBLISH_CLIENTS: usize = 10;
/// How long a KAFKA_PUBLISH client is kept unused (`conductor.tasks.kafka-publish.cacheTime`).
const KAFKA_PUBLISH_IDLE: Duration = Duration::from_secs(120);

/// The broker queue types, as metric labels.
pub const QUEUE_TYPES: [&str; 6] = ["nats", "jsm", "amqp_queue", "amqp_exchange", "kafka", "sqs"];

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
    metrics::counter!(PUBLISHED, "queueType" => "kafka_publish").increment(0);
    metrics::counter!(PUBLISH_FAILED, "queueType" => "kafka_publish").increment(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_their_queue_type_as_conductor_oss_does() {
        assert_eq!(BrokerQueue::parse("conductor:wf:task"), Ok(None));
        assert_eq!(BrokerQueue::parse("nats:订单.new"), Ok(Some(BrokerQueue::Nats("订单.new".into()))));
        assert_eq!(BrokerQueue::parse("jsm:orders"), Ok(Some(BrokerQueue::JetStream("orders".into()))));
        assert!(BrokerQueue::parse("nats_stream:payments").expect_err("end of life").contains("use jsm:"));
        assert_eq!(BrokerQueue::parse("sqs:payments"), Ok(Some(BrokerQueue::Sqs("payments".into()))));
        assert_eq!(BrokerQueue::parse("kafka:支付").map(|q| q.map(|q| q.event())), Ok(Some("kafka:支付".into())));
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

//! Kafka through `rskafka` (pure Rust): `kafka:topic`.
//!
//! Publishing picks a record's partition as Kafka's Java producer does (murmur2 of the key), so
//! records with one key stay in order on one partition, and waits for the partition leader's
//! acknowledgement. A topic that does not exist is created, as a broker with
//! `auto.create.topics.enable` would.
//!
//! Consuming keeps no consumer group on the broker: the position of each partition lives in the
//! replicated state ([`super::PositionStore`]), so a new leader goes on where the last one's
//! committed effects end. A partition's position moves past a message only once that message's
//! effects are committed, so a crash or failover hands out again only messages whose effects are
//! keyed by their identity (`topic:partition-offset`) and change nothing the second time.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::{Body, Delivery, KafkaOptions, LAG, OffsetReset, PositionStore, QueueStatuses, Receipt};
use crate::error::Error;

type Deliveries = futures::stream::BoxStream<'static, Result<Delivery, String>>;

/// How long a topic's partition count is trusted before it is asked again.
const TOPIC_TTL: Duration = Duration::from_secs(30);
/// How often a consumer's positions are saved, when they moved.
const SAVE_EVERY: Duration = Duration::from_millis(200);
/// Bytes one fetch asks for at most.
const FETCH_BYTES: i32 = 4 * 1024 * 1024;
/// How long a fetch waits at the broker for new records.
const FETCH_WAIT_MS: i32 = 500;
/// Messages fetched and not yet taken by the consumer, at most.
const BUFFERED: usize = 512;

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("Kafka: {what}: {e}"))
}

/// A client of one Kafka cluster, with the partitions it has used.
pub(crate) struct Kafka {
    client: Client,
    options: KafkaOptions,
    partitions: Mutex<HashMap<(String, u32), Arc<PartitionClient>>>,
    topics: Mutex<HashMap<String, (u32, Instant)>>,
    round_robin: AtomicUsize,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka").field("bootstrap_servers", &self.options.bootstrap_servers).finish_non_exhaustive()
    }
}

/// Kafka's Java client's murmur2, which its default partitioner applies to a record's key.
pub(crate) fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() == 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition Kafka's default partitioner gives a keyed record.
fn partition_of(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions.max(1)
}

/// A consumed record as conductor-oss hands it to event handlers:
/// `{"key": ..., "headers": {...}, "payload": <the value, as JSON if it is JSON>}`.
pub(crate) fn wrap(record: &Record) -> Value {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let payload = match &record.value {
        None => Value::Null,
        Some(v) => serde_json::from_slice(v).unwrap_or_else(|_| Value::String(text(v))),
    };
    let headers: Map<String, Value> = record.headers.iter().map(|(k, v)| (k.clone(), Value::String(text(v)))).collect();
    let key = record.key.as_deref().map(text).unwrap_or_default();
    serde_json::json!({"key": key, "headers": headers, "payload": payload})
}

impl Kafka {
    /// Connects to the cluster (its bootstrap servers, comma-separated).
    pub(crate) async fn connect(options: KafkaOptions) -> Result<Kafka, Error> {
        let servers: Vec<String> = options
            .bootstrap_servers
            .split(',')
            .map(|s| s.trim().trim_start_matches("PLAINTEXT://").to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if servers.is_empty() {
            return Err(Error::BadRequest("Kafka: no bootstrap servers are configured".into()));
        }
        let backoff = rskafka::BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
            deadline: Some(options.request_timeout),
        };
        let build = ClientBuilder::new(servers).client_id(options.client_id.clone()).backoff_config(backoff).build();
        let client = tokio::time::timeout(options.request_timeout, build)
            .await
            .map_err(|_| unavailable(&format!("connecting to {}", options.bootstrap_servers), "timed out"))?
            .map_err(|e| unavailable(&format!("connecting to {}", options.bootstrap_servers), e))?;
        Ok(Kafka {
            client,
            options,
            partitions: Mutex::default(),
            topics: Mutex::default(),
            round_robin: AtomicUsize::new(0),
        })
    }

    /// How many partitions `topic` has, creating it if it does not exist.
    async fn partition_count(&self, topic: &str) -> Result<u32, Error> {
        if let Some((n, at)) = self.topics.lock().get(topic)
            && at.elapsed() < TOPIC_TTL
        {
            return Ok(*n);
        }
        for attempt in 0..2 {
            let topics = self.client.list_topics().await.map_err(|e| unavailable("listing topics", e))?;
            if let Some(t) = topics.iter().find(|t| t.name == topic).filter(|t| !t.partitions.is_empty()) {
                let n = t.partitions.len() as u32;
                self.topics.lock().insert(topic.to_owned(), (n, Instant::now()));
                return Ok(n);
            }
            if attempt == 0 {
                self.create_topic(topic).await?;
            }
        }
        Err(Error::Unavailable(format!("Kafka: topic {topic} was created but has no partitions yet")))
    }

    async fn create_topic(&self, topic: &str) -> Result<(), Error> {
        let controller = self.client.controller_client().map_err(|e| unavailable("reaching the controller", e))?;
        let (partitions, replicas) = (self.options.topic_partitions, self.options.replication_factor);
        match controller.create_topic(topic, partitions, replicas, 5_000).await {
            Ok(()) => {
                tracing::info!(topic, partitions, replicas, "created a Kafka topic");
                Ok(())
            }
            Err(KafkaError::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. }) => Ok(()),
            Err(e) => Err(unavailable(&format!("creating topic {topic}"), e)),
        }
    }

    async fn partition(&self, topic: &str, partition: u32) -> Result<Arc<PartitionClient>, Error> {
        let key = (topic.to_owned(), partition);
        if let Some(p) = self.partitions.lock().get(&key) {
            return Ok(p.clone());
        }
        let client = self
            .client
            .partition_client(topic, partition as i32, UnknownTopicHandling::Retry)
            .await
            .map_err(|e| unavailable(&format!("reaching {topic}/{partition}"), e))?;
        let client = Arc::new(client);
        self.partitions.lock().insert(key, client.clone());
        Ok(client)
    }

    /// Appends one record to `topic` and waits for the partition leader to take it; says where.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        key: Option<Vec<u8>>,
        value: Vec<u8>,
        headers: BTreeMap<String, Vec<u8>>,
    ) -> Result<Receipt, Error> {
        let partitions = self.partition_count(topic).await?;
        let partition = match &key {
            Some(k) => partition_of(k, partitions),
            None => (self.round_robin.fetch_add(1, Ordering::Relaxed) % partitions.max(1) as usize) as u32,
        };
        let client = self.partition(topic, partition).await?;
        let timestamp = chrono::DateTime::from_timestamp_millis(crate::now_ms()).unwrap_or_default();
        let record = Record { key, value: Some(value), headers, timestamp };
        let offsets = client
            .produce(vec![record], Compression::NoCompression)
            .await
            .map_err(|e| unavailable(&format!("producing to {topic}/{partition}"), e))?;
        let offset = offsets.first().copied().unwrap_or(-1);
        let fields = Map::from_iter([
            ("topic".to_owned(), Value::from(topic)),
            ("partition".to_owned(), Value::from(partition)),
            ("offset".to_owned(), Value::from(offset)),
        ]);
        Ok(Receipt { fields })
    }

    /// Consumes every partition of `topic` from the positions kept in `store` (a partition with
    /// none starts as configured: the end of the log, or its start), saving them as messages'
    /// effects are committed.
    pub(crate) async fn consume(
        self: &Arc<Self>,
        topic: &str,
        queue: String,
        store: Arc<dyn PositionStore>,
        statuses: QueueStatuses,
    ) -> Result<Deliveries, Error> {
        let partitions = self.partition_count(topic).await?;
        let kept = store.load(&queue)?;
        let mut start = BTreeMap::new();
        let mut fresh = Vec::new();
        for p in 0..partitions {
            let offset = match kept.get(&p) {
                Some(o) => *o,
                None => {
                    // A queue never consumed starts where configured; a partition added later
                    // starts at its beginning, so nothing published to it is missed.
                    let at = match (kept.is_empty(), self.options.offset_reset) {
                        (true, OffsetReset::Latest) => OffsetAt::Latest,
                        _ => OffsetAt::Earliest,
                    };
                    let client = self.partition(topic, p).await?;
                    let o = client.get_offset(at).await.map_err(|e| unavailable(&format!("reading {topic}/{p}"), e))?;
                    fresh.push((p, o));
                    o
                }
            };
            start.insert(p, offset);
        }
        if !fresh.is_empty() {
            // Kept before anything is read, so a new leader starts from the same place.
            store.save(queue.clone(), fresh).await?;
        }
        tracing::info!(queue, ?start, "consuming a Kafka topic from these offsets");
        let track = Arc::new(Mutex::new(Tracker::new(&start)));
        let (tx, rx) = mpsc::channel(BUFFERED);
        for (&p, &offset) in &start {
            let client = self.partition(topic, p).await?;
            tokio::spawn(fetch(client, p, offset, topic.to_owned(), queue.clone(), track.clone(), tx.clone()));
        }
        tokio::spawn(save_positions(queue, track, store, statuses, tx));
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|d| (d, rx)) })))
    }
}

/// Per partition: the offsets handed out whose effects are not yet committed, the next offset to
/// fetch, the last position saved and the log's end.
struct Tracker {
    partitions: BTreeMap<u32, PartitionTrack>,
}

struct PartitionTrack {
    pending: BTreeSet<i64>,
    next: i64,
    saved: i64,
    high_watermark: i64,
}

impl Tracker {
    fn new(start: &BTreeMap<u32, i64>) -> Tracker {
        let partitions = start
            .iter()
            .map(|(&p, &o)| (p, PartitionTrack { pending: BTreeSet::new(), next: o, saved: o, high_watermark: o }))
            .collect();
        Tracker { partitions }
    }

    /// The position of each partition: its first offset still pending, or the next to fetch.
    fn positions(&self) -> Vec<(u32, i64)> {
        self.partitions.iter().map(|(&p, t)| (p, t.pending.first().copied().unwrap_or(t.next))).collect()
    }

    /// Messages on the log not yet handled.
    fn lag(&self) -> i64 {
        self.partitions.values().map(|t| (t.high_watermark - t.pending.first().copied().unwrap_or(t.next)).max(0)).sum()
    }
}

/// Fetches one partition into `tx` until the consumer is gone or the broker fails (then the
/// consumer starts again from the saved positions).
async fn fetch(
    client: Arc<PartitionClient>,
    partition: u32,
    mut offset: i64,
    topic: String,
    queue: String,
    track: Arc<Mutex<Tracker>>,
    tx: mpsc::Sender<Result<Delivery, String>>,
) {
    // Fetches in a row that found nothing though the log goes on past `offset`.
    let mut empty = 0u32;
    loop {
        if tx.is_closed() {
            return;
        }
        let (records, high_watermark) = match client.fetch_records(offset, 1..FETCH_BYTES, FETCH_WAIT_MS).await {
            Ok(r) => r,
            Err(KafkaError::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. }) => {
                // Retention removed what was not read yet, or the topic was made again.
                let earliest = client.get_offset(OffsetAt::Earliest).await.unwrap_or(0);
                tracing::warn!(
                    queue,
                    partition,
                    offset,
                    earliest,
                    "offset out of range; reading from the earliest kept"
                );
                offset = earliest;
                if let Some(t) = track.lock().partitions.get_mut(&partition) {
                    t.next = earliest;
                }
                continue;
            }
            Err(e) => {
                let _ = tx.send(Err(format!("fetching {topic}/{partition}: {e}"))).await;
                return;
            }
        };
        if let Some(t) = track.lock().partitions.get_mut(&partition) {
            t.high_watermark = high_watermark;
        }
        empty = if records.is_empty() && high_watermark > offset { empty + 1 } else { 0 };
        if empty == 10 {
            tracing::warn!(
                queue,
                partition,
                offset,
                high_watermark,
                "the broker answers nothing from this offset though its log goes on"
            );
        }
        for r in records {
            if r.offset < offset {
                continue;
            }
            offset = r.offset + 1;
            {
                let mut guard = track.lock();
                if let Some(t) = guard.partitions.get_mut(&partition) {
                    t.pending.insert(r.offset);
                    t.next = offset;
                }
            }
            let payload = Body::Json(wrap(&r.record));
            let done = track.clone();
            let at = r.offset;
            let delivery = Delivery {
                message_id: format!("{topic}:{partition}-{at}"),
                payload,
                ack: Box::new(move || {
                    if let Some(t) = done.lock().partitions.get_mut(&partition) {
                        t.pending.remove(&at);
                    }
                    Box::pin(async { Ok(()) })
                }),
            };
            if tx.send(Ok(delivery)).await.is_err() {
                return;
            }
        }
    }
}

/// Saves the positions that moved, every [`SAVE_EVERY`], until the consumer is gone; publishes
/// the queue's lag.
async fn save_positions(
    queue: String,
    track: Arc<Mutex<Tracker>>,
    store: Arc<dyn PositionStore>,
    statuses: QueueStatuses,
    tx: mpsc::Sender<Result<Delivery, String>>,
) {
    let lag = metrics::gauge!(LAG, "queue" => queue.clone());
    loop {
        tokio::time::sleep(SAVE_EVERY).await;
        let (moved, queue_lag) = {
            let t = track.lock();
            let moved: Vec<(u32, i64)> =
                t.positions().into_iter().filter(|(p, o)| t.partitions.get(p).is_some_and(|t| t.saved != *o)).collect();
            (moved, t.lag())
        };
        lag.set(queue_lag as f64);
        statuses.update(&queue, |s| s.lag = Some(queue_lag));
        if !moved.is_empty() {
            match store.save(queue.clone(), moved.clone()).await {
                Ok(()) => {
                    let mut t = track.lock();
                    for (p, o) in moved {
                        if let Some(t) = t.partitions.get_mut(&p) {
                            t.saved = o;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(queue, error = %e, "saving a Kafka consumer's positions");
                    statuses.error(&queue, format!("saving positions: {e}"));
                }
            }
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafkas_java_client() {
        // The values Kafka's own tests pin for `Utils.murmur2`.
        assert_eq!(murmur2(b"21"), -973_932_308);
        assert_eq!(murmur2(b"foobar"), -790_332_482);
        assert_eq!(murmur2(b"a-little-bit-long-string"), -985_981_536);
        assert_eq!(murmur2(b"a-little-bit-longer-string"), -1_486_304_829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"), -58_897_971);
        assert_eq!(murmur2(b"abc"), 479_470_107);
        assert!(partition_of("订单-1".as_bytes(), 6) < 6);
    }

    #[test]
    fn records_are_wrapped_as_conductor_oss_wraps_them() {
        let record = |value: &[u8]| Record {
            key: Some("键".as_bytes().to_vec()),
            value: Some(value.to_vec()),
            headers: BTreeMap::from([("来源".to_owned(), b"cli".to_vec())]),
            timestamp: chrono::DateTime::from_timestamp_millis(0).expect("epoch"),
        };
        assert_eq!(
            wrap(&record(r#"{"订单":7}"#.as_bytes())),
            serde_json::json!({"key": "键", "headers": {"来源": "cli"}, "payload": {"订单": 7}})
        );
        assert_eq!(
            wrap(&record(b"not \"json")),
            serde_json::json!({"key": "键", "headers": {"来源": "cli"}, "payload": "not \"json"})
        );
        let empty = Record { key: None, value: None, ..record(b"") };
        assert_eq!(wrap(&empty)["payload"], Value::Null);
        assert_eq!(wrap(&empty)["key"], "");
    }

    #[test]
    fn a_position_waits_for_the_first_message_still_pending() {
        let mut t = Tracker::new(&BTreeMap::from([(0, 10), (1, 0)]));
        let p0 = t.partitions.get_mut(&0).expect("partition 0");
        p0.pending.extend([10, 11, 12]);
        p0.next = 13;
        p0.high_watermark = 20;
        p0.pending.remove(&11);
        assert_eq!(t.positions(), vec![(0, 10), (1, 0)]);
        assert_eq!(t.lag(), 10);
        let p0 = t.partitions.get_mut(&0).expect("partition 0");
        p0.pending.remove(&10);
        p0.pending.remove(&12);
        assert_eq!(t.positions(), vec![(0, 13), (1, 0)]);
    }
}

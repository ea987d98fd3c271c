//! The `KAFKA_PUBLISH` system task: appends one record to a Kafka topic, with conductor-oss's
//! `kafka_request` input (`bootStrapServers`, `topic`, `value`, `key`, `keySerializer`,
//! `headers`, `requestTimeoutMs`, `maxBlockMs`), and completes once the partition leader has
//! taken it. The value is sent as JSON text, as conductor-oss's producer writes it (a string
//! value arrives quoted); the key as its serializer says. The task's output records where the
//! record went (`topic`, `partition`, `offset`).

use std::collections::BTreeMap;
use std::time::Duration;

use overture_core::TaskResultStatus;
use serde_json::Value;

use crate::brokers::Brokers;
use crate::outcome::Outcome;

/// How long a publish may take when the request sets no timeouts. conductor-oss's defaults
/// (100 ms per request, 500 ms to block) fail tasks on any hiccup; a task that names its own
/// keeps them.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

const STRING_SERIALIZER: &str = "org.apache.kafka.common.serialization.StringSerializer";
const LONG_SERIALIZER: &str = "org.apache.kafka.common.serialization.LongSerializer";
const INTEGER_SERIALIZER: &str = "org.apache.kafka.common.serialization.IntegerSerializer";

/// A value as Java's `String.valueOf` would print it: text as it is, anything else as JSON.
fn java_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn failed(why: impl std::fmt::Display) -> Outcome {
    Outcome::failed(format!("Failed to invoke kafka task due to: {why}"))
}

/// The key's bytes, as the named serializer writes them.
fn key_bytes(key: &Value, serializer: &str) -> Result<Vec<u8>, String> {
    let text = java_string(key);
    match serializer {
        LONG_SERIALIZER => text
            .trim()
            .parse::<i64>()
            .map(|n| n.to_be_bytes().to_vec())
            .map_err(|_| format!("For input string: \"{text}\"")),
        INTEGER_SERIALIZER => text
            .trim()
            .parse::<i32>()
            .map(|n| n.to_be_bytes().to_vec())
            .map_err(|_| format!("For input string: \"{text}\"")),
        STRING_SERIALIZER => Ok(text.into_bytes()),
        other => Err(format!(
            "key serializer {other} is not supported (use {STRING_SERIALIZER}, {LONG_SERIALIZER} or {INTEGER_SERIALIZER})"
        )),
    }
}

/// Runs a KAFKA_PUBLISH task.
pub(crate) async fn run(brokers: &Brokers, task: &Value) -> Outcome {
    let input = &task["inputData"];
    let Some(request) = input.get("kafka_request").filter(|r| !r.is_null()) else {
        return Outcome::failed(
            "Missing Kafka request. Task input MUST have a 'kafka_request' key with KafkaTask.Input as value. See documentation for KafkaTask for required input parameters",
        );
    };
    let Some(request) = request.as_object() else {
        return Outcome::failed("kafka_request must be an object (bootStrapServers, topic, value, ...)");
    };
    let text = |k: &str| request.get(k).map(java_string).filter(|s| !s.trim().is_empty() && s != "null");
    let Some(servers) = text("bootStrapServers") else {
        return Outcome::failed("No boot strap servers specified");
    };
    let Some(topic) = text("topic") else {
        return Outcome::failed("Missing Kafka topic. See documentation for KafkaTask for required input parameters");
    };
    let Some(value) = request.get("value").filter(|v| !v.is_null()) else {
        return Outcome::failed("Missing Kafka value.  See documentation for KafkaTask for required input parameters");
    };
    let serializer = text("keySerializer").unwrap_or_else(|| STRING_SERIALIZER.to_owned());
    let key = match key_bytes(request.get("key").unwrap_or(&Value::Null), &serializer) {
        Ok(k) => k,
        Err(e) => return failed(e),
    };
    let headers: BTreeMap<String, Vec<u8>> = match request.get("headers") {
        Some(Value::Object(h)) => h.iter().map(|(k, v)| (k.clone(), java_string(v).into_bytes())).collect(),
        _ => BTreeMap::new(),
    };
    let millis = |k: &str| request.get(k).and_then(Value::as_u64);
    let timeout = match (millis("requestTimeoutMs"), millis("maxBlockMs")) {
        (None, None) => DEFAULT_TIMEOUT,
        (request, block) => {
            Duration::from_millis(request.unwrap_or(0) + block.unwrap_or(0)).max(Duration::from_millis(100))
        }
    };
    let value = value.to_string().into_bytes();
    let published = tokio::time::timeout(timeout, async {
        let client = brokers.kafka_client(&servers, timeout).await?;
        client.publish(&topic, Some(key), value, headers).await
    })
    .await;
    let label = "kafka_publish";
    match published {
        Ok(Ok(receipt)) => {
            metrics::counter!(crate::brokers::PUBLISHED, "queueType" => label).increment(1);
            let async_complete = input.get("asyncComplete").and_then(Value::as_bool).unwrap_or(false);
            let status = if async_complete { TaskResultStatus::InProgress } else { TaskResultStatus::Completed };
            Outcome { status, output: receipt.fields, reason: None }
        }
        Ok(Err(e)) => {
            metrics::counter!(crate::brokers::PUBLISH_FAILED, "queueType" => label).increment(1);
            failed(e)
        }
        Err(_) => {
            metrics::counter!(crate::brokers::PUBLISH_FAILED, "queueType" => label).increment(1);
            failed(format!("the broker did not take the record within {} ms", timeout.as_millis()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_serialized_as_conductor_oss_serializes_them() {
        assert_eq!(key_bytes(&json!("订单-1"), STRING_SERIALIZER), Ok("订单-1".as_bytes().to_vec()));
        assert_eq!(key_bytes(&json!(7), STRING_SERIALIZER), Ok(b"7".to_vec()));
        assert_eq!(key_bytes(&Value::Null, STRING_SERIALIZER), Ok(b"null".to_vec()));
        assert_eq!(key_bytes(&json!("42"), LONG_SERIALIZER), Ok(42i64.to_be_bytes().to_vec()));
        assert_eq!(key_bytes(&json!(-3), INTEGER_SERIALIZER), Ok((-3i32).to_be_bytes().to_vec()));
        assert_eq!(key_bytes(&json!("x"), LONG_SERIALIZER), Err("For input string: \"x\"".to_owned()));
        assert!(key_bytes(&json!(1), "com.example.Avro").expect_err("unknown").contains("not supported"));
    }

    #[tokio::test]
    async fn a_request_missing_what_it_needs_fails_with_conductor_oss_reasons() {
        let brokers = Brokers::default();
        let reason = |request: Value| {
            let brokers = brokers.clone();
            async move {
                let task = json!({"inputData": {"kafka_request": request}});
                run(&brokers, &task).await.reason.unwrap_or_default()
            }
        };
        assert!(
            run(&brokers, &json!({"inputData": {}}))
                .await
                .reason
                .unwrap_or_default()
                .starts_with("Missing Kafka request.")
        );
        assert_eq!(reason(json!({"topic": "t", "value": 1})).await, "No boot strap servers specified");
        assert!(reason(json!({"bootStrapServers": "k:9092", "value": 1})).await.starts_with("Missing Kafka topic."));
        assert!(reason(json!({"bootStrapServers": "k:9092", "topic": "t"})).await.starts_with("Missing Kafka value."));
        let bad_key = json!({"bootStrapServers": "k:9092", "topic": "t", "value": 1, "key": "x",
            "keySerializer": LONG_SERIALIZER});
        assert_eq!(reason(bad_key).await, "Failed to invoke kafka task due to: For input string: \"x\"");
        assert!(reason(json!("not an object")).await.contains("must be an object"));
    }
}

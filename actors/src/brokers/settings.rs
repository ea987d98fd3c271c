//! What the brokers carry besides the queues handlers name: the default event queues and the
//! topics of workflow status events.

use std::collections::BTreeMap;

use overture_core::TaskResultStatus;

use super::BrokerQueue;

/// The broker type the default queues are on, and what it needs to name them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultQueues {
    /// The COMPLETED queue.
    pub completed: BrokerQueue,
    /// The FAILED queue.
    pub failed: BrokerQueue,
}

impl DefaultQueues {
    /// conductor-oss's queues for a broker type (`sqs`, `amqp`, `kafka`, `jsm`), named
    /// `<prefix><STATUS>`, where the prefix by default is `conductor_<type>_notify_<stack>_`
    /// (`stack` defaults to `test`, as conductor-oss's does). A JetStream name is the status
    /// alone: the `jsm` prefix applies to every subject.
    pub fn new(kind: &str, prefix: Option<&str>, stack: &str) -> Result<DefaultQueues, String> {
        let stack = if stack.is_empty() { String::new() } else { format!("{stack}_") };
        let prefix = |t: &str| prefix.map_or_else(|| format!("conductor_{t}_notify_{stack}"), str::to_owned);
        let queue = |status: &str| -> Result<BrokerQueue, String> {
            Ok(match kind {
                "sqs" => BrokerQueue::Sqs(format!("{}{status}", prefix("sqs"))),
                // conductor-oss uses an exchange (`use-exchange`, default true), consumed through
                // its bound queue.
                "amqp" => BrokerQueue::AmqpExchange(format!("{}{status}", prefix("amqp"))),
                "kafka" => BrokerQueue::Kafka(format!("{}{status}", prefix("kafka"))),
                "jsm" => BrokerQueue::JetStream(status.to_owned()),
                other => return Err(format!("default event queues are on sqs, amqp, kafka or jsm, not {other:?}")),
            })
        };
        Ok(DefaultQueues { completed: queue("COMPLETED")?, failed: queue("FAILED")? })
    }

    /// The status a queue's messages give their task, if it is one of these.
    pub fn status_of(&self, queue: &BrokerQueue) -> Option<TaskResultStatus> {
        if *queue == self.completed {
            Some(TaskResultStatus::Completed)
        } else if *queue == self.failed {
            Some(TaskResultStatus::Failed)
        } else {
            None
        }
    }

    /// The queue of a status (`COMPLETED`, `FAILED`), as `POST /api/queue/update` names it.
    pub fn for_status(&self, status: &str) -> Option<&BrokerQueue> {
        match status {
            "COMPLETED" => Some(&self.completed),
            "FAILED" => Some(&self.failed),
            _ => None,
        }
    }
}

/// conductor-oss's `conductor.workflow-status-listener.kafka.*`: where workflow status events go.
#[derive(Debug, Clone)]
pub struct KafkaStatusOptions {
    /// The topic of every event type without its own (`workflow-status-events`).
    pub default_topic: String,
    /// Topics by event type (`COMPLETED`, `TERMINATED`, `FINALIZED`).
    pub event_topics: BTreeMap<String, String>,
}

impl Default for KafkaStatusOptions {
    fn default() -> Self {
        KafkaStatusOptions { default_topic: "workflow-status-events".into(), event_topics: BTreeMap::new() }
    }
}

impl KafkaStatusOptions {
    pub(crate) fn topic(&self, event_type: &str) -> &str {
        self.event_topics.get(event_type).unwrap_or(&self.default_topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_named_as_conductor_oss_names_them() {
        let sqs = DefaultQueues::new("sqs", None, "test").expect("sqs");
        assert_eq!(sqs.completed, BrokerQueue::Sqs("conductor_sqs_notify_test_COMPLETED".into()));
        let amqp = DefaultQueues::new("amqp", None, "").expect("amqp");
        assert_eq!(amqp.failed, BrokerQueue::AmqpExchange("conductor_amqp_notify_FAILED".into()));
        let kafka = DefaultQueues::new("kafka", Some("审批_"), "test").expect("kafka");
        assert_eq!(kafka.completed, BrokerQueue::Kafka("审批_COMPLETED".into()));
        let jsm = DefaultQueues::new("jsm", None, "test").expect("jsm");
        assert_eq!(jsm.status_of(&BrokerQueue::JetStream("FAILED".into())), Some(TaskResultStatus::Failed));
        assert_eq!(jsm.for_status("IN_PROGRESS"), None);
        assert!(DefaultQueues::new("nats", None, "test").is_err());
    }

    #[test]
    fn status_events_go_to_their_event_type_topic_or_the_default() {
        let mut options = KafkaStatusOptions::default();
        options.event_topics.insert("FINALIZED".into(), "wf-finalized".into());
        assert_eq!(
            (options.topic("COMPLETED"), options.topic("FINALIZED")),
            ("workflow-status-events", "wf-finalized")
        );
    }
}

//! The workflow status listener: what an ended workflow with `workflowStatusListenerEnabled`
//! publishes, once its end is committed (a `PublishStatus` follow-up, see `crate::followups`).
//!
//! - Always: its `WorkflowSummary` on `conductor:_callbackSuccessQueue` (COMPLETED) or
//!   `conductor:_callbackFailureQueue`, then on `conductor:_callbackFinalizeQueue`, where event
//!   handlers pick it up (conductor-oss's `queue_publisher`).
//! - Its definition's `workflowStatusListenerSink`, when it names a queue (`kafka:wf-status`,
//!   `amqp_exchange:...`, `jsm:...`, `sqs:...`, `nats:...` or `conductor:...`): the summary is
//!   published there too.
//! - `[workflow_status_listener.kafka]` in the configuration: conductor-oss's `kafka` listener,
//!   `{"workflowName", "eventType", "payload"}` keyed by the workflow id, for `COMPLETED` or
//!   `TERMINATED` (every other end) and then `FINALIZED`, on the topic configured for the event
//!   type or the default topic.
//!
//! A broker that does not take a message leaves the follow-up in place, so it is tried again
//! (after 1 s, doubling to a minute) until the broker does: publishing is at least once. At most
//! [`crate::brokers::STATUS_PUBLISHES`] publishes are under way at once. Each message carries an id
//! that is the same on every attempt (the workflow id, its status and its end time), which
//! JetStream deduplicates and handlers key their effects by.

use overture_core::WorkflowStatus;
use overture_core::command::Command;
use serde_json::{Value, json};

use crate::brokers::{BrokerQueue, Brokers};
use crate::error::Error;
use crate::workflows::Workflows;

/// Publishes an ended workflow's status everywhere it goes, then records that it has.
pub(crate) async fn publish(workflows: &Workflows, brokers: &Brokers, workflow_id: &str) -> Result<(), Error> {
    let wf = workflows.workflow(workflow_id)?;
    if !wf.header.status_listener_pending {
        // Published already: a timer armed again after a failure outlived its row.
        return Ok(());
    }
    let summary = crate::events::workflow_summary(&wf);
    let status = wf.header.status;
    let message_id = format!("{workflow_id}:{}:{}", status.as_str(), wf.header.end_time);
    let sink = wf.plan.def.workflow_status_listener_sink.as_deref().map(str::trim).filter(|s| !s.is_empty());
    // Broker publishes take a slot; with none free the timer tries again later, without holding
    // a firing slot meanwhile (`crate::timers`).
    let _slot = if sink.is_some_and(|s| !s.starts_with("conductor")) || brokers.status_kafka().is_some() {
        let slot = brokers.status_publish_slot();
        Some(slot.ok_or_else(|| Error::Unavailable("status listener publishes are all under way".into()))?)
    } else {
        None
    };
    if let Some(sink) = sink {
        to_sink(workflows, brokers, sink, &message_id, &summary).await?;
    }
    if let Some(kafka) = brokers.status_kafka() {
        for event_type in event_types(status) {
            let message = json!({"workflowName": wf.header.workflow_name, "eventType": event_type, "payload": summary});
            let topic = BrokerQueue::Kafka(kafka.topic(event_type).to_owned());
            let body = serde_json::to_vec(&message).unwrap_or_default();
            // The message id is a Kafka record's key: the workflow id, as conductor-oss keys it.
            brokers.publish(&topic, workflow_id, body).await?;
        }
    }
    let outcome = if status == WorkflowStatus::Completed { "Success" } else { "Failure" };
    for queue in [format!("_callback{outcome}Queue"), "_callbackFinalizeQueue".to_owned()] {
        crate::events::deliver(workflows, &format!("conductor:{queue}"), &message_id, &summary).await;
    }
    workflows.command(workflow_id, Command::StatusPublished).await.map(|_| ())
}

/// conductor-oss's listener events for an end: completed, or terminated (any other end), then
/// finalized.
fn event_types(status: WorkflowStatus) -> [&'static str; 2] {
    [if status == WorkflowStatus::Completed { "COMPLETED" } else { "TERMINATED" }, "FINALIZED"]
}

/// Publishes the summary on the definition's sink. A broker that is down is an error (tried
/// again); a sink that cannot be served is logged and skipped, since trying again cannot help.
async fn to_sink(
    workflows: &Workflows,
    brokers: &Brokers,
    sink: &str,
    message_id: &str,
    summary: &Value,
) -> Result<(), Error> {
    let skipped = |why: String| {
        tracing::warn!(sink, why = %why, "workflowStatusListenerSink skipped");
        metrics::counter!(crate::brokers::PUBLISH_FAILED, "queueType" => "status_listener").increment(1);
    };
    match BrokerQueue::parse(sink) {
        Ok(None) => {
            crate::events::deliver(workflows, sink, message_id, summary).await;
            Ok(())
        }
        Ok(Some(queue)) if brokers.serves(&queue) => {
            let body = serde_json::to_vec(summary).unwrap_or_default();
            match brokers.publish(&queue, message_id, body).await {
                Ok(_) => Ok(()),
                Err(e @ Error::Unavailable(_)) => Err(e),
                Err(e) => {
                    skipped(e.to_string());
                    Ok(())
                }
            }
        }
        Ok(Some(queue)) => {
            skipped(format!("{} is not configured on this server", queue.kind()));
            Ok(())
        }
        Err(why) => {
            skipped(why);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_follow_conductor_oss_kafka_listener() {
        assert_eq!(event_types(WorkflowStatus::Completed), ["COMPLETED", "FINALIZED"]);
        for ended in [WorkflowStatus::Failed, WorkflowStatus::TimedOut, WorkflowStatus::Terminated] {
            assert_eq!(event_types(ended), ["TERMINATED", "FINALIZED"]);
        }
    }
}

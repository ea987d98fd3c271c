//! The leader's consumers: one per broker queue an active event handler listens on, started and
//! stopped as handlers change.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use crate::brokers::{Body, BrokerQueue, Brokers, CONSUMERS, Delivery, MESSAGES, PositionStore, QueueStatuses};
use crate::error::Error;
use crate::workflows::Workflows;

/// Consumer positions kept in the replicated state, proposed by this term's leader.
impl PositionStore for Workflows {
    fn load(&self, queue: &str) -> Result<BTreeMap<u32, i64>, Error> {
        self.read().queue_positions(queue).map_err(|e| Error::Internal(format!("reading positions of {queue}: {e}")))
    }

    fn save(
        &self,
        queue: String,
        positions: Vec<(u32, i64)>,
    ) -> futures::future::BoxFuture<'static, Result<(), Error>> {
        let workflows = self.clone();
        Box::pin(async move {
            workflows.host().serving()?;
            let request = overture_raft::Request::PutQueuePositions { queue, positions };
            workflows.host().replica.propose(request).await.map(|_| ()).map_err(Error::from)
        })
    }
}

/// How often the set of queues to consume is looked at again.
const RESCAN: Duration = Duration::from_secs(1);
/// How long a consumer waits before opening its queue again after an error.
const REOPEN: Duration = Duration::from_secs(2);
/// Messages of one queue handled at once.
const IN_FLIGHT: usize = 128;

/// Runs until `stop`: keeps one consumer per queue that active handlers listen on.
pub(crate) async fn run(workflows: Workflows, brokers: Brokers, mut stop: watch::Receiver<bool>) {
    let mut running: BTreeMap<BrokerQueue, tokio::task::JoinHandle<()>> = BTreeMap::new();
    loop {
        let wanted = wanted(&workflows, &brokers);
        brokers.statuses().keep_only(&wanted.iter().map(BrokerQueue::event).collect::<Vec<_>>());
        running.retain(|queue, task| {
            let keep = wanted.contains(queue) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for queue in wanted {
            running
                .entry(queue.clone())
                .or_insert_with(|| tokio::spawn(consume(workflows.clone(), brokers.clone(), queue, stop.clone())));
        }
        for kind in crate::brokers::QUEUE_TYPES {
            let n = running.keys().filter(|q| q.kind() == kind).count();
            metrics::gauge!(CONSUMERS, "queueType" => kind).set(n as f64);
        }
        tokio::select! {
            _ = tokio::time::sleep(RESCAN) => {}
            _ = stop.changed() => break,
        }
    }
    for (_, task) in running {
        task.abort();
    }
}

/// The broker queues active handlers listen on, among those configured here.
fn wanted(workflows: &Workflows, brokers: &Brokers) -> Vec<BrokerQueue> {
    let Ok(handlers) = workflows.read().event_handlers() else { return Vec::new() };
    let mut queues: Vec<BrokerQueue> = handlers
        .iter()
        .filter(|h| h.active)
        .filter_map(|h| BrokerQueue::parse(&h.event).ok().flatten())
        .filter(|q| brokers.serves(q))
        .collect();
    if let Some(d) = brokers.default_queues() {
        queues.extend([d.completed.clone(), d.failed.clone()]);
    }
    queues.sort();
    queues.dedup();
    queues
}

/// Runs one message's handlers (and, on a default event queue, updates the task it names),
/// then acknowledges it. A message that is not JSON is counted and acknowledged: the same bytes
/// would fail the same way again.
async fn handle(
    workflows: &Workflows,
    statuses: &QueueStatuses,
    (event, kind, task_status): (&str, &'static str, Option<overture_core::TaskResultStatus>),
    delivery: Delivery,
) {
    let Delivery { message_id, payload, ack } = delivery;
    let payload = match payload {
        Body::Json(v) => Ok(v),
        Body::Raw(bytes) => serde_json::from_slice::<Value>(&bytes),
    };
    match payload {
        Ok(payload) => {
            let mut failures = Vec::new();
            if let Some(status) = task_status {
                match crate::default_queues::apply(workflows, status, &payload).await {
                    Ok(()) => tracing::debug!(event, %message_id, "task updated from its default queue"),
                    Err(why) => {
                        tracing::warn!(event, %message_id, why, "a default event queue message updated no task");
                        failures.push(why);
                    }
                }
            }
            failures.extend(crate::events::deliver(workflows, event, &message_id, &payload).await);
            metrics::counter!(MESSAGES, "queueType" => kind, "outcome" => "handled").increment(1);
            statuses.update(event, |s| {
                s.handled += 1;
                s.failed += failures.len() as u64;
            });
            if let Some(last) = failures.last() {
                statuses.error(event, format!("message {message_id}: {last}"));
            }
        }
        Err(e) => {
            tracing::warn!(event, %message_id, error = %e, "a message that is not JSON is dropped");
            metrics::counter!(MESSAGES, "queueType" => kind, "outcome" => "invalid").increment(1);
            statuses.update(event, |s| s.invalid += 1);
            statuses.error(event, format!("message {message_id} is not JSON ({e}); dropped"));
        }
    }
    if workflows.host().is_stopped() {
        // This node stopped leading while the message was handled: what it did not finish is
        // left to the next leader, which the broker redelivers it to; every effect is idempotent.
        tracing::debug!(event, %message_id, "leadership ended while handling a message; not acknowledged");
        return;
    }
    if let Err(e) = ack().await {
        tracing::warn!(event, %message_id, error = %e, "acknowledging a message");
        statuses.error(event, format!("acknowledging message {message_id}: {e}"));
    }
}

/// How often a consumer asks its broker how many messages wait.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Asks the broker every [`PROBE_EVERY`] how many messages of `queue` wait, for its status and
/// the lag gauge; brokers that cannot say (or that report it themselves) end this at once.
async fn probe_backlog(brokers: Brokers, queue: BrokerQueue) {
    let event = queue.event();
    let gauge = metrics::gauge!(crate::brokers::LAG, "queue" => event.clone());
    loop {
        match brokers.backlog(&queue).await {
            Ok(Some(n)) => {
                gauge.set(n as f64);
                brokers.statuses().update(&event, |s| s.lag = Some(n));
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(event, error = %e, "cannot count the queue's messages"),
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// A task that ends when this is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Consumes one queue until aborted or `stop`: each message's handlers run, then it is
/// acknowledged.
async fn consume(workflows: Workflows, brokers: Brokers, queue: BrokerQueue, mut stop: watch::Receiver<bool>) {
    let event = queue.event();
    let kind = queue.kind();
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let statuses = brokers.statuses().clone();
    let task_status = brokers.default_queues().and_then(|d| d.status_of(&queue));
    loop {
        let positions: Arc<dyn PositionStore> = Arc::new(workflows.clone());
        let mut messages = match brokers.subscribe(&queue, positions).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(event, error = %e, "cannot consume the event queue; trying again");
                statuses.update(&event, |s| s.consuming = false);
                statuses.error(&event, format!("opening the queue: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(REOPEN) => continue,
                    _ = stop.changed() => return,
                }
            }
        };
        tracing::info!(event, "consuming the event queue");
        statuses.update(&event, |s| s.consuming = true);
        let _probe = AbortOnDrop(tokio::spawn(probe_backlog(brokers.clone(), queue.clone())));
        loop {
            let next = tokio::select! {
                m = messages.next() => m,
                _ = stop.changed() => return,
            };
            let delivery = match next {
                Some(Ok(d)) => d,
                Some(Err(e)) => {
                    tracing::warn!(event, error = %e, "reading the event queue");
                    statuses.error(&event, format!("reading the queue: {e}"));
                    break;
                }
                None => break,
            };
            // Messages are handled side by side (their effects are independent commits), up to
            // IN_FLIGHT; each is acknowledged once its own actions are committed.
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let (workflows, event, statuses) = (workflows.clone(), event.clone(), statuses.clone());
            tokio::spawn(async move {
                handle(&workflows, &statuses, (&event, kind, task_status), delivery).await;
                drop(permit);
            });
        }
        statuses.update(&event, |s| s.consuming = false);
        tokio::select! {
            _ = tokio::time::sleep(REOPEN) => {}
            _ = stop.changed() => return,
        }
    }
}

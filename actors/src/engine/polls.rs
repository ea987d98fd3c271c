//! Polls in a partitioned cluster: local first.
//!
//! A worker's poll on a node is served from the queues of the partitions that node leads,
//! taken in turn. Only when they have nothing does the node ask the other nodes that lead
//! partitions, each once, without waiting ([`paths::PARTITION_POLL`]); they answer from the
//! partitions they lead, as a poll made on them would be. A long poll then waits for a task
//! to enter a local queue, or for another node's notice that one is ready there (`ready.rs`),
//! and asks the other nodes again every [`REMOTE_POLL_EVERY`] until its time is up. A node that
//! had nothing for a queue is not asked for it again, by any poll of this node, for
//! [`REMOTE_EMPTY_FOR`] unless it sends a notice: many workers waiting on one node cost its
//! peers a few requests a second, not one per worker. So a worker that polls and updates on one
//! node mostly touches that node's partitions, and still receives a task of any partition as
//! soon as it is ready.
//!
//! A task handed out by another node is committed as polled there before it is answered, as
//! with a forwarded poll: an answer lost on the way leaves it IN_PROGRESS until its response
//! timeout, and it is then scheduled again.

use std::sync::Arc;
use std::time::Duration;

use overture_core::queue::QueueName;
use overture_raft::codec::{decode_message, encode_message};
use overture_raft::network::paths;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Engine, PollRecord};
use crate::error::Error;
use crate::leader::Leader;

/// How often a waiting long poll asks the other nodes again.
pub const REMOTE_POLL_EVERY: Duration = Duration::from_millis(100);
/// How long another node that had nothing for a queue is left alone for it.
pub const REMOTE_EMPTY_FOR: Duration = Duration::from_millis(250);
/// How long a node waits for another's answer to a poll.
const REMOTE_POLL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a worker polls for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Poll {
    pub task_type: String,
    pub domain: Option<String>,
    pub worker_id: Option<String>,
    pub count: usize,
}

impl Poll {
    fn queue(&self) -> QueueName {
        QueueName::worker(&self.task_type, self.domain.as_deref())
    }
}

impl Engine {
    /// Serves a poll in a partitioned cluster (see the module doc).
    pub(crate) async fn poll_partitions(&self, poll: Poll, wait: Duration) -> Result<Vec<Box<RawValue>>, Error> {
        let queue = poll.queue();
        let deadline = tokio::time::Instant::now() + wait;
        let mut ask_others_at = tokio::time::Instant::now();
        // Counted while it lasts, so this node's ready tasks stay here and other nodes' ready
        // notices wake it (see `ready.rs`).
        let waiting = (!wait.is_zero()).then(|| self.inner.ready.wait(queue.as_str()));
        loop {
            let leaders = self.partition_leaders();
            // Listen before looking, so a task queued in between wakes this poll.
            let notifiers: Vec<_> = leaders.iter().map(|l| l.host.queues.notifier(queue.as_str())).collect();
            let mut woken: Vec<_> = notifiers.iter().map(|n| Box::pin(n.notified())).collect();
            for w in &mut woken {
                w.as_mut().enable();
            }
            let mut notice = waiting.as_ref().map(|w| Box::pin(w.wake.notified()));
            if let Some(n) = &mut notice {
                n.as_mut().enable();
            }
            let tasks = self.poll_here(&leaders, &poll).await;
            if !tasks.is_empty() {
                return Ok(tasks);
            }
            let now = tokio::time::Instant::now();
            if now >= ask_others_at {
                let tasks = self.poll_others(&poll).await;
                if !tasks.is_empty() {
                    return Ok(tasks);
                }
                ask_others_at = tokio::time::Instant::now() + REMOTE_POLL_EVERY;
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            let until = deadline.min(ask_others_at);
            let here = async {
                if woken.is_empty() {
                    futures::future::pending::<()>().await;
                } else {
                    futures::future::select_all(woken).await;
                }
            };
            let elsewhere = async {
                match notice {
                    Some(n) => n.await,
                    None => futures::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = here => {}
                // Another node has a ready task: ask it now.
                _ = elsewhere => ask_others_at = tokio::time::Instant::now(),
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }

    /// The leaders of the partitions this node leads and serves, starting from a different one
    /// each time so no partition's queue is always looked at first.
    fn partition_leaders(&self) -> Vec<Arc<Leader>> {
        let mut leaders: Vec<_> = self.local_leaders().into_iter().filter(|l| l.host.group != 0).collect();
        if !leaders.is_empty() {
            let turn = self.inner.next_start.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let first = turn % leaders.len();
            leaders.rotate_left(first);
        }
        leaders
    }

    /// Up to `poll.count` tasks from the partitions in `leaders`, without waiting.
    async fn poll_here(&self, leaders: &[Arc<Leader>], poll: &Poll) -> Vec<Box<RawValue>> {
        let queue = poll.queue();
        let mut out = Vec::new();
        for leader in leaders {
            let want = poll.count.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            leader.host.polls.record(
                &poll.task_type,
                poll.domain.as_deref(),
                poll.worker_id.as_deref(),
                crate::now_ms(),
            );
            let got = leader
                .workflows
                .poll_queue(queue.as_str(), &poll.task_type, poll.worker_id.clone(), want, Duration::ZERO)
                .await;
            match got {
                Ok(tasks) => out.extend(tasks),
                // This partition stopped serving (a leader change); the others still may.
                Err(e) => tracing::debug!(group = leader.host.group, error = %e, "a partition's poll failed"),
            }
        }
        out
    }

    /// The other nodes that lead partitions, and their addresses.
    fn other_partition_leaders(&self) -> Vec<(u64, String)> {
        let me = self.replica().node_id();
        let mut nodes: Vec<(u64, String)> = Vec::new();
        // Only who leads each partition: not the whole `GroupStatus`, on this path of every poll.
        for replica in self.inner.groups.all().iter().skip(1) {
            if let Some(node) = replica.leadership().leader
                && node != me
                && !nodes.iter().any(|(n, _)| *n == node)
                && let Some(address) = replica.node_addr(node)
            {
                nodes.push((node, address));
            }
        }
        nodes
    }

    /// Up to `poll.count` tasks from the partitions other nodes lead, asking each once.
    async fn poll_others(&self, poll: &Poll) -> Vec<Box<RawValue>> {
        let nodes = self.other_partition_leaders();
        let queue = poll.queue().as_str().to_owned();
        let mut out = Vec::new();
        for (node, address) in nodes {
            let want = poll.count.saturating_sub(out.len());
            if want == 0 {
                break;
            }
            let key = (node, queue.clone());
            let now = std::time::Instant::now();
            if self.inner.remote_empty.lock().get(&key).is_some_and(|at| now.duration_since(*at) < REMOTE_EMPTY_FOR) {
                continue;
            }
            let asked = Poll { count: want, ..poll.clone() };
            let answer: Result<Vec<String>, String> =
                self.inner.groups.ask(node, &address, paths::PARTITION_POLL, &asked, REMOTE_POLL_TIMEOUT).await;
            match answer {
                Ok(tasks) if tasks.is_empty() => self.note_empty(key),
                Ok(tasks) => {
                    self.inner.remote_empty.lock().remove(&key);
                    out.extend(tasks.into_iter().filter_map(|t| RawValue::from_string(t).ok()));
                }
                Err(why) => {
                    self.note_empty(key);
                    tracing::debug!(node, why, "polling another node failed");
                }
            }
        }
        metrics::counter!(crate::names::TASK_POLL_FORWARDED).increment(out.len() as u64);
        out
    }

    /// Remembers that `node` had nothing for `queue` just now. Entries past their time are
    /// dropped once there are many (workers may poll any name).
    fn note_empty(&self, key: (u64, String)) {
        let now = std::time::Instant::now();
        let mut empty = self.inner.remote_empty.lock();
        if empty.len() >= 10_000 {
            empty.retain(|_, at| now.duration_since(*at) < REMOTE_EMPTY_FOR);
        }
        empty.insert(key, now);
    }

    /// Serves a poll another node (`from`, if it said) asks of this one: from the partitions
    /// this node leads, without waiting. That node is told when a task of the queue is ready
    /// here for a while (`ready.rs`); it watches before this looks, so a task queued meanwhile
    /// is noticed.
    pub async fn serve_remote_poll(&self, message: &[u8], from: Option<u64>) -> Vec<u8> {
        let answer: Result<Vec<String>, String> = match decode_message::<Poll>(message) {
            Err(e) => Err(format!("a remote poll that does not decode: {e}")),
            Ok(poll) if poll.queue().is_system() => Err(format!("{} is an internal queue", poll.queue())),
            Ok(poll) => {
                if let Some(node) = from.filter(|n| *n != self.replica().node_id()) {
                    self.inner.ready.watch(node, poll.queue().as_str());
                }
                let leaders = self.partition_leaders();
                let tasks = self.poll_here(&leaders, &poll).await;
                Ok(tasks.into_iter().map(|t| t.get().to_owned()).collect())
            }
        };
        encode_message(&answer)
    }

    /// The poll data of the partitions the other nodes lead, asking them all at once; a node
    /// that does not answer adds nothing.
    pub(super) async fn poll_data_of_others(&self, task_type: Option<&str>) -> Vec<PollRecord> {
        let asked = task_type.map(str::to_owned);
        let asks = self.other_partition_leaders().into_iter().map(|(node, address)| {
            let asked = &asked;
            async move {
                let answer: Result<Vec<PollRecord>, String> =
                    self.inner.groups.ask(node, &address, paths::PARTITION_POLL_DATA, asked, REMOTE_POLL_TIMEOUT).await;
                answer.unwrap_or_else(|why| {
                    tracing::debug!(node, why, "another node's poll data is missing");
                    Vec::new()
                })
            }
        });
        futures::future::join_all(asks).await.into_iter().flatten().collect()
    }

    /// Serves another node's ask for the poll data of the partitions this node leads.
    pub async fn serve_remote_poll_data(&self, message: &[u8]) -> Vec<u8> {
        let answer: Result<Vec<PollRecord>, String> = match decode_message::<Option<String>>(message) {
            Err(e) => Err(format!("an ask for poll data that does not decode: {e}")),
            Ok(task_type) => Ok(super::tasks::poll_data_of(&self.partition_leaders(), task_type.as_deref())),
        };
        encode_message(&answer)
    }
}

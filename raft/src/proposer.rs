//! Workflow batches proposed at about the same moment share one Raft entry.
//!
//! Each entry costs a fixed amount wherever it goes, whatever it carries: openraft's bookkeeping
//! and a responder on the leader, a key and a record in every node's log, a place in every
//! append sent to a follower, and a turn of every node's apply loop. Under load many workflow
//! actors propose at once. The proposer keeps at most [`MAX_IN_FLIGHT`] entries of workflow
//! batches in flight; while they are, new batches wait, and the next entry takes all that
//! waited (at most [`MAX_PER_ENTRY`]) as one [`Request::Workflows`]. With fewer in flight a batch
//! goes out almost at once: the proposer first yields a few times ([`YIELDS_BEFORE_CUT`]), so
//! that actors already runnable in the same wave of requests propose into the same entry, and a
//! batch nothing joined goes alone as a plain [`Request::Workflow`]. A quiet node's latency is
//! what it was. Each batch keeps its own version guard and its own reply.
//!
//! Why two: one entry being made durable and one being applied keep the pipeline full, and
//! whatever arrives meanwhile would have waited for that fsync anyway. On one node, linear
//! workflows at saturation, entries carried 5.5 batches on average and the node used about 14%
//! less CPU per task; at half saturation the dispatch p99 was unchanged (docs/BENCHMARKS.md).
//! With no limit entries carried 1.4 batches; with a limit of one, 9, but a poll's dispatch waited
//! for an apply as well as an fsync.
//!
//! What waits is bounded by its senders, not by the channel: every batch comes from a workflow
//! actor that waits for its reply before it decides again, so at most one batch per live actor
//! waits, and live actors are capped (`max_live_actors`); requests beyond what the actors take
//! are refused at their inboxes (429).

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::Raft;
use crate::errors::{ProposeError, write_error};
use crate::types::{Request, Response, WorkflowBatch};

/// Batches one entry carries at most, so an entry stays small enough to replicate promptly.
pub const MAX_PER_ENTRY: usize = 64;

/// Entries of workflow batches proposed and not yet applied here, at most.
pub const MAX_IN_FLIGHT: usize = 2;

/// Times the proposer lets other runnable tasks go first once a batch has arrived and an entry
/// could go out, taking what they propose meanwhile into the same entry. A yield costs a turn of
/// the scheduler (microseconds), not a timer: with nothing else to run, the entry goes out at
/// once. One node, linear workflows, alternated runs (docs/BENCHMARKS.md): at 450 workflows/s
/// (half of saturation) entries carried 1.4–1.8 batches without it and 1.9–2.7 with it, the log
/// fsynced 0.59–0.78 times per task against 0.43–0.59, and the node spent 0.40 ms of CPU per
/// task against 0.42–0.46; at saturation entries carried 26 batches instead of 9.5. Eight
/// yields grouped no more than three.
pub const YIELDS_BEFORE_CUT: usize = 3;

type Reply = oneshot::Sender<Result<Response, ProposeError>>;
type Item = (WorkflowBatch, Reply);

/// The sending half; cheap to clone.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::UnboundedSender<Item>,
}

impl Proposer {
    /// Starts the loop that gathers batches for `raft`. It ends when every `Proposer` is dropped.
    pub(crate) fn start(raft: Raft) -> Proposer {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(gather(rx, move |items| write(raft.clone(), items)));
        Proposer { tx }
    }

    /// Proposes one workflow batch and waits until its entry is committed and applied here.
    pub(crate) async fn propose(&self, batch: WorkflowBatch) -> Result<Response, ProposeError> {
        let (reply, response) = oneshot::channel();
        self.tx.send((batch, reply)).map_err(|_| ProposeError::Fatal("the proposer stopped".into()))?;
        // A dropped reply means the write was abandoned midway (the runtime is shutting down):
        // the entry may or may not have been committed.
        response.await.unwrap_or(Err(ProposeError::Unknown))
    }
}

/// Hands what waits in `rx` to `write`, an entry's worth at a time, with at most
/// [`MAX_IN_FLIGHT`] writes unfinished.
async fn gather<W, F>(mut rx: mpsc::UnboundedReceiver<Item>, write: W)
where
    W: Fn(Vec<Item>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut waiting = Vec::with_capacity(MAX_PER_ENTRY);
    loop {
        let Ok(permit) = in_flight.clone().acquire_owned().await else { return };
        if rx.recv_many(&mut waiting, MAX_PER_ENTRY).await == 0 {
            return;
        }
        // Let the tasks that are already runnable (actors deciding in the same wave of requests)
        // propose before the entry is cut.
        for _ in 0..YIELDS_BEFORE_CUT {
            if waiting.len() >= MAX_PER_ENTRY {
                break;
            }
            tokio::task::yield_now().await;
            while waiting.len() < MAX_PER_ENTRY
                && let Ok(item) = rx.try_recv()
            {
                waiting.push(item);
            }
        }
        let items = std::mem::replace(&mut waiting, Vec::with_capacity(MAX_PER_ENTRY));
        metrics::histogram!("overture_raft_entry_batches_size").record(items.len() as f64);
        // Each entry is written by a task of its own, holding its permit until it is applied.
        let written = write(items);
        tokio::spawn(async move {
            written.await;
            drop(permit);
        });
    }
}

async fn write(raft: Raft, mut items: Vec<Item>) {
    if items.len() == 1 {
        let (batch, reply) = items.pop().expect("one item");
        let result = raft.client_write(Request::Workflow(batch)).await.map(|r| r.data).map_err(write_error);
        let _ = reply.send(result);
        return;
    }
    let (batches, replies): (Vec<_>, Vec<_>) = items.into_iter().unzip();
    let count = replies.len();
    let failure = match raft.client_write(Request::Workflows(batches)).await.map(|r| r.data) {
        Ok(Response::Many(responses)) if responses.len() == count => {
            for (reply, response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok(response));
            }
            return;
        }
        // The state machine answers a `Workflows` entry with one response per batch; anything
        // else is a bug, reported to every caller rather than guessed at.
        Ok(other) => ProposeError::Rejected(format!("unexpected reply to {count} workflow batches: {other}")),
        Err(e) => write_error(e),
    };
    for reply in replies {
        let _ = reply.send(Err(failure.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn batch(id: usize) -> (Item, oneshot::Receiver<Result<Response, ProposeError>>) {
        let (reply, rx) = oneshot::channel();
        ((WorkflowBatch { workflow_id: format!("w{id}").into(), expected_revision: 0, events: vec![] }, reply), rx)
    }

    /// What a write started with, and the switch that lets it finish.
    type Started = (Vec<String>, oneshot::Sender<()>);

    async fn next(started: &mut mpsc::UnboundedReceiver<Started>) -> Started {
        tokio::time::timeout(Duration::from_secs(10), started.recv()).await.expect("a write starts").expect("open")
    }

    /// Starts gathering with writes that report what they started with and wait for their
    /// switch; returns where to propose and where the writes are reported.
    fn gathering() -> (mpsc::UnboundedSender<Item>, mpsc::UnboundedReceiver<Started>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (started_tx, started) = mpsc::unbounded_channel::<Started>();
        tokio::spawn(gather(rx, move |items: Vec<Item>| {
            let (finish, finished) = oneshot::channel();
            let ids = items.iter().map(|(b, _)| b.workflow_id.to_string()).collect();
            let _ = started_tx.send((ids, finish));
            async move {
                let _ = finished.await;
                drop(items);
            }
        }));
        (tx, started)
    }

    #[tokio::test]
    async fn batches_wait_while_entries_are_in_flight_and_then_share_one() {
        let (tx, mut started) = gathering();
        let mut replies = Vec::new();
        let mut send = |id| {
            let (item, reply) = batch(id);
            tx.send(item).expect("gathering");
            replies.push(reply);
        };

        // Alone, a batch goes out at once, and so does a second while one is in flight.
        send(0);
        let (first, finish_first) = next(&mut started).await;
        assert_eq!(first, ["w0"]);
        send(1);
        let (second, finish_second) = next(&mut started).await;
        assert_eq!(second, ["w1"]);

        // With both in flight, the next batches wait ...
        for id in 2..10 {
            send(id);
        }
        // (One thread: each yield lets the gathering task run, were it able to.)
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(started.try_recv().is_err(), "no third write while {MAX_IN_FLIGHT} are in flight");

        // ... and go out together once one finishes.
        finish_first.send(()).expect("write waits");
        let (third, finish_third) = next(&mut started).await;
        assert_eq!(third, (2..10).map(|i| format!("w{i}")).collect::<Vec<_>>());
        finish_second.send(()).expect("write waits");
        finish_third.send(()).expect("write waits");
    }

    #[tokio::test]
    async fn batches_proposed_by_tasks_already_runnable_share_the_entry() {
        let (tx, mut started) = gathering();
        // One batch arrives while four more tasks are runnable, each about to propose one; no
        // entry is in flight, so without the yields the first batch would go out alone.
        let mut replies = Vec::new();
        let (item, reply) = batch(0);
        tx.send(item).expect("gathering");
        replies.push(reply);
        for id in 1..5 {
            let (item, reply) = batch(id);
            replies.push(reply);
            let tx = tx.clone();
            tokio::spawn(async move { tx.send(item).expect("gathering") });
        }
        let (first, finish) = next(&mut started).await;
        assert_eq!(first, (0..5).map(|i| format!("w{i}")).collect::<Vec<_>>());
        finish.send(()).expect("write waits");
    }
}

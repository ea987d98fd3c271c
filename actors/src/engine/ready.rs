//! Ready notices: a long poll waiting on one node learns at once that a task became ready in a
//! partition another node leads.
//!
//! Every poll another node asks of this one ([`paths::PARTITION_POLL`]) is a sign that the
//! asking node has workers of that queue: it leaves a *watch* here on (asking node, queue) for
//! [`WATCH_FOR`], renewed by each later ask. When a task becomes ready in a queue of a partition
//! this node leads (scheduled, or come due after a delay) and no long poll of this node waits on
//! that queue to take it, this node sends each watching node a notice
//! ([`paths::PARTITION_READY`]), at most one in flight per (node, queue). The watching node wakes
//! one of its long polls of that queue, which asks this node for the task at once; it answers
//! whether any poll of the queue still waits there, and a watch nobody waits for any more is
//! dropped.
//!
//! A notice only wakes a poll: the task is handed out by the poll it then asks, as before, so a
//! notice lost, late or sent for a task that someone else took costs one ask and nothing more.
//! A long poll still asks the other nodes every [`super::polls::REMOTE_POLL_EVERY`] besides,
//! which covers nodes of a release that sends no notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use overture_raft::codec::{decode_message, encode_message};
use overture_raft::network::paths;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};

use super::Engine;

/// How long an ask from another node keeps it informed about its queue.
pub const WATCH_FOR: Duration = Duration::from_secs(3);
/// At most this many (node, queue) watches are kept; asks beyond it leave none (those nodes'
/// polls then find tasks by asking again, as nodes without notices do).
const MAX_WATCHES: usize = 10_000;
/// Notices waiting to be sent; beyond it a notice is dropped (its poll asks again later).
const OUTBOX: usize = 4_096;
/// How long a notice may take.
const NOTICE_TIMEOUT: Duration = Duration::from_secs(2);

/// The notice: a task is ready in `queue` on `node`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReadyNotice {
    pub node: u64,
    pub queue: String,
}

/// One node's interest in a queue of this node.
struct Watch {
    until: Instant,
    /// A notice to that node about this queue is on its way.
    in_flight: bool,
}

/// Long polls of one queue waiting on this node, and how to wake one of them.
struct Waiting {
    polls: usize,
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    /// queue → node → watch.
    watches: HashMap<String, HashMap<u64, Watch>>,
    watch_count: usize,
    /// queue → this node's long polls of it.
    waiting: HashMap<String, Waiting>,
}

/// This node's watches and waiting long polls (see the module doc).
pub(crate) struct ReadyNotices {
    /// Whether any watch exists: the check every ready task makes, without the lock.
    any_watch: AtomicBool,
    state: Mutex<State>,
    outbox: mpsc::Sender<(u64, String)>,
}

/// A long poll counted as waiting on a queue until it is dropped.
pub(crate) struct WaitingPoll {
    notices: Arc<ReadyNotices>,
    queue: String,
    /// Woken by a notice from another node.
    pub wake: Arc<Notify>,
}

impl Drop for WaitingPoll {
    fn drop(&mut self) {
        let mut st = self.notices.state.lock();
        if let Some(w) = st.waiting.get_mut(&self.queue) {
            w.polls -= 1;
            if w.polls == 0 {
                st.waiting.remove(&self.queue);
            }
        }
    }
}

impl ReadyNotices {
    /// The notices and the receiving end of the notices to send.
    pub fn new() -> (Arc<ReadyNotices>, mpsc::Receiver<(u64, String)>) {
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let notices = ReadyNotices { any_watch: AtomicBool::new(false), state: Mutex::default(), outbox };
        (Arc::new(notices), rx)
    }

    /// Counts a long poll of `queue` as waiting here while the answer lives.
    pub fn wait(self: &Arc<Self>, queue: &str) -> WaitingPoll {
        let mut st = self.state.lock();
        let w = st.waiting.entry(queue.to_owned()).or_insert_with(|| Waiting { polls: 0, wake: Arc::default() });
        w.polls += 1;
        WaitingPoll { notices: self.clone(), queue: queue.to_owned(), wake: w.wake.clone() }
    }

    /// `node` asked this node for a task of `queue`: tell it when one is ready, for a while.
    pub fn watch(&self, node: u64, queue: &str) {
        let now = Instant::now();
        let mut st = self.state.lock();
        let st = &mut *st;
        if let Some(watch) = st.watches.get_mut(queue).and_then(|w| w.get_mut(&node)) {
            watch.until = now + WATCH_FOR;
            return;
        }
        if st.watch_count >= MAX_WATCHES {
            st.watches.retain(|_, by_node| {
                by_node.retain(|_, w| w.until > now || w.in_flight);
                !by_node.is_empty()
            });
            st.watch_count = st.watches.values().map(HashMap::len).sum();
            if st.watch_count >= MAX_WATCHES {
                return;
            }
        }
        st.watches
            .entry(queue.to_owned())
            .or_default()
            .insert(node, Watch { until: now + WATCH_FOR, in_flight: false });
        st.watch_count += 1;
        self.any_watch.store(true, Ordering::Release);
    }

    /// A task became ready in `queue` of a partition this node leads: notice the nodes that
    /// watch the queue, unless a long poll here waits to take it.
    pub fn ready(&self, queue: &str) {
        if !self.any_watch.load(Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let mut st = self.state.lock();
        let st = &mut *st;
        if st.waiting.contains_key(queue) {
            return;
        }
        let Some(by_node) = st.watches.get_mut(queue) else { return };
        let before = by_node.len();
        by_node.retain(|_, w| w.until > now || w.in_flight);
        for (node, watch) in by_node.iter_mut() {
            if watch.in_flight || watch.until <= now {
                continue;
            }
            watch.in_flight = true;
            if self.outbox.try_send((*node, queue.to_owned())).is_err() {
                watch.in_flight = false;
                metrics::counter!(crate::names::READY_NOTICES, "outcome" => "dropped").increment(1);
            }
        }
        let removed = before - by_node.len();
        if by_node.is_empty() {
            st.watches.remove(queue);
        }
        st.watch_count -= removed;
        if st.watch_count == 0 {
            self.any_watch.store(false, Ordering::Release);
        }
    }

    /// A notice to `node` about `queue` was answered: `still_waiting` whether a poll waits there.
    fn answered(&self, node: u64, queue: &str, still_waiting: bool) {
        let mut st = self.state.lock();
        let st = &mut *st;
        let Some(by_node) = st.watches.get_mut(queue) else { return };
        if still_waiting {
            if let Some(w) = by_node.get_mut(&node) {
                w.in_flight = false;
            }
            return;
        }
        if by_node.remove(&node).is_some() {
            st.watch_count -= 1;
        }
        if by_node.is_empty() {
            st.watches.remove(queue);
        }
        if st.watch_count == 0 {
            self.any_watch.store(false, Ordering::Release);
        }
    }

    /// A notice from another node: wakes one long poll of the queue, and answers whether any
    /// waits here.
    fn noticed(&self, queue: &str) -> bool {
        let st = self.state.lock();
        match st.waiting.get(queue) {
            Some(w) => {
                w.wake.notify_one();
                true
            }
            None => false,
        }
    }

    /// How many (node, queue) watches this node keeps.
    #[cfg(test)]
    fn watches(&self) -> usize {
        self.state.lock().watch_count
    }
}

impl Engine {
    /// Sends the notices [`ReadyNotices::ready`] queued, each on its own task, until the engine
    /// is dropped.
    pub(super) async fn send_ready_notices(
        engine: std::sync::Weak<super::Inner>,
        mut rx: mpsc::Receiver<(u64, String)>,
    ) {
        while let Some((node, queue)) = rx.recv().await {
            let Some(inner) = engine.upgrade() else { return };
            let engine = Engine { inner };
            tokio::spawn(async move { engine.send_ready_notice(node, queue).await });
        }
    }

    async fn send_ready_notice(&self, node: u64, queue: String) {
        let me = self.replica().node_id();
        let address = self.inner.groups.all().iter().find_map(|r| r.node_addr(node));
        let still_waiting = match address {
            None => false,
            Some(address) => {
                let notice = ReadyNotice { node: me, queue: queue.clone() };
                // The remote's refusal and a failure to reach it both come back as `Err`.
                let answer: Result<bool, String> =
                    self.inner.groups.ask(node, &address, paths::PARTITION_READY, &notice, NOTICE_TIMEOUT).await;
                let outcome = match &answer {
                    Ok(true) => "woke",
                    Ok(false) => "nobody_waits",
                    Err(why) => {
                        tracing::debug!(node, why, "a ready notice was not delivered");
                        "failed"
                    }
                };
                metrics::counter!(crate::names::READY_NOTICES, "outcome" => outcome).increment(1);
                answer == Ok(true)
            }
        };
        self.inner.ready.answered(node, &queue, still_waiting);
    }

    /// Serves a notice from another node: the next ask of that node for the queue goes out at
    /// once, and one long poll of it here wakes to make it.
    pub async fn serve_ready_notice(&self, message: &[u8]) -> Vec<u8> {
        let answer: Result<bool, String> = match decode_message::<ReadyNotice>(message) {
            Err(e) => Err(format!("a ready notice that does not decode: {e}")),
            Ok(notice) => {
                self.inner.remote_empty.lock().remove(&(notice.node, notice.queue.clone()));
                Ok(self.inner.ready.noticed(&notice.queue))
            }
        };
        encode_message(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ready_task_notices_each_watching_node_once_until_answered() {
        let (notices, mut rx) = ReadyNotices::new();
        notices.ready("审批");
        assert!(rx.try_recv().is_err(), "nobody watches yet");
        notices.watch(2, "审批");
        notices.watch(3, "审批");
        notices.watch(2, "审批");
        assert_eq!(notices.watches(), 2);
        notices.ready("审批");
        notices.ready("审批");
        let mut sent = vec![rx.try_recv().expect("a notice"), rx.try_recv().expect("a notice")];
        sent.sort();
        assert_eq!(sent, vec![(2, "审批".to_owned()), (3, "审批".to_owned())]);
        assert!(rx.try_recv().is_err(), "one notice in flight per node and queue");
        notices.answered(2, "审批", true);
        notices.answered(3, "审批", false);
        assert_eq!(notices.watches(), 1, "a node nobody waits on stops watching");
        notices.ready("审批");
        assert_eq!(rx.try_recv().expect("a notice"), (2, "审批".to_owned()));
        notices.ready("other");
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_long_poll_waiting_here_keeps_the_task_from_other_nodes() {
        let (notices, mut rx) = ReadyNotices::new();
        notices.watch(2, "q");
        let poll = notices.wait("q");
        notices.ready("q");
        assert!(rx.try_recv().is_err(), "the poll here takes it");
        drop(poll);
        notices.ready("q");
        assert_eq!(rx.try_recv().expect("a notice"), (2, "q".to_owned()));
    }

    #[test]
    fn a_notice_wakes_a_waiting_poll_and_says_whether_one_waits() {
        let (notices, _rx) = ReadyNotices::new();
        assert!(!notices.noticed("q"));
        let poll = notices.wait("q");
        let woken = poll.wake.clone();
        assert!(notices.noticed("q"));
        // The permit is kept for the poll, even if it was looking when the notice came.
        let wait = woken.notified();
        futures::pin_mut!(wait);
        assert!(futures::FutureExt::now_or_never(wait.as_mut()).is_some());
        drop(poll);
        assert!(!notices.noticed("q"));
    }

    #[test]
    fn watches_expire_and_are_bounded() {
        let (notices, mut rx) = ReadyNotices::new();
        for node in 0..(MAX_WATCHES as u64 + 50) {
            notices.watch(node, "q");
        }
        assert_eq!(notices.watches(), MAX_WATCHES);
        {
            let mut st = notices.state.lock();
            for w in st.watches.values_mut().flat_map(|by| by.values_mut()) {
                w.until = Instant::now() - Duration::from_millis(1);
            }
        }
        notices.ready("q");
        assert!(rx.try_recv().is_err(), "expired watches notice nobody");
        assert_eq!(notices.watches(), 0);
        assert!(!notices.any_watch.load(Ordering::Acquire));
    }
}

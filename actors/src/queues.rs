//! In-memory worker queues on the leader, mirrored from the durable `queue` rows.
//!
//! The rows are the truth; these queues are a cache built by scanning them when the node becomes
//! leader and kept current by the state machine's apply listener. A queue orders ready tasks by
//! workflow priority (higher first), then by the time they became ready, then by arrival. Tasks
//! not ready yet (retry delays, `callbackAfterSeconds`, `startDelay`) wait in a delayed set and
//! move over when due.
//!
//! Long polls register on the queue's [`Notify`] *before* looking, so a task that arrives between
//! the look and the wait still wakes them: a scheduled task reaches a waiting worker as soon as
//! its entry is applied, without any polling loop.
//!
//! A long poll that found nothing also offers itself as a `Waiter`. A decision that schedules a
//! task of that queue while nothing else is ready there takes the waiter and commits the task as
//! polled by it in the same batch (see `actor.rs`): the task never enters the queue, and reaches
//! the worker one commit after it was scheduled instead of two.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use overture_core::WorkflowId;
use overture_core::rows::QueueItem;
use parking_lot::Mutex;
use serde_json::value::RawValue;
use tokio::sync::{Notify, oneshot};

/// Ready order: priority (higher first), ready time, arrival.
type ReadyKey = (Reverse<i32>, i64, u64);

#[derive(Default)]
struct Queue {
    ready: BTreeSet<(ReadyKey, Id)>,
    /// task id → its place and owner.
    entries: HashMap<Id, Entry>,
    notify: Arc<Notify>,
    /// Long polls waiting here that a decision may hand a task to directly, oldest first.
    waiting: VecDeque<Arc<Waiter>>,
}

/// Where a decision sends the task it handed to a waiting poll once the batch that polled it
/// has committed; `None` if the batch did not commit (the poll looks again).
pub(crate) type HandOff = oneshot::Sender<Option<Box<RawValue>>>;

/// A long poll that found its queue empty and waits.
pub(crate) struct Waiter {
    worker_id: Option<String>,
    /// Taken by whichever comes first: a decision handing a task over, or the poll leaving.
    reply: Mutex<Option<HandOff>>,
}

struct Entry {
    workflow_id: Id,
    key: ReadyKey,
    ready: bool,
}

/// A task or workflow id as the queues keep it: an id in the form this node generates (a
/// lowercase hyphenated UUID) in 16 bytes, anything else as text. A waiting task costs its
/// queue entry only, so the entry is kept small.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Id {
    Uuid([u8; 16]),
    Text(Box<str>),
}

impl Id {
    fn new(id: &str) -> Id {
        let canonical = id.len() == 36 && !id.bytes().any(|b| b.is_ascii_uppercase());
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) if canonical => Id::Uuid(uuid.into_bytes()),
            _ => Id::Text(id.into()),
        }
    }

    fn text(&self) -> String {
        match self {
            Id::Uuid(bytes) => uuid::Uuid::from_bytes(*bytes).hyphenated().to_string(),
            Id::Text(text) => text.to_string(),
        }
    }
}

/// A task taken from a queue, to be claimed from its workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Popped {
    /// Conductor's `taskId` of the popped task.
    pub task_id: String,
    /// Id of the workflow the task belongs to.
    pub workflow_id: WorkflowId,
    /// When it became ready, epoch millis.
    pub ready_at: i64,
    /// Its workflow's priority.
    pub priority: i32,
}

impl Popped {
    /// The queue entry it came from.
    pub fn item(&self, queue: &str) -> QueueItem {
        QueueItem {
            queue: queue.to_owned(),
            task_id: self.task_id.clone(),
            workflow_id: self.workflow_id.clone(),
            priority: self.priority,
            ready_at: self.ready_at,
        }
    }
}

#[derive(Default)]
struct State {
    queues: HashMap<String, Queue>,
    /// Not yet ready: (ready at, queue, task id).
    delayed: BTreeSet<(i64, String, Id)>,
    arrivals: u64,
}

/// Called with a queue's name when a task becomes ready in it.
pub(crate) type OnReady = Box<dyn Fn(&str) + Send + Sync>;

/// All worker queues of the leader.
#[derive(Default)]
pub struct TaskQueues {
    state: Mutex<State>,
    /// Woken when the earliest delayed entry may have changed.
    delayed_changed: Notify,
    /// Told of every task that becomes ready (a partition's leader tells other nodes' polls).
    on_ready: std::sync::OnceLock<OnReady>,
}

impl TaskQueues {
    /// Calls `hook` with a queue's name whenever a task becomes ready in it from now on (added
    /// ready, or come due), after its pollers here are woken. Set once.
    pub(crate) fn on_ready(&self, hook: OnReady) {
        let _ = self.on_ready.set(hook);
    }

    fn tell_ready(&self, queue: &str) {
        if let Some(hook) = self.on_ready.get() {
            hook(queue);
        }
    }
    /// Returns an entry a poll took but may not hand out (a task definition's limits), without
    /// waking the queue's pollers: ready again at once (woken when a running task ends), or at
    /// `not_before`.
    pub(crate) fn put_back(&self, item: &QueueItem, not_before: Option<i64>) {
        let mut item = item.clone();
        if let Some(at) = not_before {
            item.ready_at = item.ready_at.max(at);
        }
        self.insert(&item, crate::now_ms(), false);
    }

    /// Wakes the pollers of every queue of a task type (any domain) that holds ready tasks:
    /// tasks a limit held back may be taken now. A queue with nothing ready has nothing to hand
    /// out, so its pollers sleep on (this runs whenever a worker task of the type finishes).
    /// With `held` (a limit did hold a task back) those queues are also told ready, as a task
    /// that comes due is, so other nodes' long polls hear of it.
    pub(crate) fn wake_task_type(&self, task_type: &str, held: bool) {
        let mut ready = Vec::new();
        {
            let st = self.state.lock();
            for (name, q) in &st.queues {
                let of_type = overture_core::queue::QueueName::may_be_of(name, task_type);
                if of_type && !q.ready.is_empty() {
                    q.notify.notify_waiters();
                    if held {
                        ready.push(name.clone());
                    }
                }
            }
        }
        for queue in ready {
            self.tell_ready(&queue);
        }
    }

    /// Adds or replaces an entry.
    pub fn add(&self, item: &QueueItem, now: i64) {
        self.insert(item, now, true);
    }

    fn insert(&self, item: &QueueItem, now: i64, wake: bool) {
        let task_id = Id::new(&item.task_id);
        let workflow_id = Id::new(&item.workflow_id);
        let mut st = self.state.lock();
        st.arrivals += 1;
        let arrival = st.arrivals;
        remove_locked(&mut st, &item.queue, &task_id);
        let ready = item.ready_at <= now;
        let key = (Reverse(item.priority), item.ready_at, arrival);
        let earliest_before = st.delayed.first().map(|d| d.0);
        if !ready {
            st.delayed.insert((item.ready_at, item.queue.clone(), task_id.clone()));
        }
        let queue = match st.queues.get_mut(&item.queue) {
            Some(queue) => queue,
            None => st.queues.entry(item.queue.clone()).or_default(),
        };
        if ready {
            queue.ready.insert((key, task_id.clone()));
        }
        queue.entries.insert(task_id, Entry { workflow_id, key, ready });
        let notify = queue.notify.clone();
        let delayed_earlier = !ready && earliest_before.is_none_or(|e| item.ready_at < e);
        drop(st);
        // One task, one poller: waking every poller of the queue would have all but one find it
        // empty. A woken poller that goes away without looking passes the wake-up on (`Notify`).
        if ready && wake {
            notify.notify_one();
            self.tell_ready(&item.queue);
        }
        if delayed_earlier {
            self.delayed_changed.notify_one();
        }
    }

    /// Removes an entry, if present.
    pub fn remove(&self, queue: &str, task_id: &str) {
        let task_id = Id::new(task_id);
        remove_locked(&mut self.state.lock(), queue, &task_id);
    }

    /// Takes up to `count` ready tasks from a queue.
    pub fn pop(&self, queue: &str, count: usize) -> Vec<Popped> {
        let mut st = self.state.lock();
        let Some(q) = st.queues.get_mut(queue) else { return Vec::new() };
        let mut out = Vec::with_capacity(count.min(q.ready.len()));
        while out.len() < count {
            let Some(((Reverse(priority), ready_at, _), task_id)) = q.ready.pop_first() else { break };
            if let Some(entry) = q.entries.remove(&task_id) {
                out.push(Popped {
                    task_id: task_id.text(),
                    workflow_id: entry.workflow_id.text().into(),
                    ready_at,
                    priority,
                });
            }
        }
        out
    }

    /// The notifier long polls of this queue wait on.
    pub fn notifier(&self, queue: &str) -> Arc<Notify> {
        self.state.lock().queues.entry(queue.to_owned()).or_default().notify.clone()
    }

    /// Offers a long poll of `queue` that found nothing to decisions that schedule a task there;
    /// the receiver gets the task such a decision committed as polled by `worker_id`. The poll
    /// must [`leave`](Self::leave) before it stops waiting.
    pub(crate) fn wait_for_hand_off(
        &self,
        queue: &str,
        worker_id: Option<String>,
    ) -> (Arc<Waiter>, oneshot::Receiver<Option<Box<RawValue>>>) {
        let (tx, rx) = oneshot::channel();
        let waiter = Arc::new(Waiter { worker_id, reply: Mutex::new(Some(tx)) });
        self.state.lock().queues.entry(queue.to_owned()).or_default().waiting.push_back(waiter.clone());
        (waiter, rx)
    }

    /// Withdraws a waiting poll. False if a decision took it first: its task is on the way
    /// (or `None`, if that batch fails), and the poll must wait for it.
    pub(crate) fn leave(&self, queue: &str, waiter: &Arc<Waiter>) -> bool {
        let mut st = self.state.lock();
        if let Some(q) = st.queues.get_mut(queue)
            && let Some(at) = q.waiting.iter().position(|w| Arc::ptr_eq(w, waiter))
        {
            q.waiting.remove(at);
        }
        waiter.reply.lock().take().is_some()
    }

    /// Takes the longest-waiting poll of `queue` for a task just scheduled there: its worker id
    /// and where to send the task. None if the queue holds ready tasks (they go first, in queue
    /// order) or no poll still waits.
    pub(crate) fn take_waiter(&self, queue: &str) -> Option<(Option<String>, HandOff)> {
        let mut st = self.state.lock();
        let q = st.queues.get_mut(queue)?;
        if !q.ready.is_empty() {
            return None;
        }
        while let Some(waiter) = q.waiting.pop_front() {
            // A poll whose request went away has dropped its receiver.
            if let Some(reply) = waiter.reply.lock().take().filter(|r| !r.is_closed()) {
                return Some((waiter.worker_id.clone(), reply));
            }
        }
        None
    }

    /// Forgets queues that hold no task and that no poll waits on (a poll holds the notifier
    /// while it waits), so polling many task types that never get tasks leaves nothing behind.
    /// Returns how many it forgot.
    pub fn forget_unused(&self) -> usize {
        let mut st = self.state.lock();
        let before = st.queues.len();
        st.queues.retain(|_, q| !q.entries.is_empty() || !q.waiting.is_empty() || Arc::strong_count(&q.notify) > 1);
        before - st.queues.len()
    }

    /// Queues held in memory.
    pub fn len(&self) -> usize {
        self.state.lock().queues.len()
    }

    /// No queue is held in memory.
    pub fn is_empty(&self) -> bool {
        self.state.lock().queues.is_empty()
    }

    /// Wakes every waiter of every queue (used when leadership ends).
    pub fn wake_all(&self) {
        for q in self.state.lock().queues.values() {
            q.notify.notify_waiters();
        }
    }

    /// Long polls waiting on each queue.
    pub fn waiting_polls(&self) -> Vec<(String, usize)> {
        self.state.lock().queues.iter().map(|(name, q)| (name.clone(), q.waiting.len())).collect()
    }

    /// Tasks in every queue, ready or delayed.
    pub fn depths(&self) -> Vec<(String, usize)> {
        self.state.lock().queues.iter().map(|(name, q)| (name.clone(), q.entries.len())).collect()
    }

    /// Tasks in a queue, ready or delayed.
    pub fn depth(&self, queue: &str) -> usize {
        self.state.lock().queues.get(queue).map_or(0, |q| q.entries.len())
    }

    /// Moves due delayed entries to their ready sets and wakes their pollers. Returns the ready
    /// time of the earliest entry still delayed.
    pub fn promote_due(&self, now: i64) -> Option<i64> {
        let mut woken = Vec::new();
        let mut st = self.state.lock();
        while let Some((at, _, _)) = st.delayed.first() {
            if *at > now {
                break;
            }
            let Some((_, queue, task_id)) = st.delayed.pop_first() else { break };
            if let Some(q) = st.queues.get_mut(&queue)
                && let Some(entry) = q.entries.get_mut(&task_id)
                && !entry.ready
            {
                entry.ready = true;
                q.ready.insert((entry.key, task_id));
                woken.push((q.notify.clone(), queue));
            }
        }
        let next = st.delayed.first().map(|d| d.0);
        drop(st);
        // One poller per task that came due, as for an add.
        for (n, queue) in woken {
            n.notify_one();
            self.tell_ready(&queue);
        }
        next
    }

    /// Runs until `stop` resolves: promotes delayed entries when they come due.
    pub async fn run_delay_loop(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            let next = self.promote_due(crate::now_ms());
            // Ready times are wall-clock times and the sleep is not: a sleep of at most a second
            // keeps a forward jump of the wall clock from holding due tasks back for longer.
            let sleep = match next {
                Some(at) => std::time::Duration::from_millis((at - crate::now_ms()).clamp(1, 1_000) as u64),
                None => std::time::Duration::from_secs(1),
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.delayed_changed.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

fn remove_locked(st: &mut State, queue: &str, task_id: &Id) {
    let Some(q) = st.queues.get_mut(queue) else { return };
    if let Some(entry) = q.entries.remove(task_id) {
        if entry.ready {
            q.ready.remove(&(entry.key, task_id.clone()));
        } else {
            st.delayed.remove(&(entry.key.1, queue.to_owned(), task_id.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(queue: &str, task: &str, priority: i32, ready_at: i64) -> QueueItem {
        QueueItem {
            queue: queue.into(),
            task_id: task.into(),
            workflow_id: format!("wf-{task}").into(),
            priority,
            ready_at,
        }
    }

    fn ids(popped: Vec<Popped>) -> Vec<String> {
        popped.into_iter().map(|p| p.task_id).collect()
    }

    #[test]
    fn ready_tasks_come_out_by_priority_then_age() {
        let q = TaskQueues::default();
        q.add(&item("a", "old-low", 0, 1), 100);
        q.add(&item("a", "new-low", 0, 2), 100);
        q.add(&item("a", "high", 9, 3), 100);
        q.add(&item("b", "other", 0, 1), 100);
        assert_eq!(ids(q.pop("a", 10)), ["high", "old-low", "new-low"]);
        assert_eq!(q.depth("a"), 0);
        assert_eq!(q.depth("b"), 1);
    }

    #[test]
    fn delayed_tasks_wait_until_due_and_removal_wins() {
        let q = TaskQueues::default();
        q.add(&item("a", "later", 0, 500), 100);
        q.add(&item("a", "gone", 0, 500), 100);
        assert!(q.pop("a", 10).is_empty());
        q.remove("a", "gone");
        assert_eq!(q.promote_due(499), Some(500));
        assert!(q.pop("a", 10).is_empty());
        assert_eq!(q.promote_due(500), None);
        assert_eq!(ids(q.pop("a", 10)), ["later"]);
    }

    #[test]
    fn re_adding_replaces_the_entry() {
        let q = TaskQueues::default();
        q.add(&item("a", "t", 0, 500), 100);
        q.add(&item("a", "t", 0, 50), 100);
        assert_eq!(q.depth("a"), 1);
        assert_eq!(ids(q.pop("a", 10)), ["t"]);
        assert_eq!(q.promote_due(1_000), None, "the delayed copy is gone");
        assert!(q.pop("a", 10).is_empty());
    }

    #[test]
    fn ids_come_back_exactly_as_given() {
        let generated = uuid::Uuid::new_v4().to_string();
        for id in [generated.as_str(), "A0B1C2D3-0000-4000-8000-000000000000", "my-workflow-7", "", "{x}"] {
            assert_eq!(Id::new(id).text(), id);
        }
        assert!(matches!(Id::new(&generated), Id::Uuid(_)), "a generated id is kept in 16 bytes");
        let q = TaskQueues::default();
        q.add(&item("a", &generated, 0, 0), 100);
        q.add(&item("a", "Custom-ID", 0, 0), 100);
        q.remove("a", &generated);
        assert_eq!(
            q.pop("a", 10),
            [Popped { task_id: "Custom-ID".into(), workflow_id: "wf-Custom-ID".into(), ready_at: 0, priority: 0 }]
        );
    }

    #[tokio::test]
    async fn a_waiter_registered_before_looking_is_woken_by_an_add() {
        let q = Arc::new(TaskQueues::default());
        let notify = q.notifier("a");
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        assert!(q.pop("a", 1).is_empty());
        q.add(&item("a", "t", 0, 0), 100);
        tokio::time::timeout(std::time::Duration::from_secs(1), notified).await.expect("woken");
        assert_eq!(ids(q.pop("a", 1)), ["t"]);
    }

    /// A ready task wakes one waiting poller, not all: the others would find the queue empty.
    /// A poller that was woken but goes away without looking passes its wake-up on.
    #[tokio::test]
    async fn an_add_wakes_one_poller_and_a_dropped_one_passes_it_on() {
        let q = Arc::new(TaskQueues::default());
        let notify = q.notifier("a");
        let mut first = Box::pin(notify.notified());
        let mut second = Box::pin(notify.notified());
        first.as_mut().enable();
        second.as_mut().enable();
        q.add(&item("a", "t1", 0, 0), 100);
        let polled =
            |n: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>| futures::FutureExt::now_or_never(n).is_some();
        assert!(polled(first.as_mut()), "the first waiter is woken");
        assert!(!polled(second.as_mut()), "the second sleeps on");

        let mut third = Box::pin(notify.notified());
        third.as_mut().enable();
        q.add(&item("a", "t2", 0, 0), 100);
        // The second waiter was woken for t2 but is dropped before it looks.
        drop(second);
        assert!(polled(third.as_mut()), "the wake-up passed on to the third");
    }

    /// A decision takes the longest-waiting poll, and only while nothing is ready in the queue;
    /// a poll that left, or whose request went away, is never taken.
    #[tokio::test]
    async fn a_decision_takes_the_oldest_live_waiter_of_an_empty_queue() {
        let q = TaskQueues::default();
        let (gone, gone_rx) = q.wait_for_hand_off("a", Some("gone".into()));
        let (closed, closed_rx) = q.wait_for_hand_off("a", Some("closed".into()));
        let (_oldest, mut oldest_rx) = q.wait_for_hand_off("a", Some("w1".into()));
        let (newest, _newest_rx) = q.wait_for_hand_off("a", Some("w2".into()));
        assert!(q.leave("a", &gone), "nobody took it");
        drop(gone_rx);
        drop(closed_rx);
        assert!(q.take_waiter("b").is_none(), "another queue has no waiters");

        q.add(&item("a", "queued", 0, 0), 100);
        assert!(q.take_waiter("a").is_none(), "a queued task goes first");
        assert_eq!(ids(q.pop("a", 1)), ["queued"]);

        let (worker, reply) = q.take_waiter("a").expect("a live waiter");
        assert_eq!(worker.as_deref(), Some("w1"), "the oldest live one; the closed one is skipped");
        assert!(!q.leave("a", &closed), "the closed one was dropped from the line");
        let task = RawValue::from_string("{\"taskId\":\"t\"}".into()).expect("json");
        assert!(reply.send(Some(task)).is_ok(), "the oldest poll still waits");
        let got = oldest_rx.try_recv().expect("sent").expect("a task");
        assert_eq!(got.get(), "{\"taskId\":\"t\"}");

        let (worker, reply) = q.take_waiter("a").expect("the second waiter");
        assert_eq!(worker.as_deref(), Some("w2"));
        assert!(!q.leave("a", &newest), "taken: it must wait for its task");
        drop(reply);
        assert!(q.take_waiter("a").is_none(), "nobody waits any more");
    }

    /// A queue polled once and never used again is forgotten; one with tasks, a waiting poll or
    /// a poll holding its notifier is kept.
    #[test]
    fn queues_nobody_uses_are_forgotten() {
        let q = TaskQueues::default();
        drop(q.notifier("polled_once"));
        let held = q.notifier("held");
        q.add(&item("busy", "t", 0, 0), 100);
        let (_waiter, _rx) = q.wait_for_hand_off("waited", None);
        assert_eq!(q.len(), 4);
        assert_eq!(q.forget_unused(), 1);
        assert_eq!(q.len(), 3);
        drop(held);
        assert_eq!(q.forget_unused(), 1, "its poll is over");
        assert_eq!(ids(q.pop("busy", 1)), ["t"]);
        assert_eq!(q.forget_unused(), 1, "emptied");
        assert_eq!(q.len(), 1, "the waiting poll's queue stays");
    }

    /// Poll records are bounded: past [`MAX_POLL_RECORDS`] queues the least recently polled
    /// tenth is forgotten, and records idle past the cut-off go.
    #[test]
    fn poll_records_are_bounded_and_expire() {
        let polls = PollTimes::default();
        for i in 0..MAX_POLL_RECORDS {
            polls.record(&format!("q{i}"), None, Some("w"), i as i64);
        }
        assert_eq!(polls.len(), MAX_POLL_RECORDS);
        polls.record("one:more", Some("d"), None, MAX_POLL_RECORDS as i64);
        assert!(polls.len() <= MAX_POLL_RECORDS - MAX_POLL_RECORDS / 10 + 1, "{}", polls.len());
        assert_eq!(polls.last("q0", None), None, "the oldest went first");
        assert_eq!(polls.last("one:more", Some("d")), Some(MAX_POLL_RECORDS as i64));
        assert_eq!(polls.last("more", Some("d:one")), None, "a type with a colon stays whole");
        let left = polls.len();
        assert_eq!(polls.forget_before(MAX_POLL_RECORDS as i64), left - 1);
        let kept = ((Some("d".to_owned()), "one:more".to_owned()), MAX_POLL_RECORDS as i64, None);
        assert_eq!(polls.all(), [kept]);
    }

    /// Finishing a task wakes a type's pollers only where something is ready to take.
    #[tokio::test]
    async fn a_finished_task_wakes_pollers_only_of_queues_with_ready_tasks() {
        let q = Arc::new(TaskQueues::default());
        let (empty, held) = (q.notifier("work"), q.notifier("d1:work"));
        let other = q.notifier("otherwork");
        q.insert(&item("d1:work", "held-back", 0, 0), 100, false);
        q.insert(&item("otherwork", "t", 0, 0), 100, false);
        let (mut on_empty, mut on_held, mut on_other) =
            (Box::pin(empty.notified()), Box::pin(held.notified()), Box::pin(other.notified()));
        on_empty.as_mut().enable();
        on_held.as_mut().enable();
        on_other.as_mut().enable();
        q.wake_task_type("work", false);
        assert!(futures::FutureExt::now_or_never(on_held.as_mut()).is_some(), "d1:work has a task ready");
        assert!(futures::FutureExt::now_or_never(on_empty.as_mut()).is_none(), "work has none");
        assert!(futures::FutureExt::now_or_never(on_other.as_mut()).is_none(), "otherwork is another type");
    }

    /// A slot freed for a task a limit held back tells the queue ready (other nodes' polls hear
    /// of it); a task that ends when nothing was held back tells nothing.
    #[test]
    fn a_slot_freed_for_a_held_task_tells_its_queue_ready() {
        let q = TaskQueues::default();
        let told = Arc::new(Mutex::new(Vec::new()));
        let sink = told.clone();
        q.on_ready(Box::new(move |queue| sink.lock().push(queue.to_owned())));
        q.insert(&item("d1:work", "held-back", 0, 0), 100, false);
        q.wake_task_type("work", false);
        assert!(told.lock().is_empty(), "nothing was held back");
        q.wake_task_type("work", true);
        assert_eq!(*told.lock(), ["d1:work"]);
    }
}

/// How long a queue's last poll is remembered once nobody polls it: a day.
pub const POLL_RECORD_TTL_MS: i64 = 24 * 3600 * 1000;
/// Queues whose last poll is remembered at most; past that, the least recently polled tenth is
/// forgotten.
pub const MAX_POLL_RECORDS: usize = 10_000;

/// When workers last polled each queue (Conductor's poll data), for choosing among a comma list
/// of task domains and for `/tasks/queue/polldata`. Kept by the leader in memory; it starts empty
/// under a new leader. Bounded: records idle for [`POLL_RECORD_TTL_MS`] are forgotten, and at
/// most [`MAX_POLL_RECORDS`] are kept.
/// Records are kept by domain and task type as polled, never parsed back from a queue name (a
/// task type may contain `:`, the domain separator).
#[derive(Default)]
pub struct PollTimes {
    last: Mutex<HashMap<PolledQueue, (i64, Option<String>)>>,
}

/// A queue as workers poll it: its domain, if any, and task type.
pub type PolledQueue = (Option<String>, String);

fn polled(task_type: &str, domain: Option<&str>) -> PolledQueue {
    (domain.filter(|d| !d.is_empty()).map(str::to_owned), task_type.to_owned())
}

impl PollTimes {
    /// Records a poll of `task_type` in `domain` by `worker` at `now`.
    pub fn record(&self, task_type: &str, domain: Option<&str>, worker: Option<&str>, now: i64) {
        let key = polled(task_type, domain);
        let mut last = self.last.lock();
        if !last.contains_key(&key) && last.len() >= MAX_POLL_RECORDS {
            let mut times: Vec<i64> = last.values().map(|(t, _)| *t).collect();
            let cut = MAX_POLL_RECORDS / 10;
            times.select_nth_unstable(cut);
            let cutoff = times[cut];
            last.retain(|_, (t, _)| *t > cutoff);
        }
        let entry = last.entry(key).or_insert((now, None));
        entry.0 = entry.0.max(now);
        if worker.is_some() {
            entry.1 = worker.map(str::to_owned);
        }
    }

    /// Forgets queues last polled before `cutoff`; returns how many.
    pub fn forget_before(&self, cutoff: i64) -> usize {
        let mut last = self.last.lock();
        let before = last.len();
        last.retain(|_, (t, _)| *t >= cutoff);
        before - last.len()
    }

    /// Queues whose last poll is remembered.
    pub fn len(&self) -> usize {
        self.last.lock().len()
    }

    /// No poll is remembered.
    pub fn is_empty(&self) -> bool {
        self.last.lock().is_empty()
    }

    /// When `task_type` was last polled in `domain`.
    pub fn last(&self, task_type: &str, domain: Option<&str>) -> Option<i64> {
        self.last.lock().get(&polled(task_type, domain)).map(|(t, _)| *t)
    }

    /// Every queue polled: domain and task type, last poll time, last worker.
    pub fn all(&self) -> Vec<(PolledQueue, i64, Option<String>)> {
        let mut out: Vec<_> = self.last.lock().iter().map(|(q, (t, w))| (q.clone(), *t, w.clone())).collect();
        out.sort();
        out
    }
}

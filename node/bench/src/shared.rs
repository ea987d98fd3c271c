//! The state of a run that the starters, the workers, the sampler and the report share: the
//! client and the nodes, the progress counters and the latencies recorded so far.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::args::BenchArgs;

/// What a run's tasks share.
pub(crate) struct Shared {
    /// The client every request goes through.
    pub(crate) client: reqwest::Client,
    /// `{url}/api` of each node.
    pub(crate) bases: Vec<String>,
    /// When a request to each node last failed to connect (wall ms).
    pub(crate) unreachable: Vec<AtomicI64>,
    /// The run's settings.
    pub(crate) args: BenchArgs,
    /// When the run began (after the definitions were registered).
    pub(crate) began: Instant,
    /// When the start of each workflow was sent.
    pub(crate) starts: Vec<Mutex<Option<Instant>>>,
    /// Worker tasks finished, per workflow.
    pub(crate) finished: Vec<AtomicUsize>,
    /// When the last update of each workflow was sent (wall clock, ms), for update → pollable.
    pub(crate) last_update: Vec<AtomicI64>,
    /// The ids of the workflows started, to verify at the end.
    pub(crate) ids: Mutex<Vec<String>>,
    /// Dispatch latency of every task received (ms).
    pub(crate) dispatch_ms: Mutex<Vec<f64>>,
    /// Dispatch of the tasks scheduled after the poll that received them was sent: seconds
    /// since the run began when each was received, and its latency.
    pub(crate) waiting_dispatch_ms: Mutex<Vec<(f64, f64)>>,
    /// For a task that follows another of its workflow: from that one's update being sent to
    /// this one being pollable (ms).
    pub(crate) pollable_ms: Mutex<Vec<f64>>,
    /// How long each start took (ms).
    pub(crate) start_ms: Mutex<Vec<f64>>,
    /// Seconds since the run began when each workflow completed, and its latency.
    pub(crate) workflow_ms: Mutex<Vec<(f64, f64)>>,
    /// Free places for workflows in flight (closed loop).
    pub(crate) in_flight: Semaphore,
    /// Workflows completed.
    pub(crate) completed: AtomicUsize,
    /// Worker tasks reported.
    pub(crate) tasks_done: AtomicUsize,
    /// Requests that failed and were retried.
    pub(crate) errors: AtomicUsize,
    /// Every workflow completed: the workers and the sampler stop.
    pub(crate) done: AtomicBool,
}

impl Shared {
    /// The state of a run that begins now, against the nodes at `bases`.
    pub(crate) fn new(client: reqwest::Client, bases: Vec<String>, args: BenchArgs) -> Shared {
        Shared {
            client,
            unreachable: bases.iter().map(|_| AtomicI64::new(0)).collect(),
            bases,
            began: Instant::now(),
            starts: (0..args.workflows).map(|_| Mutex::new(None)).collect(),
            finished: (0..args.workflows).map(|_| AtomicUsize::new(0)).collect(),
            last_update: (0..args.workflows).map(|_| AtomicI64::new(0)).collect(),
            ids: Mutex::new(Vec::with_capacity(args.workflows)),
            dispatch_ms: Mutex::new(Vec::with_capacity(args.workflows * args.tasks_per_workflow())),
            waiting_dispatch_ms: Mutex::new(Vec::new()),
            pollable_ms: Mutex::new(Vec::with_capacity(args.workflows * args.tasks_per_workflow())),
            start_ms: Mutex::new(Vec::with_capacity(args.workflows)),
            workflow_ms: Mutex::new(Vec::with_capacity(args.workflows)),
            in_flight: Semaphore::new(args.concurrency),
            completed: AtomicUsize::new(0),
            tasks_done: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            done: AtomicBool::new(false),
            args,
        }
    }

    /// The node a request goes to: spread by `n`, moved on by `attempt` after a failure, and
    /// past nodes that could not be reached in the last second.
    pub(crate) fn base(&self, n: usize, attempt: usize) -> &str {
        let len = self.bases.len();
        let now = wall_ms();
        let up = |i: usize| now - self.unreachable[i].load(Ordering::Relaxed) > 1000;
        let first = (n + attempt) % len;
        let pick = (0..len).map(|k| (first + k) % len).find(|&i| up(i)).unwrap_or(first);
        &self.bases[pick]
    }

    /// A request to `base` could not be sent: avoid that node for a second.
    pub(crate) fn unreachable(&self, base: &str) {
        if let Some(i) = self.bases.iter().position(|b| b == base) {
            self.unreachable[i].store(wall_ms(), Ordering::Relaxed);
        }
    }
}

/// The wall clock in ms since the Unix epoch, as the server's `scheduledTime`.
pub(crate) fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

//! Durable timers, fired by the leader.
//!
//! The `timers` rows are the truth; this is their in-memory heap, rebuilt at leadership and kept
//! current by the apply listener. A due timer becomes a command to its workflow's actor, which
//! decides whether it still matters (a timer whose task has moved on is stale and changes
//! nothing). The row disappears when the state no longer implies it, in the same write that
//! changes the state.
//!
//! At most [`MAX_FIRING`] timers are being fired at once: when a million timers come due
//! together (a cluster back after an outage), they wait their turn in the heap instead of
//! becoming a million tasks at once. A timer whose firing fails (a follow-up whose broker is
//! down) is tried again after 1 s, doubling to a minute while it keeps failing; it waits without
//! holding a firing slot, so failing follow-ups never hold up other timers.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use overture_core::rows::TimerItem;
use parking_lot::Mutex;
use tokio::sync::{Notify, watch};

use crate::error::Error;
use crate::names;

/// How many timers may be firing at once.
pub const MAX_FIRING: usize = 256;

/// The leader's timer heap.
#[derive(Default)]
pub struct Timers {
    set: Mutex<BTreeSet<TimerItem>>,
    changed: Notify,
    /// Timers whose firing failed, with how many times in a row; one disarmed meanwhile (its
    /// row deleted) is forgotten here and not tried again.
    failing: Mutex<HashMap<TimerItem, u32>>,
}

/// The first wait before a failed timer is fired again, doubled after each failure up to
/// [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(60);

impl Timers {
    /// Arms a timer.
    pub fn add(&self, timer: TimerItem) {
        let mut set = self.set.lock();
        let earliest = set.first().is_none_or(|first| timer < *first);
        set.insert(timer);
        drop(set);
        if earliest {
            self.changed.notify_one();
        }
    }

    /// Disarms a timer.
    pub fn remove(&self, timer: &TimerItem) {
        self.set.lock().remove(timer);
        self.failing.lock().remove(timer);
    }

    /// Armed timers.
    pub fn len(&self) -> usize {
        self.set.lock().len()
    }

    /// No timers armed.
    pub fn is_empty(&self) -> bool {
        self.set.lock().is_empty()
    }

    fn take_due(&self, now: i64) -> (Vec<TimerItem>, Option<i64>) {
        let mut set = self.set.lock();
        let mut due = Vec::new();
        while set.first().is_some_and(|t| t.fire_at <= now) && due.len() < 1024 {
            if let Some(t) = set.pop_first() {
                due.push(t);
            }
        }
        (due, set.first().map(|t| t.fire_at))
    }

    /// Fires due timers with `fire` until `stop` changes. `fire` answers whether the timer did
    /// anything; `false` for one not due yet by its workflow's clock arms it again.
    pub(crate) async fn run<F, Fut>(self: Arc<Self>, fire: F, mut stop: watch::Receiver<bool>)
    where
        F: Fn(TimerItem) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<bool, Error>> + Send + 'static,
    {
        let firing = Arc::new(tokio::sync::Semaphore::new(MAX_FIRING));
        loop {
            let (due, next) = self.take_due(crate::now_ms());
            for timer in due {
                let permit = tokio::select! {
                    permit = firing.clone().acquire_owned() => permit,
                    _ = stop.changed() => return,
                };
                let Ok(permit) = permit else { return };
                let (timers, stopped) = (self.clone(), stop.clone());
                let fired = fire(timer.clone());
                tokio::spawn(async move {
                    let fired = fired.await;
                    drop(permit);
                    settle(fired, timers, timer, &stopped).await;
                });
            }
            // Deadlines are wall-clock times and the sleep is not: a sleep of at most a second
            // keeps a forward jump of the wall clock from holding due timers back for longer.
            let wait = next.map_or(Duration::from_secs(1), |at| {
                Duration::from_millis((at - crate::now_ms()).clamp(0, 1_000) as u64)
            });
            if wait.is_zero() {
                tokio::task::yield_now().await;
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.changed.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }
}

/// How long a timer that failed `attempts` times in a row waits before it is fired again.
fn retry_wait(attempts: u32) -> Duration {
    RETRY_FIRST.saturating_mul(1 << attempts.saturating_sub(1).min(6)).min(RETRY_MAX)
}

/// What becomes of a fired timer: counted, armed again, or retried after an error.
async fn settle(fired: Result<bool, Error>, timers: Arc<Timers>, timer: TimerItem, stopped: &watch::Receiver<bool>) {
    let kind = timer.kind.name();
    if fired.is_ok() || matches!(fired, Err(Error::NotFound(_))) {
        timers.failing.lock().remove(&timer);
    }
    match fired {
        Ok(true) => metrics::counter!(names::TIMER_FIRED, "kind" => kind).increment(1),
        // Not due by the actor's clock: wait for it again. (A stale timer's row is already gone.)
        Ok(false) if crate::now_ms() < timer.fire_at => timers.add(timer),
        Ok(false) | Err(Error::NotFound(_)) => {}
        // Leadership is ending; the next leader fires it.
        Err(Error::Unavailable(_)) if *stopped.borrow() => {}
        Err(e) => {
            metrics::counter!(names::TIMER_FAILED, "kind" => kind).increment(1);
            let attempts = {
                let mut failing = timers.failing.lock();
                let n = failing.entry(timer.clone()).or_insert(0);
                *n += 1;
                *n
            };
            let wait = retry_wait(attempts);
            // The first failure and every tenth after it: a broker down for an hour is a line a
            // minute per follow-up, not one a second.
            if attempts % 10 == 1 {
                tracing::warn!(workflow_id = %timer.workflow_id, kind, attempts, error = %e, retry_in_ms = wait.as_millis() as u64, "timer failed; trying again");
            } else {
                tracing::debug!(workflow_id = %timer.workflow_id, kind, attempts, error = %e, "timer failed again");
            }
            tokio::time::sleep(wait).await;
            if timers.failing.lock().contains_key(&timer) {
                timers.add(timer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_timers_wait_longer_each_time_up_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| retry_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}

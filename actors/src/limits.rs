//! Task definitions' `concurrentExecLimit` and `rateLimitPerFrequency` /
//! `rateLimitFrequencyInSeconds`, enforced when tasks are handed to workers.
//!
//! On one group only the leader hands out tasks, so its counts are the cluster's; with
//! partitions each partition's leader asks the metadata leader for a permit instead
//! ([`crate::permits`]) and keeps these counts to know when to wake its polls and what to
//! report. The IN_PROGRESS count comes
//! from the `running` rows (derived from workflow state, scanned when leadership starts and kept
//! current by the apply listener), plus the hand-offs under way that have not committed yet. The
//! rate window is kept in memory and starts empty under a new leader. A task that may not be
//! handed out stays queued; other task types are not held up.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;

/// The limits of one task definition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TaskLimits {
    /// At most this many IN_PROGRESS at once; 0 means no limit.
    pub concurrent: usize,
    /// At most this many handed out per window; 0 means no limit.
    pub per_window: usize,
    /// The window, in millis.
    pub window_ms: i64,
}

impl TaskLimits {
    pub fn of(def: &overture_core::dsl::TaskDef) -> TaskLimits {
        let rate = def.rate_limit_per_frequency.unwrap_or(0).max(0) as usize;
        let seconds = i64::from(def.rate_limit_frequency_in_seconds.unwrap_or(1).max(1));
        TaskLimits {
            concurrent: def.concurrent_exec_limit.unwrap_or(0).max(0) as usize,
            per_window: rate,
            window_ms: seconds * 1000,
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.concurrent == 0 && self.per_window == 0
    }
}

/// Whether a task may be handed out now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Yes; the slot is reserved until [`Limits::settle`].
    Admit,
    /// Not while this many run; try again when one finishes.
    Busy,
    /// Not before this time (epoch millis).
    NotBefore(i64),
    /// No answer yet (the cluster's count is being gathered, or its keeper did not answer):
    /// ask again at this time (epoch millis).
    Undecided(i64),
}

#[derive(Default)]
struct Counts {
    running: usize,
    reserved: usize,
    handed_out: VecDeque<i64>,
    /// A task was refused for want of a slot since a running one last ended.
    held: bool,
}

/// How long a task definition's limits are reused before they are read again, so a poll does
/// not read and parse the definition each time; a changed limit applies within this long.
const LIMITS_TTL_MS: i64 = 1_000;

/// Counts per task definition name.
#[derive(Default)]
pub(crate) struct Limits {
    counts: Mutex<HashMap<String, Counts>>,
    known: Mutex<HashMap<String, (TaskLimits, i64)>>,
}

impl Limits {
    /// The limits of task definition `def` as `read` stores them (none for a definition that
    /// does not exist), read at most once per [`LIMITS_TTL_MS`].
    pub fn of(&self, def: &str, now: i64, read: &overture_raft::ReadView) -> Result<TaskLimits, std::io::Error> {
        if let Some((limits, at)) = self.known.lock().get(def)
            && now - at < LIMITS_TTL_MS
        {
            return Ok(*limits);
        }
        let limits = read.task_def(def)?.map(|d| TaskLimits::of(&d)).unwrap_or_default();
        self.known.lock().insert(def.to_owned(), (limits, now));
        Ok(limits)
    }

    pub fn running_added(&self, def: &str) {
        self.counts.lock().entry(def.to_owned()).or_default().running += 1;
    }

    /// A task of `def` left IN_PROGRESS. Answers whether a task was held back for want of a
    /// slot since one last ended: one may be handed out now.
    pub fn running_removed(&self, def: &str) -> bool {
        match self.counts.lock().get_mut(def) {
            Some(c) => {
                c.running = c.running.saturating_sub(1);
                std::mem::take(&mut c.held)
            }
            None => false,
        }
    }

    /// A task of `def` was refused for want of a slot elsewhere (the cluster's count): a task
    /// of `def` ending here wakes the polls, as if this node had refused it.
    pub fn hold(&self, def: &str) {
        self.counts.lock().entry(def.to_owned()).or_default().held = true;
    }

    /// The definitions with tasks IN_PROGRESS.
    pub fn running_defs(&self) -> Vec<String> {
        self.counts.lock().iter().filter(|(_, c)| c.running > 0).map(|(def, _)| def.clone()).collect()
    }

    /// Whether `def` had a concurrency limit when its limits were last read.
    pub fn known_concurrency_limited(&self, def: &str) -> bool {
        self.known.lock().get(def).is_some_and(|(limits, _)| limits.concurrent > 0)
    }

    /// Asks for one hand-off of a task of `def` at `now`.
    pub fn admit(&self, def: &str, limits: TaskLimits, now: i64) -> Admission {
        if limits.is_unlimited() {
            return Admission::Admit;
        }
        let mut counts = self.counts.lock();
        let c = counts.entry(def.to_owned()).or_default();
        if limits.concurrent > 0 && c.running + c.reserved >= limits.concurrent {
            c.held = true;
            return Admission::Busy;
        }
        if limits.per_window > 0 {
            while c.handed_out.front().is_some_and(|&t| t <= now - limits.window_ms) {
                c.handed_out.pop_front();
            }
            if c.handed_out.len() >= limits.per_window {
                let oldest = c.handed_out.front().copied().unwrap_or(now);
                return Admission::NotBefore(oldest + limits.window_ms);
            }
            c.handed_out.push_back(now);
        }
        c.reserved += 1;
        Admission::Admit
    }

    /// Ends a reservation: the hand-off committed (its running row now counts) or failed.
    pub fn settle(&self, def: &str, limits: TaskLimits) {
        if limits.is_unlimited() {
            return;
        }
        if let Some(c) = self.counts.lock().get_mut(def) {
            c.reserved = c.reserved.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_counts_running_and_reserved_tasks() {
        let l = Limits::default();
        let lim = TaskLimits { concurrent: 2, per_window: 0, window_ms: 1000 };
        assert_eq!(l.admit("t", lim, 0), Admission::Admit);
        l.running_added("t");
        l.settle("t", lim);
        assert_eq!(l.admit("t", lim, 0), Admission::Admit);
        assert_eq!(l.admit("t", lim, 0), Admission::Busy, "one running, one being handed out");
        l.settle("t", lim);
        assert_eq!(l.admit("t", lim, 0), Admission::Admit);
        assert!(l.running_removed("t"), "a task was held back since one last ended");
        l.running_added("t");
        assert!(!l.running_removed("t"), "none since");
        assert_eq!(l.admit("other", lim, 0), Admission::Admit, "other definitions are not held up");
    }

    #[test]
    fn the_rate_window_slides() {
        let l = Limits::default();
        let lim = TaskLimits { concurrent: 0, per_window: 2, window_ms: 10_000 };
        assert_eq!(l.admit("t", lim, 1_000), Admission::Admit);
        assert_eq!(l.admit("t", lim, 2_000), Admission::Admit);
        assert_eq!(l.admit("t", lim, 3_000), Admission::NotBefore(11_000));
        assert_eq!(l.admit("t", lim, 11_000), Admission::Admit);
    }
}

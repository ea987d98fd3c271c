//! Task definitions' limits across a partitioned cluster.
//!
//! A task's partition leader hands it out, but `concurrentExecLimit` and the rate limit count
//! over every partition. The metadata group's leader keeps the count ([`Permits`]): a partition
//! leader asks it for a permit before it hands out a task of a limited definition, and every
//! node tells it, about once a second and at once when such a task ends, which tasks of limited
//! definitions are IN_PROGRESS in the partitions it leads ([`RunningReport`]). The count of a
//! definition is the union of the running tasks the partitions last reported and the permits
//! granted since that no report shows yet.
//!
//! The running rows are the truth; the table is rebuilt from them. A new metadata leader grants
//! nothing until every partition has reported to it (or [`GRACE_MS`] has passed, so a partition
//! without a leader does not stop the others for good), and a report replaces what its
//! partition reported before, unless it comes from an older term of that partition. A permit
//! whose task ends, or whose hand-off fails, is returned with a report at once; one lost with
//! its node counts until [`PENDING_MS`] has passed. The rate window lives in memory and starts empty under a new
//! metadata leader, as on one group.

use std::collections::{HashMap, HashSet, VecDeque};

use overture_raft::GroupId;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::limits::{Admission, TaskLimits};

/// How long a new metadata leader waits at most for every partition to report before it grants.
pub(crate) const GRACE_MS: i64 = 10_000;
/// How long a granted permit counts before a report of its partition must show its task.
pub(crate) const PENDING_MS: i64 = 10_000;
/// When a permit that could not be decided yet is asked for again.
pub(crate) const RETRY_MS: i64 = 250;
/// A definition refused a permit this lately is named in report answers once a slot is free,
/// so every node wakes the polls it held back.
const WAKE_WITHIN_MS: i64 = 5_000;

/// The IN_PROGRESS tasks of limited definitions in one partition: (definition, task ids).
pub(crate) type Running = Vec<(String, Vec<String>)>;

/// What a node tells the metadata leader about the partitions it leads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunningReport {
    /// Per partition: the group, its leader's term, and its IN_PROGRESS tasks of limited
    /// definitions as (definition, task ids).
    pub groups: Vec<(GroupId, u64, Running)>,
    /// Permits given back: their tasks ended (perhaps before any report showed them running),
    /// or their hand-offs did not happen.
    pub returned: Vec<String>,
}

/// A permit asked of the metadata leader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PermitAsk {
    pub def: String,
    pub task_id: String,
    /// The definition's limits as the asking node reads them.
    pub concurrent: u32,
    pub per_window: u32,
    pub window_ms: i64,
}

impl PermitAsk {
    pub fn limits(&self) -> TaskLimits {
        TaskLimits {
            concurrent: self.concurrent as usize,
            per_window: self.per_window as usize,
            window_ms: self.window_ms,
        }
    }
}

/// The answer to a [`PermitAsk`]: 0 granted, 1 busy, 2 not before the epoch millis given (the
/// rate window), 3 undecided (ask again at the epoch millis given).
pub(crate) type PermitAnswer = (u8, i64);

pub(crate) fn encode_admission(a: Admission) -> PermitAnswer {
    match a {
        Admission::Admit => (0, 0),
        Admission::Busy => (1, 0),
        Admission::NotBefore(at) => (2, at),
        Admission::Undecided(at) => (3, at),
    }
}

pub(crate) fn decode_admission((kind, at): PermitAnswer) -> Admission {
    match kind {
        0 => Admission::Admit,
        1 => Admission::Busy,
        2 => Admission::NotBefore(at),
        _ => Admission::Undecided(at),
    }
}

/// One partition's last report.
struct Reported {
    term: u64,
    running: HashMap<String, HashSet<String>>,
}

#[derive(Default)]
struct Table {
    reported: HashMap<GroupId, Reported>,
    /// Granted permits no report shows yet: task id → (definition, counts until).
    pending: HashMap<String, (String, i64)>,
    /// Hand-offs in the rate window, by definition.
    windows: HashMap<String, VecDeque<i64>>,
    /// Definitions refused a permit for want of a slot: their limits and when.
    refused: HashMap<String, (TaskLimits, i64)>,
    /// Every partition has reported since this leadership began.
    covered: bool,
}

impl Table {
    /// The tasks of `def` that count: running as reported, or granted a permit since.
    fn counted(&self, def: &str) -> HashSet<&str> {
        let mut ids: HashSet<&str> = HashSet::new();
        for r in self.reported.values() {
            ids.extend(r.running.get(def).into_iter().flatten().map(String::as_str));
        }
        ids.extend(self.pending.iter().filter(|(_, (d, _))| d == def).map(|(id, _)| id.as_str()));
        ids
    }
}

/// The cluster's count of limited tasks, kept by the metadata group's leader for its term.
pub(crate) struct Permits {
    partitions: u16,
    since: i64,
    table: Mutex<Table>,
}

impl Permits {
    pub fn new(partitions: u16, now: i64) -> Permits {
        Permits { partitions, since: now, table: Mutex::default() }
    }

    /// Takes a node's report of the partitions it leads. Answers the definitions refused a
    /// permit lately that have a free slot now: the node wakes their polls.
    pub fn report(&self, report: RunningReport, now: i64) -> Vec<String> {
        let mut t = self.table.lock();
        for task_id in &report.returned {
            t.pending.remove(task_id);
        }
        for (group, term, running) in report.groups {
            if t.reported.get(&group).is_some_and(|r| r.term > term) {
                continue;
            }
            let running: HashMap<String, HashSet<String>> =
                running.into_iter().map(|(def, ids)| (def, ids.into_iter().collect())).collect();
            for ids in running.values() {
                for id in ids {
                    t.pending.remove(id);
                }
            }
            t.reported.insert(group, Reported { term, running });
        }
        if !t.covered {
            let partitions = self.partitions;
            t.covered = (1..=partitions).all(|g| t.reported.contains_key(&g));
        }
        t.pending.retain(|_, (_, until)| *until > now);
        t.refused.retain(|_, (_, at)| now - *at < WAKE_WITHIN_MS);
        t.refused
            .iter()
            .filter(|(def, (limits, _))| t.counted(def).len() < limits.concurrent)
            .map(|(def, _)| def.clone())
            .collect()
    }

    /// Asks for a permit to hand out `task_id` of `def` at `now`.
    pub fn acquire(&self, def: &str, task_id: &str, limits: TaskLimits, now: i64) -> Admission {
        if limits.is_unlimited() {
            return Admission::Admit;
        }
        let mut t = self.table.lock();
        if !t.covered && now - self.since < GRACE_MS {
            return Admission::Undecided(now + RETRY_MS);
        }
        t.pending.retain(|_, (_, until)| *until > now);
        if t.pending.contains_key(task_id) {
            return Admission::Admit;
        }
        if limits.concurrent > 0 {
            let counted = t.counted(def);
            if counted.contains(task_id) {
                return Admission::Admit;
            }
            if counted.len() >= limits.concurrent {
                t.refused.insert(def.to_owned(), (limits, now));
                return Admission::Busy;
            }
        }
        if limits.per_window > 0 {
            let window = t.windows.entry(def.to_owned()).or_default();
            while window.front().is_some_and(|&at| at <= now - limits.window_ms) {
                window.pop_front();
            }
            if window.len() >= limits.per_window {
                let oldest = window.front().copied().unwrap_or(now);
                return Admission::NotBefore(oldest + limits.window_ms);
            }
            window.push_back(now);
        }
        if limits.concurrent > 0 {
            t.pending.insert(task_id.to_owned(), (def.to_owned(), now + PENDING_MS));
        }
        Admission::Admit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Permits {
        /// A report whose time does not matter to the test (it expires nothing granted).
        fn report_any_time(&self, report: RunningReport) -> Vec<String> {
            self.report(report, 0)
        }
    }

    fn one_at_a_time() -> TaskLimits {
        TaskLimits { concurrent: 1, per_window: 0, window_ms: 1000 }
    }

    fn report(group: GroupId, term: u64, running: &[(&str, &[&str])]) -> RunningReport {
        let running = running
            .iter()
            .map(|(def, ids)| ((*def).to_owned(), ids.iter().map(|id| (*id).to_owned()).collect()))
            .collect();
        RunningReport { groups: vec![(group, term, running)], returned: Vec::new() }
    }

    #[test]
    fn nothing_is_granted_until_every_partition_has_reported_or_the_grace_is_over() {
        let p = Permits::new(2, 0);
        assert_eq!(p.acquire("t", "a", one_at_a_time(), 10), Admission::Undecided(10 + RETRY_MS));
        p.report_any_time(report(1, 1, &[]));
        assert_eq!(p.acquire("t", "a", one_at_a_time(), 20), Admission::Undecided(20 + RETRY_MS));
        // Partition 2 runs one already: reported, it counts.
        p.report_any_time(report(2, 1, &[("t", &["running"])]));
        assert_eq!(p.acquire("t", "a", one_at_a_time(), 30), Admission::Busy);
        // A partition that never reports holds the others back only for the grace.
        let q = Permits::new(2, 0);
        q.report_any_time(report(1, 1, &[]));
        assert_eq!(q.acquire("t", "a", one_at_a_time(), GRACE_MS), Admission::Admit);
        assert_eq!(q.acquire("u", "b", TaskLimits::default(), 0), Admission::Admit, "unlimited: always");
    }

    #[test]
    fn the_limit_counts_every_partition_and_the_permits_no_report_shows_yet() {
        let p = Permits::new(3, 0);
        for g in 1..=3 {
            p.report_any_time(report(g, 1, &[]));
        }
        let two = TaskLimits { concurrent: 2, per_window: 0, window_ms: 1000 };
        assert_eq!(p.acquire("t", "a", two, 1), Admission::Admit);
        assert_eq!(p.acquire("t", "a", two, 2), Admission::Admit, "asked again: the same permit");
        // Partition 3 started one of its own before this leader knew (it counts from its report).
        p.report_any_time(report(3, 1, &[("t", &["c"])]));
        assert_eq!(p.acquire("t", "b", two, 3), Admission::Busy, "a (granted) and c (running)");
        assert_eq!(p.acquire("other", "x", two, 3), Admission::Admit, "other definitions are not held up");
        // a runs in partition 1; c ends in partition 3: one slot frees.
        p.report_any_time(report(1, 1, &[("t", &["a"])]));
        p.report_any_time(report(3, 1, &[]));
        assert_eq!(p.acquire("t", "b", two, 4), Admission::Admit);
        assert_eq!(p.acquire("t", "d", two, 5), Admission::Busy);
        // b's hand-off failed: its permit is returned.
        p.report(RunningReport { groups: Vec::new(), returned: vec!["b".into()] }, 5);
        assert_eq!(p.acquire("t", "d", two, 6), Admission::Admit);
        // A permit whose partition never shows its task stops counting after a while.
        assert_eq!(p.acquire("t", "e", two, 7), Admission::Busy);
        assert_eq!(p.acquire("t", "e", two, 7 + PENDING_MS), Admission::Admit);
    }

    #[test]
    fn a_report_that_frees_a_slot_someone_was_refused_names_its_definition() {
        let p = Permits::new(1, 0);
        assert!(p.report(report(1, 1, &[("t", &["a"])]), 0).is_empty());
        assert_eq!(p.acquire("t", "b", one_at_a_time(), 10), Admission::Busy);
        assert!(p.report(report(1, 1, &[("t", &["a"])]), 20).is_empty(), "still full");
        assert_eq!(p.report(report(1, 1, &[]), 30), ["t"], "a ended: wake the polls of t");
        assert!(p.report(report(1, 1, &[]), 30 + WAKE_WITHIN_MS).is_empty(), "refused long ago");
    }

    #[test]
    fn a_report_from_an_older_term_of_a_partition_changes_nothing() {
        let p = Permits::new(1, 0);
        p.report_any_time(report(1, 5, &[("t", &["a"])]));
        p.report_any_time(report(1, 4, &[]));
        assert_eq!(p.acquire("t", "b", one_at_a_time(), 1), Admission::Busy);
        p.report_any_time(report(1, 6, &[]));
        assert_eq!(p.acquire("t", "b", one_at_a_time(), 2), Admission::Admit);
    }

    #[test]
    fn the_rate_window_counts_hand_offs_of_every_partition() {
        let p = Permits::new(2, 0);
        p.report_any_time(report(1, 1, &[]));
        p.report_any_time(report(2, 1, &[]));
        let two_a_second = TaskLimits { concurrent: 0, per_window: 2, window_ms: 1000 };
        assert_eq!(p.acquire("t", "a", two_a_second, 100), Admission::Admit);
        assert_eq!(p.acquire("t", "b", two_a_second, 200), Admission::Admit);
        assert_eq!(p.acquire("t", "c", two_a_second, 300), Admission::NotBefore(1100));
        assert_eq!(p.acquire("t", "c", two_a_second, 1100), Admission::Admit);
    }

    #[test]
    fn answers_keep_their_meaning_on_the_wire() {
        for a in [Admission::Admit, Admission::Busy, Admission::NotBefore(1_700_000_000_000), Admission::Undecided(7)] {
            assert_eq!(decode_admission(encode_admission(a)), a);
        }
    }
}

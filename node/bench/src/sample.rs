//! What the run looks like once a second: its progress, the machine's CPU time (from `/proc/stat`)
//! and each node's figures.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::shared::Shared;
use crate::stats::{NodeStats, node_stats};

/// One sample of the run's progress, taken once a second.
pub(crate) struct Sample {
    /// Seconds since the run began.
    pub(crate) at: f64,
    /// Worker tasks reported so far.
    pub(crate) tasks: usize,
    /// Workflows completed so far.
    pub(crate) workflows: usize,
    /// The whole machine's CPU time so far (where the system reports it).
    pub(crate) cpu: Option<MachineCpu>,
    /// Each node's figures so far (none for a node that did not answer).
    pub(crate) nodes: Vec<Option<NodeStats>>,
}

/// The machine's CPU time since boot, in clock ticks, from `/proc/stat` (Linux): all of it, the
/// part spent idle (or waiting for I/O), and the part the hypervisor gave to other guests while
/// this one had work ("steal"). On a shared virtual machine stolen time is the noise a run
/// cannot see from inside its own processes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct MachineCpu {
    total: u64,
    idle: u64,
    stolen: u64,
}

impl MachineCpu {
    /// The machine's CPU time now; none where `/proc/stat` cannot be read.
    fn read() -> Option<MachineCpu> {
        MachineCpu::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal ...`.
    fn parse(stat: &str) -> Option<MachineCpu> {
        let mut fields = stat.lines().next()?.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
        // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
        let counted = &ticks[..ticks.len().min(8)];
        Some(MachineCpu {
            total: counted.iter().sum(),
            idle: counted.get(3)? + counted.get(4).copied().unwrap_or(0),
            stolen: counted.get(7).copied().unwrap_or(0),
        })
    }

    /// Shares of the CPU time between two readings that was busy and that was stolen.
    pub(crate) fn shares(before: MachineCpu, after: MachineCpu) -> Option<(f64, f64)> {
        let total = after.total.checked_sub(before.total).filter(|&t| t > 0)? as f64;
        let idle = after.idle.saturating_sub(before.idle) as f64;
        let stolen = after.stolen.saturating_sub(before.stolen) as f64;
        Some((1.0 - idle / total, stolen / total))
    }
}

/// Once a second until the run ends: tasks finished so far, workflows completed so far, the
/// machine's CPU time and each node's figures (one `/metrics` request a node a second).
pub(crate) async fn sample(s: Arc<Shared>) -> Vec<Sample> {
    let urls = s.args.urls();
    let take = async |s: &Shared| Sample {
        at: s.began.elapsed().as_secs_f64(),
        tasks: s.tasks_done.load(Ordering::Relaxed),
        workflows: s.completed.load(Ordering::Relaxed),
        cpu: MachineCpu::read(),
        nodes: node_stats(&s.client, &urls).await,
    };
    let mut out = vec![Sample { at: 0.0, ..take(&s).await }];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !s.done.load(Ordering::Acquire) {
        tick.tick().await;
        out.push(take(&s).await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_cpu_is_read_from_the_first_line_of_proc_stat() {
        let stat = "cpu  5202086 163400 1076137 5016736 223714 0 120159 6586 40 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let cpu = MachineCpu::parse(stat).expect("a cpu line");
        // guest time (40) is already part of user time, so it is not counted twice.
        assert_eq!(
            cpu,
            MachineCpu {
                total: 5202086 + 163400 + 1076137 + 5016736 + 223714 + 120159 + 6586,
                idle: 5016736 + 223714,
                stolen: 6586,
            }
        );
        // Older kernels stop before steal.
        let old = MachineCpu::parse("cpu 10 0 10 80\n").expect("four fields");
        assert_eq!(old, MachineCpu { total: 100, idle: 80, stolen: 0 });
        for bad in ["", "intr 1 2 3\n", "cpu 1 2 x 4\n", "cpu 1 2\n"] {
            assert_eq!(MachineCpu::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn machine_shares_are_of_the_time_between_two_readings() {
        let before = MachineCpu { total: 1000, idle: 400, stolen: 10 };
        let after = MachineCpu { total: 1200, idle: 450, stolen: 30 };
        assert_eq!(MachineCpu::shares(before, after), Some((0.75, 0.1)));
        // No time passed (or the counters went back): no shares rather than a division by zero.
        assert_eq!(MachineCpu::shares(after, after), None);
        assert_eq!(MachineCpu::shares(after, before), None);
    }
}

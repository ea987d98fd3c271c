//! The engine's side of [`crate::permits`]: a partition leader's poll asks the metadata group's
//! leader for a permit ([`paths::LIMITS_PERMIT`] when that is another node), and every node
//! reports the IN_PROGRESS tasks of limited definitions in the partitions it leads
//! ([`paths::LIMITS_REPORT`]) about once a second, and at once when one of them ends, with its
//! permit returned (a task may end before any report showed it running). The answer to a
//! report names the definitions that have a slot free for a task refused lately;
//! the node wakes those queues in its partitions, which tells other nodes' long polls too.

use std::sync::{Arc, Weak};
use std::time::Duration;

use overture_raft::GroupId;
use overture_raft::codec::{decode_message, encode_message};
use overture_raft::network::paths;
use tokio::sync::Notify;

use super::Inner;
use crate::error::Error;
use crate::leader::Leader;
use crate::limits::Admission;
use crate::names;
use crate::permits::{PermitAnswer, PermitAsk, RETRY_MS, Running, RunningReport, decode_admission, encode_admission};

/// How often a node reports when nothing ends.
const REPORT_EVERY: Duration = Duration::from_secs(1);
/// The least time between two reports: many ends at once make one report.
const REPORT_GAP: Duration = Duration::from_millis(20);
/// How long a permit or a report may take to be answered.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this many permits wait to be returned while the metadata leader cannot be reached;
/// older ones are dropped (the metadata leader stops counting them after a while anyway).
const RETURNED_MAX: usize = 10_000;

impl Inner {
    /// A permit of the metadata leader, here or on the node that leads the metadata group.
    pub(super) async fn ask_permit(&self, ask: PermitAsk) -> Admission {
        let now = crate::now_ms();
        let answer = match self.leader_of(0) {
            Ok(leader) => grant(&leader, &ask, now),
            Err(Error::Elsewhere { node, address, .. }) => {
                let answer: Result<PermitAnswer, String> =
                    self.groups.ask(node, &address, paths::LIMITS_PERMIT, &ask, ASK_TIMEOUT).await;
                match answer {
                    Ok(answer) => decode_admission(answer),
                    Err(why) => {
                        tracing::debug!(
                            node,
                            why,
                            task_id = ask.task_id,
                            "the metadata leader did not answer a permit"
                        );
                        Admission::Undecided(now + RETRY_MS)
                    }
                }
            }
            Err(_) => Admission::Undecided(now + RETRY_MS),
        };
        let label = match answer {
            Admission::Admit => "granted",
            Admission::Busy => "busy",
            Admission::NotBefore(_) => "rate_limited",
            Admission::Undecided(_) => "undecided",
        };
        metrics::counter!(names::TASK_PERMITS, "answer" => label).increment(1);
        answer
    }

    /// Queues a permit to return with the next report (its task ended, or its hand-off did not
    /// happen), and reports soon.
    pub(super) fn give_back_permit(&self, task_id: String) {
        {
            let mut returned = self.permits_returned.lock();
            if returned.len() >= RETURNED_MAX {
                returned.remove(0);
            }
            returned.push(task_id);
        }
        self.report_now.notify_one();
    }

    /// Reports the limited tasks running in the partitions this node leads, with the permits
    /// it returns; wakes the queues the answer names.
    async fn report_running(&self) {
        let now = crate::now_ms();
        let mut report = RunningReport::default();
        let mut led: Vec<Arc<Leader>> = Vec::new();
        for group in 1..self.leaders.len() as GroupId {
            let Ok(leader) = self.leader_of(group) else { continue };
            match limited_running(&leader, now) {
                Ok(running) => report.groups.push((group, leader.term(), running)),
                Err(e) => tracing::warn!(group, error = %e, "cannot read the running tasks of limited definitions"),
            }
            led.push(leader);
        }
        report.returned = std::mem::take(&mut *self.permits_returned.lock());
        if report.groups.is_empty() && report.returned.is_empty() {
            return;
        }
        let wake = match self.leader_of(0) {
            Ok(leader) => leader.permits.as_ref().map(|p| p.report(report, now)).unwrap_or_default(),
            Err(Error::Elsewhere { node, address, .. }) => {
                let answer: Result<Vec<String>, String> =
                    self.groups.ask(node, &address, paths::LIMITS_REPORT, &report, ASK_TIMEOUT).await;
                match answer {
                    Ok(wake) => wake,
                    Err(why) => {
                        tracing::debug!(node, why, "the metadata leader did not take this node's running report");
                        return;
                    }
                }
            }
            Err(_) => return,
        };
        for def in &wake {
            for leader in &led {
                leader.host.queues.wake_task_type(def, true);
            }
        }
    }
}

/// The metadata leader's answer, on this node.
fn grant(leader: &Leader, ask: &PermitAsk, now: i64) -> Admission {
    match &leader.permits {
        Some(permits) => permits.acquire(&ask.def, &ask.task_id, ask.limits(), now),
        None => Admission::Undecided(now + RETRY_MS),
    }
}

/// The IN_PROGRESS tasks of concurrency-limited definitions in `leader`'s partition.
fn limited_running(leader: &Leader, now: i64) -> Result<Running, Error> {
    let (host, read) = (&leader.host, leader.workflows.read());
    let mut out = Vec::new();
    for def in host.limits.running_defs() {
        let limits = host.limits.of(&def, now, read)?;
        if limits.concurrent > 0 {
            let ids = read.running_of(&def)?.into_iter().map(|r| r.task_id).collect();
            out.push((def, ids));
        }
    }
    Ok(out)
}

/// Reports every [`REPORT_EVERY`], and soon after [`Inner::report_now`] is notified, until the
/// engine is dropped.
pub(super) async fn report_loop(engine: Weak<Inner>, now: Arc<Notify>) {
    loop {
        let notified = now.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let Some(inner) = engine.upgrade() else { return };
            inner.report_running().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(REPORT_EVERY) => {}
            _ = &mut notified => {}
        }
        tokio::time::sleep(REPORT_GAP).await;
    }
}

/// Serves a permit another node asks of this one, the metadata leader.
pub(super) fn serve_permit(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let now = crate::now_ms();
    let answer: Result<PermitAnswer, String> = match decode_message::<PermitAsk>(bytes) {
        Err(e) => Err(format!("a permit ask that does not decode: {e}")),
        Ok(ask) => Ok(encode_admission(match inner.leader_of(0) {
            Ok(leader) => grant(&leader, &ask, now),
            Err(_) => Admission::Undecided(now + RETRY_MS),
        })),
    };
    encode_message(&answer)
}

/// Serves another node's running report; answers the definitions whose polls to wake.
pub(super) fn serve_report(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let answer: Result<Vec<String>, String> = match decode_message::<RunningReport>(bytes) {
        Err(e) => Err(format!("a running report that does not decode: {e}")),
        Ok(report) => match inner.leader_of(0).ok().and_then(|l| l.permits.clone()) {
            Some(permits) => Ok(permits.report(report, crate::now_ms())),
            None => Err("this node does not lead the metadata group".to_owned()),
        },
    };
    encode_message(&answer)
}

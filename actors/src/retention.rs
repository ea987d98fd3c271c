//! Retention: the leader purges ended executions (COMPLETED, FAILED, TIMED_OUT, TERMINATED)
//! once they have been over for their retention period — the definition's `retentionSeconds`,
//! else the node's default — in batches proposed through the log, so every replica deletes the
//! same executions and disk use stays flat under a steady load.
//!
//! Each purged id carries the end time it was chosen for; the state machine deletes it only if
//! it is still ended by then, so a workflow restarted or rerun between the sweep and the commit
//! stays.

use std::collections::HashMap;
use std::time::Duration;

use overture_core::WorkflowId;
use overture_raft::{ReadView, Replica, Request, Response};
use tokio::sync::watch;

use crate::error::Error;
use crate::names;

/// How long ended executions are kept, and how often to look.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Keep ended executions this long unless their definition says otherwise; zero keeps them
    /// forever.
    pub default: Duration,
    /// Time between sweeps.
    pub sweep_every: Duration,
}

impl Default for Retention {
    /// Ended executions are kept, as Conductor keeps them (a definition's `retentionSeconds`
    /// still purges its own); swept every minute.
    fn default() -> Self {
        Retention { default: Duration::ZERO, sweep_every: Duration::from_secs(60) }
    }
}

/// Executions proposed for purging in one entry.
const BATCH: usize = 256;
/// Ended executions one sweep looks at, at most.
const SCAN_LIMIT: usize = 20_000;

/// Runs the sweeps while this leadership lasts.
pub(crate) fn spawn(replica: Replica, retention: Retention, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(retention.sweep_every.max(Duration::from_millis(100))) => {}
                _ = stop.changed() => return,
            }
            match sweep(&replica, retention, crate::now_ms()).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "retention purged ended workflows"),
                Err(e) => tracing::warn!(error = %e, "retention sweep failed; the next one retries"),
            }
        }
    });
}

/// One sweep: finds expired executions and purges them. Answers how many were deleted.
pub(crate) async fn sweep(replica: &Replica, retention: Retention, now: i64) -> Result<u64, Error> {
    let read = replica.read().clone();
    let expired = tokio::task::spawn_blocking(move || expired(&read, retention.default, now))
        .await
        .map_err(|e| Error::Internal(format!("retention scan: {e}")))??;
    let mut purged = 0;
    for batch in expired.chunks(BATCH) {
        match replica.propose(Request::PurgeWorkflows { workflows: batch.to_vec() }).await? {
            Response::Purged { count } => purged += count,
            other => return Err(Error::Internal(format!("unexpected reply to a purge: {other}"))),
        }
    }
    metrics::counter!(names::WORKFLOWS_PURGED).increment(purged);
    Ok(purged)
}

/// Ended executions past their retention, each with the latest end time that still makes it so.
fn expired(read: &ReadView, default: Duration, now: i64) -> Result<Vec<(WorkflowId, i64)>, Error> {
    let default_ms = default.as_millis() as i64;
    // Retention by definition (name, version), where one is set.
    let mut by_def: HashMap<(String, i32), i64> = HashMap::new();
    for def in read.workflow_defs()? {
        if let Some(seconds) = def.retention_seconds {
            by_def.insert((def.name.clone(), def.version), seconds.max(0).saturating_mul(1000));
        }
    }
    // An execution cannot have ended before it started: only those started before now minus the
    // shortest retention in force can be due.
    let Some(shortest) = by_def.values().copied().chain([default_ms]).filter(|ms| *ms > 0).min() else {
        return Ok(Vec::new());
    };
    let ended = ["COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED"];
    let mut out = Vec::new();
    for id in read.workflows_started_between(&ended, (0, now - shortest), SCAN_LIMIT)? {
        let Some(h) = read.workflow_header(&id)? else { continue };
        let keep = by_def.get(&(h.workflow_name.clone(), h.workflow_version)).copied().unwrap_or(default_ms);
        if keep > 0 && h.end_time > 0 && h.end_time + keep <= now {
            out.push((h.workflow_id, now - keep));
        }
    }
    Ok(out)
}

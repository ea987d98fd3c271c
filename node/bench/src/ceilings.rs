//! The machine's ceilings (`--ceilings`), measured before the run: how many synced writes a
//! second the data disk takes and how many HTTP requests a second loopback carries.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use crate::report::percentile;

/// How long the synced-write probe runs: long enough to meet the disk's occasional stalls.
const FSYNC_PROBE: Duration = Duration::from_secs(4);

/// The machine's ceilings: synced 4 KiB writes in `dir` one after another for [`FSYNC_PROBE`]
/// (how many a second, how long the slowest take, and the share of the time a commit would
/// wait more than 5 ms for one), and GET `/health` requests per second over loopback (64 at a
/// time) for two seconds.
pub(crate) async fn measure_ceilings(
    client: &reqwest::Client,
    url: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Value> {
    let path = dir.join(format!(".overture-bench-fsync-{}", std::process::id()));
    let synced = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let block = [7u8; 4096];
        let began = Instant::now();
        let mut latencies = Vec::new();
        while began.elapsed() < FSYNC_PROBE {
            let one = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            latencies.push(one.elapsed().as_secs_f64() * 1000.0);
        }
        let wall_ms = began.elapsed().as_secs_f64() * 1000.0;
        drop(file);
        let _ = std::fs::remove_file(&path);
        // A commit that starts while an fsync is stalled waits for the rest of it: the share of
        // the time in which a commit would end more than 5 ms after it began.
        let stalled_ms: f64 = latencies.iter().map(|ms| (ms - 5.0).max(0.0)).sum();
        let rate = latencies.len() as f64 / (wall_ms / 1000.0);
        latencies.sort_by(f64::total_cmp);
        Ok(json!({
            "perSecond": rate,
            "p99Ms": percentile(&latencies, 99.0),
            "maxMs": latencies.last(),
            "stalledShare": stalled_ms / wall_ms,
        }))
    })
    .await??;
    let count = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let lanes: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, count) = (client.clone(), format!("{url}/health"), count.clone());
            tokio::spawn(async move {
                while began.elapsed() < Duration::from_secs(2) {
                    if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await?;
    }
    let http = count.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
    Ok(json!({
        "syncedWritesPerSecond": synced["perSecond"],
        "syncedWriteP99Ms": synced["p99Ms"],
        "syncedWriteMaxMs": synced["maxMs"],
        "syncStalledShare": synced["stalledShare"],
        "loopbackHttpPerSecond": http,
    }))
}

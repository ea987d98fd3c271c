//! `overture bench`: drives a running node the way production workers do and reports what it saw.
//!
//! Workflows of K SIMPLE tasks (one task type per step), or of one task type forked `width` ways
//! or looped `width` times, are started with at most `concurrency` in flight. For each task type, `workers` workers batch-poll with a long-poll timeout and report
//! each result with `update-v2`, which hands back the next task of their type when there is one.
//!
//! Each worker has `batch` slots, like an SDK worker with that many threads: it polls for as
//! many tasks as it has slots and runs them side by side, each slot following the tasks
//! `update-v2` hands back.
//!
//! Reported: workflows/s and tasks/s over the whole run; task dispatch latency (from the server's
//! `scheduledTime` of a task to a worker receiving it, so it includes any wait for a free worker;
//! and of the tasks scheduled while the poll that received them was waiting: dispatch to a
//! waiting long-poller);
//! workflow latency (from sending the start request to the acknowledgement of its last task's
//! update, which commits the workflow's completion).
//!
//! The modules, lowest first: `args` (the flags), `shared` (the state of a run), `stats` (a
//! node's `/metrics`), `sample` (once a second), `report`, `chart`, `ceilings` (the machine's),
//! `setup` (the definitions) and `load` (starters and workers); [`run`] drives them.

mod args;
mod ceilings;
mod chart;
mod load;
mod report;
mod sample;
mod setup;
mod shared;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};

pub use args::{BenchArgs, Shape};
use sample::Sample;
use shared::Shared;

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    args.check()?;
    let urls = args.urls();
    // reqwest has no crypto provider of its own (see overture_raft::http); Err: one is in place.
    #[allow(deprecated)]
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        // Conductor's API never redirects: a redirect is an answer to report, not to follow.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let ceilings = match &args.ceilings {
        Some(dir) => Some(ceilings::measure_ceilings(&client, &urls[0], dir).await?),
        None => None,
    };
    let bases: Vec<String> = urls.iter().map(|u| format!("{u}/api")).collect();
    setup::setup(&client, &bases[0], &args).await?;
    let nodes_before = stats::node_stats(&client, &urls).await;

    let shared = Arc::new(Shared::new(client, bases, args.clone()));
    let (elapsed, timeline) = drive(&shared).await?;
    let nodes_after = stats::node_stats(&shared.client, &urls).await;
    let verified = load::verify(&shared).await?;
    let nodes = stats::node_report(&urls, &nodes_before, &nodes_after, args.workflows);
    let report = report::report(&shared, elapsed, verified, timeline, nodes, ceilings);
    if let Some(path) = &args.chart {
        std::fs::write(path, chart::chart(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
    report::print_report(&args, &report);
    Ok(())
}

/// Runs the load until every workflow completed: the workers, the sampler, and the starters (or
/// the open loop). Returns how long that took and the samples taken meanwhile.
async fn drive(shared: &Arc<Shared>) -> anyhow::Result<(Duration, Vec<Sample>)> {
    let args = &shared.args;
    let mut handles = Vec::new();
    let own_workers = if args.external_workers { 0 } else { args.task_types() };
    for step in 0..own_workers {
        for w in 0..args.workers() {
            handles.push(tokio::spawn(load::worker(shared.clone(), step, w, format!("bench-{step}-{w}"))));
        }
    }
    let sampler = tokio::spawn(sample::sample(shared.clone()));
    let next = Arc::new(AtomicUsize::new(0));
    match args.rate {
        Some(rate) => load::open_loop(shared.clone(), rate).await?,
        None => {
            let starters: Vec<_> = (0..args.concurrency.min(16))
                .map(|i| tokio::spawn(load::starter(shared.clone(), next.clone(), i)))
                .collect();
            for s in starters {
                s.await??;
            }
        }
    }
    while shared.completed.load(Ordering::Acquire) < args.workflows {
        if shared.began.elapsed() > Duration::from_secs(600) {
            bail!(
                "gave up after 600 s: {} of {} workflows completed",
                shared.completed.load(Ordering::Acquire),
                args.workflows
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = shared.began.elapsed();
    shared.done.store(true, Ordering::Release);
    for h in handles {
        h.await??;
    }
    let timeline = sampler.await?;
    Ok((elapsed, timeline))
}

//! The report: percentiles of the latencies recorded, the run's timeline second by second, the
//! report as JSON, and the report as printed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Value, json};

use crate::args::{BenchArgs, MIX_TASK_TYPES, Shape};
use crate::sample::{MachineCpu, Sample};
use crate::shared::Shared;
use crate::stats::fsyncs_between;

/// The value at percentile `p` (0 to 100) of `sorted`, nearest rank; NaN for none.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Count, p50, p90, p99 and max of `values`.
fn summary(values: &[f64]) -> Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    json!({"count": v.len(), "p50": percentile(&v, 50.0), "p90": percentile(&v, 90.0), "p99": percentile(&v, 99.0), "max": v.last()})
}

/// Latencies received outside the seconds in which a node's log fsync took over 5 ms (and the
/// second after each, which the stall's backlog spills into): what the software does when the
/// disk does not stall. A figure next to the whole run's, never instead of it.
fn outside_stalls(samples: &[Sample], values: &[(f64, f64)]) -> Vec<f64> {
    let stalled: Vec<bool> = samples.windows(2).map(|w| fsyncs_in(&w[0], &w[1]).0 > 0.0).collect();
    let calm: Vec<(f64, f64)> = samples
        .windows(2)
        .enumerate()
        .filter(|&(i, _)| !stalled[i.saturating_sub(1)..=i].contains(&true))
        .map(|(_, w)| (w[0].at, w[1].at))
        .collect();
    values.iter().filter(|(at, _)| calm.iter().any(|(t0, t1)| at > t0 && at <= t1)).map(|(_, ms)| *ms).collect()
}

/// Log fsyncs over 5 ms between two samples, summed over the nodes that answered both, and the
/// slowest one's bucket bound (ms).
fn fsyncs_in(a: &Sample, b: &Sample) -> (f64, Option<f64>) {
    let per_node = a.nodes.iter().zip(&b.nodes).filter_map(|(x, y)| Some(fsyncs_between(x.as_ref()?, y.as_ref()?)));
    per_node
        .fold((0.0, None), |(slow, slowest), (s, m)| (slow + s, [slowest, m].into_iter().flatten().reduce(f64::max)))
}

/// Per second of the run: tasks and workflows finished, p99 latency of the workflows completed
/// and of the tasks a waiting poll received in it, how busy the machine was and how much of its
/// CPU time the host took, and the log fsyncs over 5 ms on every node (a disk stall shows as a
/// latency spike in a second that was not busy).
fn timeline(samples: &[Sample], completions: &[(f64, f64)], dispatches: &[(f64, f64)]) -> Value {
    let p99_within = |values: &[(f64, f64)], t0: f64, t1: f64| {
        let mut within: Vec<f64> = values.iter().filter(|(at, _)| *at > t0 && *at <= t1).map(|(_, ms)| *ms).collect();
        within.sort_by(f64::total_cmp);
        if within.is_empty() { Value::Null } else { json!(percentile(&within, 99.0)) }
    };
    let points: Vec<Value> = samples
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            let secs = (b.at - a.at).max(1e-9);
            let shares = a.cpu.zip(b.cpu).and_then(|(x, y)| MachineCpu::shares(x, y));
            let fsyncs = fsyncs_in(a, b);
            json!({
                "second": b.at,
                "tasksPerSecond": (b.tasks - a.tasks) as f64 / secs,
                "workflowsPerSecond": (b.workflows - a.workflows) as f64 / secs,
                "workflowP99Ms": p99_within(completions, a.at, b.at),
                "waitingDispatchP99Ms": p99_within(dispatches, a.at, b.at),
                "machineBusy": shares.map(|s| s.0),
                "machineStolen": shares.map(|s| s.1),
                "logFsyncsOver5Ms": fsyncs.0,
                "slowestLogFsyncMs": fsyncs.1,
            })
        })
        .collect();
    Value::Array(points)
}

/// The report of a run that took `elapsed`, as JSON: settings, throughput, latencies, the
/// verified workflows, the nodes' figures, the machine's ceilings and CPU, and the timeline.
pub(crate) fn report(
    s: &Shared,
    elapsed: Duration,
    verified: usize,
    samples: Vec<Sample>,
    nodes: Value,
    ceilings: Option<Value>,
) -> Value {
    let secs = elapsed.as_secs_f64();
    let a = &s.args;
    let completions = s.workflow_ms.lock().clone();
    let latencies: Vec<f64> = completions.iter().map(|(_, ms)| *ms).collect();
    let dispatches = s.waiting_dispatch_ms.lock().clone();
    let waiting: Vec<f64> = dispatches.iter().map(|(_, ms)| *ms).collect();
    let calm = outside_stalls(&samples, &dispatches);
    let machine = samples
        .first()
        .zip(samples.last())
        .and_then(|(a, b)| MachineCpu::shares(a.cpu?, b.cpu?))
        .map(|(busy, stolen)| json!({"busy": busy, "stolen": stolen}));
    json!({
        "shape": format!("{:?}", a.shape).to_lowercase(),
        "nodes": a.urls().len(),
        "workflows": a.workflows, "tasksPerWorkflow": a.tasks_per_workflow(), "concurrency": a.concurrency,
        "rate": a.rate,
        "workersPerTaskType": (!a.external_workers).then_some(a.workers()), "pollBatch": a.batch,
        "externalWorkers": a.external_workers,
        "seconds": secs,
        "workflowsPerSecond": a.workflows as f64 / secs,
        "tasksPerSecond": s.tasks_done.load(Ordering::Relaxed) as f64 / secs,
        "startMs": summary(&s.start_ms.lock()),
        "taskDispatchMs": summary(&s.dispatch_ms.lock()),
        "waitingPollerDispatchMs": summary(&waiting),
        "waitingPollerDispatchOutsideStallsMs": summary(&calm),
        "updateToPollableMs": summary(&s.pollable_ms.lock()),
        "workflowLatencyMs": summary(&latencies),
        "verifiedCompleted": verified,
        "retriedRequests": s.errors.load(Ordering::Relaxed),
        "perNode": nodes,
        "ceilings": ceilings,
        "machineCpu": machine,
        "timeline": timeline(&samples, &completions, &dispatches),
    })
}

/// Prints the report: as JSON with `--json`, or else as lines for a person.
pub(crate) fn print_report(a: &BenchArgs, report: &Value) {
    if a.json {
        println!("{report}");
        return;
    }
    let load = match a.rate {
        Some(rate) => format!("{rate} started per second"),
        None => format!("{} in flight", a.concurrency),
    };
    let tasks = match a.shape {
        Shape::Mix => format!("{}–{}", MIX_TASK_TYPES - 1, MIX_TASK_TYPES),
        _ => a.tasks_per_workflow().to_string(),
    };
    let workers = if a.external_workers {
        "external workers".to_owned()
    } else {
        format!("{} workers per task type, poll batch {}", a.workers(), a.batch)
    };
    println!(
        "overture bench: {} {} workflows × {tasks} tasks on {} node(s), {load}, {workers}",
        a.workflows,
        report["shape"].as_str().unwrap_or_default(),
        report["nodes"],
    );
    if let Some(c) = report["ceilings"].as_object() {
        let f = |key: &str| c.get(key).and_then(Value::as_f64).unwrap_or_default();
        println!(
            "  machine          {:.0} synced writes/s (p99 {:.2} ms, max {:.1} ms; {:.2}% of the time a commit \
             would wait over 5 ms), {:.0} loopback HTTP requests/s",
            f("syncedWritesPerSecond"),
            f("syncedWriteP99Ms"),
            f("syncedWriteMaxMs"),
            f("syncStalledShare") * 100.0,
            f("loopbackHttpPerSecond"),
        );
    }
    println!("  elapsed          {:.2} s", report["seconds"].as_f64().unwrap_or_default());
    println!("  workflows/s      {:.1}", report["workflowsPerSecond"].as_f64().unwrap_or_default());
    println!("  tasks/s          {:.1}", report["tasksPerSecond"].as_f64().unwrap_or_default());
    let line = |label: &str, v: &Value| {
        if v["count"].as_u64().unwrap_or(0) > 0 {
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {label:<18} p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
                f("p50"),
                f("p90"),
                f("p99"),
                f("max")
            );
        }
    };
    line("start", &report["startMs"]);
    line("task dispatch", &report["taskDispatchMs"]);
    line("  to waiting poll", &report["waitingPollerDispatchMs"]);
    line("  outside stalls", &report["waitingPollerDispatchOutsideStallsMs"]);
    line("update→pollable", &report["updateToPollableMs"]);
    line("workflow latency", &report["workflowLatencyMs"]);
    if let Some(m) = report["machineCpu"].as_object() {
        let f = |key: &str| m.get(key).and_then(Value::as_f64).unwrap_or_default() * 100.0;
        println!("  machine CPU      {:.0}% busy, {:.1}% taken by the host (steal)", f("busy"), f("stolen"));
    }
    for node in report["perNode"].as_array().into_iter().flatten() {
        match node["cpuSeconds"].as_f64() {
            Some(cpu) => println!(
                "  node {:<22} cpu {:.1} s  peak RSS {:.0} MB  data {:.0} bytes/workflow  log fsyncs {:.0} ({:.0} over 5 ms)",
                node["url"].as_str().unwrap_or_default(),
                cpu,
                node["peakRssBytes"].as_f64().unwrap_or_default() / 1e6,
                node["dataBytesPerWorkflow"].as_f64().unwrap_or_default(),
                node["logFsyncs"].as_f64().unwrap_or_default(),
                node["logFsyncsOver5Ms"].as_f64().unwrap_or_default(),
            ),
            None => println!(
                "  node {:<22} (no figures: not reachable at the start or the end)",
                node["url"].as_str().unwrap_or_default()
            ),
        }
    }
    let expected = if a.shape == Shape::Waiting { "RUNNING" } else { "COMPLETED" };
    println!(
        "  verified {expected} {}/{}   retried requests {}",
        report["verifiedCompleted"], a.workflows, report["retriedRequests"]
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::NodeStats;

    #[test]
    fn latencies_outside_stalls_leave_out_the_stalled_second_and_the_next() {
        // One node; its fsyncs over 5 ms so far at each second: a stall in the third second.
        let sample = |at: f64, slow: f64| Sample {
            at,
            tasks: 0,
            workflows: 0,
            cpu: None,
            nodes: vec![Some(NodeStats {
                fsyncs: vec![(0.005, 100.0), (f64::INFINITY, 100.0 + slow)],
                ..Default::default()
            })],
        };
        let samples: Vec<Sample> =
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0].iter().enumerate().map(|(i, &s)| sample(i as f64, s)).collect();
        let values: Vec<(f64, f64)> = (0..10).map(|i| (0.5 * i as f64 + 0.25, i as f64)).collect();
        // Seconds (0, 1] and (1, 2] are calm, (2, 3] stalled, (3, 4] after it, (4, 5] calm again.
        assert_eq!(outside_stalls(&samples, &values), [0.0, 1.0, 2.0, 3.0, 8.0, 9.0]);
    }
}

//! The benchmark in CI (issue 6): `overture bench` against a real node, small enough to take
//! seconds. It checks the report is whole (figures per node, a timeline, a chart) and fails only
//! on a gross regression: five times slower than the baseline committed in
//! `docs/bench-baseline.json` (measured with this same debug build and these same runs).

use overture_tests::{Node, crate_dir, overture_bin, spawn_python_sdk, wait_for_python_line};
use serde_json::Value;

fn bench(node: &Node, args: &[&str]) -> Value {
    let output = std::process::Command::new(overture_bin())
        .args(["bench", "--json", "--url", &node.url])
        .args(args)
        .output()
        .expect("overture bench runs");
    assert!(output.status.success(), "bench failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("a JSON report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_and_has_not_become_five_times_slower() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let baseline: Value = serde_json::from_str(
        &std::fs::read_to_string(crate_dir().join("../docs/bench-baseline.json")).expect("the committed baseline"),
    )
    .expect("baseline JSON");

    let chart = dir.path().join("chart.svg");
    let linear = bench(
        &node,
        &[
            "--workflows",
            "200",
            "--chart",
            chart.to_str().expect("utf-8"),
            "--ceilings",
            dir.path().to_str().expect("utf-8"),
        ],
    );
    assert_eq!(linear["verifiedCompleted"], 200, "{linear}");
    // By default every workflow in flight has a worker slot: 50 in flight, 8 slots a worker.
    assert_eq!((linear["concurrency"].as_u64(), linear["pollBatch"].as_u64()), (Some(50), Some(8)), "{linear}");
    assert_eq!(linear["workersPerTaskType"], 7, "{linear}");
    for figure in ["taskDispatchMs", "waitingPollerDispatchMs", "updateToPollableMs", "workflowLatencyMs", "startMs"] {
        assert!(linear[figure]["count"].as_u64().is_some_and(|n| n > 0), "{figure}: {linear}");
        assert!(linear[figure]["p99"].as_f64().is_some(), "{figure}: {linear}");
    }
    // Outside the seconds with a slow log fsync: a part of the dispatches to a waiting poll.
    assert!(
        linear["waitingPollerDispatchOutsideStallsMs"]["count"].as_u64()
            <= linear["waitingPollerDispatchMs"]["count"].as_u64(),
        "{linear}"
    );
    // Dispatch to a waiting poll is a share of all dispatches.
    assert!(
        linear["waitingPollerDispatchMs"]["count"].as_u64() <= linear["taskDispatchMs"]["count"].as_u64(),
        "{linear}"
    );
    let node_figures = &linear["perNode"][0];
    assert!(node_figures["cpuSeconds"].as_f64().is_some_and(|c| c > 0.0), "{node_figures}");
    assert!(node_figures["peakRssBytes"].as_f64().is_some_and(|b| b > 1e6), "{node_figures}");
    assert!(node_figures["dataBytesPerWorkflow"].as_f64().is_some(), "{node_figures}");
    // Every task's poll and result are committed, so the log was fsynced; the slow ones are a
    // part of them.
    let fsyncs = node_figures["logFsyncs"].as_f64().unwrap_or(0.0);
    assert!(fsyncs > 0.0, "{node_figures}");
    assert!(node_figures["logFsyncsOver5Ms"].as_f64().is_some_and(|n| (0.0..=fsyncs).contains(&n)), "{node_figures}");
    let ceilings = &linear["ceilings"];
    assert!(ceilings["syncedWritesPerSecond"].as_f64().is_some_and(|r| r > 0.0), "{linear}");
    let (p99, max) = (ceilings["syncedWriteP99Ms"].as_f64(), ceilings["syncedWriteMaxMs"].as_f64());
    assert!(p99.zip(max).is_some_and(|(p99, max)| p99 > 0.0 && max >= p99), "{linear}");
    assert!(ceilings["syncStalledShare"].as_f64().is_some_and(|s| (0.0..=1.0).contains(&s)), "{linear}");
    assert!(linear["timeline"].as_array().is_some_and(|t| !t.is_empty()), "{linear}");
    // How busy the machine was, and how much the host took, over the run and per second.
    let share = |v: &Value| v.as_f64().is_some_and(|s| (0.0..=1.0).contains(&s));
    assert!(share(&linear["machineCpu"]["busy"]) && share(&linear["machineCpu"]["stolen"]), "{linear}");
    for point in linear["timeline"].as_array().into_iter().flatten() {
        assert!(share(&point["machineBusy"]) && share(&point["machineStolen"]), "{point}");
        assert!(point["waitingDispatchP99Ms"].is_null() || point["waitingDispatchP99Ms"].as_f64().is_some(), "{point}");
        assert!(point["logFsyncsOver5Ms"].as_f64().is_some_and(|n| n >= 0.0), "{point}");
    }
    let svg = std::fs::read_to_string(&chart).expect("the chart was written");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{svg}");

    let starts = bench(&node, &["--workflows", "300", "--shape", "start-only"]);
    assert_eq!(starts["verifiedCompleted"], 300, "{starts}");
    // The mix: a SWITCH, and a sub-workflow for every other workflow.
    let mix = bench(&node, &["--workflows", "60", "--shape", "mix"]);
    assert_eq!(mix["verifiedCompleted"], 60, "{mix}");
    assert_eq!(mix["workflowLatencyMs"]["count"], 60, "{mix}");

    let tasks = linear["tasksPerSecond"].as_f64().unwrap_or(0.0);
    let started = starts["workflowsPerSecond"].as_f64().unwrap_or(0.0);
    let floor = |key: &str| baseline[key].as_f64().expect("baseline figure") / 5.0;
    println!(
        "linear {tasks:.0} tasks/s (baseline {}), start-only {started:.0} workflows/s (baseline {})",
        baseline["linearTasksPerSecond"], baseline["startOnlyWorkflowsPerSecond"]
    );
    assert!(tasks >= floor("linearTasksPerSecond"), "linear: {tasks:.0} tasks/s is 5× under the baseline {baseline}");
    assert!(
        started >= floor("startOnlyWorkflowsPerSecond"),
        "start-only: {started:.0}/s is 5× under the baseline {baseline}"
    );
}

/// The like-for-like variant: the official Python SDK's TaskHandler workers run the tasks, and
/// the benchmark times each workflow from its synchronous execute call to completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_with_the_python_sdk_workers() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let mut workers = spawn_python_sdk("bench_workers.py", &["--url", &node.url, "--tasks", "3", "--threads", "4"]);
    wait_for_python_line(&mut workers, "SDK workers polling", std::time::Duration::from_secs(60)).await;
    let report = bench(&node, &["--workflows", "60", "--tasks", "3", "--external-workers"]);
    assert_eq!(report["verifiedCompleted"], 60, "{report}");
    assert_eq!(report["workflowLatencyMs"]["count"], 60, "{report}");
    assert!(report["tasksPerSecond"].as_f64().is_some_and(|t| t > 0.0), "{report}");
    // Closing the workers' stdin stops them; they must stop cleanly.
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), workers.wait_with_output())
        .await
        .expect("the SDK workers stop within 60 s")
        .expect("python ran");
    assert!(output.status.success(), "SDK workers: {}", String::from_utf8_lossy(&output.stderr));
}

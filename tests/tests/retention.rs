//! Retention (issue 5): ended executions are purged through the log after the node's retention
//! period or their definition's `retentionSeconds`; running ones never are; under a steady load
//! the number of stored executions stays flat.

use std::time::{Duration, Instant};

use overture_tests::{Node, client, send, wait_for};
use serde_json::json;

async fn node(dir: &std::path::Path) -> Node {
    let env = [("OVERTURE_RETENTION_SECONDS", "1"), ("OVERTURE_RETENTION_SWEEP_SECONDS", "1")];
    Node::start_with_env(&dir.join("node"), &env).await
}

async fn define(node: &Node, name: &str, retention: Option<i64>, task_type: &str) {
    let mut def = json!({"name": name, "version": 1, "tasks": [{"name": "step", "taskReferenceName": "step", "type": task_type}]});
    if let Some(r) = retention {
        def["retentionSeconds"] = json!(r);
    }
    let r = send(client().post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn start(node: &Node, name: &str) -> String {
    let r = send(client().post(node.api(&format!("/workflow/{name}"))).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

async fn status(node: &Node, id: &str) -> u16 {
    send(client().get(node.api(&format!("/workflow/{id}")))).await.status
}

async fn stored(node: &Node) -> u64 {
    send(client().get(node.api("/workflow/search?size=0"))).await.json()["totalHits"].as_u64().unwrap_or(u64::MAX)
}

#[tokio::test]
async fn ended_workflows_are_purged_after_their_retention() {
    let dir = tempfile::tempdir().expect("dir");
    let node = node(dir.path()).await;
    define(&node, "brief", None, "NOOP").await;
    define(&node, "forever", Some(0), "NOOP").await;
    define(&node, "hour", Some(3600), "NOOP").await;
    define(&node, "open", None, "SIMPLE").await;
    let brief = start(&node, "brief").await;
    let forever = start(&node, "forever").await;
    let hour = start(&node, "hour").await;
    let open = start(&node, "open").await;
    // Terminated counts as ended too.
    let stopped = start(&node, "open").await;
    assert_eq!(send(client().delete(node.api(&format!("/workflow/{stopped}")))).await.status, 200);
    let definition = send(client().get(node.api("/metadata/workflow/hour"))).await.json();
    assert_eq!(definition["retentionSeconds"], 3600, "the definition keeps its retention");

    let purged = wait_for(Duration::from_secs(15), || async {
        status(&node, &brief).await == 404 && status(&node, &stopped).await == 404
    })
    .await;
    assert!(purged, "the node's one-second retention purged the ended workflows");
    for (id, what) in
        [(&forever, "retentionSeconds 0 keeps forever"), (&hour, "an hour's retention"), (&open, "running")]
    {
        assert_eq!(status(&node, id).await, 200, "{what}");
    }
    let r = send(client().get(node.api(&format!("/workflow/search?query=workflowId%3D%27{brief}%27")))).await.json();
    assert_eq!(r["totalHits"], 0, "its index rows went with it");
    let metrics = send(client().get(format!("{}/metrics", node.url))).await.text;
    let purged: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("overture_workflows_purged_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    assert!(purged >= 2, "purges are counted: {purged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_executions_stay_flat_under_a_steady_load() {
    let dir = tempfile::tempdir().expect("dir");
    let node = node(dir.path()).await;
    define(&node, "steady", None, "NOOP").await;
    // 40 workflows a second, each ending at once.
    let rate = 40u64;
    let started = Instant::now();
    let mut total = 0u64;
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / rate));
    // Twelve seconds' worth of starts (longer if the machine is slow: the rate only drops).
    while total < 12 * rate && started.elapsed() < Duration::from_secs(60) {
        tick.tick().await;
        start(&node, "steady").await;
        total += 1;
        if total.is_multiple_of(rate) && started.elapsed() > Duration::from_secs(4) {
            let disk = send(client().get(format!("{}/metrics", node.url))).await.text;
            let sst = disk
                .lines()
                .find_map(|l| l.strip_prefix("overture_rocksdb_sst_bytes "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            samples.push((stored(&node).await, sst));
        }
    }
    println!("started {total}; (stored executions, SST bytes) each second after the warm-up: {samples:?}");
    // With one second of retention swept every second, about two seconds' worth are kept.
    let bound = rate * 4;
    let peak = samples.iter().map(|s| s.0).max().unwrap_or(u64::MAX);
    assert!(samples.len() >= 5, "{samples:?}");
    assert!(peak <= bound, "stored executions stay under {bound} while {total} ran: {samples:?}");
    assert!(total >= 5 * bound / 2, "the load ran long enough to show it: {total}");
    let settled = wait_for(Duration::from_secs(10), || async { stored(&node).await == 0 }).await;
    assert!(settled, "once the load stops, everything ended is purged");
}

#[tokio::test]
async fn by_default_ended_workflows_are_kept_and_the_node_says_so() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    // No retention set; sweeps every second, so a purge would show quickly.
    let node = Node::start_with_env(&data, &[("OVERTURE_RETENTION_SWEEP_SECONDS", "1")]).await;
    define(&node, "kept", None, "NOOP").await;
    define(&node, "brief", Some(1), "NOOP").await;
    let kept = start(&node, "kept").await;
    let brief = start(&node, "brief").await;
    let purged = wait_for(Duration::from_secs(15), || async { status(&node, &brief).await == 404 }).await;
    assert!(purged, "a definition's own retentionSeconds still purges");
    assert_eq!(status(&node, &kept).await, 200, "the node's default keeps ended executions, as Conductor does");
    let log = std::fs::read_to_string(data.with_extension("log")).expect("node log");
    assert!(log.contains("retention: ended executions are kept"), "the start says so: {log}");
}

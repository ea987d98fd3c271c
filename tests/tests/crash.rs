//! Nothing acknowledged is lost on one node: SIGKILL in the middle of a workload, restart on the
//! same data directory, and every acknowledged start and task result is still there; the
//! workflows finish, each step exactly once.

use std::time::Duration;

use overture_tests::{Cluster, Node, Workload, check_ledger, client, send, wait_for, wait_status};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_workload_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    Workload::register(&node.url, "crash", 3).await;

    let load = Workload::run(vec![node.url.clone()], "crash", 3, 4, 4, usize::MAX);
    // Kill once real work has been acknowledged, with the load still running.
    let busy = wait_for(Duration::from_secs(60), || async { load.started() >= 80 && load.updated() >= 80 }).await;
    assert!(busy, "the load made progress");
    node.kill9().await;
    let ledger = load.stop().await;

    let node = Node::start(&data).await;
    let after = Workload::run(vec![node.url.clone()], "crash", 3, 0, 4, 0);
    check_ledger(&node.url, &ledger, 3, Duration::from_secs(60)).await;
    after.stop().await;
    eprintln!(
        "after SIGKILL: {} acknowledged starts and {} acknowledged results intact",
        ledger.started.lock().expect("lock").len(),
        ledger.updated.lock().expect("lock").len()
    );
}

/// State-machine writes skip RocksDB's WAL, so a crash loses the state applied since the last
/// flush and the restart rebuilds it from the last snapshot and the Raft log after it.
/// Snapshots every few dozen entries purge the log all through the load, and the SIGKILL lands
/// among them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_while_the_log_is_purged_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = Cluster::start(dir.path(), 1, "snapshot_every = 50\nkeep_after_snapshot = 0").await;
    let url = c.nodes[0].url.clone();
    Workload::register(&url, "purged", 3).await;
    let load = Workload::run(vec![url.clone()], "purged", 3, 4, 4, usize::MAX);
    // The furthest any group purged (with partitions, the workflows' groups take the load).
    let purged = || async {
        let status = c.status(1).await;
        let groups = status["groups"].as_array().cloned().unwrap_or_default();
        groups.iter().chain([&status]).filter_map(|g| g["purgedIndex"].as_u64()).max().unwrap_or_default()
    };
    assert!(wait_for(Duration::from_secs(60), || async { purged().await > 0 }).await, "a first purge");
    let first = purged().await;
    let again = wait_for(Duration::from_secs(60), || async { purged().await > first && load.updated() >= 80 }).await;
    assert!(again, "the log was purged again under load");
    c.nodes[0].kill9().await;
    let ledger = load.stop().await;

    c.restart(1).await;
    c.wait_leader(Duration::from_secs(60)).await;
    let url = c.nodes[0].url.clone();
    let after = Workload::run(vec![url.clone()], "purged", 3, 0, 4, 0);
    check_ledger(&url, &ledger, 3, Duration::from_secs(60)).await;
    after.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_state_and_serves_the_same_queues() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    Workload::register(&node.url, "calm", 1).await;
    let c = client();
    let id = send(c.post(node.api("/workflow/calm_flow")).json(&json!({"n": 1}))).await.text;
    node.terminate().await;

    let node = Node::start(&data).await;
    let r = send(c.get(node.api("/tasks/poll/batch/calm_0?count=1&timeout=2000"))).await;
    let task = r.json()[0].clone();
    assert_eq!(task["workflowInstanceId"].as_str(), Some(id.as_str()), "the queue is rebuilt from disk");
    let result = json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "COMPLETED", "outputData": {}});
    assert_eq!(send(c.post(node.api("/tasks")).json(&result)).await.status, 200);
    wait_status(&node, &id, "COMPLETED", Duration::from_secs(5)).await;
}

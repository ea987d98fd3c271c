//! A partitioned cluster's Raft groups: three `overture server` processes with `partitions = 6`
//! run the metadata group and six partition groups each; the partitions' leaders are dealt out
//! over the nodes, move away from a node that dies and come back to it when it returns, and move
//! to a node that joins.

use std::time::{Duration, Instant};

use overture_tests::{Cluster, Node, Workload, client, overture_bin, send, wait_for};
use serde_json::json;

const PARTITIONS: &str = "partitions = 6";

/// Each partition's leader (partition 1 first) as node `n` (1-based) sees it.
async fn partition_leaders(c: &Cluster, n: usize) -> Vec<Option<u64>> {
    partition_leaders_at(&c.nodes[n - 1].url).await
}

/// Each partition's leader as the node at `url` sees it.
async fn partition_leaders_at(url: &str) -> Vec<Option<u64>> {
    let r = send(client().get(format!("{url}/api/cluster/status")).timeout(Duration::from_secs(2))).await;
    let status = r.json();
    let groups = status["groups"].as_array().cloned().unwrap_or_default();
    groups.iter().filter(|g| g["group"] != 0).map(|g| g["leader"].as_u64()).collect()
}

/// Waits until node `n` sees exactly these partition leaders; returns how long that took.
async fn wait_leaders(c: &Cluster, n: usize, want: &[u64], timeout: Duration) -> Duration {
    let started = Instant::now();
    let want: Vec<Option<u64>> = want.iter().map(|l| Some(*l)).collect();
    let ok = wait_for(timeout, || async { partition_leaders(c, n).await == want }).await;
    assert!(ok, "node {n} sees partition leaders {:?}, not {want:?}", partition_leaders(c, n).await);
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_leaders_are_dealt_out_move_off_a_dead_node_and_come_back() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = Cluster::start(dir.path(), 3, PARTITIONS).await;
    // Every node runs every group; the balancer deals the partitions out in turn.
    for n in 1..=3 {
        wait_leaders(&c, n, &[1, 2, 3, 1, 2, 3], Duration::from_secs(30)).await;
    }
    let status = c.status(2).await;
    assert_eq!(status["partitions"], 6, "{status}");
    let groups = status["groups"].as_array().expect("groups");
    assert_eq!(groups.len(), 7, "the metadata group and six partitions: {status}");
    assert_eq!((groups[0]["holds"].as_str(), groups[3]["holds"].as_str()), (Some("metadata"), Some("partition")));
    assert_eq!(groups[5]["preferredLeader"], 2, "{status}");
    assert!(groups.iter().all(|g| g["leaderAddress"].is_string()), "{status}");
    // The metadata group serves the API as before.
    Workload::register(&c.nodes[0].url, "parts", 1).await;
    let r = send(client().post(c.api(3, "/workflow/parts_flow")).json(&json!({"n": 1}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The CLI prints who leads each partition.
    let text = c.admin(3, &["status"]);
    assert!(text.contains("partitions 6") && text.contains("preferred"), "{text}");

    // Node 2 dies: its partitions (2 and 5) are led by the others within an election or two.
    c.nodes[1].kill9().await;
    let moved = Instant::now();
    let ok = wait_for(Duration::from_secs(10), || async {
        let leaders = partition_leaders(&c, 1).await;
        leaders.len() == 6 && leaders.iter().all(|l| l.is_some_and(|l| l != 2))
    })
    .await;
    assert!(ok, "partitions left on the dead node: {:?}", partition_leaders(&c, 1).await);
    let unchanged = partition_leaders(&c, 1).await;
    assert_eq!([unchanged[0], unchanged[2], unchanged[3], unchanged[5]], [Some(1), Some(3), Some(1), Some(3)]);
    println!("partitions re-elected away from a killed node in {:?}", moved.elapsed());

    // It comes back: once it has caught up, its partitions are handed back to it.
    c.restart(2).await;
    let back = wait_leaders(&c, 1, &[1, 2, 3, 1, 2, 3], Duration::from_secs(30)).await;
    println!("partitions handed back to a restarted node {back:?} after it started listening");
    wait_leaders(&c, 2, &[1, 2, 3, 1, 2, 3], Duration::from_secs(10)).await;
    let r = send(client().post(c.api(2, "/workflow/parts_flow")).json(&json!({"n": 2}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_every_group_takes_its_partitions_and_leaves() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Cluster::start(dir.path(), 3, PARTITIONS).await;
    wait_leaders(&c, 1, &[1, 2, 3, 1, 2, 3], Duration::from_secs(30)).await;
    // A node started without the cluster's partitions is refused before it joins any group.
    let (mut stranger, stranger_addr) = c.launch_joiner(dir.path(), 5, "").await;
    let refused = std::process::Command::new(overture_bin())
        .args(["cluster", "add-learner", "--id", "5", "--address", &stranger_addr, "--url", &c.nodes[0].url])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(stderr.contains("runs 1 Raft groups (partitions = 1) and this cluster 7 (partitions = 6)"), "{stderr}");
    assert_eq!(c.status(1).await["members"].as_array().map(Vec::len), Some(3));
    stranger.terminate().await;

    let (fourth, addr) = c.launch_joiner(dir.path(), 4, PARTITIONS).await;
    // Asked of a follower of the metadata group: forwarded to its leader, which has each
    // partition's leader make the change.
    c.admin(2, &["add-learner", "--id", "4", "--address", &addr]);
    fourth.wait_ready().await;
    c.admin(2, &["promote", "--id", "4"]);
    // Four voters in every partition: the fourth partition is node 4's.
    let took = wait_leaders(&c, 1, &[1, 2, 3, 4, 1, 2], Duration::from_secs(30)).await;
    println!("a promoted fourth node led its partition {took:?} after the promotion");
    let seen_by_fourth = partition_leaders_at(&fourth.url).await;
    assert_eq!(seen_by_fourth, [Some(1), Some(2), Some(3), Some(4), Some(1), Some(2)]);

    c.admin(2, &["remove", "--id", "4"]);
    wait_leaders(&c, 1, &[1, 2, 3, 1, 2, 3], Duration::from_secs(30)).await;
    let status = c.status(1).await;
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3), "{status}");
}

/// The number of partitions is fixed when a data directory is created: a node started with
/// another number stops at once and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_keeps_the_partitions_it_was_made_with() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    let r = send(client().get(node.api("/cluster/status"))).await;
    assert_eq!((r.json()["partitions"].as_u64(), r.json()["groups"][0]["holds"].as_str()), (Some(1), Some("all")));
    node.terminate().await;
    let out = tokio::process::Command::new(overture_bin())
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("OVERTURE_PARTITIONS", "6")
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("holds 1 Raft groups (partitions = 1), and this node was started with 7 (partitions = 6)"),
        "{stderr}"
    );
    let out = tokio::process::Command::new(overture_bin())
        .args(["dev", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("other"))
        .env("OVERTURE_PARTITIONS", "65")
        .output()
        .await
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("partitions must be between 1 and 64, not 65"), "{stderr}");
}

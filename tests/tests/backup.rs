//! Online backups and restores (`overture cluster backup`, `overture restore`): a backup taken on
//! a follower of a three-node cluster under load, restored into a new three-node cluster, holds
//! every workflow and every task result acknowledged before it was asked for, whichever node
//! acknowledged it, and the workflows running in it go on to completion there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use overture_tests::{Cluster, Ledger, Workload, check_ledger, client, send, wait_for};
use serde_json::Value;

const STEPS: usize = 2;

async fn backup_under_load_restores_into_a_new_cluster(partitions: u16) {
    let dir = tempfile::tempdir().expect("dir");
    let extra = format!("partitions = {partitions}\n");
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old).expect("dir");
    std::fs::create_dir_all(&new).expect("dir");
    let cluster = Cluster::start(&old, 3, &extra).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    Workload::register(&urls[0], "bk", STEPS).await;
    let load = Workload::run(urls.clone(), "bk", STEPS, 2, 2, 2_000);
    assert!(
        wait_for(Duration::from_secs(60), || async { load.started() >= 100 && load.updated() >= 100 }).await,
        "the workload got going: {} started, {} results",
        load.started(),
        load.updated()
    );

    // What clients were told before the backup was asked for; the load goes on meanwhile.
    let before = Ledger::default();
    before.started.lock().expect("lock").clone_from(&load.ledger.started.lock().expect("lock"));
    before.updated.lock().expect("lock").clone_from(&load.ledger.updated.lock().expect("lock"));
    let follower = cluster.other_than(leader);
    let asked = Instant::now();
    let printed = cluster.admin(follower, &["backup", "--name", "under-load"]);
    let took = asked.elapsed();
    let answer: Value = serde_json::from_str(&printed).expect("the backup command prints JSON");
    let backup = PathBuf::from(answer["path"].as_str().expect("path"));
    assert!(backup.starts_with(&cluster.nodes[follower - 1].data_dir), "{backup:?} lies in the node's data dir");
    assert!(backup.join("BACKUP.json").is_file(), "{answer}");
    let groups = answer["manifest"]["groups"].as_array().expect("groups").len();
    assert_eq!(groups, if partitions > 1 { usize::from(partitions) + 1 } else { 1 }, "{answer}");
    println!("backup of node {follower} under load: {took:?} in all, checkpoint {} ms", answer["manifest"]["tookMs"]);
    let after = load.started();
    assert!(
        wait_for(Duration::from_secs(30), || async { load.started() > after + 20 }).await,
        "starts go on after the backup"
    );
    let again = send(client().post(cluster.api(follower, "/admin/backup?name=under-load"))).await;
    assert_eq!(again.status, 409, "a backup's name is taken once: {}", again.text);
    let bad = send(client().post(cluster.api(follower, "/admin/backup?name=../escape"))).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    load.stop().await;
    drop(cluster);

    // A new cluster from the backup alone: the old one is gone.
    let restored = Cluster::restore(&new, &backup, 3, &extra).await;
    let status = restored.status(1).await;
    let members: Vec<u64> =
        status["members"].as_array().expect("members").iter().filter_map(|m| m["id"].as_u64()).collect();
    assert_eq!(members, vec![1, 2, 3], "{status}");
    let urls: Vec<String> = restored.nodes.iter().map(|n| n.url.clone()).collect();
    // Workers finish what was running; everything acknowledged before the backup is there, as
    // it was acknowledged, and completes once.
    let finisher = Workload::run(urls.clone(), "bk", STEPS, 0, 2, 0);
    // Through the restored node, and through a node that joined it (it received the state).
    check_ledger(&urls[0], &before, STEPS, Duration::from_secs(90)).await;
    check_ledger(&urls[2], &before, STEPS, Duration::from_secs(30)).await;
    finisher.stop().await;
    println!(
        "restored: {} acknowledged starts and {} results from before the backup, on 3 new nodes",
        before.started.lock().expect("lock").len(),
        before.updated.lock().expect("lock").len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_restores_into_a_new_three_node_cluster() {
    backup_under_load_restores_into_a_new_cluster(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_of_a_partitioned_cluster_restores_every_partition() {
    backup_under_load_restores_into_a_new_cluster(3).await;
}

/// A backup holds what the leader had committed when it was asked for, even on a follower that
/// had not received it: cut off from the others, a follower cannot learn what they committed,
/// so its backup is refused (a retryable 503) rather than taken stale; reconnected, it catches
/// up first. The backup then restores into a cluster of one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_on_a_lagging_follower_holds_what_the_leader_committed() {
    use overture_tests::faults::{CONFIG, cut_off};
    let dir = tempfile::tempdir().expect("dir");
    let (old, new) = (dir.path().join("old"), dir.path().join("new"));
    std::fs::create_dir_all(&old).expect("dir");
    std::fs::create_dir_all(&new).expect("dir");
    let cluster = Cluster::start(&old, 3, CONFIG).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let lagging = cluster.other_than(leader);
    let others: Vec<usize> = (1..=3).filter(|n| *n != lagging).collect();
    cut_off(&cluster, lagging, &others).await;
    let def = serde_json::json!({"name": "备份后", "version": 1, "tasks": [{"name": "审核", "taskReferenceName": "审核", "type": "WAIT"}]});
    let r = send(client().post(cluster.api(leader, "/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let started =
        send(client().post(cluster.api(leader, "/workflow/备份后")).json(&serde_json::json!({"客户": "张三"}))).await;
    assert_eq!(started.status, 200, "{}", started.text);
    // The node asks for the leader's index until its 30 s catch-up deadline, then refuses: the
    // client waits longer than that (the tests' client gives up at 30 s, a race it lost in CI).
    let patient = overture_tests::client_builder().timeout(Duration::from_secs(60)).build().expect("client");
    let refused = send(patient.post(cluster.api(lagging, "/admin/backup?name=stale"))).await;
    assert_eq!(refused.status, 503, "a follower cut off from the leader takes no backup: {}", refused.text);
    assert!(!cluster.nodes[lagging - 1].data_dir.join("backups/stale").exists(), "no partial backup is left");
    cut_off(&cluster, lagging, &[]).await;
    let taken = send(client().post(cluster.api(lagging, "/admin/backup?name=caught-up"))).await;
    assert_eq!(taken.status, 200, "{}", taken.text);
    let backup = PathBuf::from(taken.json()["path"].as_str().expect("path"));
    drop(cluster);
    let restored = Cluster::restore(&new, &backup, 1, "").await;
    let wf = send(client().get(restored.api(1, &format!("/workflow/{}", started.text)))).await;
    assert_eq!(wf.status, 200, "the workflow acknowledged by the leader is in the backup: {}", wf.text);
    assert_eq!(wf.json()["workflowName"], "备份后");
    assert_eq!(wf.json()["input"]["客户"], "张三");
}

/// A restore refuses what it cannot use, saying why: no backup there, a data directory in use.
#[test]
fn a_restore_refuses_a_directory_that_is_no_backup_or_a_used_data_directory() {
    let dir = tempfile::tempdir().expect("dir");
    let restore = |backup: &std::path::Path, data: &std::path::Path| {
        std::process::Command::new(overture_tests::overture_bin())
            .arg("restore")
            .arg("--backup")
            .arg(backup)
            .arg("--data-dir")
            .arg(data)
            .args(["--address", "127.0.0.1:1"])
            .output()
            .expect("overture restore runs")
    };
    let out = restore(dir.path(), &dir.path().join("data"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a complete backup"), "{out:?}");
    std::fs::write(
        dir.path().join("BACKUP.json"),
        br#"{"format": 1, "version": "x", "nodeId": 1, "partitions": 1, "groups": [], "createdMs": 0, "tookMs": 0}"#,
    )
    .expect("write");
    let used = dir.path().join("used");
    std::fs::create_dir_all(used.join("db")).expect("mkdir");
    let out = restore(dir.path(), &used);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not empty"), "{out:?}");
}

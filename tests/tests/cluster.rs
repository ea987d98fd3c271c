//! Three `overture server` processes on loopback: forwarding, failover, partitions, snapshots,
//! whole-cluster restarts, and the status the cluster reports.

use std::time::{Duration, Instant};

use overture_tests::{
    Cluster, Workload, check_ledger, client, finish_python_sdk, group_field, loaded_group, run_python_sdk_workload,
    send, send_retrying, spawn_python_sdk, wait_for, wait_for_python_line,
};
use serde_json::{Value, json};

async fn cluster(dir: &std::path::Path, extra: &str) -> Cluster {
    Cluster::start(dir, 3, extra).await
}

fn urls(c: &Cluster) -> Vec<String> {
    c.nodes.iter().map(|n| n.url.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_workers_on_a_follower_complete_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    run_python_sdk_workload(&c.nodes[follower - 1].url).await;
}

/// The SDK kitchensink with its workers on a follower, while the leader is killed: every workflow
/// still completes (system tasks the dead leader held are handed out again by the new one).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_kitchensink_completes_across_a_leader_kill() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    let mut script = spawn_python_sdk("sdk_kitchensink.py", &[&c.nodes[follower - 1].url, "12"]);
    wait_for_python_line(&mut script, "STARTED", Duration::from_secs(120)).await;
    c.nodes[leader - 1].kill9().await;
    let new_leader = c.wait_leader(Duration::from_secs(15)).await;
    assert_ne!(new_leader, leader);
    finish_python_sdk(script).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_sigkill_mid_workload_loses_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cluster(dir.path(), "").await;
    Workload::register(&c.nodes[0].url, "kill", 3).await;
    let load = Workload::run(urls(&c), "kill", 3, 4, 6, 240);
    assert!(wait_for(Duration::from_secs(60), || async { load.started() >= 100 }).await, "the load made progress");

    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let before = load.started();
    *load.ledger.first_write_after.lock().expect("lock") = None;
    let killed_at = Instant::now();
    c.nodes[leader - 1].kill9().await;
    // The first start acknowledged after the kill.
    let recovered = wait_for(Duration::from_secs(30), || async {
        load.ledger.first_write_after.lock().expect("lock").is_some_and(|t| t > killed_at) && load.started() > before
    })
    .await;
    assert!(recovered, "writes resume after the leader dies");
    let first = load.ledger.first_write_after.lock().expect("lock").unwrap_or(killed_at);
    eprintln!("leader SIGKILL → first acknowledged write: {} ms", (first - killed_at).as_millis());
    let new_leader = c.wait_leader(Duration::from_secs(10)).await;
    assert_ne!(new_leader, leader);

    assert!(wait_for(Duration::from_secs(90), || async { load.started() >= 240 }).await, "240 workflows acknowledged");
    // Bring the old leader back while the workload finishes.
    c.restart(leader).await;
    let survivor = c.nodes[new_leader - 1].url.clone();
    let finisher = Workload::run(urls(&c), "kill", 3, 0, 6, 0);
    let ledger = load.stop().await;
    check_ledger(&survivor, &ledger, 3, Duration::from_secs(90)).await;
    finisher.stop().await;
    assert!(ledger.started.lock().expect("lock").len() >= 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_leader_is_replaced_and_steps_down_when_it_wakes() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    Workload::register(&c.nodes[0].url, "stop", 2).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    // Clients talk to the other two: the frozen node would hang them.
    let others: Vec<String> = (1..=3).filter(|n| *n != leader).map(|n| c.nodes[n - 1].url.clone()).collect();
    let load = Workload::run(others.clone(), "stop", 2, 3, 4, 200);
    assert!(wait_for(Duration::from_secs(60), || async { load.started() >= 50 }).await);

    // Counted at the freeze: with partitions the other nodes' partitions take starts all along,
    // so by the time a new leader of the metadata group is ready most of the 200 may be made.
    let at_freeze = load.started();
    let frozen_at = Instant::now();
    c.nodes[leader - 1].sigstop();
    // A request forwarded to the frozen leader is answered once leadership moves, not left to hang.
    let probe = {
        let url = format!("{}/api/metadata/taskdefs", others[0]);
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client().post(url).json(&json!([{"name": "probe"}])).timeout(Duration::from_secs(60)).send().await;
            (r.map(|r| r.status().as_u16()), started.elapsed())
        })
    };
    let took_over = wait_for(Duration::from_secs(30), || async {
        for url in &others {
            if let Ok(r) =
                client().get(format!("{url}/api/cluster/status")).timeout(Duration::from_millis(300)).send().await
                && let Ok(v) = r.json::<Value>().await
                && v["state"] == "Leader"
                && v["ready"] == true
            {
                return true;
            }
        }
        false
    })
    .await;
    assert!(took_over, "a new leader takes over from the frozen one");
    eprintln!("leader SIGSTOP → new leader ready: {} ms", frozen_at.elapsed().as_millis());
    let (status, waited) = probe.await.expect("probe");
    assert!(matches!(status, Ok(200 | 503)), "{status:?}");
    assert!(waited < Duration::from_secs(15), "a forwarded request did not hang: {waited:?}");
    assert!(wait_for(Duration::from_secs(30), || async { load.started() > at_freeze + 20 }).await, "work goes on");

    c.nodes[leader - 1].sigcont();
    let stepped_down = wait_for(Duration::from_secs(20), || async {
        let s = c.status(leader).await;
        s["state"] != "Leader" && s["leader"].as_u64().is_some_and(|l| l as usize != leader)
    })
    .await;
    assert!(stepped_down, "the old leader follows the new one after it wakes: {}", c.status(leader).await);

    assert!(wait_for(Duration::from_secs(60), || async { load.started() >= 200 }).await);
    let ledger = load.stop().await;
    let finisher = Workload::run(others.clone(), "stop", 2, 0, 4, 0);
    check_ledger(&others[0], &ledger, 2, Duration::from_secs(90)).await;
    finisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_a_purged_log_catches_up_from_a_snapshot() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cluster(dir.path(), "snapshot_every = 100\nkeep_after_snapshot = 0").await;
    Workload::register(&c.nodes[0].url, "lag", 2).await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let follower = c.other_than(leader);
    // The group that takes the load: the one group, or a partition the leader leads.
    let group = loaded_group(&c, leader).await;
    let lagged_at = group_field(&c.status(follower).await, group, "appliedIndex").unwrap_or_default();
    c.nodes[follower - 1].kill9().await;

    let live: Vec<String> = (1..=3).filter(|n| *n != follower).map(|n| c.nodes[n - 1].url.clone()).collect();
    // Load until the leader has snapshotted and purged past where the follower stopped (how many
    // workflows that takes depends on how many batches share an entry).
    let load = Workload::run(live.clone(), "lag", 2, 2, 4, 5_000);
    let purged_past = wait_for(Duration::from_secs(90), || async {
        group_field(&c.status(leader).await, group, "purgedIndex").is_some_and(|p| p > lagged_at)
    })
    .await;
    let ledger = load.stop().await;
    let purged = group_field(&c.status(leader).await, group, "purgedIndex").unwrap_or_default();
    assert!(purged_past, "the leader purged group {group}'s log past the follower's ({purged} > {lagged_at})");
    let finisher = Workload::run(live.clone(), "lag", 2, 0, 4, 0);
    check_ledger(&live[0], &ledger, 2, Duration::from_secs(60)).await;
    finisher.stop().await;

    c.restart(follower).await;
    let leader_applied = group_field(&c.status(leader).await, group, "appliedIndex").unwrap_or_default();
    let caught_up = wait_for(Duration::from_secs(60), || async {
        group_field(&c.status(follower).await, group, "appliedIndex").is_some_and(|a| a >= leader_applied)
    })
    .await;
    assert!(caught_up, "the follower caught up");
    let metrics = send(client().get(format!("{}/metrics", c.nodes[follower - 1].url))).await.text;
    assert!(metrics.contains("overture_snapshots_installed_total"), "it installed a snapshot:\n{metrics}");

    // Same applied index, same state machine, byte for byte.
    let digests_match = wait_for(Duration::from_secs(30), || async {
        let a = send(client().get(c.api(leader, "/cluster/digest"))).await.json();
        let b = send(client().get(c.api(follower, "/cluster/digest"))).await.json();
        // With partitions, every partition's too.
        a["appliedIndex"] == b["appliedIndex"] && a["digest"] == b["digest"] && a["groups"] == b["groups"]
    })
    .await;
    assert!(digests_match, "the follower's state equals the leader's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_cluster_restarts_with_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cluster(dir.path(), "").await;
    Workload::register(&c.nodes[0].url, "all", 2).await;
    let load = Workload::run(urls(&c), "all", 2, 2, 2, 60);
    assert!(wait_for(Duration::from_secs(60), || async { load.started() >= 60 }).await);
    let ledger = load.stop().await;
    // Some of them are mid-flight: tasks polled and not reported, tasks waiting in queues.
    let r = send(client().get(c.api(1, "/tasks/poll/batch/all_0?count=3&timeout=500&workerid=abandoned"))).await;
    assert_eq!(r.status, 200);

    for n in 1..=3 {
        c.nodes[n - 1].kill9().await;
    }
    for n in 1..=3 {
        c.restart(n).await;
    }
    c.wait_leader(Duration::from_secs(30)).await;
    let finisher = Workload::run(urls(&c), "all", 2, 0, 4, 0);
    check_ledger(&c.nodes[0].url, &ledger, 2, Duration::from_secs(90)).await;
    finisher.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_cluster_status_agree() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    Workload::register(&c.nodes[0].url, "obs", 1).await;
    let status = c.status(leader).await;
    let metrics = send(client().get(format!("{}/metrics", c.nodes[leader - 1].url))).await.text;
    let gauge = |name: &str| -> Option<f64> {
        metrics
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(gauge("overture_raft_term"), status["term"].as_f64());
    assert_eq!(gauge("overture_raft_leader_id"), Some(leader as f64));
    assert_eq!(gauge("overture_raft_is_leader"), Some(1.0));
    assert_eq!(gauge("overture_raft_members"), Some(3.0));
    assert!(gauge("overture_raft_commit_index").is_some_and(|i| i >= 1.0));
    for follower in (1..=3).filter(|n| *n != leader) {
        assert!(metrics.contains(&format!("overture_raft_follower_lag{{follower=\"{follower}\"}}")), "{metrics}");
        assert!(status["replication"][follower.to_string()]["lag"].is_u64(), "{status}");
    }

    // The CLI shows the same picture, from any node.
    let follower = c.other_than(leader);
    let out = std::process::Command::new(overture_tests::overture_bin())
        .args(["cluster", "status", "--json", "--url", &c.nodes[follower - 1].url])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let cli: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!((cli["leader"].as_u64(), cli["term"].clone()), (Some(leader as u64), status["term"].clone()));
    assert_eq!(cli["members"].as_array().map(Vec::len), Some(3));
    let human = std::process::Command::new(overture_tests::overture_bin())
        .args(["cluster", "status", "--url", &c.nodes[follower - 1].url])
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains(&format!("leader {leader}")) && text.contains("lag"), "{text}");

    // Reads on a follower are local; ?consistent=true is answered by the leader.
    let id = send(client().post(c.api(follower, "/workflow/obs_flow")).json(&json!({"n": 1}))).await.text;
    let r = send(client().get(c.api(follower, &format!("/workflow/{id}?consistent=true")))).await;
    assert_eq!((r.status, r.json()["workflowId"].as_str()), (200, Some(id.as_str())));
    // Peers without the secret are refused.
    let r = send(client().post(format!("{}/internal/raft/vote", c.nodes[follower - 1].url)).body("x")).await;
    assert_eq!(r.status, 403);
    // A Raft group the node is not in is named as such.
    let vote = client()
        .post(format!("{}/internal/raft/vote", c.nodes[follower - 1].url))
        .header("x-overture-cluster-secret", "test-secret")
        .header("x-overture-group", "99");
    let r = send(vote.body("x")).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.text.contains("not in Raft group 99"), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_a_follower_reads_its_own_writes() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let follower = c.other_than(leader);
    Workload::register(&c.nodes[follower - 1].url, "ryw", 1).await;
    let http = client();
    for n in 0..30 {
        // Each write is forwarded to the leader; the read right after it, on the same follower,
        // must see it, without asking for a consistent read.
        let id = send(http.post(c.api(follower, "/workflow/ryw_flow")).json(&json!({"n": n}))).await.text;
        let r = send(http.get(c.api(follower, &format!("/workflow/{id}")))).await;
        assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("RUNNING")), "start {n}: {}", r.text);
        assert_eq!(send(http.delete(c.api(follower, &format!("/workflow/{id}?reason=done")))).await.status, 200);
        let r = send(http.get(c.api(follower, &format!("/workflow/{id}/status")))).await;
        assert_eq!(r.json()["status"], "TERMINATED", "terminate {n}: {}", r.text);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_node_joins_as_learner_is_promoted_and_removed() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    Workload::register(&c.nodes[0].url, "grow", 1).await;
    let (fourth, addr) = c.launch_joiner(dir.path(), 4, "").await;
    let out = c.admin(2, &["add-learner", "--id", "4", "--address", &addr]);
    assert!(out.contains("learner"), "{out}");
    // Once ready (caught up), the learner serves what was written before it joined.
    fourth.wait_ready().await;
    let r = send(client().get(format!("http://{addr}/api/metadata/taskdefs/grow_0"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    c.admin(2, &["promote", "--id", "4"]);
    let status = c.status(c.wait_leader(Duration::from_secs(5)).await).await;
    let voters = status["members"].as_array().map(|m| m.iter().filter(|m| m["voter"] == true).count());
    assert_eq!(voters, Some(4), "{status}");

    c.admin(2, &["remove", "--id", "4"]);
    let status = c.status(c.wait_leader(Duration::from_secs(5)).await).await;
    assert_eq!(status["members"].as_array().map(Vec::len), Some(3), "{status}");
    // Still serving with three.
    let r = send(client().post(c.api(1, "/workflow/grow_flow")).json(&json!({"n": 1}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// The leader itself can be removed: it hands leadership to another member first, and the
/// others go on without it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_is_removed_and_the_others_go_on() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    Workload::register(&c.nodes[0].url, "shrink", 1).await;
    let (fourth, addr) = c.launch_joiner(dir.path(), 4, "").await;
    c.admin(1, &["add-learner", "--id", "4", "--address", &addr]);
    fourth.wait_ready().await;
    c.admin(1, &["promote", "--id", "4"]);
    let leader = c.wait_leader(Duration::from_secs(5)).await;
    let other = c.other_than(leader);
    c.admin(other, &["remove", "--id", &leader.to_string()]);
    let ok = wait_for(Duration::from_secs(10), || async {
        let status = c.status(other).await;
        status["leader"].as_u64().is_some_and(|l| l != leader as u64)
            && status["members"].as_array().is_some_and(|m| m.len() == 3 && m.iter().all(|m| m["id"] != leader))
    })
    .await;
    assert!(ok, "{}", c.status(other).await);
    let r = send_retrying(client().post(c.api(other, "/workflow/shrink_flow")).json(&json!({"n": 1}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(client().get(format!("http://{addr}/api/metadata/taskdefs/shrink_0"))).await;
    assert_eq!(r.status, 200, "the fourth node serves on: {}", r.text);
}

/// Retry, terminate, search, sync execution and idempotent starts through a follower of a
/// three-node cluster: writes forwarded to the leader, answered as on one node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn operations_through_a_follower() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let f = c.other_than(leader);
    let http = client();
    let url = |path: &str| c.api(f, path);
    let r =
        send_retrying(http.post(url("/metadata/taskdefs")).json(&json!([{"name": "cl_op", "retryCount": 0}]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let def = json!({"name": "cl_ops", "version": 1, "tasks": [{"name": "cl_op", "taskReferenceName": "t"},
        {"name": "calc", "taskReferenceName": "calc", "type": "INLINE", "inputParameters": {"expression": "1 + 1"}}]});
    assert_eq!(send_retrying(http.post(url("/metadata/workflow")).json(&def)).await.status, 200);

    let start = json!({"name": "cl_ops", "input": {}, "idempotencyKey": "k", "idempotencyStrategy": "RETURN_EXISTING"});
    // Retried on a 503 as a client does (with partitions, the key's partition may still be
    // electing its first leader): the key makes a second try return the first one's workflow.
    let a = send_retrying(http.post(url("/workflow")).json(&start)).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let b = send_retrying(http.post(url("/workflow")).json(&start)).await;
    assert_eq!(b.status, 200, "{}", b.text);
    let (a, b) = (a.text, b.text);
    assert_eq!(a, b, "one workflow per idempotency key, across nodes");

    let polled = send(http.get(url("/tasks/poll/batch/cl_op?count=1&timeout=3000&workerid=w"))).await;
    let task = polled.json()[0].clone();
    assert!(task.is_object(), "a 3 s poll through a follower gets the task: {} {}", polled.status, polled.text);
    let failed =
        json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "FAILED"});
    let r = send(http.post(url("/tasks")).json(&failed)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let consistent = |id: &str| url(&format!("/workflow/{id}?consistent=true"));
    assert_eq!(send(http.get(consistent(&a))).await.json()["status"], "FAILED");
    assert_eq!(send(http.post(url(&format!("/workflow/{a}/retry")))).await.status, 204);
    assert_eq!(send(http.get(consistent(&a))).await.json()["status"], "RUNNING");
    assert_eq!(send(http.delete(url(&format!("/workflow/{a}?reason=done")))).await.status, 200);
    assert_eq!(send(http.get(consistent(&a))).await.json()["status"], "TERMINATED");

    // Search on the follower that took the writes: its own index, caught up to them.
    let search = |n: usize, query: &str| {
        reqwest::Url::parse_with_params(&c.api(n, "/workflow/search"), [("query", query)]).expect("url")
    };
    let r = send(http.get(search(f, "workflowType = 'cl_ops' AND status = 'TERMINATED'"))).await;
    assert_eq!(
        (r.json()["totalHits"].as_u64(), r.json()["results"][0]["workflowId"].as_str()),
        (Some(1), Some(a.as_str()))
    );
    let tasks = reqwest::Url::parse_with_params(&url("/tasks/search"), [("query", "taskType = 'cl_op'")]).expect("url");
    let r = send(http.get(tasks)).await;
    assert_eq!(r.json()["totalHits"], 2, "the failed attempt and its retry: {}", r.text);
    // Every node's index says the same once it has applied as far.
    for n in 1..=3 {
        let same = overture_tests::wait_for(Duration::from_secs(10), || async {
            send(http.get(search(n, "status = 'TERMINATED'"))).await.json()["totalHits"] == 1
        })
        .await;
        assert!(same, "node {n} finds the terminated workflow");
    }

    let sync = json!({"input": {}});
    let r = send(http.post(url("/workflow/execute/cl_ops/1?waitUntilTaskRef=t&waitForSeconds=1")).json(&sync)).await;
    assert_eq!((r.status, r.json()["signalTimeout"].as_bool()), (200, Some(true)), "{}", r.text);
}

/// With API keys configured on every node: a token from one node opens every node, and a write
/// through a follower is forwarded with it. The cluster CLI trades a key for a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_from_one_node_opens_every_node() {
    let dir = tempfile::tempdir().expect("dir");
    let c = cluster(dir.path(), "[api_keys]\nops = \"cluster-key-secret\"\n").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let f = c.other_than(leader);
    let other = (1..=3).find(|n| *n != leader && *n != f).expect("a third node");
    let http = client();
    let r =
        send(http.post(c.api(other, "/token")).json(&json!({"keyId": "ops", "keySecret": "cluster-key-secret"}))).await;
    let token = r.json()["token"].as_str().expect("token").to_owned();
    assert_eq!(send(http.get(c.api(f, "/metadata/taskdefs"))).await.status, 401);
    let def =
        json!({"name": "keyed", "version": 1, "tasks": [{"name": "noop", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = send_retrying(http.post(c.api(f, "/metadata/workflow")).header("X-Authorization", &token).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(http.post(c.api(f, "/workflow/keyed")).header("X-Authorization", &token).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.text;
    let r = send(http.get(c.api(leader, &format!("/workflow/{id}?consistent=true"))).header("X-Authorization", &token))
        .await;
    assert_eq!(r.json()["status"], "COMPLETED", "{}", r.text);

    let status = |key: &str| {
        std::process::Command::new(overture_tests::overture_bin())
            .args(["cluster", "status", "--json", "--url", &c.nodes[f - 1].url, "--api-key", key])
            .output()
            .expect("cli runs")
    };
    let ok = status("ops:cluster-key-secret");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let view: Value = serde_json::from_slice(&ok.stdout).expect("JSON status");
    assert_eq!(view["leader"].as_u64(), Some(leader as u64));
    let refused = status("ops:wrong");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("401"), "{}", String::from_utf8_lossy(&refused.stderr));
}

/// A schedule firing every second keeps firing across a leader SIGKILL: the new leader reads
/// where the last committed fire left it, runs the seconds the election took (late, within the
/// grace period), and no second fires twice or starts two workflows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_schedule_fires_once_per_second_across_a_leader_kill() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = cluster(dir.path(), "").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let f = c.other_than(leader);
    let http = client();
    let def =
        json!({"name": "cron_tick", "version": 1, "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    assert_eq!(send_retrying(http.post(c.api(f, "/metadata/workflow")).json(&def)).await.status, 200);
    let schedule =
        json!({"name": "ha_tick", "cronExpression": "* * * * * *", "startWorkflowRequest": {"name": "cron_tick"}});
    let r = send(http.post(c.api(f, "/scheduler/schedules")).json(&schedule)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let bases = urls(&c);
    let runs = |n: usize| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/api/scheduler/search/executions", bases[n - 1]),
            [
                ("query", "scheduleName = 'ha_tick'"),
                ("size", "1000"),
                ("sort", "scheduledTime:ASC"),
                ("consistent", "true"),
            ],
        )
        .expect("url");
        let http = http.clone();
        async move { send(http.get(url)).await.json()["results"].as_array().cloned().unwrap_or_default() }
    };
    assert!(wait_for(Duration::from_secs(10), || async { runs(f).await.len() >= 2 }).await);
    c.nodes[leader - 1].kill9().await;
    let killed_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let survivor = c.other_than(leader);
    assert!(
        wait_for(Duration::from_secs(30), || async {
            runs(survivor).await.iter().filter_map(|r| r["scheduledTime"].as_i64()).any(|t| t > killed_at + 2000)
        })
        .await,
        "the new leader fires the schedule"
    );
    let records = runs(survivor).await;
    let times: Vec<i64> = records.iter().filter_map(|r| r["scheduledTime"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 1000), "every second once, the election included: {times:?}");
    let ids: std::collections::BTreeSet<&str> = records.iter().filter_map(|r| r["workflowId"].as_str()).collect();
    assert_eq!(ids.len(), records.len(), "one workflow per fire");
    for id in ids {
        let r = send(http.get(c.api(survivor, &format!("/workflow/{id}?consistent=true")))).await;
        assert_eq!(r.status, 200, "the fire's workflow exists: {}", r.text);
    }
}

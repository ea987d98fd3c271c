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
    let (mut stranger, stranger_addr) = c.launch_joiner(dir.path(), 5, "partitions = 1").await;
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

/// The partition a workflow id belongs to: FNV-1a of its bytes, mod P, plus one (the layout
/// the server keeps, written out again here so a change to it fails this test).
fn partition_of(id: &str, partitions: u64) -> usize {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    1 + (hash % partitions) as usize
}

/// How many workflows a search through the node at `url` finds.
async fn search_total(url: &str, query: &str) -> u64 {
    let r = send(client().get(format!("{url}/api/workflow/search?size=5&query={query}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["totalHits"].as_u64().unwrap_or_default()
}

/// Three nodes with six partitions, once every node sees them led 1, 2, 3, 1, 2, 3; and the
/// nodes' URLs.
async fn dealt_out(dir: &std::path::Path) -> (Cluster, Vec<String>) {
    dealt_out_with(dir, PARTITIONS).await
}

/// [`dealt_out`] with `config` (which sets `partitions = 6`) in every node's configuration.
async fn dealt_out_with(dir: &std::path::Path, config: &str) -> (Cluster, Vec<String>) {
    let c = Cluster::start(dir, 3, config).await;
    for n in 1..=3 {
        wait_leaders(&c, n, &[1, 2, 3, 1, 2, 3], Duration::from_secs(30)).await;
    }
    let urls = c.nodes.iter().map(|n| n.url.clone()).collect();
    (c, urls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_run_in_every_partition_and_every_node_serves_them() {
    let dir = tempfile::tempdir().expect("dir");
    let (_c, urls) = dealt_out(dir.path()).await;
    Workload::register(&urls[1], "spread", 2).await;
    // Starts, polls and updates through every node; each lands where its partition is led.
    let load = Workload::run(urls.clone(), "spread", 2, 3, 6, 300);
    let ok = wait_for(Duration::from_secs(120), || async { load.started() >= 300 && load.updated() >= 600 }).await;
    let ledger = load.stop().await;
    assert!(
        ok,
        "started {} updated {}",
        ledger.started.lock().expect("lock").len(),
        ledger.updated.lock().expect("lock").len()
    );
    // Workers finish what is left: a start whose client gave up (3 s) may still have been made,
    // and its tasks took results the acknowledged ones needed.
    let finisher = Workload::run(urls.clone(), "spread", 2, 0, 4, 0);
    for url in &urls {
        overture_tests::check_ledger(url, &ledger, 2, Duration::from_secs(60)).await;
    }
    finisher.stop().await;
    // Every partition holds some of them, and a search through any node counts them all.
    let started = ledger.started.lock().expect("lock").clone();
    let mut per_partition = [0usize; 7];
    for id in &started {
        per_partition[partition_of(id, 6)] += 1;
    }
    assert!(per_partition[1..].iter().all(|&n| n > 0), "{per_partition:?}");
    for url in &urls {
        let total = search_total(url, "workflowType%3D%27spread_flow%27").await;
        // At least every acknowledged start; a start whose answer the client gave up on (its
        // 3 s timeout, under load) may have been made too.
        assert!(total >= started.len() as u64, "search through {url}: {total} of {}", started.len());
    }
    // Started through node 1 (into the partitions it leads), worked only through node 3: polls
    // there receive the tasks of partitions another node leads.
    let starts = Workload::run(vec![urls[0].clone()], "spread", 2, 1, 0, 30);
    assert!(wait_for(Duration::from_secs(30), || async { starts.started() >= 30 }).await);
    let started = starts.stop().await;
    let work = Workload::run(vec![urls[2].clone()], "spread", 2, 0, 3, 0);
    let ok = wait_for(Duration::from_secs(60), || async { work.updated() >= 60 }).await;
    let worked = work.stop().await;
    assert!(ok, "node 3 alone served {} results", worked.updated.lock().expect("lock").len());
    let ids = started.started.lock().expect("lock").clone();
    for id in &ids {
        assert!([1, 4].contains(&partition_of(id, 6)), "a start on node 1 goes to a partition it leads: {id}");
        overture_tests::wait_status_at(&urls[2], id, "COMPLETED", Duration::from_secs(30)).await;
    }
    let forwarded = overture_tests::metric_sum(&urls[2], "overture_task_poll_forwarded_total").await.unwrap_or(0.0);
    assert!(forwarded >= 60.0, "node 3's polls received {forwarded} tasks of other nodes' partitions");
}

/// Registers `def` through `url` and starts it there with `input`; answers its id.
async fn start_at(url: &str, def: &serde_json::Value, input: serde_json::Value) -> String {
    let r = overture_tests::send_retrying(client().post(format!("{url}/api/metadata/workflow")).json(def)).await;
    assert!(r.status == 200 || r.status == 409, "{}", r.text);
    let name = def["name"].as_str().unwrap_or_default();
    let r = overture_tests::send_retrying(client().post(format!("{url}/api/workflow/{name}")).json(&input)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_handler_actions_reach_workflows_in_partitions_other_nodes_lead() {
    let dir = tempfile::tempdir().expect("dir");
    let (_c, urls) = dealt_out(dir.path()).await;
    let started_by_event = json!({"name": "started_by_event", "version": 1,
        "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = overture_tests::send_retrying(
        client().post(format!("{}/api/metadata/workflow", urls[2])).json(&started_by_event),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let handler = json!({
        "name": "on_ping", "event": "conductor:pinger:ping", "active": true,
        "actions": [
            {"action": "start_workflow", "start_workflow": {"name": "started_by_event", "input": {"level": "${level}"}}},
            {"action": "complete_task", "complete_task": {"workflowId": "${target}", "taskRefName": "hold", "output": {"heard": "${level}"}}},
            {"action": "update_workflow_variables", "update_workflow_variables": {"workflowId": "${target}", "variables": {"pinged": true}}}
        ]
    });
    let r = overture_tests::send_retrying(client().post(format!("{}/api/event", urls[1])).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The listener waits in a partition node 1 leads; the pinger runs in one node 2 leads, and
    // its EVENT task's handler acts on the listener across nodes.
    let listener = json!({"name": "listener", "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}]});
    let listener_id = start_at(&urls[0], &listener, json!({})).await;
    assert!([1, 4].contains(&partition_of(&listener_id, 6)), "{listener_id}");
    let pinger = json!({"name": "pinger", "version": 1, "tasks": [
        {"name": "ping", "taskReferenceName": "ping", "type": "EVENT", "sink": "conductor",
         "inputParameters": {"level": 5, "target": "${workflow.input.target}"}}]});
    let pinger_id = start_at(&urls[1], &pinger, json!({"target": listener_id})).await;
    assert!([2, 5].contains(&partition_of(&pinger_id, 6)), "{pinger_id}");
    overture_tests::wait_status_at(&urls[1], &pinger_id, "COMPLETED", Duration::from_secs(20)).await;
    let heard = overture_tests::wait_status_at(&urls[2], &listener_id, "COMPLETED", Duration::from_secs(20)).await;
    let hold = heard["tasks"].as_array().and_then(|t| t.first()).cloned().unwrap_or_default();
    assert_eq!(hold["outputData"]["heard"], 5, "{heard}");
    assert_eq!(heard["variables"]["pinged"], true, "{heard}");
    // The started workflow exists once, wherever its id put it, and every node finds it.
    let ok = wait_for(Duration::from_secs(20), || async {
        let r =
            send(client().get(format!("{}/api/workflow/search?query=workflowType%3D%27started_by_event%27", urls[0])))
                .await;
        r.json()["totalHits"] == 1
    })
    .await;
    assert!(ok, "one workflow started by the event");

    // A bulk operation through one node reaches the workflows of every partition.
    let mut ids = Vec::new();
    for url in &urls {
        for _ in 0..2 {
            ids.push(start_at(url, &listener, json!({})).await);
        }
    }
    let r = send(client().post(format!("{}/api/workflow/bulk/terminate?reason=bulk", urls[0])).json(&ids)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let done = r.json();
    assert_eq!(done["bulkSuccessfulResults"].as_array().map(Vec::len), Some(6), "{done}");
    for id in &ids {
        overture_tests::wait_status_at(&urls[2], id, "TERMINATED", Duration::from_secs(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_gets_another_nodes_task_as_soon_as_it_is_ready_and_every_node_shows_the_poll() {
    let dir = tempfile::tempdir().expect("dir");
    let (_c, urls) = dealt_out(dir.path()).await;
    let def = json!({"name": "ready_notice", "version": 1, "tasks": [
        {"name": "就绪任务", "taskReferenceName": "就绪", "type": "SIMPLE"}]});
    let r = overture_tests::send_retrying(client().post(format!("{}/api/metadata/workflow", urls[1])).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut latencies = Vec::new();
    for round in 0..5 {
        // A poll on node 3 finds nothing anywhere: node 3 leaves node 2 alone for this queue
        // for a while, and node 2 keeps node 3 informed about it.
        let r = send(client().get(format!("{}/api/tasks/poll/batch/就绪任务?count=1&timeout=0", urls[2]))).await;
        assert_eq!(r.json(), json!([]), "round {round}: {}", r.text);
        let url = urls[2].clone();
        let waiting = tokio::spawn(async move {
            let r =
                send(client().get(format!("{url}/api/tasks/poll/batch/就绪任务?count=1&timeout=5000&workerid=远方")))
                    .await;
            (r, Instant::now())
        });
        // Started on node 2: its task is queued in a partition node 2 leads, where nobody polls.
        let sent = Instant::now();
        let r = send(client().post(format!("{}/api/workflow/ready_notice", urls[1])).json(&json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.text;
        assert!([2, 5].contains(&partition_of(&id, 6)), "{id}");
        let (polled, at) = waiting.await.expect("poll");
        assert_eq!(polled.status, 200, "{}", polled.text);
        assert_eq!(polled.json()[0]["workflowInstanceId"], id.as_str(), "round {round}: {}", polled.text);
        latencies.push(at.duration_since(sent));
    }
    latencies.sort();
    // How soon is for the benchmark to say; this machine's load makes any bound here flaky.
    println!("from the start to the waiting poll's answer: {latencies:?}");
    // The notices are what woke the polls: most find the poll waiting (the others came before
    // it, and cleared the way); without them node 3 asks node 2 again only after 250 ms.
    let woke = r#"overture_ready_notices_total{outcome="woke"}"#;
    let woke = overture_tests::metric_sum(&urls[1], woke).await.unwrap_or(0.0);
    assert!(woke >= 3.0, "node 2's notices woke {woke} polls on node 3");
    // Node 1 served none of these polls; its poll data has node 3's worker.
    let r = send(client().get(format!("{}/api/tasks/queue/polldata?taskType=就绪任务", urls[0]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.json();
    assert_eq!(data.as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!(
        (data[0]["queueName"].as_str(), data[0]["workerId"].as_str()),
        (Some("就绪任务"), Some("远方")),
        "{data}"
    );
    let r = send(client().get(format!("{}/api/tasks/queue/polldata/all", urls[0]))).await;
    assert!(r.json().as_array().is_some_and(|all| all.iter().any(|p| p["workerId"] == "远方")), "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_read_never_answers_from_a_stale_partition_replica() {
    let dir = tempfile::tempdir().expect("dir");
    let config = format!("{PARTITIONS}\n{}", overture_tests::faults::CONFIG);
    let (c, urls) = dealt_out_with(dir.path(), &config).await;
    // The metadata group's leader M, and another node L, which leads partitions of its own.
    let status = send(client().get(format!("{}/api/cluster/status", urls[0]))).await.json();
    let m = status["leader"].as_u64().expect("a metadata leader") as usize;
    let l = m % 3 + 1;
    let def = json!({"name": "一致读", "version": 1, "tasks": [
        {"name": "一致任务", "taskReferenceName": "一致", "type": "SIMPLE"}]});
    let r =
        overture_tests::send_retrying(client().post(format!("{}/api/metadata/workflow", urls[l - 1])).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(client().post(format!("{}/api/workflow/一致读", urls[l - 1])).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.text;
    overture_tests::wait_status_at(&urls[m - 1], &id, "RUNNING", Duration::from_secs(10)).await;
    // M no longer hears from L; L's partition goes on with the third node.
    overture_tests::faults::cut_link(&c, m, l).await;
    let task = send(client().get(format!("{}/api/tasks/poll/一致任务?workerid=w", urls[l - 1]))).await.json();
    let done = json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "COMPLETED"});
    let r = send(client().post(format!("{}/api/tasks", urls[l - 1])).json(&done)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    overture_tests::wait_status_at(&urls[l - 1], &id, "COMPLETED", Duration::from_secs(10)).await;
    // A plain read on M is its own replica's, which has not heard.
    let stale = send(client().get(format!("{}/api/workflow/{id}", urls[m - 1]))).await;
    assert_eq!(stale.json()["status"], "RUNNING", "{}", stale.text);
    // A consistent read on M must not say so: L cannot be asked, so it is a retryable 503.
    let r = send(client().get(format!("{}/api/workflow/{id}?consistent=true", urls[m - 1]))).await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json()["retryable"], true, "{}", r.text);
    overture_tests::faults::heal(&c).await;
    let ok = wait_for(Duration::from_secs(20), || async {
        let r = send(client().get(format!("{}/api/workflow/{id}?consistent=true", urls[m - 1]))).await;
        r.status == 200 && r.json()["status"] == "COMPLETED"
    })
    .await;
    assert!(ok, "after healing, a consistent read on node {m} sees the task done");
}

/// The idempotency key of a START_WORKFLOW task is claimed in the key's partition, where API
/// starts with it go: a task in a partition one node leads meets a key held in a partition
/// another node leads. Each spawner starts through the node after the one that leads its key's
/// partition, so the spawner's partition is never the key's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_workflow_tasks_meet_api_starts_that_share_their_key_in_another_partition() {
    use overture_tests::keyed;
    let dir = tempfile::tempdir().expect("dir");
    let (_c, urls) = dealt_out(dir.path()).await;
    keyed::register(&urls[0]).await;
    for n in 0..6 {
        let (key, fresh) = (format!("订单-{n}"), format!("新订单-{n}"));
        let key_partition = partition_of(&format!("{}\u{0}{key}", keyed::HELD), 6);
        // Partition p is led by node (p − 1) mod 3 + 1, i.e. urls[(p − 1) % 3].
        let (api, spawner_at) = (&urls[(key_partition - 1) % 3], &urls[key_partition % 3]);
        let spawner = keyed::check(api, spawner_at, &key, &fresh).await;
        assert_ne!(partition_of(&spawner, 6), key_partition, "{spawner} and {key}");
    }
}

/// Polls `task_type` through `url` without waiting; answers the tasks handed out.
async fn poll_now(url: &str, task_type: &str, count: usize) -> Vec<serde_json::Value> {
    let r =
        send(client().get(format!("{url}/api/tasks/poll/batch/{task_type}?count={count}&timeout=0&workerid=限"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().cloned().unwrap_or_default()
}

/// [`poll_now`], where a node may answer 503 while a partition elects a leader: nothing.
async fn poll_now_or_nothing(url: &str, task_type: &str, count: usize) -> Vec<serde_json::Value> {
    let r =
        send(client().get(format!("{url}/api/tasks/poll/batch/{task_type}?count={count}&timeout=0&workerid=限"))).await;
    if r.status == 503 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().cloned().unwrap_or_default()
}

/// A task definition's `concurrentExecLimit` and rate limit count over the whole cluster: the
/// tasks sit in partitions every node leads, workers poll every node, and no more run at once
/// (or start per window) than the definition allows. A slot freed in one partition goes to a
/// task of another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_limits_count_over_every_partition_and_every_node() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut c, urls) = dealt_out(dir.path()).await;
    let defs = json!([
        {"name": "两个一起", "concurrentExecLimit": 2, "retryCount": 0, "responseTimeoutSeconds": 60},
        {"name": "每分钟两个", "rateLimitPerFrequency": 2, "rateLimitFrequencyInSeconds": 60, "retryCount": 0,
         "responseTimeoutSeconds": 60}
    ]);
    let r =
        overture_tests::send_retrying(client().post(format!("{}/api/metadata/taskdefs", urls[0])).json(&defs)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let limited = json!({"name": "限流", "version": 1, "tasks": [{"name": "两个一起", "taskReferenceName": "t"}]});
    let rated = json!({"name": "限速", "version": 1, "tasks": [{"name": "每分钟两个", "taskReferenceName": "t"}]});
    // Started through every node in turn: each start goes to a partition that node leads.
    let mut ids = Vec::new();
    for n in 0..9 {
        ids.push(start_at(&urls[n % 3], &limited, json!({"n": n})).await);
    }
    let leaders: std::collections::BTreeSet<usize> = ids.iter().map(|id| (partition_of(id, 6) - 1) % 3).collect();
    assert_eq!(leaders.len(), 3, "the tasks wait in partitions of every node");

    // Polled through every node in turn, two are handed out, and no more while they run; each
    // finished one lets exactly one more out, from whichever partition.
    let (mut running, mut finished, mut most) = (Vec::<serde_json::Value>::new(), 0usize, 0usize);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(90);
    let mut round = 0;
    while finished < ids.len() && Instant::now() < deadline {
        round += 1;
        let got = poll_now(&urls[round % 3], "两个一起", 5).await;
        running.extend(got);
        most = most.max(running.len());
        let ids_running: Vec<&serde_json::Value> = running.iter().map(|t| &t["taskId"]).collect();
        assert!(running.len() <= 2, "{} run at once: {ids_running:?}", running.len());
        // Finish one once two run, through yet another node.
        if running.len() == 2 {
            let task = running.remove(0);
            let done = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"],
                "status": "COMPLETED", "outputData": {"完成": true}});
            let r = overture_tests::send_retrying(
                client().post(format!("{}/api/tasks", urls[(round + 1) % 3])).json(&done),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text);
            finished += 1;
        } else if running.len() == 1 && finished + 1 == ids.len() {
            let task = running.remove(0);
            let done = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED"});
            let r = overture_tests::send_retrying(client().post(format!("{}/api/tasks", urls[round % 3])).json(&done))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            finished += 1;
        } else {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!((finished, most), (ids.len(), 2), "finished, and the most that ran at once");
    println!("{} limited tasks ran two at a time in {:?} ({round} polls)", ids.len(), started.elapsed());
    for id in &ids {
        overture_tests::wait_status_at(&urls[0], id, "COMPLETED", Duration::from_secs(30)).await;
    }
    let mut busy = 0.0;
    for url in &urls {
        busy += overture_tests::metric_sum(url, r#"overture_task_permits_total{answer="busy"}"#).await.unwrap_or(0.0);
    }
    assert!(busy >= 1.0, "the metadata leader refused permits {busy} times");

    // Two a minute over the cluster, however many nodes the workers poll.
    for n in 0..6 {
        start_at(&urls[n % 3], &rated, json!({"n": n})).await;
    }
    let (mut handed, mut round) = (0usize, 0usize);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut settled: Option<Instant> = None;
    while Instant::now() < deadline && settled.is_none_or(|at| at.elapsed() < Duration::from_millis(1500)) {
        round += 1;
        handed += poll_now(&urls[round % 3], "每分钟两个", 5).await.len();
        assert!(handed <= 2, "{handed} handed out within a minute");
        if handed == 2 && settled.is_none() {
            settled = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(handed, 2, "handed out within the first seconds");

    // The metadata leader dies while two run: its successor learns what runs from the
    // partitions' reports before it grants anything, so a third waits for one to finish.
    let mut more = Vec::new();
    for n in 0..3 {
        more.push(start_at(&urls[n % 3], &limited, json!({"再": n})).await);
    }
    let mut running = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while running.len() < 2 && Instant::now() < deadline {
        running.extend(poll_now(&urls[running.len() % 3], "两个一起", 5).await);
    }
    assert_eq!(running.len(), 2);
    let keeper = c.status(1).await["groups"][0]["leader"].as_u64().expect("a metadata leader") as usize;
    c.nodes[keeper - 1].kill9().await;
    let alive: Vec<&String> = urls.iter().enumerate().filter(|(i, _)| i + 1 != keeper).map(|(_, u)| u).collect();
    let elected = wait_for(Duration::from_secs(15), || async {
        let leader = c.status(c.other_than(keeper)).await["groups"][0]["leader"].as_u64();
        leader.is_some_and(|l| l as usize != keeper)
    })
    .await;
    assert!(elected, "no new metadata leader");
    let watched = Instant::now();
    let mut round = 0;
    while watched.elapsed() < Duration::from_secs(3) {
        round += 1;
        let got = poll_now_or_nothing(alive[round % 2], "两个一起", 5).await;
        assert!(got.is_empty(), "a third ran after the metadata leader changed: {}", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let task = running.remove(0);
    let done =
        json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED"});
    let r = overture_tests::send_retrying(client().post(format!("{}/api/tasks", alive[0])).json(&done)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut third = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while third.is_empty() && Instant::now() < deadline {
        round += 1;
        third = poll_now_or_nothing(alive[round % 2], "两个一起", 5).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(third.len(), 1, "the freed slot goes to one waiting task");
}

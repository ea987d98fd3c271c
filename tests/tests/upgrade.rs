//! Upgrades without downtime: nodes of two protocol versions in one cluster, a node replaced one
//! at a time under load, a request of a version a node cannot speak, and a data directory written
//! by an earlier release opened by this one (`tests/fixtures/datadir-v*.tar.gz`, written by
//! `tests/examples/make_datadir.rs`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use overture_tests::{Cluster, Node, Workload, check_ledger, client, crate_dir, send, wait_for, wait_status};
use serde_json::{Value, json};

/// The protocol version this build speaks (`overture_raft::protocol::PROTOCOL_VERSION`).
const PROTOCOL_VERSION: u64 = 1;

fn urls(c: &Cluster) -> Vec<String> {
    c.nodes.iter().map(|n| n.url.clone()).collect()
}

/// Sets (or, with `None`, removes) `protocol_version` in node `n`'s configuration file, which
/// the cluster harness writes as `dir/node-{n}.toml` with its tables after the settings.
fn set_protocol_version(dir: &Path, n: usize, version: Option<u64>) {
    let path = dir.join(format!("node-{n}.toml"));
    let text = std::fs::read_to_string(&path).expect("the node's configuration");
    let mut text: String =
        text.lines().filter(|l| !l.starts_with("protocol_version")).map(|l| format!("{l}\n")).collect();
    if let Some(v) = version {
        let at = text.find("\n[").map_or(text.len(), |i| i + 1);
        text.insert_str(at, &format!("protocol_version = {v}\n"));
    }
    std::fs::write(&path, text).expect("configuration written");
}

/// Stops node `n` gracefully (as an operator replacing it does) and starts it again with its
/// configuration file as it is now, waiting until it serves.
async fn replace(c: &mut Cluster, n: usize) {
    c.nodes[n - 1].terminate().await;
    c.restart(n).await;
    c.nodes[n - 1].wait_ready().await;
}

/// Each member's `protocolVersion` as node `n` reports it (`None` where it has not heard).
async fn versions_seen_by(c: &Cluster, n: usize) -> BTreeMap<u64, Option<u64>> {
    let r = send(client().get(c.api(n, "/cluster/status"))).await;
    if r.status != 200 {
        return BTreeMap::new();
    }
    let status = r.json();
    status["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| Some((m["id"].as_u64()?, m["protocolVersion"].as_u64())))
        .collect()
}

/// Waits until every running node reports `expected` (member id → version) for every member.
async fn wait_versions(c: &Cluster, expected: &BTreeMap<u64, Option<u64>>) {
    for n in 1..=c.nodes.len() {
        let agreed = wait_for(Duration::from_secs(30), || async { &versions_seen_by(c, n).await == expected }).await;
        assert!(agreed, "node {n} sees {:?}, not {expected:?}", versions_seen_by(c, n).await);
    }
}

/// The value of the series of `name` labelled `peer="{peer}"` on a node's `/metrics`.
async fn peer_gauge(url: &str, name: &str, peer: u64) -> Option<f64> {
    let text = send(client().get(format!("{url}/metrics"))).await.text;
    let prefix = format!("{name}{{peer=\"{peer}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

/// Three partitioned nodes, node 3 speaking version 0 (as a node built before the protocol
/// version existed does), serve a workload started and worked through every node. The nodes are
/// replaced one at a time while it runs: node 3 comes back speaking the current version (the
/// upgrade), then the others are restarted. Every acknowledged workflow completes, each step
/// once, and the cluster status shows the mix of versions, then none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_keeps_serving_while_its_nodes_are_upgraded_one_at_a_time() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = Cluster::start(dir.path(), 3, "partitions = 3").await;
    set_protocol_version(dir.path(), 3, Some(0));
    replace(&mut c, 3).await;
    let v = PROTOCOL_VERSION;
    let mixed = BTreeMap::from([(1, Some(v)), (2, Some(v)), (3, Some(0))]);
    wait_versions(&c, &mixed).await;
    let status = c.status(3).await;
    assert_eq!(status["protocolVersion"], 0, "node 3 says what it speaks: {status}");
    assert_eq!(status["supportedProtocolVersions"], json!([0, v]), "{status}");
    assert_eq!(peer_gauge(&c.nodes[0].url, "overture_peer_protocol_version", 3).await, Some(0.0));
    assert_eq!(peer_gauge(&c.nodes[0].url, "overture_peer_protocol_version", 2).await, Some(v as f64));

    Workload::register(&c.nodes[2].url, "upg", 3).await;
    let load = Workload::run(urls(&c), "upg", 3, 3, 6, 300);
    let progress = |at_least: usize| {
        let load = &load;
        async move {
            let made = wait_for(Duration::from_secs(90), || async { load.started() >= at_least }).await;
            assert!(made, "the load made progress: {} of {at_least} started", load.started());
        }
    };
    progress(40).await;

    // The upgrade: node 3 comes back speaking the current version.
    set_protocol_version(dir.path(), 3, None);
    replace(&mut c, 3).await;
    progress(load.started() + 40).await;
    // Then the others, one at a time: the leader of the metadata group among them.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let others: Vec<usize> = [1, 2].into_iter().filter(|n| *n != leader).collect();
    for n in others.into_iter().chain((leader != 3).then_some(leader)) {
        replace(&mut c, n).await;
        progress((load.started() + 40).min(300)).await;
    }
    progress(300).await;
    let everyone = BTreeMap::from([(1, Some(v)), (2, Some(v)), (3, Some(v))]);
    wait_versions(&c, &everyone).await;
    assert_eq!(peer_gauge(&c.nodes[0].url, "overture_peer_protocol_version", 3).await, Some(v as f64));

    let ledger = load.stop().await;
    let finisher = Workload::run(urls(&c), "upg", 3, 0, 6, 0);
    check_ledger(&c.nodes[0].url, &ledger, 3, Duration::from_secs(120)).await;
    finisher.stop().await;
    assert!(ledger.started.lock().expect("lock").len() >= 300);
    let started = ledger.started.lock().expect("lock").clone();
    let distinct: std::collections::HashSet<&String> = started.iter().collect();
    assert_eq!(distinct.len(), started.len(), "no workflow was acknowledged twice");
}

/// A request of a protocol version the node does not speak is refused with 426 and a message
/// naming both versions, on every internal route; one without the header (version 0) or with
/// the current version is served; a body of an unknown message format is refused naming both
/// formats. A client request another node forwards is checked the same way. Every answer names
/// the version the node speaks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_of_a_protocol_version_the_node_does_not_speak_is_refused_clearly() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Cluster::start(dir.path(), 1, "").await;
    let base = &c.nodes[0].url;
    let http = client();
    let internal = |path: &str, version: Option<&str>| {
        let mut r = http
            .post(format!("{base}{path}"))
            .header("x-overture-cluster-secret", "test-secret")
            .header("x-overture-from", "7");
        if let Some(v) = version {
            r = r.header("x-overture-protocol", v);
        }
        r
    };
    let newer = (PROTOCOL_VERSION + 1).to_string();
    for path in ["/internal/raft/vote", "/internal/raft/append", "/internal/raft/snapshot", "/internal/partitions/poll"]
    {
        let r = internal(path, Some(&newer)).body(vec![1u8, 0]).send().await.expect("sent");
        assert_eq!(r.status(), 426, "{path}");
        let header = r.headers().get("x-overture-protocol").and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header, Some(PROTOCOL_VERSION.to_string()), "{path}: the answer names the node's version");
        let body: Value = r.json().await.expect("a JSON refusal");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(&format!("version {newer}")), "{path}: names the request's version: {body}");
        assert!(message.contains(&format!("0 to {PROTOCOL_VERSION}")), "{path}: names the node's versions: {body}");
        assert_eq!(body["requestProtocolVersion"], PROTOCOL_VERSION + 1, "{body}");
        assert_eq!(body["maxProtocolVersion"], PROTOCOL_VERSION, "{body}");
        assert_eq!(body["status"], 426, "{body}");
    }
    let r = send(internal("/internal/raft/vote", Some("soon")).body("x")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("x-overture-protocol"), "{}", r.text);

    // Version 0 (no header) and the current version are served; a vote whose body is of an
    // unknown message format is answered with an error naming both formats.
    for version in [None, Some(PROTOCOL_VERSION.to_string())] {
        let r = internal("/internal/raft/vote", version.as_deref()).body(vec![9u8, 0, 0]).send().await.expect("sent");
        assert_eq!(r.status(), 200, "{version:?}");
        assert_eq!(
            r.headers().get("x-overture-protocol").and_then(|v| v.to_str().ok()),
            Some(PROTOCOL_VERSION.to_string().as_str())
        );
        let answer = r.bytes().await.expect("body");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.contains("node-to-node message: unknown format version 9 (this build reads version 1)"),
            "{version:?}: {text}"
        );
    }
    // A client request another node forwards names the forwarding node's version too.
    let forwarded = |version: &str| {
        http.get(format!("{base}/api/metadata/workflow"))
            .header("x-overture-forwarded-by", "7")
            .header("x-overture-protocol", version)
    };
    let r = forwarded(&newer).send().await.expect("sent");
    assert_eq!(r.status(), 426, "a forwarded request of a version the node does not serve");
    let body: Value = r.json().await.expect("a JSON refusal");
    assert_eq!(body["requestProtocolVersion"], PROTOCOL_VERSION + 1, "{body}");
    let r = forwarded(&PROTOCOL_VERSION.to_string()).send().await.expect("sent");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers().get("x-overture-protocol").and_then(|v| v.to_str().ok()),
        Some(PROTOCOL_VERSION.to_string().as_str()),
        "the answer to a forwarded request names the node's version"
    );
    let refused = overture_tests::metric_sum(base, "overture_protocol_refused_total").await;
    assert_eq!(refused, Some(5.0), "each refusal is counted");
    assert_eq!(overture_tests::metric_sum(base, "overture_protocol_version").await, Some(PROTOCOL_VERSION as f64));
    // The sender of the served requests (node 7, no member) was recorded at what it spoke last.
    assert_eq!(peer_gauge(base, "overture_peer_protocol_version", 7).await, Some(PROTOCOL_VERSION as f64));
}

/// The archived data directories of earlier releases, oldest first.
fn fixtures() -> Vec<PathBuf> {
    let dir = crate_dir().join("fixtures");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("datadir-v") && n.ends_with(".tar.gz"))
        })
        .collect();
    found.sort();
    found
}

/// Completes every task of `task_types` handed out through `node` until `done` holds.
async fn work_until(node: &Node, task_types: &[&str], done: impl AsyncFn() -> bool) {
    let http = client();
    let finished = wait_for(Duration::from_secs(60), || async {
        for t in task_types {
            let polled =
                send(http.get(node.api(&format!("/tasks/poll/batch/{t}?count=10&timeout=100&workerid=新工人")))).await;
            let tasks = if polled.status == 200 { polled.json() } else { json!([]) };
            for task in tasks.as_array().into_iter().flatten() {
                let result = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"],
                                    "status": "COMPLETED", "outputData": {"by": "升级后", "状态": "已发货"}});
                let r = send(http.post(node.api("/tasks")).json(&result)).await;
                assert_eq!(r.status, 200, "{}", r.text);
            }
        }
        done().await
    })
    .await;
    assert!(finished, "the running workflows finished");
}

/// A data directory written by an earlier release (each archived in `tests/fixtures`) opens
/// with this build: its definitions, its ended workflows with their task history, outputs and
/// logs, Chinese names and text included, its schedule and event handler are all there and
/// searchable; the workflows it left running finish, the task a worker held before the upgrade
/// completed by that worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_directories_of_earlier_releases_open_and_their_workflows_finish() {
    let fixtures = fixtures();
    assert!(!fixtures.is_empty(), "tests/fixtures holds at least this release's data directory");
    for fixture in fixtures {
        eprintln!("opening {}", fixture.display());
        let dir = tempfile::tempdir().expect("dir");
        let status = std::process::Command::new("tar")
            .arg("-xzf")
            .arg(&fixture)
            .arg("-C")
            .arg(dir.path())
            .status()
            .expect("tar runs");
        assert!(status.success(), "{} unpacks", fixture.display());
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("fixture.json")).expect("fixture.json"))
                .expect("fixture.json is JSON");
        let contents = &manifest["contents"];
        let mut node = Node::start(&dir.path().join("datadir")).await;
        check_fixture(&node, contents).await;
        // What this build wrote on top reopens too.
        node.terminate().await;
        let node = Node::start(&dir.path().join("datadir")).await;
        let all = ids(&contents["completed"]).into_iter().chain(ids(&contents["scheduled"]));
        for id in all.chain([contents["inProgress"]["workflowId"].as_str().unwrap_or_default().to_owned()]) {
            wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
        }
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

async fn check_fixture(node: &Node, contents: &Value) {
    let http = client();
    let get = |path: String| {
        let http = http.clone();
        let url = node.api(&path);
        async move {
            let r = send(http.get(url)).await;
            assert_eq!(r.status, 200, "{path}: {}", r.text);
            r.json()
        }
    };

    // Definitions.
    let def = get("/metadata/workflow/订单审批".into()).await;
    assert_eq!(def["name"], "订单审批");
    assert_eq!(def["description"], "订单审批流程：审核，然后发货");
    let names: Vec<&str> = def["tasks"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["审核", "发货"], "{def}");
    for name in ["审核", "发货", "通知"] {
        let task_def = get(format!("/metadata/taskdefs/{name}")).await;
        assert_eq!(task_def["description"], format!("任务 {name}"), "{task_def}");
    }
    assert_eq!(get("/metadata/workflow/fx_notify".into()).await["tasks"][1]["name"], "通知");
    let schedule = get(format!("/scheduler/schedules/{}", contents["schedule"].as_str().unwrap_or_default())).await;
    assert_eq!(
        (schedule["name"].as_str(), schedule["paused"].as_bool()),
        (Some("每日_报表"), Some(true)),
        "{schedule}"
    );
    let handlers = get("/event".into()).await;
    assert!(
        handlers
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["name"] == contents["eventHandler"] && h["event"] == "conductor:订单审批:done"),
        "{handlers}"
    );

    // Ended workflows, with their task history, outputs and logs.
    let completed = ids(&contents["completed"]);
    assert_eq!(completed.len(), 3, "{contents}");
    for id in &completed[..2] {
        let wf = get(format!("/workflow/{id}")).await;
        assert_eq!(wf["status"], "COMPLETED", "{wf}");
        assert_eq!(wf["workflowName"], "订单审批");
        assert_eq!(wf["correlationId"], "升级测试");
        assert_eq!(wf["output"]["结果"], "已发货", "{wf}");
        assert_eq!(wf["output"]["意见"], "同意", "{wf}");
        let tasks = wf["tasks"].as_array().cloned().unwrap_or_default();
        let history: Vec<(&str, &str, &str)> = tasks
            .iter()
            .map(|t| {
                (
                    t["taskType"].as_str().unwrap_or_default(),
                    t["status"].as_str().unwrap_or_default(),
                    t["workerId"].as_str().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(history, [("审核", "COMPLETED", "审核员"), ("发货", "COMPLETED", "仓库")], "{wf}");
        assert_eq!(tasks[1]["inputData"]["意见"], "同意");
        assert!(tasks[1]["outputData"]["单号"].as_str().is_some_and(|s| s.starts_with("SF-")), "{wf}");
        let task_id = tasks[0]["taskId"].as_str().unwrap_or_default();
        let logs = get(format!("/tasks/{task_id}/log")).await;
        assert_eq!(logs[0]["log"], "审核员 处理了它", "{logs}");
    }
    let notified = get(format!("/workflow/{}", completed[2])).await;
    assert_eq!((notified["status"].as_str(), notified["output"]["sent"].as_bool()), (Some("COMPLETED"), Some(true)));
    assert_eq!(notified["variables"]["标记"], "张三", "{notified}");
    let terminated = get(format!("/workflow/{}", contents["terminated"].as_str().unwrap_or_default())).await;
    assert_eq!(terminated["status"], "TERMINATED");
    assert!(terminated["reasonForIncompletion"].as_str().is_some_and(|r| r.contains("客户取消")), "{terminated}");

    // Search finds them by the Chinese name, and the ones left running.
    let search = |query: &str| {
        let url = reqwest::Url::parse_with_params(&node.api("/workflow/search"), [("query", query), ("size", "100")])
            .expect("url");
        let http = http.clone();
        async move { send(http.get(url)).await.json() }
    };
    let by_name = search("workflowType = '订单审批'").await;
    assert_eq!(by_name["totalHits"], 5, "{by_name}");
    let running = search("status = 'RUNNING'").await;
    let mut running_ids: Vec<&str> =
        running["results"].as_array().into_iter().flatten().filter_map(|r| r["workflowId"].as_str()).collect();
    running_ids.sort_unstable();
    let held = &contents["inProgress"];
    let in_progress = held["workflowId"].as_str().unwrap_or_default().to_owned();
    let mut expected = ids(&contents["scheduled"]);
    expected.push(in_progress.clone());
    expected.sort_unstable();
    assert_eq!(running_ids, expected, "{running}");

    // The running workflows: the held task is still the worker's, the others wait in queues.
    let wf = get(format!("/workflow/{in_progress}")).await;
    let task = &wf["tasks"][0];
    assert_eq!((task["status"].as_str(), task["workerId"].as_str()), (Some("IN_PROGRESS"), Some("老王")), "{wf}");
    for id in ids(&contents["scheduled"]) {
        let wf = get(format!("/workflow/{id}")).await;
        let last = wf["tasks"].as_array().and_then(|t| t.last()).cloned().unwrap_or_default();
        assert_eq!(last["status"], "SCHEDULED", "{wf}");
    }
    // The worker that held a task before the upgrade reports it after.
    let result = json!({"workflowInstanceId": in_progress, "taskId": held["taskId"], "workerId": "老王",
                        "status": "COMPLETED", "outputData": {"意见": "同意"}});
    let r = send(http.post(node.api("/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    work_until(node, &["审核", "发货", "通知"], async || search("status = 'RUNNING'").await["totalHits"] == 0).await;
    let wf = wait_status(node, &in_progress, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!((wf["output"]["意见"].as_str(), wf["output"]["结果"].as_str()), (Some("同意"), Some("已发货")), "{wf}");
    assert_eq!(search("status = 'COMPLETED'").await["totalHits"], 6);
}

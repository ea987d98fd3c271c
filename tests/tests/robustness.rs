//! What a user sends cannot crash, hang or exhaust a node (issue 18), tried against a real
//! `overture dev` process: Chinese, accented and emoji text everywhere a definition and its data
//! hold text; runaway jq; expressions that would multiply a payload without end; HTTP responses
//! larger than a task's output may be; thousands of task types and workflow names nobody
//! registered; synchronous executions whose client goes away.

use std::time::{Duration, Instant};

use futures::StreamExt;
use overture_tests::{Node, client, send, wait_for, wait_status};
use serde_json::{Value, json};

async fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    (dir, node)
}

async fn register(node: &Node, def: &Value) {
    let r = send(client().post(node.api("/metadata/workflow?overwrite=true")).json(def)).await;
    assert_eq!(r.status, 200, "registering {}: {}", def["name"], r.text);
}

async fn start(node: &Node, name: &str, input: Value) -> String {
    let r = send(client().post(node.api(&format!("/workflow/{}", urlencode(name)))).json(&input)).await;
    assert_eq!(r.status, 200, "starting {name}: {}", r.text);
    r.text
}

/// Percent-encodes text for a URL path or query value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One series of `/metrics` (the first line that starts with `series`), as a number.
async fn metric(node: &Node, series: &str) -> f64 {
    overture_tests::metric_sum(&node.url, series).await.unwrap_or_else(|| panic!("no {series} in /metrics"))
}

/// Definitions written in Chinese, with accents and emoji, run and give their text back
/// unchanged: in names, descriptions, expressions, task outputs, the workflow's output and
/// search. (Slicing such text at a byte index that is not a character boundary used to drop
/// the connection at registration.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_accented_and_emoji_text_round_trips() {
    let (_dir, node) = node().await;
    let c = client();
    let task_name = "审批_café_🚀";
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([{
        "name": task_name, "description": "人工审批 — café ☕", "responseTimeoutSeconds": 30
    }])))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let name = "订单审批";
    register(
        &node,
        &json!({
            "name": name, "version": 1, "description": "处理订单 🚀 résumé",
            "tasks": [
                {"name": task_name, "taskReferenceName": "审批", "description": "第一步",
                 "inputParameters": {
                    "x": "订单",
                    "greeting": "订单 ${workflow.input.n}",
                    "accent": "café ${workflow.input.n} naïve",
                    "emoji": "🚀${workflow.input.who}🎉",
                    "whole": "${workflow.input.客户}"}},
                {"name": "拼接", "taskReferenceName": "拼接", "type": "INLINE",
                 "inputParameters": {"evaluatorType": "javascript", "who": "${审批.output.签名}",
                   "expression": "$.who + ' ✅'"}},
                {"name": "整理", "taskReferenceName": "整理", "type": "JSON_JQ_TRANSFORM",
                 "inputParameters": {"v": "${拼接.output.result}", "queryExpression": "{\"结果\": .v, \"长度\": (.v | length)}"}}
            ],
            "outputParameters": {"签名": "${审批.output.签名}", "摘要": "${整理.output.result}", "问候": "${审批.input.greeting}"}
        }),
    )
    .await;
    let id = start(&node, name, json!({"n": 7, "who": "李雷", "客户": {"名字": "韩梅梅"}})).await;

    let r = send(
        c.get(node.api(&format!("/tasks/poll/batch/{}?count=1&timeout=5000&workerid=工人", urlencode(task_name)))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let task = r.json()[0].clone();
    let input = &task["inputData"];
    assert_eq!(input["x"], "订单");
    assert_eq!(input["greeting"], "订单 7");
    assert_eq!(input["accent"], "café 7 naïve");
    assert_eq!(input["emoji"], "🚀李雷🎉");
    assert_eq!(input["whole"], json!({"名字": "韩梅梅"}));
    let result = json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "COMPLETED",
                        "outputData": {"签名": "王 ✍️ é"}});
    let r = send(c.post(node.api("/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(wf["workflowName"], name);
    assert_eq!(wf["output"]["签名"], "王 ✍️ é");
    assert_eq!(wf["output"]["问候"], "订单 7");
    assert_eq!(wf["output"]["摘要"], json!({"结果": "王 ✍️ é ✅", "长度": 8}));

    // Search by type, and by free text in Chinese.
    let query = urlencode(&format!("workflowType IN ({name})"));
    let r = send(c.get(node.api(&format!("/workflow/search?query={query}")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["totalHits"], 1, "{}", r.text);
    let r = send(c.get(node.api(&format!("/workflow/search?freeText={}", urlencode("韩梅梅"))))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let hits = r.json();
    assert_eq!(hits["totalHits"], 1, "{hits}");
    assert_eq!(hits["results"][0]["workflowId"], id.as_str());
    let def = send(c.get(node.api(&format!("/metadata/workflow/{}", urlencode(name))))).await.json();
    assert_eq!(def["description"], "处理订单 🚀 résumé");
    assert_eq!(def["tasks"][0]["inputParameters"]["emoji"], "🚀${workflow.input.who}🎉");
}

/// A jq query that allocates without end, and one that recurses without end, each fail their
/// own task within 6 s with the limit they hit. The node stays small and a normal workflow
/// started right after completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runaway_jq_fails_its_task_and_never_the_node() {
    let (_dir, node) = node().await;
    for (name, query, expected) in [
        ("jq_bomb", "[limit(1000000000; repeat(1))] | length", "exceeded"),
        ("jq_recursion", "def f: [f]; f", "recursed too deeply"),
    ] {
        register(
            &node,
            &json!({"name": name, "version": 1, "tasks": [
                {"name": "q", "taskReferenceName": "q", "type": "JSON_JQ_TRANSFORM",
                 "inputParameters": {"queryExpression": query}}]}),
        )
        .await;
        let started = Instant::now();
        let id = start(&node, name, json!({})).await;
        let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(10)).await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(6), "{name} failed after {took:?}");
        let task = &wf["tasks"][0];
        assert_eq!(task["status"], "FAILED_WITH_TERMINAL_ERROR", "{task}");
        let reason = task["reasonForIncompletion"].as_str().unwrap_or_default();
        assert!(reason.starts_with("jq: ") && reason.contains(expected), "{name}: {reason}");
        let rss = metric(&node, "process_resident_memory_bytes").await;
        eprintln!("{name}: failed in {took:.2?} with \"{reason}\", node RSS {:.1} MB", rss / 1048576.0);
        assert!(rss < 300.0 * 1024.0 * 1024.0, "the node grew to {rss} bytes");
    }
    register(
        &node,
        &json!({"name": "jq_fine", "version": 1, "tasks": [
            {"name": "q", "taskReferenceName": "q", "type": "JSON_JQ_TRANSFORM",
             "inputParameters": {"xs": [1, 2, 3], "queryExpression": "[.xs[] * 2]"}}]}),
    )
    .await;
    let id = start(&node, "jq_fine", json!({})).await;
    let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(wf["tasks"][0]["outputData"]["result"], json!([2, 4, 6]));
}

/// An input that refers to the workflow's 1 MB input a hundred thousand times would resolve to
/// 100 GB: the task fails before anything that large is built, with the limit in its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expressions_that_would_explode_fail_their_task() {
    let (_dir, node) = node().await;
    let copies: Vec<Value> = (0..100_000).map(|_| json!("${workflow.input.big}")).collect();
    register(
        &node,
        &json!({"name": "fan_out", "version": 1, "tasks": [
            {"name": "work", "taskReferenceName": "work", "inputParameters": {"all": copies}}]}),
    )
    .await;
    let started = Instant::now();
    let id = start(&node, "fan_out", json!({"big": "x".repeat(1 << 20)})).await;
    let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(10)).await;
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    let task = &wf["tasks"][0];
    assert_eq!(task["status"], "FAILED_WITH_TERMINAL_ERROR");
    let reason = task["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.contains("larger than 16 MiB"), "{reason}");
    assert!(metric(&node, "process_resident_memory_bytes").await < 300.0 * 1024.0 * 1024.0);
}

/// An HTTP task whose response is larger than a task's output may be fails for good, without
/// the node reading the rest of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_response_over_the_output_limit_fails_its_task() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_with(&dir.path().join("node"), &[]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                // 64 MB announced and streamed: more than the 3 MiB a task's output may be.
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("{:x}\r\n{}\r\n", 1 << 20, "y".repeat(1 << 20));
                for _ in 0..64 {
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                let _ = stream.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    register(
        &node,
        &json!({"name": "big_http", "version": 1, "tasks": [
            {"name": "call", "taskReferenceName": "call", "type": "HTTP",
             "inputParameters": {"http_request": {"uri": format!("http://{addr}/huge"), "method": "GET"}}}]}),
    )
    .await;
    let id = start(&node, "big_http", json!({})).await;
    let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(20)).await;
    let task = &wf["tasks"][0];
    assert_eq!(task["status"], "FAILED_WITH_TERMINAL_ERROR", "{task}");
    let reason = task["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.contains("larger than the limit on a task's output"), "{reason}");
}

/// Clients choose task types and workflow names freely. Polling 50,000 task types nobody
/// registered and starting 50,000 workflow names that do not exist leaves the node within
/// 64 MB of where it was, and `/metrics` under 2 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_nobody_registered_do_not_grow_the_node() {
    let (_dir, node) = node().await;
    let c = client();
    // Warm up: the first requests allocate what every later one reuses.
    for i in 0..500 {
        let _ = c.get(node.api(&format!("/tasks/poll/batch/warm_{i}?count=1&timeout=0"))).send().await;
        let _ = c.post(node.api(&format!("/workflow/warm_{i}"))).json(&json!({})).send().await;
    }
    let before = metric(&node, "process_resident_memory_bytes").await;
    const EACH: usize = 50_000;
    let started = Instant::now();
    let calls = futures::stream::iter(0..EACH * 2).map(|i| {
        let c = c.clone();
        let url = if i % 2 == 0 {
            node.api(&format!("/tasks/poll/batch/type_{i}_{}?count=1&timeout=0&workerid=w{i}", i * 7919))
        } else {
            node.api(&format!("/workflow/no_such_workflow_{i}"))
        };
        async move {
            let request = if i % 2 == 0 { c.get(url) } else { c.post(url).json(&json!({})) };
            request.send().await.map(|r| r.status().as_u16()).unwrap_or(0)
        }
    });
    let statuses: Vec<u16> = calls.buffer_unordered(32).collect().await;
    let polled = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 404).count();
    assert_eq!((polled, refused), (EACH, EACH), "every poll answered, every unknown start refused");
    let after = metric(&node, "process_resident_memory_bytes").await;
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    eprintln!(
        "{} requests in {:?}: RSS {:.1} -> {:.1} MB, /metrics {} KB",
        EACH * 2,
        started.elapsed(),
        before / 1048576.0,
        after / 1048576.0,
        metrics.len() / 1024
    );
    assert!(after - before < 64.0 * 1048576.0, "RSS grew from {before} to {after}");
    assert!(metrics.len() < 2 << 20, "/metrics is {} bytes", metrics.len());
    assert!(!metrics.contains("no_such_workflow_"), "unknown names share one series");
}

/// A synchronous execution whose client goes away stops watching its workflow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_execution_whose_client_leaves_stops_watching() {
    let (_dir, node) = node().await;
    register(
        &node,
        &json!({"name": "slow", "version": 1, "tasks": [{"name": "never_polled", "taskReferenceName": "t"}]}),
    )
    .await;
    let impatient = overture_tests::client_builder().timeout(Duration::from_millis(300)).build().expect("client");
    for _ in 0..5 {
        let r = impatient
            .post(node.api("/workflow/execute/slow/1?waitForSeconds=30"))
            .json(&json!({"name": "slow", "version": 1, "input": {}}))
            .send()
            .await;
        assert!(r.is_err(), "the client gave up before the answer");
    }
    let watching = |node: &Node| {
        let node_url = node.url.clone();
        async move {
            let text = send(client().get(format!("{node_url}/metrics"))).await.text;
            text.lines().any(|l| l == "overture_sync_executions_waiting 0")
        }
    };
    assert!(wait_for(Duration::from_secs(10), || watching(&node)).await, "every watch ended with its client");
}

/// A single node whose disk fills up refuses writes with a 507 that names the directory (and
/// `Retry-After`), goes on serving reads, and takes writes again once space is freed, keeping
/// everything it had. (Its data directory is on a small tmpfs of the test's own: root only.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_with_507_and_recovers() {
    use overture_tests::faults::SmallDisk;
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let mut disk = SmallDisk::mount(&data, 160);
    let args: Vec<std::ffi::OsString> =
        vec!["dev".into(), "--listen".into(), "127.0.0.1:0".into(), "--data-dir".into(), data.clone().into()];
    let node = Node::spawn(&args, &[("OVERTURE_MIN_FREE_DISK_BYTES", "16777216")], &data).await;
    register(&node, &json!({"name": "kept", "version": 1, "tasks": [{"name": "k", "taskReferenceName": "k"}]})).await;
    let before = start(&node, "kept", json!({"n": 1})).await;

    disk.fill();
    let low = |wanted: &'static str| {
        let url = format!("{}/metrics", node.url);
        async move { send(client().get(url)).await.text.lines().any(|l| l == format!("overture_disk_low {wanted}")) }
    };
    assert!(wait_for(Duration::from_secs(10), || low("1")).await, "the node sees its disk is full");
    let r = client().post(node.api("/workflow/kept")).json(&json!({"n": 2})).send().await.expect("answered");
    assert_eq!(r.status(), 507);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.expect("JSON");
    assert_eq!(body["retryable"], true);
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains("data directory") && message.contains("refuses writes"), "{message}");
    let r = send(client().get(node.api(&format!("/workflow/{before}")))).await;
    assert_eq!(r.status, 200, "reads go on: {}", r.text);

    disk.free();
    assert!(wait_for(Duration::from_secs(30), || low("0")).await, "space is back");
    let after = start(&node, "kept", json!({"n": 3})).await;
    for id in [&before, &after] {
        let r = send(client().get(node.api(&format!("/workflow/{id}")))).await;
        assert_eq!((r.status, r.json()["status"].as_str()), (200, Some("RUNNING")), "{id}");
    }
}

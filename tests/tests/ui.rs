//! The web UI in a real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `tests/browser`): a node is started and seeded over the API, `tests/browser/ui.mjs` clicks
//! through the UI, and the effects of its actions are checked here over the API again.
//!
//! Screenshots land in `<target>/tmp/ui-screenshots/`. A missing browser or missing
//! playwright-core is a failure with instructions, never a skip: `./tests/run.sh` installs both.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use overture_tests::{Cluster, Node, client, crate_dir, send, wait_for, wait_status};
use serde_json::{Value, json};

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

/// Runs a scenario of `ui.mjs`; panics with its output unless every check passed.
async fn browse(scenario: &str, url: &str, args: &[&str]) -> String {
    let dir = crate_dir().join("browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run ./tests/run.sh (or `npm ci` there)",
        dir.display()
    );
    let out = artifacts().join(scenario);
    // Screenshots of this run only, not a failure left by an earlier one.
    let _ = std::fs::remove_dir_all(&out);
    let run = tokio::process::Command::new("node")
        .arg("ui.mjs")
        .arg(scenario)
        .arg(url)
        .arg(&out)
        .args(args)
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(240), run)
        .await
        .expect("the browser test finished within 4 minutes")
        .expect("node runs (Node.js 18 or later is needed)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser test failed ({}):\n{stdout}\n{stderr}", output.status);
    stdout
}

async fn post(node: &Node, path: &str, body: Value) -> String {
    let r = send(client().post(node.api(path)).json(&body)).await;
    assert!(r.status < 300, "POST {path}: {} {}", r.status, r.text);
    r.text
}

/// Polls one task of `task_type` for the worker the UI should show, and completes it.
async fn work_one(node: &Node, task_type: &str, expect_ref: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let task = loop {
        let r = send(client().get(node.api(&format!("/tasks/poll/{task_type}?workerid=worker-ui-test")))).await;
        if r.status == 200 && !r.text.is_empty() {
            break r.json();
        }
        assert!(std::time::Instant::now() < deadline, "no {task_type} to poll: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let reference = task["referenceTaskName"].as_str().expect("ref");
    assert!(expect_ref.contains(&reference), "polled {reference}, expected one of {expect_ref:?}");
    post(
        node,
        "/tasks",
        json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED",
               "outputData": {"by": "ui test"}}),
    )
    .await;
}

fn simple(reference: &str) -> Value {
    json!({"name": "ui_task", "taskReferenceName": reference, "type": "SIMPLE"})
}

/// Every text the UI shows is in both catalogues, English and Chinese, with the same
/// placeholders (`tests/browser/catalogue.mjs` reads the code's `t()` calls and the catalogues).
#[test]
fn every_ui_text_is_in_both_catalogues() {
    let output = std::process::Command::new("node")
        .arg("catalogue.mjs")
        .current_dir(crate_dir().join("browser"))
        .output()
        .expect("node runs (Node.js 18 or later is needed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the UI's catalogues are incomplete:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ui_shows_and_steers_workflows_in_chromium() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    post(&node, "/metadata/taskdefs", json!([{"name": "ui_task", "retryCount": 0}, {"name": "ui_bulk"}])).await;
    let definition = json!({
        "name": "ui_fork_switch", "version": 1, "schemaVersion": 2, "inputParameters": ["k"],
        "tasks": [
            simple("a"),
            {"name": "fork", "taskReferenceName": "fork", "type": "FORK_JOIN", "forkTasks": [[simple("b1")], [simple("b2")]]},
            {"name": "join", "taskReferenceName": "join", "type": "JOIN", "joinOn": ["b1", "b2"]},
            {"name": "decide", "taskReferenceName": "decide", "type": "SWITCH", "evaluatorType": "value-param",
             "expression": "k", "inputParameters": {"k": "${workflow.input.k}"},
             "decisionCases": {"x": [simple("sx")]}, "defaultCase": [simple("sd")]},
            simple("after"),
        ]
    });
    post(&node, "/metadata/workflow", definition).await;
    let handler = json!({"name": "ui_events", "event": "conductor:ui_fork_switch:notify", "active": true,
        "actions": [{"action": "start_workflow", "start_workflow": {"name": "ui_fork_switch"}}]});
    post(&node, "/event", handler).await;
    let big: Vec<Value> = (0..1000).map(|i| simple(&format!("step_{i}"))).collect();
    post(&node, "/metadata/workflow", json!({"name": "ui_big", "version": 1, "tasks": big})).await;
    post(
        &node,
        "/scheduler/schedules",
        json!({"name": "ui_nightly", "cronExpression": "0 0 2 * * ?",
               "startWorkflowRequest": {"name": "ui_fork_switch", "version": 1, "input": {"k": "x"}}}),
    )
    .await;

    // Thousands of executions for the list to page through, older than the ones below.
    post(
        &node,
        "/metadata/workflow",
        json!({"name": "ui_many", "version": 1,
        "tasks": [{"name": "ui_bulk", "taskReferenceName": "only", "type": "SIMPLE"}]}),
    )
    .await;
    for _ in 0..40 {
        let starts = (0..50).map(|_| post(&node, "/workflow/ui_many", json!({})));
        futures::future::join_all(starts).await;
    }

    // One workflow through its fork and switch (taking case x), stopped at `sx`; a second one
    // left running, for the UI to terminate.
    let forked = post(&node, "/workflow/ui_fork_switch", json!({"k": "x"})).await;
    work_one(&node, "ui_task", &["a"]).await;
    work_one(&node, "ui_task", &["b1", "b2"]).await;
    work_one(&node, "ui_task", &["b1", "b2"]).await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            let wf = send(client().get(node.api(&format!("/workflow/{forked}?includeTasks=true")))).await.json();
            wf["tasks"].as_array().is_some_and(|t| t.iter().any(|t| t["referenceTaskName"] == "sx"))
        })
        .await,
        "the switch scheduled sx"
    );
    let running = post(&node, "/workflow/ui_fork_switch", json!({"k": "x"})).await;

    // A loop of two iterations, then a sub-workflow; system tasks only, so it completes alone.
    let inline = |reference: &str| {
        json!({"name": "inline", "taskReferenceName": reference, "type": "INLINE",
               "inputParameters": {"evaluatorType": "javascript", "expression": "1 + 1"}})
    };
    post(&node, "/metadata/workflow", json!({"name": "ui_child", "version": 1, "tasks": [inline("child_step")]})).await;
    post(
        &node,
        "/metadata/workflow",
        json!({"name": "ui_loop_sub", "version": 1, "tasks": [
            {"name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE",
             "loopCondition": "if ($.loop['iteration'] < 2) { true; } else { false; }", "loopOver": [inline("step")]},
            {"name": "child", "taskReferenceName": "child", "type": "SUB_WORKFLOW",
             "subWorkflowParam": {"name": "ui_child", "version": 1}},
        ]}),
    )
    .await;
    let looped = post(&node, "/workflow/ui_loop_sub", json!({})).await;
    wait_status(&node, &looped, "COMPLETED", Duration::from_secs(10)).await;

    let report = browse("tour", &node.url, &[&forked, &running, "ui_big", &looped]).await;
    assert!(report.contains("ok - no errors in the page"), "{report}");

    // What the UI did, seen through the API.
    // The second workflow was terminated (with the reason typed in the dialog), retried, had
    // `after` skipped in advance, was paused and resumed: it runs on, waiting at `a`.
    let history = send(client().get(node.api(&format!("/workflow/{running}/history")))).await.text;
    assert!(history.contains("stopped from the UI test"), "the termination and its reason: {history}");
    let wf = wait_status(&node, &running, "RUNNING", Duration::from_secs(5)).await;
    let tasks = wf["tasks"].as_array().expect("tasks");
    assert!(tasks.iter().any(|t| t["referenceTaskName"] == "after" && t["status"] == "SKIPPED"), "{wf}");
    assert!(tasks.iter().any(|t| t["referenceTaskName"] == "a" && t["status"] == "SCHEDULED"), "{wf}");
    // The loop and sub-workflow one was rerun from its `child` task, then restarted.
    let history = send(client().get(node.api(&format!("/workflow/{looped}/history")))).await.json();
    let reopened: Vec<&Value> =
        history.as_array().expect("events").iter().filter(|e| e["type"] == "WorkflowReopened").collect();
    assert_eq!(reopened.len(), 2, "{history}");
    assert_eq!((reopened[0]["restart"].as_bool(), reopened[1]["restart"].as_bool()), (Some(false), Some(true)));
    assert!(reopened[0]["keepTasks"].as_u64().is_some_and(|k| k > 0), "a rerun from `child` keeps the loop");
    wait_status(&node, &looped, "COMPLETED", Duration::from_secs(10)).await;
    let saved = send(client().get(node.api("/metadata/workflow/ui_fork_switch?version=1"))).await.json();
    let refs = saved.to_string();
    assert!(
        refs.contains("\"simple_1\"") && refs.contains("\"sd_renamed\""),
        "the editor's changes were saved: {saved}"
    );
    let made = send(client().get(node.api("/metadata/taskdefs/ui_made_here"))).await;
    assert_eq!(made.status, 200, "the task definition created in the UI: {}", made.text);
    let schedule = send(client().get(node.api("/scheduler/schedules/ui_nightly"))).await.json();
    assert_eq!(schedule["paused"], true, "{schedule}");
    let started =
        send(client().get(node.api("/workflow/search?query=workflowType%3Dui_fork_switch&size=10"))).await.json();
    assert_eq!(started["totalHits"], 3, "the start form started a third workflow: {started}");
    for shot in ["executions", "execution-fork-switch", "definition", "editor", "cluster"] {
        assert!(artifacts().join("tour").join(format!("{shot}.png")).is_file(), "screenshot {shot}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_authentication_on_the_ui_signs_in_with_an_api_key() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start_with(&dir.path().join("node"), &["--api-key", "ui-admin:ui-secret-123"]).await;
    // The page itself is served without a token; the API is not.
    let page = send(client().get(format!("{}/", node.url))).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/ui/app.js"), "{}", page.text);
    assert_eq!(send(client().get(node.api("/workflow/search"))).await.status, 401);
    browse("signin", &node.url, &["ui-admin", "ui-secret-123"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_its_files_are_served_with_caching_and_a_strict_policy() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let http = client();
    let index = http.get(format!("{}/", node.url)).send().await.expect("index");
    assert_eq!(index.status(), 200);
    assert_eq!(index.headers()["content-type"], "text/html; charset=utf-8");
    let policy = index.headers()["content-security-policy"].to_str().expect("ascii").to_owned();
    assert!(policy.contains("script-src 'self'") && !policy.contains("unsafe"), "{policy}");
    for (path, kind) in [
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/vendor/preact.mjs", "text/javascript"),
        ("/ui/vendor/LICENSES.txt", "text/plain"),
    ] {
        let r = http.get(format!("{}{path}", node.url)).send().await.expect("asset");
        assert_eq!(r.status(), 200, "{path}");
        assert!(r.headers()["content-type"].to_str().expect("ascii").starts_with(kind), "{path}");
        let etag = r.headers()["etag"].clone();
        let again = http.get(format!("{}{path}", node.url)).header("if-none-match", etag).send().await.expect("again");
        assert_eq!(again.status(), 304, "{path} revalidates");
    }
    let missing = send(http.get(format!("{}/ui/nope.js", node.url))).await;
    assert_eq!(missing.status, 404);
    assert!(missing.json()["message"].as_str().is_some_and(|m| m.contains("nope.js")), "{}", missing.text);
    let metrics = send(http.get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("route=\"/ui/{*path}\""), "UI requests are measured like any other route");
}

/// Chinese, accented and emoji text in a definition and its data reads back unchanged in the
/// UI: found by free text, listed under its name, drawn in the diagram, shown in an output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_accented_and_emoji_text_shows_in_the_ui() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let name = "订单审批_café";
    post(&node, "/metadata/taskdefs", json!([{"name": "审批_🚀", "description": "人工审批 ☕"}])).await;
    post(
        &node,
        "/metadata/workflow",
        json!({"name": name, "version": 1, "description": "处理订单 🚀",
               "tasks": [{"name": "审批_🚀", "taskReferenceName": "审批", "inputParameters": {"who": "${workflow.input.客户}"}}]}),
    )
    .await;
    let id = post(
        &node,
        &format!("/workflow/{}", "%E8%AE%A2%E5%8D%95%E5%AE%A1%E6%89%B9_caf%C3%A9"),
        json!({"客户": "韩梅梅"}),
    )
    .await;
    let r =
        send(client().get(node.api("/tasks/poll/%E5%AE%A1%E6%89%B9_%F0%9F%9A%80?workerid=%E5%B7%A5%E4%BA%BA"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let task = r.json();
    assert_eq!(task["inputData"]["who"], "韩梅梅");
    post(
        &node,
        "/tasks",
        json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "COMPLETED", "outputData": {"签名": "王 ✍️ é"}}),
    )
    .await;
    wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    browse("unicode", &node.url, &[&id, name, "审批", "王 ✍️ é"]).await;
}

/// Every node serves the UI; through a follower, the cluster view shows the leader's view of
/// replication and who leads each partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_node_of_a_cluster_serves_the_ui() {
    let dir = tempfile::tempdir().expect("dir");
    let cluster = Cluster::start(dir.path(), 3, "partitions = 3").await;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let follower = cluster.other_than(leader);
    for n in 0..3 {
        let page = send(client().get(format!("{}/", cluster.nodes[n].url))).await;
        assert_eq!(page.status, 200, "node {}", n + 1);
    }
    browse("cluster", &cluster.nodes[follower - 1].url, &["3", "Follower", "3"]).await;
}

/// The UI in Simplified Chinese for a zh-CN browser, with a workflow named and built in Chinese:
/// see the `zh` scenario of `tests/browser/ui.mjs`. Its screenshots are the `zh-*.png` in
/// docs/screenshots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chinese_browser_gets_the_ui_in_chinese_and_can_switch_to_english() {
    let fonts = std::process::Command::new("fc-list").arg(":lang=zh").output();
    assert!(
        fonts.is_ok_and(|f| !f.stdout.is_empty()),
        "no font with Chinese glyphs (`fc-list :lang=zh` lists none), so screenshots would show boxes: \
         install one, e.g. `apt-get install fonts-noto-cjk` (./tests/run.sh does)"
    );
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let (name, done, next, long) = ("订单审批", "审核订单", "通知客户", "根据客户等级与订单金额计算折扣并开具电子发票");
    let task = |reference: &str| json!({"name": reference, "taskReferenceName": reference, "type": "SIMPLE"});
    post(&node, "/metadata/taskdefs", json!([{"name": done}, {"name": next}, {"name": long}])).await;
    post(
        &node,
        "/metadata/workflow",
        json!({"name": name, "version": 1, "description": "审核客户的订单，再把结果通知客户",
               "inputParameters": ["客户", "金额"], "tasks": [task(done), task(next), task(long)]}),
    )
    .await;
    let id = post(&node, &format!("/workflow/{name}"), json!({"客户": "张三", "金额": 1280, "备注": "加急"})).await;
    work_one(&node, done, &[done]).await;
    // Two more for the searches to leave out: another customer's order, another workflow type.
    post(&node, &format!("/workflow/{name}"), json!({"客户": "李四", "金额": 64})).await;
    post(
        &node,
        "/metadata/workflow",
        json!({"name": "库存盘点", "version": 1, "tasks": [{"name": "清点", "taskReferenceName": "清点", "type": "INLINE",
               "inputParameters": {"evaluatorType": "javascript", "expression": "1 + 1"}}]}),
    )
    .await;
    let counted = post(&node, "/workflow/库存盘点", json!({"仓库": "上海"})).await;
    wait_status(&node, &counted, "COMPLETED", Duration::from_secs(10)).await;
    browse("zh", &node.url, &[&id, name, done, next, long, "张三"]).await;
    for shot in ["zh-executions", "zh-execution", "zh-editor"] {
        assert!(artifacts().join("zh").join(format!("{shot}.png")).is_file(), "screenshot {shot}");
    }
}

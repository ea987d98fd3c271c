//! Retries, backoff, callbacks, response timeouts and failure semantics, over HTTP.

use std::time::{Duration, Instant};

use overture_tests::{Node, client, send, wait_status};
use serde_json::{Value, json};

async fn setup(node: &Node, task: Value) -> String {
    let c = client();
    let name = task["name"].as_str().expect("name").to_owned();
    assert_eq!(send(c.post(node.api("/metadata/taskdefs")).json(&json!([task]))).await.status, 200);
    let def = json!({"name": format!("wf_{name}"), "tasks": [
        {"name": name, "taskReferenceName": "t"},
        {"name": "after", "taskReferenceName": "after"}
    ]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    send(c.post(node.api(&format!("/workflow/wf_{name}"))).json(&json!({}))).await.text
}

async fn poll(node: &Node, task_type: &str, timeout_ms: u64) -> Option<Value> {
    let r =
        send(client().get(node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout={timeout_ms}&workerid=w"))))
            .await;
    r.json().as_array().and_then(|a| a.first().cloned())
}

async fn report(node: &Node, task: &Value, status: &str, extra: Value) {
    let mut result = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": status,
                            "outputData": {}, "reasonForIncompletion": format!("reported {status}")});
    if let (Some(r), Some(e)) = (result.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    let r = send(client().post(node.api("/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn exponential_backoff_spaces_the_retries() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("n")).await;
    let id = setup(
        &node,
        json!({"name": "backoff", "retryCount": 2, "retryLogic": "EXPONENTIAL_BACKOFF", "retryDelaySeconds": 1}),
    )
    .await;

    let first = poll(&node, "backoff", 2000).await.expect("first attempt");
    report(&node, &first, "FAILED", json!({})).await;
    let failed_at = Instant::now();
    assert!(poll(&node, "backoff", 300).await.is_none(), "the retry waits out its delay");
    let second = poll(&node, "backoff", 5000).await.expect("second attempt after 1 s");
    assert!(failed_at.elapsed() >= Duration::from_millis(900), "{:?}", failed_at.elapsed());
    assert_eq!((second["retryCount"].as_i64(), second["startDelayInSeconds"].as_i64()), (Some(1), Some(1)));

    report(&node, &second, "FAILED", json!({})).await;
    let failed_at = Instant::now();
    let third = poll(&node, "backoff", 5000).await.expect("third attempt after 2 s");
    assert!(failed_at.elapsed() >= Duration::from_millis(1900), "{:?}", failed_at.elapsed());
    assert_eq!(third["startDelayInSeconds"].as_i64(), Some(2));

    report(&node, &third, "FAILED", json!({})).await;
    let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(5)).await;
    assert_eq!(wf["failedReferenceTaskNames"], json!(["t"]));
    let reason = wf["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.contains("failed with status: FAILED and reason: 'reported FAILED'"), "{reason}");
    let statuses: Vec<&str> =
        wf["tasks"].as_array().into_iter().flatten().filter_map(|t| t["status"].as_str()).collect();
    assert_eq!(statuses, ["FAILED", "FAILED", "FAILED"]);
}

#[tokio::test]
async fn in_progress_with_callback_hands_the_task_out_again_later() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("n")).await;
    setup(&node, json!({"name": "callback", "retryCount": 0})).await;
    let t = poll(&node, "callback", 2000).await.expect("task");
    report(&node, &t, "IN_PROGRESS", json!({"callbackAfterSeconds": 1, "outputData": {"progress": 1}})).await;
    let reported = Instant::now();
    assert!(poll(&node, "callback", 300).await.is_none(), "not before the callback");
    let again = poll(&node, "callback", 5000).await.expect("handed out again");
    assert!(reported.elapsed() >= Duration::from_millis(900));
    assert_eq!((again["taskId"].clone(), again["pollCount"].as_i64()), (t["taskId"].clone(), Some(2)));
    assert_eq!(again["outputData"]["progress"], 1);
}

#[tokio::test]
async fn response_timeout_retries_and_survives_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("n");
    let mut node = Node::start(&data).await;
    setup(&node, json!({"name": "silent", "retryCount": 1, "retryDelaySeconds": 0, "responseTimeoutSeconds": 2})).await;
    let first = poll(&node, "silent", 2000).await.expect("task");
    // The worker vanishes, and so does the node: the durable timer must still fire.
    node.kill9().await;
    let node = Node::start(&data).await;
    let retry = poll(&node, "silent", 5000).await.expect("retried once the response timeout passed");
    assert_eq!(retry["retriedTaskId"], first["taskId"]);
    let old =
        send(client().get(node.api(&format!("/tasks/{}", first["taskId"].as_str().unwrap_or_default())))).await.json();
    assert_eq!(old["status"], "TIMED_OUT");
    assert!(old["reasonForIncompletion"].as_str().is_some_and(|r| r.contains("responseTimeout")), "{old}");
    let metrics = send(client().get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("task_timeout_total{taskType=\"silent\"} 1"), "the timeout is counted:\n{metrics}");
}

#[tokio::test]
async fn lease_extension_keeps_the_task() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("n")).await;
    setup(&node, json!({"name": "leased", "retryCount": 0, "responseTimeoutSeconds": 2})).await;
    let t = poll(&node, "leased", 2000).await.expect("task");
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(900)).await;
        report(&node, &t, "IN_PROGRESS", json!({"extendLease": true})).await;
    }
    let now =
        send(client().get(node.api(&format!("/tasks/{}", t["taskId"].as_str().unwrap_or_default())))).await.json();
    assert_eq!(now["status"], "IN_PROGRESS", "heartbeats kept it alive past its 2 s response timeout");
}

#[tokio::test]
async fn optional_and_terminal_failures() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("n")).await;
    let c = client();
    assert_eq!(
        send(
            c.post(node.api("/metadata/taskdefs"))
                .json(&json!([{"name": "maybe", "retryCount": 3}, {"name": "must", "retryCount": 3}]))
        )
        .await
        .status,
        200
    );
    let def = json!({"name": "mixed", "tasks": [
        {"name": "maybe", "taskReferenceName": "maybe", "optional": true, "retryCount": 0},
        {"name": "must", "taskReferenceName": "must"}
    ], "outputParameters": {"m": "${maybe.output.x}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    let id = send(c.post(node.api("/workflow/mixed")).json(&json!({}))).await.text;

    let maybe = poll(&node, "maybe", 2000).await.expect("optional task");
    report(&node, &maybe, "FAILED", json!({"outputData": {"x": 1}})).await;
    let must = poll(&node, "must", 2000).await.expect("the workflow went on");
    report(&node, &must, "FAILED_WITH_TERMINAL_ERROR", json!({})).await;
    let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(5)).await;
    let statuses: Vec<&str> =
        wf["tasks"].as_array().into_iter().flatten().filter_map(|t| t["status"].as_str()).collect();
    assert_eq!(statuses, ["COMPLETED_WITH_ERRORS", "FAILED_WITH_TERMINAL_ERROR"], "no retry after a terminal error");
    assert_eq!(wf["failedReferenceTaskNames"], json!(["must"]));
    assert_eq!(wf["output"], json!({"m": 1}), "output is computed on failure too");
}

//! Authentication with API keys (issue 5): tokens from `POST /api/token`, `X-Authorization` on
//! every other request, the exempt paths, the 404 that tells SDKs auth is off, and the official
//! Python SDK with a key.

use overture_tests::{Node, client, finish_python_sdk, run_python_sdk_workload, send, spawn_python_sdk};
use serde_json::{Value, json};

const SECRET: &str = "correct-horse-battery";

async fn secured(dir: &std::path::Path) -> Node {
    Node::start_with(&dir.join("node"), &["--api-key", &format!("ops:{SECRET}")]).await
}

async fn token(node: &Node, key_id: &str, secret: &str) -> (u16, Value) {
    let r = send(client().post(node.api("/token")).json(&json!({"keyId": key_id, "keySecret": secret}))).await;
    (r.status, r.json())
}

#[tokio::test]
async fn requests_need_a_token_from_an_api_key() {
    let dir = tempfile::tempdir().expect("dir");
    let node = secured(dir.path()).await;
    let c = client();

    // Without a token: 401 with the reason the SDKs read; probes and metrics stay open.
    let r = send(c.get(node.api("/metadata/taskdefs"))).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("MISSING_TOKEN")), "{}", r.text);
    let r = send(c.post(node.api("/workflow/x")).json(&json!({}))).await;
    assert_eq!(r.status, 401);
    for open in ["/health", "/ready", "/metrics", "/api/health"] {
        assert_eq!(send(c.get(format!("{}{open}", node.url))).await.status, 200, "{open}");
    }

    // Wrong keys get no token.
    assert_eq!(token(&node, "ops", "guess").await.0, 401);
    assert_eq!(token(&node, "nobody", SECRET).await.0, 401);
    let r = send(c.post(node.api("/token")).json(&json!({"keyId": 1}))).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // The right key does; the token opens everything.
    let (status, body) = token(&node, "ops", SECRET).await;
    assert_eq!(status, 200, "{body}");
    let t = body["token"].as_str().expect("token").to_owned();
    let def =
        json!({"name": "guarded", "version": 1, "tasks": [{"name": "noop", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = send(c.post(node.api("/metadata/workflow")).header("X-Authorization", &t).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.post(node.api("/workflow/guarded")).header("X-Authorization", &t).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.get(node.api(&format!("/workflow/{}", r.text))).header("X-Authorization", &t)).await;
    assert_eq!(r.json()["status"], "COMPLETED");

    // A tampered or foreign token is refused.
    let last = if t.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &t[..t.len() - 1]);
    let r = send(c.get(node.api("/metadata/taskdefs")).header("X-Authorization", forged)).await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("INVALID_TOKEN")));
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("overture_auth_refused_total{reason=\"MISSING_TOKEN\"} 2"), "{metrics}");
}

#[tokio::test]
async fn without_keys_the_token_endpoint_says_auth_is_off() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let (status, body) = token(&node, "ops", SECRET).await;
    assert_eq!(status, 404, "SDKs read 404 on /token as 'no authentication': {body}");
    assert_eq!(send(client().get(node.api("/metadata/taskdefs"))).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_authenticates_with_an_api_key() {
    let dir = tempfile::tempdir().expect("dir");
    let node = secured(dir.path()).await;
    let host = node.url.trim_start_matches("http://");
    // The whole workload (clients and TaskHandler workers) with the key...
    run_python_sdk_workload(&format!("http://ops:{SECRET}@{host}")).await;
    // ...and a wrong one is refused.
    finish_python_sdk(spawn_python_sdk("sdk_auth_refused.py", &[&format!("http://ops:wrong-secret@{host}")])).await;
}

#[tokio::test]
async fn oversized_payloads_get_413_and_change_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let env = [("OVERTURE_MAX_WORKFLOW_INPUT_BYTES", "1000"), ("OVERTURE_MAX_TASK_OUTPUT_BYTES", "1000")];
    let node = Node::start_with_env(&dir.path().join("node"), &env).await;
    let c = client();
    let def = json!({"name": "sized", "version": 1, "tasks": [{"name": "sized_task", "taskReferenceName": "t"}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    let big = "x".repeat(2000);

    for (path, body) in [
        ("/workflow/sized", json!({"blob": big})),
        ("/workflow", json!({"name": "sized", "input": {"blob": big}})),
        ("/workflow/execute/sized/1", json!({"input": {"blob": big}})),
    ] {
        let r = send(c.post(node.api(path)).json(&body)).await;
        assert_eq!(r.status, 413, "{path}: {}", r.text);
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains("Workflow input of") && message.contains("max_workflow_input_bytes"), "{message}");
    }
    // A large body with a small input (a big inline definition, say) is fine.
    let r =
        send(c.post(node.api("/workflow")).json(&json!({"name": "sized", "input": {"n": 1}, "correlationId": big})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.text;
    let search = send(c.get(node.api("/workflow/search?query=workflowType%3D%27sized%27"))).await.json();
    assert_eq!(search["totalHits"], 1, "the refused starts wrote nothing");

    let task = send(c.get(node.api("/tasks/poll/sized_task?workerid=w"))).await.json();
    let result = |output: Value| json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "COMPLETED", "outputData": output});
    let r = send(c.post(node.api(&format!("/tasks/{id}/t/COMPLETED"))).json(&json!({"blob": big}))).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("Task output of")));
    let wf = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
    assert_eq!(wf["tasks"][0]["status"], "IN_PROGRESS", "the refused update changed nothing");
    // A worker's result over the limit fails its task for good, as conductor-oss fails a task
    // whose payload is over its maximum; a refused update would leave it running.
    let r = send(c.post(node.api("/tasks")).json(&result(json!({"blob": big})))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
    let t = &wf["tasks"][0];
    assert_eq!(t["status"], "FAILED_WITH_TERMINAL_ERROR", "{t}");
    assert_eq!(t["outputData"], json!({}));
    let reason = t["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.starts_with("The payload size: ") && reason.ends_with("permissible limit: 1000 bytes"), "{reason}");
    assert_eq!(wf["status"], "FAILED");
}

#[tokio::test]
async fn an_overloaded_node_answers_429_and_keeps_its_probes() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start_with(&dir.path().join("node"), &["--max-in-flight", "2"]).await;
    let c = client();
    // Two long polls on an empty queue hold both slots for up to 3 s.
    let polls: Vec<_> = (0..2)
        .map(|_| {
            let url = node.api("/tasks/poll/batch/idle_type?count=1&timeout=3000");
            tokio::spawn(async move { send(client().get(url)).await.status })
        })
        .collect();
    let full = overture_tests::wait_for(std::time::Duration::from_secs(5), || async {
        send(client().get(format!("{}/metrics", node.url))).await.text.contains("overture_http_in_flight 2")
    })
    .await;
    assert!(full, "both polls are in flight");
    let r = send(c.get(node.api("/metadata/taskdefs"))).await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.json()["retryable"], true);
    assert_eq!(send(c.get(format!("{}/health", node.url))).await.status, 200, "probes are always answered");
    for poll in polls {
        assert_eq!(poll.await.expect("poll ran"), 200);
    }
    assert_eq!(send(c.get(node.api("/metadata/taskdefs"))).await.status, 200, "admitted again once they end");
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("overture_http_overloaded_total 1"), "{metrics}");
}

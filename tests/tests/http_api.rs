//! The Conductor REST API against a real `overture dev` process: paths, codes, shapes.

use std::time::Duration;

use overture_tests::{Node, client, send, wait_for, wait_status};
use serde_json::{Value, json};

async fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    (dir, node)
}

async fn register(node: &Node) {
    let c = client();
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([
        {"name": "step_a", "retryCount": 1, "retryLogic": "FIXED", "retryDelaySeconds": 0, "responseTimeoutSeconds": 30},
        {"name": "step_b", "retryCount": 0, "responseTimeoutSeconds": 30}
    ])))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let def = json!({
        "name": "two_steps", "version": 1,
        "tasks": [
            {"name": "step_a", "taskReferenceName": "a", "inputParameters": {"x": "${workflow.input.x}", "id": "${workflow.workflowId}"}},
            {"name": "step_b", "taskReferenceName": "b", "inputParameters": {"fromA": "${a.output.value}", "msg": "got ${a.output.value}"}}
        ],
        "outputParameters": {"final": "${b.output.done}", "a": "${a.output.value}"}
    });
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn poll(node: &Node, task_type: &str) -> Value {
    let r =
        send(client().get(node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout=2000&workerid=tester"))))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tasks = r.json();
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "one task: {tasks}");
    tasks[0].clone()
}

#[tokio::test]
async fn metadata_crud_follows_conductor() {
    let (_dir, node) = node().await;
    let c = client();
    register(&node).await;

    let r = send(c.get(node.api("/metadata/taskdefs/step_a"))).await;
    assert_eq!((r.status, r.json()["retryCount"].as_i64()), (200, Some(1)));
    assert!(r.json()["createTime"].as_i64().is_some_and(|t| t > 0), "createTime is set");
    let r = send(c.get(node.api("/metadata/taskdefs"))).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));

    // PUT one: replaces, keeps createTime; unknown → 404.
    let r = send(c.put(node.api("/metadata/taskdefs")).json(&json!({"name": "step_b", "retryCount": 5}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let b = send(c.get(node.api("/metadata/taskdefs/step_b"))).await.json();
    assert_eq!(b["retryCount"], 5);
    assert!(b["updateTime"].as_i64().is_some());
    let r = send(c.put(node.api("/metadata/taskdefs")).json(&json!({"name": "ghost"}))).await;
    assert_eq!(r.status, 404);

    // POST workflow: 409 on duplicate, overwrite=True replaces; PUT list upserts; latest by default.
    let def = json!({"name": "two_steps", "version": 1, "tasks": [{"name": "step_a", "taskReferenceName": "a"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.json()["message"], "Workflow with two_steps.1 already exists!");
    let r = send(c.post(node.api("/metadata/workflow?overwrite=True")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v2 = json!([{"name": "two_steps", "version": 2, "tasks": [{"name": "step_b", "taskReferenceName": "b"}]}]);
    let r = send(c.put(node.api("/metadata/workflow")).json(&v2)).await;
    assert_eq!(r.json(), json!({"bulkErrorResults": {}, "bulkSuccessfulResults": ["two_steps"]}));
    assert_eq!(send(c.get(node.api("/metadata/workflow/two_steps"))).await.json()["version"], 2);
    assert_eq!(
        send(c.get(node.api("/metadata/workflow/two_steps?version=1"))).await.json()["tasks"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(send(c.get(node.api("/metadata/workflow"))).await.json().as_array().map(Vec::len), Some(2));
    let r = send(c.get(node.api("/metadata/workflow/ghost"))).await;
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("No such workflow found by name: ghost, version: null"))
    );

    // DELETE, with the `{}` body the Python SDK sends.
    assert_eq!(send(c.delete(node.api("/metadata/workflow/two_steps/2")).json(&json!({}))).await.status, 200);
    assert_eq!(send(c.delete(node.api("/metadata/workflow/two_steps/2"))).await.status, 404);
    assert_eq!(send(c.get(node.api("/metadata/workflow/two_steps"))).await.json()["version"], 1);
    assert_eq!(send(c.delete(node.api("/metadata/taskdefs/step_b")).json(&json!({}))).await.status, 200);
    let r = send(c.get(node.api("/metadata/taskdefs/step_b"))).await;
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("No such taskType found by name: step_b")));
}

#[tokio::test]
async fn a_workflow_runs_through_polls_and_updates() {
    let (_dir, node) = node().await;
    let c = client();
    register(&node).await;

    let r = send(
        c.post(node.api("/workflow"))
            .json(&json!({"name": "two_steps", "input": {"x": 7}, "correlationId": "c-1", "priority": 3})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.content_type.as_deref(), Some("text/plain"), "ids come back as text/plain");
    let id = r.text.clone();
    assert_eq!(id.len(), 36, "a UUID, unquoted: {id:?}");

    let running = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
    assert_eq!((running["status"].as_str(), running["correlationId"].as_str()), (Some("RUNNING"), Some("c-1")));
    assert_eq!(running["tasks"][0]["status"], "SCHEDULED");
    assert_eq!(running["workflowName"], "two_steps");
    assert!(running["startTime"].is_i64() && running["endTime"].is_i64(), "times are epoch millis");
    let sizes = send(c.get(node.api("/tasks/queue/sizes?taskType=step_a&taskType=step_b"))).await.json();
    assert_eq!(sizes, json!({"step_a": 1, "step_b": 0}));

    let a = poll(&node, "step_a").await;
    assert_eq!(
        (a["status"].as_str(), a["workerId"].as_str(), a["pollCount"].as_i64()),
        (Some("IN_PROGRESS"), Some("tester"), Some(1))
    );
    assert_eq!(a["inputData"], json!({"x": 7, "id": id}));
    assert_eq!((a["workflowPriority"].as_i64(), a["taskType"].as_str()), (Some(3), Some("step_a")));
    assert_eq!(a["workflowTask"]["taskDefinition"]["retryCount"], 1, "clients read retry settings here");
    let got = send(c.get(node.api(&format!("/tasks/{}", a["taskId"].as_str().unwrap_or_default())))).await.json();
    assert_eq!(got["status"], "IN_PROGRESS");

    // A log line as raw text, then the update through update-v2 (no next step_a task → 204).
    let task_id = a["taskId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(
        send(
            c.post(node.api(&format!("/tasks/{task_id}/log")))
                .header("content-type", "application/json")
                .body("working on it")
        )
        .await
        .status,
        200
    );
    let result = json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED", "outputData": {"value": 42},
                        "workerId": "tester", "logs": [{"log": "done", "taskId": task_id, "createdTime": 1}], "extendLease": false});
    let r = send(c.post(node.api("/tasks/update-v2")).json(&result)).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let logs = send(c.get(node.api(&format!("/tasks/{task_id}/log")))).await.json();
    assert_eq!(
        logs.as_array().map(|l| l.iter().map(|x| x["log"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("working on it"), json!("done")])
    );

    // Repeating the update is a 200 no-op.
    let r = send(
        c.post(node.api("/tasks")).json(&json!({"workflowInstanceId": id, "taskId": task_id, "status": "FAILED"})),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (200, task_id.as_str()));

    let b = poll(&node, "step_b").await;
    assert_eq!(b["inputData"], json!({"fromA": 42, "msg": "got 42"}));
    // The status of a running workflow (its header row, current after every apply), and of none.
    let running = send(c.get(node.api(&format!("/workflow/{id}/status?includeVariables=true")))).await.json();
    assert_eq!(running, json!({"workflowId": id, "correlationId": "c-1", "variables": {}, "status": "RUNNING"}));
    let missing = send(c.get(node.api("/workflow/no-such-id/status"))).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    // Update by reference name: the Python TaskClient wraps the output as {"result": ...}.
    let r =
        send(c.post(node.api(&format!("/tasks/{id}/b/COMPLETED?workerid=host"))).json(&json!({"done": true}))).await;
    assert_eq!((r.status, r.text.as_str()), (200, b["taskId"].as_str().unwrap_or_default()));

    let done = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(done["output"], json!({"final": true, "a": 42}));
    assert!(done["endTime"].as_i64().is_some_and(|t| t > 0));
    let status = send(c.get(node.api(&format!("/workflow/{id}/status?includeOutput=true")))).await.json();
    assert_eq!(
        status,
        json!({"workflowId": id, "correlationId": "c-1", "output": {"final": true, "a": 42}, "status": "COMPLETED"})
    );
    let without = send(c.get(node.api(&format!("/workflow/{id}?includeTasks=false")))).await.json();
    assert_eq!(without["tasks"], json!([]));
    // Nothing left to update by reference: empty body.
    let r = send(c.post(node.api(&format!("/tasks/{id}/b/COMPLETED"))).json(&json!({}))).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""));
}

#[tokio::test]
async fn start_by_name_inline_definitions_and_terminate() {
    let (_dir, node) = node().await;
    let c = client();
    register(&node).await;

    let r =
        send(c.post(node.api("/workflow/two_steps?version=1&correlationId=by-name&priority=")).json(&json!({"x": 1})))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by_name = r.text;
    let wf = send(c.get(node.api(&format!("/workflow/{by_name}")))).await.json();
    assert_eq!((wf["correlationId"].as_str(), wf["input"]["x"].as_i64()), (Some("by-name"), Some(1)));

    // An inline definition runs without being registered; its tasks need no task definition.
    let inline = json!({"name": "adhoc", "workflowDef": {"name": "adhoc", "version": 1, "tasks": [{"name": "unregistered", "taskReferenceName": "u"}]}, "input": {}});
    let r = send(c.post(node.api("/workflow")).json(&inline)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let u = poll(&node, "unregistered").await;
    assert_eq!((u["responseTimeoutSeconds"].as_i64(), u["workflowType"].as_str()), (Some(3600), Some("adhoc")));

    // Terminate with a reason: open tasks are canceled; again is a no-op; unknown → 404.
    let r = send(c.delete(node.api(&format!("/workflow/{by_name}?reason=enough"))).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = send(c.get(node.api(&format!("/workflow/{by_name}")))).await.json();
    assert_eq!((wf["status"].as_str(), wf["reasonForIncompletion"].as_str()), (Some("TERMINATED"), Some("enough")));
    assert_eq!(wf["tasks"][0]["status"], "CANCELED");
    assert_eq!(send(c.delete(node.api(&format!("/workflow/{by_name}")))).await.status, 200);
    let r = send(c.delete(node.api("/workflow/nope"))).await;
    assert_eq!((r.status, r.json()["message"].as_str()), (404, Some("No such workflow found by id: nope")));
    // The canceled task is not handed out.
    let r = send(c.get(node.api("/tasks/poll/batch/step_a?count=5&timeout=100"))).await;
    assert_eq!((r.status, r.text.as_str(), r.content_type.as_deref()), (200, "[]", Some("application/json")));
    assert_eq!(send(c.get(node.api("/tasks/poll/step_a"))).await.status, 204);
}

#[tokio::test]
async fn long_poll_is_woken_by_a_new_task() {
    let (_dir, node) = node().await;
    register(&node).await;
    let url = node.api("/tasks/poll/batch/step_a?count=1&timeout=5000&workerid=waiter");
    let waiter = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = send(client().get(url)).await;
        (r.json(), started.elapsed())
    });
    // The poll is waiting on an empty queue; the start below schedules the task it gets.
    tokio::task::yield_now().await;
    let r = send(client().post(node.api("/workflow")).json(&json!({"name": "two_steps", "input": {}}))).await;
    assert_eq!(r.status, 200);
    let (tasks, waited) = waiter.await.expect("joined");
    assert_eq!(tasks[0]["workflowInstanceId"].as_str(), Some(r.text.as_str()));
    assert!(waited < Duration::from_millis(4_500), "returned when the task arrived, not at the timeout: {waited:?}");
}

/// A long poll waiting on an empty queue is handed the task that the next decision schedules
/// there, committed as polled in the same batch: it never enters the queue, and what the worker
/// got survives a kill -9 like any other poll.
#[tokio::test]
async fn a_waiting_poll_is_handed_the_next_task_in_the_commit_that_schedules_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    let c = client();
    register(&node).await;
    let id = send(c.post(node.api("/workflow/two_steps")).json(&json!({"x": 1}))).await.text;
    let a = poll(&node, "step_a").await;

    let url = node.api("/tasks/poll/batch/step_b?count=4&timeout=5000&workerid=waiting-b");
    let waiter = tokio::spawn(async move { send(client().get(url)).await });
    let metrics = format!("{}/metrics", node.url);
    let waiting = wait_for(Duration::from_secs(10), || {
        let (c, metrics) = (c.clone(), metrics.clone());
        async move { send(c.get(metrics)).await.text.contains("overture_task_polls_waiting{queue=\"step_b\"} 1") }
    })
    .await;
    assert!(waiting, "the step_b poll waits on its empty queue");

    let done_a =
        json!({"workflowInstanceId": id, "taskId": a["taskId"], "status": "COMPLETED", "outputData": {"value": 5}});
    assert_eq!(send(c.post(node.api("/tasks")).json(&done_a)).await.status, 200);
    let r = waiter.await.expect("joined");
    assert_eq!(r.status, 200, "{}", r.text);
    let tasks = r.json();
    assert_eq!(tasks.as_array().map(Vec::len), Some(1), "{tasks}");
    let b = &tasks[0];
    assert_eq!(
        (b["referenceTaskName"].as_str(), b["status"].as_str(), b["workerId"].as_str(), b["pollCount"].as_i64()),
        (Some("b"), Some("IN_PROGRESS"), Some("waiting-b"), Some(1))
    );
    assert_eq!(b["inputData"], json!({"fromA": 5, "msg": "got 5"}));
    let text = send(c.get(&metrics)).await.text;
    for needle in [
        "overture_task_handed_off_total{taskType=\"step_b\"} 1",
        "task_poll_total{taskType=\"step_b\"} 1",
        "task_queue_depth{queue=\"step_b\"} 0",
        "overture_task_polls_waiting{queue=\"step_b\"} 0",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }

    // The hand-off was committed before the poll answered.
    node.kill9().await;
    let node = Node::start(&data).await;
    let task_id = b["taskId"].as_str().unwrap_or_default();
    let got = send(c.get(node.api(&format!("/tasks/{task_id}")))).await.json();
    assert_eq!((got["status"].as_str(), got["workerId"].as_str()), (Some("IN_PROGRESS"), Some("waiting-b")));
    let sizes = send(c.get(node.api("/tasks/queue/sizes?taskType=step_b"))).await.json();
    assert_eq!(sizes, json!({"step_b": 0}), "never queued, so nothing to hand out twice");
    let done_b =
        json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED", "outputData": {"done": true}});
    assert_eq!(send(c.post(node.api("/tasks")).json(&done_b)).await.status, 200);
    let done = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(done["output"], json!({"final": true, "a": 5}));
}

#[tokio::test]
async fn bad_input_is_a_json_4xx_and_writes_nothing() {
    let (_dir, node) = node().await;
    let c = client();
    register(&node).await;
    let wf_before = send(c.get(node.api("/metadata/workflow"))).await.text;
    let td_before = send(c.get(node.api("/metadata/taskdefs"))).await.text;

    // (method, path, body, status, message fragment)
    let cases: Vec<(&str, &str, Option<Value>, u16, &str)> = vec![
        ("POST", "/workflow", Some(json!("{\"name\": ")), 400, "Invalid request body"),
        ("POST", "/workflow", Some(json!("not json")), 400, "Invalid request body"),
        ("POST", "/workflow", Some(json!({"name": "ghost"})), 404, "No such workflow found by name: ghost"),
        ("POST", "/workflow", Some(json!({"input": {}})), 400, "Workflow name cannot be null or empty"),
        ("POST", "/workflow", Some(json!({"name": "two_steps", "input": null})), 400, "Input payload cannot be null"),
        ("POST", "/workflow", Some(json!({"name": "two_steps", "priority": 100})), 400, "priority"),
        ("POST", "/workflow/ghost", Some(json!({})), 404, "No such workflow found by name: ghost"),
        (
            "POST",
            "/metadata/taskdefs",
            Some(json!([{"name": "t", "retryLogic": "SOMETIMES"}])),
            400,
            "unknown variant `SOMETIMES`",
        ),
        (
            "POST",
            "/metadata/taskdefs",
            Some(json!([{"name": "t", "timeoutPolicy": "NEVER"}])),
            400,
            "unknown variant `NEVER`",
        ),
        ("POST", "/metadata/taskdefs", Some(json!([{"name": ""}])), 400, "Validation failed"),
        ("POST", "/metadata/taskdefs", Some(json!([])), 400, "TaskDef list cannot be empty"),
        ("POST", "/metadata/taskdefs", Some(json!({"name": "not-a-list"})), 400, "Invalid request body"),
        ("POST", "/metadata/workflow", Some(json!({"name": "w", "tasks": []})), 400, "Validation failed"),
        (
            "POST",
            "/metadata/workflow",
            Some(json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "a", "type": "LLM_CHAT_COMPLETE"}]})),
            400,
            "Validation failed",
        ),
        (
            "POST",
            "/metadata/workflow",
            Some(
                json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "a", "inputParameters": {"p": "${nobody.output.x}"}}]}),
            ),
            400,
            "Validation failed",
        ),
        (
            "PUT",
            "/metadata/workflow",
            Some(
                json!([{"name": "ok", "tasks": [{"name": "a", "taskReferenceName": "a"}]}, {"name": "", "tasks": []}]),
            ),
            400,
            "Validation failed",
        ),
        (
            "POST",
            "/tasks",
            Some(json!({"taskId": "x", "status": "COMPLETED"})),
            400,
            "Workflow Id cannot be null or empty",
        ),
        (
            "POST",
            "/tasks",
            Some(json!({"workflowInstanceId": "w", "status": "COMPLETED"})),
            400,
            "Task ID cannot be null or empty",
        ),
        (
            "POST",
            "/tasks",
            Some(json!({"workflowInstanceId": "w", "taskId": "t", "status": "DONE"})),
            400,
            "unknown variant `DONE`",
        ),
        (
            "POST",
            "/tasks",
            Some(json!({"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED"})),
            404,
            "No such task found by id: t",
        ),
        ("POST", "/tasks/w/ref/BOGUS", Some(json!({})), 400, "Unknown task status"),
        ("POST", "/tasks/nowf/ref/COMPLETED", Some(json!({})), 404, "No such workflow found by id: nowf"),
        ("GET", "/tasks/nope", None, 404, "Task not found for taskId: nope"),
        ("GET", "/workflow/nope", None, 404, "No such workflow found by id: nope"),
        (
            "GET",
            "/tasks/poll/batch/step_a?timeout=6000",
            None,
            400,
            "Long Poll Timeout value cannot be more than 5 seconds",
        ),
        ("GET", "/tasks/poll/batch/step_a?count=abc", None, 400, "count must be an integer"),
        ("GET", "/workflow/x?includeTasks=maybe", None, 400, "includeTasks must be true or false"),
        ("DELETE", "/metadata/workflow/two_steps/one", None, 400, "version must be an integer"),
        ("PATCH", "/workflow/x", None, 405, "Method PATCH is not supported"),
        ("GET", "/no/such/path", None, 404, "No resource found"),
        ("POST", "/token", Some(json!({"keyId": "k", "keySecret": "s"})), 404, "Authentication is off"),
    ];
    for (method, path, body, status, message) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = c.request(method.clone(), node.api(path)).header("content-type", "application/json");
        request = match body {
            // A JSON string stands for a raw, possibly malformed, body.
            Some(Value::String(raw)) => request.body(raw),
            Some(v) => request.body(v.to_string()),
            None => request,
        };
        let r = send(request).await;
        let what = format!("{method} {path}");
        assert_eq!(r.status, status, "{what}: {}", r.text);
        assert_eq!(r.content_type.as_deref(), Some("application/json"), "{what}");
        let body = r.json();
        assert_eq!(body["status"].as_u64(), Some(u64::from(status)), "{what}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(message)), "{what}: {body}");
    }

    // Oversize bodies: 413 with a JSON error. The server stops reading and closes that
    // connection, so the request goes on a client of its own.
    let big = vec![b' '; 12 << 20];
    let r = send(client().post(node.api("/workflow")).header("content-type", "application/json").body(big)).await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.json()["message"].as_str().is_some_and(|m| m.contains("larger than the limit")));

    // Nothing was written by any of them.
    assert_eq!(send(c.get(node.api("/metadata/workflow"))).await.text, wf_before);
    assert_eq!(send(c.get(node.api("/metadata/taskdefs"))).await.text, td_before);
    assert_eq!(send(c.get(node.api("/tasks/queue/sizes?taskType=step_a"))).await.json(), json!({"step_a": 0}));
    // The node is still up.
    assert_eq!(send(c.get(format!("{}/health", node.url))).await.json()["healthy"], true);
}

#[tokio::test]
async fn metrics_and_health_are_served() {
    let (_dir, node) = node().await;
    let c = client();
    register(&node).await;
    let id = send(c.post(node.api("/workflow/two_steps")).json(&json!({"x": 1}))).await.text;
    let a = poll(&node, "step_a").await;
    let r = send(
        c.post(node.api("/tasks"))
            .json(&json!({"workflowInstanceId": id, "taskId": a["taskId"], "status": "COMPLETED", "outputData": {}})),
    )
    .await;
    assert_eq!(r.status, 200);
    let b = poll(&node, "step_b").await;
    send(
        c.post(node.api("/tasks"))
            .json(&json!({"workflowInstanceId": id, "taskId": b["taskId"], "status": "COMPLETED", "outputData": {}})),
    )
    .await;
    wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    // One more that keeps running, and a start that is refused.
    send(c.post(node.api("/workflow/two_steps")).json(&json!({"x": 2}))).await;
    assert_eq!(send(c.post(node.api("/workflow/no_such_flow")).json(&json!({}))).await.status, 404);

    let text = send(c.get(format!("{}/metrics", node.url))).await.text;
    for needle in [
        "workflow_running{workflowName=\"two_steps\"} 1",
        "workflow_start_error_total{workflowName=\"_unknown\"} 1",
        "task_execution_seconds_count{taskType=\"step_a\",status=\"COMPLETED\"} 1",
        "workflow_execution_seconds_count{workflowName=\"two_steps\",status=\"COMPLETED\"} 1",
        "workflow_start_success_total{workflowName=\"two_steps\"} 2",
        "workflow_completion_total{workflowName=\"two_steps\",status=\"COMPLETED\"} 1",
        "task_poll_total{taskType=\"step_a\"} 1",
        "task_update_total{status=\"COMPLETED\"} 2",
        "task_queue_depth{queue=\"step_a\"} 1",
        "workflow_decision_seconds",
        "overture_raft_apply_seconds",
        "overture_raft_fsync_seconds",
        "overture_raft_term 1",
        "overture_leader_ready 1",
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle:?}:\n{text}");
    }
    let health = send(c.get(node.api("/health"))).await.json();
    assert_eq!(health, json!({"healthResults": [], "suppressedHealthResults": [], "healthy": true}));
    let ready = send(c.get(format!("{}/ready", node.url))).await;
    assert_eq!((ready.status, ready.json()["ready"].as_bool()), (200, Some(true)));
}

#[tokio::test]
async fn chunked_bodies_and_unknown_fields_are_accepted() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_dir, node) = node().await;
    register(&node).await;
    // The JavaScript SDK sends JSON bodies with Transfer-Encoding: chunked and no Content-Length,
    // and both SDKs send fields Conductor models carry but Overture does not use.
    let body = r#"{"name":"two_steps","input":{"x":1},"idempotencyStrategy":"FAIL","somethingNew":{"a":1}}"#;
    let (first, second) = body.split_at(20);
    let host = node.url.trim_start_matches("http://");
    let request = format!(
        "POST /api/workflow HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{first}\r\n{:x}\r\n{second}\r\n0\r\n\r\n",
        first.len(),
        second.len()
    );
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connects");
    stream.write_all(request.as_bytes()).await.expect("sent");
    let mut response = String::new();
    stream.read_to_string(&mut response).await.expect("read");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let id = response.rsplit("\r\n\r\n").next().unwrap_or_default().trim().to_owned();
    let wf = send(client().get(node.api(&format!("/workflow/{id}")))).await;
    assert_eq!((wf.status, wf.json()["input"]["x"].as_i64()), (200, Some(1)), "{response}");
}

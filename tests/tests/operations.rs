//! Operating workflows through the HTTP API of a real node (issue 5): pause, resume, skip,
//! retry, restart, rerun, reset callbacks, decide, remove and the bulk forms, with Conductor's
//! codes.

use std::time::Duration;

use overture_tests::{Node, client, send, wait_status};
use serde_json::{Value, json};

async fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    (dir, node)
}

async fn setup(node: &Node) {
    let c = client();
    let defs = json!([
        {"name": "op_a", "retryCount": 0, "responseTimeoutSeconds": 30},
        {"name": "op_b", "retryCount": 0, "responseTimeoutSeconds": 30},
        {"name": "op_c", "retryCount": 0, "responseTimeoutSeconds": 30}
    ]);
    assert_eq!(send(c.post(node.api("/metadata/taskdefs")).json(&defs)).await.status, 200);
    let def = json!({"name": "ops", "version": 1, "tasks": [
        {"name": "op_a", "taskReferenceName": "a", "inputParameters": {"x": "${workflow.input.x}"}},
        {"name": "op_b", "taskReferenceName": "b"},
        {"name": "op_c", "taskReferenceName": "c"}
    ]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn start(node: &Node, input: Value) -> String {
    let r = send(client().post(node.api("/workflow/ops")).json(&input)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

async fn workflow(node: &Node, id: &str) -> Value {
    send(client().get(node.api(&format!("/workflow/{id}")))).await.json()
}

/// Polls `task_type` and reports it with `status`.
async fn finish(node: &Node, task_type: &str, status: &str) {
    let c = client();
    let r = send(c.get(node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout=2000&workerid=ops")))).await;
    let tasks = r.json();
    let task = tasks.get(0).cloned().unwrap_or_else(|| panic!("no {task_type} task"));
    let result = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": status,
                        "reasonForIncompletion": "on purpose"});
    assert_eq!(send(c.post(node.api("/tasks")).json(&result)).await.status, 200);
}

fn refs(wf: &Value) -> Vec<(String, String)> {
    wf["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .map(|t| {
                    (
                        t["referenceTaskName"].as_str().unwrap_or("").to_owned(),
                        t["status"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn pause_resume_skip_and_decide() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let id = start(&node, json!({})).await;
    let r = send(c.put(node.api(&format!("/workflow/{id}/pause")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(workflow(&node, &id).await["status"], "PAUSED");
    let r = send(c.put(node.api(&format!("/workflow/{id}/skiptask/b")))).await;
    assert_eq!(r.status, 409, "only a RUNNING workflow skips: {}", r.text);
    finish(&node, "op_a", "COMPLETED").await;
    assert_eq!(refs(&workflow(&node, &id).await).len(), 1, "nothing new while paused");
    let r = send(c.put(node.api(&format!("/workflow/{id}/resume")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(refs(&workflow(&node, &id).await).last().map(|r| r.0.clone()), Some("b".to_owned()));
    let r = send(c.put(node.api(&format!("/workflow/{id}/resume")))).await;
    assert_eq!(r.status, 409, "not paused: {}", r.text);

    let id = start(&node, json!({})).await;
    let body = json!({"taskOutput": {"skipped": true}});
    let r = send(c.put(node.api(&format!("/workflow/{id}/skiptask/b"))).json(&body)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    finish(&node, "op_a", "COMPLETED").await;
    let wf = workflow(&node, &id).await;
    assert_eq!(
        refs(&wf),
        [("a".into(), "COMPLETED".into()), ("b".into(), "SKIPPED".into()), ("c".into(), "SCHEDULED".into())]
    );
    let r = send(c.put(node.api(&format!("/workflow/decide/{id}")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.put(node.api("/workflow/nope/pause"))).await;
    assert_eq!(r.status, 404, "{}", r.text);
}

#[tokio::test]
async fn retry_restart_rerun_and_remove() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let id = start(&node, json!({"x": 1})).await;
    let r = send(c.post(node.api(&format!("/workflow/{id}/retry")))).await;
    assert_eq!(r.status, 404, "Conductor answers 404 for a running workflow: {}", r.text);
    finish(&node, "op_a", "COMPLETED").await;
    finish(&node, "op_b", "FAILED").await;
    wait_status(&node, &id, "FAILED", Duration::from_secs(5)).await;

    let r = send(c.post(node.api(&format!("/workflow/{id}/retry")))).await;
    assert_eq!((r.status, r.text.as_str()), (204, ""));
    assert_eq!(workflow(&node, &id).await["status"], "RUNNING");
    finish(&node, "op_b", "COMPLETED").await;
    finish(&node, "op_c", "COMPLETED").await;
    let done = wait_status(&node, &id, "COMPLETED", Duration::from_secs(5)).await;
    assert_eq!(refs(&done).iter().filter(|r| r.0 == "b").count(), 2, "the failed attempt and the retry");

    let r = send(c.post(node.api(&format!("/workflow/{id}/rerun"))).json(&json!({"workflowInput": {"x": 2}}))).await;
    assert_eq!((r.status, r.text.as_str()), (200, id.as_str()));
    let wf = workflow(&node, &id).await;
    assert_eq!(refs(&wf), [("a".into(), "SCHEDULED".into())]);
    assert_eq!(wf["tasks"][0]["inputData"]["x"], 2);

    let r = send(c.post(node.api(&format!("/workflow/{id}/restart")))).await;
    assert_eq!(r.status, 409, "still running: {}", r.text);
    let r = send(c.delete(node.api(&format!("/workflow/{id}/remove")))).await;
    assert_eq!(r.status, 400, "archiving a running workflow: {}", r.text);
    let r = send(c.delete(node.api(&format!("/workflow/{id}?reason=stop")))).await;
    assert_eq!(r.status, 200);
    let r = send(c.post(node.api(&format!("/workflow/{id}/restart?useLatestDefinitions=true")))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    assert_eq!(refs(&workflow(&node, &id).await), [("a".into(), "SCHEDULED".into())]);
    let task_id = workflow(&node, &id).await["tasks"][0]["taskId"].as_str().unwrap_or_default().to_owned();
    let r = send(c.delete(node.api(&format!("/workflow/{id}/remove?archiveWorkflow=false")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(send(c.get(node.api(&format!("/workflow/{id}")))).await.status, 404);
    assert_eq!(send(c.get(node.api(&format!("/tasks/{task_id}")))).await.status, 404, "its tasks are gone");
    assert_eq!(
        send(c.get(node.api("/tasks/queue/sizes?taskType=op_a"))).await.json()["op_a"],
        0,
        "and its queue entry"
    );
}

#[tokio::test]
async fn bulk_operations_answer_per_id() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let a = start(&node, json!({})).await;
    let b = start(&node, json!({})).await;
    let r = send(c.put(node.api("/workflow/bulk/pause")).json(&json!([a, b, "ghost"]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["bulkSuccessfulResults"], json!([a, b]));
    assert!(body["bulkErrorResults"]["ghost"].as_str().is_some_and(|m| m.contains("No such workflow")), "{body}");
    let r = send(c.put(node.api("/workflow/bulk/resume")).json(&json!([a, b]))).await;
    assert_eq!(r.json()["bulkSuccessfulResults"], json!([a, b]));
    let r = send(c.post(node.api("/workflow/bulk/terminate?reason=bulk")).json(&json!([a, b]))).await;
    assert_eq!(r.json()["bulkSuccessfulResults"], json!([a, b]));
    assert_eq!(workflow(&node, &a).await["reasonForIncompletion"], "bulk");
    let r = send(c.post(node.api("/workflow/bulk/restart")).json(&json!([a]))).await;
    assert_eq!(r.json()["bulkSuccessfulResults"], json!([a]));
    let r = send(c.delete(node.api("/workflow/bulk/remove")).json(&json!([b]))).await;
    assert_eq!(r.json()["bulkSuccessfulResults"], json!([b]));
    let too_many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    assert_eq!(send(c.put(node.api("/workflow/bulk/pause")).json(&too_many)).await.status, 400);
}

#[tokio::test]
async fn history_task_pages_and_queue_admin() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let id = start(&node, json!({})).await;
    assert_eq!(send(c.get(node.api("/tasks/queue/size?taskType=op_a"))).await.json(), 1);
    assert_eq!(send(c.get(node.api("/tasks/queue/all"))).await.json()["op_a"], 1);
    finish(&node, "op_a", "COMPLETED").await;
    let data = send(c.get(node.api("/tasks/queue/polldata?taskType=op_a"))).await.json();
    assert_eq!((data[0]["queueName"].as_str(), data[0]["workerId"].as_str()), (Some("op_a"), Some("ops")), "{data}");
    assert_eq!(send(c.post(node.api("/tasks/queue/requeue/op_b"))).await.text, "1");

    // Update by reference, answered with the workflow.
    let r = send(c.post(node.api(&format!("/tasks/{id}/b/COMPLETED/sync"))).json(&json!({"by": "ref"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["tasks"][1]["outputData"]["by"], "ref");
    assert_eq!(send(c.post(node.api(&format!("/tasks/{id}/nope/COMPLETED/sync"))).json(&json!({}))).await.status, 404);

    let page = send(c.get(node.api(&format!("/workflow/{id}/tasks?start=1&count=5&status=completed")))).await.json();
    assert_eq!(page["totalHits"], 2, "{page}");
    assert_eq!(page["results"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["results"][0]["referenceTaskName"], "b");

    let history = send(c.get(node.api(&format!("/workflow/{id}/history")))).await.json();
    let kinds: Vec<&str> =
        history.as_array().map(|h| h.iter().filter_map(|e| e["type"].as_str()).collect()).unwrap_or_default();
    assert_eq!(kinds[..4], ["WorkflowStarted", "TaskScheduled", "TaskPolled", "TaskUpdated"], "{history}");
    assert!(
        history.as_array().is_some_and(|h| h.windows(2).all(|w| w[0]["revision"].as_u64() < w[1]["revision"].as_u64()))
    );
    assert_eq!(history[2]["workerId"], "ops");
    assert_eq!(history[2]["referenceTaskName"], "a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency_keys_make_one_workflow() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let start_with = |key: &str, strategy: &str| json!({"name": "ops", "input": {}, "idempotencyKey": key, "idempotencyStrategy": strategy});
    // Twenty concurrent starts with one key: one workflow, and everyone gets its id.
    let starts = (0..20).map(|_| {
        let (c, url, body) = (c.clone(), node.api("/workflow"), start_with("order-1", "RETURN_EXISTING"));
        async move { send(c.post(url).json(&body)).await }
    });
    let replies = futures::future::join_all(starts).await;
    assert!(replies.iter().all(|r| r.status == 200), "{:?}", replies.iter().map(|r| &r.text).collect::<Vec<_>>());
    let first = replies[0].text.clone();
    assert!(replies.iter().all(|r| r.text == first), "every start answered the same workflow");
    assert_eq!(send(c.get(node.api("/tasks/queue/size?taskType=op_a"))).await.json(), 1, "one workflow ran");

    let r = send(c.post(node.api("/workflow")).json(&start_with("order-1", "FAIL"))).await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = send(c.post(node.api("/workflow")).json(&start_with("order-1", "FAIL_ON_RUNNING"))).await;
    assert_eq!(r.status, 409, "the first is still running: {}", r.text);
    assert_eq!(send(c.delete(node.api(&format!("/workflow/{first}")))).await.status, 200);
    let r = send(c.post(node.api("/workflow")).json(&start_with("order-1", "FAIL_ON_RUNNING"))).await;
    assert_eq!(r.status, 200, "the first has ended: {}", r.text);
    assert_ne!(r.text, first);
    let r = send(c.post(node.api("/workflow")).json(&start_with("order-2", "SOMETIMES"))).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sync_execution_answers_when_the_workflow_gets_there() {
    let (_dir, node) = node().await;
    setup(&node).await;
    let c = client();
    let quick = json!({"name": "quick", "version": 1, "tasks": [
        {"name": "calc", "taskReferenceName": "calc", "type": "INLINE",
         "inputParameters": {"expression": "$.n * 2", "n": "${workflow.input.n}"}}
    ], "outputParameters": {"doubled": "${calc.output.result}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&quick)).await.status, 200);
    let r = send(c.post(node.api("/workflow/execute/quick/0")).json(&json!({"input": {"n": 21}}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!((r.json()["status"].as_str(), r.json()["output"]["doubled"].as_i64()), (Some("COMPLETED"), Some(42)));

    // Waits for a worker task, woken by its completion rather than by the timeout.
    let worker = tokio::spawn({
        let node_url = node.url.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let c = client();
            let r = send(c.get(format!("{node_url}/api/tasks/poll/batch/op_a?count=1&timeout=3000&workerid=w"))).await;
            let task = r.json()[0].clone();
            let done = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED"});
            send(c.post(format!("{node_url}/api/tasks")).json(&done)).await.status
        }
    });
    let started = std::time::Instant::now();
    let r = send(
        c.post(node.api("/workflow/execute/ops/1?waitUntilTaskRef=a&waitForSeconds=20")).json(&json!({"input": {}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(started.elapsed() < Duration::from_secs(5), "answered when `a` finished: {:?}", started.elapsed());
    assert_eq!(r.json()["tasks"][0]["status"], "COMPLETED");
    assert_eq!(r.json()["status"], "RUNNING");
    assert_eq!(worker.await.expect("worker"), 200);

    // Nobody works on it: the wait runs out.
    let r = send(c.post(node.api("/workflow/execute/ops/1?waitForSeconds=1")).json(&json!({"input": {}}))).await;
    assert_eq!((r.status, r.json()["signalTimeout"].as_bool()), (200, Some(true)));
}

/// `retry?resumeSubworkflowTasks=true` retries a failed child in place and the parent's
/// SUB_WORKFLOW task waits for it; without the flag the parent runs a new child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_resumes_sub_workflows_when_asked() {
    let (_dir, node) = node().await;
    let c = client();
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([{"name": "rs_step", "retryCount": 0}]))).await;
    assert_eq!(r.status, 200);
    for def in [
        json!({"name": "rs_child", "version": 1, "tasks": [{"name": "rs_step", "taskReferenceName": "step"}]}),
        json!({"name": "rs_parent", "version": 1, "tasks": [{"name": "kid", "taskReferenceName": "kid",
            "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "rs_child", "version": 1}}]}),
    ] {
        assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    }
    let sub_tasks = |wf: &Value| -> Vec<(String, String)> {
        wf["tasks"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["taskType"] == "SUB_WORKFLOW")
            .map(|t| {
                (t["status"].as_str().unwrap_or("").to_owned(), t["subWorkflowId"].as_str().unwrap_or("").to_owned())
            })
            .collect()
    };

    // Resuming: the same child is retried, the parent's task waits for it.
    let parent = send(c.post(node.api("/workflow/rs_parent")).json(&json!({}))).await.text;
    finish(&node, "rs_step", "FAILED").await;
    let failed = wait_status(&node, &parent, "FAILED", Duration::from_secs(10)).await;
    let [(_, child)] = sub_tasks(&failed).try_into().expect("one SUB_WORKFLOW task");
    let r = send(c.post(node.api(&format!("/workflow/{parent}/retry?resumeSubworkflowTasks=true")))).await;
    assert_eq!(r.status, 204, "{}", r.text);
    let resumed = workflow(&node, &parent).await;
    assert_eq!(resumed["status"], "RUNNING");
    assert_eq!(sub_tasks(&resumed), vec![("IN_PROGRESS".to_owned(), child.clone())], "the same task, the same child");
    assert_eq!(workflow(&node, &child).await["status"], "RUNNING", "the child was retried");
    finish(&node, "rs_step", "COMPLETED").await;
    let done = wait_status(&node, &parent, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(sub_tasks(&done), vec![("COMPLETED".to_owned(), child.clone())]);

    // Without the flag: a new attempt with a new child.
    let parent = send(c.post(node.api("/workflow/rs_parent")).json(&json!({}))).await.text;
    finish(&node, "rs_step", "FAILED").await;
    let failed = wait_status(&node, &parent, "FAILED", Duration::from_secs(10)).await;
    let [(_, first_child)] = sub_tasks(&failed).try_into().expect("one SUB_WORKFLOW task");
    assert_eq!(send(c.post(node.api(&format!("/workflow/{parent}/retry")))).await.status, 204);
    assert!(
        overture_tests::wait_for(Duration::from_secs(10), || async {
            sub_tasks(&workflow(&node, &parent).await).iter().any(|(_, id)| !id.is_empty() && *id != first_child)
        })
        .await,
        "a new child for the new attempt"
    );
    assert_eq!(workflow(&node, &first_child).await["status"], "FAILED", "the old child stays as it was");
}

/// A task type with a colon in it (the separator of a domain in a queue name) stays whole:
/// its poll data names it and no domain, and update-v2 hands out its next task under its own
/// definition's limits (one poll a minute here, so the second task waits).
#[tokio::test]
async fn a_task_type_with_a_colon_keeps_its_name() {
    let (_dir, node) = node().await;
    let c = client();
    let defs = json!([{"name": "billing:charge", "retryCount": 0, "responseTimeoutSeconds": 30,
                       "rateLimitPerFrequency": 1, "rateLimitFrequencyInSeconds": 60}]);
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&defs)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let def = json!({"name": "colon_flow", "version": 1, "tasks": [{"name": "billing:charge", "taskReferenceName": "charge"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    for n in 0..2 {
        let r = send(c.post(node.api("/workflow/colon_flow")).json(&json!({"n": n}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = send(c.get(node.api("/tasks/poll/batch/billing:charge?count=1&timeout=2000&workerid=biller"))).await;
    let task = r.json()[0].clone();
    assert_eq!(task["taskType"], "billing:charge", "{}", r.text);

    let data = send(c.get(node.api("/tasks/queue/polldata?taskType=billing:charge"))).await.json();
    assert_eq!(data.as_array().map(Vec::len), Some(1), "{data}");
    assert_eq!((data[0]["queueName"].as_str(), data[0]["domain"].as_str()), (Some("billing:charge"), None), "{data}");

    let result = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"],
                        "status": "COMPLETED", "workerId": "biller"});
    let r = send(c.post(node.api("/tasks/update-v2")).json(&result)).await;
    assert_eq!(r.status, 204, "the definition allows one task a minute: {}", r.text);
    assert_eq!(send(c.get(node.api("/tasks/queue/size?taskType=billing:charge"))).await.json(), 1);
}

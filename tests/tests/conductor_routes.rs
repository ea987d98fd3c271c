//! conductor-oss 3.32's REST routes that a migrating client calls, one test per controller, over
//! HTTP against a real `overture dev` process: status codes and the shapes conductor-oss answers
//! (literal path segments are never read as a workflow or schedule name).

use overture_tests::{Node, client, send};
use serde_json::{Value, json};

async fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start(&dir.path().join("node")).await;
    (dir, node)
}

fn def(name: &str, version: i32) -> Value {
    json!({"name": name, "version": version, "tasks": [
        {"name": "等待", "taskReferenceName": "hold", "type": "WAIT"}
    ]})
}

#[tokio::test]
async fn metadata_resource_lists_names_versions_and_validates() {
    let (_dir, node) = node().await;
    let c = client();
    for (name, version) in [("订单", 1), ("订单", 2), ("names", 1), ("alpha", 3)] {
        let r = send(c.post(node.api("/metadata/workflow")).json(&def(name, version))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let names = send(c.get(node.api("/metadata/workflow/names"))).await;
    assert_eq!(names.json(), json!(["alpha", "names", "订单"]), "sorted, once each");

    let both = send(c.get(node.api("/metadata/workflow/names-and-versions"))).await.json();
    let versions: Vec<i64> =
        both["订单"].as_array().expect("list").iter().filter_map(|s| s["version"].as_i64()).collect();
    assert_eq!(versions, [1, 2]);
    assert!(both["订单"][0]["createTime"].is_i64(), "{both}");

    let latest = send(c.get(node.api("/metadata/workflow/latest-versions"))).await.json();
    let latest: Vec<(String, i64)> = latest
        .as_array()
        .expect("list")
        .iter()
        .map(|d| (d["name"].as_str().unwrap_or_default().to_owned(), d["version"].as_i64().unwrap_or_default()))
        .collect();
    assert_eq!(latest, [("alpha".into(), 3), ("names".into(), 1), ("订单".into(), 2)]);
    assert!(send(c.get(node.api("/metadata/workflow/latest-versions"))).await.json()[0]["tasks"].is_array());

    let v = send(c.get(node.api("/metadata/workflow/订单/versions"))).await;
    assert_eq!(v.status, 200);
    assert_eq!(v.json().as_array().map(Vec::len), Some(2));
    assert!(v.json()[0].get("updateTime").is_none(), "conductor-oss leaves updateTime out here");
    let none = send(c.get(node.api("/metadata/workflow/nobody/versions"))).await;
    assert_eq!((none.status, none.json()), (200, json!([])), "an unknown name has no versions, not a 404");
    // `names` is also a workflow's name; the literal route still lists (as in conductor-oss).
    assert_eq!(send(c.get(node.api("/metadata/workflow/names?version=1"))).await.json()[0], "alpha");

    let ok = send(c.post(node.api("/metadata/workflow/validate")).json(&def("未注册", 1))).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    assert!(ok.json()["warnings"].is_array());
    let bad = send(c.post(node.api("/metadata/workflow/validate")).json(&json!({"name": "x", "tasks": []}))).await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.json()["validationErrors"].is_array(), "{}", bad.text);
    let stored = send(c.get(node.api("/metadata/workflow/未注册"))).await;
    assert_eq!(stored.status, 404, "validating stores nothing");
}

#[tokio::test]
async fn workflow_bulk_resource_searches_and_terminates_then_removes() {
    let (_dir, node) = node().await;
    let c = client();
    send(c.post(node.api("/metadata/workflow")).json(&def("bulk", 1))).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(send(c.post(node.api("/workflow/bulk")).json(&json!({}))).await.text);
    }
    let search =
        send(c.post(node.api("/workflow/bulk/search?includeTasks=false")).json(&json!([ids[0], "missing"]))).await;
    assert_eq!(search.status, 200, "{}", search.text);
    let body = search.json();
    assert_eq!(body["bulkSuccessfulResults"][0]["workflowId"], ids[0].as_str());
    assert_eq!(body["bulkSuccessfulResults"][0]["status"], "RUNNING");
    assert!(body["bulkErrorResults"]["missing"].is_string(), "{body}");

    let r = send(
        c.delete(node.api("/workflow/bulk/terminate-remove?reason=迁移")).json(&json!([ids[0], ids[1], "missing"])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json();
    assert_eq!(body["bulkSuccessfulResults"], json!([ids[0], ids[1]]), "{body}");
    assert!(body["bulkErrorResults"]["missing"].is_string(), "{body}");
    for id in &ids {
        assert_eq!(send(c.get(node.api(&format!("/workflow/{id}")))).await.status, 404, "removed");
    }
    let empty = send(c.post(node.api("/workflow/bulk/search")).json(&json!([]))).await;
    assert_eq!(empty.status, 400);
}

#[tokio::test]
async fn task_resource_answers_verbose_queue_sizes() {
    let (_dir, node) = node().await;
    let c = client();
    let wf = json!({"name": "q", "version": 1, "tasks": [
        {"name": "扣款", "taskReferenceName": "a", "type": "SIMPLE"}
    ]});
    send(c.post(node.api("/metadata/taskdefs")).json(&json!([{"name": "扣款"}]))).await;
    send(c.post(node.api("/metadata/workflow")).json(&wf)).await;
    for _ in 0..3 {
        send(c.post(node.api("/workflow/q")).json(&json!({}))).await;
    }
    let polled = send(c.get(node.api("/tasks/poll/扣款?workerid=w"))).await;
    assert_eq!(polled.status, 200, "{}", polled.text);
    let verbose = send(c.get(node.api("/tasks/queue/all/verbose"))).await;
    assert_eq!(verbose.status, 200, "{}", verbose.text);
    assert_eq!(verbose.json()["扣款"], json!({"a": {"size": 2, "uacked": 1}}), "{}", verbose.text);
}

#[tokio::test]
async fn admin_and_queue_admin_resources_list_event_queues() {
    let (_dir, node) = node().await;
    let c = client();
    let handler = json!({"name": "on_done", "event": "conductor:q:done", "active": true,
                         "actions": [{"action": "complete_task", "complete_task": {"workflowId": "${workflowId}", "taskRefName": "x"}}]});
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(send(c.get(node.api("/admin/queues"))).await.json(), json!({"conductor:q:done": "q:done"}));
    assert_eq!(
        send(c.get(node.api("/admin/queues?verbose=true"))).await.json(),
        json!({"conductor:q:done": {"q:done": 0}})
    );
    assert_eq!(send(c.get(node.api("/queue/size"))).await.json(), json!({}));
    assert_eq!(send(c.get(node.api("/queue/"))).await.json(), json!({}));
    let r = send(c.post(node.api("/queue/update/w1/ref/COMPLETED")).json(&json!({}))).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "There is no queue for handling COMPLETED status");
}

#[tokio::test]
async fn event_resource_takes_one_handler_or_a_list_of_them() {
    let (_dir, node) = node().await;
    let c = client();
    let handler = |name: &str| {
        json!({"name": name, "event": "conductor:事件", "active": true,
               "actions": [{"action": "complete_task", "complete_task": {"workflowId": "${workflowId}", "taskRefName": "x"}}]})
    };
    assert_eq!(send(c.post(node.api("/event")).json(&handler("one"))).await.status, 200);
    let r = send(c.post(node.api("/event")).json(&json!([handler("from_js_sdk")]))).await;
    assert_eq!(r.status, 200, "the JavaScript SDK's list of one: {}", r.text);
    let names: Vec<String> = send(c.get(node.api("/event")))
        .await
        .json()
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|h| h["name"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(send(c.post(node.api("/event")).json(&handler("one"))).await.status, 409, "a taken name conflicts");
    assert_eq!(send(c.post(node.api("/event")).json(&json!([]))).await.status, 400);
}

#[tokio::test]
async fn scheduler_resource_searches_bulk_pauses_and_answers_404_for_a_missing_schedule() {
    let (_dir, node) = node().await;
    let c = client();
    send(c.post(node.api("/metadata/workflow")).json(&def("nightly", 1))).await;
    for name in ["夜间_报表", "night_cleanup", "morning"] {
        let schedule = json!({"name": name, "cronExpression": "0 0 2 * * *",
                              "startWorkflowRequest": {"name": "nightly", "version": 1}});
        let r = send(c.post(node.api("/scheduler/schedules")).json(&schedule)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let saved = r.json();
        assert_eq!(saved["name"], name, "the saved schedule comes back");
        assert!(saved["createTime"].is_i64() && saved["nextRunTime"].is_i64(), "{saved}");
    }
    let missing = send(c.get(node.api("/scheduler/schedules/nope"))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["message"], "Schedule 'nope' not found");

    let found = send(c.get(node.api("/scheduler/schedules/search?scheduleName=NIGHT"))).await.json();
    assert_eq!(found["totalHits"], 1, "{found}");
    assert_eq!(found["results"][0]["name"], "night_cleanup");
    let all = send(c.get(node.api("/scheduler/schedules/search?workflowName=nightly&size=2"))).await.json();
    assert_eq!(all["totalHits"], 3);
    assert_eq!(all["results"].as_array().map(Vec::len), Some(2), "a page of the sorted list");

    let r = send(c.put(node.api("/scheduler/bulk/pause")).json(&json!(["morning", "夜间_报表", "nope"]))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["bulkSuccessfulResults"], json!(["morning", "夜间_报表"]));
    assert!(r.json()["bulkErrorResults"]["nope"].is_string());
    let paused = send(c.get(node.api("/scheduler/schedules/search?paused=true"))).await.json();
    assert_eq!(paused["totalHits"], 2, "{paused}");
    let r = send(c.put(node.api("/scheduler/bulk/resume")).json(&json!(["morning"]))).await;
    assert_eq!(r.json()["bulkSuccessfulResults"], json!(["morning"]));
    let paused = send(c.get(node.api("/scheduler/schedules/search?paused=true"))).await.json();
    assert_eq!(paused["results"][0]["name"], "夜间_报表", "{paused}");
}

#[tokio::test]
async fn workflow_test_runs_a_definition_on_mocks_with_no_worker() {
    let (_dir, node) = node().await;
    let c = client();
    let taskdefs =
        json!([{"name": "charge", "retryCount": 1, "retryDelaySeconds": 0}, {"name": "step"}, {"name": "child_step"}]);
    assert_eq!(send(c.post(node.api("/metadata/taskdefs")).json(&taskdefs)).await.status, 200);
    let child = json!({"name": "test_child", "version": 1, "tasks": [{"name": "child_step", "taskReferenceName": "child_step"}]});
    // A workflow named "test": the literal route is still the test route.
    let named_test = json!({"name": "test", "version": 1, "tasks": [{"name": "step", "taskReferenceName": "only"}]});
    let def = json!({"name": "checkout", "version": 1, "tasks": [
        {"name": "charge", "taskReferenceName": "charge"},
        {"name": "call", "taskReferenceName": "call", "type": "HTTP",
         "inputParameters": {"http_request": {"uri": "http://127.0.0.1:1/never-called", "method": "GET"}}},
        {"name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE",
         "loopCondition": "$.loop['iteration'] < 2",
         "loopOver": [{"name": "step", "taskReferenceName": "step"}]},
        {"name": "kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "test_child", "version": 1}},
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}
    ], "outputParameters": {"paid": "${charge.output.paid}", "child": "${kid.output.ok}"}});
    for d in [&child, &named_test, &def] {
        let r = send(c.post(node.api("/metadata/workflow")).json(d)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let request = json!({"name": "checkout", "version": 1, "input": {"订单": 42},
        "taskRefToMockOutput": {
            "charge": [{"status": "FAILED", "output": {}}, {"status": "COMPLETED", "output": {"paid": "已付"}}],
            "call": [{"status": "COMPLETED", "output": {"response": {"statusCode": 200}}}],
            "step__1": [{"output": {"n": 1}}],
            "step__2": [{"output": {"n": 2}}],
            "hold": [{"output": {"released": true}}]
        },
        "subWorkflowTestRequest": {"kid": {"name": "test_child", "version": 1,
            "taskRefToMockOutput": {"child_step": [{"output": {"ok": "孩子"}}]}}}
    });
    let r = send(c.post(node.api("/workflow/test")).json(&request)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = r.json();
    assert_eq!(wf["status"], "COMPLETED", "{wf}");
    assert_eq!(wf["workflowName"], "checkout");
    assert_eq!(wf["output"], json!({"paid": "已付", "child": "孩子"}));
    let tasks = wf["tasks"].as_array().expect("tasks");
    let attempts: Vec<&str> =
        tasks.iter().filter(|t| t["referenceTaskName"] == "charge").filter_map(|t| t["status"].as_str()).collect();
    assert_eq!(attempts, ["FAILED", "COMPLETED"], "the retry took the next mock");
    let call = tasks.iter().find(|t| t["referenceTaskName"] == "call").expect("call");
    assert_eq!(call["outputData"]["response"]["statusCode"], 200, "the HTTP task took its mock and was not run");
    assert!(call["domain"].as_str().is_some_and(|d| d.starts_with("overture-test-")), "{call}");
    assert_eq!(tasks.iter().filter(|t| t["taskDefName"] == "step").count(), 2, "two iterations");
    // Nothing was queued where a real worker polls.
    assert_eq!(send(c.get(node.api("/tasks/queue/sizes?taskType=charge"))).await.json()["charge"], 0);

    // A task without a mock stops the run: the workflow answers as it stands.
    let partial =
        json!({"name": "checkout", "version": 1, "taskRefToMockOutput": {"charge": [{"output": {"paid": "部分"}}]}});
    let r = send(c.post(node.api("/workflow/test")).json(&partial)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = r.json();
    assert_eq!(wf["status"], "RUNNING");
    let open: Vec<&str> = wf["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter(|t| t["status"] == "SCHEDULED")
        .filter_map(|t| t["referenceTaskName"].as_str())
        .collect();
    assert_eq!(open, ["call"], "it stopped at the HTTP task with no mock");
    let r = send(c.post(node.api("/workflow/test")).json(&json!({"taskRefToMockOutput": {}}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

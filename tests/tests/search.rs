//! Search and listings through the HTTP API of a real node (issue 5): Conductor's query syntax,
//! free text, sort and paging, summaries as clients decode them, task search, the correlation
//! and running listings, and an index that follows every change in the same write.

use std::collections::BTreeSet;

use overture_tests::{Node, client, send};
use serde_json::{Value, json};

async fn setup(node: &Node) {
    let c = client();
    let defs = json!([{"name": "s_pay", "retryCount": 0}, {"name": "s_ship", "retryCount": 0}]);
    assert_eq!(send(c.post(node.api("/metadata/taskdefs")).json(&defs)).await.status, 200);
    for (name, version, task) in [("s_orders", 1, "s_pay"), ("s_orders", 2, "s_pay"), ("s_returns", 1, "s_ship")] {
        let def = json!({"name": name, "version": version, "tasks": [
            {"name": task, "taskReferenceName": "step", "inputParameters": {"who": "${workflow.input.who}"}}]});
        let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
}

async fn start(node: &Node, name: &str, version: i32, correlation: &str, who: &str) -> String {
    let r = send(
        client()
            .post(node.api(&format!("/workflow/{name}?version={version}&correlationId={correlation}")))
            .json(&json!({"who": who, "n": 1})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

/// Polls one task of `task_type` and reports `status`.
async fn finish(node: &Node, task_type: &str, status: &str) -> Value {
    let c = client();
    let r =
        send(c.get(node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout=2000&workerid=searcher")))).await;
    let task = r.json()[0].clone();
    assert!(task.is_object(), "no {task_type} task: {}", r.text);
    let result = json!({"workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": status,
                        "outputData": {"receipt": "R-77"}, "reasonForIncompletion": "card declined"});
    assert_eq!(send(c.post(node.api("/tasks")).json(&result)).await.status, 200);
    task
}

fn url(node: &Node, path: &str, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(&node.api(path), params).expect("url")
}

async fn search(node: &Node, path: &str, params: &[(&str, &str)]) -> Value {
    let r = send(client().get(url(node, path, params))).await;
    assert_eq!(r.status, 200, "{path} {params:?}: {}", r.text);
    r.json()
}

fn ids(result: &Value) -> Vec<String> {
    result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["workflowId"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn set(list: &[&String]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn conductor_searches_with_paging_sort_and_summaries() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    setup(&node).await;
    let a1 = start(&node, "s_orders", 1, "cust-1", "Ada").await;
    let a2 = start(&node, "s_orders", 2, "cust-2", "Grace").await;
    let a3 = start(&node, "s_orders", 1, "cust-1", "Edsger").await;
    let r1 = start(&node, "s_returns", 1, "cust-3", "Barbara").await;
    // One order fails, one completes; the rest run. Each poll takes the oldest task.
    let failed = finish(&node, "s_pay", "FAILED").await;
    let completed = finish(&node, "s_pay", "COMPLETED").await;
    let (failed_id, completed_id) =
        (failed["workflowInstanceId"].as_str().unwrap_or(""), completed["workflowInstanceId"].as_str().unwrap_or(""));
    assert_eq!((failed_id, completed_id), (a1.as_str(), a2.as_str()));

    // Equality, IN, AND, OR; the index is read at once after the updates, never stale.
    let all = search(&node, "/workflow/search", &[("query", "workflowType = 's_orders'")]).await;
    assert_eq!(all["totalHits"], 3);
    assert_eq!(ids(&all), vec![a3.clone(), a2.clone(), a1.clone()], "newest first by default");
    let r = search(&node, "/workflow/search", &[("query", "status IN (FAILED, COMPLETED)"), ("freeText", "*")]).await;
    assert_eq!(set(&ids(&r).iter().collect::<Vec<_>>()), set(&[&a1, &a2]));
    let r = search(&node, "/workflow/search", &[("query", "workflowType = \"s_orders\" AND status = 'RUNNING'")]).await;
    assert_eq!(ids(&r), vec![a3.clone()]);
    let r = search(&node, "/workflow/search", &[("query", "status = FAILED OR workflowType = 's_returns'")]).await;
    assert_eq!(set(&ids(&r).iter().collect::<Vec<_>>()), set(&[&a1, &r1]));
    let r = search(&node, "/workflow/search", &[("query", &format!("workflowId = '{a2}'"))]).await;
    assert_eq!(ids(&r), vec![a2.clone()]);
    let r = search(&node, "/workflow/search", &[("query", "correlationId = 'cust-1' AND version = 1")]).await;
    assert_eq!(set(&ids(&r).iter().collect::<Vec<_>>()), set(&[&a1, &a3]));

    // Times: epoch millis or ISO-8601, against startTime.
    let a2_start =
        send(client().get(node.api(&format!("/workflow/{a2}")))).await.json()["startTime"].as_i64().expect("startTime");
    let r =
        search(&node, "/workflow/search", &[("query", &format!("startTime >= {a2_start}")), ("sort", "startTime:ASC")])
            .await;
    assert_eq!(ids(&r), vec![a2.clone(), a3.clone(), r1.clone()]);
    let r = search(&node, "/workflow/search", &[("query", "startTime < '2000-01-01T00:00:00Z'")]).await;
    assert_eq!(r["totalHits"], 0);

    // Free text: ids, names, input, reason.
    let r = search(&node, "/workflow/search", &[("freeText", "grace")]).await;
    assert_eq!(ids(&r), vec![a2.clone()]);
    let r = search(&node, "/workflow/search", &[("freeText", "declined")]).await;
    assert_eq!(ids(&r), vec![a1.clone()]);

    // Paging with a sort: constant totalHits, every id exactly once.
    let mut seen = Vec::new();
    for start in [0, 2] {
        let r = search(
            &node,
            "/workflow/search",
            &[("start", &start.to_string()), ("size", "2"), ("sort", "workflowId:ASC")],
        )
        .await;
        assert_eq!(r["totalHits"], 4);
        seen.extend(ids(&r));
    }
    let mut expected = vec![a1.clone(), a2.clone(), a3.clone(), r1.clone()];
    expected.sort();
    assert_eq!(seen, expected);
    let r = search(&node, "/workflow/search", &[("sort", "status:ASC|startTime:DESC")]).await;
    assert_eq!(ids(&r), vec![a2.clone(), a1.clone(), r1.clone(), a3.clone()]);

    // WorkflowSummary's string-typed fields, as the SDKs decode them.
    let r = search(&node, "/workflow/search", &[("query", &format!("workflowId = '{a1}'"))]).await;
    let summary = &r["results"][0];
    assert_eq!(summary["status"], "FAILED");
    assert_eq!(summary["input"], "{n=1, who=Ada}");
    assert_eq!(summary["inputSize"], 14);
    assert_eq!(summary["failedReferenceTaskNames"], "step");
    assert_eq!(summary["parentWorkflowId"], "");
    assert_eq!(summary["version"], 1);
    for time in ["startTime", "updateTime", "endTime"] {
        let text = summary[time].as_str().unwrap_or_else(|| panic!("{time} is a string: {summary}"));
        assert!(text.len() == 24 && text.ends_with('Z') && text.as_bytes()[10] == b'T', "{time}: {text}");
    }
    assert!(summary["executionTime"].as_i64().is_some_and(|t| t >= 0));
    let running = &search(&node, "/workflow/search", &[("query", &format!("workflowId = '{a3}'"))]).await["results"][0];
    assert!(running.get("endTime").is_none(), "a running workflow has no endTime: {running}");

    // search-v2: Workflow models without tasks.
    let r = search(&node, "/workflow/search-v2", &[("query", "status = FAILED")]).await;
    assert_eq!(r["totalHits"], 1);
    assert_eq!(r["results"][0]["workflowId"], a1.as_str());
    assert_eq!(r["results"][0]["tasks"], json!([]));
    assert!(r["results"][0]["startTime"].is_i64());

    // Tasks: by type, status and workflow; summaries and Task models.
    let r = search(&node, "/tasks/search", &[("query", "taskType = 's_pay' AND status = 'SCHEDULED'")]).await;
    assert_eq!(r["totalHits"], 1);
    assert_eq!(r["results"][0]["workflowId"], a3.as_str());
    assert!(r["results"][0]["scheduledTime"].is_string());
    let r = search(&node, "/tasks/search", &[("query", &format!("workflowId = '{a2}'"))]).await;
    assert_eq!(r["results"][0]["output"], "{receipt=R-77}");
    assert_eq!(r["results"][0]["status"], "COMPLETED");
    let r = search(&node, "/tasks/search-v2", &[("query", "status = FAILED"), ("freeText", "declined")]).await;
    assert_eq!(r["totalHits"], 1);
    assert_eq!(r["results"][0]["taskId"], failed["taskId"]);
    assert_eq!(r["results"][0]["workerId"], "searcher");
    let r = search(&node, "/workflow/search-by-tasks", &[("query", "taskType = 's_ship'")]).await;
    assert_eq!(ids(&r), vec![r1.clone()]);
    let r = search(&node, "/workflow/search-by-tasks-v2", &[("query", "status = COMPLETED")]).await;
    assert_eq!(r["results"][0]["workflowId"], a2.as_str());

    // Input errors are 400s that say what is wrong.
    for (params, says) in [
        (vec![("query", "colour = 'red'")], "Unknown search field 'colour'"),
        (vec![("query", "startTime > soon")], "startTime needs a number"),
        (vec![("query", "status = 'FAILED")], "Unterminated"),
        (vec![("size", "5001")], "more than 5000"),
        (vec![("start", "-1")], "must not be negative"),
        (vec![("sort", "startTime:SIDEWAYS")], "ASC or DESC"),
    ] {
        let r = send(client().get(url(&node, "/workflow/search", &params))).await;
        assert_eq!(r.status, 400, "{params:?}: {}", r.text);
        assert!(r.json()["message"].as_str().is_some_and(|m| m.contains(says)), "{params:?}: {}", r.text);
    }
    let r = send(client().get(url(&node, "/tasks/search", &[("query", "workflowVersion = 1")]))).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn correlation_and_running_listings_follow_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    setup(&node).await;
    let c = client();
    let v1a = start(&node, "s_orders", 1, "shared", "Ada").await;
    let v1b = start(&node, "s_orders", 1, "other", "Alan").await;
    let v2 = start(&node, "s_orders", 2, "shared", "Grace").await;

    // Running: version 1 by default, not the latest.
    let r = send(c.get(node.api("/workflow/running/s_orders"))).await;
    assert_eq!(r.json(), json!([v1a, v1b]));
    let r = send(c.get(node.api("/workflow/running/s_orders?version=2"))).await;
    assert_eq!(r.json(), json!([v2]));

    // Correlated: only RUNNING ones unless includeClosed; tasks only if asked.
    finish(&node, "s_pay", "COMPLETED").await;
    let r = send(c.get(node.api("/workflow/s_orders/correlated/shared"))).await;
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{}", r.text);
    assert_eq!(list[0]["workflowId"], v2.as_str());
    assert_eq!(list[0]["tasks"], json!([]));
    let r = send(c.get(node.api("/workflow/s_orders/correlated/shared?includeClosed=true&includeTasks=true"))).await;
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{}", r.text);
    assert_eq!(list[0]["workflowId"], v1a.as_str());
    assert_eq!(list[0]["status"], "COMPLETED");
    assert_eq!(list[0]["tasks"].as_array().map(Vec::len), Some(1));
    let r = send(
        c.post(node.api("/workflow/s_orders/correlated?includeClosed=true")).json(&json!(["shared", "other", "none"])),
    )
    .await;
    let map = r.json();
    assert_eq!(map["shared"].as_array().map(Vec::len), Some(2), "{}", r.text);
    assert_eq!(map["other"][0]["workflowId"], v1b.as_str());
    assert_eq!(map["none"], json!([]));

    // Running ids with a time range: every status, started in the range.
    let started = send(c.get(node.api(&format!("/workflow/{v1a}")))).await.json()["startTime"].as_i64().unwrap_or(0);
    let r = send(
        c.get(node.api(&format!("/workflow/running/s_orders?startTime={started}&endTime={}", started + 3_600_000))),
    )
    .await;
    assert_eq!(r.json(), json!([v1a, v1b]));
    let r = send(c.get(node.api("/workflow/running/s_orders"))).await;
    assert_eq!(r.json(), json!([v1b]));

    // Restart puts a completed workflow back among the running; remove takes it out of every listing.
    assert_eq!(send(c.post(node.api(&format!("/workflow/{v1a}/restart")))).await.status, 204);
    let r = send(c.get(node.api("/workflow/running/s_orders"))).await;
    assert_eq!(r.json(), json!([v1b, v1a]), "oldest start first, and a restart starts again");
    assert_eq!(send(c.delete(node.api(&format!("/workflow/{v1a}/terminate-remove")))).await.status, 200);
    let r = send(c.get(node.api("/workflow/running/s_orders"))).await;
    assert_eq!(r.json(), json!([v1b]));
    let r = search(&node, "/workflow/search", &[("query", &format!("workflowId = '{v1a}'"))]).await;
    assert_eq!(r["totalHits"], 0);
    let r = search(&node, "/workflow/search", &[("query", "correlationId = 'shared'")]).await;
    assert_eq!(ids(&r), vec![v2.clone()]);
    let r = search(&node, "/tasks/search", &[("query", &format!("workflowId = '{v1a}'"))]).await;
    assert_eq!(r["totalHits"], 0);
    let r = search(&node, "/tasks/search", &[("query", "taskType = 's_pay'")]).await;
    assert_eq!(r["totalHits"], 2, "the removed workflow's tasks are gone from the task index: {r}");
}

#[tokio::test]
async fn admin_lists_pending_tasks_and_answers_its_checks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    setup(&node).await;
    let c = client();
    let first = start(&node, "s_orders", 1, "p-1", "Ada").await;
    let second = start(&node, "s_orders", 1, "p-2", "Alan").await;
    let third = start(&node, "s_orders", 1, "p-3", "Grace").await;
    // One finished, one polled (IN_PROGRESS), one waiting (SCHEDULED): two are pending.
    finish(&node, "s_pay", "COMPLETED").await;
    let polled = send(c.get(node.api("/tasks/poll/s_pay?workerid=admin"))).await.json();
    assert_eq!(polled["workflowInstanceId"], second.as_str());

    let r = send(c.get(node.api("/admin/task/s_pay"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let pending: Vec<(String, String)> = r
        .json()
        .as_array()
        .expect("list")
        .iter()
        .map(|t| (t["workflowInstanceId"].as_str().unwrap_or("").into(), t["status"].as_str().unwrap_or("").into()))
        .collect();
    assert_eq!(pending, vec![(second.clone(), "IN_PROGRESS".into()), (third.clone(), "SCHEDULED".into())]);
    let r = send(c.get(node.api("/admin/task/s_pay?start=1&count=5"))).await;
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(send(c.get(node.api("/admin/task/no_such_type"))).await.json(), json!([]));
    assert_eq!(send(c.get(node.api("/admin/task/s_pay?count=-1"))).await.status, 400);

    let r = send(c.post(node.api(&format!("/admin/sweep/requeue/{first}")))).await;
    assert_eq!((r.status, r.text.as_str()), (200, format!("true.{first}").as_str()));
    let r = send(c.post(node.api(&format!("/admin/consistency/verifyAndRepair/{third}")))).await;
    assert_eq!((r.status, r.text.as_str()), (200, "true"));
    assert_eq!(send(c.post(node.api("/admin/consistency/verifyAndRepair/nope"))).await.status, 404);
    assert_eq!(send(c.post(node.api("/admin/sweep/requeue/nope"))).await.status, 404);
    let r = send(c.get(node.api("/admin/config"))).await;
    assert_eq!(r.json()["server"], "overture");
    let r = send(c.get(node.api("/version"))).await;
    assert_eq!((r.status, r.text.is_empty()), (200, false));
}

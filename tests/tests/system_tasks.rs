//! Conductor's system tasks through the HTTP API of a real `overture dev` process: control flow
//! (SWITCH, DECISION, FORK_JOIN, FORK_JOIN_DYNAMIC, DO_WHILE, DYNAMIC, TERMINATE), waiting tasks
//! (WAIT, HUMAN) and inline computation (SET_VARIABLE, INLINE, JSON_JQ_TRANSFORM, NOOP), with
//! workers that poll and update over HTTP like any SDK.

use std::time::Duration;

use overture_tests::{Node, client, send, wait_for, wait_status};
use serde_json::{Value, json};

async fn node() -> (tempfile::TempDir, Node) {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start(&dir.path().join("node")).await;
    (dir, node)
}

async fn register_and_start(node: &Node, def: &Value, input: Value) -> String {
    let c = client();
    let r = send(c.post(node.api("/metadata/workflow?overwrite=true")).json(def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r =
        send(c.post(node.api(&format!("/workflow/{}", def["name"].as_str().unwrap_or_default()))).json(&input)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

/// Polls one task of `task_type`, completes it with `output(task)`; returns the task polled.
async fn work_one(node: &Node, task_type: &str, output: impl Fn(&Value) -> Value) -> Value {
    let c = client();
    let r = send(c.get(node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout=3000&workerid=e2e")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let tasks = r.json();
    let task = tasks.get(0).cloned().unwrap_or_else(|| panic!("no {task_type} task to work on"));
    let result = json!({
        "workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"],
        "status": "COMPLETED", "outputData": output(&task)
    });
    let r = send(c.post(node.api("/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    task
}

async fn workflow(node: &Node, id: &str) -> Value {
    send(client().get(node.api(&format!("/workflow/{id}")))).await.json()
}

fn task_by_ref<'a>(wf: &'a Value, reference: &str) -> &'a Value {
    wf["tasks"]
        .as_array()
        .and_then(|ts| ts.iter().rev().find(|t| t["referenceTaskName"] == reference))
        .unwrap_or_else(|| panic!("no task {reference} in {wf}"))
}

/// One definition that goes through every control-flow and inline system task.
fn tour() -> Value {
    json!({
        "name": "system_tour", "version": 1, "schemaVersion": 2,
        "tasks": [
            {"name": "prepare", "taskReferenceName": "prepare", "inputParameters": {"n": "${workflow.input.n}"}},
            {"name": "remember", "taskReferenceName": "remember", "type": "SET_VARIABLE",
             "inputParameters": {"seen": "${prepare.output.items}"}},
            {"name": "route", "taskReferenceName": "route", "type": "SWITCH", "evaluatorType": "javascript",
             "expression": "$.count > 2 ? 'many' : 'few'", "inputParameters": {"count": "${prepare.output.count}"},
             "decisionCases": {
                "many": [
                    {"name": "split", "taskReferenceName": "split", "type": "FORK_JOIN", "forkTasks": [
                        [{"name": "left", "taskReferenceName": "left"}],
                        [{"name": "double", "taskReferenceName": "double", "type": "INLINE", "inputParameters": {
                            "evaluatorType": "javascript", "n": "${prepare.output.count}",
                            "expression": "function f() { return $.n * 2; } f();"}},
                         {"name": "shape", "taskReferenceName": "shape", "type": "JSON_JQ_TRANSFORM", "inputParameters": {
                            "v": "${double.output.result}", "queryExpression": "{doubled: .v}"}}]
                    ]},
                    {"name": "split_join", "taskReferenceName": "split_join", "type": "JOIN", "joinOn": ["left", "shape"]}
                ]
             },
             "defaultCase": [{"name": "nothing", "taskReferenceName": "nothing", "type": "NOOP"}]},
            {"name": "fan", "taskReferenceName": "fan", "type": "FORK_JOIN_DYNAMIC",
             "dynamicForkTasksParam": "tasks", "dynamicForkTasksInputParamName": "inputs",
             "inputParameters": {"tasks": "${prepare.output.forks}", "inputs": "${prepare.output.forkInputs}"}},
            {"name": "fan_join", "taskReferenceName": "fan_join", "type": "JOIN"},
            {"name": "again", "taskReferenceName": "again", "type": "DO_WHILE",
             "loopCondition": "if ($.again['iteration'] < 3) { true; } else { false; }",
             "loopOver": [{"name": "step", "taskReferenceName": "step", "inputParameters": {"i": "${again.output.iteration}"}}]},
            {"name": "pick", "taskReferenceName": "pick", "type": "DYNAMIC", "dynamicTaskNameParam": "which",
             "inputParameters": {"which": "${workflow.input.which}"}},
            {"name": "pause", "taskReferenceName": "pause", "type": "WAIT", "inputParameters": {"duration": "1 second"}},
            {"name": "approve", "taskReferenceName": "approve", "type": "HUMAN"},
            {"name": "finish", "taskReferenceName": "finish", "type": "TERMINATE", "inputParameters": {
                "terminationStatus": "COMPLETED",
                "workflowOutput": {"seen": "${workflow.variables.seen}", "shape": "${shape.output.result}",
                                   "fan": "${fan_join.output}", "approvedBy": "${approve.output.by}"}}},
            {"name": "never", "taskReferenceName": "never"}
        ]
    })
}

#[tokio::test]
async fn every_control_flow_task_runs_through_the_api() {
    let (_dir, node) = node().await;
    let c = client();
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([
        {"name": "picked", "retryCount": 0, "responseTimeoutSeconds": 30}
    ])))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = register_and_start(&node, &tour(), json!({"n": 3, "which": "picked"})).await;

    work_one(&node, "prepare", |_| {
        json!({
            "count": 3, "items": ["a", "b", "c"],
            "forks": [{"name": "leaf", "taskReferenceName": "leaf_0"}, {"name": "leaf", "taskReferenceName": "leaf_1"}],
            "forkInputs": {"leaf_0": {"k": 0}, "leaf_1": {"k": 1}}
        })
    })
    .await;
    let wf = workflow(&node, &id).await;
    assert_eq!(wf["variables"]["seen"], json!(["a", "b", "c"]));
    assert_eq!(task_by_ref(&wf, "route")["outputData"]["selectedCase"], "many");
    assert_eq!(task_by_ref(&wf, "split")["taskType"], "FORK");
    assert_eq!(task_by_ref(&wf, "shape")["outputData"]["result"], json!({"doubled": 6}));
    assert_eq!(task_by_ref(&wf, "split_join")["status"], "IN_PROGRESS");

    work_one(&node, "left", |_| json!({"side": "left"})).await;
    let wf = workflow(&node, &id).await;
    assert_eq!(task_by_ref(&wf, "split_join")["status"], "COMPLETED");
    assert_eq!(task_by_ref(&wf, "split_join")["outputData"]["left"], json!({"side": "left"}));
    assert_eq!(task_by_ref(&wf, "fan")["inputData"]["forkedTasks"], json!(["leaf_0", "leaf_1"]));

    for _ in 0..2 {
        work_one(&node, "leaf", |t| json!({"k": t["inputData"]["k"]})).await;
    }
    for i in 1..=3 {
        let t = work_one(&node, "step", |t| json!({"i": t["inputData"]["i"]})).await;
        assert_eq!(t["referenceTaskName"], format!("step__{i}"));
        assert_eq!(t["iteration"], i);
        assert_eq!(t["inputData"]["i"], i);
    }
    let picked = work_one(&node, "picked", |_| json!({})).await;
    assert_eq!(picked["referenceTaskName"], "pick");

    // WAIT ends on its own after its duration; HUMAN waits for a person.
    let waited = wait_for(Duration::from_secs(10), || async {
        let wf = workflow(&node, &id).await;
        wf["tasks"].as_array().is_some_and(|ts| ts.iter().any(|t| t["referenceTaskName"] == "approve"))
    })
    .await;
    assert!(waited, "the WAIT task completed on its timer");
    let wf = workflow(&node, &id).await;
    assert_eq!(task_by_ref(&wf, "pause")["status"], "COMPLETED");
    assert_eq!(task_by_ref(&wf, "approve")["status"], "IN_PROGRESS");
    let r = send(c.get(node.api("/tasks/poll/HUMAN?workerid=nobody"))).await;
    assert_eq!(r.status, 204, "nobody polls a HUMAN task");
    let r = send(c.post(node.api(&format!("/tasks/{id}/approve/COMPLETED"))).json(&json!({"by": "ada"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(wf["output"]["seen"], json!(["a", "b", "c"]));
    assert_eq!(wf["output"]["shape"], json!({"doubled": 6}));
    assert_eq!(wf["output"]["fan"], json!({"leaf_0": {"k": 0}, "leaf_1": {"k": 1}}));
    assert_eq!(wf["output"]["approvedBy"], "ada");
    assert!(wf["tasks"].as_array().is_some_and(|ts| ts.iter().all(|t| t["referenceTaskName"] != "never")));
    let again = task_by_ref(&wf, "again");
    assert_eq!((again["status"].as_str(), again["outputData"]["iteration"].as_i64()), (Some("COMPLETED"), Some(3)));
    assert_eq!(again["outputData"]["2"]["step"], json!({"i": 2}));
}

#[tokio::test]
async fn a_wait_timer_fires_after_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut node = Node::start(&dir.path().join("node")).await;
    let def = json!({"name": "waits", "version": 1, "tasks": [
        {"name": "pause", "taskReferenceName": "pause", "type": "WAIT", "inputParameters": {"duration": "2s"}}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;
    assert_eq!(workflow(&node, &id).await["status"], "RUNNING");
    node.terminate().await;
    let node = Node::start(&dir.path().join("node")).await;
    let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(15)).await;
    let pause = task_by_ref(&wf, "pause");
    assert!(pause["endTime"].as_i64() >= pause["startTime"].as_i64().map(|s| s + 2_000), "{pause}");
}

#[tokio::test]
async fn scripts_that_misbehave_fail_their_task_not_the_node() {
    let (_dir, node) = node().await;
    let def = json!({"name": "bad_scripts", "version": 1, "tasks": [
        {"name": "spin", "taskReferenceName": "spin", "type": "INLINE",
         "inputParameters": {"evaluatorType": "javascript", "expression": "while (true) {}"}}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;
    let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(15)).await;
    let spin = task_by_ref(&wf, "spin");
    assert_eq!(spin["status"], "FAILED_WITH_TERMINAL_ERROR");
    assert!(spin["reasonForIncompletion"].as_str().is_some_and(|r| r.contains("timed out")), "{spin}");
    let r = send(client().get(node.api("/health"))).await;
    assert_eq!(r.status, 200);
    let metrics = send(client().get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("overture_script_errors_total{engine=\"javascript\"}"), "script errors are counted");
}

#[tokio::test]
async fn system_task_definitions_are_checked_at_registration() {
    let (_dir, node) = node().await;
    let def = json!({"name": "broken", "version": 1, "tasks": [
        {"name": "s", "taskReferenceName": "s", "type": "SWITCH", "decisionCases": {}},
        {"name": "k", "taskReferenceName": "k", "type": "LLM_TEXT_COMPLETE"}
    ]});
    let r = send(client().post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let messages: Vec<String> = r.json()["validationErrors"]
        .as_array()
        .map(|es| es.iter().filter_map(|e| e["message"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    assert!(
        messages.contains(&"evaluatorType field is required for taskType: SWITCH taskName: s".to_owned()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&"task k: type LLM_TEXT_COMPLETE is not supported by this Overture release yet".to_owned())
    );
}

#[tokio::test]
async fn workflow_and_poll_timeouts_fire_on_durable_timers() {
    let (_dir, node) = node().await;
    let def = json!({"name": "slow_wf", "version": 1, "timeoutSeconds": 1, "timeoutPolicy": "TIME_OUT_WF", "tasks": [
        {"name": "nobody_polls", "taskReferenceName": "a"}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;
    let wf = wait_status(&node, &id, "TIMED_OUT", Duration::from_secs(10)).await;
    assert!(wf["reasonForIncompletion"].as_str().is_some_and(|r| r.starts_with("Workflow timed out")), "{wf}");
    assert_eq!(task_by_ref(&wf, "a")["status"], "CANCELED");

    let def = json!({"name": "unpolled", "version": 1, "tasks": [
        {"name": "lonely", "taskReferenceName": "a", "taskDefinition": {
            "name": "lonely", "retryCount": 0, "pollTimeoutSeconds": 1, "timeoutSeconds": 60,
            "responseTimeoutSeconds": 30, "timeoutPolicy": "TIME_OUT_WF"}}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;
    let wf = wait_status(&node, &id, "TIMED_OUT", Duration::from_secs(10)).await;
    let a = task_by_ref(&wf, "a");
    assert_eq!(a["status"], "TIMED_OUT");
    assert!(a["reasonForIncompletion"].as_str().is_some_and(|r| r.starts_with("Task poll timed out")), "{a}");
}

#[tokio::test]
async fn signals_complete_the_wait_a_workflow_is_blocked_on() {
    let (_dir, node) = node().await;
    let c = client();
    let def = json!({"name": "signalled", "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"},
        {"name": "again", "taskReferenceName": "again", "type": "WAIT", "inputParameters": {"why": "${hold.output.why}"}},
        {"name": "review", "taskReferenceName": "review", "type": "HUMAN"}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;

    let r = send(c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal"))).json(&json!({"why": "放行"}))).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "async signal");
    let wf = workflow(&node, &id).await;
    assert_eq!(task_by_ref(&wf, "hold")["status"], "COMPLETED");
    assert_eq!(task_by_ref(&wf, "hold")["outputData"]["why"], "放行");

    // This signal completes `again`; the workflow then waits on the HUMAN task, which does not
    // block a synchronous wait, so the wait runs out and the target workflow answers.
    let r = send(
        c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync?returnStrategy=BLOCKING_TASK&timeoutMillis=300")))
            .json(&json!({"verdict": "ship it"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let answer = r.json();
    assert_eq!(answer["responseType"], "BLOCKING_TASK");
    assert_eq!(answer["targetWorkflowId"], id.as_str());
    assert_eq!(answer["targetWorkflowStatus"], "RUNNING");
    assert_eq!(answer["signalTimeout"], true, "{answer}");
    assert!(answer["requestId"].is_string());
    assert_eq!(answer["workflowId"], id.as_str(), "no task to show: the target's WorkflowRun");
    assert_eq!(task_by_ref(&answer, "again")["outputData"]["verdict"], "ship it");

    // HUMAN tasks are not signalled (conductor-oss signals WAIT only).
    let r = send(c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal"))).json(&json!({}))).await;
    assert_eq!((r.status, r.text.as_str()), (200, ""), "async: 200 when nothing waits, as conductor-oss answers");
    assert_eq!(task_by_ref(&workflow(&node, &id).await, "review")["status"], "IN_PROGRESS");
    let r = send(c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync"))).json(&json!({}))).await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert_eq!(r.json()["message"], format!("Found no blocked task in workflow {id} to signal"));
    let r = send(c.post(node.api("/tasks/no-such-workflow/COMPLETED/signal")).json(&json!({}))).await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = send(c.post(node.api(&format!("/tasks/{id}/DONE/signal"))).json(&json!({}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r =
        send(c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync?returnStrategy=SOMETHING"))).json(&json!({})))
            .await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn a_sync_signal_answers_the_next_wait_by_return_strategy() {
    let (_dir, node) = node().await;
    let c = client();
    let def = json!({"name": "two_waits", "version": 1, "tasks": [
        {"name": "first", "taskReferenceName": "first", "type": "WAIT"},
        {"name": "second", "taskReferenceName": "second", "type": "WAIT", "inputParameters": {"from": "${first.output.from}"}},
        {"name": "third", "taskReferenceName": "third", "type": "WAIT"}
    ]});
    let id = register_and_start(&node, &def, json!({})).await;
    let r = send(
        c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync?returnStrategy=BLOCKING_TASK")))
            .json(&json!({"from": "上海"})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = r.json();
    assert_eq!(run["responseType"], "BLOCKING_TASK");
    assert_eq!(run["signalTimeout"], false);
    assert_eq!(run["referenceTaskName"], "second", "the TaskRun of the WAIT it now blocks on: {run}");
    assert_eq!(run["taskType"], "WAIT");
    assert_eq!(run["workflowId"], id.as_str());
    assert_eq!(run["input"]["from"], "上海");
    assert_eq!(run["status"], "IN_PROGRESS");

    let r = send(
        c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync?returnStrategy=BLOCKING_TASK_INPUT")))
            .json(&json!({})),
    )
    .await;
    assert_eq!(
        (r.json()["responseType"].clone(), r.json()["referenceTaskName"].clone()),
        (json!("BLOCKING_TASK_INPUT"), json!("third"))
    );
    let r = send(
        c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal/sync?returnStrategy=TARGET_WORKFLOW"))).json(&json!({})),
    )
    .await;
    let run = r.json();
    assert_eq!(
        (run["responseType"].clone(), run["status"].clone()),
        (json!("TARGET_WORKFLOW"), json!("COMPLETED")),
        "{run}"
    );
    assert_eq!(run["targetWorkflowStatus"], "COMPLETED");
    assert!(run["tasks"].as_array().is_some_and(|t| t.len() == 3));
}

#[tokio::test]
async fn sync_execution_answers_by_return_strategy_and_looks_into_sub_workflows() {
    let (_dir, node) = node().await;
    let c = client();
    let child = json!({"name": "blocked_child", "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT", "inputParameters": {"城市": "${workflow.input.城市}"}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&child)).await.status, 200);
    let parent = json!({"name": "sync_parent", "version": 1, "tasks": [
        {"name": "kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "blocked_child"},
         "inputParameters": {"城市": "${workflow.input.城市}"}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&parent)).await.status, 200);
    let execute = |strategy: &str| {
        c.post(node.api(&format!(
            "/workflow/execute/sync_parent/1?requestId=请求-1&returnStrategy={strategy}&consistency=SYNCHRONOUS&waitForSeconds=20"
        )))
        .json(&json!({"input": {"城市": "杭州"}}))
    };
    let r = send(execute("BLOCKING_WORKFLOW")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let run = r.json();
    assert_eq!((run["responseType"].clone(), run["requestId"].clone()), (json!("BLOCKING_WORKFLOW"), json!("请求-1")));
    assert_eq!(run["signalTimeout"], false, "the child's WAIT blocks the parent's execution: {run}");
    let parent_id = run["targetWorkflowId"].as_str().unwrap_or_default().to_owned();
    assert_eq!(run["targetWorkflowStatus"], "RUNNING");
    assert_ne!(run["workflowId"], parent_id.as_str(), "the blocking workflow is the child");
    assert_eq!(run["parentWorkflowId"], parent_id.as_str());

    let r = send(execute("BLOCKING_TASK")).await;
    let run = r.json();
    assert_eq!(
        (run["responseType"].clone(), run["referenceTaskName"].clone()),
        (json!("BLOCKING_TASK"), json!("hold"))
    );
    assert_eq!(run["input"]["城市"], "杭州");
    assert_ne!(run["workflowId"], run["targetWorkflowId"], "the task's own (child) workflow");

    // The async signal of the parent reaches the child's WAIT; the parent then completes.
    let r = send(c.post(node.api(&format!("/tasks/{parent_id}/COMPLETED/signal"))).json(&json!({}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&node, &parent_id, "COMPLETED", Duration::from_secs(10)).await;
}

#[tokio::test]
async fn a_signal_reaches_the_wait_of_a_running_sub_workflow() {
    let (_dir, node) = node().await;
    let c = client();
    let child = json!({"name": "waiting_child", "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&child)).await.status, 200);
    let parent = json!({"name": "signal_parent", "version": 1, "tasks": [
        {"name": "kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "waiting_child"}}]});
    let id = register_and_start(&node, &parent, json!({})).await;
    // The child starts on the leader's executor; wait until it waits.
    let started = overture_tests::wait_for(Duration::from_secs(10), || async {
        task_by_ref(&workflow(&node, &id).await, "kid")["subWorkflowId"].is_string()
    })
    .await;
    assert!(started, "the child started");
    let r = send(c.post(node.api(&format!("/tasks/{id}/COMPLETED/signal"))).json(&json!({"from": "outside"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
    let child_id = task_by_ref(&done, "kid")["subWorkflowId"].as_str().unwrap_or_default().to_owned();
    let child = workflow(&node, &child_id).await;
    assert_eq!(task_by_ref(&child, "hold")["outputData"]["from"], "outside", "the signal completed the child's WAIT");
}

#[tokio::test]
async fn sub_workflows_started_workflows_and_http_calls() {
    let (_dir, node) = node().await;
    let c = client();
    let server = overture_tests::echo::plain().await;
    let child = json!({"name": "kid", "version": 1, "tasks": [
        {"name": "kid_step", "taskReferenceName": "kid_step", "inputParameters": {"v": "${workflow.input.v}"}}
    ], "outputParameters": {"doubled": "${kid_step.output.doubled}"}});
    let r = send(c.post(node.api("/metadata/workflow")).json(&child)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let other =
        json!({"name": "side_job", "version": 1, "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&other)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let parent = json!({"name": "family", "version": 1, "tasks": [
        {"name": "kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW",
         "subWorkflowParam": {"name": "kid"}, "inputParameters": {"v": "${workflow.input.v}"}},
        {"name": "spawn", "taskReferenceName": "spawn", "type": "START_WORKFLOW",
         "inputParameters": {"startWorkflow": {"name": "side_job", "input": {"from": "family"}}}},
        {"name": "call", "taskReferenceName": "call", "type": "HTTP",
         "inputParameters": {"http_request": {"uri": format!("{server}/echo"), "method": "POST",
                                              "body": {"doubled": "${kid.output.doubled}"}}}},
        {"name": "call_fails", "taskReferenceName": "call_fails", "type": "HTTP", "optional": true,
         "inputParameters": {"http_request": {"uri": format!("{server}/fail"), "method": "GET"}}}
    ]});
    let id = register_and_start(&node, &parent, json!({"v": 21, "correlation": "x"})).await;

    let kid_task =
        work_one(&node, "kid_step", |t| json!({"doubled": t["inputData"]["v"].as_i64().unwrap_or(0) * 2})).await;
    let child_id = kid_task["workflowInstanceId"].as_str().unwrap_or_default().to_owned();
    assert_ne!(child_id, id);
    let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(15)).await;
    let kid = task_by_ref(&wf, "kid");
    assert_eq!(kid["subWorkflowId"], child_id.as_str(), "{kid}");
    assert_eq!(kid["outputData"]["doubled"], 42);
    let child = workflow(&node, &child_id).await;
    assert_eq!((child["parentWorkflowId"].as_str(), child["status"].as_str()), (Some(id.as_str()), Some("COMPLETED")));

    let spawned = task_by_ref(&wf, "spawn")["outputData"]["workflowId"].as_str().unwrap_or_default().to_owned();
    let side = wait_status(&node, &spawned, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(side["input"]["from"], "family");

    let call = task_by_ref(&wf, "call");
    assert_eq!(call["outputData"]["response"]["statusCode"], 200);
    assert_eq!(call["outputData"]["response"]["body"]["method"], "POST");
    assert_eq!(call["outputData"]["response"]["body"]["body"], r#"{"doubled":42}"#);
    let fails = task_by_ref(&wf, "call_fails");
    assert_eq!(fails["status"], "COMPLETED_WITH_ERRORS");
    assert_eq!(fails["outputData"]["response"]["statusCode"], 503);
    assert!(fails["reasonForIncompletion"].as_str().is_some_and(|r| r.starts_with("Failed to invoke HTTP task")));
}

/// A START_WORKFLOW task's idempotency key is the one API starts use: `RETURN_EXISTING`
/// completes with the workflow that holds it, `FAIL` is refused naming it, and a key the task
/// took is held against API starts.
#[tokio::test]
async fn start_workflow_tasks_share_idempotency_keys_with_api_starts() {
    let (_dir, node) = node().await;
    overture_tests::keyed::register(&node.url).await;
    overture_tests::keyed::check(&node.url, &node.url, "订单-1", "订单-2").await;
}

#[tokio::test]
async fn terminating_a_parent_terminates_its_child_and_failures_start_the_failure_workflow() {
    let (_dir, node) = node().await;
    let c = client();
    let child = json!({"name": "slow_kid", "version": 1, "tasks": [{"name": "never_done", "taskReferenceName": "w", "type": "WAIT"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&child)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let parent = json!({"name": "impatient", "version": 1, "tasks": [
        {"name": "slow_kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "slow_kid", "version": 1}}
    ]});
    let id = register_and_start(&node, &parent, json!({})).await;
    let child_id =
        wait_for_value(&node, &id, |wf| task_by_ref(wf, "kid")["subWorkflowId"].as_str().map(str::to_owned)).await;
    let r = send(c.delete(node.api(&format!("/workflow/{id}?reason=enough")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let child = wait_status(&node, &child_id, "TERMINATED", Duration::from_secs(10)).await;
    assert!(child["reasonForIncompletion"].as_str().is_some_and(|r| r.contains(&id)), "{child}");

    let cleanup =
        json!({"name": "cleanup", "version": 1, "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&cleanup)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let doomed = json!({"name": "doomed", "version": 1, "failureWorkflow": "cleanup", "tasks": [
        {"name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
         "inputParameters": {"terminationStatus": "FAILED", "terminationReason": "on purpose"}}
    ]});
    let id = register_and_start(&node, &doomed, json!({"k": "v"})).await;
    let failed = wait_status(&node, &id, "FAILED", Duration::from_secs(10)).await;
    let cleanup_id = match failed["output"]["conductor.failure_workflow"].as_str() {
        Some(cid) => cid.to_owned(),
        None => {
            wait_for_value(&node, &id, |wf| wf["output"]["conductor.failure_workflow"].as_str().map(str::to_owned))
                .await
        }
    };
    let run = wait_status(&node, &cleanup_id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(run["input"]["workflowId"], id.as_str());
    assert_eq!(run["input"]["failureStatus"], "FAILED");
    assert_eq!(run["input"]["reason"], "on purpose");
    assert_eq!(run["input"]["k"], "v");
    assert_eq!(run["input"]["failedWorkflow"]["workflowId"], id.as_str());
}

/// Waits until `pick` finds something in the workflow.
async fn wait_for_value(node: &Node, id: &str, pick: impl Fn(&Value) -> Option<String>) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(found) = pick(&workflow(node, id).await) {
            return found;
        }
        assert!(std::time::Instant::now() < deadline, "nothing found in workflow {id}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn event_tasks_drive_event_handlers() {
    let (_dir, node) = node().await;
    let c = client();
    let listener = json!({"name": "listener", "version": 1, "tasks": [
        {"name": "hold", "taskReferenceName": "hold", "type": "WAIT"},
        {"name": "after_hold", "taskReferenceName": "after", "type": "NOOP"}
    ]});
    let listener_id = register_and_start(&node, &listener, json!({})).await;
    let started = json!({"name": "started_by_event", "version": 1, "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&started)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let handler = json!({
        "name": "on_ping", "event": "conductor:pinger:ping", "active": true,
        "condition": "$.level > 1",
        "actions": [
            {"action": "start_workflow", "start_workflow": {"name": "started_by_event", "input": {"level": "${level}"}}},
            {"action": "complete_task", "complete_task": {"workflowId": "${target}", "taskRefName": "hold", "output": {"heard": "${level}"}}},
            {"action": "update_workflow_variables", "update_workflow_variables": {"workflowId": "${target}", "variables": {"pinged": true}}}
        ]
    });
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 409, "a second handler by the same name: {}", r.text);
    let r = send(
        c.put(node.api("/event"))
            .json(&json!({"name": "nobody", "event": "conductor:x", "actions": [{"action": "fail_task"}]})),
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = send(c.post(node.api("/event")).json(&json!({"name": "bad", "event": "", "actions": []}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let listed = send(c.get(node.api("/event/conductor:pinger:ping"))).await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");

    let pinger = json!({"name": "pinger", "version": 1, "tasks": [
        {"name": "quiet", "taskReferenceName": "quiet", "type": "EVENT", "sink": "conductor:ping",
         "inputParameters": {"level": 1, "target": "${workflow.input.target}"}},
        {"name": "ping", "taskReferenceName": "ping", "type": "EVENT", "sink": "conductor",
         "inputParameters": {"level": 5, "target": "${workflow.input.target}"}}
    ]});
    let pinger_id = register_and_start(&node, &pinger, json!({"target": listener_id})).await;
    let wf = wait_status(&node, &pinger_id, "COMPLETED", Duration::from_secs(10)).await;
    let ping = task_by_ref(&wf, "ping");
    assert_eq!(ping["outputData"]["event_produced"], "conductor:pinger:ping");
    assert_eq!(ping["outputData"]["workflowInstanceId"], pinger_id.as_str());

    let heard = wait_status(&node, &listener_id, "COMPLETED", Duration::from_secs(10)).await;
    assert_eq!(task_by_ref(&heard, "hold")["outputData"]["heard"], 5, "only the level-5 message passed the condition");
    assert_eq!(task_by_ref(&heard, "hold")["outputData"]["conductor.event.name"], "conductor:pinger:ping");
    assert_eq!(heard["variables"]["pinged"], true);
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.contains("overture_event_actions_total{outcome=\"completed\"} 3"), "three actions ran once each");

    let r = send(c.delete(node.api("/event/on_ping"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.delete(node.api("/event/on_ping"))).await;
    assert_eq!(r.status, 404, "{}", r.text);

    // A sink on a broker this node has not configured, and one on a queue type not served.
    for (name, sink, why) in
        [("sqs_sink", "sqs:queue", "sqs is not configured"), ("stan_sink", "nats_stream:q", "not supported")]
    {
        let elsewhere = json!({"name": name, "version": 1, "tasks": [
            {"name": "out", "taskReferenceName": "out", "type": "EVENT", "sink": sink}
        ]});
        let id = register_and_start(&node, &elsewhere, json!({})).await;
        let wf = wait_status(&node, &id, "FAILED", Duration::from_secs(10)).await;
        let reason = task_by_ref(&wf, "out")["reasonForIncompletion"].as_str().unwrap_or_default().to_owned();
        assert!(reason.contains(why), "{sink}: {reason}");
    }
}

async fn poll_batch(node: &Node, task_type: &str, count: usize, timeout_ms: u64) -> Vec<Value> {
    let url = node.api(&format!("/tasks/poll/batch/{task_type}?count={count}&timeout={timeout_ms}&workerid=limits"));
    let r = send(client().get(url)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json().as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn concurrency_and_rate_limits_hold_tasks_back() {
    let (_dir, node) = node().await;
    limits_hold_tasks_back(&node).await;
}

/// The same on a node with three partitions: the tasks wait in different partitions, and the
/// limits count over all of them (the metadata group's leader keeps the count).
#[tokio::test]
async fn concurrency_and_rate_limits_hold_tasks_back_over_partitions() {
    let dir = tempfile::tempdir().expect("temp dir");
    let node = Node::start_with_env(&dir.path().join("node"), &[("OVERTURE_PARTITIONS", "3")]).await;
    limits_hold_tasks_back(&node).await;
}

async fn limits_hold_tasks_back(node: &Node) {
    let c = client();
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([
        {"name": "one_at_a_time", "concurrentExecLimit": 1, "retryCount": 0, "responseTimeoutSeconds": 30},
        {"name": "two_a_minute", "rateLimitPerFrequency": 2, "rateLimitFrequencyInSeconds": 60, "retryCount": 0, "responseTimeoutSeconds": 30}
    ])))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for name in ["one_at_a_time", "two_a_minute"] {
        let def =
            json!({"name": format!("wf_{name}"), "version": 1, "tasks": [{"name": name, "taskReferenceName": "t"}]});
        for _ in 0..3 {
            register_and_start(node, &def, json!({})).await;
        }
    }

    let first = poll_batch(node, "one_at_a_time", 3, 100).await;
    assert_eq!(first.len(), 1, "concurrentExecLimit 1 hands out one");
    assert!(poll_batch(node, "one_at_a_time", 3, 100).await.is_empty(), "nothing more while it runs");
    // A long poll waiting for a slot is handed the next task as soon as the first finishes.
    let waiting = tokio::spawn({
        let url = node.api("/tasks/poll/batch/one_at_a_time?count=3&timeout=4000&workerid=limits");
        async move { send(client().get(url)).await.json() }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let done = json!({"workflowInstanceId": first[0]["workflowInstanceId"], "taskId": first[0]["taskId"], "status": "COMPLETED"});
    let started = std::time::Instant::now();
    assert_eq!(send(c.post(node.api("/tasks")).json(&done)).await.status, 200);
    let next = waiting.await.expect("poll finished");
    assert_eq!(next.as_array().map(Vec::len), Some(1), "{next}");
    assert!(started.elapsed() < Duration::from_secs(3), "woken by the free slot, not by the timeout");

    let rated = poll_batch(node, "two_a_minute", 3, 100).await;
    assert_eq!(rated.len(), 2, "two per minute");
    assert!(poll_batch(node, "two_a_minute", 3, 100).await.is_empty(), "the third waits for the window");
    assert_eq!(poll_batch(node, "one_at_a_time", 3, 100).await.len(), 0, "still one running");
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    for needle in [
        "task_rate_limited_total{taskType=\"two_a_minute\"}",
        "task_concurrent_execution_limited_total{taskType=\"one_at_a_time\"}",
    ] {
        assert!(metrics.contains(needle), "/metrics lacks {needle}");
    }
}

#[tokio::test]
async fn a_domain_list_picks_the_domain_workers_poll() {
    let (_dir, node) = node().await;
    let c = client();
    // A worker of `blue` is alive (it polled, finding nothing).
    let r = send(c.get(node.api("/tasks/poll/dom_task?workerid=w&domain=blue"))).await;
    assert_eq!(r.status, 204);
    let def = json!({"name": "domains", "version": 1, "tasks": [{"name": "dom_task", "taskReferenceName": "t"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let start = json!({"name": "domains", "taskToDomain": {"dom_task": "red,blue,green"}});
    let id = send(c.post(node.api("/workflow")).json(&start)).await.text;
    let wf = workflow(&node, &id).await;
    assert_eq!(task_by_ref(&wf, "t")["domain"], "blue", "{wf}");
    let r = send(c.get(node.api("/tasks/poll/dom_task?workerid=w&domain=blue"))).await;
    assert_eq!(r.status, 200, "the blue worker gets it: {}", r.text);
}

#[tokio::test]
async fn a_status_listener_workflow_publishes_its_end_to_event_handlers() {
    let (_dir, node) = node().await;
    let c = client();
    let waiter = json!({"name": "waiter", "version": 1, "tasks": [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}]});
    let waiter_id = register_and_start(&node, &waiter, json!({})).await;
    let handler = json!({
        "name": "on_success", "event": "conductor:_callbackSuccessQueue", "active": true,
        "actions": [{"action": "complete_task", "complete_task": {
            "workflowId": "${input.target}", "taskRefName": "hold",
            "output": {"finished": "${workflowId}", "status": "${status}"}}}]
    });
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let announcer = json!({"name": "announcer", "version": 1, "workflowStatusListenerEnabled": true,
        "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]});
    let id = register_and_start(&node, &announcer, json!({"target": waiter_id})).await;
    let done = wait_status(&node, &waiter_id, "COMPLETED", Duration::from_secs(10)).await;
    let hold = task_by_ref(&done, "hold");
    assert_eq!(hold["outputData"]["finished"], id.as_str());
    assert_eq!(hold["outputData"]["status"], "COMPLETED");
}

#[tokio::test]
async fn decision_exclusive_join_lambda_and_a_terminated_child() {
    let (_dir, node) = node().await;
    let c = client();
    let def = json!({"name": "legacy_flow", "version": 1, "tasks": [
        {"name": "lambda", "taskReferenceName": "lambda", "type": "LAMBDA",
         "scriptExpression": "return {kind: $.n > 5 ? 'big' : 'small'};", "inputParameters": {"n": "${workflow.input.n}"}},
        {"name": "decide", "taskReferenceName": "decide", "type": "DECISION", "caseValueParam": "kind",
         "inputParameters": {"kind": "${lambda.output.result.kind}"},
         "decisionCases": {"big": [{"name": "big_one", "taskReferenceName": "big", "type": "SET_VARIABLE", "inputParameters": {"size": "big"}}]},
         "defaultCase": [{"name": "small_one", "taskReferenceName": "small", "type": "SET_VARIABLE", "inputParameters": {"size": "small"}}]},
        {"name": "either", "taskReferenceName": "either", "type": "EXCLUSIVE_JOIN", "joinOn": ["big"], "defaultExclusiveJoinTask": ["small"]}
    ]});
    for (n, size) in [(9, "big"), (1, "small")] {
        let id = register_and_start(&node, &def, json!({"n": n})).await;
        let wf = wait_status(&node, &id, "COMPLETED", Duration::from_secs(10)).await;
        assert_eq!(task_by_ref(&wf, "decide")["outputData"]["caseOutput"], json!([size]));
        assert_eq!(task_by_ref(&wf, "either")["status"], "COMPLETED");
        assert_eq!(wf["variables"]["size"], size);
    }

    // Terminating a child ends its SUB_WORKFLOW task CANCELED, which terminates the parent.
    let child = json!({"name": "stuck_child", "version": 1, "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]});
    let r = send(c.post(node.api("/metadata/workflow")).json(&child)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let parent = json!({"name": "hopeful_parent", "version": 1, "tasks": [
        {"name": "kid", "taskReferenceName": "kid", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "stuck_child"}}
    ]});
    let id = register_and_start(&node, &parent, json!({})).await;
    let child_id =
        wait_for_value(&node, &id, |wf| task_by_ref(wf, "kid")["subWorkflowId"].as_str().map(str::to_owned)).await;
    let r = send(c.delete(node.api(&format!("/workflow/{child_id}?reason=abandoned")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = wait_status(&node, &id, "TERMINATED", Duration::from_secs(10)).await;
    let kid = task_by_ref(&wf, "kid");
    assert_eq!(kid["status"], "CANCELED");
    assert!(kid["reasonForIncompletion"].as_str().is_some_and(|r| r.contains("abandoned")), "{kid}");
}

/// A DO_WHILE of 1,000 iterations, with `keepLastN: 2` and without: the workflow keeps only the
/// last two iterations' tasks, so it stays small; a dropped task is gone from every read.
#[tokio::test]
async fn a_thousand_iterations_with_keep_last_n_keep_the_workflow_small() {
    let (_dir, node) = node().await;
    let c = client();
    let def = |name: &str, keep: Option<i64>| {
        let mut input = json!({"i": "${loop.output.iteration}"});
        if let Some(k) = keep {
            input["keepLastN"] = json!(k);
        }
        json!({"name": name, "version": 1, "tasks": [{
            "name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE", "inputParameters": input,
            "loopCondition": "$.loop['iteration'] < 1000",
            "loopOver": [{"name": "step", "taskReferenceName": "step", "type": "INLINE",
                          "inputParameters": {"evaluatorType": "graaljs", "n": "${loop.output.iteration}",
                                              "expression": "({n: $.n, 载荷: 'x'.repeat(200)})"}}]
        }]})
    };
    let kept = register_and_start(&node, &def("kept_loop", Some(2)), json!({})).await;
    let full = register_and_start(&node, &def("full_loop", None), json!({})).await;
    let kept_wf = wait_status(&node, &kept, "COMPLETED", Duration::from_secs(120)).await;
    let full_wf = wait_status(&node, &full, "COMPLETED", Duration::from_secs(120)).await;

    let refs: Vec<&str> =
        kept_wf["tasks"].as_array().expect("tasks").iter().filter_map(|t| t["referenceTaskName"].as_str()).collect();
    assert_eq!(refs, ["loop", "step__999", "step__1000"], "only the last two iterations remain");
    assert_eq!(task_by_ref(&kept_wf, "loop")["outputData"]["iteration"], 1000);
    assert!(task_by_ref(&kept_wf, "loop")["outputData"].get("1").is_none());
    assert_eq!(full_wf["tasks"].as_array().map(Vec::len), Some(1001));
    let (kept_bytes, full_bytes) = (kept_wf.to_string().len(), full_wf.to_string().len());
    eprintln!("workflow JSON after 1,000 iterations: keepLastN 2: {kept_bytes} bytes; without: {full_bytes} bytes");
    assert!(kept_bytes * 50 < full_bytes, "{kept_bytes} vs {full_bytes}");

    // A dropped task is gone from the task reads and the search.
    let history = send(c.get(node.api(&format!("/workflow/{kept}/history")))).await.json();
    let first = history
        .as_array()
        .and_then(|h| h.iter().find(|e| e["type"] == "TaskScheduled" && e["referenceTaskName"] == "step__1"))
        .and_then(|e| e["taskId"].as_str())
        .expect("the first iteration's task in the history")
        .to_owned();
    assert_eq!(send(c.get(node.api(&format!("/tasks/{first}")))).await.status, 404);
    let found = send(c.get(node.api(&format!("/tasks/search?query=workflowId%3D%27{kept}%27")))).await.json();
    assert_eq!(found["totalHits"], 3, "{found}");
    let page = send(c.get(node.api(&format!("/workflow/{kept}/tasks?count=100")))).await.json();
    assert_eq!(page["totalHits"], 3);
}

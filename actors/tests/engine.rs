//! The engine on a real one-node replica: long polls, timers, retries, completion.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use overture_actors::{Engine, EngineOptions, Error};
use overture_core::dsl::{StartWorkflowRequest, TaskDef, WorkflowDef};
use overture_core::{TaskResultStatus, TaskStatus, TaskUpdate, WorkflowStatus};
use overture_raft::types::Node;
use overture_raft::{Replica, ReplicaOptions};
use serde_json::{Value, json};

async fn engine(dir: &std::path::Path) -> Engine {
    engine_with(dir, EngineOptions { idle_actor_timeout: Duration::from_millis(200), ..Default::default() }).await
}

async fn engine_with(dir: &std::path::Path, options: EngineOptions) -> Engine {
    let replica = Replica::open(ReplicaOptions::new(1, dir.to_path_buf())).await.expect("opens");
    replica.initialize(BTreeMap::from([(1, Node { addr: "127.0.0.1:0".into() })])).await.expect("initializes");
    let engine = Engine::start(replica, options);
    assert!(engine.wait_ready(Duration::from_secs(10)).await, "the single node becomes a ready leader");
    engine
}

fn task_json(raw: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(raw.get()).expect("task JSON")
}

fn complete(task: &Value, output: Value) -> TaskUpdate {
    TaskUpdate {
        task_id: task["taskId"].as_str().expect("taskId").to_owned(),
        status: TaskResultStatus::Completed,
        output: serde_json::from_value(output).ok(),
        merge_output: false,
        reason: None,
        worker_id: Some("w1".into()),
        callback_after_seconds: 0,
        extend_lease: false,
        logs: vec![],
        output_stored_at: None,
    }
}

async fn poll_one(engine: &Engine, task_type: &str, wait: Duration) -> Option<Value> {
    engine.poll(task_type, None, Some("w1".into()), 1, wait).await.expect("poll").first().map(|r| task_json(r))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_timeout_retry_and_completion() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path()).await;

    let slow: TaskDef = serde_json::from_value(json!({
        "name": "slow", "retryCount": 1, "retryDelaySeconds": 0, "responseTimeoutSeconds": 1
    }))
    .expect("def");
    engine.put_task_defs(vec![slow]).await.expect("task def stored");
    let def: WorkflowDef = serde_json::from_value(json!({
        "name": "pipeline",
        "tasks": [
            {"name": "fast", "taskReferenceName": "fast", "inputParameters": {"n": "${workflow.input.n}"}},
            {"name": "slow", "taskReferenceName": "slow", "inputParameters": {"prev": "${fast.output.value}"}}
        ],
        "outputParameters": {"result": "${slow.output.result}"}
    }))
    .expect("def");
    engine.put_workflow_defs(vec![def], false).await.expect("workflow def stored");

    // A worker is already waiting when the workflow starts: the new task wakes it.
    let waiting = {
        let engine = engine.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            (poll_one(&engine, "fast", Duration::from_secs(5)).await, started.elapsed())
        })
    };
    tokio::task::yield_now().await;
    let request: StartWorkflowRequest =
        serde_json::from_value(json!({"name": "pipeline", "input": {"n": 3}})).expect("request");
    let id = engine.start_workflow(request).await.expect("started");
    let (fast, waited) = waiting.await.expect("joined");
    let fast = fast.expect("the waiting poll receives the task");
    assert!(waited < Duration::from_secs(4), "woken by the new task, not by the timeout: {waited:?}");
    assert_eq!((fast["status"].as_str(), fast["inputData"]["n"].as_i64()), (Some("IN_PROGRESS"), Some(3)));
    assert_eq!(fast["workflowInstanceId"].as_str(), Some(id.as_str()));

    // update-v2: completing `fast` hands back the next `fast` task, of which there is none.
    let next = engine.update_task_and_poll(complete(&fast, json!({"value": 10}))).await.expect("updated");
    assert!(next.is_none());

    // `slow` is polled and never answered: its response timeout fires and it is retried.
    let first = poll_one(&engine, "slow", Duration::from_secs(5)).await.expect("slow task");
    assert_eq!(first["inputData"]["prev"].as_i64(), Some(10));
    let retry = poll_one(&engine, "slow", Duration::from_secs(10)).await.expect("retried after the response timeout");
    assert_eq!(retry["retryCount"].as_i64(), Some(1));
    assert_eq!(retry["retriedTaskId"], first["taskId"]);
    let wf = engine.workflow(&id).expect("workflow");
    assert_eq!(wf.tasks[1].status, TaskStatus::TimedOut);

    engine.update_task(complete(&retry, json!({"result": "ok"}))).await.expect("updated");
    let wf = engine.workflow(&id).expect("workflow");
    assert_eq!(wf.header.status, WorkflowStatus::Completed);
    assert_eq!(Value::Object(wf.header.output.clone()), json!({"result": "ok"}));

    // A late update of the timed-out attempt is acknowledged and changes nothing.
    engine.update_task(complete(&first, json!({"result": "late"}))).await.expect("no-op");
    assert_eq!(engine.workflow(&id).expect("workflow").tasks[1].status, TaskStatus::TimedOut);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_values() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path()).await;
    let unknown: StartWorkflowRequest = serde_json::from_value(json!({"name": "ghost"})).expect("request");
    assert!(
        matches!(engine.start_workflow(unknown).await, Err(Error::NotFound(m)) if m == "No such workflow found by name: ghost, version: null")
    );
    let bad_priority: StartWorkflowRequest =
        serde_json::from_value(json!({"name": "x", "priority": 100})).expect("request");
    assert!(matches!(engine.start_workflow(bad_priority).await, Err(Error::BadRequest(_))));
    assert!(matches!(engine.workflow("nope"), Err(Error::NotFound(_))));
    let bad_def: WorkflowDef = serde_json::from_value(json!({"name": "w", "tasks": []})).expect("parses");
    assert!(matches!(engine.put_workflow_defs(vec![bad_def], false).await, Err(Error::Invalid(_))));
    let empty = engine.poll("nothing", None, None, 5, Duration::from_millis(50)).await.expect("poll");
    assert!(empty.is_empty());
    engine.shutdown().await;
    assert!(matches!(engine.poll("x", None, None, 1, Duration::ZERO).await, Err(Error::Unavailable(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_actors_stay_under_the_cap_and_passivated_workflows_carry_on() {
    let dir = tempfile::tempdir().expect("dir");
    let options =
        EngineOptions { idle_actor_timeout: Duration::from_secs(600), max_live_actors: 5, ..Default::default() };
    let engine = engine_with(dir.path(), options).await;
    let def: WorkflowDef = serde_json::from_value(json!({
        "name": "two_steps",
        "tasks": [
            {"name": "first", "taskReferenceName": "first"},
            {"name": "second", "taskReferenceName": "second", "inputParameters": {"n": "${first.output.n}"}}
        ],
        "outputParameters": {"n": "${second.output.n}"}
    }))
    .expect("def");
    engine.put_workflow_defs(vec![def], false).await.expect("stored");
    let mut ids = Vec::new();
    for n in 0..40 {
        let request: StartWorkflowRequest =
            serde_json::from_value(json!({"name": "two_steps", "input": {}})).expect("request");
        ids.push((engine.start_workflow(request).await.expect("started"), n));
        assert!(engine.live_actors() <= 5, "{} live actors, over the cap of 5", engine.live_actors());
    }
    // Every workflow's actor but the last few was passivated while its task waited; each step
    // brings one back, decides on the committed state, and the cap still holds.
    for step in ["first", "second"] {
        let mut done = 0;
        while done < ids.len() {
            let task = poll_one(&engine, step, Duration::from_secs(2)).await.expect("a task is waiting");
            let n = ids.iter().find(|(id, _)| task["workflowInstanceId"] == json!(id)).expect("ours").1;
            let output = if step == "first" { json!({"n": n}) } else { json!({"n": task["inputData"]["n"]}) };
            engine.update_task(complete(&task, output)).await.expect("updated");
            assert!(engine.live_actors() <= 5, "{} live actors, over the cap of 5", engine.live_actors());
            done += 1;
        }
    }
    for (id, n) in &ids {
        let wf = engine.workflow(id).expect("workflow");
        assert_eq!(wf.header.status, WorkflowStatus::Completed, "{id}");
        assert_eq!(wf.header.output.get("n"), Some(&json!(n)), "{id} carried its own data through");
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_change_reaches_the_next_start() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path()).await;
    let task_def = |retries: i32| -> TaskDef {
        serde_json::from_value(json!({"name": "step", "retryCount": retries})).expect("task def")
    };
    engine.put_task_defs(vec![task_def(1)]).await.expect("stored");
    let def = |version: i32, reference: &str| -> WorkflowDef {
        serde_json::from_value(json!({
            "name": "changing", "version": version,
            "tasks": [{"name": "step", "taskReferenceName": reference}]
        }))
        .expect("def")
    };
    engine.put_workflow_defs(vec![def(1, "a")], false).await.expect("stored");
    let start = |version: Option<i32>| {
        let engine = engine.clone();
        async move {
            let request: StartWorkflowRequest =
                serde_json::from_value(json!({"name": "changing", "version": version, "input": {}})).expect("request");
            let id = engine.start_workflow(request).await.expect("started");
            engine.workflow(&id).expect("workflow")
        }
    };
    let retries =
        |wf: &overture_core::WorkflowState| wf.plan.def.tasks[0].task_definition.as_ref().map(|d| d.retry_count);
    let first = start(None).await;
    assert_eq!(retries(&first), Some(1));
    // The compiled plan is shared by the starts of one definition...
    let again = start(None).await;
    assert!(std::sync::Arc::ptr_eq(&first.plan, &again.plan), "one plan for both executions");
    // ...until a definition changes: a task definition,
    engine.update_task_def(task_def(4)).await.expect("updated");
    let second = start(None).await;
    assert_eq!(retries(&second), Some(4), "the next start freezes the new task definition");
    assert_eq!(
        retries(&engine.workflow(&first.header.workflow_id).expect("first")),
        Some(1),
        "the first keeps its own"
    );
    // or a new version, which becomes the latest.
    engine.put_workflow_defs(vec![def(2, "b")], false).await.expect("stored");
    let third = start(None).await;
    assert_eq!((third.header.workflow_version, third.plan.def.tasks[0].task_reference_name.as_str()), (2, "b"));
    let pinned = start(Some(1)).await;
    assert_eq!((pinned.header.workflow_version, retries(&pinned)), (1, Some(4)));
    engine.shutdown().await;
}

/// A ready task wakes one waiting poll, not all of them. Whatever else polls meanwhile (here the
/// zero-wait poll of an `update-v2`, racing the next task), no task may be left waiting for a
/// poll to time out: each reaches a poll that was waiting, or the `update-v2` itself, at once.
/// `job` goes to waiting polls by hand-off; `limited_job` (a `concurrentExecLimit`) through the
/// queue, whose add wakes a poll.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ready_task_reaches_a_waiting_poll_without_waiting_for_a_timeout() {
    let dir = tempfile::tempdir().expect("dir");
    let engine = engine(dir.path()).await;
    let limited: TaskDef =
        serde_json::from_value(json!({"name": "limited_job", "concurrentExecLimit": 1000})).expect("task def");
    engine.put_task_defs(vec![limited]).await.expect("stored");
    for task in ["job", "limited_job"] {
        let def: WorkflowDef = serde_json::from_value(json!({
            "name": format!("single_{task}"), "tasks": [{"name": task, "taskReferenceName": "job"}]
        }))
        .expect("def");
        engine.put_workflow_defs(vec![def], false).await.expect("stored");
        every_task_reaches_a_waiting_poll(&engine, task).await;
    }
    engine.shutdown().await;
}

async fn every_task_reaches_a_waiting_poll(engine: &Engine, task_type: &'static str) {
    const POLL_WAIT: Duration = Duration::from_secs(3);

    // Each poller waits for one task, hands it to the test and stops; the test keeps three
    // waiting, spawning a new one (and letting it start waiting) before the next task is ready.
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Value>();
    let spawn_poller = |n: usize| {
        let (engine, received_tx) = (engine.clone(), received_tx.clone());
        tokio::spawn(async move {
            if let Ok(tasks) = engine.poll(task_type, None, Some(format!("w{n}")), 1, POLL_WAIT).await
                && let Some(task) = tasks.first()
            {
                let _ = received_tx.send(task_json(task));
            }
        })
    };
    let mut pollers: Vec<_> = (0..3).map(spawn_poller).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let start = |engine: Engine| async move {
        let request: StartWorkflowRequest =
            serde_json::from_value(json!({"name": format!("single_{task_type}"), "input": {}})).expect("request");
        engine.start_workflow(request).await.expect("started")
    };

    let mut id = start(engine.clone()).await;
    let mut by_update = 0;
    for n in 0..40 {
        let task = tokio::time::timeout(POLL_WAIT / 3, received.recv())
            .await
            .unwrap_or_else(|_| panic!("task {n} waited for a poll to time out"))
            .expect("pollers running");
        assert_eq!(task["workflowInstanceId"].as_str(), Some(id.as_str()));
        pollers.push(spawn_poller(n + 3));
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The task's update-v2 (a zero-wait poll) races the next workflow's task.
        let (handed, next) =
            tokio::join!(engine.update_task_and_poll(complete(&task, json!({}))), start(engine.clone()));
        id = next;
        if let Some(handed) = handed.expect("updated") {
            // The update-v2 took the new task itself: complete it and start another.
            let handed = task_json(&handed);
            assert_eq!(handed["workflowInstanceId"].as_str(), Some(id.as_str()));
            engine.update_task(complete(&handed, json!({}))).await.expect("updated");
            by_update += 1;
            id = start(engine.clone()).await;
        }
    }
    println!("{task_type}: {by_update} of the tasks went to update-v2's own poll");
    for poller in pollers {
        poller.abort();
    }
}

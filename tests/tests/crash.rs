//! Nothing acknowledged is lost: SIGKILL in the middle of a workload, restart on the same data
//! directory, and every acknowledged start and task result is still there; the workflows finish.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use std::sync::Mutex;

use overture_tests::{Node, client, send, wait_for, wait_status};
use serde_json::{Value, json};

/// What the server acknowledged before the crash.
#[derive(Default)]
struct Ledger {
    started: Mutex<Vec<String>>,
    /// (task id, workflow id, output sent)
    updated: Mutex<Vec<(String, String, Value)>>,
}

const STEPS: usize = 3;

async fn register(node: &Node) {
    let c = client();
    let defs: Vec<Value> = (0..STEPS)
        .map(|i| json!({"name": format!("crash_{i}"), "retryCount": 5, "retryDelaySeconds": 0, "responseTimeoutSeconds": 2}))
        .collect();
    assert_eq!(send(c.post(node.api("/metadata/taskdefs")).json(&defs)).await.status, 200);
    let tasks: Vec<Value> = (0..STEPS)
        .map(|i| json!({"name": format!("crash_{i}"), "taskReferenceName": format!("s{i}"), "inputParameters": {"n": "${workflow.input.n}"}}))
        .collect();
    let def = json!({"name": "crash_flow", "version": 1, "tasks": tasks});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
}

/// Starts workflows and completes tasks until `stop`, recording only what was acknowledged.
async fn load(url: String, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let c = client();
    let api = |p: &str| format!("{url}/api{p}");
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        if let Ok(r) = c.post(api("/workflow")).json(&json!({"name": "crash_flow", "input": {"n": n}})).send().await
            && r.status().is_success()
            && let Ok(id) = r.text().await
        {
            ledger.started.lock().expect("lock").push(id);
        }
        for step in 0..STEPS {
            let Ok(r) =
                c.get(api(&format!("/tasks/poll/batch/crash_{step}?count=4&timeout=10&workerid=load"))).send().await
            else {
                continue;
            };
            let Ok(tasks) = r.json::<Vec<Value>>().await else { continue };
            for t in tasks {
                let task_id = t["taskId"].as_str().unwrap_or_default().to_owned();
                let wf = t["workflowInstanceId"].as_str().unwrap_or_default().to_owned();
                let output = json!({"doneBy": task_id, "n": t["inputData"]["n"]});
                let result =
                    json!({"workflowInstanceId": wf, "taskId": task_id, "status": "COMPLETED", "outputData": output});
                if let Ok(r) = c.post(api("/tasks")).json(&result).send().await
                    && r.status().is_success()
                {
                    ledger.updated.lock().expect("lock").push((task_id, wf, output));
                }
            }
        }
    }
}

/// Runs workers until every listed workflow completed.
async fn finish(node: &Node, ids: &[String]) {
    let c = client();
    let all_done = wait_for(Duration::from_secs(60), || async {
        for step in 0..STEPS {
            let r = send(c.get(node.api(&format!("/tasks/poll/batch/crash_{step}?count=50&timeout=50&workerid=after")))).await;
            for t in r.json().as_array().cloned().unwrap_or_default() {
                let result = json!({"workflowInstanceId": t["workflowInstanceId"], "taskId": t["taskId"], "status": "COMPLETED", "outputData": {"after": true}});
                send(c.post(node.api("/tasks")).json(&result)).await;
            }
        }
        let mut done = true;
        for id in ids {
            let status = send(c.get(node.api(&format!("/workflow/{id}/status")))).await.json();
            done &= status["status"] == "COMPLETED";
        }
        done
    })
    .await;
    assert!(all_done, "every acknowledged workflow completes after the restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_workload_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    register(&node).await;

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let loaders: Vec<_> = (0..4).map(|_| tokio::spawn(load(node.url.clone(), ledger.clone(), stop.clone()))).collect();
    // Kill once a real amount of work has been acknowledged, with the load still running.
    let busy = wait_for(Duration::from_secs(60), || async {
        ledger.started.lock().expect("lock").len() >= 80 && ledger.updated.lock().expect("lock").len() >= 80
    })
    .await;
    assert!(busy, "the load made progress");
    node.kill9().await;
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.expect("loader");
    }
    let started = ledger.started.lock().expect("lock").clone();
    let updated = ledger.updated.lock().expect("lock").clone();

    let node = Node::start(&data).await;
    let c = client();
    for id in &started {
        let r = send(c.get(node.api(&format!("/workflow/{id}")))).await;
        assert_eq!(r.status, 200, "acknowledged workflow {id} survives: {}", r.text);
    }
    for (task_id, wf, output) in &updated {
        let t = send(c.get(node.api(&format!("/tasks/{task_id}")))).await.json();
        assert_eq!(t["status"], "COMPLETED", "acknowledged result of {task_id} survives: {t}");
        assert_eq!(&t["outputData"], output, "with its output");
        assert_eq!(t["workflowInstanceId"].as_str(), Some(wf.as_str()));
    }

    finish(&node, &started).await;
    // Each step of each workflow completed exactly once: tasks in flight at the kill came back
    // only through their response timeout, as new attempts.
    for id in &started {
        let wf = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
        let mut completed: HashMap<String, usize> = HashMap::new();
        for t in wf["tasks"].as_array().cloned().unwrap_or_default() {
            if t["status"] == "COMPLETED" {
                *completed.entry(t["referenceTaskName"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
            }
        }
        assert_eq!(completed.len(), STEPS, "{id}: {completed:?}");
        assert!(completed.values().all(|&c| c == 1), "{id}: a step completed twice: {completed:?}");
    }
    let distinct: HashSet<&String> = updated.iter().map(|(t, _, _)| t).collect();
    assert_eq!(distinct.len(), updated.len(), "no task was acknowledged twice");
    eprintln!("after SIGKILL: {} acknowledged starts and {} acknowledged results intact", started.len(), updated.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_state_and_serves_the_same_queues() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut node = Node::start(&data).await;
    register(&node).await;
    let c = client();
    let id = send(c.post(node.api("/workflow/crash_flow")).json(&json!({"n": 1}))).await.text;
    node.terminate().await;

    let node = Node::start(&data).await;
    let r = send(c.get(node.api("/tasks/poll/batch/crash_0?count=1&timeout=2000"))).await;
    let task = r.json()[0].clone();
    assert_eq!(task["workflowInstanceId"].as_str(), Some(id.as_str()), "the queue is rebuilt from disk");
    finish(&node, std::slice::from_ref(&id)).await;
    wait_status(&node, &id, "COMPLETED", Duration::from_secs(5)).await;
}

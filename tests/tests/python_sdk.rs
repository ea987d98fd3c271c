//! The official `conductor-python` SDK (PyPI, 2.0.0) against a real node: definitions through
//! its metadata client, workflows through its workflow client and builder, real `TaskHandler`
//! workers (one process per worker) completing, failing, retrying and re-queueing tasks.
//!
//! The interpreter is `$OVERTURE_PYTHON` (the test script points it at a virtualenv with the
//! SDK installed), else `python3`. A missing SDK is a failure with instructions, never a skip.

use overture_tests::{Node, finish_python_sdk, run_python_sdk_workload, spawn_python_sdk};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_runs_a_workload() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    run_python_sdk_workload(&node.url).await;
}

/// The kitchensink (SIMPLE → EVENT → DYNAMIC → SWITCH → dynamic fork or a fork with a
/// sub-workflow → HTTP → jq), built with the SDK's task builders and run by its workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_runs_the_kitchensink() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    finish_python_sdk(spawn_python_sdk("sdk_kitchensink.py", &[&node.url, "10"])).await;
}

/// The SDK's scheduler client: save, get, list, next times, executions, pause, resume, delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_manages_schedules() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    finish_python_sdk(spawn_python_sdk("sdk_scheduler.py", &[&node.url])).await;
}

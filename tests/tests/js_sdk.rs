//! The official Conductor JavaScript SDK (`@io-orkes/conductor-javascript` on npm, 4.0.0, pinned
//! in `tests/js/package-lock.json`) against a real node: its workers (TaskManager and
//! TaskHandler), its workflow executor (including synchronous execution), and its metadata,
//! scheduler and event clients. Each test starts its own node and runs one script of
//! `tests/js`; the script makes the checks and this test asserts none failed.
//!
//! Node.js runs the scripts; `./tests/run.sh` installs the SDK (`npm ci` in `tests/js`). A
//! missing SDK is a failure with instructions, never a skip.

use overture_tests::Node;
use overture_tests::js::run_js_sdk;

/// Starts a node and runs `tests/js/<script>` against it.
async fn run(script: &str) {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    run_js_sdk(script, &node.url).await;
}

/// TaskManager workers complete (Chinese input and output), fail and are retried, report
/// IN_PROGRESS with a callback and fail terminally; TaskHandler runs a given worker and a
/// decorated one that registers its task definition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_sdk_workers_complete_tasks() {
    run("sdk_workers.mjs").await;
}

/// The workflow executor: register, start, status, task updates, restart, terminate, retry,
/// pause, resume, search, and synchronous execution (`executeWorkflow`, `ConductorWorkflow.execute`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_sdk_executes_workflows() {
    run("sdk_workflows.mjs").await;
}

/// The metadata client: task and workflow definitions registered, read, updated, listed and
/// unregistered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_sdk_manages_metadata() {
    run("sdk_metadata.mjs").await;
}

/// The scheduler client: save, get, list, next times, fires, pause, resume, delete, 404 after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_sdk_manages_schedules() {
    run("sdk_scheduler.mjs").await;
}

/// The event client: add (one and several), list, by event, update, a handler acting on an
/// EVENT task's message, remove.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_js_sdk_manages_event_handlers() {
    run("sdk_events.mjs").await;
}

//! Writes `tests/fixtures/datadir-v<version>.tar.gz`: the data directory of a node of this
//! release, which `tests/tests/upgrade.rs` opens with every later build. Run it by hand when a
//! release is cut, never in CI:
//!
//! ```text
//! cargo build --workspace --bins
//! cargo run -p overture-tests --example make_datadir
//! ```
//!
//! It starts `overture dev` on an empty directory, registers definitions (Chinese names among
//! them), starts workflows and leaves them as the test expects them: some COMPLETED with their
//! task history and outputs, one TERMINATED, some RUNNING with a task SCHEDULED and one with a
//! task IN_PROGRESS (polled by a worker, unanswered), a paused schedule and an event handler.
//! Then it stops the node (SIGTERM: memtables are flushed) and archives the directory, without
//! RocksDB's informational `LOG` files, with `fixture.json` naming what is in it.
//!
//! The test checks every archive in `tests/fixtures` the same way, so what this writes stays the
//! same from release to release; a release that adds to it makes the test's new checks depend
//! on `fixture.json`'s `version`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use overture_tests::{Node, client, crate_dir, send, wait_status};
use serde_json::{Value, json};

/// A worker holds a task this long before it counts as lost: long enough that the task polled
/// here is still IN_PROGRESS whenever the fixture is opened.
const TEN_YEARS: i64 = 10 * 365 * 24 * 3600;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let version = env!("CARGO_PKG_VERSION");
    let out = crate_dir().join("fixtures").join(format!("datadir-v{version}.tar.gz"));
    let work = tempfile::tempdir().expect("a temporary directory");
    let data = work.path().join("datadir");
    let mut node = Node::start(&data).await;
    let manifest = populate(&node).await;
    node.terminate().await;
    std::fs::write(
        work.path().join("fixture.json"),
        serde_json::to_vec_pretty(&json!({"version": version, "contents": manifest})).expect("JSON"),
    )
    .expect("fixture.json written");
    archive(work.path(), &out);
    let bytes = std::fs::metadata(&out).expect("the archive exists").len();
    println!("wrote {} ({bytes} bytes)", out.display());
    assert!(bytes < 2 << 20, "the fixture stays small: {bytes} bytes");
}

/// Registers definitions and runs workflows into the states the upgrade test checks; returns
/// which workflows are in which state.
async fn populate(node: &Node) -> Value {
    let c = client();
    let task_def = |name: &str| {
        json!({"name": name, "description": format!("任务 {name}"), "retryCount": 2, "retryDelaySeconds": 0,
               "timeoutSeconds": 0, "responseTimeoutSeconds": TEN_YEARS, "ownerEmail": "ops@example.com"})
    };
    let r = send(c.post(node.api("/metadata/taskdefs")).json(&json!([
        task_def("审核"),
        task_def("发货"),
        task_def("通知")
    ])))
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let approval = json!({
        "name": "订单审批", "version": 1, "description": "订单审批流程：审核，然后发货",
        "ownerEmail": "ops@example.com", "schemaVersion": 2,
        "inputParameters": ["订单", "金额"],
        "outputParameters": {"结果": "${发货_ref.output.状态}", "意见": "${审核_ref.output.意见}"},
        "tasks": [
            {"name": "审核", "taskReferenceName": "审核_ref", "type": "SIMPLE",
             "inputParameters": {"订单": "${workflow.input.订单}", "金额": "${workflow.input.金额}"}},
            {"name": "发货", "taskReferenceName": "发货_ref", "type": "SIMPLE",
             "inputParameters": {"订单": "${workflow.input.订单}", "意见": "${审核_ref.output.意见}"}}
        ]
    });
    let notify = json!({
        "name": "fx_notify", "version": 1, "schemaVersion": 2,
        "outputParameters": {"sent": "${通知_ref.output.sent}"},
        "tasks": [
            {"name": "flag", "taskReferenceName": "flag", "type": "SET_VARIABLE", "inputParameters": {"标记": "${workflow.input.who}"}},
            {"name": "通知", "taskReferenceName": "通知_ref", "type": "SIMPLE", "inputParameters": {"who": "${workflow.input.who}"}}
        ]
    });
    for def in [&approval, &notify] {
        let r = send(c.post(node.api("/metadata/workflow")).json(def)).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let start = |name: &str, input: Value| {
        let (c, url) = (c.clone(), node.api("/workflow"));
        let body = json!({"name": name, "input": input, "correlationId": "升级测试"});
        async move {
            let r = send(c.post(url).json(&body)).await;
            assert_eq!(r.status, 200, "{}", r.text);
            r.text
        }
    };
    // Polls one task of `task_type` and answers it with `output`, as worker `worker`.
    let complete = |task_type: &str, worker: &str, output: Value| {
        let (c, node_poll, node_update) = (
            c.clone(),
            node.api(&format!("/tasks/poll/batch/{task_type}?count=1&timeout=5000&workerid={worker}")),
            node.api("/tasks"),
        );
        let worker = worker.to_owned();
        async move {
            let t = send(c.get(node_poll)).await.json()[0].clone();
            let task_id = t["taskId"].as_str().expect("a task to poll").to_owned();
            let log = send(c.post(format!("{}/{task_id}/log", node_update)).json(&format!("{worker} 处理了它"))).await;
            assert_eq!(log.status, 200, "{}", log.text);
            let result = json!({"workflowInstanceId": t["workflowInstanceId"], "taskId": task_id,
                                "workerId": worker, "status": "COMPLETED", "outputData": output});
            let r = send(c.post(node_update).json(&result)).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };

    // Completed, one after another (each worker poll finds exactly that workflow's task).
    let mut completed = Vec::new();
    for (n, order) in ["A-1", "A-2"].into_iter().enumerate() {
        let id = start("订单审批", json!({"订单": order, "金额": 100 + n})).await;
        complete("审核", "审核员", json!({"意见": "同意"})).await;
        complete("发货", "仓库", json!({"状态": "已发货", "单号": format!("SF-{n}")})).await;
        wait_status(node, &id, "COMPLETED", Duration::from_secs(10)).await;
        completed.push(id);
    }
    let id = start("fx_notify", json!({"who": "张三"})).await;
    complete("通知", "邮件", json!({"sent": true, "内容": "你好"})).await;
    wait_status(node, &id, "COMPLETED", Duration::from_secs(10)).await;
    completed.push(id);

    // Terminated, with a reason.
    let terminated = start("订单审批", json!({"订单": "A-3", "金额": 1})).await;
    let r = send(c.delete(node.api(&format!("/workflow/{terminated}?reason=客户取消")))).await;
    assert!(r.status < 300, "{}", r.text);
    wait_status(node, &terminated, "TERMINATED", Duration::from_secs(10)).await;

    // Running: one whose first task a worker holds (IN_PROGRESS), then others whose first task
    // waits in its queue (SCHEDULED).
    let in_progress = start("订单审批", json!({"订单": "B-1", "金额": 200})).await;
    let held =
        send(c.get(node.api("/tasks/poll/batch/审核?count=1&timeout=5000&workerid=老王"))).await.json()[0].clone();
    assert_eq!(held["workflowInstanceId"], in_progress.as_str(), "{held}");
    let held_task = held["taskId"].as_str().expect("a task").to_owned();
    let scheduled = vec![
        start("订单审批", json!({"订单": "B-2", "金额": 300})).await,
        start("fx_notify", json!({"who": "李四"})).await,
    ];

    let schedule = json!({"name": "每日_报表", "cronExpression": "0 0 2 * * *", "zoneId": "Asia/Shanghai",
                          "startWorkflowRequest": {"name": "fx_notify", "input": {"who": "报表"}}});
    let r = send(c.post(node.api("/scheduler/schedules")).json(&schedule)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.put(node.api("/scheduler/schedules/每日_报表/pause"))).await;
    assert!(r.status < 300, "{}", r.text);
    let handler = json!({"name": "订单_事件", "event": "conductor:订单审批:done", "active": true,
                         "actions": [{"action": "complete_task",
                                      "complete_task": {"workflowId": "${workflowId}", "taskRefName": "审核_ref"}}]});
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    json!({
        "completed": completed,
        "terminated": terminated,
        "inProgress": {"workflowId": in_progress, "taskId": held_task, "workerId": "老王"},
        "scheduled": scheduled,
        "schedule": "每日_报表",
        "eventHandler": "订单_事件",
    })
}

/// Archives `dir`'s `datadir` and `fixture.json` as `out`, leaving out RocksDB's informational
/// logs (nothing reads them back).
fn archive(dir: &Path, out: &PathBuf) {
    std::fs::create_dir_all(out.parent().expect("a parent")).expect("fixtures directory");
    let status = std::process::Command::new("tar")
        .args([
            "--sparse",
            "--sort=name",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "--exclude=LOG",
            "--exclude=LOG.old.*",
        ])
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(dir)
        .args(["datadir", "fixture.json"])
        .status()
        .expect("tar runs");
    assert!(status.success(), "tar failed");
}

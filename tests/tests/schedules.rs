//! Workflow schedules (issue 5) on a real node: fires once per time with derived workflow ids,
//! pause and resume, delete, validation, next fire times, and the catch-up policy after the node
//! was down.

use std::collections::BTreeSet;
use std::time::Duration;

use overture_tests::{Node, client, send, wait_for};
use serde_json::{Value, json};

async fn setup(node: &Node) {
    let def = json!({"name": "tick", "version": 1, "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}],
        "outputParameters": {"at": "${workflow.input._scheduledTime}"}});
    let r = send(client().post(node.api("/metadata/workflow")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

async fn save(node: &Node, schedule: Value) -> (u16, Value) {
    let r = send(client().post(node.api("/scheduler/schedules")).json(&schedule)).await;
    let body = if r.text.is_empty() { Value::Null } else { r.json() };
    (r.status, body)
}

/// The recorded fires of one schedule, oldest first.
async fn executions(node: &Node, name: &str) -> Vec<Value> {
    let url = reqwest::Url::parse_with_params(
        &node.api("/scheduler/search/executions"),
        [("query", format!("scheduleName = '{name}'")), ("size", "1000".into()), ("sort", "scheduledTime:ASC".into())],
    )
    .expect("url");
    let r = send(client().get(url)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["results"].as_array().cloned().unwrap_or_default()
}

fn times(runs: &[Value]) -> Vec<i64> {
    runs.iter().filter_map(|r| r["scheduledTime"].as_i64()).collect()
}

#[tokio::test]
async fn a_schedule_fires_once_per_time_and_can_be_paused_resumed_and_deleted() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    setup(&node).await;
    let c = client();
    let schedule = json!({"name": "every_second", "cronExpression": "* * * * * *", "zoneId": "Europe/Paris",
        "startWorkflowRequest": {"name": "tick", "version": 1, "input": {"from": "cron"}, "correlationId": "sched"}});
    assert_eq!(save(&node, schedule.clone()).await.0, 200);

    assert!(wait_for(Duration::from_secs(10), || async { executions(&node, "every_second").await.len() >= 3 }).await);
    let runs = executions(&node, "every_second").await;
    let fired = times(&runs);
    assert!(fired.windows(2).all(|w| w[1] - w[0] == 1000), "one fire per second, none twice: {fired:?}");
    for run in &runs {
        assert_eq!(run["state"], "EXECUTED", "{run}");
        let id = run["workflowId"].as_str().expect("workflow id");
        let wf = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
        assert_eq!(wf["status"], "COMPLETED");
        assert_eq!(wf["output"]["at"], run["scheduledTime"], "the input carries the fire's time");
        assert_eq!((wf["input"]["from"].as_str(), wf["correlationId"].as_str()), (Some("cron"), Some("sched")));
    }

    // Pause: no fires; the schedule says why. Resume: fires again, from now.
    let r = send(c.put(node.api("/scheduler/schedules/every_second/pause?reason=maintenance"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let paused_at = executions(&node, "every_second").await.len();
    let got = send(c.get(node.api("/scheduler/schedules/every_second"))).await.json();
    assert_eq!((got["paused"].as_bool(), got["pausedReason"].as_str()), (Some(true), Some("maintenance")));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(executions(&node, "every_second").await.len(), paused_at, "a paused schedule does not fire");
    // Orkes' servers map pause and resume as GET; both verbs work.
    assert_eq!(send(c.get(node.api("/scheduler/schedules/every_second/resume"))).await.status, 200);
    assert!(
        wait_for(Duration::from_secs(5), || async { executions(&node, "every_second").await.len() > paused_at }).await
    );
    let resumed = times(&executions(&node, "every_second").await);
    assert!(resumed.windows(2).all(|w| w[1] > w[0]), "{resumed:?}");

    // Listing, by workflow name.
    let all = send(c.get(node.api("/scheduler/schedules?workflowName=tick"))).await.json();
    assert_eq!(all.as_array().map(Vec::len), Some(1));
    assert_eq!(all[0]["zoneId"], "Europe/Paris");
    assert_eq!(send(c.get(node.api("/scheduler/schedules?workflowName=other"))).await.json(), json!([]));

    // The workflows started are exactly the executed fires.
    let executed = executions(&node, "every_second").await.iter().filter(|r| r["state"] == "EXECUTED").count();
    assert_eq!(send(c.delete(node.api("/scheduler/schedules/every_second"))).await.status, 200);
    let started = send(c.get(node.api("/workflow/search?query=workflowType%3D%27tick%27&size=0"))).await.json();
    assert!(started["totalHits"].as_u64().is_some_and(|n| n as usize >= executed), "{started}");
    let gone = send(c.get(node.api("/scheduler/schedules/every_second"))).await;
    assert_eq!((gone.status, gone.json()["message"].as_str()), (404, Some("Schedule 'every_second' not found")));
    assert!(executions(&node, "every_second").await.is_empty(), "its records go with it");
    assert_eq!(send(c.delete(node.api("/scheduler/schedules/every_second"))).await.status, 404);
}

#[tokio::test]
async fn schedules_are_validated_and_failed_fires_are_recorded() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    setup(&node).await;
    let c = client();
    for (schedule, says) in [
        (json!({"name": "s", "cronExpression": "* * * * *", "startWorkflowRequest": {"name": "tick"}}), "six"),
        (json!({"name": "s", "cronExpression": "0 0 99 * * *", "startWorkflowRequest": {"name": "tick"}}), "not valid"),
        (
            json!({"name": "s", "cronExpression": "0 0 0 * * *", "zoneId": "Moon/Base", "startWorkflowRequest": {"name": "tick"}}),
            "time zone",
        ),
        (json!({"name": "s", "cronExpression": "0 0 0 * * *"}), "startWorkflowRequest is required"),
        (
            json!({"name": "", "cronExpression": "0 0 0 * * *", "startWorkflowRequest": {"name": "tick"}}),
            "name cannot be",
        ),
        (json!({"name": "s", "cronExpression": 5}), "Invalid request body"),
    ] {
        let (status, body) = save(&node, schedule.clone()).await;
        assert_eq!(status, 400, "{schedule}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(says)), "{schedule}: {body}");
    }

    // Next fire times of an expression, within a window.
    let r = send(c.get(node.api("/scheduler/nextFewSchedules?cronExpression=0%200%20*%20*%20*%20*&limit=3"))).await;
    let next: Vec<i64> = serde_json::from_value(r.json()).expect("list of times");
    assert_eq!(next.len(), 3);
    assert!(next.windows(2).all(|w| w[1] - w[0] == 3_600_000), "hourly: {next:?}");
    let end = next[0];
    let r = send(c.get(
        node.api(&format!("/scheduler/nextFewSchedules?cronExpression=0%200%20*%20*%20*%20*&scheduleEndTime={end}")),
    ))
    .await;
    assert_eq!(r.json(), json!([end]), "nothing after the end time");

    // A schedule of a workflow that does not exist fires, fails, and says why.
    assert_eq!(
        save(
            &node,
            json!({"name": "orphan", "cronExpression": "* * * * * *", "startWorkflowRequest": {"name": "gone"}})
        )
        .await
        .0,
        200
    );
    assert!(wait_for(Duration::from_secs(5), || async { !executions(&node, "orphan").await.is_empty() }).await);
    let run = executions(&node, "orphan").await[0].clone();
    assert_eq!(run["state"], "FAILED", "{run}");
    assert!(run["reason"].as_str().is_some_and(|r| r.contains("No such workflow")), "{run}");
    // Admin: pause every schedule, then resume them.
    assert_eq!(send(c.get(node.api("/scheduler/admin/pause"))).await.status, 200);
    assert_eq!(send(c.get(node.api("/scheduler/schedules/orphan"))).await.json()["paused"], true);
    assert_eq!(send(c.get(node.api("/scheduler/admin/resume"))).await.status, 200);
    assert_eq!(send(c.get(node.api("/scheduler/schedules/orphan"))).await.json()["paused"], false);
    assert_eq!(send(c.put(node.api("/scheduler/schedules/nothing/pause"))).await.status, 404);
}

#[tokio::test]
async fn fires_missed_while_down_run_only_for_schedules_that_catch_up() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    // A fire more than a second late counts as missed.
    let env = [("OVERTURE_SCHEDULE_GRACE_SECONDS", "1")];
    let mut node = Node::start_with_env(&data, &env).await;
    setup(&node).await;
    for (name, catch_up) in [("skips", false), ("catches_up", true)] {
        let schedule = json!({"name": name, "cronExpression": "* * * * * *", "runCatchupScheduleInstances": catch_up,
            "startWorkflowRequest": {"name": "tick"}});
        assert_eq!(save(&node, schedule).await.0, 200);
    }
    assert!(wait_for(Duration::from_secs(5), || async { executions(&node, "skips").await.len() >= 2 }).await);
    node.kill9().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let node = Node::start_with_env(&data, &env).await;
    assert!(
        wait_for(Duration::from_secs(10), || async {
            let last = |runs: Vec<Value>| times(&runs).last().copied().unwrap_or(0);
            let now =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            last(executions(&node, "skips").await) > now - 1500
                && last(executions(&node, "catches_up").await) > now - 1500
        })
        .await,
        "both fire again after the restart"
    );
    let skipped = times(&executions(&node, "skips").await);
    let caught_up = times(&executions(&node, "catches_up").await);
    let gaps = |t: &[i64]| t.windows(2).filter(|w| w[1] - w[0] > 1000).count();
    assert!(gaps(&skipped) >= 1, "the one that does not catch up skipped the seconds it was down: {skipped:?}");
    assert_eq!(gaps(&caught_up), 0, "the one that catches up ran every second it missed: {caught_up:?}");
    let unique: BTreeSet<i64> = caught_up.iter().copied().collect();
    assert_eq!(unique.len(), caught_up.len(), "and none twice");
}

/// A schedule whose start request carries an idempotency key with `RETURN_EXISTING` starts one
/// workflow; every later fire is recorded as executed by it, as a client's start would be
/// answered. On one group the key is claimed in the fire's own entry; with partitions the
/// workflow starts in the key's partition first.
#[tokio::test]
async fn a_keyed_schedule_starts_one_workflow_and_every_fire_names_it() {
    for partitions in ["1", "3"] {
        let dir = tempfile::tempdir().expect("dir");
        let node = Node::start_with_env(&dir.path().join("node"), &[("OVERTURE_PARTITIONS", partitions)]).await;
        setup(&node).await;
        let schedule = json!({"name": "每日", "cronExpression": "* * * * * *",
            "startWorkflowRequest": {"name": "tick", "input": {}, "idempotencyKey": "日报",
                                     "idempotencyStrategy": "RETURN_EXISTING"}});
        assert_eq!(save(&node, schedule).await.0, 200);
        assert!(wait_for(Duration::from_secs(10), || async { executions(&node, "每日").await.len() >= 3 }).await);
        let runs = executions(&node, "每日").await;
        let ids: BTreeSet<&str> = runs.iter().filter_map(|r| r["workflowId"].as_str()).collect();
        assert!(runs.iter().all(|r| r["state"] == "EXECUTED"), "partitions = {partitions}: {runs:#?}");
        assert_eq!(ids.len(), 1, "partitions = {partitions}: every fire names the key's workflow: {runs:#?}");
        let started = send(client().get(node.api("/workflow/search?query=workflowType%3D%27tick%27&size=0"))).await;
        assert_eq!(started.json()["totalHits"], 1, "partitions = {partitions}: {}", started.text);
    }
}

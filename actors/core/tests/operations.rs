//! Operations on executions (issue 5): pause and resume, skip, retry, restart, rerun, reset
//! callbacks, decide; with Conductor's preconditions. Every step is also replayed (see `common`).

mod common;

use common::*;
use overture_core::command::{Command, Rejection, Rerun, TaskResultStatus};
use overture_core::state::{TaskStatus, WorkflowStatus};
use serde_json::{Value, json};

fn three_steps() -> Value {
    json!({"name": "ops", "tasks": [
        {"name": "a", "taskReferenceName": "a", "inputParameters": {"x": "${workflow.input.x}"},
         "taskDefinition": {"name": "a", "retryCount": 0}},
        {"name": "b", "taskReferenceName": "b", "taskDefinition": {"name": "b", "retryCount": 0}},
        {"name": "c", "taskReferenceName": "c", "taskDefinition": {"name": "c", "retryCount": 0}}
    ]})
}

#[test]
fn a_paused_workflow_schedules_nothing_until_resumed() {
    let mut run = Run::start(three_steps(), json!({}));
    run.send(Command::Pause).expect("paused");
    assert_eq!(run.state.header.status, WorkflowStatus::Paused);
    assert!(run.send(Command::Pause).expect("again").is_empty(), "pausing twice changes nothing");
    run.complete("a", json!({}));
    assert!(run.scheduled().is_empty(), "a polled task completes, but nothing new is scheduled");
    run.send(Command::Resume).expect("resumed");
    assert_eq!(run.state.header.status, WorkflowStatus::Running);
    assert_eq!(run.scheduled(), ["b"]);
    assert_eq!(run.state.header.last_retried_time, run.now);
    assert!(matches!(run.send(Command::Resume), Err(Rejection::Conflict(_))), "only a paused workflow resumes");
}

#[test]
fn a_skipped_task_is_stepped_over() {
    let mut run = Run::start(three_steps(), json!({}));
    run.send(Command::Skip { reference: "b".into(), input: obj(json!({"why": "no"})), output: obj(json!({"o": 1})) })
        .expect("skipped");
    assert_eq!(run.task("b").status, TaskStatus::Skipped);
    assert_eq!(run.scheduled(), ["a"], "the flow has not reached b yet");
    run.complete("a", json!({}));
    assert_eq!(run.scheduled(), ["c"], "b is stepped over");
    for (reference, why) in [("a", "already ran"), ("nope", "not in the definition")] {
        let r = run.send(Command::Skip { reference: reference.into(), input: obj(json!({})), output: obj(json!({})) });
        assert!(matches!(r, Err(Rejection::Conflict(_))), "{why}");
    }
}

#[test]
fn retry_runs_the_failed_task_again_and_the_workflow_goes_on() {
    let mut run = Run::start(three_steps(), json!({}));
    assert!(
        matches!(run.send(Command::Retry { resume: Vec::new() }), Err(Rejection::NotFound(_))),
        "a running workflow: Conductor's 404"
    );
    run.complete("a", json!({}));
    run.fail("b");
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    run.now += 1_000;
    run.send(Command::Retry { resume: Vec::new() }).expect("retried");
    assert_eq!(run.state.header.status, WorkflowStatus::Running);
    assert_eq!(run.state.header.reason_for_incompletion, None);
    assert_eq!(run.state.header.last_retried_time, run.now);
    let b = run.task("b");
    assert_eq!((b.retry_count, b.status), (1, TaskStatus::Scheduled));
    run.complete("b", json!({}));
    run.complete("c", json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    assert!(
        matches!(run.send(Command::Retry { resume: Vec::new() }), Err(Rejection::Conflict(_))),
        "nothing failed: nothing to retry"
    );
}

#[test]
fn retry_reopens_a_failed_join_and_its_branches() {
    let def = json!({"name": "forky", "tasks": [
        {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN", "forkTasks": [
            [{"name": "x", "taskReferenceName": "x", "taskDefinition": {"name": "x", "retryCount": 0}}],
            [{"name": "y", "taskReferenceName": "y", "taskDefinition": {"name": "y", "retryCount": 0}}]]},
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["x", "y"]}
    ]});
    let mut run = Run::start(def, json!({}));
    run.fail("x");
    assert_eq!((run.task("y").status, run.task("j").status), (TaskStatus::Canceled, TaskStatus::Canceled));
    run.send(Command::Retry { resume: Vec::new() }).expect("retried");
    assert_eq!(run.task("j").status, TaskStatus::InProgress, "the join waits again in place");
    let mut scheduled = run.scheduled();
    scheduled.sort();
    assert_eq!(scheduled, ["x", "y"], "the failed and the canceled branch run again");
    run.complete("x", json!({}));
    run.complete("y", json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
}

#[test]
fn restart_runs_the_same_workflow_from_the_start() {
    let mut run = Run::start(three_steps(), json!({"x": 1}));
    assert!(matches!(run.send(Command::Restart { plan: None }), Err(Rejection::Conflict(_))), "running");
    run.send(Command::Terminate { reason: Some("stop".into()) }).expect("terminated");
    let first_id = run.task("a").task_id.clone();
    run.now += 5_000;
    run.send(Command::Restart { plan: None }).expect("restarted");
    assert_eq!(run.state.header.status, WorkflowStatus::Running);
    assert_eq!(run.state.header.create_time, run.now);
    assert_eq!(run.state.tasks.len(), 1, "the old tasks are gone");
    assert_ne!(run.task("a").task_id, first_id);
    assert_eq!(run.task("a").input.get("x"), Some(&json!(1)));
}

#[test]
fn rerun_from_a_task_drops_it_and_what_followed() {
    let mut run = Run::start(three_steps(), json!({"x": 1}));
    run.complete("a", json!({"a": 1}));
    run.complete("b", json!({}));
    run.fail("c");
    let b = run.task("b").task_id.clone();
    let rerun =
        Rerun { from_task_id: Some(b), task_input: Some(obj(json!({"given": "${literally}"}))), ..Rerun::default() };
    run.send(Command::Rerun(Box::new(rerun))).expect("rerun");
    assert_eq!(run.state.tasks.len(), 2, "a stays, b is scheduled again, c is gone");
    assert_eq!(run.task("a").status, TaskStatus::Completed);
    assert_eq!(run.task("b").input.get("given"), Some(&json!("${literally}")), "the given input is used as is");
    run.complete("b", json!({}));
    run.complete("c", json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);

    let rerun = Rerun { workflow_input: Some(obj(json!({"x": 2}))), ..Rerun::default() };
    run.send(Command::Rerun(Box::new(rerun))).expect("rerun from the start");
    assert_eq!(run.task("a").input.get("x"), Some(&json!(2)));
    let bad = Rerun { from_task_id: Some("nope".into()), ..Rerun::default() };
    run.send(Command::Terminate { reason: None }).expect("terminated");
    assert!(matches!(run.send(Command::Rerun(Box::new(bad))), Err(Rejection::BadRequest(_))));
}

#[test]
fn reset_callbacks_makes_waiting_tasks_pollable_now() {
    let mut run = Run::start(three_steps(), json!({}));
    let id = run.poll("a");
    let mut update = update(&id, TaskResultStatus::InProgress, json!({}));
    update.callback_after_seconds = 600;
    run.send(Command::Update(Box::new(update))).expect("in progress");
    assert!(run.task("a").ready_at() > run.now);
    run.send(Command::ResetCallbacks).expect("reset");
    assert!(run.task("a").ready_at() <= run.now);
}

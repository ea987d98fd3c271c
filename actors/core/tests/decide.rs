//! The decider, driven through its public API: given a definition and commands, then events,
//! state and rejections. Every test also replays the events it produced from scratch and checks
//! the replayed state equals the decided one, so `evolve` stays deterministic.

mod common;

use std::sync::Arc;

use common::*;
use overture_core::command::{Command, Ctx, Rejection, TaskResultStatus};
use overture_core::dsl::WorkflowDef;
use overture_core::rows::{self, TimerKind};
use overture_core::state::{TaskStatus, WorkflowStatus};
use overture_core::{Plan, StartWorkflow, decide};
use serde_json::{Value, json};

fn two_step(retry_count: i32, optional_first: bool) -> Value {
    json!({
        "name": "two_step",
        "version": 3,
        "tasks": [
            {
                "name": "step_a", "taskReferenceName": "a", "optional": optional_first,
                "inputParameters": {
                    "whole": "${workflow.input.n}",
                    "mixed": "n=${workflow.input.n}, m=${workflow.input.m}",
                    "missing": "${workflow.input.nope}",
                    "nested": {"list": ["${workflow.input.m}", "${workflow.workflowId}"]},
                    "self": "${CPEWF_TASK_ID}",
                    "escaped": "$${workflow.input.n}"
                },
                "taskDefinition": {
                    "name": "step_a", "retryCount": retry_count, "retryLogic": "FIXED",
                    "retryDelaySeconds": 5, "responseTimeoutSeconds": 30
                }
            },
            {
                "name": "step_b", "taskReferenceName": "b",
                "inputParameters": {"fromA": "${a.output.value}", "deep": "${a.output..leaf}"}
            }
        ],
        "outputParameters": {"result": "${b.output.done}", "a": "${a.output.value}"}
    })
}

#[test]
fn start_schedules_first_task_with_resolved_input() {
    let run = Run::start(two_step(0, false), json!({"n": 7, "m": {"k": "v"}}));
    assert_eq!(kinds(&run.history), ["WorkflowStarted", "TaskScheduled"]);
    let t = &run.state.tasks[0];
    assert_eq!(t.status, TaskStatus::Scheduled);
    assert_eq!(t.task_type, "step_a", "a SIMPLE task's type is its name");
    assert_eq!(t.queue.as_deref(), Some("step_a"));
    assert_eq!(t.response_timeout_seconds, 30);
    assert_eq!(
        Value::Object(t.input.clone()),
        json!({
            "whole": 7,
            "mixed": "n=7, m={k=v}",
            "missing": null,
            "nested": {"list": [{"k": "v"}, "wf1"]},
            "self": t.task_id,
            "escaped": "${workflow.input.n}"
        })
    );
    let q = rows::queue_item(&run.state.header, t).expect("a scheduled worker task is queued");
    assert_eq!((q.queue.as_str(), q.priority, q.ready_at), ("step_a", 5, run.now));
}

#[test]
fn happy_path_runs_tasks_in_order_and_computes_output() {
    let mut run = Run::start(two_step(0, false), json!({"n": 1}));
    let a = run.poll("a");
    assert_eq!(run.state.tasks[0].status, TaskStatus::InProgress);
    assert_eq!(run.state.tasks[0].poll_count, 1);
    assert!(rows::queue_item(&run.state.header, &run.state.tasks[0]).is_none(), "polled tasks leave the queue");

    run.now += 10;
    let events = run.report(&a, TaskResultStatus::Completed, json!({"value": 42, "x": {"y": {"leaf": 1}}}));
    assert_eq!(kinds(&events), ["TaskUpdated", "TaskExecuted", "TaskScheduled"]);
    let b_input = Value::Object(run.open_task("b").input.clone());
    assert_eq!(b_input, json!({"fromA": 42, "deep": [1]}));

    let b = run.poll("b");
    let events = run.report(&b, TaskResultStatus::Completed, json!({"done": true}));
    assert_eq!(kinds(&events), ["TaskUpdated", "TaskExecuted", "WorkflowEnded"]);
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    assert_eq!(Value::Object(run.state.header.output.clone()), json!({"result": true, "a": 42}));
    assert_eq!(run.state.header.end_time, run.now);
}

#[test]
fn failed_task_is_retried_after_its_delay_then_fails_the_workflow() {
    let mut run = Run::start(two_step(1, false), json!({}));
    let first = run.poll("a");
    let events = run.report(&first, TaskResultStatus::Failed, json!({}));
    assert_eq!(kinds(&events), ["TaskUpdated", "TaskScheduled"]);
    let retry = run.open_task("a").clone();
    assert_eq!((retry.retry_count, retry.callback_after_seconds), (1, 5));
    assert_eq!(retry.retried_task_id.as_deref(), Some(first.as_str()));
    assert!(run.state.tasks[0].retried);
    assert_eq!(rows::queue_item(&run.state.header, &retry).map(|q| q.ready_at), Some(run.now + 5_000));

    // Not pollable before its delay.
    let early = run.send(Command::Poll { task_id: retry.task_id.clone(), worker_id: None });
    assert!(matches!(early, Err(Rejection::Conflict(_))), "{early:?}");
    run.now += 5_000;
    let second = run.poll("a");
    run.report(&second, TaskResultStatus::Failed, json!({}));

    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(
        run.state.header.reason_for_incompletion.as_deref(),
        Some(format!("Task {second} failed with status: FAILED and reason: 'boom'").as_str())
    );
    assert_eq!(run.state.header.failed_reference_task_names, ["a"]);
    assert_eq!(run.state.header.failed_task_names, ["step_a"]);
}

#[test]
fn terminal_error_is_not_retried() {
    let mut run = Run::start(two_step(3, false), json!({}));
    let a = run.poll("a");
    run.report(&a, TaskResultStatus::FailedWithTerminalError, json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(run.statuses(), [("a".to_string(), TaskStatus::FailedWithTerminalError)]);
}

#[test]
fn optional_task_failure_completes_with_errors_and_goes_on() {
    let mut run = Run::start(two_step(0, true), json!({}));
    let a = run.poll("a");
    run.report(&a, TaskResultStatus::Failed, json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Running);
    assert_eq!(run.state.tasks[0].status, TaskStatus::CompletedWithErrors);
    assert_eq!(run.open_task("b").status, TaskStatus::Scheduled);
}

#[test]
fn in_progress_with_callback_requeues_later() {
    let mut run = Run::start(two_step(0, false), json!({}));
    let a = run.poll("a");
    let mut u = update(&a, TaskResultStatus::InProgress, json!({"progress": 1}));
    u.callback_after_seconds = 30;
    run.send(Command::Update(Box::new(u))).expect("accepted");
    let t = &run.state.tasks[0];
    assert_eq!((t.status, t.callback_after_seconds, t.poll_count), (TaskStatus::Scheduled, 30, 1));
    assert_eq!(rows::queue_item(&run.state.header, t).map(|q| q.ready_at), Some(run.now + 30_000));
    run.now += 30_000;
    run.poll("a");
    assert_eq!(run.state.tasks[0].poll_count, 2);
}

#[test]
fn lease_extension_moves_the_response_deadline_only() {
    let mut run = Run::start(two_step(0, false), json!({}));
    let a = run.poll("a");
    let deadline = run.state.tasks[0].response_deadline();
    assert_eq!(deadline, Some(run.now + 30_000));
    run.now += 20_000;
    let mut u = update(&a, TaskResultStatus::InProgress, json!({}));
    u.extend_lease = true;
    let events = run.send(Command::Update(Box::new(u))).expect("accepted");
    assert_eq!(kinds(&events), ["TaskLeaseExtended"]);
    assert_eq!(run.state.tasks[0].status, TaskStatus::InProgress);
    assert_eq!(run.state.tasks[0].response_deadline(), Some(run.now + 30_000));
}

#[test]
fn response_timeout_times_out_and_retries_or_ends() {
    let mut run = Run::start(two_step(1, false), json!({}));
    run.poll("a");
    let timer = rows::task_timers(&run.state.header, &run.state.tasks[0])
        .into_iter()
        .next()
        .expect("an IN_PROGRESS task has a timer");
    assert_eq!(timer.kind, TimerKind::ResponseTimeout);

    // Early or stale timers change nothing.
    let early = run.send(Command::Timer { kind: timer.kind, seq: timer.seq, fire_at: timer.fire_at }).expect("ok");
    assert!(early.is_empty());
    run.now = timer.fire_at;
    let stale = run.send(Command::Timer { kind: timer.kind, seq: timer.seq, fire_at: timer.fire_at - 1 }).expect("ok");
    assert!(stale.is_empty());

    let events = run.send(Command::Timer { kind: timer.kind, seq: timer.seq, fire_at: timer.fire_at }).expect("ok");
    assert_eq!(kinds(&events), ["TaskStatusChanged", "TaskScheduled"]);
    assert_eq!(run.state.tasks[0].status, TaskStatus::TimedOut);

    run.now += 5_000;
    run.poll("a");
    let timer = rows::task_timers(&run.state.header, &run.state.tasks[1]).into_iter().next().expect("timer");
    run.now = timer.fire_at;
    run.send(Command::Timer { kind: timer.kind, seq: timer.seq, fire_at: timer.fire_at }).expect("ok");
    assert_eq!(run.state.header.status, WorkflowStatus::TimedOut);
}

#[test]
fn updates_of_finished_tasks_are_no_ops() {
    let mut run = Run::start(two_step(0, false), json!({}));
    let a = run.poll("a");
    run.report(&a, TaskResultStatus::Completed, json!({"value": 1}));
    let again = run.report(&a, TaskResultStatus::Failed, json!({}));
    assert!(again.is_empty());
    assert_eq!(run.state.tasks[0].status, TaskStatus::Completed);
    let unknown = run.send(Command::Update(Box::new(update("nope", TaskResultStatus::Completed, json!({})))));
    assert_eq!(unknown, Err(Rejection::NotFound("No such task found by id: nope".into())));
}

#[test]
fn terminate_cancels_open_tasks_and_is_idempotent() {
    let mut run = Run::start(two_step(0, false), json!({}));
    let events = run.send(Command::Terminate { reason: Some("stop".into()) }).expect("ok");
    assert_eq!(kinds(&events), ["TaskStatusChanged", "WorkflowEnded"]);
    assert_eq!(run.state.header.status, WorkflowStatus::Terminated);
    assert_eq!(run.state.header.reason_for_incompletion.as_deref(), Some("stop"));
    assert_eq!(run.state.tasks[0].status, TaskStatus::Canceled);
    assert!(rows::queue_item(&run.state.header, &run.state.tasks[0]).is_none());
    assert!(run.send(Command::Terminate { reason: None }).expect("ok").is_empty());
}

#[test]
fn completed_workflows_cannot_be_terminated() {
    let mut run = Run::start(json!({"name": "one", "tasks": [{"name": "x", "taskReferenceName": "x"}]}), json!({}));
    let x = run.poll("x");
    run.report(&x, TaskResultStatus::Completed, json!({"o": 1}));
    assert_eq!(Value::Object(run.state.header.output.clone()), json!({"o": 1}), "output defaults to the last task's");
    let r = run.send(Command::Terminate { reason: None });
    assert!(matches!(r, Err(Rejection::Conflict(_))), "{r:?}");
}

#[test]
fn tasks_without_definition_run_with_defaults_and_no_retries() {
    let mut run = Run::start(json!({"name": "one", "tasks": [{"name": "x", "taskReferenceName": "x"}]}), json!({}));
    assert_eq!(run.state.tasks[0].response_timeout_seconds, 3600);
    let x = run.poll("x");
    run.report(&x, TaskResultStatus::Failed, json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
}

#[test]
fn workflow_task_retry_count_overrides_the_definition() {
    let mut def = two_step(0, false);
    def["tasks"][0]["retryCount"] = json!(1);
    let mut run = Run::start(def, json!({}));
    let a = run.poll("a");
    run.report(&a, TaskResultStatus::Failed, json!({}));
    assert_eq!(run.open_task("a").retry_count, 1);
}

#[test]
fn by_reference_output_merges() {
    let mut run = Run::start(two_step(0, false), json!({}));
    let a = run.poll("a");
    let mut u = update(&a, TaskResultStatus::InProgress, json!({"first": 1}));
    u.callback_after_seconds = 0;
    run.send(Command::Update(Box::new(u))).expect("ok");
    let mut u = update(&a, TaskResultStatus::Completed, json!({"second": 2}));
    u.merge_output = true;
    run.send(Command::Update(Box::new(u))).expect("ok");
    assert_eq!(Value::Object(run.state.tasks[0].output.clone()), json!({"first": 1, "second": 2}));
}

#[test]
fn domains_and_input_templates_shape_the_task() {
    let def = json!({
        "name": "dom", "inputTemplate": {"fromTemplate": "yes"},
        "tasks": [{
            "name": "x", "taskReferenceName": "x", "inputParameters": {"a": "${workflow.input.fromTemplate}", "t": null},
            "taskDefinition": {"name": "x", "inputTemplate": {"t": "default", "extra": "${workflow.input.fromTemplate}"},
                               "executionNameSpace": "ns", "isolationGroupId": "iso"}
        }]
    });
    let def: WorkflowDef = serde_json::from_value(def).expect("parses");
    let mut ids = Counter(0);
    let mut tt = std::collections::BTreeMap::new();
    tt.insert("*".to_string(), "blue,green".to_string());
    let cmd = StartWorkflow { task_to_domain: tt, ..StartWorkflow::new("w", Arc::new(Plan::new(def))) };
    let (state, _) = decide::start(cmd.clone(), &mut Ctx { now: 5, ids: &mut ids, env: &ScriptEnv });
    let t = &state.tasks[0];
    assert_eq!(Value::Object(t.input.clone()), json!({"a": "yes", "t": "default", "extra": "yes"}));
    assert_eq!(t.domain.as_deref(), Some("green"), "no worker polled any of them: the last one");
    assert_eq!(t.queue.as_deref(), Some("green:x"));
    assert_eq!((t.execution_name_space.as_deref(), t.isolation_group_id.as_deref()), (Some("ns"), Some("iso")));

    /// Workers of `x` polled domain `blue` at time 0.
    struct BluePolled;
    impl overture_core::command::Environment for BluePolled {
        fn last_poll(&self, task_type: &str, domain: Option<&str>) -> Option<i64> {
            (task_type == "x" && domain == Some("blue")).then_some(0)
        }
    }
    let (state, _) = decide::start(cmd.clone(), &mut Ctx { now: 5_000, ids: &mut ids, env: &BluePolled });
    assert_eq!(state.tasks[0].domain.as_deref(), Some("blue"), "the first domain with an active worker");
    let (state, _) = decide::start(cmd.clone(), &mut Ctx { now: 60_000, ids: &mut ids, env: &BluePolled });
    assert_eq!(state.tasks[0].domain.as_deref(), Some("green"), "a poll a minute ago is not activity");
    let mut no_domain = cmd;
    no_domain.task_to_domain.insert("x".into(), "blue,NO_DOMAIN".into());
    let (state, _) = decide::start(no_domain, &mut Ctx { now: 60_000, ids: &mut ids, env: &BluePolled });
    assert_eq!((state.tasks[0].domain.as_deref(), state.tasks[0].queue.as_deref()), (None, Some("x")));
}

#[test]
fn environment_variables_resolve_when_scheduled_and_secrets_stay_as_written() {
    let def = json!({"name": "env_and_secrets", "version": 1, "tasks": [{
        "name": "call", "taskReferenceName": "call",
        "inputParameters": {
            "region": "${workflow.env.region}",
            "host": "${workflow.env.config.db.host}",
            "missing": "${workflow.env.nope}",
            "text": "in ${workflow.env.region}",
            "key": "${workflow.secrets.api_key}",
            "auth": "Bearer ${workflow.secrets.api_key}"
        }
    }]});
    let run = Run::start(def, json!({}));
    let input = &run.open_task("call").input;
    assert_eq!(input["region"], "华东");
    assert_eq!(input["host"], "h1", "a path below the variable reads its value as JSON");
    assert_eq!(input["missing"], Value::Null);
    assert_eq!(input["text"], "in 华东");
    assert_eq!(input["key"], "${workflow.secrets.api_key}", "the stored input never holds a secret");
    assert_eq!(input["auth"], "Bearer ${workflow.secrets.api_key}");
}

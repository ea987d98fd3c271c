//! System tasks in the decider: given a definition and commands, then tasks, statuses and
//! outputs. Each step is also replayed from the events (see `common`).

mod common;

use common::*;
use overture_core::command::{Command, TaskResultStatus};
use overture_core::rows::{self, TimerKind};
use overture_core::state::{TaskStatus, WorkflowStatus};
use serde_json::{Value, json};

fn simple(reference: &str) -> Value {
    json!({"name": format!("w_{reference}"), "taskReferenceName": reference})
}

fn wf(tasks: Value) -> Value {
    json!({"name": "sys", "tasks": tasks})
}

fn switch(reference: &str, cases: Value, default: Value) -> Value {
    json!({
        "name": reference, "taskReferenceName": reference, "type": "SWITCH",
        "evaluatorType": "value-param", "expression": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": cases, "defaultCase": default
    })
}

#[test]
fn switch_runs_the_matching_case_then_continues_after_it() {
    let def = wf(json!([
        switch("sw", json!({"a": [simple("a1"), simple("a2")], "b": [simple("b1")]}), json!([simple("d1")])),
        simple("after")
    ]));
    let mut run = Run::start(def, json!({"kind": "a"}));
    let sw = run.task("sw");
    assert_eq!((sw.task_type.as_str(), sw.status), ("SWITCH", TaskStatus::Completed));
    assert_eq!(sw.output.get("evaluationResult"), Some(&json!(["a"])));
    assert_eq!(sw.output.get("selectedCase"), Some(&json!("a")));
    assert_eq!(sw.input.get("case"), Some(&json!("a")));
    assert_eq!(run.scheduled(), ["a1"]);
    run.complete("a1", json!({}));
    assert_eq!(run.scheduled(), ["a2"]);
    run.complete("a2", json!({}));
    assert_eq!(run.scheduled(), ["after"]);
    run.complete("after", json!({"x": 1}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
}

#[test]
fn switch_default_and_empty_cases_follow_conductor() {
    let cases = json!({"a": [simple("a1")], "empty": []});
    // An unknown case takes the default.
    let run = Run::start(
        wf(json!([switch("sw", cases.clone(), json!([simple("d1")])), simple("after")])),
        json!({"kind": "zzz"}),
    );
    assert_eq!(run.scheduled(), ["d1"]);
    // A missing input is the case "null".
    let run = Run::start(wf(json!([switch("sw", cases.clone(), json!([simple("d1")])), simple("after")])), json!({}));
    assert_eq!(run.task("sw").output.get("selectedCase"), Some(&json!("null")));
    assert_eq!(run.scheduled(), ["d1"]);
    // SWITCH: an empty case is no branch, not the default.
    let run = Run::start(
        wf(json!([switch("sw", cases.clone(), json!([simple("d1")])), simple("after")])),
        json!({"kind": "empty"}),
    );
    assert_eq!(run.scheduled(), ["after"]);
    // No default case: straight on.
    let run = Run::start(wf(json!([switch("sw", cases, json!([])), simple("after")])), json!({"kind": "zzz"}));
    assert_eq!(run.scheduled(), ["after"]);
    // DECISION: an empty case falls back to the default.
    let decision = json!({
        "name": "d", "taskReferenceName": "d", "type": "DECISION", "caseValueParam": "kind",
        "inputParameters": {"kind": "${workflow.input.kind}"},
        "decisionCases": {"empty": []}, "defaultCase": [simple("d1")]
    });
    let run = Run::start(wf(json!([decision, simple("after")])), json!({"kind": "empty"}));
    assert_eq!(run.task("d").output.get("caseOutput"), Some(&json!(["empty"])));
    assert_eq!(run.scheduled(), ["d1"]);
}

#[test]
fn javascript_switch_nested_switches_and_decision_expressions() {
    let inner = json!({
        "name": "inner", "taskReferenceName": "inner", "type": "SWITCH", "evaluatorType": "javascript",
        "expression": "$.n > 10 ? 'big' : 'small'", "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"big": [simple("big")], "small": [simple("small")]}
    });
    let outer = json!({
        "name": "outer", "taskReferenceName": "outer", "type": "SWITCH", "evaluatorType": "graaljs",
        "expression": "$.n % 2", "inputParameters": {"n": "${workflow.input.n}"},
        "decisionCases": {"0": [inner], "1": [simple("odd")]}
    });
    let mut run = Run::start(wf(json!([outer, simple("after")])), json!({"n": 12}));
    assert_eq!(run.task("outer").output.get("selectedCase"), Some(&json!("0")), "JS integers stay integral");
    assert_eq!(run.scheduled(), ["big"]);
    run.complete("big", json!({}));
    assert_eq!(run.scheduled(), ["after"], "the end of the inner case continues after the outer switch");

    let decision = json!({
        "name": "d", "taskReferenceName": "d", "type": "DECISION", "caseExpression": "$.n > 1 ? 'many' : 'one'",
        "inputParameters": {"n": "${workflow.input.n}"}, "decisionCases": {"many": [simple("m")], "one": [simple("o")]}
    });
    let run = Run::start(wf(json!([decision])), json!({"n": 3}));
    assert_eq!(run.scheduled(), ["m"]);
}

#[test]
fn a_failing_switch_script_fails_the_task_and_the_workflow() {
    let sw = json!({
        "name": "sw", "taskReferenceName": "sw", "type": "SWITCH", "evaluatorType": "javascript",
        "expression": "$.missing.deeper", "decisionCases": {"x": [simple("x")]}
    });
    let run = Run::start(wf(json!([sw])), json!({}));
    assert_eq!(run.task("sw").status, TaskStatus::Failed);
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert!(
        run.task("sw").reason_for_incompletion.as_deref().unwrap_or_default().contains("deeper"),
        "{:?}",
        run.task("sw")
    );
}

fn fork(reference: &str, branches: Value) -> Value {
    json!({"name": reference, "taskReferenceName": reference, "type": "FORK_JOIN", "forkTasks": branches})
}

fn join(reference: &str, on: &[&str]) -> Value {
    json!({"name": reference, "taskReferenceName": reference, "type": "JOIN", "joinOn": on})
}

#[test]
fn fork_schedules_every_branch_and_join_collects_outputs() {
    let def = wf(json!([
        fork("f", json!([[simple("a1"), simple("a2")], [simple("b1")]])),
        join("j", &["a2", "b1"]),
        simple("after")
    ]));
    let mut run = Run::start(def, json!({}));
    let f = run.task("f");
    assert_eq!((f.task_type.as_str(), f.task_def_name.as_str(), f.status), ("FORK", "FORK", TaskStatus::Completed));
    assert_eq!(run.scheduled(), ["a1", "b1"]);
    assert_eq!(run.task("j").status, TaskStatus::InProgress);
    assert_eq!(run.task("j").input.get("joinOn"), Some(&json!(["a2", "b1"])));
    run.complete("b1", json!({"b": 1}));
    run.complete("a1", json!({}));
    assert_eq!(run.task("j").status, TaskStatus::InProgress);
    run.complete("a2", json!({}));
    let j = run.task("j");
    assert_eq!(j.status, TaskStatus::Completed);
    assert_eq!(serde_json::to_value(&j.output).ok(), Some(json!({"b1": {"b": 1}})), "empty outputs are left out");
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn fork_failures_optional_branches_and_missing_joins() {
    let def = |optional: bool| {
        let mut b = simple("b1");
        b["optional"] = json!(optional);
        wf(json!([fork("f", json!([[simple("a1")], [b]])), join("j", &["a1", "b1"]), simple("after")]))
    };
    let mut run = Run::start(def(false), json!({}));
    run.fail("b1");
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(run.task("a1").status, TaskStatus::Canceled);
    assert_eq!(run.task("j").status, TaskStatus::Canceled);

    let mut run = Run::start(def(true), json!({}));
    run.fail("b1");
    assert_eq!(run.task("b1").status, TaskStatus::CompletedWithErrors);
    run.complete("a1", json!({}));
    assert_eq!(run.task("j").status, TaskStatus::CompletedWithErrors);
    assert_eq!(run.scheduled(), ["after"]);

    let run = Run::start(wf(json!([fork("f", json!([[simple("a1")]])), simple("after")])), json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(
        run.state.header.reason_for_incompletion.as_deref(),
        Some("Fork task definition is not followed by a join task.  Check the blueprint")
    );
}

#[test]
fn permissive_branch_failures_wait_for_the_join_then_fail() {
    let mut b = simple("b1");
    b["permissive"] = json!(true);
    let def = wf(json!([fork("f", json!([[simple("a1")], [b]])), join("j", &["a1", "b1"]), simple("after")]));
    let mut run = Run::start(def, json!({}));
    run.fail("b1");
    assert_eq!(run.state.header.status, WorkflowStatus::Running, "a permissive failure lets the other branches run");
    assert_eq!(run.task("j").status, TaskStatus::InProgress);
    run.complete("a1", json!({}));
    assert_eq!(run.task("j").status, TaskStatus::Failed);
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
}

#[test]
fn nested_forks_join_inside_out() {
    let inner = vec![fork("f2", json!([[simple("x")], [simple("y")]])), join("j2", &["x", "y"])];
    let def = wf(json!([fork("f1", json!([inner, [simple("z")]])), join("j1", &["j2", "z"])]));
    let mut run = Run::start(def, json!({}));
    let mut scheduled = run.scheduled();
    scheduled.sort();
    assert_eq!(scheduled, ["x", "y", "z"]);
    run.complete("x", json!({"x": 1}));
    run.complete("y", json!({}));
    assert_eq!(run.task("j2").status, TaskStatus::Completed);
    assert_eq!(run.task("j1").status, TaskStatus::InProgress);
    run.complete("z", json!({}));
    assert_eq!(run.task("j1").output.get("j2"), Some(&json!({"x": {"x": 1}})));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
}

fn dynamic_fork() -> Value {
    json!({
        "name": "df", "taskReferenceName": "df", "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "tasks", "dynamicForkTasksInputParamName": "inputs",
        "inputParameters": {"tasks": "${workflow.input.tasks}", "inputs": "${workflow.input.inputs}"}
    })
}

#[test]
fn dynamic_fork_forks_what_the_input_lists() {
    let def = wf(json!([dynamic_fork(), join("dj", &[]), simple("after")]));
    let tasks: Vec<Value> = (0..3).map(|i| json!({"name": "leaf", "taskReferenceName": format!("leaf_{i}")})).collect();
    let inputs = json!({"leaf_0": {"n": 0}, "leaf_1": {"n": 1}, "leaf_2": {"n": 2}});
    let mut run = Run::start(def, json!({"tasks": tasks, "inputs": inputs}));
    assert_eq!(run.task("df").input.get("forkedTasks"), Some(&json!(["leaf_0", "leaf_1", "leaf_2"])));
    assert_eq!(run.scheduled(), ["leaf_0", "leaf_1", "leaf_2"]);
    assert_eq!(run.task("leaf_1").input.get("n"), Some(&json!(1)));
    assert_eq!(run.task("dj").input.get("joinOn"), Some(&json!(["leaf_0", "leaf_1", "leaf_2"])));
    for i in 0..3 {
        run.complete(&format!("leaf_{i}"), json!({"i": i}));
    }
    assert_eq!(run.task("dj").output.get("leaf_2"), Some(&json!({"i": 2})));
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn dynamic_fork_edge_cases() {
    let def = || wf(json!([dynamic_fork(), join("dj", &[]), simple("after")]));
    // Nothing to fork: the join completes at once.
    let run = Run::start(def(), json!({"tasks": [], "inputs": {}}));
    assert_eq!(run.task("dj").status, TaskStatus::Completed);
    assert_eq!(run.scheduled(), ["after"]);
    // Duplicate reference names fail the workflow.
    let dup = json!([{"name": "leaf", "taskReferenceName": "x"}, {"name": "leaf", "taskReferenceName": "x"}]);
    let run = Run::start(def(), json!({"tasks": dup, "inputs": {}}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    // Inputs that are not a map fail the workflow.
    let run = Run::start(def(), json!({"tasks": [{"name": "leaf", "taskReferenceName": "x"}], "inputs": [1]}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    // A forked task that fails is retried as itself.
    let tasks = json!([{"name": "leaf", "taskReferenceName": "x", "taskDefinition": {"name": "leaf", "retryCount": 1, "retryDelaySeconds": 0}}]);
    let mut run = Run::start(def(), json!({"tasks": tasks, "inputs": {"x": {"k": "v"}}}));
    run.fail("x");
    assert_eq!(run.task("x").retry_count, 1);
    assert_eq!(run.task("x").input.get("k"), Some(&json!("v")));
    run.complete("x", json!({"ok": true}));
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn simple_dynamic_fork_form_names_the_task_and_its_inputs() {
    let df = json!({
        "name": "df", "taskReferenceName": "df", "type": "FORK_JOIN_DYNAMIC",
        "inputParameters": {"forkTaskName": "leaf", "forkTaskInputs": [{"a": 1}, {"a": 2}]}
    });
    let run = Run::start(wf(json!([df, join("dj", &[])])), json!({}));
    assert_eq!(run.scheduled(), ["_leaf_0", "_leaf_1"]);
    assert_eq!(run.task("_leaf_1").input.get("__index"), Some(&json!(1)));
}

#[test]
fn dynamic_task_runs_the_named_definition() {
    let dynamic = json!({
        "name": "dyn", "taskReferenceName": "dyn", "type": "DYNAMIC", "dynamicTaskNameParam": "which",
        "inputParameters": {"which": "${workflow.input.which}"}
    });
    let mut run = Run::start(wf(json!([dynamic.clone(), simple("after")])), json!({"which": "known_a"}));
    let t = run.task("dyn");
    assert_eq!((t.task_type.as_str(), t.task_def_name.as_str()), ("known_a", "known_a"));
    assert_eq!(t.queue.as_deref(), Some("known_a"));
    run.complete("dyn", json!({}));
    assert_eq!(run.scheduled(), ["after"]);
    let run = Run::start(wf(json!([dynamic])), json!({"which": "ghost"}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(
        run.state.header.reason_for_incompletion.as_deref(),
        Some("Invalid task specified. Cannot find task by name ghost in the task definitions")
    );
}

fn do_while(condition: &str, body: Value) -> Value {
    json!({
        "name": "loop", "taskReferenceName": "loop", "type": "DO_WHILE", "loopCondition": condition,
        "inputParameters": {"max": "${workflow.input.max}"}, "loopOver": body
    })
}

#[test]
fn do_while_iterates_with_suffixed_references_until_the_condition_fails() {
    let body = json!([simple("body"), {"name": "w_next", "taskReferenceName": "next", "inputParameters": {"prev": "${body.output.n}"}}]);
    let def =
        wf(json!([do_while("if ($.loop['iteration'] < $.max) { true; } else { false; }", body), simple("after")]));
    let mut run = Run::start(def, json!({"max": 3}));
    assert_eq!(run.task("loop").status, TaskStatus::InProgress);
    assert_eq!(run.scheduled(), ["body__1"]);
    for i in 1..=3 {
        assert_eq!(run.task(&format!("body__{i}")).iteration, i);
        run.complete(&format!("body__{i}"), json!({"n": i}));
        assert_eq!(run.task(&format!("next__{i}")).input.get("prev"), Some(&json!(i)), "base refs see this iteration");
        run.complete(&format!("next__{i}"), json!({}));
        if i == 2 {
            let running = run.task("loop").clone();
            assert_eq!(running.output.get("1"), None, "a running loop stores only its iteration");
            let shown = run.state.loop_output(&running);
            assert_eq!(shown.get("1"), Some(&json!({"body": {"n": 1}, "next": {}})), "but shows every iteration");
            assert_eq!(shown.get("iteration"), Some(&json!(3)));
        }
    }
    let l = run.task("loop");
    assert_eq!(l.status, TaskStatus::Completed);
    assert_eq!(l.output.get("iteration"), Some(&json!(3)));
    assert_eq!(l.output.get("2"), Some(&json!({"body": {"n": 2}, "next": {}})));
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn do_while_keep_last_n_drops_older_iterations_and_keeps_their_places() {
    let body = json!([simple("body")]);
    let mut dw = do_while("$.loop['iteration'] < 5", body);
    dw["inputParameters"]["keepLastN"] = json!(2);
    let mut run = Run::start(wf(json!([dw, simple("after")])), json!({}));
    for i in 1..=5 {
        run.complete(&format!("body__{i}"), json!({"n": i, "载荷": "x".repeat(100)}));
    }
    let l = run.task("loop").clone();
    assert_eq!(l.status, TaskStatus::Completed);
    let kept: Vec<&str> =
        run.state.tasks.iter().filter(|t| !t.is_pruned()).map(|t| t.reference_task_name.as_str()).collect();
    assert_eq!(kept, ["loop", "body__4", "body__5", "after"], "the last two iterations remain");
    assert_eq!(run.state.tasks.len(), 7, "the dropped tasks keep their places, so seqs do not move");
    assert_eq!(run.state.tasks[1].seq, 2);
    assert!(run.state.tasks[1].is_pruned() && run.state.tasks[1].input.is_empty());
    assert_eq!(l.output.get("iteration"), Some(&json!(5)));
    assert_eq!(l.output.get("1"), None, "a dropped iteration's output goes with it, as in conductor-oss");
    assert_eq!(l.output.get("5").and_then(|o| o.get("body")).and_then(|b| b.get("n")), Some(&json!(5)));
    assert_eq!(run.task("body").reference_task_name, "body__5", "the base name still finds the latest");
}

#[test]
fn do_while_with_a_switch_and_a_fork_inside() {
    let sw = json!({
        "name": "sw", "taskReferenceName": "sw", "type": "SWITCH", "evaluatorType": "javascript",
        "expression": "$.i % 2 == 0 ? 'even' : 'odd'", "inputParameters": {"i": "${loop.output.iteration}"},
        "decisionCases": {"even": [simple("even")]}, "defaultCase": [simple("odd")]
    });
    let body = json!([sw, fork("f", json!([[simple("x")], [simple("y")]])), join("j", &["x", "y"])]);
    let def = wf(json!([do_while("$.loop['iteration'] < 2", body)]));
    let mut run = Run::start(def, json!({}));
    assert_eq!(run.scheduled(), ["odd__1"]);
    run.complete("odd__1", json!({}));
    assert_eq!(run.scheduled(), ["x__1", "y__1"]);
    assert_eq!(run.task("j__1").input.get("joinOn"), Some(&json!(["x__1", "y__1"])));
    run.complete("x__1", json!({}));
    run.complete("y__1", json!({}));
    assert_eq!(run.scheduled(), ["even__2"]);
    run.complete("even__2", json!({}));
    run.complete("x__2", json!({}));
    run.complete("y__2", json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    assert_eq!(run.task("loop").output.get("iteration"), Some(&json!(2)));
}

#[test]
fn do_while_over_items_and_condition_errors() {
    let mut def = do_while(
        "",
        json!([{"name": "w_item", "taskReferenceName": "item", "inputParameters": {"it": "${loop.output.loopItem}"}}]),
    );
    def["items"] = json!("${workflow.input.items}");
    let mut run = Run::start(wf(json!([def.clone()])), json!({"items": ["a", "b"]}));
    assert_eq!(run.task("item__1").input.get("it"), Some(&json!("a")));
    run.complete("item__1", json!({}));
    assert_eq!(run.task("item__2").input.get("it"), Some(&json!("b")));
    run.complete("item__2", json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    let run = Run::start(wf(json!([def])), json!({"items": []}));
    assert_eq!(run.task("loop").output.get("iteration"), Some(&json!(0)));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);

    let mut run = Run::start(wf(json!([do_while("$.nothing.here", json!([simple("b")]))])), json!({}));
    run.complete("b__1", json!({}));
    assert_eq!(run.task("loop").status, TaskStatus::FailedWithTerminalError);
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
}

#[test]
fn a_hundred_iterations_of_system_tasks_run_in_one_decision() {
    let body = json!([{"name": "inc", "taskReferenceName": "inc", "type": "INLINE",
        "inputParameters": {"evaluatorType": "javascript", "expression": "$.i + 1", "i": "${loop.output.iteration}"}}]);
    let run = Run::start(wf(json!([do_while("$.loop['iteration'] < 100", body)])), json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    assert_eq!(run.task("inc__100").output.get("result"), Some(&json!(101)));
    assert_eq!(run.task("loop").output.get("iteration"), Some(&json!(100)));
}

#[test]
fn an_endless_loop_of_system_tasks_pauses_between_decisions() {
    let body = json!([{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]);
    let mut run = Run::start(wf(json!([do_while("true", body)])), json!({}));
    let l = run.task("loop").clone();
    assert_eq!(l.status, TaskStatus::InProgress);
    assert_eq!(l.iteration, 102, "one decision starts a bounded number of iterations");
    let timer = rows::task_timers(&run.state.header, &l).into_iter().next().expect("a paused loop has a timer due now");
    assert_eq!((timer.kind, timer.fire_at), (TimerKind::WaitTimeout, run.now));
    run.send(Command::Timer { kind: timer.kind, seq: l.seq, fire_at: timer.fire_at }).expect("accepted");
    assert_eq!(run.task("loop").iteration, 203);
    assert!(run.history.len() < 2_000);
}

#[test]
fn wait_ends_on_its_timer_or_an_update_and_human_on_an_update() {
    let wait =
        |input: Value| json!({"name": "wait", "taskReferenceName": "wait", "type": "WAIT", "inputParameters": input});
    let mut run = Run::start(wf(json!([wait(json!({"duration": "5 seconds"})), simple("after")])), json!({}));
    let w = run.task("wait").clone();
    assert_eq!((w.status, w.wait_timeout), (TaskStatus::InProgress, run.now + 5_000));
    let timer =
        rows::task_timers(&run.state.header, &w).into_iter().next().expect("a WAIT with a duration has a timer");
    assert_eq!((timer.kind, timer.fire_at), (TimerKind::WaitTimeout, run.now + 5_000));
    run.send(Command::Timer { kind: TimerKind::WaitTimeout, seq: w.seq, fire_at: timer.fire_at }).expect("accepted");
    assert_eq!(run.task("wait").status, TaskStatus::InProgress, "an early timer changes nothing");
    run.now += 5_000;
    run.send(Command::Timer { kind: TimerKind::WaitTimeout, seq: w.seq, fire_at: timer.fire_at }).expect("accepted");
    assert_eq!(run.task("wait").status, TaskStatus::Completed);
    assert_eq!(run.scheduled(), ["after"]);

    for task_type in ["WAIT", "HUMAN"] {
        let t = json!({"name": "t", "taskReferenceName": "t", "type": task_type});
        let mut run = Run::start(wf(json!([t, simple("after")])), json!({}));
        let id = run.task("t").task_id.clone();
        assert!(rows::queue_item(&run.state.header, run.task("t")).is_none(), "no worker polls {task_type}");
        run.report(&id, TaskResultStatus::InProgress, json!({"note": 1}));
        assert_eq!(run.task("t").status, TaskStatus::InProgress, "a system task stays IN_PROGRESS");
        run.report(&id, TaskResultStatus::Completed, json!({"approved": true}));
        assert_eq!(run.scheduled(), ["after"]);
    }

    let run = Run::start(wf(json!([wait(json!({"until": "not a date"}))])), json!({}));
    assert_eq!(run.task("wait").status, TaskStatus::FailedWithTerminalError);
}

#[test]
fn terminate_ends_the_workflow_from_inside_a_branch() {
    let term = json!({
        "name": "stop", "taskReferenceName": "stop", "type": "TERMINATE",
        "inputParameters": {"terminationStatus": "FAILED", "terminationReason": "enough", "workflowOutput": {"why": "${workflow.input.why}"}}
    });
    let def = wf(json!([fork("f", json!([[simple("slow")], [term]])), join("j", &["slow", "stop"])]));
    let run = Run::start(def, json!({"why": "because"}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(run.state.header.reason_for_incompletion.as_deref(), Some("enough"));
    assert_eq!(serde_json::to_value(&run.state.header.output).ok(), Some(json!({"why": "because"})));
    assert_eq!(run.task("slow").status, TaskStatus::Canceled);
    assert_eq!(run.task("stop").status, TaskStatus::Completed);

    let term = json!({"name": "stop", "taskReferenceName": "stop", "type": "TERMINATE", "inputParameters": {"terminationStatus": "COMPLETED"}});
    let run = Run::start(wf(json!([term, simple("never")])), json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    assert!(run.state.latest("never").is_none());
}

#[test]
fn set_variable_and_noop() {
    let set = json!({"name": "set", "taskReferenceName": "set", "type": "SET_VARIABLE", "inputParameters": {"count": "${workflow.input.n}", "name": "x"}});
    let noop = json!({"name": "n", "taskReferenceName": "n", "type": "NOOP"});
    let use_it =
        json!({"name": "w_use", "taskReferenceName": "use", "inputParameters": {"c": "${workflow.variables.count}"}});
    let run = Run::start(wf(json!([set, noop, use_it])), json!({"n": 7}));
    assert_eq!(run.state.header.variables.get("count"), Some(&json!(7)));
    assert_eq!(run.task("n").status, TaskStatus::Completed);
    assert_eq!(run.task("use").input.get("c"), Some(&json!(7)));

    let big = "x".repeat(300 * 1024);
    let set =
        json!({"name": "set", "taskReferenceName": "set", "type": "SET_VARIABLE", "inputParameters": {"big": big}});
    let run = Run::start(wf(json!([set])), json!({}));
    assert_eq!(run.task("set").status, TaskStatus::FailedWithTerminalError);
    assert!(run.state.header.variables.is_empty(), "the oversized variables were not kept");
}

#[test]
fn inline_lambda_and_jq() {
    let inline = json!({"name": "i", "taskReferenceName": "i", "type": "INLINE", "inputParameters": {
        "evaluatorType": "javascript", "value": "${workflow.input.v}",
        "expression": "function f() { return {doubled: $.value * 2}; } f();"}});
    let lambda = json!({"name": "l", "taskReferenceName": "l", "type": "LAMBDA", "scriptExpression": "return $.x + 1;", "inputParameters": {"x": 1}});
    let jq = json!({"name": "q", "taskReferenceName": "q", "type": "JSON_JQ_TRANSFORM", "inputParameters": {
        "in": "${i.output.result}", "queryExpression": ".in.doubled | [., . * 10]"}});
    let run = Run::start(wf(json!([inline, lambda, jq])), json!({"v": 21}));
    assert_eq!(run.task("i").output.get("result"), Some(&json!({"doubled": 42})));
    assert_eq!(run.task("l").output.get("result"), Some(&json!(2)));
    assert_eq!(run.task("q").output.get("result"), Some(&json!([42, 420])));
    assert_eq!(run.task("q").output.get("resultList"), Some(&json!([[42, 420]])));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);

    let bad = json!({"name": "i", "taskReferenceName": "i", "type": "INLINE", "inputParameters": {"expression": "while (true) {}"}});
    let run = Run::start(wf(json!([bad])), json!({}));
    assert_eq!(run.task("i").status, TaskStatus::FailedWithTerminalError);
    assert!(run.task("i").output.get("error").is_some());
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
}

#[test]
fn exclusive_join_takes_the_branch_that_ran() {
    let decision = json!({
        "name": "d", "taskReferenceName": "d", "type": "DECISION", "caseValueParam": "c",
        "inputParameters": {"c": "${workflow.input.c}"},
        "decisionCases": {"a": [simple("a")], "b": [simple("b")]}, "defaultCase": [simple("z")]
    });
    let ej = json!({"name": "ej", "taskReferenceName": "ej", "type": "EXCLUSIVE_JOIN", "joinOn": ["a", "b"], "defaultExclusiveJoinTask": ["z"]});
    for (input, reference) in [("b", "b"), ("other", "z")] {
        let mut run = Run::start(wf(json!([decision.clone(), ej.clone()])), json!({"c": input}));
        run.complete(reference, json!({"from": reference}));
        assert_eq!(run.task("ej").status, TaskStatus::Completed);
        assert_eq!(run.task("ej").output.get("from"), Some(&json!(reference)));
        assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    }
}

fn timed(def: Value) -> Value {
    json!({"name": "timed", "tasks": [{"name": "t", "taskReferenceName": "t", "taskDefinition": def}, simple("after")]})
}

fn fire(run: &mut Run, kind: TimerKind, seq: u32) {
    let task_timers = run.state.task(seq).map(|t| rows::task_timers(&run.state.header, t)).unwrap_or_default();
    let timer = task_timers
        .into_iter()
        .chain(rows::workflow_timers(&run.state))
        .find(|t| t.kind == kind && t.seq == seq)
        .unwrap_or_else(|| panic!("no {kind:?} timer for seq {seq}"));
    run.now = timer.fire_at;
    run.send(Command::Timer { kind, seq, fire_at: timer.fire_at }).expect("accepted");
}

#[test]
fn task_timeouts_follow_their_policy() {
    let def = |policy: &str| json!({"name": "t", "retryCount": 1, "retryDelaySeconds": 0, "timeoutSeconds": 60, "responseTimeoutSeconds": 30, "timeoutPolicy": policy});
    // RETRY: the attempt times out and a new one is scheduled.
    let mut run = Run::start(timed(def("RETRY")), json!({}));
    run.poll("t");
    let started = run.task("t").start_time;
    let timer =
        rows::task_timers(&run.state.header, run.task("t")).into_iter().find(|t| t.kind == TimerKind::TaskTimeout);
    assert_eq!(timer.map(|t| t.fire_at), Some(started + 60_000));
    fire(&mut run, TimerKind::TaskTimeout, 1);
    assert_eq!(run.state.tasks[0].status, TaskStatus::TimedOut);
    assert!(run.state.tasks[0].reason_for_incompletion.as_deref().unwrap_or_default().contains("RETRY"));
    assert_eq!((run.task("t").retry_count, run.task("t").status), (1, TaskStatus::Scheduled));
    // TIME_OUT_WF: the workflow times out.
    let mut run = Run::start(timed(def("TIME_OUT_WF")), json!({}));
    run.poll("t");
    fire(&mut run, TimerKind::TaskTimeout, 1);
    assert_eq!(run.state.header.status, WorkflowStatus::TimedOut);
    // ALERT_ONLY: nothing changes.
    let mut run = Run::start(timed(def("ALERT_ONLY")), json!({}));
    run.poll("t");
    fire(&mut run, TimerKind::TaskTimeout, 1);
    assert_eq!(run.task("t").status, TaskStatus::InProgress);
    // A timer from an earlier deadline is stale once the task moved on.
    let mut run = Run::start(timed(def("RETRY")), json!({}));
    let id = run.poll("t");
    let at = run.now + 60_000;
    run.report(&id, TaskResultStatus::Completed, json!({}));
    run.now = at;
    let events = run.send(Command::Timer { kind: TimerKind::TaskTimeout, seq: 1, fire_at: at }).expect("accepted");
    assert!(events.is_empty());
}

#[test]
fn poll_and_total_timeouts() {
    let def = json!({"name": "t", "retryCount": 5, "retryDelaySeconds": 10, "pollTimeoutSeconds": 30, "totalTimeoutSeconds": 35, "timeoutPolicy": "RETRY"});
    let mut run = Run::start(timed(def), json!({}));
    fire(&mut run, TimerKind::PollTimeout, 1);
    assert_eq!(run.state.tasks[0].status, TaskStatus::TimedOut);
    assert!(
        run.state.tasks[0].reason_for_incompletion.as_deref().unwrap_or_default().starts_with("Task poll timed out")
    );
    assert_eq!(run.task("t").retry_count, 1, "retried after a poll timeout");
    // The retry waits 10 s; the 35 s budget ends first and takes the workflow down.
    fire(&mut run, TimerKind::TotalTimeout, 2);
    assert_eq!(run.state.header.status, WorkflowStatus::TimedOut);
    assert_eq!(run.task("t").status, TaskStatus::TimedOut);
}

#[test]
fn workflow_timeout_times_the_workflow_out_or_only_alerts() {
    for (policy, status) in [("TIME_OUT_WF", WorkflowStatus::TimedOut), ("ALERT_ONLY", WorkflowStatus::Running)] {
        let def = json!({"name": "wt", "timeoutSeconds": 100, "timeoutPolicy": policy, "tasks": [simple("a")]});
        let mut run = Run::start(def, json!({}));
        let timer =
            rows::workflow_timers(&run.state).into_iter().next().expect("a workflow with timeoutSeconds has a timer");
        assert_eq!((timer.seq, timer.fire_at), (0, run.state.header.create_time + 100_000));
        fire(&mut run, TimerKind::WorkflowTimeout, 0);
        assert_eq!(run.state.header.status, status);
        if status == WorkflowStatus::TimedOut {
            assert_eq!(run.task("a").status, TaskStatus::Canceled);
            assert!(rows::workflow_timers(&run.state).is_empty(), "an ended workflow has no timer");
        }
    }
}

#[test]
fn a_loop_condition_can_read_earlier_iterations() {
    let def = wf(json!([do_while("$.loop['1'].body.n == 7 && $.loop['iteration'] < 2", json!([simple("body")]))]));
    let mut run = Run::start(def, json!({}));
    run.complete("body__1", json!({"n": 7}));
    assert_eq!(run.scheduled(), ["body__2"], "the condition saw iteration 1's output");
    run.complete("body__2", json!({"n": 0}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
}

fn sub_workflow_def() -> Value {
    wf(json!([
        {"name": "child", "taskReferenceName": "sub", "type": "SUB_WORKFLOW",
         "subWorkflowParam": {"name": "${workflow.input.child}", "version": 2},
         "inputParameters": {"x": "${workflow.input.x}"}},
        simple("after")
    ]))
}

#[test]
fn a_sub_workflow_task_waits_for_its_child() {
    let mut run = Run::start(sub_workflow_def(), json!({"child": "kid", "x": 1}));
    let sub = run.task("sub").clone();
    assert_eq!(sub.queue.as_deref(), Some("_system:SUB_WORKFLOW"), "the leader's executor runs it");
    assert!(!sub.is_worker_task());
    assert_eq!(sub.input.get("subWorkflowName"), Some(&json!("kid")));
    assert_eq!(sub.input.get("subWorkflowVersion"), Some(&json!(2)));
    assert_eq!(sub.input.get("workflowInput"), Some(&json!({"x": 1})));
    // The executor takes it and starts the child.
    run.poll("sub");
    run.report(&sub.task_id, TaskResultStatus::InProgress, json!({"subWorkflowId": "child-1"}));
    let waiting = run.task("sub").clone();
    assert_eq!((waiting.status, waiting.sub_workflow_id.as_deref()), (TaskStatus::InProgress, Some("child-1")));
    assert!(waiting.response_deadline().is_none(), "a running child is waited for, not timed out");
    // The child ends: the task ends the same way.
    let ended = overture_core::command::ChildEnded {
        task_id: sub.task_id.clone(),
        child_id: "child-1".into(),
        status: WorkflowStatus::Completed,
        output: obj(json!({"result": 42})),
        reason: None,
    };
    run.send(Command::ChildEnded(Box::new(ended))).expect("accepted");
    let done = run.task("sub");
    assert_eq!(done.status, TaskStatus::Completed);
    assert_eq!(done.output.get("result"), Some(&json!(42)));
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn a_failed_child_fails_its_parent_and_a_terminated_parent_cancels_its_child() {
    let mut run = Run::start(sub_workflow_def(), json!({"child": "kid"}));
    let sub = run.task("sub").clone();
    let ended = overture_core::command::ChildEnded {
        task_id: sub.task_id.clone(),
        child_id: "c".into(),
        status: WorkflowStatus::Failed,
        output: obj(json!({})),
        reason: Some("broke".into()),
    };
    run.send(Command::ChildEnded(Box::new(ended))).expect("accepted");
    assert_eq!(run.task("sub").reason_for_incompletion.as_deref(), Some("Sub workflow c failure reason: broke"));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);

    let mut run = Run::start(sub_workflow_def(), json!({"child": "kid"}));
    let id = run.poll("sub");
    run.report(&id, TaskResultStatus::InProgress, json!({"subWorkflowId": "c2"}));
    run.send(Command::Terminate { reason: Some("stop".into()) }).expect("accepted");
    let sub = run.task("sub").clone();
    assert_eq!(sub.status, TaskStatus::Canceled);
    let timers = rows::task_timers(&run.state.header, &sub);
    assert_eq!(
        timers.iter().map(|t| t.kind).collect::<Vec<_>>(),
        [TimerKind::CancelChild],
        "the child must be stopped"
    );
    let ended_at = run.state.header.end_time;
    assert!(
        !overture_core::queries::purgeable(&run.state, ended_at + 1),
        "retention keeps the parent until its child is stopped, or the child would run on orphaned"
    );
    run.send(Command::ChildCanceled { seq: sub.seq }).expect("accepted");
    assert!(rows::task_timers(&run.state.header, run.task("sub")).is_empty(), "done once acknowledged");
    assert!(overture_core::queries::purgeable(&run.state, ended_at + 1), "and then it may go");
}

#[test]
fn a_child_tells_its_parent_and_a_failed_workflow_starts_its_failure_workflow() {
    let def: overture_core::dsl::WorkflowDef = serde_json::from_value(wf(json!([simple("a")]))).expect("definition");
    let mut ids = Counter(0);
    let cmd = overture_core::StartWorkflow {
        parent: Some(("parent".into(), "task-9".into())),
        ..overture_core::StartWorkflow::new("child", std::sync::Arc::new(overture_core::Plan::new(def)))
    };
    let ctx = &mut overture_core::Ctx::new(5, &mut ids);
    let (mut child, _) = overture_core::decide::start(cmd, ctx);
    assert_eq!(child.header.parent_workflow_id.as_deref(), Some("parent"));
    overture_core::decide::decide(&mut child, Command::Terminate { reason: None }, ctx).expect("terminated");
    let timers = rows::workflow_timers(&child);
    assert_eq!(timers.iter().map(|t| t.kind).collect::<Vec<_>>(), [TimerKind::NotifyParent]);
    overture_core::decide::decide(&mut child, Command::ParentNotified, ctx).expect("acknowledged");
    assert!(rows::workflow_timers(&child).is_empty());

    let mut def =
        wf(json!([{"name": "a", "taskReferenceName": "a", "taskDefinition": {"name": "a", "retryCount": 0}}]));
    def["failureWorkflow"] = json!("cleanup");
    let mut run = Run::start(def.clone(), json!({}));
    run.fail("a");
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert!(run.state.header.failure_workflow_pending);
    let timers = rows::workflow_timers(&run.state);
    assert_eq!(timers.iter().map(|t| t.kind).collect::<Vec<_>>(), [TimerKind::StartFailureWorkflow]);
    run.send(Command::FailureWorkflowStarted { workflow_id: Some("f-1".into()), error: None }).expect("accepted");
    assert_eq!(run.state.header.output.get("conductor.failure_workflow"), Some(&json!("f-1")));
    assert!(rows::workflow_timers(&run.state).is_empty());
    // Terminating through the API starts no failure workflow.
    let mut run = Run::start(def, json!({}));
    run.send(Command::Terminate { reason: None }).expect("accepted");
    assert!(!run.state.header.failure_workflow_pending);
}

#[test]
fn a_system_task_its_executor_lost_is_handed_out_again() {
    let http = json!({"name": "call", "taskReferenceName": "call", "type": "HTTP",
        "inputParameters": {"http_request": {"uri": "http://127.0.0.1:1/x", "method": "GET"}}});
    let mut run = Run::start(wf(json!([http])), json!({}));
    run.poll("call");
    fire(&mut run, TimerKind::ResponseTimeout, 1);
    let call = run.task("call");
    assert_eq!((call.status, call.retry_count), (TaskStatus::Scheduled, 0), "queued again, not failed");
    assert!(rows::queue_item(&run.state.header, call).is_some());
}

#[test]
fn event_tasks_go_to_the_executor_and_variables_can_be_updated_from_outside() {
    let event = json!({"name": "e", "taskReferenceName": "e", "type": "EVENT", "sink": "conductor", "asyncComplete": true,
        "inputParameters": {"k": "${workflow.input.k}"}});
    let mut run = Run::start(wf(json!([event])), json!({"k": 1}));
    let e = run.task("e").clone();
    assert_eq!(e.queue.as_deref(), Some("_system:EVENT"));
    assert_eq!(serde_json::to_value(&e.input).ok(), Some(json!({"k": 1, "sink": "conductor", "asyncComplete": true})));
    run.poll("e");
    run.report(&e.task_id, TaskResultStatus::InProgress, json!({"event_produced": "conductor:sys:e"}));
    assert!(run.task("e").response_deadline().is_none(), "an asyncComplete EVENT waits for its completion");

    run.send(Command::UpdateVariables { variables: obj(json!({"xs": [1]})), append_array: true }).expect("accepted");
    run.send(Command::UpdateVariables { variables: obj(json!({"xs": [2], "y": 3})), append_array: true })
        .expect("accepted");
    assert_eq!(serde_json::to_value(&run.state.header.variables).ok(), Some(json!({"xs": [1, 2], "y": 3})));
}

#[test]
fn a_listened_workflow_publishes_its_end_once() {
    let mut def = wf(json!([{"name": "n", "taskReferenceName": "n", "type": "NOOP"}]));
    def["workflowStatusListenerEnabled"] = json!(true);
    let mut run = Run::start(def, json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Completed);
    let kinds: Vec<_> = rows::workflow_timers(&run.state).iter().map(|t| t.kind).collect();
    assert_eq!(kinds, [TimerKind::PublishStatus]);
    run.send(Command::StatusPublished).expect("accepted");
    assert!(rows::workflow_timers(&run.state).is_empty());
    assert!(run.send(Command::StatusPublished).expect("accepted").is_empty(), "a second ack changes nothing");
}

#[test]
fn retries_wait_their_backoff_plus_jitter() {
    let def = json!({"name": "t", "retryCount": 1, "retryLogic": "FIXED", "retryDelaySeconds": 2, "backoffJitterMs": 800, "responseTimeoutSeconds": 30});
    let mut run = Run::start(timed(def), json!({}));
    run.fail("t");
    let retry = run.task("t");
    assert_eq!((retry.retry_count, retry.jitter_ms), (1, 400), "the environment's draw is recorded");
    assert_eq!(retry.ready_at(), run.now + 2_000 + 400);
    let id = run.poll_at("t", run.now + 2_400);
    assert!(!id.is_empty());
    assert_eq!(run.task("t").jitter_ms, 0, "a handed-out task carries no more jitter");
}

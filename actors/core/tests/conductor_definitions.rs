//! Issue 20: definitions conductor-oss 3.32 accepts are accepted, and run as they run there.
//! Each test is one kind of definition: what validation says of it, then how it runs.

mod common;

use common::*;
use overture_core::command::{ChildEnded, Command};
use overture_core::dsl::WorkflowDef;
use overture_core::expr::{Document, resolve_value};
use overture_core::plan::TaskKind;
use overture_core::state::{TaskStatus, WorkflowStatus};
use overture_core::system::parse_until;
use overture_core::{render, validate};
use serde_json::{Value, json};

fn wf(tasks: Value) -> Value {
    json!({"name": "issue_20", "tasks": tasks})
}

fn simple(reference: &str) -> Value {
    json!({"name": format!("w_{reference}"), "taskReferenceName": reference})
}

/// The messages `workflow_def` refuses a definition with, and its warnings.
fn check(def: &Value) -> (Vec<String>, Vec<String>) {
    let def: WorkflowDef = serde_json::from_value(def.clone()).expect("parses");
    let errors = match validate::workflow_def(&def) {
        Ok(()) => vec![],
        Err(v) => v.0.into_iter().map(|v| v.message).collect(),
    };
    (errors, validate::workflow_def_warnings(&def))
}

#[test]
fn an_embedded_definition_without_a_name_runs_as_the_task() {
    // The Python SDK embeds definitions without a name.
    let def = wf(json!([{"name": "发票任务", "taskReferenceName": "invoice",
        "taskDefinition": {"retryCount": 0, "responseTimeoutSeconds": 30, "timeoutSeconds": 60}}]));
    assert_eq!(check(&def), (vec![], vec![]));
    let mut run = Run::start(def, json!({}));
    let node = run.state.plan.task("invoice").expect("planned");
    assert_eq!(node.task_def().map(|d| d.name.as_str()), Some("发票任务"));
    let task = run.task("invoice").clone();
    assert_eq!((task.task_def_name.as_str(), task.response_timeout_seconds), ("发票任务", 30));
    let view: Value = serde_json::to_value(render::task(&run.state, &task, run.now)).expect("JSON");
    assert_eq!(view["taskDefinition"]["name"], json!("发票任务"), "a polled task shows the task's name");
    // retryCount 0 is the embedded definition's: one failure fails the workflow.
    run.fail("invoice");
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
}

#[test]
fn rules_of_an_embedded_definition_are_warnings() {
    // conductor-oss does not validate an embedded definition; Overture says what is odd.
    let def = wf(json!([{"name": "a", "taskReferenceName": "a",
        "taskDefinition": {"retryCount": -1, "responseTimeoutSeconds": 0}}]));
    let (errors, warnings) = check(&def);
    assert_eq!(errors, Vec::<String>::new());
    assert_eq!(
        warnings,
        [
            "tasks[0].taskDefinition.retryCount: TaskDef retryCount: -1 must be >= 0",
            "tasks[0].taskDefinition.responseTimeoutSeconds: TaskDef responseTimeoutSeconds: 0 must be greater than 0",
        ]
    );
    // A registered definition still follows the rules.
    let registered = serde_json::from_value(json!({"name": "a", "retryCount": -1})).expect("parses");
    assert!(validate::task_def(&registered).is_err());
}

#[test]
fn spaces_in_expressions_follow_jayway() {
    let with = |value: &str| wf(json!([{"name": "a", "taskReferenceName": "a", "inputParameters": {"k": value}}]));
    for fine in [
        "${workflow.input.items[?(@.price > 1)]}",
        "${workflow.input['商品 列表']}",
        "${workflow.input.x }",
        "${workflow.input.names.concat(' and ', 'more')}",
    ] {
        assert_eq!(check(&with(fine)), (vec![], vec![]), "{fine}");
    }
    for bad in ["${workflow.input.a b}", "${ workflow.input.x}", "${workflow. input}"] {
        let inner = &bad[2..bad.len() - 1];
        assert_eq!(check(&with(bad)).0, [format!("key: k input parameter value: {inner} is not valid")], "{bad}");
    }
    // And they resolve: a filter with spaces, keys with spaces, a trailing blank.
    let items = json!([{"名称": "苹果", "price": 2}, {"名称": "梨", "price": 1}, {"名称": "桃", "price": 3}]);
    let def = wf(json!([{"name": "a", "taskReferenceName": "a", "inputParameters": {
        "dear": "${workflow.input.items[?(@.price > 1)]}",
        "names": "${workflow.input.items[?(@.price >= 2)].名称}",
        "spaced": "${workflow.input['商品 列表'] }",
        "text": "贵的: ${workflow.input.items[?(@.price > 2)].名称}"
    }}]));
    let run = Run::start(def, json!({"items": items, "商品 列表": "清单"}));
    let input = &run.task("a").input;
    assert_eq!(input["dear"], json!([{"名称": "苹果", "price": 2}, {"名称": "桃", "price": 3}]));
    assert_eq!(input["names"], json!(["苹果", "桃"]));
    assert_eq!(input["spaced"], json!("清单"));
    assert_eq!(input["text"], json!("贵的: [桃]"));
}

#[test]
fn references_in_nested_tasks_warn_instead_of_refusing() {
    let ghostly = |reference: &str| json!({"name": reference, "taskReferenceName": reference, "inputParameters": {"k": "${幽灵.output.x}"}});
    let def = wf(json!([
        {"name": "sw", "taskReferenceName": "sw", "type": "SWITCH", "evaluatorType": "value-param",
         "expression": "k", "inputParameters": {"k": "a"}, "decisionCases": {"a": [ghostly("in_case")]}},
        {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN", "forkTasks": [[ghostly("in_branch")]]},
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["in_branch"]},
        {"name": "l", "taskReferenceName": "l", "type": "DO_WHILE", "loopCondition": "false",
         "loopOver": [ghostly("in_loop"),
            {"name": "s", "taskReferenceName": "s", "inputParameters": {"k": "${workflow.input.a b}"}}]}
    ]));
    let (errors, warnings) = check(&def);
    assert_eq!(errors, Vec::<String>::new());
    let message = |name: &str| {
        format!(
            "taskReferenceName: 幽灵 for given task: {name} input value: k of input parameter: ${{幽灵.output.x}} is not defined in workflow definition."
        )
    };
    assert_eq!(
        warnings,
        [
            format!("tasks[0].decisionCases.a[0].inputParameters.k: {}", message("in_case")),
            format!("tasks[1].forkTasks[0][0].inputParameters.k: {}", message("in_branch")),
            format!("tasks[3].loopOver[0].inputParameters.k: {}", message("in_loop")),
            "tasks[3].loopOver[1].inputParameters.k: key: k input parameter value: workflow.input.a b is not valid"
                .to_owned(),
        ]
    );
    // The nested expressions resolve to null at run time.
    let mut run = Run::start(def, json!({}));
    assert_eq!(run.task("in_case").input.get("k"), Some(&Value::Null));
    run.complete("in_case", json!({}));
    assert_eq!(run.scheduled(), ["in_branch"]);
    // A top-level task is still checked, as conductor-oss checks it.
    let (errors, _) = check(&wf(json!([ghostly("top")])));
    assert_eq!(errors, [message("top")]);
}

#[test]
fn user_defined_is_a_worker_task_polled_by_its_type() {
    assert_eq!(TaskKind::of("USER_DEFINED"), TaskKind::UserDefined);
    assert!(matches!(TaskKind::of("LLM_CHAT_COMPLETE"), TaskKind::Unsupported(_)));
    assert_eq!(TaskKind::of("KAFKA_PUBLISH"), TaskKind::KafkaPublish);
    let def = wf(json!([
        // The shell fills in the registered definition; here it is embedded (without a name).
        {"name": "审批", "taskReferenceName": "approve", "type": "USER_DEFINED", "inputParameters": {"x": 1},
         "taskDefinition": {"retryCount": 0}},
        simple("after")
    ]));
    assert_eq!(check(&def), (vec![], vec![]));
    let mut run = Run::start(def, json!({}));
    let task = run.task("approve").clone();
    assert_eq!(
        (task.task_type.as_str(), task.task_def_name.as_str(), task.queue.as_deref()),
        ("USER_DEFINED", "审批", Some("USER_DEFINED")),
        "as in conductor-oss: the type is the queue, the definition is the name's"
    );
    assert!(task.is_worker_task());
    run.complete("approve", json!({"ok": true}));
    assert_eq!(run.scheduled(), ["after"]);
    // Without a task definition by that name the workflow fails, as in conductor-oss.
    let run = Run::start(wf(json!([{"name": "无定义", "taskReferenceName": "u", "type": "USER_DEFINED"}])), json!({}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    assert_eq!(
        run.state.header.reason_for_incompletion.as_deref(),
        Some("Invalid task specified. Cannot find task by name 无定义 in the task definitions")
    );
}

fn sub_workflow_fork(reference: &str, inputs: &str) -> Value {
    json!({"name": "fan_out", "taskReferenceName": reference, "type": "FORK_JOIN_DYNAMIC",
        "inputParameters": {"forkTaskWorkflow": "城市报告", "forkTaskWorkflowVersion": "${workflow.input.version}",
            "forkTaskInputs": format!("${{workflow.input.{inputs}}}")}})
}

fn join(reference: &str) -> Value {
    json!({"name": reference, "taskReferenceName": reference, "type": "JOIN"})
}

#[test]
fn a_dynamic_fork_of_sub_workflows_forks_one_child_per_input() {
    let def = wf(json!([sub_workflow_fork("df", "cities"), join("dj"), simple("after")]));
    assert_eq!(check(&def), (vec![], vec![]), "forkTaskWorkflow and forkTaskInputs are enough");
    let cities = json!([{"城市": "北京"}, {"城市": "上海", "taskToDomain": {"*": "east"}}]);
    let mut run = Run::start(def, json!({"cities": cities, "version": "2"}));
    assert_eq!(run.task("df").input.get("forkedTasks"), Some(&json!(["_df_0", "_df_1"])));
    assert_eq!(run.scheduled(), ["_df_0", "_df_1"], "named after the fork when forkTaskName is absent");
    let first = run.task("_df_0").clone();
    assert_eq!(first.task_type.as_str(), "SUB_WORKFLOW");
    assert_eq!(first.queue.as_deref(), Some("_system:SUB_WORKFLOW"));
    assert_eq!(first.input.get("subWorkflowName"), Some(&json!("城市报告")));
    assert_eq!(first.input.get("subWorkflowVersion"), Some(&json!(2)));
    assert_eq!(first.input.get("workflowInput"), Some(&json!({"城市": "北京", "__index": 0})));
    let second = run.task("_df_1").clone();
    assert_eq!(second.input.get("subWorkflowTaskToDomain"), Some(&json!({"*": "east"})));
    assert_eq!(run.task("dj").input.get("joinOn"), Some(&json!(["_df_0", "_df_1"])));
    for (i, task) in [first, second].iter().enumerate() {
        run.poll(&task.reference_task_name);
        let child = format!("child-{i}");
        run.report(&task.task_id, overture_core::TaskResultStatus::InProgress, json!({"subWorkflowId": child}));
        let ended = ChildEnded {
            task_id: task.task_id.clone(),
            child_id: child.into(),
            status: WorkflowStatus::Completed,
            output: obj(json!({"报告": i})),
            reason: None,
        };
        run.send(Command::ChildEnded(Box::new(ended))).expect("accepted");
    }
    assert_eq!(run.task("dj").status, TaskStatus::Completed);
    assert_eq!(run.task("dj").output.get("_df_1"), Some(&json!({"报告": 1, "subWorkflowId": "child-1"})));
    assert_eq!(run.scheduled(), ["after"]);
}

#[test]
fn simple_dynamic_forks_are_named_as_in_conductor() {
    // A system forkTaskType names the tasks when forkTaskName is absent; a second dynamic fork
    // in the execution names its tasks after itself too; a numeric version is taken.
    let typed = json!({"name": "typed", "taskReferenceName": "typed", "type": "FORK_JOIN_DYNAMIC",
        "inputParameters": {"forkTaskType": "NOOP", "forkTaskInputs": ["甲"]}});
    let def = wf(json!([typed, join("tj"), sub_workflow_fork("df", "cities"), join("dj")]));
    let run = Run::start(def, json!({"cities": [{}], "version": 3}));
    let noop = run.task("_NOOP_0");
    assert_eq!((noop.task_type.as_str(), noop.status), ("NOOP", TaskStatus::Completed));
    assert_eq!(noop.input.get("input"), Some(&json!("甲")));
    assert_eq!(run.task("tj").status, TaskStatus::Completed);
    assert_eq!(run.scheduled(), ["_df_df_0"]);
    assert_eq!(run.task("_df_df_0").input.get("subWorkflowVersion"), Some(&json!(3)));
    // An item is also read as its task, as in conductor-oss: `optional` in it applies.
    let run = Run::start(
        wf(json!([sub_workflow_fork("df", "cities"), join("dj")])),
        json!({"cities": [{"optional": true}, {}]}),
    );
    let optional = |reference: &str| run.state.workflow_task(run.task(reference)).map(|(wt, _)| wt.optional);
    assert_eq!((optional("_df_0"), optional("_df_1")), (Some(true), Some(false)));
    // No version, or one that is not a number, is the latest.
    let run = Run::start(wf(json!([sub_workflow_fork("df", "cities"), join("dj")])), json!({"cities": [1]}));
    assert_eq!(run.task("_df_0").input.get("subWorkflowVersion"), Some(&Value::Null));
    assert_eq!(run.task("_df_0").input.get("workflowInput"), Some(&json!({"input": 1, "__index": 0})));
    // forkTaskInputs that are not a list fail the workflow; absent ones fork nothing.
    let run = Run::start(wf(json!([sub_workflow_fork("df", "cities"), join("dj")])), json!({"cities": "北京"}));
    assert_eq!(run.state.header.status, WorkflowStatus::Failed);
    let run = Run::start(wf(json!([sub_workflow_fork("df", "cities"), join("dj")])), json!({}));
    assert_eq!(run.task("dj").status, TaskStatus::Completed);
}

#[test]
fn wait_until_reads_zone_names() {
    let utc = parse_until("2026-12-05 14:30 UTC").expect("UTC");
    assert_eq!(utc, 1_796_481_000_000);
    let hour = 3_600_000;
    for (text, offset_hours) in [
        ("2026-12-05 14:30 PST", -8),
        ("2026-12-05 14:30 pst", -8),
        ("2026-12-05 14:30 PDT", -7),
        ("2026-12-05 14:30 EST", -5),
        ("2026-12-05 14:30 EDT", -4),
        ("2026-12-05 14:30 CST", -6),
        ("2026-12-05 14:30 CDT", -5),
        ("2026-12-05 14:30 MST", -7),
        ("2026-12-05 14:30 MDT", -6),
        ("2026-12-05 14:30 GMT", 0),
        ("2026-12-05 14:30 CET", 1),
        ("2026-12-05 14:30 CEST", 2),
        ("2026-12-05 14:30 BST", 1),
        ("2026-12-05 14:30 JST", 9),
        ("2026-12-05 14:30 GMT+09:00", 9),
        ("2026-12-05 14:30 -0800", -8),
        ("2026-12-05 14:30 America/Los_Angeles", -8),
        ("2026-12-05 14:30 Asia/Shanghai", 8),
        ("2026-12-05 14:30 Europe/London", 0),
    ] {
        assert_eq!(parse_until(text), Some(utc - offset_hours * hour), "{text}");
    }
    let half_hour = hour / 2;
    assert_eq!(parse_until("2026-12-05 14:30 IST"), Some(utc - 5 * hour - half_hour));
    // An abbreviation is one offset all year.
    assert_eq!(parse_until("2026-07-05 14:30 PST"), parse_until("2026-07-05 22:30 UTC"));
    // An IANA zone follows its daylight saving time.
    assert_eq!(parse_until("2026-07-05 14:30 America/Los_Angeles"), parse_until("2026-07-05 14:30 PDT"));
    // 02:30 on the night clocks skip to 03:00 is read with the offset before the skip.
    assert_eq!(parse_until("2026-03-08 02:30 America/New_York"), parse_until("2026-03-08 02:30 EST"));
    // 01:30 on the night clocks go back happens twice: the first.
    assert_eq!(parse_until("2026-11-01 01:30 America/New_York"), parse_until("2026-11-01 01:30 EDT"));
    for bad in [
        "2026-12-05 14:30 北京时间",
        "2026-12-05 14:30 XYZ",
        "2026-12-05 14:30 +25:00",
        "2026-12-05 14:30 +a€",
        "2026-12-05 14:30 GMT+",
        "2026-12-05 14:30 PST extra",
    ] {
        assert_eq!(parse_until(bad), None, "{bad}");
    }
    // A WAIT until a zoned time waits for it.
    let def = wf(json!([{"name": "w", "taskReferenceName": "w", "type": "WAIT",
        "inputParameters": {"until": "2026-12-05 14:30 PST"}}]));
    let run = Run::start(def, json!({}));
    assert_eq!(run.task("w").wait_timeout, utc + 8 * hour);
}

#[test]
fn jsonpath_functions_end_a_path() {
    let def = wf(json!([
        {"name": "first", "taskReferenceName": "first"},
        {"name": "second", "taskReferenceName": "second", "inputParameters": {
            "count": "${workflow.input.items.length()}",
            "keys": "${workflow.input.order.keys()}",
            "total": "${workflow.input.items[*].price.sum()}",
            "dearCount": "${workflow.input.items[?(@.price > 1.5)].length()}",
            "cheapest": "${workflow.input.prices.min()}",
            "average": "${workflow.input.prices.avg()}",
            "top": "${first.output.list.first()}",
            "bottom": "${first.output.list.last()}",
            "listed": "${first.output.list.length()}",
            "text": "共${workflow.input.items.length()}件, 合计${workflow.input.items[*].price.sum()}元",
            "nothing": "${workflow.input.missing.sum()}"
        }}
    ]));
    assert_eq!(check(&def), (vec![], vec![]));
    let items = json!([{"名称": "苹果", "price": 2}, {"名称": "梨", "price": 1.5}]);
    let mut run = Run::start(def, json!({"items": items, "order": {"编号": 7, "客户": "王"}, "prices": [3, 1, 2]}));
    run.complete("first", json!({"list": ["甲", "乙", "丙"]}));
    let input = run.task("second").input.clone();
    assert_eq!(input["count"], json!(2));
    let mut keys: Vec<String> = serde_json::from_value(input["keys"].clone()).expect("a list of keys");
    keys.sort();
    assert_eq!(keys, ["客户", "编号"]);
    assert_eq!(input["total"], json!(3.5));
    assert_eq!(input["dearCount"], json!(1));
    assert_eq!(input["cheapest"], json!(1.0));
    assert_eq!(input["average"], json!(2.0));
    assert_eq!((&input["top"], &input["bottom"], &input["listed"]), (&json!("甲"), &json!("丙"), &json!(3)));
    assert_eq!(input["text"], json!("共2件, 合计3.5元"));
    assert_eq!(input["nothing"], Value::Null);
    // In JSONPath over a document (an event's payload) too.
    let payload = json!({"items": [1, 2, 3], "名字": "张三"});
    let resolved = resolve_value(&json!({"n": "${$.items.length()}", "s": "${items.sum()}"}), &Document(&payload));
    assert_eq!(resolved, Ok(json!({"n": 3, "s": 6.0})));
}

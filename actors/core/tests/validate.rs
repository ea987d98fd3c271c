//! Definition validation, against Conductor's messages.

use overture_core::dsl::{TaskDef, WorkflowDef};
use overture_core::validate;
use serde_json::json;

fn workflow_messages(def: serde_json::Value) -> Vec<String> {
    let def: WorkflowDef = serde_json::from_value(def).expect("parses");
    match validate::workflow_def(&def) {
        Ok(()) => vec![],
        Err(v) => v.0.into_iter().map(|v| v.message).collect(),
    }
}

#[test]
fn workflow_rules() {
    let cases = [
        (
            json!({"name": "", "tasks": []}),
            vec!["WorkflowDef name cannot be null or empty", "WorkflowTask list cannot be empty"],
        ),
        (
            json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "r"}, {"name": "b", "taskReferenceName": "r"}]}),
            vec!["taskReferenceName: r should be unique across tasks for a given workflowDefinition: w"],
        ),
        (
            json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "r", "inputParameters": {"k": "${ghost.output.x}"}}]}),
            vec![
                "taskReferenceName: ghost for given task: a input value: k of input parameter: ${ghost.output.x} is not defined in workflow definition.",
            ],
        ),
        (
            json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "r", "type": "LLM_CHAT_COMPLETE"}]}),
            vec!["task r: type LLM_CHAT_COMPLETE is not supported by this Overture release yet"],
        ),
        (
            json!({"name": "w", "tasks": [
                {"name": "s", "taskReferenceName": "s", "type": "SWITCH", "decisionCases": {}},
                {"name": "d", "taskReferenceName": "d", "type": "DECISION"},
                {"name": "f", "taskReferenceName": "f", "type": "FORK_JOIN", "forkTasks": []},
                {"name": "fd", "taskReferenceName": "fd", "type": "FORK_JOIN_DYNAMIC"},
                {"name": "dy", "taskReferenceName": "dy", "type": "DYNAMIC"},
                {"name": "t", "taskReferenceName": "t", "type": "TERMINATE", "inputParameters": {"terminationStatus": "DONE"}},
                {"name": "j", "taskReferenceName": "j", "type": "JSON_JQ_TRANSFORM"},
                {"name": "l", "taskReferenceName": "l", "type": "DO_WHILE", "loopCondition": "true", "loopOver": [
                    {"name": "l2", "taskReferenceName": "l2", "type": "DO_WHILE", "loopCondition": "true",
                     "loopOver": [{"name": "x", "taskReferenceName": "x"}]}
                ]}
            ]}),
            vec![
                "evaluatorType field is required for taskType: SWITCH taskName: s",
                "expression field is required for taskType: SWITCH taskName: s",
                "caseValueParam or caseExpression field is required for taskType: DECISION taskName: d",
                "forkTasks should have atleast one task for taskType: FORK_JOIN taskName: f",
                "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: fd",
                "dynamicTaskNameParam field is required for taskType: DYNAMIC taskName: dy",
                "terminationStatus: DONE for taskType: TERMINATE taskName: t must be one of COMPLETED, FAILED, TERMINATED",
                "inputParameters.queryExpression field is required for taskType: JSON_JQ_TRANSFORM taskName: j",
                "taskType: DO_WHILE taskName: l cannot contain another DO_WHILE",
            ],
        ),
        (
            json!({"name": "w", "tasks": [
                {"name": "l", "taskReferenceName": "l", "type": "DO_WHILE", "loopCondition": "false",
                 "loopOver": [{"name": "x", "taskReferenceName": "x"}]},
                {"name": "y", "taskReferenceName": "y", "inputParameters": {"v": "${x__1.output.v}"}}
            ]}),
            vec![],
        ),
        (
            json!({"name": "w", "schemaVersion": 1, "tasks": [{"name": "a", "taskReferenceName": "r"}]}),
            vec!["workflowDef schemaVersion: 1 is only supported for v2"],
        ),
        (
            json!({"name": "w", "tasks": [{"name": "", "taskReferenceName": ""}]}),
            vec![
                "WorkflowTask name cannot be empty or null",
                "WorkflowTask taskReferenceName name cannot be empty or null",
            ],
        ),
        (
            json!({"name": "w", "tasks": [{"name": "a", "taskReferenceName": "r", "inputParameters": {"id": "${CPEWF_TASK_ID}", "w": "${workflow.input.x}", "self": "${r.input.q}"}}]}),
            vec![],
        ),
    ];
    for (def, want) in cases {
        assert_eq!(workflow_messages(def.clone()), want, "{def}");
    }
}

#[test]
fn task_def_rules() {
    let cases = [
        (json!({"name": "t"}), vec![]),
        (json!({"name": ""}), vec!["TaskDef name cannot be null or empty"]),
        (json!({"name": "t", "retryCount": -1}), vec!["TaskDef retryCount: -1 must be >= 0"]),
        (
            json!({"name": "t", "responseTimeoutSeconds": 0}),
            vec!["TaskDef responseTimeoutSeconds: 0 must be greater than 0"],
        ),
        (
            json!({"name": "t", "timeoutSeconds": 10, "responseTimeoutSeconds": 20}),
            vec!["TaskDef: t responseTimeoutSeconds: 20 must be less than timeoutSeconds: 10"],
        ),
    ];
    for (def, want) in cases {
        let parsed: TaskDef = serde_json::from_value(def.clone()).expect("parses");
        let got: Vec<String> = match validate::task_def(&parsed) {
            Ok(()) => vec![],
            Err(v) => v.0.into_iter().map(|v| v.message).collect(),
        };
        assert_eq!(got, want, "{def}");
    }
}

#[test]
fn defaults_and_nulls_follow_conductor() {
    let def: TaskDef =
        serde_json::from_value(json!({"name": "t", "retryCount": null, "description": null})).expect("parses");
    assert_eq!(def.retry_count, 0, "null fills a primitive with 0, as Jackson does");
    let def: TaskDef =
        serde_json::from_value(json!({"name": "t", "unknownField": 1})).expect("unknown fields are ignored");
    assert_eq!((def.retry_count, def.retry_delay_seconds, def.response_timeout_seconds), (3, 60, 3600));
    let out = serde_json::to_value(&def).expect("serializes");
    assert_eq!(out["timeoutPolicy"], "TIME_OUT_WF");
    assert_eq!(out["inputKeys"], json!([]));
    assert!(out.get("description").is_none(), "nulls are omitted");
    let bad = serde_json::from_value::<TaskDef>(json!({"name": "t", "retryLogic": "SOMETIMES"}));
    assert!(bad.is_err());
}

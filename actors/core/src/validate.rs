//! Rules a definition must follow before it is stored or run, with Conductor's messages.
//!
//! Validation collects every violation rather than stopping at the first, and reports each with a
//! path and the offending value, so the API can answer with Conductor's `validationErrors` list.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use crate::dsl::{TaskDef, WorkflowDef, WorkflowTask};
use crate::plan::TaskKind;

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    /// Where, e.g. `tasks[1].taskReferenceName`.
    pub path: String,
    /// What is wrong, in Conductor's words where Conductor has them.
    pub message: String,
    /// The offending value, if there is one to show.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_value: Option<String>,
}

/// Every rule a definition breaks; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join("; "))]
pub struct Violations(pub Vec<Violation>);

struct Collector(Vec<Violation>);

impl Collector {
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>, value: Option<String>) {
        self.0.push(Violation { path: path.into(), message: message.into(), invalid_value: value });
    }
    fn finish(self) -> Result<(), Violations> {
        if self.0.is_empty() { Ok(()) } else { Err(Violations(self.0)) }
    }
}

/// Checks a task definition.
pub fn task_def(def: &TaskDef) -> Result<(), Violations> {
    let mut c = Collector(Vec::new());
    check_task_def(def, "", &mut c);
    c.finish()
}

fn check_task_def(def: &TaskDef, prefix: &str, c: &mut Collector) {
    if def.name.trim().is_empty() {
        c.add(format!("{prefix}name"), "TaskDef name cannot be null or empty", None);
    }
    if def.retry_count < 0 {
        c.add(
            format!("{prefix}retryCount"),
            format!("TaskDef retryCount: {} must be >= 0", def.retry_count),
            Some(def.retry_count.to_string()),
        );
    }
    if def.response_timeout_seconds < 1 {
        c.add(
            format!("{prefix}responseTimeoutSeconds"),
            format!("TaskDef responseTimeoutSeconds: {} must be greater than 0", def.response_timeout_seconds),
            Some(def.response_timeout_seconds.to_string()),
        );
    }
    if def.timeout_seconds > 0 && def.response_timeout_seconds > def.timeout_seconds {
        c.add(
            format!("{prefix}responseTimeoutSeconds"),
            format!(
                "TaskDef: {} responseTimeoutSeconds: {} must be less than timeoutSeconds: {}",
                def.name, def.response_timeout_seconds, def.timeout_seconds
            ),
            Some(def.response_timeout_seconds.to_string()),
        );
    }
    if def.total_timeout_seconds > 0 && def.timeout_seconds > 0 && def.timeout_seconds > def.total_timeout_seconds {
        c.add(
            format!("{prefix}timeoutSeconds"),
            format!(
                "TaskDef: {} timeoutSeconds: {} must be less than or equal to totalTimeoutSeconds: {}",
                def.name, def.timeout_seconds, def.total_timeout_seconds
            ),
            Some(def.timeout_seconds.to_string()),
        );
    }
    if def.timeout_seconds < 0 {
        c.add(
            format!("{prefix}timeoutSeconds"),
            "TaskDef timeoutSeconds must be >= 0",
            Some(def.timeout_seconds.to_string()),
        );
    }
    if def.retry_delay_seconds < 0 {
        c.add(
            format!("{prefix}retryDelaySeconds"),
            "TaskDef retryDelaySeconds must be >= 0",
            Some(def.retry_delay_seconds.to_string()),
        );
    }
    if def.backoff_scale_factor < 1 {
        c.add(
            format!("{prefix}backoffScaleFactor"),
            format!("TaskDef backoffScaleFactor: {} must be >= 1", def.backoff_scale_factor),
            Some(def.backoff_scale_factor.to_string()),
        );
    }
    if def.poll_timeout_seconds.is_some_and(|p| p < 0) {
        c.add(format!("{prefix}pollTimeoutSeconds"), "TaskDef pollTimeoutSeconds must be >= 0", None);
    }
    if def.name.contains('\0') {
        c.add(format!("{prefix}name"), "TaskDef name cannot contain a NUL character", None);
    }
}

/// Checks a workflow definition.
pub fn workflow_def(def: &WorkflowDef) -> Result<(), Violations> {
    let mut c = Collector(Vec::new());
    if def.name.trim().is_empty() {
        c.add("name", "WorkflowDef name cannot be null or empty", None);
    }
    if def.name.contains('\0') {
        c.add("name", "WorkflowDef name cannot contain a NUL character", None);
    }
    if def.version < 1 {
        c.add("version", format!("WorkflowDef version: {} must be >= 1", def.version), Some(def.version.to_string()));
    }
    if def.tasks.is_empty() {
        c.add("tasks", "WorkflowTask list cannot be empty", None);
    }
    if def.schema_version != 2 {
        c.add(
            "schemaVersion",
            format!("workflowDef schemaVersion: {} is only supported for v2", def.schema_version),
            Some(def.schema_version.to_string()),
        );
    }
    if def.timeout_seconds < 0 {
        c.add("timeoutSeconds", "timeoutSeconds must be >= 0", Some(def.timeout_seconds.to_string()));
    }
    let mut refs = HashSet::new();
    let all = all_tasks(&def.tasks);
    for (path, task) in &all {
        check_workflow_task(task, path, def, &mut refs, &mut c);
    }
    c.finish()
}

fn all_tasks(tasks: &[WorkflowTask]) -> Vec<(String, &WorkflowTask)> {
    let mut out = Vec::new();
    fn walk<'a>(tasks: &'a [WorkflowTask], prefix: &str, out: &mut Vec<(String, &'a WorkflowTask)>) {
        for (i, t) in tasks.iter().enumerate() {
            let path = format!("{prefix}[{i}]");
            out.push((path.clone(), t));
            for (case, list) in &t.decision_cases {
                walk(list, &format!("{path}.decisionCases.{case}"), out);
            }
            walk(&t.default_case, &format!("{path}.defaultCase"), out);
            for (b, branch) in t.fork_tasks.iter().enumerate() {
                walk(branch, &format!("{path}.forkTasks[{b}]"), out);
            }
            walk(&t.loop_over, &format!("{path}.loopOver"), out);
        }
    }
    walk(tasks, "tasks", &mut out);
    out
}

fn contains_ref(def: &WorkflowDef, reference: &str) -> bool {
    all_tasks(&def.tasks).iter().any(|(_, t)| t.task_reference_name == reference)
}

fn check_workflow_task(
    task: &WorkflowTask,
    path: &str,
    def: &WorkflowDef,
    refs: &mut HashSet<String>,
    c: &mut Collector,
) {
    if task.name.trim().is_empty() {
        c.add(format!("{path}.name"), "WorkflowTask name cannot be empty or null", None);
    }
    if task.task_reference_name.trim().is_empty() {
        c.add(format!("{path}.taskReferenceName"), "WorkflowTask taskReferenceName name cannot be empty or null", None);
    } else if !refs.insert(task.task_reference_name.clone()) {
        c.add(
            format!("{path}.taskReferenceName"),
            format!(
                "taskReferenceName: {} should be unique across tasks for a given workflowDefinition: {}",
                task.task_reference_name, def.name
            ),
            Some(task.task_reference_name.clone()),
        );
    }
    if let TaskKind::Unsupported(kind) = TaskKind::of(&task.task_type) {
        c.add(
            format!("{path}.type"),
            format!(
                "task {}: type {kind} is not supported by this Overture release yet (supported: SIMPLE)",
                task.task_reference_name
            ),
            Some(kind),
        );
    }
    if task.start_delay < 0 {
        c.add(format!("{path}.startDelay"), "startDelay must be >= 0", Some(task.start_delay.to_string()));
    }
    if task.retry_count.is_some_and(|r| r < 0) {
        c.add(format!("{path}.retryCount"), "retryCount must be >= 0", None);
    }
    if let Some(embedded) = &task.task_definition {
        check_task_def(embedded, &format!("{path}.taskDefinition."), c);
    }
    for (key, value) in &task.input_parameters {
        check_input_value(key, value, &task.name, def, path, c);
    }
}

fn check_input_value(key: &str, value: &Value, task_name: &str, def: &WorkflowDef, path: &str, c: &mut Collector) {
    match value {
        Value::String(s) => {
            for expr in crate::expr::expressions_in(s) {
                if expr.chars().any(char::is_whitespace) {
                    c.add(
                        format!("{path}.inputParameters.{key}"),
                        format!("key: {key} input parameter value: {expr} is not valid"),
                        Some(s.clone()),
                    );
                    continue;
                }
                let root = expr.split(['.', '[']).next().unwrap_or_default();
                let env_like = !expr.contains('.')
                    && root.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit());
                if root == "workflow" || env_like || root.is_empty() || root.contains("${") {
                    continue;
                }
                if !contains_ref(def, root) {
                    c.add(
                        format!("{path}.inputParameters.{key}"),
                        format!(
                            "taskReferenceName: {root} for given task: {task_name} input value: {key} of input parameter: {s} is not defined in workflow definition."
                        ),
                        Some(s.clone()),
                    );
                }
            }
        }
        Value::Object(map) => {
            for (k, v) in map {
                check_input_value(k, v, task_name, def, path, c);
            }
        }
        Value::Array(items) => {
            for v in items {
                check_input_value(key, v, task_name, def, path, c);
            }
        }
        _ => {}
    }
}

//! Rules a definition must follow before it is stored or run, with Conductor's messages.
//!
//! Validation collects every violation rather than stopping at the first, and reports each with a
//! path and the offending value, so the API can answer with Conductor's `validationErrors` list.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;

use crate::dsl::{EVENT_ACTIONS, EventHandler, TaskDef, WorkflowDef, WorkflowTask};
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

/// The most violations one check reports: enough to show what to fix, and a bound on the work
/// and memory a definition full of mistakes can cost (a string of a million `${...}` naming
/// unknown tasks would otherwise make a million violations, each quoting the whole string).
pub const MAX_VIOLATIONS: usize = 100;

/// The most characters of a path, message or value one violation keeps; longer ones are cut and
/// end with `…`.
pub const MAX_SHOWN: usize = 1024;

/// The most characters of a case name a task's path quotes. Every task inside the case repeats
/// its path, so a long name is cut short there.
const MAX_CASE_IN_PATH: usize = 64;

/// Violations found so far, up to a cap: [`MAX_VIOLATIONS`], or 0 for a kind nobody asked for
/// (warnings while only checking), so finding them costs nothing.
struct Collector {
    found: Vec<Violation>,
    cap: usize,
}

impl Collector {
    fn new() -> Collector {
        Collector { found: Vec::new(), cap: MAX_VIOLATIONS }
    }
    /// A collector that keeps nothing.
    fn ignored() -> Collector {
        Collector { found: Vec::new(), cap: 0 }
    }
    fn add(&mut self, path: impl Into<String>, message: impl Into<String>, value: Option<String>) {
        if self.is_full() {
            return;
        }
        self.found.push(Violation {
            path: shown(path.into()),
            message: shown(message.into()),
            invalid_value: value.map(shown),
        });
    }
    /// Whether it holds all it may: checking further would add nothing.
    fn is_full(&self) -> bool {
        self.found.len() >= self.cap
    }
    fn finish(self) -> Result<(), Violations> {
        if self.found.is_empty() { Ok(()) } else { Err(Violations(self.found)) }
    }
}

/// What checking a workflow definition found: violations conductor-oss also refuses, and
/// warnings about what an earlier Overture refused beyond it.
struct Findings {
    errors: Collector,
    warnings: Collector,
}

impl Findings {
    fn is_full(&self) -> bool {
        self.errors.is_full() && self.warnings.is_full()
    }
}

/// The first `chars` characters of `text`.
fn first_chars(text: &str, chars: usize) -> &str {
    text.char_indices().nth(chars).map_or(text, |(cut, _)| &text[..cut])
}

/// `text` cut to [`MAX_SHOWN`] characters, with `…` where it was cut.
fn shown(text: String) -> String {
    let kept = first_chars(&text, MAX_SHOWN);
    if kept.len() == text.len() { text } else { format!("{kept}…") }
}

/// Checks a task definition.
pub fn task_def(def: &TaskDef) -> Result<(), Violations> {
    let mut c = Collector::new();
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

/// Checks an event handler.
pub fn event_handler(handler: &EventHandler) -> Result<(), Violations> {
    let mut c = Collector::new();
    if handler.name.trim().is_empty() {
        c.add("name", "Missing event handler name", None);
    }
    if handler.name.contains('\0') {
        c.add("name", "Event handler name cannot contain a NUL character", None);
    }
    if handler.event.trim().is_empty() {
        c.add("event", "Missing event location", None);
    }
    if handler.actions.is_empty() {
        c.add("actions", "No actions specified. Please specify at-least one action", None);
    }
    for (i, action) in handler.actions.iter().enumerate() {
        if !EVENT_ACTIONS.contains(&action.action.as_str()) {
            c.add(
                format!("actions[{i}].action"),
                format!("action {:?} is not supported (use one of {})", action.action, EVENT_ACTIONS.join(", ")),
                Some(action.action.clone()),
            );
        }
    }
    c.finish()
}

/// Checks a workflow definition, refusing what conductor-oss 3.32 refuses (and the few
/// things Overture cannot run at all, such as a task type it does not support yet).
///
/// Rules conductor-oss does not apply are [`workflow_def_warnings`] instead: the references
/// and path syntax of expressions in nested tasks (conductor-oss checks only the top-level
/// tasks' `inputParameters`) and the fields of an embedded `taskDefinition` (conductor-oss does
/// not validate it).
pub fn workflow_def(def: &WorkflowDef) -> Result<(), Violations> {
    let mut found = Findings { errors: Collector::new(), warnings: Collector::ignored() };
    check_workflow(def, &mut found);
    found.errors.finish()
}

/// What a definition does that conductor-oss accepts but looks like a mistake, as
/// human-readable lines (`path: message`), at most [`MAX_VIOLATIONS`] of them; empty when there
/// is nothing to say. A definition can pass [`workflow_def`] and still have warnings; these
/// never stop it from being registered or run.
///
/// They are the checks [`workflow_def`] leaves to conductor-oss's leniency:
///
/// - an expression in a nested task (inside a SWITCH or DECISION case, a FORK_JOIN branch or a
///   DO_WHILE body) that names a task reference the definition does not have, or whose path is
///   not well formed. At run time such an expression resolves to `null`.
/// - an embedded `taskDefinition` that breaks a rule a registered task definition must follow
///   (a negative `retryCount`, a `responseTimeoutSeconds` below 1 or above `timeoutSeconds`, ...).
///   Overture runs it as written: a limit that is not positive is no limit.
pub fn workflow_def_warnings(def: &WorkflowDef) -> Vec<String> {
    let mut found = Findings { errors: Collector::ignored(), warnings: Collector::new() };
    check_workflow(def, &mut found);
    found.warnings.found.into_iter().map(|v| format!("{}: {}", v.path, v.message)).collect()
}

fn check_workflow(def: &WorkflowDef, found: &mut Findings) {
    let c = &mut found.errors;
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
    let all = all_tasks(&def.tasks);
    // Every reference name, collected once: each expression of each task is checked against it.
    let defined: HashSet<&str> = all.iter().map(|t| t.task.task_reference_name.as_str()).collect();
    let mut refs = HashSet::new();
    for placed in &all {
        if found.is_full() {
            break;
        }
        check_workflow_task(placed, def, &defined, &mut refs, found);
    }
}

/// A task of the definition, with where it is.
struct Placed<'a> {
    /// Its path, e.g. `tasks[1].decisionCases.a[0]`.
    path: String,
    task: &'a WorkflowTask,
    /// Whether it is one of the definition's own tasks, rather than inside another task.
    top: bool,
}

fn all_tasks(tasks: &[WorkflowTask]) -> Vec<Placed<'_>> {
    let mut out = Vec::new();
    fn walk<'a>(tasks: &'a [WorkflowTask], prefix: &str, top: bool, out: &mut Vec<Placed<'a>>) {
        for (i, t) in tasks.iter().enumerate() {
            let path = format!("{prefix}[{i}]");
            out.push(Placed { path: path.clone(), task: t, top });
            for (case, list) in &t.decision_cases {
                walk(list, &format!("{path}.decisionCases.{}", first_chars(case, MAX_CASE_IN_PATH)), false, out);
            }
            walk(&t.default_case, &format!("{path}.defaultCase"), false, out);
            for (b, branch) in t.fork_tasks.iter().enumerate() {
                walk(branch, &format!("{path}.forkTasks[{b}]"), false, out);
            }
            walk(&t.loop_over, &format!("{path}.loopOver"), false, out);
        }
    }
    walk(tasks, "tasks", true, &mut out);
    out
}

fn check_workflow_task(
    placed: &Placed<'_>,
    def: &WorkflowDef,
    defined: &HashSet<&str>,
    refs: &mut HashSet<String>,
    found: &mut Findings,
) {
    let (task, path) = (placed.task, placed.path.as_str());
    let c = &mut found.errors;
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
    check_task_type(task, path, c);
    if task.start_delay < 0 {
        c.add(format!("{path}.startDelay"), "startDelay must be >= 0", Some(task.start_delay.to_string()));
    }
    if task.retry_count.is_some_and(|r| r < 0) {
        c.add(format!("{path}.retryCount"), "retryCount must be >= 0", None);
    }
    if let Some(embedded) = &task.task_definition {
        // conductor-oss does not validate an embedded definition; one without a name runs as
        // the task's name.
        let mut named = embedded.clone();
        if named.name.trim().is_empty() && !task.name.trim().is_empty() {
            named.name.clone_from(&task.name);
        }
        check_task_def(&named, &format!("{path}.taskDefinition."), &mut found.warnings);
    }
    // conductor-oss checks the expressions of the top-level tasks only.
    let c = if placed.top { &mut found.errors } else { &mut found.warnings };
    for (key, value) in &task.input_parameters {
        check_input_value(key, value, &task.name, defined, path, c);
    }
}

/// The fields each system task type needs, with Conductor's messages.
fn check_task_type(task: &WorkflowTask, path: &str, c: &mut Collector) {
    let kind = TaskKind::of(&task.task_type);
    let (t, name) = (task.task_type.as_str(), task.name.as_str());
    let mut need = |field: &str, ok: bool| {
        if !ok {
            c.add(
                format!("{path}.{field}"),
                format!("{field} field is required for taskType: {t} taskName: {name}"),
                None,
            );
        }
    };
    let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.trim().is_empty());
    match &kind {
        TaskKind::Unsupported(kind) => {
            c.add(
                format!("{path}.type"),
                format!("task {}: type {kind} is not supported by this Overture release yet", task.task_reference_name),
                Some(kind.clone()),
            );
        }
        TaskKind::Switch => {
            need("evaluatorType", has(&task.evaluator_type));
            need("expression", has(&task.expression));
            if let Some(e) =
                task.evaluator_type.as_deref().filter(|e| !["value-param", "javascript", "graaljs"].contains(e))
            {
                c.add(
                    format!("{path}.evaluatorType"),
                    format!("evaluatorType: {e} is not supported for taskType: SWITCH taskName: {name} (use value-param, javascript or graaljs)"),
                    Some(e.to_owned()),
                );
            }
        }
        TaskKind::Decision if !has(&task.case_value_param) && !has(&task.case_expression) => {
            c.add(
                format!("{path}.caseValueParam"),
                format!("caseValueParam or caseExpression field is required for taskType: DECISION taskName: {name}"),
                None,
            );
        }
        TaskKind::Dynamic => need("dynamicTaskNameParam", has(&task.dynamic_task_name_param)),
        TaskKind::ForkJoin if task.fork_tasks.iter().all(Vec::is_empty) => {
            c.add(
                format!("{path}.forkTasks"),
                format!("forkTasks should have atleast one task for taskType: FORK_JOIN taskName: {name}"),
                None,
            );
        }
        TaskKind::ForkJoinDynamic => {
            let mode_a = has(&task.dynamic_fork_tasks_param) && has(&task.dynamic_fork_tasks_input_param_name);
            let legacy = has(&task.dynamic_fork_join_tasks_param);
            // conductor-oss accepts `forkTaskInputs` alone (with `forkTaskName`, `forkTaskType` or
            // `forkTaskWorkflow` naming what each input runs); Overture also takes the name alone.
            let mode_b = ["forkTaskInputs", "forkTaskName", "forkTaskWorkflow"]
                .iter()
                .any(|k| task.input_parameters.contains_key(*k));
            if !(mode_a || legacy || mode_b) {
                c.add(
                    format!("{path}.dynamicForkTasksParam"),
                    format!(
                        "dynamicForkJoinTasksParam or combination of dynamicForkTasksInputParamName and dynamicForkTasksParam cam be used for taskType: FORK_JOIN_DYNAMIC taskName: {name}"
                    ),
                    None,
                );
            }
        }
        TaskKind::DoWhile => {
            need("loopCondition", has(&task.loop_condition) || has(&task.items));
            check_do_while(task, path, c);
        }
        TaskKind::JsonJqTransform => {
            need("inputParameters.queryExpression", task.input_parameters.contains_key("queryExpression"));
        }
        TaskKind::Lambda => need("scriptExpression", has(&task.script_expression)),
        TaskKind::Event => need("sink", has(&task.sink)),
        TaskKind::SubWorkflow => {
            let named = task.sub_workflow_param.as_ref().is_some_and(|p| {
                p.get("name").and_then(Value::as_str).is_some_and(|n| !n.is_empty())
                    || p.get("workflowDefinition").is_some_and(|d| !d.is_null())
            });
            need("subWorkflowParam", named);
        }
        TaskKind::Terminate => check_terminate(task, path, c),
        TaskKind::Wait
            if task.input_parameters.contains_key("duration") && task.input_parameters.contains_key("until") =>
        {
            c.add(
                    format!("{path}.inputParameters"),
                    format!("Both 'duration' and 'until' specified for taskType: WAIT taskName: {name}. Please provide only one input"),
                    None,
                );
        }
        _ => {}
    }
}

/// A DO_WHILE has a body, and no loop inside it.
fn check_do_while(task: &WorkflowTask, path: &str, c: &mut Collector) {
    let name = task.name.as_str();
    if task.loop_over.is_empty() {
        c.add(
            format!("{path}.loopOver"),
            format!("loopOver field is required for taskType: DO_WHILE taskName: {name}"),
            None,
        );
    }
    if task.loop_over.iter().any(|t| contains_kind(t, &TaskKind::DoWhile)) {
        c.add(
            format!("{path}.loopOver"),
            format!("taskType: DO_WHILE taskName: {name} cannot contain another DO_WHILE"),
            None,
        );
    }
}

/// A TERMINATE names a final status (or an expression for one) and is not optional.
fn check_terminate(task: &WorkflowTask, path: &str, c: &mut Collector) {
    let name = task.name.as_str();
    match task.input_parameters.get("terminationStatus").and_then(Value::as_str) {
        Some("COMPLETED" | "FAILED" | "TERMINATED") => {}
        Some(s) if s.contains("${") => {}
        other => c.add(
            format!("{path}.inputParameters.terminationStatus"),
            format!(
                "terminationStatus: {} for taskType: TERMINATE taskName: {name} must be one of COMPLETED, FAILED, TERMINATED",
                other.unwrap_or("null")
            ),
            other.map(str::to_owned),
        ),
    }
    if task.optional {
        c.add(
            format!("{path}.optional"),
            format!("optional should be false for taskType: TERMINATE taskName: {name}"),
            None,
        );
    }
}

/// Whether `task`, or a task anywhere inside it, is of `kind`.
fn contains_kind(task: &WorkflowTask, kind: &TaskKind) -> bool {
    TaskKind::of(&task.task_type) == *kind
        || task.decision_cases.values().flatten().any(|t| contains_kind(t, kind))
        || task.default_case.iter().any(|t| contains_kind(t, kind))
        || task.fork_tasks.iter().flatten().any(|t| contains_kind(t, kind))
        || task.loop_over.iter().any(|t| contains_kind(t, kind))
}

fn check_input_value(
    key: &str,
    value: &Value,
    task_name: &str,
    defined: &HashSet<&str>,
    path: &str,
    c: &mut Collector,
) {
    if c.is_full() {
        return;
    }
    match value {
        Value::String(s) => {
            for expr in crate::expr::expressions_in(s) {
                if c.is_full() {
                    return;
                }
                if !crate::expr::path_is_well_formed(expr) {
                    c.add(
                        format!("{path}.inputParameters.{key}"),
                        format!("key: {key} input parameter value: {expr} is not valid"),
                        Some(s.clone()),
                    );
                    continue;
                }
                let root = crate::expr::trim_path(expr).split(['.', '[']).next().unwrap_or_default();
                let env_like = !expr.contains('.')
                    && root.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch.is_ascii_digit());
                if root == "workflow" || env_like || root.is_empty() || root.contains("${") {
                    continue;
                }
                // Inside a loop, `${task__2.output}` names one iteration of `task`.
                let base = root.rsplit_once("__").filter(|(_, n)| n.parse::<u32>().is_ok()).map_or(root, |(b, _)| b);
                if !defined.contains(root) && !defined.contains(base) {
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
                check_input_value(k, v, task_name, defined, path, c);
            }
        }
        Value::Array(items) => {
            for v in items {
                check_input_value(key, v, task_name, defined, path, c);
            }
        }
        _ => {}
    }
}

//! The rules of Conductor's system tasks, as pure functions of a task's input and the execution:
//! which case a SWITCH takes, when a WAIT ends, what a dynamic fork forks, when a JOIN is done.
//! The decider ([`crate::decide`]) turns their answers into events.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::command::{Environment, ScriptError};
use crate::dsl::WorkflowTask;
use crate::expr::to_java_string;
use crate::plan::TaskKind;
use crate::state::{Object, TaskStatus, WorkflowState, WorkflowStatus};

/// Largest serialized size of `workflow.variables` (Conductor's 256 KB).
pub const MAX_VARIABLES_BYTES: usize = 256 * 1024;

/// How a system task failed.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The task fails with this status and reason (and output); retry rules apply.
    Task(TaskStatus, String, Object),
    /// The definition cannot run: the workflow fails with this reason.
    Workflow(String),
}

fn task_failure(status: TaskStatus, reason: impl Into<String>) -> Failure {
    Failure::Task(status, reason.into(), Object::new())
}

/// The case a SWITCH takes: `value-param` reads the input key named by `expression`;
/// `javascript` and `graaljs` evaluate `expression` with `$` bound to the input.
pub fn switch_case(wt: &WorkflowTask, input: &Object, env: &dyn Environment) -> Result<String, Failure> {
    let expression = wt.expression.as_deref().unwrap_or_default();
    match wt.evaluator_type.as_deref().unwrap_or("value-param") {
        "value-param" => Ok(to_java_string(input.get(expression).unwrap_or(&Value::Null))),
        "javascript" | "graaljs" => env
            .javascript(expression, &Value::Object(input.clone()))
            .map(|v| to_java_string(&v))
            .map_err(|e| task_failure(e.task_status(TaskStatus::Failed), e.to_string())),
        other => Err(Failure::Workflow(format!("No evaluator registered for type: {other}"))),
    }
}

/// The case a DECISION takes: the input key `caseValueParam`, or the JavaScript
/// `caseExpression` with `$` bound to the input.
pub fn decision_case(wt: &WorkflowTask, input: &Object, env: &dyn Environment) -> Result<String, Failure> {
    if let Some(param) = wt.case_value_param.as_deref().filter(|p| !p.is_empty()) {
        return Ok(to_java_string(input.get(param).unwrap_or(&Value::Null)));
    }
    let Some(script) = wt.case_expression.as_deref() else {
        return Err(Failure::Workflow(format!(
            "Decision task {} has neither caseValueParam nor caseExpression",
            wt.task_reference_name
        )));
    };
    env.javascript(script, &Value::Object(input.clone()))
        .map(|v| to_java_string(&v))
        .map_err(|e| Failure::Workflow(format!("Error while evaluating script: {script}: {e}")))
}

/// A JavaScript result as a loop condition: `true`, or a number above zero.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f > 0.0),
        _ => false,
    }
}

/// Whether a loop condition may read a DO_WHILE's per-iteration outputs (`$.loop['2']`), rather
/// than only its `iteration` (`$.loop['iteration']`, `$.loop.iteration`) and its body's latest
/// outputs. Computed access on `$` counts as reading everything.
pub fn reads_loop_iterations(condition: &str, loop_ref: &str) -> bool {
    if condition.contains("$[") || loop_ref.is_empty() {
        return true;
    }
    let mut rest = condition;
    while let Some(at) = rest.find(loop_ref) {
        let after = &rest[at + loop_ref.len()..];
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let is_word = after.chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        if before_ok && is_word {
            let accessor = ["['iteration']", "[\"iteration\"]", ".iteration"].iter().any(|a| after.starts_with(a));
            if !accessor {
                return true;
            }
        }
        rest = after;
    }
    false
}

/// When a WAIT task ends (epoch millis), from its `duration` or `until` input; `Ok(0)` waits for
/// an update or signal.
pub fn wait_until(input: &Object, now: i64) -> Result<i64, Failure> {
    let text = |key: &str| input.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    match (text("duration"), text("until")) {
        (Some(_), Some(_)) => Err(task_failure(
            TaskStatus::FailedWithTerminalError,
            "Both 'duration' and 'until' specified. Please provide only one input",
        )),
        (Some(d), None) => match parse_duration(d) {
            Some(seconds) => Ok(now.saturating_add(seconds.saturating_mul(1000))),
            None => Err(task_failure(TaskStatus::FailedWithTerminalError, format!("Invalid duration: {d}"))),
        },
        (None, Some(u)) => match parse_until(u) {
            Some(at) => Ok(at.max(1)),
            None => Err(task_failure(
                TaskStatus::FailedWithTerminalError,
                format!(
                    "Invalid date format for 'until': {u} (use yyyy-MM-dd HH:mm, yyyy-MM-dd HH:mm z or yyyy-MM-dd)"
                ),
            )),
        },
        (None, None) => Ok(0),
    }
}

/// `10s`, `5 mins`, `1d 2h 3m 4s`, `PT1H30M`: seconds.
pub fn parse_duration(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    if let Some(iso) = lower.strip_prefix("pt") {
        return parse_units(iso, true);
    }
    parse_units(&lower, false)
}

fn parse_units(text: &str, iso: bool) -> Option<i64> {
    let mut total: i64 = 0;
    let mut rest = text.trim();
    let mut any = false;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        rest = rest[digits..].trim_start();
        let unit_len = rest.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        let factor = match unit {
            "d" | "day" | "days" => 86_400,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "" if !iso && !any => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(factor)?)?;
        any = true;
        rest = rest[unit_len..].trim_start();
    }
    any.then_some(total)
}

/// `yyyy-MM-dd HH:mm`, `yyyy-MM-dd HH:mm z` or `yyyy-MM-dd`: epoch millis. The zone `z` is an
/// abbreviation (`PST`, `CET`, `UTC`; see [`crate::time::ZONE_ABBREVIATIONS`]), an offset
/// (`+02:00`, `GMT-8`) or an IANA name (`America/New_York`). Times without a zone are UTC.
pub fn parse_until(text: &str) -> Option<i64> {
    let mut parts = text.split_whitespace();
    let date = parts.next()?;
    let time = parts.next();
    let zone = parts.next();
    if parts.next().is_some() {
        return None;
    }
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (d.next()?.parse().ok()?, d.next()?.parse().ok()?, d.next()?.parse().ok()?);
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let (hh, mm) = match time {
        None => (0, 0),
        Some(t) => {
            let (h, mi) = t.split_once(':')?;
            let (h, mi): (i64, i64) = (h.parse().ok()?, mi.parse().ok()?);
            if !(0..24).contains(&h) || !(0..60).contains(&mi) {
                return None;
            }
            (h, mi)
        }
    };
    // A year far outside what a clock can show (`9999999999999-01-01`) is no deadline at all.
    let days = crate::time::days_from_civil(y, m, day);
    let local = days.checked_mul(24)?.checked_add(hh)?.checked_mul(60)?.checked_add(mm)?;
    let minutes = match zone {
        None => local,
        Some(z) => crate::time::utc_minutes_in_zone(local, z)?,
    };
    minutes.checked_mul(60_000)
}

/// The tasks a FORK_JOIN_DYNAMIC forks, each with its own input folded into its
/// `inputParameters`, as in an execution with no dynamic fork before this one (see
/// [`dynamic_fork_after`]).
pub fn dynamic_fork(wt: &WorkflowTask, input: &Object) -> Result<Vec<WorkflowTask>, Failure> {
    dynamic_fork_after(wt, input, false)
}

/// The input keys of the simple form of a dynamic fork.
const SIMPLE_FORK_KEYS: [&str; 4] = ["forkTaskInputs", "forkTaskName", "forkTaskType", "forkTaskWorkflow"];

/// The tasks a FORK_JOIN_DYNAMIC forks, each with its own input folded into its
/// `inputParameters`. The forms, in the order conductor-oss tries them:
///
/// - the simple form: `forkTaskInputs` is a list, and each item becomes one task (see
///   [`simple_fork`]);
/// - `dynamicForkTasksParam` names the input holding a list of tasks, and
///   `dynamicForkTasksInputParamName` the one holding each task's input by reference name;
/// - the legacy `dynamicForkJoinTasksParam`, naming `{dynamicTasks: [...]}`.
///
/// A simple form whose `forkTaskInputs` is absent or `null` forks nothing (conductor-oss fails
/// the workflow instead); one whose `forkTaskInputs` is not a list fails the workflow.
/// `earlier_fork` says whether the execution already has a dynamic fork task, which changes
/// how the simple form names its tasks, as in conductor-oss.
pub fn dynamic_fork_after(wt: &WorkflowTask, input: &Object, earlier_fork: bool) -> Result<Vec<WorkflowTask>, Failure> {
    let fail = |m: String| Failure::Workflow(m);
    let mut tasks: Vec<WorkflowTask> = if let Some(Value::Array(items)) = input.get("forkTaskInputs") {
        simple_fork(wt, input, items, earlier_fork)
    } else if let Some(param) = wt.dynamic_fork_tasks_param.as_deref() {
        listed_fork(wt, input, param)?
    } else if let Some(param) = wt.dynamic_fork_join_tasks_param.as_deref() {
        legacy_dynamic_tasks(input.get(param), &wt.task_reference_name)?
    } else if SIMPLE_FORK_KEYS.iter().any(|k| input.contains_key(*k)) {
        match input.get("forkTaskInputs") {
            None | Some(Value::Null) => Vec::new(),
            Some(_) => return Err(fail("forkTaskInputs must be a list".to_owned())),
        }
    } else {
        return Err(fail(format!(
            "Dynamic fork {} names neither dynamicForkTasksParam nor forkTaskName",
            wt.task_reference_name
        )));
    };
    let mut seen = std::collections::HashSet::new();
    for t in &mut tasks {
        if t.task_reference_name.trim().is_empty() || t.name.trim().is_empty() {
            return Err(fail(format!(
                "Dynamic fork {}: every forked task needs a name and a taskReferenceName",
                wt.task_reference_name
            )));
        }
        if !seen.insert(t.task_reference_name.clone()) {
            return Err(fail(format!(
                "Dynamic fork {}: duplicate taskReferenceName {}",
                wt.task_reference_name, t.task_reference_name
            )));
        }
        if wt.optional {
            t.optional = true;
        }
        t.name_embedded_definition();
    }
    Ok(tasks)
}

/// The `dynamicForkTasksParam` form: the listed tasks, each with its entry of the
/// `dynamicForkTasksInputParamName` map added to its input.
fn listed_fork(wt: &WorkflowTask, input: &Object, param: &str) -> Result<Vec<WorkflowTask>, Failure> {
    let fail = |m: String| Failure::Workflow(m);
    let list: Vec<WorkflowTask> = match input.get(param) {
        None | Some(Value::Null) => Vec::new(),
        Some(other) => Vec::<WorkflowTask>::deserialize(other).map_err(|e| {
            fail(format!("Input '{param}' of dynamic fork {} is not a list of tasks: {e}", wt.task_reference_name))
        })?,
    };
    let inputs = match wt.dynamic_fork_tasks_input_param_name.as_deref().and_then(|k| input.get(k)) {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(fail(format!(
                "Input to the dynamically forked tasks is not a map -> expecting a map of K,V but found {}",
                wt.dynamic_fork_tasks_input_param_name.as_deref().unwrap_or_default()
            )));
        }
    };
    Ok(list
        .into_iter()
        .map(|mut t| {
            if let Some(Value::Object(extra)) = inputs.get(&t.task_reference_name) {
                for (k, v) in extra {
                    t.input_parameters.insert(k.clone(), v.clone());
                }
            }
            t
        })
        .collect())
}

/// The simple form of a dynamic fork, as conductor-oss builds it: one task per item of
/// `forkTaskInputs`.
///
/// - With `forkTaskWorkflow`, each task is a SUB_WORKFLOW of that workflow, at
///   `forkTaskWorkflowVersion` (a number or a numeric string; the latest version otherwise),
///   with the item's `taskToDomain`, if it has one, as the child's.
/// - Otherwise each task is a `forkTaskType` task (SIMPLE by default) named `forkTaskName`.
///
/// The task's name for its reference is `forkTaskName`; failing that, `forkTaskType` if that is
/// a system type; failing that, the fork's own reference name. The reference is
/// `_{name}_{i}`, or `_{fork}_{name}_{i}` when the execution already has a dynamic fork task.
/// An item that is an object is the task's input (and, as in conductor-oss, is also read as
/// the task's other fields, such as `optional`); anything else is the input `input`. Each input
/// also gets `__index`, the item's position.
fn simple_fork(wt: &WorkflowTask, input: &Object, items: &[Value], earlier_fork: bool) -> Vec<WorkflowTask> {
    let text = |k: &str| input.get(k).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
    let workflow = text("forkTaskWorkflow");
    let version = match input.get("forkTaskWorkflowVersion") {
        Some(Value::String(s)) => s.trim().parse::<i32>().ok(),
        Some(Value::Number(n)) => n.as_i64().and_then(|v| i32::try_from(v).ok()),
        _ => None,
    };
    let task_type = text("forkTaskType");
    let system_type = task_type.filter(|t| TaskKind::of(t).system_type().is_some());
    let name = text("forkTaskName").or(system_type).unwrap_or(&wt.task_reference_name);
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let mut task = item_as_task(item);
        let mut params = match item {
            Value::Object(m) => m.clone(),
            other => Map::from_iter([("input".to_owned(), other.clone())]),
        };
        params.insert("__index".to_owned(), json!(i));
        task.input_parameters = params;
        match workflow {
            Some(workflow) => {
                task.name = workflow.to_owned();
                task.task_type = "SUB_WORKFLOW".to_owned();
                let mut param = Map::from_iter([("name".to_owned(), json!(workflow))]);
                if let Some(version) = version {
                    param.insert("version".to_owned(), json!(version));
                }
                if let Some(domains) = item.get("taskToDomain").filter(|d| d.is_object()) {
                    param.insert("taskToDomain".to_owned(), domains.clone());
                }
                task.sub_workflow_param = Some(Value::Object(param));
            }
            None => {
                task.name = name.to_owned();
                task.task_type = task_type.unwrap_or("SIMPLE").to_owned();
                // The registered definition of `name` applies, as in conductor-oss.
                task.task_definition = None;
            }
        }
        task.task_reference_name =
            if earlier_fork { format!("_{}_{name}_{i}", wt.task_reference_name) } else { format!("_{name}_{i}") };
        out.push(task);
    }
    out
}

/// An item of `forkTaskInputs` read as a task, as conductor-oss reads it (so `optional` or
/// `startDelay` in an item apply to its task); a blank task if it does not read as one. Nested
/// task lists are left out: they mean nothing to a worker or sub-workflow task, and reading
/// them could turn a small input into a great many tasks.
fn item_as_task(item: &Value) -> WorkflowTask {
    const NESTED: [&str; 4] = ["decisionCases", "defaultCase", "forkTasks", "loopOver"];
    let blank = || Value::Object(Map::new());
    let fields = match item {
        Value::Object(m) => Value::Object(
            m.iter().filter(|(k, _)| !NESTED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect(),
        ),
        _ => blank(),
    };
    WorkflowTask::deserialize(&fields)
        .or_else(|_| WorkflowTask::deserialize(&blank()))
        .unwrap_or_else(|e| unreachable!("a blank task always reads: {e}"))
}

fn simple_task(name: &str, reference: &str, task_type: &str, params: Object) -> Result<WorkflowTask, Failure> {
    let spec = json!({"name": name, "taskReferenceName": reference, "type": task_type, "inputParameters": params});
    serde_json::from_value(spec).map_err(|e| Failure::Workflow(format!("cannot build forked task {reference}: {e}")))
}

fn legacy_dynamic_tasks(value: Option<&Value>, fork: &str) -> Result<Vec<WorkflowTask>, Failure> {
    let list = match value.and_then(|v| v.get("dynamicTasks")) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items.clone(),
        Some(_) => return Err(Failure::Workflow(format!("Dynamic fork {fork}: dynamicTasks must be a list"))),
    };
    list.iter()
        .map(|item| {
            let get = |k: &str| item.get(k).and_then(Value::as_str).unwrap_or_default();
            let params = item.get("input").and_then(Value::as_object).cloned().unwrap_or_default();
            let task_type = match get("type") {
                "" => "SIMPLE",
                t => t,
            };
            simple_task(get("taskName"), get("referenceName"), task_type, params)
        })
        .collect()
}

/// What a JOIN becomes, or `None` while it waits.
pub fn join_outcome(state: &WorkflowState, join_on: &[String], permissive_join: bool) -> Option<Outcome> {
    let latest: Vec<Option<&crate::state::TaskState>> = join_on.iter().map(|r| state.latest(r)).collect();
    let all_terminal = latest.iter().all(|t| t.is_some_and(|t| t.status.is_terminal()));
    // Most evaluations of a wide join find it still waiting: decide that without copying outputs.
    let any_failure = latest.iter().flatten().any(|t| !t.status.is_successful());
    if !all_terminal && !any_failure {
        return None;
    }
    let mut output = Object::new();
    let mut reasons = String::new();
    let mut failed = false;
    let mut all_failures_canceled = true;
    let mut with_errors = false;
    for (reference, task) in join_on.iter().zip(&latest) {
        let Some(task) = task else { return None };
        let flags = state.workflow_task(task).map(|(wt, _)| (wt.optional, wt.permissive)).unwrap_or_default();
        let (optional, permissive) = flags;
        let failure = !task.status.is_successful() && !optional && (!(permissive || permissive_join) || all_terminal);
        if failure {
            failed = true;
            all_failures_canceled &= task.status == TaskStatus::Canceled;
            reasons.push_str(task.reason_for_incompletion.as_deref().unwrap_or("null"));
            reasons.push(' ');
        }
        if !task.output.is_empty() {
            output.insert(reference.clone(), Value::Object(task.output.clone()));
        }
        if failed {
            break;
        }
        if !task.status.is_terminal() {
            return None;
        }
        with_errors |= task.status == TaskStatus::CompletedWithErrors;
    }
    Some(if failed {
        let status = if all_failures_canceled { TaskStatus::Canceled } else { TaskStatus::Failed };
        Outcome { status, output, reason: Some(reasons.trim_end().to_owned()) }
    } else if with_errors {
        Outcome { status: TaskStatus::CompletedWithErrors, output, reason: None }
    } else {
        Outcome { status: TaskStatus::Completed, output, reason: None }
    })
}

/// What an EXCLUSIVE_JOIN becomes, or `None` while it waits: the first of `joinOn` that ran
/// (else the first of `defaultExclusiveJoinTask`) decides, once terminal.
pub fn exclusive_join_outcome(state: &WorkflowState, join_on: &[String], defaults: &[String]) -> Option<Outcome> {
    let pick = |refs: &[String]| refs.iter().filter_map(|r| state.latest(r)).find(|t| t.status != TaskStatus::Skipped);
    let chosen = match pick(join_on) {
        Some(t) => Some(t),
        None if defaults.is_empty() => None,
        None => Some(pick(defaults)?),
    };
    match chosen {
        None => Some(Outcome { status: TaskStatus::Completed, output: Object::new(), reason: None }),
        Some(t) if !t.status.is_terminal() => None,
        Some(t) if !t.status.is_successful() => Some(Outcome {
            status: TaskStatus::Failed,
            output: Object::new(),
            reason: Some(t.reason_for_incompletion.clone().unwrap_or_else(|| "null".to_owned())),
        }),
        Some(t) => Some(Outcome { status: TaskStatus::Completed, output: t.output.clone(), reason: None }),
    }
}

/// A system task's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The status the task ends with.
    pub status: TaskStatus,
    /// The task's output (`outputData`).
    pub output: Object,
    /// The task's `reasonForIncompletion`, when it failed or was canceled.
    pub reason: Option<String>,
}

/// A TERMINATE task's status, reason and workflow output.
pub fn terminate(input: &Object) -> Result<(WorkflowStatus, Option<String>, Object), Failure> {
    let status = match input.get("terminationStatus").and_then(Value::as_str) {
        Some("COMPLETED") => WorkflowStatus::Completed,
        Some("FAILED") => WorkflowStatus::Failed,
        Some("TERMINATED") => WorkflowStatus::Terminated,
        other => {
            return Err(task_failure(
                TaskStatus::Failed,
                format!(
                    "terminationStatus must be COMPLETED, FAILED or TERMINATED, got {}",
                    other.map_or_else(|| "nothing".to_owned(), |s| s.to_owned())
                ),
            ));
        }
    };
    let reason = input.get("terminationReason").and_then(Value::as_str).map(str::to_owned);
    let output = match input.get("workflowOutput") {
        None | Some(Value::Null) => Object::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => Map::from_iter([("output".to_owned(), other.clone())]),
    };
    Ok((status, reason, output))
}

/// An INLINE task: `evaluatorType` (`javascript` by default, `graaljs`, `value-param`) and
/// `expression` from the input; output `result`.
pub fn inline(input: &Object, env: &dyn Environment) -> Result<Object, Failure> {
    let expression = input.get("expression").and_then(Value::as_str).unwrap_or_default();
    let result = match input.get("evaluatorType").and_then(Value::as_str).unwrap_or("javascript") {
        "value-param" => Ok(input.get(expression).cloned().unwrap_or(Value::Null)),
        "javascript" | "graaljs" => env.javascript(expression, &Value::Object(input.clone())),
        other => {
            return Err(task_failure(TaskStatus::FailedWithTerminalError, format!("Unknown evaluatorType {other}")));
        }
    };
    match result {
        Ok(value) => Ok(Map::from_iter([("result".to_owned(), value)])),
        Err(e) => Err(Failure::Task(
            TaskStatus::FailedWithTerminalError,
            e.to_string(),
            Map::from_iter([("error".to_owned(), Value::String(e.to_string()))]),
        )),
    }
}

/// A LAMBDA task: `scriptExpression` is a function body with `$` bound to the input.
pub fn lambda(wt: &WorkflowTask, input: &Object, env: &dyn Environment) -> Result<Object, Failure> {
    let body = wt.script_expression.as_deref().unwrap_or_default();
    let script = format!("(function () {{ {body} }})()");
    match env.javascript(&script, &Value::Object(input.clone())) {
        Ok(value) => Ok(Map::from_iter([("result".to_owned(), value)])),
        Err(e) => Err(script_failure(&e)),
    }
}

/// A JSON_JQ_TRANSFORM task: `queryExpression` run on the whole input; output `result` (the
/// first value) and `resultList` (all of them).
pub fn json_jq(input: &Object, env: &dyn Environment) -> Result<Object, Failure> {
    let Some(query) = input.get("queryExpression").and_then(Value::as_str) else {
        return Err(task_failure(TaskStatus::Failed, "queryExpression is required"));
    };
    match env.jq(query, &Value::Object(input.clone())) {
        Ok(values) => {
            let first = values.first().cloned().unwrap_or(Value::Null);
            Ok(Map::from_iter([("result".to_owned(), first), ("resultList".to_owned(), Value::Array(values))]))
        }
        Err(e) => Err(script_failure(&e)),
    }
}

/// A LAMBDA's or a JSON_JQ_TRANSFORM's failure: the task fails (for good if a limit stopped it)
/// with the script's message as its reason and its `error` output.
fn script_failure(e: &ScriptError) -> Failure {
    let message = e.to_string();
    Failure::Task(
        e.task_status(TaskStatus::Failed),
        message.clone(),
        Map::from_iter([("error".to_owned(), Value::String(message))]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_dates_parse_like_conductor() {
        assert_eq!(parse_duration("10s"), Some(10));
        assert_eq!(parse_duration("5 mins"), Some(300));
        assert_eq!(parse_duration("1d 2h 3m 4s"), Some(86_400 + 7_200 + 180 + 4));
        assert_eq!(parse_duration("2 hours 1 second"), Some(7_201));
        assert_eq!(parse_duration("PT1H30M"), Some(5_400));
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 fortnights"), None);
        assert_eq!(parse_until("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_until("2026-11-21 10:30"), Some(1_795_257_000_000));
        assert_eq!(parse_until("2026-11-21 10:30 UTC"), Some(1_795_257_000_000));
        assert_eq!(parse_until("2026-11-21 12:30 +02:00"), Some(1_795_257_000_000));
        assert_eq!(parse_until("2026-13-01"), None);
        assert_eq!(parse_until("tomorrow"), None);
    }

    #[test]
    fn loop_conditions_that_read_iterations() {
        assert!(!reads_loop_iterations("$.loop['iteration'] < 3", "loop"));
        assert!(!reads_loop_iterations("if ($.loop.iteration < $.max && $.body.ok) { true; }", "loop"));
        assert!(!reads_loop_iterations("$.looper.x > 1 && $.loop[\"iteration\"] < 2", "loop"));
        assert!(reads_loop_iterations("$.loop['2'].body.ok", "loop"));
        assert!(reads_loop_iterations("Object.keys($.loop).length < 5", "loop"));
        assert!(reads_loop_iterations("$[name].iteration < 3", "loop"));
    }

    #[test]
    fn wait_inputs() {
        let obj = |v: Value| v.as_object().cloned().unwrap_or_default();
        assert_eq!(wait_until(&obj(json!({})), 1_000), Ok(0));
        assert_eq!(wait_until(&obj(json!({"duration": "2s"})), 1_000), Ok(3_000));
        assert!(matches!(
            wait_until(&obj(json!({"duration": "2s", "until": "2030-01-01"})), 0),
            Err(Failure::Task(TaskStatus::FailedWithTerminalError, _, _))
        ));
    }
}

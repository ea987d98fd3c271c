//! Executions as Conductor clients read them: `Workflow` and `Task` JSON.
//!
//! Views borrow from the state and serialize straight to bytes. Nulls are omitted, primitives
//! always present, times are epoch millis, and every enum value is one the official SDKs know
//! (the Python SDK drops a whole response on one value it does not know).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::dsl::{TaskDef, WorkflowDef, WorkflowTask};
use crate::external::PayloadTarget;
use crate::plan::TaskKind;
use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader, WorkflowState, WorkflowStatus};

/// Conductor's `Task`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskView<'a> {
    task_type: &'a str,
    status: TaskStatus,
    input_data: &'a Object,
    reference_task_name: &'a str,
    retry_count: i32,
    seq: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    poll_count: i32,
    task_def_name: &'a str,
    scheduled_time: i64,
    start_time: i64,
    end_time: i64,
    update_time: i64,
    start_delay_in_seconds: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    retried_task_id: Option<&'a str>,
    retried: bool,
    executed: bool,
    callback_from_worker: bool,
    response_timeout_seconds: i64,
    workflow_instance_id: &'a str,
    workflow_type: &'a str,
    task_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_for_incompletion: Option<&'a str>,
    callback_after_seconds: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker_id: Option<&'a str>,
    output_data: std::borrow::Cow<'a, Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_input_payload_storage_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_output_payload_storage_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    workflow_task: Option<Embedded<'a, WorkflowTask>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
    rate_limit_per_frequency: i32,
    rate_limit_frequency_in_seconds: i32,
    workflow_priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    execution_name_space: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    isolation_group_id: Option<&'a str>,
    iteration: i32,
    subworkflow_changed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_workflow_id: Option<&'a str>,
    loop_over_task: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_definition: Option<Embedded<'a, TaskDef>>,
    queue_wait_time: i64,
}

/// A part of the definition inside a rendered task: the plan's JSON of it for a task of the
/// plan (made once per definition, not per response), else the model itself (a task a dynamic
/// fork or DYNAMIC task made up).
enum Embedded<'a, T> {
    Json(&'a RawValue),
    Model(&'a T),
}

impl<T: Serialize> Serialize for Embedded<'_, T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Embedded::Json(json) => json.serialize(serializer),
            Embedded::Model(model) => model.serialize(serializer),
        }
    }
}

/// Renders one task of an execution. `now` (epoch millis) is for `queueWaitTime` of tasks not
/// yet started.
pub fn task<'a>(wf: &'a WorkflowState, t: &'a TaskState, now: i64) -> TaskView<'a> {
    let (workflow_task, task_definition) = match wf.workflow_task(t) {
        Some((_, Some(node))) if t.workflow_task.is_none() => {
            let (task, def) = node.json();
            (Some(Embedded::Json(task)), def.map(Embedded::Json))
        }
        Some((task, _)) => (Some(Embedded::Model(task)), task.task_definition.as_ref().map(Embedded::Model)),
        None => (None, None),
    };
    let queue_wait_time = if t.start_time > 0 {
        t.start_time - t.scheduled_time
    } else if t.status == TaskStatus::Scheduled {
        (now - t.ready_at()).max(0)
    } else {
        0
    };
    TaskView {
        task_type: &t.task_type,
        status: t.status,
        input_data: &t.input,
        reference_task_name: &t.reference_task_name,
        retry_count: t.retry_count,
        seq: t.seq,
        correlation_id: wf.header.correlation_id.as_deref(),
        poll_count: t.poll_count,
        task_def_name: &t.task_def_name,
        scheduled_time: t.scheduled_time,
        start_time: t.start_time,
        end_time: t.end_time,
        update_time: t.update_time,
        start_delay_in_seconds: t.start_delay_in_seconds,
        retried_task_id: t.retried_task_id.as_deref(),
        retried: t.retried,
        executed: t.executed,
        callback_from_worker: true,
        response_timeout_seconds: t.response_timeout_seconds,
        workflow_instance_id: &wf.header.workflow_id,
        workflow_type: &wf.header.workflow_name,
        task_id: &t.task_id,
        reason_for_incompletion: t.reason_for_incompletion.as_deref(),
        callback_after_seconds: t.callback_after_seconds,
        worker_id: t.worker_id.as_deref(),
        output_data: if t.kind() == TaskKind::DoWhile && !t.status.is_terminal() {
            std::borrow::Cow::Owned(wf.loop_output(t))
        } else {
            std::borrow::Cow::Borrowed(&t.output)
        },
        external_input_payload_storage_path: stored_at(wf, PayloadTarget::TaskInput(t.seq)),
        external_output_payload_storage_path: stored_at(wf, PayloadTarget::TaskOutput(t.seq)),
        workflow_task,
        domain: t.domain.as_deref(),
        rate_limit_per_frequency: t.rate_limit_per_frequency,
        rate_limit_frequency_in_seconds: t.rate_limit_frequency_in_seconds,
        workflow_priority: wf.header.priority,
        execution_name_space: t.execution_name_space.as_deref(),
        isolation_group_id: t.isolation_group_id.as_deref(),
        iteration: t.iteration,
        subworkflow_changed: false,
        sub_workflow_id: t.sub_workflow_id.as_deref(),
        loop_over_task: t.iteration > 0,
        task_definition,
        queue_wait_time,
    }
}

/// Conductor's `external…PayloadStoragePath` of a payload stored elsewhere whose content the
/// state does not hold (what every read through the API sees; a worker's task carries the
/// content the deciding actor loaded instead).
fn stored_at(wf: &WorkflowState, target: PayloadTarget) -> Option<&str> {
    wf.external(target).filter(|e| !e.loaded).map(|e| e.path.as_str())
}

/// Conductor's `Workflow`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowView<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    create_time: i64,
    update_time: i64,
    status: WorkflowStatus,
    end_time: i64,
    workflow_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_workflow_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent_workflow_task_id: Option<&'a str>,
    tasks: Vec<TaskView<'a>>,
    input: &'a Object,
    output: &'a Object,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_input_payload_storage_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    external_output_payload_storage_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_for_incompletion: Option<&'a str>,
    task_to_domain: &'a BTreeMap<String, String>,
    failed_reference_task_names: &'a [String],
    failed_task_names: &'a [String],
    workflow_definition: &'a WorkflowDef,
    priority: i32,
    variables: &'a Object,
    last_retried_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    start_time: i64,
    workflow_name: &'a str,
    workflow_version: i32,
}

/// Renders an execution, with or without its tasks.
pub fn workflow(wf: &WorkflowState, include_tasks: bool, now: i64) -> WorkflowView<'_> {
    let h = &wf.header;
    WorkflowView {
        created_by: h.created_by.as_deref(),
        create_time: h.create_time,
        update_time: h.update_time,
        status: h.status,
        end_time: h.end_time,
        workflow_id: &h.workflow_id,
        parent_workflow_id: h.parent_workflow_id.as_deref(),
        parent_workflow_task_id: h.parent_workflow_task_id.as_deref(),
        tasks: if include_tasks {
            wf.tasks.iter().filter(|t| !t.is_pruned()).map(|t| task(wf, t, now)).collect()
        } else {
            Vec::new()
        },
        input: &h.input,
        output: &h.output,
        external_input_payload_storage_path: stored_at(wf, PayloadTarget::WorkflowInput),
        external_output_payload_storage_path: stored_at(wf, PayloadTarget::WorkflowOutput),
        correlation_id: h.correlation_id.as_deref(),
        reason_for_incompletion: h.reason_for_incompletion.as_deref(),
        task_to_domain: &h.task_to_domain,
        failed_reference_task_names: &h.failed_reference_task_names,
        failed_task_names: &h.failed_task_names,
        workflow_definition: &wf.plan.def,
        priority: h.priority,
        variables: &h.variables,
        last_retried_time: h.last_retried_time,
        idempotency_key: h.idempotency_key.as_deref(),
        start_time: h.create_time,
        workflow_name: &h.workflow_name,
        workflow_version: h.workflow_version,
    }
}

/// Conductor's workflow status summary (`GET /workflow/{id}/status`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusView<'a> {
    workflow_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a Object>,
    #[serde(skip_serializing_if = "Option::is_none")]
    variables: Option<&'a Object>,
    status: WorkflowStatus,
}

/// Renders the status summary, which the header alone has.
pub fn status(header: &WorkflowHeader, include_output: bool, include_variables: bool) -> StatusView<'_> {
    StatusView {
        workflow_id: &header.workflow_id,
        correlation_id: header.correlation_id.as_deref(),
        output: include_output.then_some(&header.output),
        variables: include_variables.then_some(&header.variables),
        status: header.status,
    }
}

/// One event of an execution's history, for `GET /api/workflow/{id}/history` (Overture's own):
/// its revision, its kind, the task it concerns and what changed.
pub fn event(wf: &WorkflowState, revision: u64, e: &crate::event::Event) -> serde_json::Value {
    use crate::event::Event;
    use serde_json::json;
    let task = |seq: u32| wf.task(seq).map(|t| (t.task_id.as_str(), t.reference_task_name.as_str()));
    let mut v = json!({"revision": revision, "type": e.kind()});
    if let Some(seq) = e.task_seq() {
        v["seq"] = json!(seq);
        if let Some((id, reference)) = task(seq) {
            v["taskId"] = json!(id);
            v["referenceTaskName"] = json!(reference);
        }
    }
    let detail = match e {
        Event::WorkflowStarted(s) => json!({"time": s.header.create_time, "version": s.plan.def.version}),
        Event::TaskScheduled(s) => json!({"time": s.task.scheduled_time, "taskId": s.task.task_id,
            "referenceTaskName": s.task.reference_task_name, "taskType": s.task.task_type,
            "status": s.task.status.as_str(), "retryCount": s.task.retry_count}),
        Event::TaskPolled { worker_id, time, .. } => json!({"time": time, "workerId": worker_id}),
        Event::TaskUpdated(u) => {
            json!({"time": u.time, "status": u.status.as_str(), "reason": u.reason, "workerId": u.worker_id})
        }
        Event::TaskLeaseExtended { time, .. } => json!({"time": time}),
        Event::TaskStatusChanged { status, reason, time, .. } => {
            json!({"time": time, "status": status.as_str(), "reason": reason})
        }
        Event::TaskLogged { log, time, .. } => json!({"time": time, "log": log}),
        Event::WorkflowEnded(x) => json!({"time": x.time, "status": x.status.as_str(), "reason": x.reason}),
        Event::VariablesSet { time, .. } => json!({"time": time}),
        Event::TaskIterated { iteration, resume_at, time, .. } => {
            json!({"time": time, "iteration": iteration, "resumeAt": resume_at})
        }
        Event::FailureWorkflowStarted { workflow_id, error } => json!({"workflowId": workflow_id, "error": error}),
        Event::WorkflowPaused { time } | Event::WorkflowResumed { time } => json!({"time": time}),
        Event::WorkflowReopened(r) => json!({"time": r.time, "keepTasks": r.keep_tasks, "restart": r.restart}),
        Event::IterationsPruned { through, tasks, .. } => json!({"through": through, "tasks": tasks.len()}),
        Event::PayloadExternalized { target, path } => {
            json!({"payloadType": target.payload_type().as_str(), "path": path})
        }
        Event::TaskExecuted { .. }
        | Event::ParentNotified
        | Event::StatusPublished
        | Event::TaskCallbackReset { .. } => json!({}),
    };
    if let (Some(obj), serde_json::Value::Object(d)) = (v.as_object_mut(), detail) {
        obj.extend(d);
    }
    v
}

/// A JSON value as Java's `toString` of the map Jackson would read it into (`{a=1, b=[x, y]}`),
/// the form of `input` and `output` in Conductor's summaries.
pub fn java_string(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn write(out: &mut String, v: &Value) {
        match v {
            Value::Null => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => out.push_str(&i.to_string()),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e7 => out.push_str(&format!("{f:.1}")),
                _ => out.push_str(&n.to_string()),
            },
            Value::String(s) => out.push_str(s),
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    write(out, item);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(k);
                    out.push('=');
                    write(out, item);
                }
                out.push('}');
            }
        }
    }
    let mut out = String::new();
    write(&mut out, value);
    out
}

fn object_string(map: &Object) -> String {
    java_string(&serde_json::Value::Object(map.clone()))
}

fn iso_if_set(ms: i64) -> Option<String> {
    (ms > 0).then(|| crate::time::iso_millis(ms))
}

/// Conductor's `WorkflowSummary`: times as ISO strings, input and output as Java map strings,
/// `failedReferenceTaskNames` as one comma-joined string.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummaryView<'a> {
    workflow_type: &'a str,
    version: i32,
    workflow_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    start_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    status: WorkflowStatus,
    input: String,
    output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_for_incompletion: Option<&'a str>,
    execution_time: i64,
    failed_reference_task_names: String,
    failed_task_names: &'a [String],
    priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_by: Option<&'a str>,
    task_to_domain: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    idempotency_key: Option<&'a str>,
    parent_workflow_id: &'a str,
    input_size: usize,
    output_size: usize,
}

/// Renders a workflow's summary from its header alone.
pub fn workflow_summary(h: &crate::state::WorkflowHeader) -> WorkflowSummaryView<'_> {
    let (input, output) = (object_string(&h.input), object_string(&h.output));
    WorkflowSummaryView {
        workflow_type: &h.workflow_name,
        version: h.workflow_version,
        workflow_id: &h.workflow_id,
        correlation_id: h.correlation_id.as_deref(),
        start_time: crate::time::iso_millis(h.create_time),
        update_time: iso_if_set(h.update_time),
        end_time: iso_if_set(h.end_time),
        status: h.status,
        input_size: input.len(),
        output_size: output.len(),
        input,
        output,
        reason_for_incompletion: h.reason_for_incompletion.as_deref(),
        execution_time: crate::search::execution_time(h.create_time, h.end_time),
        failed_reference_task_names: h.failed_reference_task_names.join(","),
        failed_task_names: &h.failed_task_names,
        priority: h.priority,
        created_by: h.created_by.as_deref(),
        task_to_domain: &h.task_to_domain,
        idempotency_key: h.idempotency_key.as_deref(),
        parent_workflow_id: h.parent_workflow_id.as_deref().unwrap_or(""),
    }
}

/// Conductor's `TaskSummary`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSummaryView<'a> {
    workflow_id: &'a str,
    workflow_type: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<&'a str>,
    scheduled_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<String>,
    status: TaskStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason_for_incompletion: Option<&'a str>,
    execution_time: i64,
    queue_wait_time: i64,
    task_def_name: &'a str,
    task_type: &'a str,
    input: String,
    output: String,
    task_id: &'a str,
    workflow_priority: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
}

/// Renders a task's summary.
pub fn task_summary<'a>(h: &'a crate::state::WorkflowHeader, t: &'a TaskState) -> TaskSummaryView<'a> {
    let doc = crate::search::TaskDoc { workflow: h, task: t };
    TaskSummaryView {
        workflow_id: &h.workflow_id,
        workflow_type: &h.workflow_name,
        correlation_id: h.correlation_id.as_deref(),
        scheduled_time: crate::time::iso_millis(t.scheduled_time),
        start_time: iso_if_set(t.start_time),
        update_time: iso_if_set(t.update_time),
        end_time: iso_if_set(t.end_time),
        status: t.status,
        reason_for_incompletion: t.reason_for_incompletion.as_deref(),
        execution_time: crate::search::execution_time(t.start_time, t.end_time),
        queue_wait_time: doc.queue_wait_time(),
        task_def_name: &t.task_def_name,
        task_type: &t.task_type,
        input: object_string(&t.input),
        output: object_string(&t.output),
        task_id: &t.task_id,
        workflow_priority: h.priority,
        domain: t.domain.as_deref(),
    }
}

//! The spans of a workflow, made from the events one decision committed.

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _};
use opentelemetry::{Context, KeyValue};
use overture_core::state::{TaskState, WorkflowState};
use overture_core::{Event, TaskStatus};

use super::{Parent, TRACING, Tracing, at, root_span_of, trace_of};

/// What of a decision's events its spans are made of, taken before the events go to Raft.
#[derive(Debug, Default)]
pub struct Decided {
    events: usize,
    started: bool,
    /// (seq, epoch millis) of each poll.
    polled: Vec<(u32, i64)>,
    /// (seq, status, epoch millis) of each update.
    updated: Vec<(u32, TaskStatus, i64)>,
    /// Tasks that reached a terminal status, by seq.
    ended: Vec<u32>,
    workflow_ended: bool,
}

impl Decided {
    /// What spans `events` make; `None` when traces are off.
    pub fn of(events: &[Event]) -> Option<Decided> {
        TRACING.get()?;
        let mut d = Decided { events: events.len(), ..Decided::default() };
        for event in events {
            match event {
                Event::WorkflowStarted(_) => d.started = true,
                Event::TaskPolled { seq, time, .. } => d.polled.push((*seq, *time)),
                Event::TaskUpdated(u) => d.updated.push((u.seq, u.status, u.time)),
                Event::TaskStatusChanged { seq, status, .. } if status.is_terminal() => d.ended.push(*seq),
                Event::TaskScheduled(s) if s.task.status.is_terminal() => d.ended.push(s.task.seq),
                Event::WorkflowEnded(_) => d.workflow_ended = true,
                _ => {}
            }
        }
        Some(d)
    }

    /// Records the spans of this decision of `command`, now committed, for `state` (as its
    /// events left it), decided and committed from `began` until now.
    pub fn committed(mut self, state: &WorkflowState, command: &str, began: SystemTime) {
        let Some(tracing) = TRACING.get() else { return };
        let h = &state.header;
        let Some((trace_id, parent)) = trace_of(tracing, &h.workflow_id, h.parent_workflow_id.as_deref()) else {
            return;
        };
        let root = Parent { trace_id, span_id: root_span_of(&h.workflow_id), sampled: true };
        let under_root = root.context();
        let span = Spans { tracing, cx: &under_root, workflow_id: &h.workflow_id };
        let attributes = vec![
            KeyValue::new("overture.command", command.to_owned()),
            KeyValue::new("overture.events", self.events as i64),
        ];
        span.emit("decide".into(), began, SystemTime::now(), attributes, None);
        if self.started {
            let remembered = h.parent_workflow_id.as_deref().and_then(|p| Some((p, tracing.remembered.lock().get(p)?)));
            if let Some((parent, p)) = remembered {
                // A grandchild finds the trace through its parent.
                let under = Parent { trace_id: p.trace_id, span_id: root_span_of(parent), sampled: p.sampled };
                tracing.remembered.lock().insert(&h.workflow_id, under);
            }
            span.emit(
                format!("start {}", h.workflow_name).into(),
                at(h.create_time),
                SystemTime::now(),
                Vec::new(),
                None,
            );
        }
        for (seq, time) in self.polled {
            if let Some(t) = state.task(seq) {
                span.task(format!("poll {}", t.task_def_name), t, t.scheduled_time, time, None);
            }
        }
        for (seq, status, time) in self.updated {
            let Some(t) = state.task(seq) else { continue };
            if t.task_type.kind().is_worker_task() {
                span.task(format!("update {}", t.task_def_name), t, began_at(t), time, Some(status));
            } else if status.is_terminal() {
                self.ended.push(seq);
            }
        }
        self.ended.sort_unstable();
        self.ended.dedup();
        for seq in self.ended {
            if let Some(t) = state.task(seq).filter(|t| t.status.is_terminal()) {
                let name = format!("{} {}", t.task_type.as_str(), t.reference_task_name);
                span.task(name, t, began_at(t), t.end_time, Some(t.status));
            }
        }
        if self.workflow_ended {
            end_workflow(tracing, state, root, parent);
        }
    }
}

/// Exports a workflow's root span, covering its whole run, and forgets its trace.
fn end_workflow(tracing: &Tracing, state: &WorkflowState, root: Parent, parent: Option<opentelemetry::trace::SpanId>) {
    let h = &state.header;
    let trace_id = root.trace_id;
    let cx = match parent {
        Some(span_id) => Parent { trace_id, span_id, sampled: true }.context(),
        None => Context::new(),
    };
    let mut builder = tracing
        .tracer
        .span_builder(format!("workflow {}", h.workflow_name))
        .with_kind(SpanKind::Internal)
        .with_span_id(root.span_id)
        .with_start_time(at(h.create_time))
        .with_attributes([
            KeyValue::new("overture.workflow.id", h.workflow_id.to_string()),
            KeyValue::new("overture.workflow.name", h.workflow_name.clone()),
            KeyValue::new("overture.workflow.version", i64::from(h.workflow_version)),
            KeyValue::new("overture.workflow.status", h.status.as_str()),
        ]);
    if parent.is_none() {
        builder = builder.with_trace_id(trace_id);
    }
    let mut root = builder.start_with_context(&tracing.tracer, &cx);
    if let Some(c) = &h.correlation_id {
        root.set_attribute(KeyValue::new("overture.workflow.correlation_id", c.clone()));
    }
    if !h.status.is_successful() {
        let reason = h.reason_for_incompletion.clone().unwrap_or_else(|| h.status.as_str().to_owned());
        root.set_status(Status::error(reason));
    }
    root.end_with_timestamp(at(h.end_time.max(h.create_time)));
    tracing.remembered.lock().forget(&h.workflow_id);
}

/// When a task began: its first poll (or start), else its scheduling.
fn began_at(t: &TaskState) -> i64 {
    if t.start_time > 0 { t.start_time } else { t.scheduled_time }
}

/// Makes the spans of one workflow, children of its root.
struct Spans<'a> {
    tracing: &'a Tracing,
    cx: &'a Context,
    workflow_id: &'a str,
}

impl Spans<'_> {
    fn emit(
        &self,
        name: Cow<'static, str>,
        start: SystemTime,
        end: SystemTime,
        mut attributes: Vec<KeyValue>,
        failed: Option<String>,
    ) {
        attributes.push(KeyValue::new("overture.workflow.id", self.workflow_id.to_owned()));
        let mut span = self
            .tracing
            .tracer
            .span_builder(name)
            .with_kind(SpanKind::Internal)
            .with_start_time(start)
            .with_attributes(attributes)
            .start_with_context(&self.tracing.tracer, self.cx);
        if let Some(reason) = failed {
            span.set_status(Status::error(reason));
        }
        span.end_with_timestamp(end.max(start));
    }

    /// A span of task `t` from `from` to `to` (epoch millis), with its status if it has one.
    fn task(&self, name: String, t: &TaskState, from: i64, to: i64, status: Option<TaskStatus>) {
        let mut attributes = vec![
            KeyValue::new("overture.task.id", t.task_id.clone()),
            KeyValue::new("overture.task.type", t.task_type.as_str().to_owned()),
            KeyValue::new("overture.task.ref", t.reference_task_name.clone()),
        ];
        if let Some(worker) = &t.worker_id {
            attributes.push(KeyValue::new("overture.worker.id", worker.clone()));
        }
        let failed = status
            .filter(|s| s.is_terminal() && !s.is_successful())
            .map(|s| t.reason_for_incompletion.clone().unwrap_or_else(|| s.as_str().to_owned()));
        if let Some(s) = status {
            attributes.push(KeyValue::new("overture.task.status", s.as_str()));
        }
        self.emit(name.into(), at(from), at(to), attributes, failed);
    }
}

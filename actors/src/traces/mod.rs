//! Traces: OpenTelemetry spans of each workflow, exported over OTLP/HTTP when the node is
//! configured with an endpoint ([`install`]); without one, every function here returns at its
//! first check and nothing is recorded.
//!
//! **A workflow's trace.** Every span of a workflow is a child of its root span, `workflow
//! <name>`, whose span id is derived from the workflow id ([`root_span_of`]), so any node that
//! leads the workflow's partition can parent spans to it without being told. The root span
//! itself is exported when the workflow ends, covering its whole run. The trace it belongs to:
//!
//! - the trace of the start request, when it carried a sampled W3C `traceparent` header: the
//!   root is then a child of the request's server span. That context is remembered in memory,
//!   on the node that started the workflow ([`remember`], at most [`MAX_REMEMBERED`] workflows);
//! - otherwise (and once the context is forgotten: a restart, a new partition leader, more than
//!   [`MAX_REMEMBERED`] traced workflows in flight) a trace whose id is the workflow id's UUID
//!   ([`trace_id_of`]), so an operator finds a workflow's trace by its id. A sub-workflow goes
//!   into its parent's trace, under the parent's root span.
//!
//! **What a trace shows** ([`workflow::committed`], from the events each decision commits, on
//! the leader that committed them): the start, every decision (decide and commit), each worker
//! task's `poll` (from scheduled until a worker took it) and each `update` (from the poll until
//! the worker's report), each system task from its start to its end, and the root.
//!
//! Sampling is decided once per trace: a start request's `sampled` flag, or `sampling_ratio`
//! of the workflow-id traces by their trace id.

mod export;
pub mod workflow;

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::OnceLock;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

pub use export::{Protocol, TraceOptions, install};

/// The W3C Trace Context header.
pub const TRACEPARENT: &str = "traceparent";

/// Workflows whose start request's trace context a node keeps: about 100 bytes each.
pub const MAX_REMEMBERED: usize = 100_000;

/// The installed tracer, and what it knows of the workflows it traces.
struct Tracing {
    tracer: opentelemetry_sdk::trace::SdkTracer,
    /// Of the traces a workflow id makes, the share sampled.
    ratio: f64,
    remembered: Mutex<Remembered>,
}

static TRACING: OnceLock<Tracing> = OnceLock::new();

/// Whether spans are recorded on this node.
pub fn enabled() -> bool {
    TRACING.get().is_some()
}

/// A span to parent others to: its trace, its id, and whether the trace is sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace.
    pub trace_id: TraceId,
    /// The parent span.
    pub span_id: SpanId,
    /// The trace is recorded.
    pub sampled: bool,
}

impl Parent {
    /// A W3C `traceparent` header's value (version 00): `None` if it is not one, or names the
    /// invalid all-zero trace or span.
    pub fn parse(header: &[u8]) -> Option<Parent> {
        let text = std::str::from_utf8(header).ok()?.trim();
        let mut parts = text.split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four parts; a later version may add some, after these.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        fn hex(s: &str, len: usize) -> Option<&str> {
            (s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())).then_some(s)
        }
        let trace_id = TraceId::from_hex(hex(trace, 32)?).ok()?;
        let span_id = SpanId::from_hex(hex(span, 16)?).ok()?;
        let flags = u8::from_str_radix(hex(flags, 2)?, 16).ok()?;
        if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
            return None;
        }
        Some(Parent { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// As a `traceparent` header's value.
    pub fn header(&self) -> String {
        format!("00-{}-{}-{:02x}", self.trace_id, self.span_id, u8::from(self.sampled))
    }

    fn context(&self) -> Context {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        let span = SpanContext::new(self.trace_id, self.span_id, flags, true, TraceState::default());
        Context::new().with_remote_span_context(span)
    }
}

/// The trace a workflow id makes when no start request named one: the id's UUID (so the trace
/// is found by the workflow id), or for an id that is not a UUID the first 16 bytes of its
/// SHA-256.
pub fn trace_id_of(workflow_id: &str) -> TraceId {
    match uuid::Uuid::parse_str(workflow_id) {
        Ok(uuid) if !uuid.is_nil() => TraceId::from_bytes(*uuid.as_bytes()),
        _ => {
            let digest = Sha256::digest(workflow_id.as_bytes());
            let mut bytes = [0; 16];
            bytes.copy_from_slice(&digest[..16]);
            TraceId::from_bytes(bytes)
        }
    }
}

/// The id of a workflow's root span, the same on every node.
pub fn root_span_of(workflow_id: &str) -> SpanId {
    let digest = Sha256::new().chain_update(b"overture workflow root\0").chain_update(workflow_id).finalize();
    let mut bytes = [0; 8];
    bytes.copy_from_slice(&digest[..8]);
    // An all-zero id is invalid; one in 2^64.
    if bytes == [0; 8] {
        bytes[7] = 1;
    }
    SpanId::from_bytes(bytes)
}

tokio::task_local! {
    /// The span of the request being served, when it carried a sampled `traceparent`.
    static REQUEST: Option<Parent>;
}

/// The span of the request being served (inside [`ServerSpan::serve`]), if it is traced.
pub fn current_request() -> Option<Parent> {
    REQUEST.try_with(|p| *p).ok().flatten()
}

/// The span of one HTTP request this node serves, in the trace its `traceparent` names.
pub struct ServerSpan {
    span: opentelemetry_sdk::trace::Span,
    parent: Parent,
}

impl ServerSpan {
    /// A server span for a request with this `traceparent`, named `<method> <route>` as the
    /// HTTP conventions say; `None` when traces are off or the header is absent, malformed or
    /// not sampled.
    pub fn start(traceparent: Option<&[u8]>, method: &str, route: &str) -> Option<ServerSpan> {
        let tracing = TRACING.get()?;
        let client = Parent::parse(traceparent?).filter(|p| p.sampled)?;
        let span = tracing
            .tracer
            .span_builder(format!("{method} {route}"))
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("http.route", route.to_owned()),
            ])
            .start_with_context(&tracing.tracer, &client.context());
        let ctx = span.span_context();
        let parent = Parent { trace_id: ctx.trace_id(), span_id: ctx.span_id(), sampled: true };
        Some(ServerSpan { span, parent })
    }

    /// Serves the request inside this span (a workflow it starts goes into this trace), and
    /// ends the span with the response's status.
    pub async fn serve<F: Future<Output = R>, R>(mut self, request: F, status: impl FnOnce(&R) -> u16) -> R {
        let response = REQUEST.scope(Some(self.parent), request).await;
        let code = status(&response);
        self.span.set_attribute(KeyValue::new("http.response.status_code", i64::from(code)));
        if code >= 500 {
            self.span.set_status(Status::error(format!("HTTP {code}")));
        }
        self.span.end();
        response
    }
}

/// Remembers that workflow `id` runs in `parent`'s trace, under that span.
pub fn remember(workflow_id: &str, parent: Parent) {
    if let Some(tracing) = TRACING.get() {
        tracing.remembered.lock().insert(workflow_id, parent);
    }
}

/// The span a workflow's root is a child of and the trace it is in (`None` for a root of its
/// own trace, [`trace_id_of`] the workflow id), or `None` when traces are off or this trace is
/// not sampled.
fn trace_of(tracing: &Tracing, workflow_id: &str, parent_workflow: Option<&str>) -> Option<(TraceId, Option<SpanId>)> {
    if let Some(p) = tracing.remembered.lock().get(workflow_id) {
        return p.sampled.then_some((p.trace_id, Some(p.span_id)));
    }
    match parent_workflow {
        // A child is in its parent's trace, under the parent's root, sampled as the parent is.
        Some(parent) => trace_of(tracing, parent, None).map(|(trace_id, _)| (trace_id, Some(root_span_of(parent)))),
        None => {
            let trace_id = trace_id_of(workflow_id);
            tracing.sampled(trace_id).then_some((trace_id, None))
        }
    }
}

impl Tracing {
    /// Whether a trace that no request named is sampled: its id hashed, as a number, against
    /// the ratio, so every node decides the same for one trace. (Hashed: a time-ordered UUID's
    /// "random" bits begin with a counter, so its bytes are not evenly spread.)
    fn sampled(&self, trace_id: TraceId) -> bool {
        if self.ratio >= 1.0 {
            return true;
        }
        let digest = Sha256::digest(trace_id.to_bytes());
        let mut high = [0; 8];
        high.copy_from_slice(&digest[..8]);
        ((u64::from_be_bytes(high) >> 11) as f64) < self.ratio * (1u64 << 53) as f64
    }
}

/// Workflow id → the span its trace hangs from, for at most [`MAX_REMEMBERED`] workflows; the
/// oldest are forgotten first.
#[derive(Default)]
struct Remembered {
    by_id: HashMap<String, Parent>,
    order: VecDeque<String>,
}

impl Remembered {
    fn insert(&mut self, workflow_id: &str, parent: Parent) {
        if self.by_id.insert(workflow_id.to_owned(), parent).is_none() {
            self.order.push_back(workflow_id.to_owned());
        }
        while self.by_id.len() > MAX_REMEMBERED {
            let Some(oldest) = self.order.pop_front() else { break };
            self.by_id.remove(&oldest);
        }
        // Ids forgotten (ended workflows) leave their place in `order`; drop those in bulk.
        if self.order.len() > 2 * MAX_REMEMBERED {
            let by_id = &self.by_id;
            self.order.retain(|id| by_id.contains_key(id));
        }
    }

    fn get(&self, workflow_id: &str) -> Option<Parent> {
        self.by_id.get(workflow_id).copied()
    }

    fn forget(&mut self, workflow_id: &str) {
        self.by_id.remove(workflow_id);
    }
}

/// Epoch millis as a time for a span.
fn at(ms: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_headers_parse_only_when_well_formed() {
        let good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let p = Parent::parse(good).expect("parses");
        assert_eq!(p.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(p.span_id.to_string(), "00f067aa0ba902b7");
        assert!(p.sampled);
        assert_eq!(p.header().as_bytes(), good);
        assert!(!Parent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").expect("parses").sampled);
        // A later version may add fields after the four of version 00.
        assert!(Parent::parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra").is_some());
        for bad in [
            &b""[..],
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-订单f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".as_bytes(),
            b"\xff\xfe",
        ] {
            assert_eq!(Parent::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn a_workflow_id_names_its_trace_and_root_span_on_every_node() {
        let id = "0190b4c2-7e1a-7cc3-9a4f-3c2d1e0f5a6b";
        assert_eq!(trace_id_of(id).to_string(), "0190b4c27e1a7cc39a4f3c2d1e0f5a6b");
        assert_eq!(root_span_of(id), root_span_of(id));
        assert_ne!(root_span_of(id), root_span_of("0190b4c2-7e1a-7cc3-9a4f-3c2d1e0f5a6c"));
        // Ids that are not UUIDs (caller-chosen, Chinese) still make valid, distinct traces.
        let (a, b) = (trace_id_of("订单-1"), trace_id_of("订单-2"));
        assert!(a != TraceId::INVALID && a != b);
        assert_ne!(trace_id_of("00000000-0000-0000-0000-000000000000"), TraceId::INVALID);
    }

    fn tracing(ratio: f64) -> Tracing {
        use opentelemetry::trace::TracerProvider as _;
        let tracer = opentelemetry_sdk::trace::SdkTracerProvider::builder().build().tracer("test");
        Tracing { tracer, ratio, remembered: Default::default() }
    }

    #[test]
    fn a_workflow_is_in_its_start_requests_trace_else_its_own_and_a_child_in_its_parents() {
        let t = tracing(1.0);
        let (parent, child) = ("0190b4c2-7e1a-7cc3-9a4f-3c2d1e0f5a6b", "0190b4c2-7e1a-7cc3-9a4f-3c2d1e0f5a6c");
        assert_eq!(trace_of(&t, parent, None), Some((trace_id_of(parent), None)));
        assert_eq!(trace_of(&t, child, Some(parent)), Some((trace_id_of(parent), Some(root_span_of(parent)))));
        let request = Parent::parse(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").expect("parses");
        t.remembered.lock().insert(parent, request);
        assert_eq!(trace_of(&t, parent, None), Some((request.trace_id, Some(request.span_id))));
        assert_eq!(trace_of(&t, child, Some(parent)), Some((request.trace_id, Some(root_span_of(parent)))));
        let unsampled = Parent { sampled: false, ..request };
        t.remembered.lock().insert(parent, unsampled);
        assert_eq!(trace_of(&t, parent, None), None);
        assert_eq!(trace_of(&t, child, Some(parent)), None, "a child follows its parent's sampling");
    }

    #[test]
    fn the_sampling_ratio_keeps_that_share_of_workflow_traces_the_same_on_every_node() {
        let ids: Vec<String> = (0..4000).map(|_| uuid::Uuid::now_v7().to_string()).collect();
        let kept = |ratio: f64| ids.iter().filter(|id| trace_of(&tracing(ratio), id, None).is_some()).count();
        assert_eq!(kept(1.0), ids.len());
        assert_eq!(kept(0.0), 0);
        let quarter = kept(0.25);
        assert!((800..1200).contains(&quarter), "{quarter} of 4000 at 0.25");
        let (a, b) = (tracing(0.25), tracing(0.25));
        assert!(ids.iter().all(|id| trace_of(&a, id, None) == trace_of(&b, id, None)));
    }

    #[test]
    fn remembered_workflows_are_bounded_and_the_oldest_go_first() {
        let parent = Parent { trace_id: trace_id_of("t"), span_id: root_span_of("t"), sampled: true };
        let mut r = Remembered::default();
        for i in 0..MAX_REMEMBERED + 10 {
            r.insert(&format!("wf-{i}"), parent);
        }
        assert_eq!(r.by_id.len(), MAX_REMEMBERED);
        assert!(r.get("wf-9").is_none() && r.get("wf-10").is_some());
        for i in 10..MAX_REMEMBERED {
            r.forget(&format!("wf-{i}"));
        }
        for i in 0..2 * MAX_REMEMBERED {
            r.insert(&format!("again-{i}"), parent);
        }
        assert!(r.order.len() <= 2 * MAX_REMEMBERED + 1, "forgotten ids do not pile up: {}", r.order.len());
        assert_eq!(r.by_id.len(), MAX_REMEMBERED);
    }
}

//! `${...}` parameter expressions, resolved the way Conductor resolves them.
//!
//! - A string that is exactly one `${path}` becomes the typed value at `path` (object, list,
//!   number, boolean or `null`).
//! - Otherwise each `${path}` inside the string is replaced by the value's Java-style `toString`
//!   (`null` → `"null"`, objects `{k=v}`, lists `[a, b]`).
//! - `$${x}` is the literal `${x}`; `${}` is `""`; `${a.${b}}` resolves the inner expression first.
//! - Paths are JSONPath relative to a document whose roots are `workflow` and every task reference
//!   name. Plain paths (`a.b[0]['c']`) are walked directly, without building the document; anything
//!   else (`..`, wildcards, filters) goes through a JSONPath engine on the root object.
//! - A path that leads nowhere resolves to `null`.
//! - `${CPEWF_TASK_ID}` is the id of the task being scheduled.
//!
//! Environment and system-property lookups (`${NETFLIX_ENV}` and friends) are not supported: the
//! core reads no environment, and they resolve to `null`.

use serde_json::{Map, Number, Value};

use crate::state::{Object, TaskState, WorkflowState};

/// What expressions can see.
pub struct Scope<'a> {
    /// The workflow being decided, with its tasks so far.
    pub state: &'a WorkflowState,
    /// The id of the task whose input is being resolved, for `${CPEWF_TASK_ID}`.
    pub task_id: Option<&'a str>,
}

/// Where `${path}` expressions find their values.
pub trait Lookup {
    /// The value at `path`; `None` leaves the expression as written.
    fn lookup(&self, path: &str) -> Option<Value>;
}

impl Lookup for Scope<'_> {
    fn lookup(&self, path: &str) -> Option<Value> {
        eval(path, self)
    }
}

/// Expressions relative to one JSON document (an event's payload): `${a.b}` is `$.a.b`.
pub struct Document<'a>(pub &'a Value);

impl Lookup for Document<'_> {
    fn lookup(&self, path: &str) -> Option<Value> {
        let path = path.trim_start_matches("$.");
        if path.is_empty() {
            return Some(Value::String(String::new()));
        }
        let rest = if path.starts_with('[') { path.to_owned() } else { format!(".{path}") };
        Some(json_path(self.0, &rest))
    }
}

/// Resolves every expression in an input or output parameter map.
pub fn resolve_object<L: Lookup + ?Sized>(params: &Object, scope: &L) -> Object {
    params.iter().map(|(k, v)| (k.clone(), resolve_value(v, scope))).collect()
}

/// Resolves every expression in a value, at any depth.
pub fn resolve_value<L: Lookup + ?Sized>(value: &Value, scope: &L) -> Value {
    match value {
        Value::String(s) => resolve_string(s, scope),
        Value::Object(map) => Value::Object(resolve_object(map, scope)),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve_value(v, scope)).collect()),
        other => other.clone(),
    }
}

/// The contents of each top-level `${...}` in `s` (escaped `$${` excluded), for validation.
pub fn expressions_in(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1] == b'$' && s[i + 1..].starts_with("${") {
            i += 3;
            continue;
        }
        if s[i..].starts_with("${") {
            if let Some(end) = matching_close(s, i + 2) {
                out.push(&s[i + 2..end]);
                i = end + 1;
                continue;
            }
            break;
        }
        i += 1;
    }
    out
}

/// Index of the `}` closing an expression whose body starts at `start`, honouring nested `${`.
fn matching_close(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 1usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() && bytes[i + 1] == b'{' {
            depth += 1;
            i += 2;
            continue;
        }
        if bytes[i] == b'}' {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
        i += 1;
    }
    None
}

fn resolve_string<L: Lookup + ?Sized>(s: &str, scope: &L) -> Value {
    if !s.contains("${") {
        return Value::String(s.to_owned());
    }
    // The whole string is one expression: keep the value's type.
    if s.starts_with("${") && matching_close(s, 2) == Some(s.len() - 1) {
        let inner = interpolate(&s[2..s.len() - 1], scope);
        return scope.lookup(&inner).unwrap_or_else(|| Value::String(s.to_owned()));
    }
    Value::String(interpolate(s, scope))
}

/// Replaces each expression in `s` by its string form.
fn interpolate<L: Lookup + ?Sized>(s: &str, scope: &L) -> String {
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with("$${") {
            // `$${x}` is the literal `${x}`: drop one `$`, copy the rest verbatim.
            i += 1;
            match matching_close(s, i + 2) {
                Some(end) => {
                    out.push_str(&s[i..=end]);
                    i = end + 1;
                }
                None => {
                    out.push_str(&s[i..]);
                    break;
                }
            }
            continue;
        }
        if rest.starts_with("${") {
            match matching_close(s, i + 2) {
                Some(end) => {
                    let inner = interpolate(&s[i + 2..end], scope);
                    match scope.lookup(&inner) {
                        Some(v) => out.push_str(&to_java_string(&v)),
                        None => out.push_str(&s[i..=end]),
                    }
                    i = end + 1;
                }
                None => {
                    out.push_str(rest);
                    break;
                }
            }
            continue;
        }
        let ch = rest.chars().next().unwrap_or_default();
        out.push(ch);
        i += ch.len_utf8().max(1);
    }
    out
}

/// Evaluates one path. `None` means "leave the expression as written" (only for
/// `${CPEWF_TASK_ID}` without a task); a path that leads nowhere is `Some(Null)`.
fn eval(path: &str, scope: &Scope<'_>) -> Option<Value> {
    let path = path.trim_start_matches("$.");
    if path.is_empty() {
        return Some(Value::String(String::new()));
    }
    if path == "CPEWF_TASK_ID" {
        return scope.task_id.map(|id| Value::String(id.to_owned()));
    }
    let root_end = path.find(['.', '[']).unwrap_or(path.len());
    let (root, rest) = path.split_at(root_end);
    if let Some(segments) = simple_segments(rest) {
        return Some(walk_root(root, &segments, scope).unwrap_or(Value::Null));
    }
    // Anything beyond plain steps: build the root object and run real JSONPath on it.
    let Some(doc) = root_document(root, scope) else { return Some(Value::Null) };
    Some(json_path(&doc, rest))
}

enum Segment<'p> {
    Key(&'p str),
    Index(usize),
}

/// Splits `.a.b[0]['c']` into steps, or `None` if the path needs a JSONPath engine.
fn simple_segments(rest: &str) -> Option<Vec<Segment<'_>>> {
    let mut out = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        if let Some(after) = s.strip_prefix('.') {
            if after.starts_with('.') {
                return None;
            }
            let end = after.find(['.', '[']).unwrap_or(after.len());
            let key = &after[..end];
            if key.is_empty() || key == "*" || key.contains(['(', '?', '@']) {
                return None;
            }
            out.push(Segment::Key(key));
            s = &after[end..];
        } else if let Some(after) = s.strip_prefix('[') {
            let end = after.find(']')?;
            let inner = &after[..end];
            if let Ok(n) = inner.trim().parse::<usize>() {
                out.push(Segment::Index(n));
            } else if let Some(key) = quoted(inner.trim()) {
                out.push(Segment::Key(key));
            } else {
                return None;
            }
            s = &after[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

fn quoted(s: &str) -> Option<&str> {
    let q = s.chars().next()?;
    if (q == '\'' || q == '"') && s.len() >= 2 && s.ends_with(q) {
        let inner = &s[1..s.len() - 1];
        (!inner.contains(q)).then_some(inner)
    } else {
        None
    }
}

fn walk<'v>(mut value: &'v Value, segments: &[Segment<'_>]) -> Option<&'v Value> {
    for seg in segments {
        value = match (seg, value) {
            (Segment::Key(k), Value::Object(m)) => m.get(*k)?,
            (Segment::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

fn walk_object(map: &Object, segments: &[Segment<'_>]) -> Option<Value> {
    let (first, rest) = segments.split_first()?;
    let Segment::Key(k) = first else { return None };
    walk(map.get(*k)?, rest).cloned()
}

/// The latest task with this reference name; inside loops, the base name (without `__N`) finds
/// the latest iteration.
fn latest_task<'a>(scope: &Scope<'a>, reference: &str) -> Option<&'a TaskState> {
    scope.state.latest(reference)
}

/// Walks a plain path from a root without building the root's document when it can.
fn walk_root(root: &str, segments: &[Segment<'_>], scope: &Scope<'_>) -> Option<Value> {
    let first = match segments.first() {
        Some(Segment::Key(k)) => Some(*k),
        _ => None,
    };
    if root == "workflow" {
        let h = &scope.state.header;
        match first {
            Some("input") => return walk_object(&h.input, &segments[1..]).or_else(|| whole(&h.input, segments)),
            Some("output") => return walk_object(&h.output, &segments[1..]).or_else(|| whole(&h.output, segments)),
            Some("variables") => {
                return walk_object(&h.variables, &segments[1..]).or_else(|| whole(&h.variables, segments));
            }
            _ => {}
        }
    } else if let Some(task) = latest_task(scope, root) {
        match first {
            Some("input") => return walk_object(&task.input, &segments[1..]).or_else(|| whole(&task.input, segments)),
            Some("output") => {
                // A running DO_WHILE's stored fields (`iteration`) need no derivation.
                if let Some(found) = walk_object(&task.output, &segments[1..]) {
                    return Some(found);
                }
                let output = task_output(scope, task);
                return walk_object(&output, &segments[1..]).or_else(|| whole(&output, segments));
            }
            _ => {}
        }
    }
    let doc = root_document(root, scope)?;
    walk(&doc, segments).cloned()
}

/// A task's output; for a running DO_WHILE, with its iterations' outputs filled in.
fn task_output<'a>(scope: &Scope<'a>, task: &'a TaskState) -> std::borrow::Cow<'a, Object> {
    if task.task_type == "DO_WHILE" && !task.status.is_terminal() {
        std::borrow::Cow::Owned(scope.state.loop_output(task))
    } else {
        std::borrow::Cow::Borrowed(&task.output)
    }
}

/// `input` with no further steps is the whole map.
fn whole(map: &Object, segments: &[Segment<'_>]) -> Option<Value> {
    (segments.len() == 1).then(|| Value::Object(map.clone()))
}

/// The full document for one root: `workflow` or a task reference name.
fn root_document(root: &str, scope: &Scope<'_>) -> Option<Value> {
    if root == "workflow" {
        let h = &scope.state.header;
        let mut m = Map::new();
        m.insert("input".into(), Value::Object(h.input.clone()));
        m.insert("output".into(), Value::Object(h.output.clone()));
        m.insert("status".into(), Value::String(h.status.as_str().into()));
        m.insert("workflowId".into(), Value::String(h.workflow_id.clone()));
        m.insert("parentWorkflowId".into(), opt_str(&h.parent_workflow_id));
        m.insert("parentWorkflowTaskId".into(), opt_str(&h.parent_workflow_task_id));
        m.insert("workflowType".into(), Value::String(h.workflow_name.clone()));
        m.insert("version".into(), Value::Number(h.workflow_version.into()));
        m.insert("correlationId".into(), opt_str(&h.correlation_id));
        m.insert("reasonForIncompletion".into(), opt_str(&h.reason_for_incompletion));
        m.insert("schemaVersion".into(), Value::Number(2.into()));
        m.insert("variables".into(), Value::Object(h.variables.clone()));
        m.insert("createTime".into(), Value::Number(h.create_time.into()));
        m.insert("priority".into(), Value::Number(h.priority.into()));
        return Some(Value::Object(m));
    }
    let t = latest_task(scope, root)?;
    let mut m = Map::new();
    m.insert("input".into(), Value::Object(t.input.clone()));
    m.insert("output".into(), Value::Object(task_output(scope, t).into_owned()));
    m.insert("taskType".into(), Value::String(t.task_type.clone()));
    m.insert("status".into(), Value::String(t.status.as_str().into()));
    m.insert("referenceTaskName".into(), Value::String(t.reference_task_name.clone()));
    m.insert("retryCount".into(), Value::Number(t.retry_count.into()));
    m.insert("correlationId".into(), opt_str(&scope.state.header.correlation_id));
    m.insert("pollCount".into(), Value::Number(t.poll_count.into()));
    m.insert("taskDefName".into(), Value::String(t.task_def_name.clone()));
    m.insert("scheduledTime".into(), Value::Number(t.scheduled_time.into()));
    m.insert("startTime".into(), Value::Number(t.start_time.into()));
    m.insert("endTime".into(), Value::Number(t.end_time.into()));
    m.insert("workflowInstanceId".into(), Value::String(scope.state.header.workflow_id.clone()));
    m.insert("taskId".into(), Value::String(t.task_id.clone()));
    m.insert("reasonForIncompletion".into(), opt_str(&t.reason_for_incompletion));
    m.insert("callbackAfterSeconds".into(), Value::Number(t.callback_after_seconds.into()));
    m.insert("workerId".into(), opt_str(&t.worker_id));
    m.insert("iteration".into(), Value::Number(t.iteration.into()));
    Some(Value::Object(m))
}

fn opt_str(s: &Option<String>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.clone()))
}

/// Runs a JSONPath (relative to `doc`) through the engine. Indefinite paths (deep scan,
/// wildcards, filters, slices, unions) give a list, as Jayway's do; definite ones one value.
fn json_path(doc: &Value, rest: &str) -> Value {
    let query = format!("${rest}");
    let Ok(path) = serde_json_path::JsonPath::parse(&query) else { return Value::Null };
    let nodes = path.query(doc);
    let indefinite =
        rest.contains("..") || rest.contains('*') || rest.contains('?') || rest.contains(':') || rest.contains(',');
    if indefinite {
        Value::Array(nodes.all().into_iter().cloned().collect())
    } else {
        nodes.at_most_one().ok().flatten().cloned().unwrap_or(Value::Null)
    }
}

/// Java's `String.valueOf` of the value Jackson would have produced.
pub fn to_java_string(value: &Value) -> String {
    match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => java_number(n),
        Value::String(s) => s.clone(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(to_java_string).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}={}", to_java_string(v))).collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

fn java_number(n: &Number) -> String {
    if n.is_f64() {
        let f = n.as_f64().unwrap_or_default();
        if f.fract() == 0.0 && f.abs() < 1e7 { format!("{f:.1}") } else { f.to_string() }
    } else {
        n.to_string()
    }
}

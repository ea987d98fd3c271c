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
//! - A path may end in one of Jayway's functions (`${workflow.input.items.length()}`,
//!   `${task.output.prices.sum()}`), applied to what the path before it finds (see
//!   `functions`).
//! - Spaces may appear inside brackets and parentheses (`${workflow.input.items[?(@.price > 1)]}`)
//!   and at the ends of an expression; see [`path_is_well_formed`] for where they may not.
//! - A path that leads nowhere resolves to `null`.
//! - `${CPEWF_TASK_ID}` is the id of the task being scheduled.
//!
//! - `${workflow.env.NAME}` is the environment variable `NAME` (a string; `null` if there is
//!   none), stored with `PUT /api/environment/NAME`; `${workflow.env.NAME.a.b}` reads the
//!   variable's value as JSON. It resolves when the task is scheduled, as in conductor-oss.
//! - `${workflow.secrets.NAME}` is left as written: the stored input keeps the expression, and
//!   the value is put in only when the task is handed to whoever runs it ([`crate::secrets`]).
//!
//! Java system-property lookups (`${NETFLIX_ENV}` and friends) are not supported: they resolve to
//! `null`.

use serde_json::{Map, Number, Value};

use crate::command::Environment;
use crate::payload::{self, Exceeded};
use crate::plan::TaskKind;
use crate::state::{Object, TaskState, WorkflowState};

mod functions;

/// What expressions can see.
pub struct Scope<'a> {
    /// The workflow being decided, with its tasks so far.
    pub state: &'a WorkflowState,
    /// The id of the task whose input is being resolved, for `${CPEWF_TASK_ID}`.
    pub task_id: Option<&'a str>,
    /// Where `${workflow.env.NAME}` is read.
    pub env: &'a dyn Environment,
}

/// Where `${path}` expressions find their values.
pub trait Lookup {
    /// The value at `path`; `Ok(None)` leaves the expression as written. A JSONPath whose
    /// result would be larger than [`payload::MAX_RESOLVED_BYTES`] is an error, found before
    /// anything is copied. `scan` is how many bytes of documents the resolution may still walk
    /// with the JSONPath engine; each run charges the size of the document it runs on.
    fn lookup(&self, path: &str, scan: &mut usize) -> Result<Option<Value>, Exceeded>;
    /// How many bytes one resolution may produce.
    fn budget(&self) -> usize {
        payload::MAX_RESOLVED_BYTES
    }
}

impl Lookup for Scope<'_> {
    fn lookup(&self, path: &str, scan: &mut usize) -> Result<Option<Value>, Exceeded> {
        eval(path, self, scan)
    }
    fn budget(&self) -> usize {
        self.env.max_resolved_bytes()
    }
}

/// Expressions relative to one JSON document (an event's payload): `${a.b}` is `$.a.b`.
pub struct Document<'a>(pub &'a Value);

impl Lookup for Document<'_> {
    fn lookup(&self, path: &str, scan: &mut usize) -> Result<Option<Value>, Exceeded> {
        let path = trim_path(path).trim_start_matches("$.");
        if path.is_empty() {
            return Ok(Some(Value::String(String::new())));
        }
        let rest = if path.starts_with('[') { path.to_owned() } else { format!(".{path}") };
        if let Some((prefix, call)) = functions::split_call(&rest) {
            let found;
            let model = if prefix.is_empty() {
                self.0
            } else {
                found = json_path(self.0, prefix, scan)?;
                &found
            };
            return functions::apply(call, model, scan).map(Some);
        }
        json_path(self.0, &rest, scan).map(Some)
    }
}

/// Resolves every expression in an input or output parameter map. The result may not grow
/// past [`payload::MAX_RESOLVED_BYTES`] or nest deeper than [`payload::MAX_DEPTH`]: resolving
/// stops as soon as it would, with the limit it hit.
pub fn resolve_object<L: Lookup + ?Sized>(params: &Object, scope: &L) -> Result<Object, Exceeded> {
    Resolver::new(scope).object(params, 1)
}

/// Resolves every expression in a value, at any depth, within the same limits.
pub fn resolve_value<L: Lookup + ?Sized>(value: &Value, scope: &L) -> Result<Value, Exceeded> {
    Resolver::new(scope).value(value, 0)
}

/// One resolution: what it may still produce.
struct Resolver<'s, L: ?Sized> {
    scope: &'s L,
    /// Bytes the result may still grow by.
    left: usize,
    /// What it could grow by at the start, for the error.
    budget: usize,
    /// Bytes of documents JSONPath may still walk.
    scan: usize,
}

impl<'s, L: Lookup + ?Sized> Resolver<'s, L> {
    fn new(scope: &'s L) -> Self {
        let budget = scope.budget();
        Resolver { scope, left: budget, budget, scan: payload::MAX_SCANNED_BYTES }
    }

    fn charge(&mut self, bytes: usize) -> Result<(), Exceeded> {
        self.left = self.left.checked_sub(bytes).ok_or(Exceeded::Size(self.budget))?;
        Ok(())
    }

    /// Accounts for a looked-up value placed at `level`.
    fn charge_value(&mut self, value: &Value, level: usize) -> Result<(), Exceeded> {
        if level + payload::depth(value, payload::MAX_DEPTH) > payload::MAX_DEPTH {
            return Err(Exceeded::Depth(payload::MAX_DEPTH));
        }
        let size = payload::approx_size(value, self.left);
        self.charge(size)
    }

    /// `level` is the depth of the map itself.
    fn object(&mut self, params: &Object, level: usize) -> Result<Object, Exceeded> {
        if level > payload::MAX_DEPTH {
            return Err(Exceeded::Depth(payload::MAX_DEPTH));
        }
        let mut out = Object::new();
        for (k, v) in params {
            self.charge(k.len() + 4)?;
            out.insert(k.clone(), self.value(v, level)?);
        }
        Ok(out)
    }

    /// `level` is the depth of the container `value` sits in.
    fn value(&mut self, value: &Value, level: usize) -> Result<Value, Exceeded> {
        match value {
            Value::String(s) => self.string(s, level),
            Value::Object(map) => Ok(Value::Object(self.object(map, level + 1)?)),
            Value::Array(items) => {
                if level + 1 > payload::MAX_DEPTH {
                    return Err(Exceeded::Depth(payload::MAX_DEPTH));
                }
                self.charge(2)?;
                items.iter().map(|v| self.value(v, level + 1)).collect::<Result<_, _>>().map(Value::Array)
            }
            other => {
                self.charge(8)?;
                Ok(other.clone())
            }
        }
    }

    fn string(&mut self, s: &str, level: usize) -> Result<Value, Exceeded> {
        if !s.contains("${") {
            self.charge(s.len() + 2)?;
            return Ok(Value::String(s.to_owned()));
        }
        // The whole string is one expression: keep the value's type.
        if s.starts_with("${") && matching_close(s, 2) == Some(s.len() - 1) {
            let inner = self.interpolate(&s[2..s.len() - 1])?;
            let value = self.scope.lookup(&inner, &mut self.scan)?.unwrap_or_else(|| Value::String(s.to_owned()));
            self.charge_value(&value, level)?;
            return Ok(value);
        }
        Ok(Value::String(self.interpolate(s)?))
    }
}

/// How deeply `${...}` may nest inside one another (`${a.${b}}` is two). A deeper expression is
/// left as written, so resolving a string costs at most this many passes over it.
pub const MAX_NESTING: usize = 16;

/// The contents of each top-level `${...}` in `s` (escaped `$${` excluded), for validation.
///
/// The scan works on bytes: `$`, `{` and `}` are ASCII, and no byte of a multi-byte UTF-8
/// character equals an ASCII byte, so every index it slices at is a character boundary.
pub fn expressions_in(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"$${") {
            i += 3;
            continue;
        }
        if bytes[i..].starts_with(b"${") {
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

/// Index of the `}` closing an expression whose body starts at `start`, honouring nested `${`;
/// `None` if it is not closed or nests deeper than [`MAX_NESTING`].
fn matching_close(s: &str, start: usize) -> Option<usize> {
    let bytes = s.as_bytes();
    let mut depth = 1usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i..].starts_with(b"${") {
            depth += 1;
            if depth > MAX_NESTING {
                return None;
            }
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

impl<L: Lookup + ?Sized> Resolver<'_, L> {
    /// Replaces each expression in `s` by its string form.
    fn interpolate(&mut self, s: &str) -> Result<String, Exceeded> {
        let mut out = String::with_capacity(s.len());
        self.charge(s.len())?;
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
                        let inner = self.interpolate(&s[i + 2..end])?;
                        match self.scope.lookup(&inner, &mut self.scan)? {
                            Some(v) => {
                                self.charge(payload::approx_size(&v, self.left))?;
                                out.push_str(&to_java_string(&v));
                            }
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
            // Copy the first character and the text up to the next `$` (ASCII, so a character
            // boundary) in one go.
            let first = rest.chars().next().map_or(1, char::len_utf8);
            let run = rest[first..].find('$').map_or(rest.len(), |n| n + first);
            out.push_str(&rest[..run]);
            i += run;
        }
        Ok(out)
    }
}

/// Evaluates one path. `Ok(None)` means "leave the expression as written" (only for
/// `${CPEWF_TASK_ID}` without a task); a path that leads nowhere is `Null`.
fn eval(path: &str, scope: &Scope<'_>, scan: &mut usize) -> Result<Option<Value>, Exceeded> {
    let path = trim_path(path).trim_start_matches("$.");
    if path.is_empty() {
        return Ok(Some(Value::String(String::new())));
    }
    if path == "CPEWF_TASK_ID" {
        return Ok(scope.task_id.map(|id| Value::String(id.to_owned())));
    }
    let root_end = path.find(['.', '[']).unwrap_or(path.len());
    let (root, rest) = path.split_at(root_end);
    if root == "workflow" {
        if rest == ".secrets" || rest.starts_with(".secrets.") {
            return Ok(None);
        }
        if let Some(var) = rest.strip_prefix(".env.") {
            return env_var(var, scope, scan).map(Some);
        }
    }
    if let Some((prefix, call)) = functions::split_call(rest) {
        let model = eval_from_root(root, prefix, scope, scan)?;
        return functions::apply(call, &model, scan).map(Some);
    }
    eval_from_root(root, rest, scope, scan).map(Some)
}

/// The value at `rest` (`.a.b[0]`, or any JSONPath) below `root` (`workflow` or a task
/// reference name); `Null` if it leads nowhere.
fn eval_from_root(root: &str, rest: &str, scope: &Scope<'_>, scan: &mut usize) -> Result<Value, Exceeded> {
    if let Some(segments) = simple_segments(rest) {
        return Ok(walk_root(root, &segments, scope).unwrap_or(Value::Null));
    }
    // Anything beyond plain steps: build the root object and run real JSONPath on it.
    let Some(doc) = root_document(root, scope) else { return Ok(Value::Null) };
    json_path(&doc, rest, scan)
}

/// `${workflow.env.NAME[.path]}`: the variable as text, or with a path, its value read as JSON
/// and walked; `null` if there is none or the path leads nowhere.
fn env_var(var: &str, scope: &Scope<'_>, scan: &mut usize) -> Result<Value, Exceeded> {
    let name_end = var.find(['.', '[']).unwrap_or(var.len());
    let (name, rest) = var.split_at(name_end);
    let Some(text) = scope.env.env_var(name) else { return Ok(Value::Null) };
    if rest.is_empty() {
        return Ok(Value::String(text));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(doc) => json_path(&doc, rest, scan),
        Err(_) => Ok(Value::Null),
    }
}

/// A path without the blanks around it, as Jayway reads it (it trims every character up to
/// and including the space).
pub fn trim_path(path: &str) -> &str {
    path.trim_matches(|c: char| c <= ' ')
}

/// Whether Conductor would compile `path` (the inside of a `${...}`) as a JSONPath, as far as
/// spaces go: Jayway allows them inside brackets and parentheses (filters, quoted keys,
/// function arguments) and at the end, and refuses one between the steps of a dotted path or
/// at the start of a path that does not start with `$`. Conductor refuses a definition with
/// such a path (`key: k input parameter value: ... is not valid`).
///
/// One pass over the bytes; a space is ASCII, so no character is split.
pub fn path_is_well_formed(path: &str) -> bool {
    let path = path.trim_end_matches(|c: char| c <= ' ');
    let path = if path.trim_start().starts_with(['$', '@']) { path.trim_start() } else { path };
    !top_level(path).any(|(_, b)| b == b' ')
}

/// The bytes of `path` outside brackets, parentheses and the quotes inside them, with their
/// indexes: where a path's dotted steps and blanks are read.
fn top_level(path: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let (mut depth, mut quote) = (0usize, None::<u8>);
    path.bytes().enumerate().filter(move |&(_, b)| {
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            return false;
        }
        match b {
            b'\'' | b'"' if depth > 0 => {
                quote = Some(b);
                false
            }
            b'[' | b'(' => {
                depth += 1;
                false
            }
            b']' | b')' => {
                depth = depth.saturating_sub(1);
                false
            }
            _ => depth == 0,
        }
    })
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
    if task.kind() == TaskKind::DoWhile && !task.status.is_terminal() {
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
        m.insert("workflowId".into(), Value::String(h.workflow_id.to_string()));
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
    m.insert("taskType".into(), Value::String(t.task_type.to_string()));
    m.insert("status".into(), Value::String(t.status.as_str().into()));
    m.insert("referenceTaskName".into(), Value::String(t.reference_task_name.clone()));
    m.insert("retryCount".into(), Value::Number(t.retry_count.into()));
    m.insert("correlationId".into(), opt_str(&scope.state.header.correlation_id));
    m.insert("pollCount".into(), Value::Number(t.poll_count.into()));
    m.insert("taskDefName".into(), Value::String(t.task_def_name.clone()));
    m.insert("scheduledTime".into(), Value::Number(t.scheduled_time.into()));
    m.insert("startTime".into(), Value::Number(t.start_time.into()));
    m.insert("endTime".into(), Value::Number(t.end_time.into()));
    m.insert("workflowInstanceId".into(), Value::String(scope.state.header.workflow_id.to_string()));
    m.insert("taskId".into(), Value::String(t.task_id.clone()));
    m.insert("reasonForIncompletion".into(), opt_str(&t.reason_for_incompletion));
    m.insert("callbackAfterSeconds".into(), Value::Number(t.callback_after_seconds.into()));
    m.insert("workerId".into(), opt_str(&t.worker_id));
    m.insert("iteration".into(), Value::Number(t.iteration.into()));
    Some(Value::Object(m))
}

fn opt_str<S: AsRef<str>>(s: &Option<S>) -> Value {
    s.as_ref().map_or(Value::Null, |s| Value::String(s.as_ref().to_owned()))
}

/// The longest JSONPath handed to the engine, in bytes.
const MAX_JSONPATH_LEN: usize = 4096;
/// How deeply a JSONPath's brackets and filters may nest.
const MAX_JSONPATH_NESTING: usize = 8;
/// How many descendant segments (`..`) a JSONPath may have: each one inside a filter multiplies
/// the work by the size of the document.
const MAX_JSONPATH_DESCENDANTS: usize = 2;

/// Whether a JSONPath is cheap enough to run: short, shallow, and with few descendant scans.
/// The engine parses by recursive descent and evaluates filters per node, so a path of deeply
/// nested filters could exhaust the stack and one of nested deep scans could run for hours.
/// Such a path resolves to `null`.
fn json_path_is_bounded(rest: &str) -> bool {
    if rest.len() > MAX_JSONPATH_LEN || rest.matches("..").count() > MAX_JSONPATH_DESCENDANTS {
        return false;
    }
    let mut level = 0usize;
    for b in rest.bytes() {
        match b {
            b'[' | b'(' => {
                level += 1;
                if level > MAX_JSONPATH_NESTING {
                    return false;
                }
            }
            b']' | b')' => level = level.saturating_sub(1),
            _ => {}
        }
    }
    true
}

/// Runs a JSONPath (relative to `doc`) through the engine. Indefinite paths (deep scan,
/// wildcards, filters, slices, unions) give a list, as Jayway's do; definite ones one value.
/// The nodes found are measured before they are copied: a deep scan of a large document lists
/// every subtree, which together can be far larger than the document.
fn json_path(doc: &Value, rest: &str, scan: &mut usize) -> Result<Value, Exceeded> {
    if !json_path_is_bounded(rest) {
        return Ok(Value::Null);
    }
    let walked = payload::approx_size(doc, *scan);
    *scan = scan.checked_sub(walked).ok_or(Exceeded::Work(payload::MAX_SCANNED_BYTES))?;
    let query = format!("${rest}");
    let Ok(path) = serde_json_path::JsonPath::parse(&query) else { return Ok(Value::Null) };
    let nodes = path.query(doc);
    let indefinite =
        rest.contains("..") || rest.contains('*') || rest.contains('?') || rest.contains(':') || rest.contains(',');
    if indefinite {
        let found = nodes.all();
        let mut size = 0usize;
        for node in &found {
            size += payload::approx_size(node, payload::MAX_RESOLVED_BYTES);
            if size > payload::MAX_RESOLVED_BYTES {
                return Err(Exceeded::Size(payload::MAX_RESOLVED_BYTES));
            }
        }
        Ok(Value::Array(found.into_iter().cloned().collect()))
    } else {
        Ok(nodes.at_most_one().ok().flatten().cloned().unwrap_or(Value::Null))
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

/// Java's `Double.toString`: plain decimals from 10^-3 up to 10^7, scientific notation with at
/// least one decimal digit outside that (`1.0E308`, `1.5E-7`), never hundreds of digits.
fn java_number(n: &Number) -> String {
    if !n.is_f64() {
        return n.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-3..1e7).contains(&magnitude) {
        return if f.fract() == 0.0 { format!("{f:.1}") } else { f.to_string() };
    }
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let mantissa = if mantissa.contains('.') { mantissa.to_owned() } else { format!("{mantissa}.0") };
    format!("{mantissa}E{exponent}")
}

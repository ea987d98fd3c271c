//! Conductor's search, decided without storage: the query syntax, free text, sort order and the
//! searchable fields of workflows and tasks.
//!
//! The syntax is what Conductor's index accepts and its clients send: conditions such as
//! `workflowType = 'order'`, `status IN (FAILED, TIMED_OUT)`, `startTime > 1700000000000` (epoch
//! millis or an ISO-8601 time), joined by `AND`, and `OR` between such groups (`AND` binds
//! tighter; parentheses only enclose `IN` lists). Values are quoted with `'` or `"`, or bare.
//! Free text is a list of words that must all appear, ignoring case, in the document's ids,
//! names, status, reason or JSON input and output; `*` alone (or nothing) matches everything.
//! Sort is `field:ASC` or `field:DESC`, several joined by `|`.
//!
//! The storage side picks candidates from its index rows (see [`Query::equals`] and
//! [`Query::range`]) and this module decides which of them match and in what order.

use std::cmp::Ordering;

use crate::state::{TaskState, WorkflowHeader};

/// How a field compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Compared as text, exactly (ids, names, statuses).
    Text,
    /// Compared as a number; times are epoch millis.
    Number,
}

/// The fields a search may name, with their kinds.
pub type Fields = &'static [(&'static str, Kind)];

/// Fields of a workflow search (`WorkflowSummary`).
pub const WORKFLOW_FIELDS: Fields = &[
    ("workflowId", Kind::Text),
    ("workflowType", Kind::Text),
    ("version", Kind::Number),
    ("status", Kind::Text),
    ("correlationId", Kind::Text),
    ("startTime", Kind::Number),
    ("updateTime", Kind::Number),
    ("endTime", Kind::Number),
    ("executionTime", Kind::Number),
    ("reasonForIncompletion", Kind::Text),
    ("priority", Kind::Number),
    ("createdBy", Kind::Text),
    ("idempotencyKey", Kind::Text),
    ("parentWorkflowId", Kind::Text),
];

/// Fields of a task search (`TaskSummary`, plus the reference name and worker).
pub const TASK_FIELDS: Fields = &[
    ("taskId", Kind::Text),
    ("taskType", Kind::Text),
    ("taskDefName", Kind::Text),
    ("referenceTaskName", Kind::Text),
    ("status", Kind::Text),
    ("workflowId", Kind::Text),
    ("workflowType", Kind::Text),
    ("correlationId", Kind::Text),
    ("workerId", Kind::Text),
    ("domain", Kind::Text),
    ("reasonForIncompletion", Kind::Text),
    ("scheduledTime", Kind::Number),
    ("startTime", Kind::Number),
    ("updateTime", Kind::Number),
    ("endTime", Kind::Number),
    ("executionTime", Kind::Number),
    ("queueWaitTime", Kind::Number),
    ("retryCount", Kind::Number),
    ("workflowPriority", Kind::Number),
];

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `=`, or `IN (...)` with several values.
    Eq,
    /// `!=` or `<>`.
    Ne,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
}

/// A value in a query, already in the kind of its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A text field's value, as written (without its quotes).
    Text(String),
    /// A number field's value; an ISO-8601 time is read as epoch millis.
    Number(i64),
}

/// `field op value`, or `field IN (values)` (an [`Op::Eq`] with several values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    /// The field's name, as the search declares it (`startTime`, `status`, ...).
    pub field: &'static str,
    /// How the field compares with the values.
    pub op: Op,
    /// One value, or several for `IN`.
    pub values: Vec<Literal>,
}

/// A field's value in one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue<'a> {
    /// A text field's value (ids, names, statuses).
    Text(&'a str),
    /// A number field's value; times are epoch millis.
    Number(i64),
    /// The document has no such value (no correlation id, say): only `!=` matches it.
    Missing,
}

/// Something a query can be matched against.
pub trait Searchable {
    /// The value of one of the fields the search declares.
    fn field(&self, name: &str) -> FieldValue<'_>;
    /// Whether a lower-case word appears in the document's text.
    fn contains_text(&self, word: &str) -> bool;
}

/// A parsed query and free text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Groups joined by `OR`; the conditions of a group are joined by `AND`. One empty group
    /// matches everything.
    pub alternatives: Vec<Vec<Condition>>,
    /// Free-text words, lower case.
    pub words: Vec<String>,
}

impl Query {
    /// Parses `query` and `free_text` against `fields`; the error says what is wrong, for a 400.
    pub fn parse(query: &str, free_text: &str, fields: Fields) -> Result<Query, String> {
        let tokens = tokenize(query)?;
        let mut parser = Parser { tokens: &tokens, at: 0, fields };
        let alternatives = parser.alternatives()?;
        let words = free_text
            .split_whitespace()
            .map(|w| w.trim_matches(|c| c == '*' || c == '"' || c == '\'').to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        Ok(Query { alternatives, words })
    }

    /// Whether a document matches.
    pub fn matches(&self, doc: &impl Searchable) -> bool {
        self.words.iter().all(|w| doc.contains_text(w))
            && self.alternatives.iter().any(|group| group.iter().all(|c| condition_holds(c, doc)))
    }

    /// The values one text field must equal (`=` or `IN`), when every match must: a set of
    /// candidates to look up by index.
    pub fn equals(&self, field: &str) -> Option<Vec<&str>> {
        let [group] = self.alternatives.as_slice() else { return None };
        group.iter().find(|c| c.field == field && c.op == Op::Eq).map(|c| {
            c.values
                .iter()
                .filter_map(|v| match v {
                    Literal::Text(t) => Some(t.as_str()),
                    Literal::Number(_) => None,
                })
                .collect()
        })
    }

    /// The inclusive range every match's number field lies in.
    pub fn range(&self, field: &str) -> (i64, i64) {
        let (mut lo, mut hi) = (i64::MIN, i64::MAX);
        let [group] = self.alternatives.as_slice() else { return (lo, hi) };
        for c in group.iter().filter(|c| c.field == field) {
            let numbers = c.values.iter().filter_map(|v| if let Literal::Number(n) = v { Some(*n) } else { None });
            match c.op {
                Op::Gt => numbers.for_each(|n| lo = lo.max(n.saturating_add(1))),
                Op::Ge => numbers.for_each(|n| lo = lo.max(n)),
                Op::Lt => numbers.for_each(|n| hi = hi.min(n.saturating_sub(1))),
                Op::Le => numbers.for_each(|n| hi = hi.min(n)),
                Op::Eq => {
                    let all: Vec<i64> = numbers.collect();
                    if let (Some(min), Some(max)) = (all.iter().min(), all.iter().max()) {
                        lo = lo.max(*min);
                        hi = hi.min(*max);
                    }
                }
                Op::Ne => {}
            }
        }
        (lo, hi)
    }

    /// A query of conditions that must all hold.
    pub fn all_of(conditions: Vec<Condition>) -> Query {
        Query { alternatives: vec![conditions], words: Vec::new() }
    }

    /// Whether an index answers this query alone: an index keyed by the values
    /// [`Query::equals`] gives for `eq_fields`, read over [`Query::range`] of `range_field`.
    /// True when there is no free text and every condition is one of those.
    pub fn answered_by(&self, eq_fields: &[&str], range_field: &str) -> bool {
        let [group] = self.alternatives.as_slice() else { return false };
        self.words.is_empty()
            && group.iter().enumerate().all(|(i, c)| {
                let first_equality = c.op == Op::Eq
                    && !group[..i].iter().any(|earlier| earlier.field == c.field && earlier.op == Op::Eq);
                (eq_fields.contains(&c.field) && first_equality)
                    || (c.field == range_field
                        && (matches!(c.op, Op::Gt | Op::Ge | Op::Lt | Op::Le)
                            || (c.op == Op::Eq && c.values.len() == 1)))
            })
    }
}

fn condition_holds(c: &Condition, doc: &impl Searchable) -> bool {
    let value = doc.field(c.field);
    let cmp = |lit: &Literal| -> Option<Ordering> {
        match (&value, lit) {
            (FieldValue::Text(a), Literal::Text(b)) => Some((*a).cmp(b.as_str())),
            (FieldValue::Number(a), Literal::Number(b)) => Some(a.cmp(b)),
            _ => None,
        }
    };
    match c.op {
        Op::Eq => c.values.iter().any(|v| cmp(v) == Some(Ordering::Equal)),
        Op::Ne => c.values.iter().all(|v| cmp(v) != Some(Ordering::Equal)),
        Op::Gt => c.values.iter().all(|v| cmp(v) == Some(Ordering::Greater)),
        Op::Ge => c.values.iter().all(|v| matches!(cmp(v), Some(Ordering::Greater | Ordering::Equal))),
        Op::Lt => c.values.iter().all(|v| cmp(v) == Some(Ordering::Less)),
        Op::Le => c.values.iter().all(|v| matches!(cmp(v), Some(Ordering::Less | Ordering::Equal))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Op(Op),
    Open,
    Close,
    Comma,
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            ',' => out.push(Token::Comma),
            '=' => {
                chars.next_if(|(_, c)| *c == '=');
                out.push(Token::Op(Op::Eq));
            }
            '!' if chars.next_if(|(_, c)| *c == '=').is_some() => out.push(Token::Op(Op::Ne)),
            '<' if chars.next_if(|(_, c)| *c == '>').is_some() => out.push(Token::Op(Op::Ne)),
            '<' => out.push(Token::Op(if chars.next_if(|(_, c)| *c == '=').is_some() { Op::Le } else { Op::Lt })),
            '>' => out.push(Token::Op(if chars.next_if(|(_, c)| *c == '=').is_some() { Op::Ge } else { Op::Gt })),
            '\'' | '"' => {
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(format!("Unterminated quoted value starting at position {at} of the query"));
                        }
                        Some((_, '\\')) => match chars.next() {
                            Some((_, escaped)) => value.push(escaped),
                            None => return Err("The query ends with a lone backslash".into()),
                        },
                        Some((_, q)) if q == c => break,
                        Some((_, other)) => value.push(other),
                    }
                }
                out.push(Token::Quoted(value));
            }
            _ => {
                let mut word = c.to_string();
                while let Some((_, next)) = chars.next_if(|(_, n)| !n.is_whitespace() && !"()=,!<>'\"".contains(*n)) {
                    word.push(next);
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    fields: Fields,
}

impl Parser<'_> {
    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if let Some(Token::Word(w)) = self.tokens.get(self.at)
            && w.eq_ignore_ascii_case(word)
        {
            self.at += 1;
            return true;
        }
        false
    }

    fn alternatives(&mut self) -> Result<Vec<Vec<Condition>>, String> {
        let mut groups = vec![Vec::new()];
        if self.tokens.is_empty() {
            return Ok(groups);
        }
        loop {
            let condition = self.condition()?;
            if let Some(group) = groups.last_mut() {
                group.push(condition);
            }
            if self.at >= self.tokens.len() {
                return Ok(groups);
            }
            if self.keyword("OR") {
                groups.push(Vec::new());
            } else if !self.keyword("AND") {
                return Err(format!("Expected AND or OR after a condition, found {}", self.describe()));
            }
        }
    }

    fn describe(&self) -> String {
        match self.tokens.get(self.at) {
            None => "the end of the query".into(),
            Some(Token::Word(w)) => format!("'{w}'"),
            Some(Token::Quoted(q)) => format!("the quoted value '{q}'"),
            Some(Token::Op(_)) => "an operator".into(),
            Some(Token::Open) => "'('".into(),
            Some(Token::Close) => "')'".into(),
            Some(Token::Comma) => "','".into(),
        }
    }

    fn condition(&mut self) -> Result<Condition, String> {
        let name = match self.next() {
            Some(Token::Word(w)) => w.clone(),
            _ => {
                self.at -= 1;
                return Err(format!("Expected a field name, found {}", self.describe()));
            }
        };
        let Some(&(field, kind)) = self.fields.iter().find(|(f, _)| *f == name) else {
            let known: Vec<&str> = self.fields.iter().map(|(f, _)| *f).collect();
            return Err(format!("Unknown search field '{name}'; the fields are {}", known.join(", ")));
        };
        if self.keyword("IN") {
            if self.next() != Some(&Token::Open) {
                self.at -= 1;
                return Err(format!("Expected '(' after {field} IN, found {}", self.describe()));
            }
            let mut values = Vec::new();
            loop {
                values.push(self.value(field, kind)?);
                match self.next() {
                    Some(Token::Comma) => {}
                    Some(Token::Close) => break,
                    _ => {
                        self.at -= 1;
                        return Err(format!(
                            "Expected ',' or ')' in the IN list of {field}, found {}",
                            self.describe()
                        ));
                    }
                }
            }
            return Ok(Condition { field, op: Op::Eq, values });
        }
        let op = match self.next() {
            Some(Token::Op(op)) => *op,
            _ => {
                self.at -= 1;
                return Err(format!(
                    "Expected an operator (=, !=, >, >=, <, <=, IN) after {field}, found {}",
                    self.describe()
                ));
            }
        };
        let value = self.value(field, kind)?;
        Ok(Condition { field, op, values: vec![value] })
    }

    fn value(&mut self, field: &str, kind: Kind) -> Result<Literal, String> {
        let text = match self.next() {
            Some(Token::Word(w) | Token::Quoted(w)) => w.clone(),
            _ => {
                self.at -= 1;
                return Err(format!("Expected a value for {field}, found {}", self.describe()));
            }
        };
        match kind {
            Kind::Text => Ok(Literal::Text(text)),
            Kind::Number => {
                text.parse::<i64>().ok().or_else(|| crate::time::parse_iso(&text)).map(Literal::Number).ok_or_else(
                    || format!("{field} needs a number (times: epoch millis or an ISO-8601 time), not '{text}'"),
                )
            }
        }
    }
}

/// A sort order: fields, each ascending or descending, then the document id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sort {
    /// Field and whether it sorts descending.
    pub keys: Vec<(&'static str, bool)>,
}

impl Sort {
    /// Parses `field:ASC|field:DESC` (the direction defaults to ascending). Empty is no order.
    pub fn parse(text: &str, fields: Fields) -> Result<Sort, String> {
        let mut keys = Vec::new();
        for part in text.split(['|', ',']).map(str::trim).filter(|p| !p.is_empty()) {
            let (name, direction) = part.split_once(':').unwrap_or((part, "ASC"));
            let Some(&(field, _)) = fields.iter().find(|(f, _)| *f == name.trim()) else {
                return Err(format!("Cannot sort by unknown field '{}'", name.trim()));
            };
            let descending = match direction.trim().to_ascii_uppercase().as_str() {
                "ASC" => false,
                "DESC" => true,
                other => return Err(format!("Sort direction must be ASC or DESC, not '{other}'")),
            };
            keys.push((field, descending));
        }
        Ok(Sort { keys })
    }

    /// Whether this order is by `field` alone (or nothing), and if so whether descending.
    pub fn by_only(&self, field: &str) -> Option<bool> {
        match self.keys.as_slice() {
            [] => Some(false),
            [(f, desc)] if *f == field => Some(*desc),
            _ => None,
        }
    }

    /// Compares two documents.
    pub fn compare(&self, a: &impl Searchable, b: &impl Searchable) -> Ordering {
        for (field, descending) in &self.keys {
            let order = compare_values(&a.field(field), &b.field(field));
            let order = if *descending { order.reverse() } else { order };
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }
}

/// Missing values sort first, as nulls do in Conductor's index.
fn compare_values(a: &FieldValue, b: &FieldValue) -> Ordering {
    match (a, b) {
        (FieldValue::Text(x), FieldValue::Text(y)) => x.cmp(y),
        (FieldValue::Number(x), FieldValue::Number(y)) => x.cmp(y),
        (FieldValue::Missing, FieldValue::Missing) => Ordering::Equal,
        (FieldValue::Missing, _) => Ordering::Less,
        (_, FieldValue::Missing) => Ordering::Greater,
        (FieldValue::Number(_), FieldValue::Text(_)) => Ordering::Less,
        (FieldValue::Text(_), FieldValue::Number(_)) => Ordering::Greater,
    }
}

fn text(value: Option<&str>) -> FieldValue<'_> {
    value.map_or(FieldValue::Missing, FieldValue::Text)
}

fn contains_ignoring_case(haystack: &str, lower_word: &str) -> bool {
    haystack.to_lowercase().contains(lower_word)
}

impl Searchable for WorkflowHeader {
    fn field(&self, name: &str) -> FieldValue<'_> {
        match name {
            "workflowId" => FieldValue::Text(&self.workflow_id),
            "workflowType" => FieldValue::Text(&self.workflow_name),
            "version" => FieldValue::Number(i64::from(self.workflow_version)),
            "status" => FieldValue::Text(self.status.as_str()),
            "correlationId" => text(self.correlation_id.as_deref()),
            "startTime" => FieldValue::Number(self.create_time),
            "updateTime" => FieldValue::Number(self.update_time),
            "endTime" => FieldValue::Number(self.end_time),
            "executionTime" => FieldValue::Number(execution_time(self.create_time, self.end_time)),
            "reasonForIncompletion" => text(self.reason_for_incompletion.as_deref()),
            "priority" => FieldValue::Number(i64::from(self.priority)),
            "createdBy" => text(self.created_by.as_deref()),
            "idempotencyKey" => text(self.idempotency_key.as_deref()),
            "parentWorkflowId" => text(self.parent_workflow_id.as_deref()),
            _ => FieldValue::Missing,
        }
    }

    fn contains_text(&self, word: &str) -> bool {
        [
            Some(self.workflow_id.as_str()),
            Some(self.workflow_name.as_str()),
            Some(self.status.as_str()),
            self.correlation_id.as_deref(),
            self.reason_for_incompletion.as_deref(),
            self.parent_workflow_id.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|t| contains_ignoring_case(t, word))
            || contains_ignoring_case(&serde_json::to_string(&self.input).unwrap_or_default(), word)
            || contains_ignoring_case(&serde_json::to_string(&self.output).unwrap_or_default(), word)
    }
}

/// End minus start, or 0 while running.
pub fn execution_time(start: i64, end: i64) -> i64 {
    if end > 0 && start > 0 { end - start } else { 0 }
}

/// A task with the workflow it belongs to, as a task search sees it.
pub struct TaskDoc<'a> {
    /// The header of the workflow the task belongs to.
    pub workflow: &'a WorkflowHeader,
    /// The task.
    pub task: &'a TaskState,
}

impl<'a> TaskDoc<'a> {
    /// Milliseconds from scheduled to started (0 until started).
    pub fn queue_wait_time(&self) -> i64 {
        if self.task.start_time > 0 { self.task.start_time - self.task.scheduled_time } else { 0 }
    }

    /// [`Searchable::field`], borrowing from the task and workflow rather than from `self`.
    pub fn value(&self, name: &str) -> FieldValue<'a> {
        let t = self.task;
        match name {
            "taskId" => FieldValue::Text(&t.task_id),
            "taskType" => FieldValue::Text(&t.task_type),
            "taskDefName" => FieldValue::Text(&t.task_def_name),
            "referenceTaskName" => FieldValue::Text(&t.reference_task_name),
            "status" => FieldValue::Text(t.status.as_str()),
            "workflowId" => FieldValue::Text(&self.workflow.workflow_id),
            "workflowType" => FieldValue::Text(&self.workflow.workflow_name),
            "correlationId" => text(self.workflow.correlation_id.as_deref()),
            "workerId" => text(t.worker_id.as_deref()),
            "domain" => text(t.domain.as_deref()),
            "reasonForIncompletion" => text(t.reason_for_incompletion.as_deref()),
            "scheduledTime" => FieldValue::Number(t.scheduled_time),
            "startTime" => FieldValue::Number(t.start_time),
            "updateTime" => FieldValue::Number(t.update_time),
            "endTime" => FieldValue::Number(t.end_time),
            "executionTime" => FieldValue::Number(execution_time(t.start_time, t.end_time)),
            "queueWaitTime" => FieldValue::Number(self.queue_wait_time()),
            "retryCount" => FieldValue::Number(i64::from(t.retry_count)),
            "workflowPriority" => FieldValue::Number(i64::from(self.workflow.priority)),
            _ => FieldValue::Missing,
        }
    }
}

impl Searchable for TaskDoc<'_> {
    fn field(&self, name: &str) -> FieldValue<'_> {
        self.value(name)
    }

    fn contains_text(&self, word: &str) -> bool {
        let t = self.task;
        [
            Some(t.task_id.as_str()),
            Some(t.task_type.as_str()),
            Some(t.task_def_name.as_str()),
            Some(t.reference_task_name.as_str()),
            Some(t.status.as_str()),
            Some(self.workflow.workflow_id.as_str()),
            Some(self.workflow.workflow_name.as_str()),
            t.worker_id.as_deref(),
            t.reason_for_incompletion.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|s| contains_ignoring_case(s, word))
            || contains_ignoring_case(&serde_json::to_string(&t.input).unwrap_or_default(), word)
            || contains_ignoring_case(&serde_json::to_string(&t.output).unwrap_or_default(), word)
    }
}

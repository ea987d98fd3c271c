//! Conductor's search syntax, matching and order, on real executions.

mod common;

use common::Run;
use overture_core::WorkflowStatus;
use overture_core::search::{Condition, Literal, Op, Query, Sort, TASK_FIELDS, TaskDoc, WORKFLOW_FIELDS};
use serde_json::json;

fn fresh() -> Run {
    let def = json!({"name": "orders", "version": 2, "tasks": [
        {"name": "charge", "taskReferenceName": "charge", "type": "SIMPLE"}]});
    Run::start(def, json!({"customer": "Ada Lovelace", "amount": 42}))
}

/// A fresh run with fields set by hand (so it takes no further steps: the harness replays).
fn run(correlation: Option<&str>, start: i64) -> Run {
    let mut r = fresh();
    r.state.header.correlation_id = correlation.map(str::to_owned);
    r.state.header.create_time = start;
    r
}

fn query(q: &str) -> Query {
    Query::parse(q, "", WORKFLOW_FIELDS).unwrap_or_else(|e| panic!("{q}: {e}"))
}

#[test]
fn parses_conductor_queries() {
    let q = query("workflowType = 'orders' AND status IN (FAILED, \"TIMED_OUT\") AND startTime > 1000");
    assert_eq!(q.alternatives.len(), 1);
    assert_eq!(
        q.alternatives[0],
        vec![
            Condition { field: "workflowType", op: Op::Eq, values: vec![Literal::Text("orders".into())] },
            Condition {
                field: "status",
                op: Op::Eq,
                values: vec![Literal::Text("FAILED".into()), Literal::Text("TIMED_OUT".into())]
            },
            Condition { field: "startTime", op: Op::Gt, values: vec![Literal::Number(1000)] },
        ]
    );
    assert_eq!(q.equals("status"), Some(vec!["FAILED", "TIMED_OUT"]));
    assert_eq!(q.equals("correlationId"), None);
    assert_eq!(q.range("startTime"), (1001, i64::MAX));
    assert!(q.answered_by(&["workflowType", "status"], "startTime"));
    assert!(!q.answered_by(&["workflowType"], "startTime"));
    assert!(
        !Query::parse("status = FAILED", "order", WORKFLOW_FIELDS).expect("q").answered_by(&["status"], "startTime")
    );
    assert!(!query("status = FAILED AND status != RUNNING").answered_by(&["status"], "startTime"));
    assert!(!query("status = FAILED AND startTime != 5").answered_by(&["status"], "startTime"));
    assert!(query("").answered_by(&[], "startTime"));

    // Lower-case keywords, `==`, `<>`, ISO times and escaped quotes.
    let q = query("workflowId == \"a\\\"b\" and startTime <= '2026-11-21T10:30:00Z' and status <> RUNNING");
    assert_eq!(q.alternatives[0][0].values, vec![Literal::Text("a\"b".into())]);
    assert_eq!(q.alternatives[0][1].values, vec![Literal::Number(1_795_257_000_000)]);
    assert_eq!(q.alternatives[0][2].op, Op::Ne);
    assert_eq!(q.range("startTime"), (i64::MIN, 1_795_257_000_000));

    // OR between groups: no single group narrows the candidates.
    let q = query("status = FAILED OR correlationId = 'x' AND priority >= 5");
    assert_eq!(q.alternatives.len(), 2);
    assert_eq!(q.equals("status"), None);

    assert_eq!(query("").alternatives, vec![Vec::new()]);
}

#[test]
fn refuses_what_it_cannot_read_with_a_reason() {
    for (q, says) in [
        ("colour = 'red'", "Unknown search field 'colour'"),
        ("startTime > yesterday", "startTime needs a number"),
        ("workflowType = 'open", "Unterminated quoted value"),
        ("status = FAILED status = RUNNING", "Expected AND or OR"),
        ("status IN (FAILED", "Expected ',' or ')'"),
        ("status FAILED", "Expected an operator"),
        ("= 'x'", "Expected a field name"),
        ("status =", "Expected a value for status"),
        ("status IN FAILED", "Expected '(' after status IN"),
    ] {
        let err = Query::parse(q, "", WORKFLOW_FIELDS).expect_err(q);
        assert!(err.contains(says), "{q}: {err}");
    }
    let err = Sort::parse("startTime:UP", WORKFLOW_FIELDS).expect_err("bad direction");
    assert!(err.contains("ASC or DESC"), "{err}");
    let err = Sort::parse("colour:ASC", WORKFLOW_FIELDS).expect_err("bad field");
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn matches_fields_free_text_and_alternatives() {
    let with = run(Some("order-7"), 5_000);
    let without = run(None, 9_000);
    let (a, b) = (&with.state.header, &without.state.header);
    let hits = |q: &str, free: &str| {
        let q = Query::parse(q, free, WORKFLOW_FIELDS).expect(q);
        (q.matches(a), q.matches(b))
    };
    assert_eq!(hits("workflowType = 'orders' AND version = 2", ""), (true, true));
    assert_eq!(hits("correlationId = 'order-7'", ""), (true, false));
    // A missing value equals nothing and differs from everything.
    assert_eq!(hits("correlationId != 'order-7'", ""), (false, true));
    assert_eq!(hits("startTime >= 5000 AND startTime < 9000", ""), (true, false));
    assert_eq!(hits("startTime > '1970-01-01T00:00:06Z'", ""), (false, true));
    assert_eq!(hits("status IN (FAILED, COMPLETED)", ""), (false, false));
    assert_eq!(hits("status = RUNNING", ""), (true, true));
    assert_eq!(hits("status = FAILED OR correlationId = 'order-7'", ""), (true, false));
    // Free text: every word, ignoring case, in ids, names or JSON input.
    assert_eq!(hits("", "*"), (true, true));
    assert_eq!(hits("", "lovelace"), (true, true));
    assert_eq!(hits("", "ORDER-7 ada"), (true, false));
    assert_eq!(hits("", "babbage"), (false, false));
}

#[test]
fn sorts_by_fields_in_either_direction() {
    let mut runs = [run(Some("b"), 3), run(None, 1), run(Some("a"), 2)];
    runs[0].state.header.status = WorkflowStatus::Failed;
    let headers: Vec<_> = runs.iter().map(|r| &r.state.header).collect();
    let order = |sort: &str| {
        let sort = Sort::parse(sort, WORKFLOW_FIELDS).expect(sort);
        let mut sorted = headers.clone();
        sorted.sort_by(|x, y| sort.compare(*x, *y));
        sorted.iter().map(|h| h.create_time).collect::<Vec<_>>()
    };
    assert_eq!(order("startTime:ASC"), vec![1, 2, 3]);
    assert_eq!(order("startTime:DESC"), vec![3, 2, 1]);
    assert_eq!(order("startTime"), vec![1, 2, 3]);
    // Missing correlation ids first; a second key breaks ties.
    assert_eq!(order("correlationId:ASC"), vec![1, 2, 3]);
    assert_eq!(order("status:DESC|startTime:DESC"), vec![2, 1, 3]);
    assert_eq!(Sort::parse("startTime:DESC", WORKFLOW_FIELDS).expect("sort").by_only("startTime"), Some(true));
    assert_eq!(Sort::parse("", WORKFLOW_FIELDS).expect("sort").by_only("startTime"), Some(false));
}

#[test]
fn task_searches_see_the_task_and_its_workflow() {
    let mut r = fresh();
    let id = r.poll("charge");
    r.report(&id, overture_core::TaskResultStatus::Completed, json!({"receipt": "R-1"}));
    // Set after the steps: the harness replays history after each one.
    r.state.header.correlation_id = Some("order-9".into());
    let task = r.task("charge");
    let doc = TaskDoc { workflow: &r.state.header, task };
    let hits = |q: &str, free: &str| Query::parse(q, free, TASK_FIELDS).expect(q).matches(&doc);
    assert!(hits("taskType = 'charge' AND status = 'COMPLETED' AND workflowType = 'orders'", ""));
    assert!(hits("correlationId = 'order-9' AND taskId = '{id}'".replace("{id}", &id).as_str(), ""));
    assert!(!hits("status = SCHEDULED", ""));
    assert!(hits("", "r-1"));
    assert!(!hits("", "r-2"));
}

//! The test harness for the decider: one execution with a manual clock, commands in, events
//! out, and a replay check after every step so `evolve` stays deterministic.

#![allow(dead_code)]

use std::sync::Arc;

use overture_core::command::{
    Command, Ctx, Environment, IdSource, Rejection, ScriptError, StartWorkflow, TaskResultStatus, TaskUpdate,
};
use overture_core::dsl::{TaskDef, WorkflowDef};
use overture_core::event::Event;
use overture_core::evolve;
use overture_core::state::{Object, TaskStatus, WorkflowState};
use overture_core::{Plan, decide};
use serde_json::Value;

/// Real script engines; task definitions exist for names starting with `known_`; `random`
/// answers half its bound.
pub struct ScriptEnv;

impl Environment for ScriptEnv {
    fn javascript(&self, script: &str, input: &Value) -> Result<Value, ScriptError> {
        let limits = overture_script::Limits { time: std::time::Duration::from_millis(500), memory: 16 << 20 };
        overture_script::javascript(script, input, limits).map_err(|e| match e {
            overture_script::Error::Failed(m) => ScriptError::Failed(m),
            overture_script::Error::Limit(m) => ScriptError::Limit(m),
        })
    }
    /// jq in this process, with no limits: the tests' queries are trusted.
    fn jq(&self, query: &str, input: &Value) -> Result<Vec<Value>, ScriptError> {
        overture_script::jq(query, input).map_err(ScriptError::Failed)
    }
    fn task_def(&self, name: &str) -> Option<TaskDef> {
        name.starts_with("known_").then(|| TaskDef::with_defaults(name))
    }
    /// Deterministic "randomness": half the bound.
    fn random(&self, bound: u64) -> u64 {
        bound / 2
    }
    /// `region` and `config` (JSON) are set.
    fn env_var(&self, name: &str) -> Option<String> {
        match name {
            "region" => Some("华东".to_owned()),
            "config" => Some(r#"{"db": {"host": "h1"}}"#.to_owned()),
            _ => None,
        }
    }
}

pub struct Counter(pub u32);
impl IdSource for Counter {
    fn next_id(&mut self) -> String {
        self.0 += 1;
        format!("t{}", self.0)
    }
}

/// One execution under test, with a manual clock.
pub struct Run {
    pub state: WorkflowState,
    pub history: Vec<Event>,
    pub ids: Counter,
    pub now: i64,
}

impl Run {
    pub fn start(def: Value, input: Value) -> Run {
        let def: WorkflowDef = serde_json::from_value(def).expect("test definition parses");
        overture_core::validate::workflow_def(&def).expect("test definition is valid");
        let mut ids = Counter(0);
        let now = 1_000_000;
        let cmd = StartWorkflow {
            input: obj(input),
            correlation_id: Some("corr".into()),
            priority: 5,
            ..StartWorkflow::new("wf1", Arc::new(Plan::new(def)))
        };
        let (state, history) = decide::start(cmd, &mut Ctx { now, ids: &mut ids, env: &ScriptEnv });
        let run = Run { state, history, ids, now };
        run.check_replay();
        run
    }

    pub fn send(&mut self, cmd: Command) -> Result<Vec<Event>, Rejection> {
        let before = self.state.clone();
        let result =
            decide::decide(&mut self.state, cmd, &mut Ctx { now: self.now, ids: &mut self.ids, env: &ScriptEnv });
        match &result {
            Ok(events) => self.history.extend(events.iter().cloned()),
            Err(_) => assert_eq!(before.header, self.state.header, "a rejection leaves the state untouched"),
        }
        self.check_replay();
        result
    }

    pub fn check_replay(&self) {
        let mut replayed = evolve::start(&self.history[0]).expect("history starts with WorkflowStarted");
        for e in &self.history[1..] {
            evolve::evolve(&mut replayed, e);
        }
        assert_eq!(replayed.header, self.state.header);
        assert_eq!(replayed.tasks, self.state.tasks);
    }

    pub fn poll(&mut self, reference: &str) -> String {
        let id = self.open_task(reference).task_id.clone();
        self.send(Command::Poll { task_id: id.clone(), worker_id: Some("w".into()) }).expect("poll accepted");
        id
    }

    pub fn open_task(&self, reference: &str) -> &overture_core::TaskState {
        self.state
            .tasks
            .iter()
            .rev()
            .find(|t| t.reference_task_name == reference && !t.status.is_terminal())
            .unwrap_or_else(|| panic!("no open task {reference}: {:#?}", self.state.tasks))
    }

    pub fn report(&mut self, task_id: &str, status: TaskResultStatus, output: Value) -> Vec<Event> {
        self.send(Command::Update(Box::new(update(task_id, status, output)))).expect("update accepted")
    }

    pub fn statuses(&self) -> Vec<(String, TaskStatus)> {
        self.state.tasks.iter().map(|t| (t.reference_task_name.clone(), t.status)).collect()
    }
}

pub fn update(task_id: &str, status: TaskResultStatus, output: Value) -> TaskUpdate {
    TaskUpdate {
        task_id: task_id.into(),
        status,
        output: Some(obj(output)),
        merge_output: false,
        reason: Some("boom".into()),
        worker_id: Some("w".into()),
        callback_after_seconds: 0,
        extend_lease: false,
        logs: vec![],
        output_stored_at: None,
    }
}

pub fn obj(v: Value) -> Object {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

pub fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).collect()
}

impl Run {
    /// Polls the open worker task `reference` at `now` (a poll before it is ready is refused).
    pub fn poll_at(&mut self, reference: &str, now: i64) -> String {
        let early = self.open_task(reference).task_id.clone();
        self.now = now - 1;
        let refused = self.send(Command::Poll { task_id: early.clone(), worker_id: None });
        assert!(refused.is_err(), "not ready a millisecond early");
        self.now = now;
        self.poll(reference)
    }

    /// Polls the open worker task `reference` and reports it COMPLETED with `output`.
    pub fn complete(&mut self, reference: &str, output: Value) -> Vec<Event> {
        let id = self.poll(reference);
        self.report(&id, TaskResultStatus::Completed, output)
    }

    /// Polls the open worker task `reference` and reports it FAILED.
    pub fn fail(&mut self, reference: &str) -> Vec<Event> {
        let id = self.poll(reference);
        self.report(&id, TaskResultStatus::Failed, serde_json::json!({}))
    }

    /// The latest task with this reference name.
    pub fn task(&self, reference: &str) -> &overture_core::TaskState {
        self.state.latest(reference).unwrap_or_else(|| panic!("no task {reference}: {:#?}", self.statuses()))
    }

    /// Reference names of the tasks that are SCHEDULED.
    pub fn scheduled(&self) -> Vec<String> {
        self.state
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Scheduled)
            .map(|t| t.reference_task_name.clone())
            .collect()
    }
}

//! The leader's [`Environment`] for the decider: the sandboxed script engines, the registered
//! task definitions of the local replica, and when workers last polled.

use overture_core::command::{Environment, ScriptError};
use overture_core::dsl::TaskDef;
use overture_raft::ReadView;
use overture_script::Limits;
use serde_json::Value;

use crate::names;

/// Scripts and definitions as the leader sees them.
pub(crate) struct LeaderEnv<'a> {
    pub read: &'a ReadView,
    /// When workers last polled each queue.
    pub polls: &'a crate::queues::PollTimes,
    /// Where jq queries run.
    pub jq: &'a overture_script::Sandbox,
    /// How many bytes one resolution may produce ([`crate::PayloadOptions::max_resolved`]).
    pub max_resolved: usize,
}

impl Environment for LeaderEnv<'_> {
    fn max_resolved_bytes(&self) -> usize {
        self.max_resolved
    }
    fn javascript(&self, script: &str, input: &Value) -> Result<Value, ScriptError> {
        let started = std::time::Instant::now();
        let result = overture_script::javascript(script, input, Limits::default()).map_err(script_error);
        metrics::histogram!(names::SCRIPT_SECONDS, "engine" => "javascript").record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!(names::SCRIPT_ERRORS, "engine" => "javascript").increment(1);
        }
        result
    }

    fn jq(&self, query: &str, input: &Value) -> Result<Vec<Value>, ScriptError> {
        let started = std::time::Instant::now();
        let result = self.jq.jq(query, input).map_err(script_error);
        metrics::histogram!(names::SCRIPT_SECONDS, "engine" => "jq").record(started.elapsed().as_secs_f64());
        if result.is_err() {
            metrics::counter!(names::SCRIPT_ERRORS, "engine" => "jq").increment(1);
        }
        result
    }

    fn task_def(&self, name: &str) -> Option<TaskDef> {
        self.read.task_def(name).ok().flatten()
    }

    fn random(&self, bound: u64) -> u64 {
        let r = uuid::Uuid::new_v4().as_u128() as u64;
        r % bound.saturating_add(1).max(1)
    }

    fn last_poll(&self, task_type: &str, domain: Option<&str>) -> Option<i64> {
        self.polls.last(task_type, domain)
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.read.variable(overture_raft::types::VariableKind::Env, name).ok().flatten()
    }
}

/// A script engine's error as the decider takes it.
fn script_error(e: overture_script::Error) -> ScriptError {
    match e {
        overture_script::Error::Failed(m) => ScriptError::Failed(m),
        overture_script::Error::Limit(m) => ScriptError::Limit(m),
    }
}

//! The engine's settings.

use std::time::Duration;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Passivate a workflow actor after this long without messages.
    pub idle_actor_timeout: Duration,
    /// Live workflow actors at most: beyond, the least recently active are passivated.
    pub max_live_actors: usize,
    /// How long ended executions are kept, and how often the leader looks for expired ones.
    pub retention: crate::retention::Retention,
    /// How late a schedule's fire may run when the schedule does not catch up.
    pub schedule_grace: Duration,
    /// The largest output a task may have, in bytes: an HTTP task's response body over it
    /// fails the task.
    pub max_task_output_bytes: usize,
    /// Where JSON_JQ_TRANSFORM queries run: sandbox processes under time and memory limits.
    /// Without one (the default), jq tasks fail saying jq is not available.
    pub jq: overture_script::Sandbox,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            idle_actor_timeout: Duration::from_secs(30),
            max_live_actors: crate::actor::DEFAULT_MAX_LIVE,
            retention: Default::default(),
            schedule_grace: crate::scheduler::DEFAULT_GRACE,
            jq: overture_script::Sandbox::unavailable(),
            max_task_output_bytes: 3 << 20,
        }
    }
}

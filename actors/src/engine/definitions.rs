//! Task and workflow definitions and event handlers: changes proposed through Raft, reads from
//! the local replica.

use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use overture_core::validate;
use overture_raft::Request;
use overture_raft::codec::JsonBytes;
use overture_raft::types::{Hidden, VariableKind};

use super::Engine;
use crate::error::Error;

impl Engine {
    /// Creates or replaces task definitions.
    pub async fn put_task_defs(&self, mut defs: Vec<TaskDef>) -> Result<(), Error> {
        let now = crate::now_ms();
        for def in &mut defs {
            validate::task_def(def).map_err(Error::Invalid)?;
            def.audit.create_time = Some(now);
            def.audit.update_time = None;
            def.audit.updated_by = None;
        }
        self.propose(Request::PutTaskDefs { defs: defs.iter().map(JsonBytes::of).collect() }).await
    }

    /// Replaces an existing task definition.
    pub async fn update_task_def(&self, def: TaskDef) -> Result<(), Error> {
        validate::task_def(&def).map_err(Error::Invalid)?;
        self.propose(Request::UpdateTaskDef { def: JsonBytes::of(&def), time: crate::now_ms() }).await
    }

    /// Removes a task definition.
    pub async fn delete_task_def(&self, name: &str) -> Result<(), Error> {
        self.propose(Request::DeleteTaskDef { name: name.to_owned() }).await
    }

    /// Adds an event handler (`create`), or replaces an existing one.
    pub async fn put_event_handler(&self, handler: EventHandler, create: bool) -> Result<(), Error> {
        validate::event_handler(&handler).map_err(Error::Invalid)?;
        // A handler on a queue this server cannot consume would never fire: refused, saying why.
        match crate::brokers::BrokerQueue::parse(&handler.event) {
            Ok(None) => {}
            Ok(Some(queue)) if self.inner.options.brokers.serves(&queue) => {}
            Ok(Some(queue)) => {
                return Err(Error::BadRequest(format!(
                    "Event {}: {} is not configured on this server (see [event_queues] in its configuration)",
                    handler.event,
                    queue.kind()
                )));
            }
            Err(why) => return Err(Error::BadRequest(why)),
        }
        self.propose(Request::PutEventHandler { handler: JsonBytes::of(&handler), create }).await
    }

    /// Removes an event handler.
    pub async fn delete_event_handler(&self, name: &str) -> Result<(), Error> {
        self.propose(Request::DeleteEventHandler { name: name.to_owned() }).await
    }

    /// Every event handler.
    pub fn event_handlers(&self) -> Result<Vec<EventHandler>, Error> {
        Ok(self.read().event_handlers()?)
    }

    /// Every event handler with what this node knows of its queue: whether it consumes it, its
    /// lag and its last error (the leader consumes; on another node nothing is consuming); then
    /// the default event queues, as handlers named `_default_COMPLETED` and `_default_FAILED`.
    pub fn event_handler_queues(&self) -> Result<Vec<serde_json::Value>, Error> {
        let statuses = self.inner.options.brokers.statuses().snapshot();
        let row = |name: &str, event: &str, active: bool, status: serde_json::Value| {
            let queue_type = event.split_once(':').map_or("", |(t, _)| t);
            let mut row = serde_json::json!({"name": name, "event": event, "queueType": queue_type, "active": active});
            if let (Some(row), serde_json::Value::Object(status)) = (row.as_object_mut(), status) {
                row.extend(status);
            }
            row
        };
        let known =
            |event: &str| serde_json::to_value(statuses.get(event).cloned().unwrap_or_default()).unwrap_or_default();
        let mut out = Vec::new();
        for h in self.event_handlers()? {
            let status = match crate::brokers::BrokerQueue::parse(&h.event) {
                // `conductor` messages are handled as they are published.
                Ok(None) => serde_json::json!({"consuming": h.active, "lag": 0}),
                _ => known(&h.event),
            };
            out.push(row(&h.name, &h.event, h.active, status));
        }
        if let Some(d) = self.inner.options.brokers.default_queues() {
            for (status, queue) in [("COMPLETED", &d.completed), ("FAILED", &d.failed)] {
                let event = queue.event();
                out.push(row(&format!("_default_{status}"), &event, true, known(&event)));
            }
        }
        Ok(out)
    }

    /// The default event queues by the task status they carry (`COMPLETED`, `FAILED`), by name;
    /// none if none are configured.
    pub fn default_event_queues(&self) -> serde_json::Map<String, serde_json::Value> {
        let Some(d) = self.inner.options.brokers.default_queues() else { return Default::default() };
        [("COMPLETED", &d.completed), ("FAILED", &d.failed)]
            .into_iter()
            .map(|(status, q)| (status.to_owned(), q.name().into()))
            .collect()
    }

    /// How many messages wait on each default event queue, by name, as its consumer on this
    /// node (the leader) last learned.
    pub fn default_event_queue_sizes(&self) -> serde_json::Map<String, serde_json::Value> {
        let brokers = &self.inner.options.brokers;
        let Some(d) = brokers.default_queues() else { return Default::default() };
        let statuses = brokers.statuses().snapshot();
        [&d.completed, &d.failed]
            .into_iter()
            .map(|q| (q.name().to_owned(), statuses.get(&q.event()).and_then(|s| s.lag).unwrap_or(0).into()))
            .collect()
    }

    /// Publishes a task status message on the default event queue of `status`
    /// (`POST /queue/update/...`): `externalId` naming the task, with `body` over it.
    pub async fn publish_task_status(
        &self,
        workflow_id: &str,
        task: (Option<&str>, Option<&str>),
        status: &str,
        body: overture_core::Object,
    ) -> Result<(), Error> {
        let brokers = &self.inner.options.brokers;
        let Some(queue) = brokers.default_queues().and_then(|d| d.for_status(status)) else {
            return Err(Error::BadRequest(format!("There is no queue for handling {status} status")));
        };
        let message = crate::default_queues::update_message(workflow_id, task.0, task.1, body);
        let bytes = serde_json::to_vec(&message).map_err(|e| Error::Internal(e.to_string()))?;
        brokers.publish(queue, &uuid::Uuid::new_v4().to_string(), bytes).await.map(|_| ())
    }

    /// A task definition.
    pub fn task_def(&self, name: &str) -> Result<TaskDef, Error> {
        self.read().task_def(name)?.ok_or_else(|| Error::NotFound(format!("No such taskType found by name: {name}")))
    }

    /// Every task definition.
    pub fn task_defs(&self) -> Result<Vec<TaskDef>, Error> {
        Ok(self.read().task_defs()?)
    }

    /// Stores workflow definitions; with `overwrite` false an existing `(name, version)` conflicts.
    pub async fn put_workflow_defs(&self, defs: Vec<WorkflowDef>, overwrite: bool) -> Result<(), Error> {
        for def in &defs {
            validate::workflow_def(def).map_err(Error::Invalid)?;
        }
        let defs = defs.iter().map(JsonBytes::of).collect();
        self.propose(Request::PutWorkflowDefs { defs, overwrite, time: crate::now_ms() }).await
    }

    /// Checks a workflow definition as [`Engine::put_workflow_defs`] would, storing nothing;
    /// answers the warnings of what Overture checks beyond conductor-oss.
    pub fn validate_workflow_def(&self, def: &WorkflowDef) -> Result<Vec<String>, Error> {
        validate::workflow_def(def).map_err(Error::Invalid)?;
        Ok(validate::workflow_def_warnings(def))
    }

    /// Creates or replaces a secret or an environment variable. Names are
    /// `[A-Za-z0-9_-]`, 1 to 256 of them (they are read inside `${workflow.secrets.NAME}`);
    /// values up to [`MAX_VARIABLE_BYTES`].
    pub async fn put_variable(&self, kind: VariableKind, name: &str, value: String) -> Result<(), Error> {
        check_variable_name(name)?;
        if value.len() > MAX_VARIABLE_BYTES {
            return Err(Error::BadRequest(format!("The value is larger than {MAX_VARIABLE_BYTES} bytes")));
        }
        self.propose(Request::PutVariable { kind, name: name.to_owned(), value: Hidden(value) }).await
    }

    /// Removes a secret or an environment variable.
    pub async fn delete_variable(&self, kind: VariableKind, name: &str) -> Result<(), Error> {
        check_variable_name(name)?;
        self.propose(Request::DeleteVariable { kind, name: name.to_owned() }).await
    }

    /// The names of every secret or environment variable, sorted.
    pub fn variable_names(&self, kind: VariableKind) -> Result<Vec<String>, Error> {
        Ok(self.read().variable_names(kind)?)
    }

    /// Every environment variable with its value. Secrets have no such read.
    pub fn environment(&self) -> Result<Vec<(String, String)>, Error> {
        Ok(self.read().variables(VariableKind::Env)?)
    }

    /// One environment variable's value.
    pub fn env_var(&self, name: &str) -> Result<Option<String>, Error> {
        check_variable_name(name)?;
        Ok(self.read().variable(VariableKind::Env, name)?)
    }

    /// Whether a secret exists (its value is never read out).
    pub fn secret_exists(&self, name: &str) -> Result<bool, Error> {
        check_variable_name(name)?;
        Ok(self.read().variable(VariableKind::Secret, name)?.is_some())
    }

    /// Removes one version of a workflow definition.
    pub async fn delete_workflow_def(&self, name: &str, version: i32) -> Result<(), Error> {
        self.propose(Request::DeleteWorkflowDef { name: name.to_owned(), version }).await
    }

    /// A workflow definition: `version`, or the latest.
    pub fn workflow_def(&self, name: &str, version: Option<i32>) -> Result<WorkflowDef, Error> {
        self.read().workflow_def(name, version)?.ok_or_else(|| {
            let v = version.map_or_else(|| "null".to_owned(), |v| v.to_string());
            Error::NotFound(format!("No such workflow found by name: {name}, version: {v}"))
        })
    }

    /// Every version of every workflow definition.
    pub fn workflow_defs(&self) -> Result<Vec<WorkflowDef>, Error> {
        Ok(self.read().workflow_defs()?)
    }
}

/// The largest value of a secret or an environment variable, in bytes.
pub const MAX_VARIABLE_BYTES: usize = 64 << 10;

/// A variable's name: `[A-Za-z0-9_-]`, 1 to 256 of them, as conductor-oss checks secret names.
fn check_variable_name(name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 256
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!("Invalid name {name:?}: use 1 to 256 of A-Z, a-z, 0-9, '_' and '-'")))
    }
}

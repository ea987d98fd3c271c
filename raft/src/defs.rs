//! Applying definition changes: task and workflow definitions and event handlers, stored as
//! JSON. One function per request; the state machine's dispatch calls them.
//!
//! Each request is all-or-nothing: a payload that does not parse is answered with
//! [`Response::Rejected`] and writes nothing.

use std::io;

use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use rocksdb::WriteBatch;

use crate::GroupDb;
use crate::codec::{JsonBytes, decode, encode};
use crate::disk::DiskGuard;
use crate::keys::{self, CF_DEFS};
use crate::types::{Hidden, Response, VariableKind};
use crate::{cf, io_err};

/// The answer to an entry whose payload does not parse: the same on every replica, and nothing
/// written.
pub(crate) fn rejected(what: &str, error: serde_json::Error) -> Response {
    tracing::warn!(%error, "refused to apply {what}: it does not parse");
    metrics::counter!(crate::APPLY_REJECTED).increment(1);
    Response::Rejected(format!("{what} could not be applied: {error}"))
}

/// Returns the rejection from the enclosing apply function when `$parsed` is one.
macro_rules! or_reject {
    ($parsed:expr) => {
        match $parsed {
            Ok(value) => value,
            Err(rejection) => return Ok(rejection),
        }
    };
}

/// The definition store, as an apply sees it.
pub(crate) struct Defs<'a> {
    /// The database.
    pub db: &'a GroupDb,
    /// Refuses writes when the disk is full.
    pub disk: &'a DiskGuard,
}

impl Defs<'_> {
    /// A stored definition: `Err` for a storage failure, `Ok(Err)` for stored JSON this build
    /// cannot read (a rejection, not a reason to stop).
    fn get<T: serde::de::DeserializeOwned>(&self, key: &[u8]) -> Result<Result<Option<T>, Response>, io::Error> {
        match self.db.get_cf(cf(self.db, CF_DEFS), key).map_err(io_err)? {
            None => Ok(Ok(None)),
            Some(bytes) => {
                let json: JsonBytes = decode(&bytes).map_err(io_err)?;
                Ok(parse(&json, "the stored definition").map(Some))
            }
        }
    }

    fn exists(&self, key: &[u8]) -> Result<bool, io::Error> {
        Ok(self.db.get_cf(cf(self.db, CF_DEFS), key).map_err(io_err)?.is_some())
    }

    fn write(&self, wb: WriteBatch) -> Result<(), io::Error> {
        crate::write_state(self.db, self.disk, wb)
    }

    /// Deletes the definition at `key`, or answers `missing` if there is none.
    fn delete(&self, key: &[u8], missing: String) -> Result<Response, io::Error> {
        if !self.exists(key)? {
            return Ok(Response::NotFound(missing));
        }
        let mut wb = WriteBatch::default();
        wb.delete_cf(cf(self.db, CF_DEFS), key);
        self.write(wb)?;
        Ok(Response::Ok)
    }

    /// `PutTaskDefs`: creates or replaces task definitions.
    pub fn put_task_defs(&self, defs: Vec<JsonBytes>) -> Result<Response, io::Error> {
        let mut wb = WriteBatch::default();
        for json in defs {
            let def: TaskDef = or_reject!(parse(&json, "a task definition"));
            wb.put_cf(cf(self.db, CF_DEFS), keys::task_def(&def.name), encode(&json));
        }
        self.write(wb)?;
        Ok(Response::Ok)
    }

    /// `UpdateTaskDef`: replaces an existing task definition, keeping its creation audit.
    pub fn update_task_def(&self, def: JsonBytes, time: i64) -> Result<Response, io::Error> {
        let mut def: TaskDef = or_reject!(parse(&def, "the task definition"));
        let key = keys::task_def(&def.name);
        let Some(existing) = or_reject!(self.get::<TaskDef>(&key)?) else {
            return Ok(Response::NotFound(format!("No such taskType found by name: {}", def.name)));
        };
        def.audit.create_time = existing.audit.create_time;
        def.audit.created_by = existing.audit.created_by;
        def.audit.update_time = Some(time);
        let mut wb = WriteBatch::default();
        wb.put_cf(cf(self.db, CF_DEFS), key, encode(&JsonBytes::of(&def)));
        self.write(wb)?;
        Ok(Response::Ok)
    }

    /// `DeleteTaskDef`.
    pub fn delete_task_def(&self, name: &str) -> Result<Response, io::Error> {
        self.delete(&keys::task_def(name), format!("No such taskType found by name: {name}"))
    }

    /// `PutWorkflowDefs`: stores workflow definitions; an existing `(name, version)` conflicts
    /// unless `overwrite`, and then nothing is written.
    pub fn put_workflow_defs(&self, defs: Vec<JsonBytes>, overwrite: bool, time: i64) -> Result<Response, io::Error> {
        let mut wb = WriteBatch::default();
        for json in defs {
            let mut def: WorkflowDef = or_reject!(parse(&json, "a workflow definition"));
            let key = keys::workflow_def(&def.name, def.version);
            match or_reject!(self.get::<WorkflowDef>(&key)?) {
                Some(_) if !overwrite => {
                    let message = format!("Workflow with {}.{} already exists!", def.name, def.version);
                    return Ok(Response::Conflict(message));
                }
                Some(existing) => {
                    def.audit.create_time = existing.audit.create_time;
                    def.audit.update_time = Some(time);
                }
                None => def.audit.create_time = def.audit.create_time.or(Some(time)),
            }
            wb.put_cf(cf(self.db, CF_DEFS), key, encode(&JsonBytes::of(&def)));
        }
        self.write(wb)?;
        Ok(Response::Ok)
    }

    /// `DeleteWorkflowDef`: one version.
    pub fn delete_workflow_def(&self, name: &str, version: i32) -> Result<Response, io::Error> {
        let missing = format!("No such workflow definition: {name} version: {version}");
        self.delete(&keys::workflow_def(name, version), missing)
    }

    /// `PutEventHandler`: a new handler (`create`: conflicts if the name exists) or a
    /// replacement (not found if it does not).
    pub fn put_event_handler(&self, handler: JsonBytes, create: bool) -> Result<Response, io::Error> {
        let parsed: EventHandler = or_reject!(parse(&handler, "the event handler"));
        let key = keys::event_handler(&parsed.name);
        match (create, self.exists(&key)?) {
            (true, true) => Ok(Response::Conflict(format!("EventHandler with name {} already exists!", parsed.name))),
            (false, false) => Ok(Response::NotFound(format!("EventHandler with name {} not found!", parsed.name))),
            _ => {
                let mut wb = WriteBatch::default();
                wb.put_cf(cf(self.db, CF_DEFS), key, encode(&handler));
                self.write(wb)?;
                Ok(Response::Ok)
            }
        }
    }

    /// `PutVariable`: creates or replaces it.
    pub fn put_variable(&self, kind: VariableKind, name: &str, value: &Hidden) -> Result<Response, io::Error> {
        let mut wb = WriteBatch::default();
        wb.put_cf(cf(self.db, CF_DEFS), keys::variable(kind, name), encode(value));
        self.write(wb)?;
        Ok(Response::Ok)
    }

    /// `DeleteVariable`.
    pub fn delete_variable(&self, kind: VariableKind, name: &str) -> Result<Response, io::Error> {
        let what = match kind {
            VariableKind::Secret => "secret",
            VariableKind::Env => "environment variable",
        };
        self.delete(&keys::variable(kind, name), format!("No {what} named {name}"))
    }

    /// `DeleteEventHandler`.
    pub fn delete_event_handler(&self, name: &str) -> Result<Response, io::Error> {
        self.delete(&keys::event_handler(name), format!("EventHandler with name {name} not found!"))
    }
}

/// A definition carried by the entry, or the rejection that answers it.
fn parse<T: serde::de::DeserializeOwned>(json: &JsonBytes, what: &str) -> Result<T, Response> {
    json.parse().map_err(|e| rejected(what, e))
}

//! Applying definition changes: task and workflow definitions, stored as JSON.

use std::io;

use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use rocksdb::{DB, WriteBatch};

use crate::codec::{JsonBytes, decode, encode};
use crate::keys::{self, CF_DEFS};
use crate::types::{Request, Response};
use crate::{cf, io_err};

fn get_json<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Option<T>, io::Error> {
    match db.get_cf(cf(db, CF_DEFS), key).map_err(io_err)? {
        None => Ok(None),
        Some(bytes) => {
            let json: JsonBytes = decode(&bytes).map_err(io_err)?;
            json.parse().map(Some).map_err(io_err)
        }
    }
}

/// Applies one definition request. Each request is all-or-nothing.
pub(crate) fn apply(db: &DB, request: Request) -> Result<Response, io::Error> {
    let defs_cf = cf(db, CF_DEFS);
    let mut wb = WriteBatch::default();
    let response = match request {
        Request::Workflow(_)
        | Request::Workflows(_)
        | Request::RemoveWorkflow { .. }
        | Request::PurgeWorkflows { .. }
        | Request::PutSchedule { .. }
        | Request::DeleteSchedule { .. }
        | Request::FireSchedule { .. } => {
            unreachable!("workflow requests are applied by the state machine")
        }
        Request::PutTaskDefs { defs } => {
            for json in defs {
                let def: TaskDef = json.parse().map_err(io_err)?;
                wb.put_cf(defs_cf, keys::task_def(&def.name), encode(&json));
            }
            Response::Ok
        }
        Request::UpdateTaskDef { def, time } => {
            let mut def: TaskDef = def.parse().map_err(io_err)?;
            let key = keys::task_def(&def.name);
            match get_json::<TaskDef>(db, &key)? {
                None => Response::NotFound(format!("No such taskType found by name: {}", def.name)),
                Some(existing) => {
                    def.audit.create_time = existing.audit.create_time;
                    def.audit.created_by = existing.audit.created_by;
                    def.audit.update_time = Some(time);
                    wb.put_cf(defs_cf, key, encode(&JsonBytes::of(&def)));
                    Response::Ok
                }
            }
        }
        Request::DeleteTaskDef { name } => {
            let key = keys::task_def(&name);
            if db.get_cf(defs_cf, &key).map_err(io_err)?.is_none() {
                Response::NotFound(format!("No such taskType found by name: {name}"))
            } else {
                wb.delete_cf(defs_cf, key);
                Response::Ok
            }
        }
        Request::PutWorkflowDefs { defs, overwrite, time } => {
            let mut conflict = None;
            for json in defs {
                let mut def: WorkflowDef = json.parse().map_err(io_err)?;
                let key = keys::workflow_def(&def.name, def.version);
                match get_json::<WorkflowDef>(db, &key)? {
                    Some(_) if !overwrite => {
                        conflict = Some(format!("Workflow with {}.{} already exists!", def.name, def.version));
                        break;
                    }
                    Some(existing) => {
                        def.audit.create_time = existing.audit.create_time;
                        def.audit.update_time = Some(time);
                    }
                    None => {
                        def.audit.create_time = def.audit.create_time.or(Some(time));
                    }
                }
                wb.put_cf(defs_cf, key, encode(&JsonBytes::of(&def)));
            }
            match conflict {
                Some(message) => {
                    wb.clear();
                    Response::Conflict(message)
                }
                None => Response::Ok,
            }
        }
        Request::DeleteWorkflowDef { name, version } => {
            let key = keys::workflow_def(&name, version);
            if db.get_cf(defs_cf, &key).map_err(io_err)?.is_none() {
                Response::NotFound(format!("No such workflow definition: {name} version: {version}"))
            } else {
                wb.delete_cf(defs_cf, key);
                Response::Ok
            }
        }
        Request::PutEventHandler { handler, create } => {
            let parsed: EventHandler = handler.parse().map_err(io_err)?;
            let key = keys::event_handler(&parsed.name);
            let exists = db.get_cf(defs_cf, &key).map_err(io_err)?.is_some();
            match (create, exists) {
                (true, true) => Response::Conflict(format!("EventHandler with name {} already exists!", parsed.name)),
                (false, false) => Response::NotFound(format!("EventHandler with name {} not found!", parsed.name)),
                _ => {
                    wb.put_cf(defs_cf, key, encode(&handler));
                    Response::Ok
                }
            }
        }
        Request::DeleteEventHandler { name } => {
            let key = keys::event_handler(&name);
            if db.get_cf(defs_cf, &key).map_err(io_err)?.is_none() {
                Response::NotFound(format!("EventHandler with name {name} not found!"))
            } else {
                wb.delete_cf(defs_cf, key);
                Response::Ok
            }
        }
    };
    crate::write_state(db, wb)?;
    Ok(response)
}

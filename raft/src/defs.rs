//! Applying definition changes: task and workflow definitions, stored as JSON.

use std::io;

use overture_core::dsl::{EventHandler, TaskDef, WorkflowDef};
use rocksdb::{DB, WriteBatch};

use crate::codec::{JsonBytes, decode, encode};
use crate::keys::{self, CF_DEFS};
use crate::types::{Request, Response};
use crate::{cf, io_err};

/// A stored definition: `Err` for a storage failure, `Ok(Err)` for stored JSON this build cannot
/// read (a rejection, not a reason to stop).
fn get_json<T: serde::de::DeserializeOwned>(db: &DB, key: &[u8]) -> Result<Result<Option<T>, Response>, io::Error> {
    match db.get_cf(cf(db, CF_DEFS), key).map_err(io_err)? {
        None => Ok(Ok(None)),
        Some(bytes) => {
            let json: JsonBytes = decode(&bytes).map_err(io_err)?;
            Ok(parse(&json, "the stored definition").map(Some))
        }
    }
}

/// A definition carried by the entry, or the rejection that answers it.
fn parse<T: serde::de::DeserializeOwned>(json: &JsonBytes, what: &str) -> Result<T, Response> {
    json.parse().map_err(|e| crate::state_machine::rejected(what, e))
}

/// Applies one definition request. Each request is all-or-nothing: a payload that does not
/// parse is answered with [`Response::Rejected`] and writes nothing.
pub(crate) fn apply(db: &DB, disk: &crate::disk::DiskGuard, request: Request) -> Result<Response, io::Error> {
    Ok(match apply_or_reject(db, disk, request)? {
        Ok(response) | Err(response) => response,
    })
}

fn apply_or_reject(
    db: &DB,
    disk: &crate::disk::DiskGuard,
    request: Request,
) -> Result<Result<Response, Response>, io::Error> {
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
                let def: TaskDef = match parse(&json, "a task definition") {
                    Ok(def) => def,
                    Err(rejection) => return Ok(Err(rejection)),
                };
                wb.put_cf(defs_cf, keys::task_def(&def.name), encode(&json));
            }
            Response::Ok
        }
        Request::UpdateTaskDef { def, time } => {
            let mut def: TaskDef = match parse(&def, "the task definition") {
                Ok(def) => def,
                Err(rejection) => return Ok(Err(rejection)),
            };
            let key = keys::task_def(&def.name);
            let existing = match get_json::<TaskDef>(db, &key)? {
                Ok(existing) => existing,
                Err(rejection) => return Ok(Err(rejection)),
            };
            match existing {
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
                let mut def: WorkflowDef = match parse(&json, "a workflow definition") {
                    Ok(def) => def,
                    Err(rejection) => return Ok(Err(rejection)),
                };
                let key = keys::workflow_def(&def.name, def.version);
                let existing = match get_json::<WorkflowDef>(db, &key)? {
                    Ok(existing) => existing,
                    Err(rejection) => return Ok(Err(rejection)),
                };
                match existing {
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
            let parsed: EventHandler = match parse(&handler, "the event handler") {
                Ok(parsed) => parsed,
                Err(rejection) => return Ok(Err(rejection)),
            };
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
    crate::write_state(db, disk, wb)?;
    Ok(Ok(response))
}

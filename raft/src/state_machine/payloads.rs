//! External payload storage: payloads written in parts through the log, and the rows that say
//! which payloads of an execution are stored there.

use std::collections::BTreeMap;
use std::io;

use overture_core::WorkflowState;
use overture_core::external::{External, PayloadTarget, path_problem};
use rocksdb::WriteBatch;

use super::Shared;
use crate::GroupDb;
use crate::codec::encode;
use crate::keys::{self, ExternalRow, PayloadManifest, PayloadPart};
use crate::types::Response;
use crate::{cf, io_err};

impl Shared {
    /// Writes one part of a payload; the last part makes it readable.
    pub(super) fn apply_payload_part(
        &self,
        wb: &mut WriteBatch,
        path: &str,
        index: u32,
        parts: u32,
        bytes: Vec<u8>,
    ) -> Result<Response, io::Error> {
        if let Some(problem) = path_problem(path) {
            return Ok(Response::Rejected(problem));
        }
        if index >= parts {
            return Ok(Response::Rejected(format!("part {index} of a payload of {parts} parts")));
        }
        // What this group has pending is read below.
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        let db = &self.db;
        if db.get_cf(cf(db, keys::CF_PAYLOADS), keys::payload_manifest(path)).map_err(io_err)?.is_some() {
            return Ok(Response::Conflict(format!("A payload is already stored at {path}")));
        }
        if index == 0 {
            let (from, to) = keys::payload_parts_range(path);
            wb.delete_range_cf(cf(db, keys::CF_PAYLOADS), from, to);
        }
        let size = bytes.len() as u64;
        wb.put_cf(cf(db, keys::CF_PAYLOADS), keys::payload_part(path, index), encode(&PayloadPart(bytes)));
        if index + 1 < parts {
            return Ok(Response::Ok);
        }
        // The last part: every earlier one must be there (another upload of the same path that
        // started over meanwhile dropped them).
        let mut total = size;
        for i in 0..index {
            match db.get_cf(cf(db, keys::CF_PAYLOADS), keys::payload_part(path, i)).map_err(io_err)? {
                Some(part) => total += crate::codec::decode::<PayloadPart>(&part).map_err(io_err)?.0.len() as u64,
                None => {
                    return Ok(Response::Conflict(format!(
                        "Part {i} of the payload at {path} is missing: another upload of the path started over"
                    )));
                }
            }
        }
        let manifest = PayloadManifest { size: total, parts };
        wb.put_cf(cf(db, keys::CF_PAYLOADS), keys::payload_manifest(path), encode(&manifest));
        metrics::counter!(crate::PAYLOADS_STORED).increment(1);
        metrics::counter!(crate::PAYLOAD_BYTES_STORED).increment(total);
        Ok(Response::Ok)
    }
}

/// Writes the difference between an execution's external payload rows before and after a
/// batch. A payload no longer referenced (set again, or its task dropped) is deleted, unless
/// another payload of the execution still names its path.
pub(super) fn write_externals(
    db: &GroupDb,
    wb: &mut WriteBatch,
    state: &WorkflowState,
    before: &BTreeMap<PayloadTarget, External>,
) {
    let after = state.externals();
    if before.len() == after.len()
        && before.iter().zip(after).all(|((t1, e1), (t2, e2))| t1 == t2 && e1.path == e2.path)
    {
        return;
    }
    let id = state.header.workflow_id.as_str();
    for (target, old) in before {
        if after.get(target).is_none_or(|new| new.path != old.path) {
            wb.delete_cf(cf(db, keys::CF_WF_EXTERNALS), keys::wf_external(id, *target));
            if !after.values().any(|e| e.path == old.path) {
                delete_payload(db, wb, &old.path);
            }
        }
    }
    for (target, new) in after {
        if before.get(target).is_none_or(|old| old.path != new.path) {
            let row = ExternalRow { path: new.path.clone() };
            wb.put_cf(cf(db, keys::CF_WF_EXTERNALS), keys::wf_external(id, *target), encode(&row));
        }
    }
}

/// Deletes every payload an execution that is being removed stores elsewhere (its rows go with
/// the rest of its workflow-keyed rows).
pub(super) fn delete_externals(db: &GroupDb, wb: &mut WriteBatch, state: &WorkflowState) {
    for external in state.externals().values() {
        delete_payload(db, wb, &external.path);
    }
}

fn delete_payload(db: &GroupDb, wb: &mut WriteBatch, path: &str) {
    wb.delete_cf(cf(db, keys::CF_PAYLOADS), keys::payload_manifest(path));
    let (from, to) = keys::payload_parts_range(path);
    wb.delete_range_cf(cf(db, keys::CF_PAYLOADS), from, to);
    metrics::counter!(crate::PAYLOADS_DELETED).increment(1);
}

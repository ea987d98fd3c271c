//! Applying schedule changes and fires. What may happen is the core's rule
//! ([`WorkflowSchedule::saved_over`], [`WorkflowSchedule::due_at`]); this writes the outcome.

use std::io;

use overture_core::schedule::{ScheduleExecution, WorkflowSchedule};
use rocksdb::WriteBatch;

use super::{Changes, Inner, Shared};
use crate::codec::{JsonBytes, decode, encode};
use crate::defs::rejected;
use crate::keys;
use crate::types::{Response, WorkflowBatch};
use crate::{cf, io_err};

/// Fire records kept per schedule, the most recent.
const RUNS_KEPT: usize = 100;

/// One fire of a schedule, as `Request::FireSchedule` carries it.
pub(crate) struct Fire {
    /// The schedule.
    pub name: String,
    /// The time it is due at (epoch millis).
    pub scheduled_time: i64,
    /// Its next time after this fire.
    pub next_run_time: Option<i64>,
    /// The record of this fire, if it starts a workflow (absent for a skipped fire).
    pub execution: Option<JsonBytes>,
    /// The events that start its workflow.
    pub start: Option<WorkflowBatch>,
}

impl Shared {
    /// A stored schedule: `Ok(Err)` for one this build cannot read (a rejection).
    fn stored_schedule(&self, name: &str) -> Result<Option<Result<WorkflowSchedule, Response>>, io::Error> {
        let Some(bytes) = self.db.get_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes()).map_err(io_err)? else {
            return Ok(None);
        };
        let json = decode::<JsonBytes>(&bytes).map_err(io_err)?;
        Ok(Some(json.parse().map_err(|e| rejected("the stored schedule", e))))
    }

    /// Creates or replaces a schedule; a replaced one keeps its last fire.
    pub(super) fn put_schedule(&self, wb: &mut WriteBatch, schedule: JsonBytes) -> Result<Response, io::Error> {
        let mut parsed: WorkflowSchedule = match schedule.parse() {
            Ok(parsed) => parsed,
            Err(e) => return Ok(rejected("the schedule", e)),
        };
        // Read what earlier entries of this group wrote.
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        match self.stored_schedule(&parsed.name)? {
            Some(Ok(existing)) => parsed.saved_over(&existing),
            Some(Err(rejection)) => return Ok(rejection),
            None => {}
        }
        let key = parsed.name.clone().into_bytes();
        wb.put_cf(cf(&self.db, keys::CF_SCHEDULES), key, encode(&JsonBytes::of(&parsed)));
        Ok(Response::Ok)
    }

    /// Deletes a schedule and its fire records.
    pub(super) fn delete_schedule(&self, wb: &mut WriteBatch, name: &str) -> Result<Response, io::Error> {
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        if self.db.get_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes()).map_err(io_err)?.is_none() {
            return Ok(Response::NotFound(format!("Schedule {name} not found")));
        }
        wb.delete_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes());
        let (from, to) = keys::prefix_range(name);
        wb.delete_range_cf(cf(&self.db, keys::CF_SCHEDULE_RUNS), from, to);
        Ok(Response::Ok)
    }

    /// One fire of a schedule: only if it is still due then (see [`WorkflowSchedule::due_at`]).
    /// It moves the schedule on, starts its workflow and records the fire, in one write.
    pub(super) fn apply_fire(
        &self,
        inner: &mut Inner,
        wb: &mut WriteBatch,
        changes: &mut Changes,
        fire: Fire,
    ) -> Result<Response, io::Error> {
        let name = fire.name.as_str();
        // Read what earlier entries of this group wrote.
        crate::write_state(&self.db, &self.disk, std::mem::take(wb))?;
        let mut schedule = match self.stored_schedule(name)? {
            None => return Ok(Response::NotFound(format!("Schedule {name} not found"))),
            Some(Err(rejection)) => return Ok(rejection),
            Some(Ok(schedule)) => schedule,
        };
        // Everything the fire writes is read first, so a rejection writes nothing.
        let record: Option<ScheduleExecution> = match fire.execution.map(|e| e.parse()).transpose() {
            Ok(record) => record,
            Err(e) => return Ok(rejected("the schedule's execution record", e)),
        };
        if !schedule.due_at(fire.scheduled_time) {
            return Ok(Response::Conflict(format!("Schedule {name} is not due at {}", fire.scheduled_time)));
        }
        schedule.fired(fire.scheduled_time, fire.next_run_time);
        wb.put_cf(cf(&self.db, keys::CF_SCHEDULES), name.as_bytes(), encode(&JsonBytes::of(&schedule)));
        let Some(mut record) = record else { return Ok(Response::Ok) };
        if let Some(batch) = fire.start {
            match self.apply_workflow(inner, wb, changes, batch)? {
                Response::Applied { .. } => {}
                // `RETURN_EXISTING`: the workflow that holds the start's idempotency key answers
                // the fire, as it would a client's start.
                Response::Existing { workflow_id } => record.workflow_id = Some(workflow_id),
                other => {
                    record.state = "FAILED".into();
                    record.reason = Some(format!("The workflow did not start: {other}"));
                    record.workflow_id = None;
                }
            }
        }
        let runs = cf(&self.db, keys::CF_SCHEDULE_RUNS);
        wb.put_cf(runs, keys::schedule_run(name, fire.scheduled_time), encode(&JsonBytes::of(&record)));
        let prefix = keys::prefix(name);
        let stored: Vec<Box<[u8]>> = self
            .db
            .prefix_iterator_cf(runs, &prefix)
            .map_while(|item| item.ok().map(|(k, _)| k).filter(|k| k.starts_with(&prefix)))
            .collect();
        for old in stored.iter().take((stored.len() + 1).saturating_sub(RUNS_KEPT)) {
            wb.delete_cf(runs, old);
        }
        Ok(Response::Ok)
    }
}

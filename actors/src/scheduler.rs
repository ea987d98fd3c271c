//! Distributed cron: schedules are replicated state, and each fire is one committed entry.
//!
//! The leader looks at the schedules a few times a second. A schedule due at time T is fired by
//! proposing `FireSchedule(T)`, which moves it to its next time, records the execution and
//! starts its workflow in the same write; the state machine applies it only while the schedule
//! is still due at T, so a fire happens once — across leaders too, since a new leader reads the
//! schedule where the last committed fire left it. The workflow's id is derived from the
//! schedule and T.
//!
//! Catch-up: a fire that is late by less than the grace period (a minute unless configured; a
//! failover, a busy node) runs late. One missed by more (the cluster was down) runs only if the schedule has
//! `runCatchupScheduleInstances`; otherwise it is skipped and the schedule moves to its next time
//! after now.

use std::sync::{Arc, Weak};
use std::time::Duration;

use overture_core::command::Ctx;
use overture_core::decide;
use overture_core::dsl::StartWorkflowRequest;
use overture_core::schedule::{ScheduleExecution, WorkflowSchedule};
use overture_raft::codec::JsonBytes;
use overture_raft::{Request, Response, WorkflowBatch};
use tokio::sync::watch;

use crate::actor::blocking_if;
use crate::error::Error;
use crate::host::Host;
use crate::names;

/// How late a fire may run without `runCatchupScheduleInstances`, unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// How often the leader looks for due schedules.
const TICK: Duration = Duration::from_millis(200);
/// Fires one tick proposes at most (a long catch-up goes on at the next tick).
const FIRES_PER_TICK: usize = 100;

/// The leader's scheduler: it fires due schedules, and every change to a schedule takes the same
/// lock as a fire, so an edit and a fire never interleave.
pub(crate) struct Scheduler {
    host: Arc<Host>,
    /// Held while schedules are read and changed or fired.
    lock: tokio::sync::Mutex<()>,
    /// How late a fire may run without `runCatchupScheduleInstances`.
    grace: Duration,
}

/// Starts the scheduler for this leadership; it runs until `stop` changes.
pub(crate) fn spawn(host: Arc<Host>, grace: Duration, mut stop: watch::Receiver<bool>) -> Arc<Scheduler> {
    let scheduler = Arc::new(Scheduler { host, lock: tokio::sync::Mutex::new(()), grace });
    let weak = Arc::downgrade(&scheduler);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            let Some(scheduler) = Weak::upgrade(&weak) else { return };
            if let Err(e) = tick(&scheduler).await {
                tracing::warn!(error = %e, "scheduler tick failed; the next one retries");
            }
        }
    });
    scheduler
}

async fn tick(scheduler: &Scheduler) -> Result<(), Error> {
    let _guard = scheduler.lock.lock().await;
    let mut fired = 0;
    for schedule in scheduler.host.replica.read().schedules()? {
        while fired < FIRES_PER_TICK {
            let now = crate::now_ms();
            let current = scheduler.host.replica.read().schedule(&schedule.name)?;
            let Some(s) = current.filter(|s| !s.paused) else { break };
            let Some(due) = s.next_run_time.filter(|t| *t <= now) else { break };
            fire(scheduler, &s, due, now).await?;
            fired += 1;
        }
    }
    Ok(())
}

/// Fires (or, if missed for too long without catch-up, skips) one due time of a schedule.
async fn fire(scheduler: &Scheduler, s: &WorkflowSchedule, due: i64, now: i64) -> Result<(), Error> {
    let missed = due < now - scheduler.grace.as_millis() as i64;
    if missed && !s.run_catchup_schedule_instances {
        let next = s.next_from(now);
        tracing::info!(schedule = %s.name, missed_at = due, next, "skipping fires missed while the cluster was down");
        metrics::counter!(names::SCHEDULE_FIRES, "outcome" => "skipped").increment(1);
        let request = Request::FireSchedule {
            name: s.name.clone(),
            scheduled_time: due,
            next_run_time: next,
            execution: None,
            start: None,
        };
        return propose_fire(&scheduler.host, request).await;
    }
    let key = format!("{}@{due}", s.name);
    let request = start_request(s, due, now);
    let workflow_id = match &request {
        Ok(request) => crate::derived_start_id("schedule-workflow", &key, request, None, scheduler.host.partitions),
        Err(_) => crate::derived_id("schedule-workflow", &key),
    };
    let mut record = ScheduleExecution {
        execution_id: crate::derived_id("schedule", &key),
        schedule_name: s.name.clone(),
        scheduled_time: due,
        execution_time: now,
        workflow_name: s.workflow_name().to_owned(),
        workflow_id: Some(workflow_id.clone().into()),
        reason: None,
        state: "EXECUTED".into(),
        zone_id: s.zone_id.clone(),
        start_workflow_request: s.start_workflow_request.clone(),
    };
    let host = &scheduler.host;
    let start = match request {
        // Partitioned: the workflow starts in its partition first (a fire repeated after a
        // failover finds it there), then the fire is recorded, with the workflow that holds
        // the start (its idempotency key's, with `RETURN_EXISTING`).
        Ok(request) if host.partitions > 1 => {
            match host.router.start_child(request, workflow_id.clone().into(), None).await {
                Ok(id) => {
                    record.workflow_id = Some(id);
                    Ok(None)
                }
                Err(e) if e.is_retryable() => return Err(e),
                Err(e) => Err(e),
            }
        }
        Ok(request) => start_batch(host, request, &workflow_id, now).map(Some),
        Err(e) => Err(e),
    };
    let start = match start {
        Ok(batch) => batch,
        Err(e) => {
            record.state = "FAILED".into();
            record.reason = Some(e.to_string());
            record.workflow_id = None;
            None
        }
    };
    let started = record.workflow_id.is_some();
    metrics::counter!(names::SCHEDULE_FIRES, "outcome" => if started { "started" } else { "failed" }).increment(1);
    let request = Request::FireSchedule {
        name: s.name.clone(),
        scheduled_time: due,
        next_run_time: s.next_from(due + 1),
        execution: Some(JsonBytes::of(&record)),
        start,
    };
    propose_fire(&scheduler.host, request).await
}

async fn propose_fire(host: &Host, request: Request) -> Result<(), Error> {
    match host.replica.propose(request).await? {
        // A fire that lost a race (a pause, an edit) changes nothing.
        Response::Ok | Response::Conflict(_) | Response::NotFound(_) => Ok(()),
        other => Err(Error::Internal(format!("unexpected reply to a schedule fire: {other}"))),
    }
}

/// The request that starts the schedule's workflow for the fire due at `due`. Its input gets
/// `_scheduledTime` and `_executedTime` (epoch millis).
fn start_request(s: &WorkflowSchedule, due: i64, now: i64) -> Result<StartWorkflowRequest, Error> {
    let raw = s.start_workflow_request.clone().unwrap_or_default();
    let mut request: StartWorkflowRequest = serde_json::from_value(raw)
        .map_err(|e| Error::BadRequest(format!("startWorkflowRequest of schedule {} is not valid: {e}", s.name)))?;
    let input = request.input.get_or_insert_with(Default::default);
    input.insert("_scheduledTime".into(), due.into());
    input.insert("_executedTime".into(), now.into());
    Ok(request)
}

/// The events that start `request` as `workflow_id`, in the same entry as the fire (a cluster
/// without partitions, where the workflow lives in the group the schedules do).
fn start_batch(
    host: &Host,
    request: StartWorkflowRequest,
    workflow_id: &str,
    now: i64,
) -> Result<WorkflowBatch, Error> {
    let read = host.replica.read();
    let cmd = crate::workflows::prepare_start(read, request, workflow_id.into(), None)?;
    let scripts = cmd.plan.runs_scripts();
    let (_, events) = blocking_if(scripts, || {
        let env = host.env();
        decide::start(cmd, &mut Ctx { now, ids: &mut host.ids(), env: &env })
    });
    Ok(WorkflowBatch { workflow_id: workflow_id.into(), expected_revision: 0, events })
}

impl Scheduler {
    /// Creates or replaces a schedule. It fires next at its first time from now (a replaced one
    /// never fires twice for one time).
    pub async fn save(&self, mut schedule: WorkflowSchedule, by: Option<String>) -> Result<(), Error> {
        schedule.validate().map_err(Error::BadRequest)?;
        let _guard = self.lock.lock().await;
        let now = crate::now_ms();
        let existing = self.host.replica.read().schedule(&schedule.name)?;
        schedule.create_time = existing.as_ref().and_then(|e| e.create_time).or(Some(now));
        schedule.created_by = existing.as_ref().and_then(|e| e.created_by.clone()).or(schedule.created_by).or(by);
        schedule.updated_time = Some(now);
        schedule.last_run_time = existing.as_ref().and_then(|e| e.last_run_time);
        schedule.next_run_time = schedule.next_from(now);
        schedule.paused_reason = schedule.paused_reason.filter(|_| schedule.paused);
        self.propose(&schedule).await
    }

    async fn propose(&self, schedule: &WorkflowSchedule) -> Result<(), Error> {
        match self.host.replica.propose(Request::PutSchedule { schedule: JsonBytes::of(schedule) }).await? {
            Response::Ok => Ok(()),
            other => Err(Error::Internal(format!("unexpected reply to a schedule change: {other}"))),
        }
    }

    /// Deletes a schedule; not found if there is none.
    pub async fn delete(&self, name: &str) -> Result<(), Error> {
        let _guard = self.lock.lock().await;
        match self.host.replica.propose(Request::DeleteSchedule { name: name.to_owned() }).await? {
            Response::Ok => Ok(()),
            Response::NotFound(m) => Err(Error::NotFound(m)),
            other => Err(Error::Internal(format!("unexpected reply to a schedule delete: {other}"))),
        }
    }

    /// Pauses (with a reason) or resumes schedules: one by name (not found if none), or all. A
    /// resumed schedule fires next at its first time from now; what it missed while paused does
    /// not run.
    pub async fn pause(&self, name: Option<&str>, paused: bool, reason: Option<String>) -> Result<(), Error> {
        let _guard = self.lock.lock().await;
        let read = self.host.replica.read();
        let targets = match name {
            Some(name) => {
                vec![read.schedule(name)?.ok_or_else(|| Error::NotFound(format!("Schedule '{name}' not found")))?]
            }
            None => read.schedules()?,
        };
        let now = crate::now_ms();
        for mut s in targets.into_iter().filter(|s| s.paused != paused || name.is_some()) {
            s.paused = paused;
            s.paused_reason = if paused { reason.clone() } else { None };
            s.updated_time = Some(now);
            if !paused {
                s.next_run_time = s.next_from(now);
            }
            self.propose(&s).await?;
        }
        Ok(())
    }
}

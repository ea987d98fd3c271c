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
use overture_core::schedule::{Cadence, ScheduleExecution, WorkflowSchedule};
use overture_core::search::{Query, Sort};
use overture_raft::codec::JsonBytes;
use overture_raft::search::Page;
use overture_raft::{Request, Response, WorkflowBatch};
use tokio::sync::watch;

use crate::actor::{UuidIds, blocking_if};
use crate::env::LeaderEnv;
use crate::error::Error;
use crate::leader::{LeaderContext, derived_id};
use crate::{Engine, names};

/// How late a fire may run without `runCatchupScheduleInstances`, unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(60);
/// How often the leader looks for due schedules.
const TICK: Duration = Duration::from_millis(200);
/// Fires one tick proposes at most (a long catch-up goes on at the next tick).
const FIRES_PER_TICK: usize = 100;

/// Runs the scheduler while this leadership lasts.
pub(crate) fn spawn(ctx: &Arc<LeaderContext>, grace: Duration, mut stop: watch::Receiver<bool>) {
    let ctx = Arc::downgrade(ctx);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                _ = stop.changed() => return,
            }
            let Some(leader) = Weak::upgrade(&ctx) else { return };
            if let Err(e) = tick(&leader, grace).await {
                tracing::warn!(error = %e, "scheduler tick failed; the next one retries");
            }
        }
    });
}

async fn tick(ctx: &LeaderContext, grace: Duration) -> Result<(), Error> {
    let _guard = ctx.schedules.lock().await;
    let mut fired = 0;
    for schedule in ctx.replica.read().schedules()? {
        while fired < FIRES_PER_TICK {
            let now = crate::now_ms();
            let current = ctx.replica.read().schedule(&schedule.name)?;
            let Some(s) = current.filter(|s| !s.paused) else { break };
            let Some(due) = s.next_run_time.filter(|t| *t <= now) else { break };
            fire(ctx, &s, due, now, grace).await?;
            fired += 1;
        }
    }
    Ok(())
}

/// Fires (or, if missed for too long without catch-up, skips) one due time of a schedule.
async fn fire(ctx: &LeaderContext, s: &WorkflowSchedule, due: i64, now: i64, grace: Duration) -> Result<(), Error> {
    let missed = due < now - grace.as_millis() as i64;
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
        return propose_fire(ctx, request).await;
    }
    let key = format!("{}@{due}", s.name);
    let workflow_id = derived_id("schedule-workflow", &key);
    let mut record = ScheduleExecution {
        execution_id: derived_id("schedule", &key),
        schedule_name: s.name.clone(),
        scheduled_time: due,
        execution_time: now,
        workflow_name: s.workflow_name().to_owned(),
        workflow_id: Some(workflow_id.clone()),
        reason: None,
        state: "EXECUTED".into(),
        zone_id: s.zone_id.clone(),
        start_workflow_request: s.start_workflow_request.clone(),
    };
    let start = match start_batch(ctx, s, &workflow_id, due, now) {
        Ok(batch) => Some(batch),
        Err(e) => {
            record.state = "FAILED".into();
            record.reason = Some(e.to_string());
            record.workflow_id = None;
            None
        }
    };
    metrics::counter!(names::SCHEDULE_FIRES, "outcome" => if start.is_some() { "started" } else { "failed" })
        .increment(1);
    let request = Request::FireSchedule {
        name: s.name.clone(),
        scheduled_time: due,
        next_run_time: s.next_from(due + 1),
        execution: Some(JsonBytes::of(&record)),
        start,
    };
    propose_fire(ctx, request).await
}

async fn propose_fire(ctx: &LeaderContext, request: Request) -> Result<(), Error> {
    match ctx.replica.propose(request).await? {
        // A fire that lost a race (a pause, an edit) changes nothing.
        Response::Ok | Response::Conflict(_) | Response::NotFound(_) => Ok(()),
        other => Err(Error::Internal(format!("unexpected reply to a schedule fire: {other}"))),
    }
}

/// The events that start the schedule's workflow for the fire due at `due`. Its input gets
/// `_scheduledTime` and `_executedTime` (epoch millis).
fn start_batch(
    ctx: &LeaderContext,
    s: &WorkflowSchedule,
    workflow_id: &str,
    due: i64,
    now: i64,
) -> Result<WorkflowBatch, Error> {
    let raw = s.start_workflow_request.clone().unwrap_or_default();
    let mut request: StartWorkflowRequest = serde_json::from_value(raw)
        .map_err(|e| Error::BadRequest(format!("startWorkflowRequest of schedule {} is not valid: {e}", s.name)))?;
    let input = request.input.get_or_insert_with(Default::default);
    input.insert("_scheduledTime".into(), due.into());
    input.insert("_executedTime".into(), now.into());
    let read = ctx.replica.read();
    let cmd = crate::engine::prepare_start(read, request, workflow_id.to_owned(), None)?;
    let scripts = cmd.plan.runs_scripts();
    let (_, events) = blocking_if(scripts, || {
        let env = LeaderEnv { read, polls: &ctx.polls, jq: &ctx.jq };
        decide::start(cmd, &mut Ctx { now, ids: &mut UuidIds, env: &env })
    });
    Ok(WorkflowBatch { workflow_id: workflow_id.to_owned(), expected_revision: 0, events })
}

impl Engine {
    /// `POST /scheduler/schedules`: creates or replaces a schedule. It fires next at its first
    /// time from now (a replaced one never fires twice for one time).
    pub async fn save_schedule(&self, mut schedule: WorkflowSchedule, by: Option<String>) -> Result<(), Error> {
        let ctx = self.leader()?;
        schedule.validate().map_err(Error::BadRequest)?;
        let _guard = ctx.schedules.lock().await;
        let now = crate::now_ms();
        let existing = self.replica().read().schedule(&schedule.name)?;
        schedule.create_time = existing.as_ref().and_then(|e| e.create_time).or(Some(now));
        schedule.created_by = existing.as_ref().and_then(|e| e.created_by.clone()).or(schedule.created_by).or(by);
        schedule.updated_time = Some(now);
        schedule.last_run_time = existing.as_ref().and_then(|e| e.last_run_time);
        schedule.next_run_time = schedule.next_from(now);
        schedule.paused_reason = schedule.paused_reason.filter(|_| schedule.paused);
        self.propose_schedule(&schedule).await
    }

    async fn propose_schedule(&self, schedule: &WorkflowSchedule) -> Result<(), Error> {
        match self.replica().propose(Request::PutSchedule { schedule: JsonBytes::of(schedule) }).await? {
            Response::Ok => Ok(()),
            other => Err(Error::Internal(format!("unexpected reply to a schedule change: {other}"))),
        }
    }

    /// Every schedule, or those that start `workflow_name`.
    pub fn schedules(&self, workflow_name: Option<&str>) -> Result<Vec<WorkflowSchedule>, Error> {
        let all = self.replica().read().schedules()?;
        Ok(all.into_iter().filter(|s| workflow_name.is_none_or(|w| s.workflow_name() == w)).collect())
    }

    /// One schedule.
    pub fn schedule(&self, name: &str) -> Result<Option<WorkflowSchedule>, Error> {
        Ok(self.replica().read().schedule(name)?)
    }

    /// `DELETE /scheduler/schedules/{name}`: 404 if there is none.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        let ctx = self.leader()?;
        let _guard = ctx.schedules.lock().await;
        match self.replica().propose(Request::DeleteSchedule { name: name.to_owned() }).await? {
            Response::Ok => Ok(()),
            Response::NotFound(m) => Err(Error::NotFound(m)),
            other => Err(Error::Internal(format!("unexpected reply to a schedule delete: {other}"))),
        }
    }

    /// Pauses (with a reason) or resumes schedules: one by name (404 if none), or all. A resumed
    /// schedule fires next at its first time from now; what it missed while paused does not run.
    pub async fn pause_schedules(&self, name: Option<&str>, paused: bool, reason: Option<String>) -> Result<(), Error> {
        let ctx = self.leader()?;
        let _guard = ctx.schedules.lock().await;
        let targets = match name {
            Some(name) => vec![
                self.replica()
                    .read()
                    .schedule(name)?
                    .ok_or_else(|| Error::NotFound(format!("Schedule {name} not found")))?,
            ],
            None => self.replica().read().schedules()?,
        };
        let now = crate::now_ms();
        for mut s in targets.into_iter().filter(|s| s.paused != paused || name.is_some()) {
            s.paused = paused;
            s.paused_reason = if paused { reason.clone() } else { None };
            s.updated_time = Some(now);
            if !paused {
                s.next_run_time = s.next_from(now);
            }
            self.propose_schedule(&s).await?;
        }
        Ok(())
    }

    /// `GET /scheduler/nextFewSchedules`: the next `limit` fire times of an expression (UTC)
    /// from now, within the optional window.
    pub fn next_few_schedules(
        &self,
        expression: &str,
        start: Option<i64>,
        end: Option<i64>,
        limit: usize,
    ) -> Result<Vec<i64>, Error> {
        let cadence = Cadence::parse(expression, None).map_err(Error::BadRequest)?;
        Ok(cadence.upcoming(crate::now_ms(), start, end, limit.min(1000)))
    }

    /// `GET /scheduler/search/executions`: recorded fires, newest first unless sorted.
    pub fn search_schedule_executions(
        &self,
        query: &str,
        free_text: &str,
        sort: &str,
        start: usize,
        size: usize,
    ) -> Result<Page<ScheduleExecution>, Error> {
        use overture_core::schedule::EXECUTION_FIELDS;
        let query = Query::parse(query, free_text, EXECUTION_FIELDS).map_err(Error::BadRequest)?;
        let sort = if sort.trim().is_empty() { "scheduledTime:DESC" } else { sort };
        let sort = Sort::parse(sort, EXECUTION_FIELDS).map_err(Error::BadRequest)?;
        let mut found: Vec<ScheduleExecution> =
            self.replica().read().schedule_runs()?.into_iter().filter(|e| query.matches(e)).collect();
        found.sort_by(|a, b| sort.compare(a, b).then_with(|| a.execution_id.cmp(&b.execution_id)));
        let total = found.len() as u64;
        Ok(Page { total, results: found.into_iter().skip(start).take(size).collect() })
    }
}

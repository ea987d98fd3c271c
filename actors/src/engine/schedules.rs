//! Schedules through the API: changes go to the leader's scheduler, reads to the local replica.

use overture_core::schedule::{Cadence, ScheduleExecution, WorkflowSchedule};
use overture_core::search::{Query, Sort};
use overture_raft::search::Page;

use super::Engine;
use crate::error::Error;

impl Engine {
    fn scheduler(&self) -> Result<std::sync::Arc<crate::scheduler::Scheduler>, Error> {
        let leader = self.leader()?;
        leader.scheduler.clone().ok_or_else(|| Error::Internal("the metadata group's leader runs no scheduler".into()))
    }

    /// `POST /scheduler/schedules`: creates or replaces a schedule. It fires next at its first
    /// time from now (a replaced one never fires twice for one time).
    pub async fn save_schedule(&self, schedule: WorkflowSchedule, by: Option<String>) -> Result<(), Error> {
        self.scheduler()?.save(schedule, by).await
    }

    /// `DELETE /scheduler/schedules/{name}`: 404 if there is none.
    pub async fn delete_schedule(&self, name: &str) -> Result<(), Error> {
        self.scheduler()?.delete(name).await
    }

    /// Pauses (with a reason) or resumes schedules: one by name (404 if none), or all. A resumed
    /// schedule fires next at its first time from now; what it missed while paused does not run.
    pub async fn pause_schedules(&self, name: Option<&str>, paused: bool, reason: Option<String>) -> Result<(), Error> {
        self.scheduler()?.pause(name, paused, reason).await
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

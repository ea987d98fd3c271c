//! Workflow schedules, in the shape of the Conductor scheduler API the official SDKs speak
//! (`/api/scheduler/...`): a cron expression with seconds, evaluated in a time zone, that
//! starts a workflow from a `StartWorkflowRequest`.
//!
//! Cron expressions are Spring's: six fields, `second minute hour day-of-month month
//! day-of-week`, with ranges, lists, steps, names (`MON`, `JAN`), `?`, `L`, `W` and `#`; Sunday is
//! 0 or 7. Zones are IANA names (`UTC`, `Europe/Paris`). Everything here is a pure function of
//! its arguments: the leader decides each fire's time, and the log records it.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::WorkflowId;
use crate::search::{FieldValue, Fields, Kind, Searchable};

/// A schedule as stored and as `GET /scheduler/schedules` answers it (`WorkflowSchedule`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSchedule {
    /// The schedule's unique name (`name`), its storage key; no whitespace or NUL.
    #[serde(default)]
    pub name: String,
    /// Spring cron expression with seconds, six fields (`cronExpression`).
    #[serde(default)]
    pub cron_expression: String,
    /// After downtime, run every fire that was missed (else only the next one to come).
    #[serde(default)]
    pub run_catchup_schedule_instances: bool,
    /// Whether fires are suspended (`paused`); a resumed schedule fires next from now.
    #[serde(default)]
    pub paused: bool,
    /// Why it was paused (`pausedReason`); cleared when it is not paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_reason: Option<String>,
    /// The workflow each fire starts, as a `StartWorkflowRequest`.
    #[serde(default)]
    pub start_workflow_request: Option<Value>,
    /// Epoch millis before which it does not fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_start_time: Option<i64>,
    /// Epoch millis after which it does not fire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_end_time: Option<i64>,
    /// IANA zone the expression is read in; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// Free text for people (`description`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Who created it (`createdBy`); once set, later saves keep it. Defaults to `updatedBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Who saved it last (`updatedBy`), as the client sent it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_by: Option<String>,
    /// Epoch millis of its first save (`createTime`), set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<i64>,
    /// Epoch millis of its last save, pause or resume (`updatedTime`), set by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_time: Option<i64>,
    /// Overture's own: when it fires next (epoch millis), absent when it never will again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_run_time: Option<i64>,
    /// Overture's own: the scheduled time of its last fire (epoch millis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_time: Option<i64>,
}

/// The first instant fires are searched after: 0001-01-01T00:00:00Z, where the cron library's
/// calendar starts. An earlier time searches from here.
const FIRST_SEARCHED: i64 = -62_135_596_800_000;

/// The instant from which no fire is found: 5000-01-01T00:00:00Z, where the cron library stops
/// searching. Bounding the search on both sides also keeps every zone's local time inside the
/// calendar, which panics when a time at its very ends is shifted into a zone.
const LAST_SEARCHED: i64 = 95_617_584_000_000;

/// 4599-01-01T00:00:00Z: from here to [`LAST_SEARCHED`] is a little over 400 years, after which
/// the Gregorian calendar repeats itself, weekdays included. An expression that does not fire in
/// that span never fires (`0 0 0 30 2 *`).
const LAST_CYCLE: i64 = 82_963_267_200_000;

/// A schedule's expression and zone, parsed.
pub struct Cadence {
    cron: croner::Cron,
    zone: chrono_tz::Tz,
    /// Whether the expression fires at all. The cron library looks for a fire of one that never
    /// does until its last year, which takes about a second in a debug build on every call; this
    /// is found once, over one 400-year cycle.
    fires: bool,
}

impl Cadence {
    /// Parses a Spring cron expression (six fields) and an IANA zone (UTC if none).
    pub fn parse(expression: &str, zone: Option<&str>) -> Result<Cadence, String> {
        let fields = expression.split_whitespace().count();
        if fields != 6 {
            return Err(format!(
                "cronExpression '{expression}' has {fields} fields; it needs six: second minute hour day-of-month month day-of-week"
            ));
        }
        let parser = croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Required).build();
        let cron = parser.parse(expression).map_err(|e| format!("cronExpression '{expression}' is not valid: {e}"))?;
        let zone = match zone.map(str::trim).filter(|z| !z.is_empty()) {
            None => chrono_tz::UTC,
            Some(z) => chrono_tz::Tz::from_str(z).map_err(|_| format!("zoneId '{z}' is not a known time zone"))?,
        };
        let mut cadence = Cadence { cron, zone, fires: true };
        cadence.fires = cadence.next_after(LAST_CYCLE).is_some();
        Ok(cadence)
    }

    /// The first fire strictly after `after` (epoch millis), or none.
    pub fn next_after(&self, after: i64) -> Option<i64> {
        if !self.fires || after >= LAST_SEARCHED {
            return None;
        }
        let after = after.max(FIRST_SEARCHED);
        // Fires fall on whole seconds: search from the second `after` falls in.
        let after = Utc.timestamp_opt(after.div_euclid(1000), 0).single()?.with_timezone(&self.zone);
        self.cron.find_next_occurrence(&after, false).ok().map(|t| t.timestamp() * 1000)
    }

    /// The first fire at or after `from` that lies inside `[start, end]`, or none.
    pub fn next_within(&self, from: i64, start: Option<i64>, end: Option<i64>) -> Option<i64> {
        let from = from.max(start.unwrap_or(i64::MIN));
        let next = self.next_after(from.saturating_sub(1))?;
        end.is_none_or(|end| next <= end).then_some(next)
    }

    /// Up to `limit` fires after `from`, inside `[start, end]`.
    pub fn upcoming(&self, from: i64, start: Option<i64>, end: Option<i64>, limit: usize) -> Vec<i64> {
        let mut out = Vec::new();
        let mut at = from;
        while out.len() < limit {
            let Some(next) = self.next_within(at, start, end) else { break };
            out.push(next);
            at = next + 1;
        }
        out
    }
}

impl WorkflowSchedule {
    /// Checks a schedule a client saves; the error says what to fix.
    pub fn validate(&self) -> Result<Cadence, String> {
        if self.name.trim().is_empty() {
            return Err("Schedule name cannot be null or empty".into());
        }
        if self.name.contains('\0') || self.name.chars().any(char::is_whitespace) {
            return Err(format!("Schedule name '{}' must not contain spaces or NUL", self.name.escape_debug()));
        }
        let cadence = Cadence::parse(&self.cron_expression, self.zone_id.as_deref())?;
        let request = self.start_workflow_request.as_ref().filter(|r| r.is_object()).ok_or_else(|| {
            "startWorkflowRequest is required: the workflow each fire starts, with its name".to_owned()
        })?;
        if request.get("name").and_then(Value::as_str).is_none_or(|n| n.trim().is_empty()) {
            return Err("startWorkflowRequest.name cannot be null or empty".into());
        }
        if let (Some(start), Some(end)) = (self.schedule_start_time, self.schedule_end_time)
            && end < start
        {
            return Err(format!("scheduleEndTime {end} is before scheduleStartTime {start}"));
        }
        Ok(cadence)
    }

    /// Its next fire at or after `from`, within its start and end times. `None` if it has
    /// none (or its expression no longer parses).
    pub fn next_from(&self, from: i64) -> Option<i64> {
        let cadence = Cadence::parse(&self.cron_expression, self.zone_id.as_deref()).ok()?;
        let after_last = self.last_run_time.map_or(from, |last| from.max(last.saturating_add(1)));
        cadence.next_within(after_last, self.schedule_start_time, self.schedule_end_time)
    }

    /// This schedule saved over `existing`: it keeps the last fire, and its next fire moves past
    /// it, so whatever the new definition says, a schedule never fires twice for one time.
    pub fn saved_over(&mut self, existing: &WorkflowSchedule) {
        self.last_run_time = existing.last_run_time.max(self.last_run_time);
        if let (Some(last), Some(next)) = (self.last_run_time, self.next_run_time)
            && next <= last
        {
            self.next_run_time = self.next_from(next);
        }
    }

    /// Whether the fire due at `scheduled_time` may happen: the schedule is not paused, that is
    /// its next time, and it has not fired for it (or a later time) already.
    pub fn due_at(&self, scheduled_time: i64) -> bool {
        let fired_already = self.last_run_time.is_some_and(|last| scheduled_time <= last);
        !self.paused && self.next_run_time == Some(scheduled_time) && !fired_already
    }

    /// Records the fire due at `scheduled_time`; it fires next at `next_run_time`.
    pub fn fired(&mut self, scheduled_time: i64, next_run_time: Option<i64>) {
        self.next_run_time = next_run_time;
        self.last_run_time = Some(scheduled_time);
    }

    /// Definition name of the workflow it starts.
    pub fn workflow_name(&self) -> &str {
        self.start_workflow_request.as_ref().and_then(|r| r.get("name")).and_then(Value::as_str).unwrap_or("")
    }
}

/// One fire of a schedule, as `GET /scheduler/search/executions` lists it
/// (`WorkflowScheduleExecutionModel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScheduleExecution {
    /// Id of this fire (`executionId`), derived from the schedule name and scheduled time.
    pub execution_id: String,
    /// Name of the schedule that fired (`scheduleName`).
    pub schedule_name: String,
    /// When it was due (epoch millis).
    pub scheduled_time: i64,
    /// When it fired (epoch millis).
    pub execution_time: i64,
    /// Definition name of the workflow the fire starts (`workflowName`).
    pub workflow_name: String,
    /// The workflow it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<WorkflowId>,
    /// Why it could not start its workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `EXECUTED` or `FAILED`.
    pub state: String,
    /// The schedule's IANA zone when it fired (`zoneId`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    /// A copy of the schedule's start request as it was when it fired (`startWorkflowRequest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_workflow_request: Option<Value>,
}

/// Fields of a schedule execution search.
pub const EXECUTION_FIELDS: Fields = &[
    ("executionId", Kind::Text),
    ("scheduleName", Kind::Text),
    ("workflowName", Kind::Text),
    ("workflowId", Kind::Text),
    ("state", Kind::Text),
    ("scheduledTime", Kind::Number),
    ("executionTime", Kind::Number),
];

impl Searchable for ScheduleExecution {
    fn field(&self, name: &str) -> FieldValue<'_> {
        match name {
            "executionId" => FieldValue::Text(&self.execution_id),
            "scheduleName" => FieldValue::Text(&self.schedule_name),
            "workflowName" => FieldValue::Text(&self.workflow_name),
            "workflowId" => self.workflow_id.as_deref().map_or(FieldValue::Missing, FieldValue::Text),
            "state" => FieldValue::Text(&self.state),
            "scheduledTime" => FieldValue::Number(self.scheduled_time),
            "executionTime" => FieldValue::Number(self.execution_time),
            _ => FieldValue::Missing,
        }
    }

    fn contains_text(&self, word: &str) -> bool {
        [
            Some(self.schedule_name.as_str()),
            Some(self.workflow_name.as_str()),
            self.workflow_id.as_deref(),
            self.reason.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|t| t.to_lowercase().contains(word))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_257_000_000; // 2026-11-21T10:30:00Z, a Saturday

    #[test]
    fn spring_expressions_with_seconds() {
        let every_ten = Cadence::parse("*/10 * * * * *", None).expect("valid");
        assert_eq!(every_ten.next_after(T0), Some(T0 + 10_000));
        assert_eq!(every_ten.next_after(T0 + 1), Some(T0 + 10_000));
        assert_eq!(every_ten.upcoming(T0, None, None, 3), vec![T0, T0 + 10_000, T0 + 20_000]);
        // Weekdays at 09:00: the next is Monday the 23rd. `?` and names as Spring writes them.
        let weekdays = Cadence::parse("0 0 9 ? * MON-FRI", None).expect("valid");
        assert_eq!(weekdays.next_after(T0), Some(1_795_424_400_000));
        // Sunday is 0 (and 7), as in Spring, not 1 as in Quartz.
        let sunday = Cadence::parse("0 0 0 * * 0", None).expect("valid");
        assert_eq!(sunday.next_after(T0), Some(1_795_305_600_000));
        // Zones: 09:00 in Paris is 08:00 UTC in November.
        let paris = Cadence::parse("0 0 9 * * *", Some("Europe/Paris")).expect("valid");
        assert_eq!(paris.next_after(T0), Some(1_795_334_400_000));
    }

    #[test]
    fn windows_and_refusals() {
        let minutely = Cadence::parse("0 * * * * *", None).expect("valid");
        assert_eq!(minutely.next_within(T0, Some(T0 + 90_000), None), Some(T0 + 120_000));
        assert_eq!(minutely.next_within(T0 + 1, None, Some(T0 + 30_000)), None);
        for (expression, zone, says) in [
            ("* * * * *", None, "six"),
            ("0 0 25 * * *", None, "not valid"),
            ("0 0 0 * * *", Some("Mars/Olympus"), "not a known time zone"),
        ] {
            let err = Cadence::parse(expression, zone).err().unwrap_or_default();
            assert!(err.contains(says), "{expression}: {err}");
        }
        let mut s =
            WorkflowSchedule { name: "nightly".into(), cron_expression: "0 0 0 * * *".into(), ..Default::default() };
        assert!(s.validate().err().unwrap_or_default().contains("startWorkflowRequest is required"));
        s.start_workflow_request = Some(serde_json::json!({"name": "cleanup"}));
        assert!(s.validate().is_ok());
        assert_eq!(s.workflow_name(), "cleanup");
        s.schedule_start_time = Some(10);
        s.schedule_end_time = Some(5);
        assert!(s.validate().err().unwrap_or_default().contains("before scheduleStartTime"));
        s.name = "with space".into();
        assert!(s.validate().is_err());
    }
}

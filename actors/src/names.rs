//! Metric names, in one place. Conductor's names where Conductor has one.
//!
//! Labels whose values clients choose (a workflow name, a task type) go through
//! [`workflow_label`] and [`task_type_label`]: each takes at most [`MAX_LABEL_VALUES`] distinct
//! values on a node, and every further value shares [`OTHER_LABEL`], so no client can grow
//! `/metrics` (and the recorder's memory) without end by inventing names.

use std::collections::HashSet;
use std::sync::LazyLock;

use parking_lot::Mutex;

/// Counter: workflows started, by `workflowName`.
pub const WORKFLOW_START_SUCCESS: &str = "workflow_start_success_total";
/// Counter: workflows that reached a terminal status, by `workflowName` and `status`.
pub const WORKFLOW_COMPLETION: &str = "workflow_completion_total";
/// Counter: workflows that ended unsuccessfully, by `workflowName` and `status`.
pub const WORKFLOW_FAILURE: &str = "workflow_failure_total";
/// Counter: tasks handed to workers, by `taskType`.
pub const TASK_POLL: &str = "task_poll_total";
/// Counter: tasks the decision that scheduled them handed straight to a waiting long poll,
/// committed as polled in the same batch (also counted in `task_poll_total`), by `taskType`.
pub const TASK_HANDED_OFF: &str = "overture_task_handed_off_total";
/// Counter: backups this node took (`POST /api/admin/backup`).
pub const BACKUPS: &str = "overture_backups_total";
/// Histogram: how long a backup took, catching up with every group's leader included.
pub const BACKUP_SECONDS: &str = "overture_backup_seconds";
/// Counter: spans sent to the OTLP endpoint (when traces are on).
pub const TRACE_SPANS_EXPORTED: &str = "overture_trace_spans_exported_total";
/// Counter: spans not sent, by `reason`: `queue_full` (the collector is slower than the node
/// makes spans) or `export_failed` (the endpoint refused or did not answer).
pub const TRACE_SPANS_DROPPED: &str = "overture_trace_spans_dropped_total";
/// Counter: export requests to the OTLP endpoint that failed.
pub const TRACE_EXPORT_FAILURES: &str = "overture_trace_export_failures_total";
/// Counter: task updates accepted, by `status` (an update names its task by id, not by type).
pub const TASK_UPDATE: &str = "task_update_total";
/// Gauge: tasks waiting in a worker queue, by `queue`; set on the leader when metrics are scraped.
pub const TASK_QUEUE_DEPTH: &str = "task_queue_depth";
/// Gauge: long polls waiting on an empty queue, by `queue`; set on the leader when metrics are
/// scraped.
pub const TASK_POLLS_WAITING: &str = "overture_task_polls_waiting";
/// Histogram: seconds from a task becoming pollable to a worker receiving it.
pub const TASK_QUEUE_WAIT: &str = "task_queue_wait_seconds";
/// Histogram: seconds a task ran, from its start to its end, by `taskType` and final `status`.
pub const TASK_EXECUTION: &str = "task_execution_seconds";
/// Counter: tasks that timed out (response, poll or total timeout), by `taskType`.
pub const TASK_TIMEOUT: &str = "task_timeout_total";
/// Counter: hand-offs held back by a task definition's rate limit, by `taskType`.
pub const TASK_RATE_LIMITED: &str = "task_rate_limited_total";
/// Counter: hand-offs held back by a task definition's `concurrentExecLimit`, by `taskType`.
pub const TASK_CONCURRENT_EXECUTION_LIMITED: &str = "task_concurrent_execution_limited_total";
/// Counter: with partitions, permits asked of the metadata leader for tasks of limited
/// definitions, by `answer` (`granted`, `busy`, `rate_limited`, `undecided`).
pub const TASK_PERMITS: &str = "overture_task_permits_total";
/// Counter: workflow starts refused (unknown definition, bad input, idempotency key in use), by
/// `workflowName`.
pub const WORKFLOW_START_ERROR: &str = "workflow_start_error_total";
/// Gauge: RUNNING workflows by `workflowName`, counted from this node's search index when
/// metrics are scraped.
pub const WORKFLOW_RUNNING: &str = "workflow_running";
/// Histogram: seconds from a workflow's start to its end, by `workflowName` and `status`.
pub const WORKFLOW_EXECUTION: &str = "workflow_execution_seconds";
/// Counter: durable timers fired, by `kind`.
pub const TIMER_FIRED: &str = "overture_timer_fired_total";
/// Counter: timer firings that failed and will be tried again later (a follow-up whose broker
/// or peer is unavailable), by `kind`.
pub const TIMER_FAILED: &str = "overture_timer_failed_total";
/// Histogram: seconds one workflow decision took (decide + commit + apply), by `command`.
pub const DECIDE_SECONDS: &str = "workflow_decision_seconds";
/// Histogram: messages one workflow actor decided together and committed as one entry.
pub const DECIDE_BATCH_SIZE: &str = "overture_decide_batch_size";
/// Counter: decisions retried because the workflow changed underneath (version guard).
pub const DECIDE_CONFLICT: &str = "overture_decide_conflict_total";
/// Gauge: workflow actors alive on this node.
pub const ACTORS_ACTIVE: &str = "overture_workflow_actors";
/// Counter: workflow actors passivated because more than `max_live_actors` were live.
pub const ACTORS_EVICTED: &str = "overture_workflow_actors_evicted_total";
/// Gauge: 1 while this node is the ready leader.
pub const LEADER_READY: &str = "overture_leader_ready";
/// Counter: tasks a poll on this node received from partitions other nodes lead.
pub const TASK_POLL_FORWARDED: &str = "overture_task_poll_forwarded_total";
/// Counter: notices sent to nodes whose long polls wait for a queue that got a ready task here,
/// by `outcome` (`woke`: a poll there woke; `nobody_waits`; `failed`; `dropped`: too many queued).
pub const READY_NOTICES: &str = "overture_ready_notices_total";

/// Histogram: seconds one script evaluation took, by `engine` (`javascript`, `jq`).
pub const SCRIPT_SECONDS: &str = "overture_script_seconds";
/// Counter: script evaluations that failed (error, time or memory limit), by `engine`.
pub const SCRIPT_ERRORS: &str = "overture_script_errors_total";

/// Histogram: seconds the leader's executor spent on one system task, by `taskType`.
pub const SYSTEM_TASK_SECONDS: &str = "overture_system_task_seconds";

/// Counter: event handler actions run, by `outcome` (`completed`, `failed`, `skipped`).
pub const EVENT_ACTIONS: &str = "overture_event_actions_total";

/// Counter: schedule fires, by `outcome` (`started`, `failed`, `skipped`).
pub const SCHEDULE_FIRES: &str = "overture_schedule_fires_total";

/// Counter: ended workflows deleted by retention.
pub const WORKFLOWS_PURGED: &str = "overture_workflows_purged_total";

/// Histogram: seconds one search or listing took, by `kind`.
pub const SEARCH_SECONDS: &str = "overture_search_seconds";

/// Gauge: synchronous executions waiting for their workflow on this node.
pub const SYNC_EXECUTIONS_WAITING: &str = "overture_sync_executions_waiting";

/// Counter: requests refused with 429 because a workflow's inbox was full.
pub const INBOX_FULL: &str = "overture_workflow_inbox_full_total";

/// Counter: `${workflow.secrets.NAME}` expressions replaced in tasks handed over.
pub const SECRETS_SUBSTITUTED: &str = "overture_secrets_substituted_total";

/// Counter: payloads over their threshold moved to external payload storage by the engine, by
/// `payloadType`.
pub const EXTERNAL_PAYLOADS_OFFLOADED: &str = "overture_external_payloads_offloaded_total";

/// Counter: stored payloads loaded back into a workflow's state to decide on.
pub const EXTERNAL_PAYLOADS_LOADED: &str = "overture_external_payloads_loaded_total";

/// Counter: stored payloads that could not be read back (missing or not a JSON object).
pub const EXTERNAL_PAYLOAD_ERRORS: &str = "overture_external_payload_errors_total";

/// Distinct values a client-chosen label takes per metric family kind on one node.
pub const MAX_LABEL_VALUES: usize = 1_000;
/// The label value every name past [`MAX_LABEL_VALUES`] shares.
pub const OTHER_LABEL: &str = "_other";
/// The label value of a start that named no known definition.
pub const UNKNOWN_LABEL: &str = "_unknown";

/// The label values handed out so far, first come first served.
struct LabelValues(Mutex<HashSet<String>>);

impl LabelValues {
    fn label(&self, value: &str) -> String {
        let mut seen = self.0.lock();
        if seen.contains(value) {
            return value.to_owned();
        }
        if seen.len() < MAX_LABEL_VALUES {
            seen.insert(value.to_owned());
            return value.to_owned();
        }
        OTHER_LABEL.to_owned()
    }
}

static WORKFLOW_NAMES: LazyLock<LabelValues> = LazyLock::new(|| LabelValues(Mutex::default()));
static TASK_TYPES: LazyLock<LabelValues> = LazyLock::new(|| LabelValues(Mutex::default()));

/// The `workflowName` label for a workflow name.
pub fn workflow_label(name: &str) -> String {
    WORKFLOW_NAMES.label(name)
}

/// The `taskType` label for a task type.
pub fn task_type_label(task_type: &str) -> String {
    TASK_TYPES.label(task_type)
}

/// Makes the label-less counters and gauges exist from the start.
pub fn register() {
    metrics::counter!(TIMER_FIRED).increment(0);
    metrics::counter!(TIMER_FAILED).increment(0);
    metrics::counter!(DECIDE_CONFLICT).increment(0);
    metrics::counter!(WORKFLOWS_PURGED).increment(0);
    metrics::counter!(ACTORS_EVICTED).increment(0);
    metrics::counter!(INBOX_FULL).increment(0);
    metrics::counter!(SECRETS_SUBSTITUTED).increment(0);
    metrics::counter!(EXTERNAL_PAYLOADS_LOADED).increment(0);
    metrics::counter!(EXTERNAL_PAYLOAD_ERRORS).increment(0);
    for t in overture_core::external::PayloadType::ALL {
        metrics::counter!(EXTERNAL_PAYLOADS_OFFLOADED, "payloadType" => t.as_str()).increment(0);
    }
    metrics::gauge!(SYNC_EXECUTIONS_WAITING).set(0.0);
    metrics::gauge!(ACTORS_ACTIVE).set(0.0);
    metrics::gauge!(LEADER_READY).set(0.0);
}

//! Tasks: polls, results, signals, logs, queues and the gauges a scrape computes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overture_core::queries;
use overture_core::queue::QueueName;
use overture_core::{Object, TaskResultStatus, TaskState, TaskUpdate, WorkflowState};
use overture_raft::keys::TaskLogRow;
use serde_json::value::RawValue;

use super::{Engine, PollRecord};
use crate::actor::UpdateOutcome;
use crate::error::Error;
use crate::leader::Leader;
use crate::names;

impl Engine {
    /// Hands up to `count` tasks of a type (and domain) to a worker, waiting up to `wait` for
    /// the first one. Each is committed as polled before it is returned.
    pub async fn poll(
        &self,
        task_type: &str,
        domain: Option<&str>,
        worker_id: Option<String>,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<Box<RawValue>>, Error> {
        let queue = QueueName::worker(task_type, domain);
        if queue.is_system() {
            return Err(Error::BadRequest(format!(
                "{queue} is an internal queue of the server; workers cannot poll it"
            )));
        }
        if self.partitioned() {
            let poll =
                super::polls::Poll { task_type: task_type.into(), domain: domain.map(str::to_owned), worker_id, count };
            return self.poll_partitions(poll, wait).await;
        }
        let leader = self.leader()?;
        leader.host.polls.record(task_type, domain, worker_id.as_deref(), crate::now_ms());
        leader.workflows.poll_queue(queue.as_str(), task_type, worker_id, count, wait).await
    }

    /// Records a task result.
    pub async fn update_task(&self, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        self.leader_for(&update.task_id)?.workflows.update_task(update).await
    }

    /// Records a task result, then hands the same worker the next task of that queue, if any
    /// (`POST /tasks/update-v2`).
    pub async fn update_task_and_poll(&self, update: TaskUpdate) -> Result<Option<Box<RawValue>>, Error> {
        let worker_id = update.worker_id.clone();
        let workflows = self.leader_for(&update.task_id)?.workflows.clone();
        let outcome = workflows.update_task(update).await?;
        let Some(queue) = outcome.queue.filter(|_| outcome.terminal) else { return Ok(None) };
        let mut next = workflows.poll_queue(&queue, &outcome.task_type, worker_id, 1, Duration::ZERO).await?;
        Ok(next.pop())
    }

    /// Updates the first open task with this reference name; `None` if there is none.
    pub async fn update_task_by_ref(
        &self,
        workflow_id: &str,
        reference: &str,
        status: TaskResultStatus,
        output: Object,
        worker_id: Option<String>,
    ) -> Result<Option<String>, Error> {
        let leader = self.leader_for(workflow_id)?;
        self.workflow(workflow_id)?;
        leader.workflows.update_by_ref(workflow_id, Some(reference.to_owned()), status, output, worker_id).await
    }

    /// Signals a workflow: updates its first open WAIT task, or the first in its running
    /// sub-workflows, depth first ([`queries::signal_target`]), with `status` and `output`.
    /// Returns the task's id, or `None` if no WAIT was open.
    pub async fn signal(
        &self,
        workflow_id: &str,
        status: TaskResultStatus,
        output: Object,
    ) -> Result<Option<String>, Error> {
        self.leader_for(workflow_id)?;
        let wf = self.workflow(workflow_id)?;
        let load = |id: &str| self.workflow(id).ok();
        let Some(target) = queries::signal_target(&wf, &load) else { return Ok(None) };
        self.leader_for(&target)?.workflows.update_by_ref(&target, None, status, output, None).await
    }

    /// Appends a line to a task's execution log.
    pub async fn add_task_log(&self, task_id: &str, log: String) -> Result<(), Error> {
        let owner = crate::workflows::task_owner(self.read_of(task_id), task_id)?;
        self.leader_for(task_id)?.workflows.add_log(&owner, task_id.to_owned(), log).await
    }

    /// A task and its workflow, from the local replica.
    pub fn task(&self, task_id: &str) -> Result<(WorkflowState, TaskState), Error> {
        crate::workflows::task(self.read_of(task_id), task_id)
    }

    /// A task's execution log.
    pub fn task_logs(&self, task_id: &str) -> Result<Vec<TaskLogRow>, Error> {
        Ok(self.read_of(task_id).task_logs(task_id)?)
    }

    /// The gauges a metrics scrape computes on the spot (`task_queue_depth` and
    /// `overture_task_polls_waiting` by queue on the leader, `workflow_running` by name from the
    /// index), as `(metric, label name, label value, value)`. They are rendered from this list
    /// rather than kept in the recorder, so a queue that is gone or a name with nothing running
    /// leaves no series behind. Past [`names::MAX_LABEL_VALUES`] label values (queues polled once
    /// and not yet forgotten, names), the smallest are summed under [`names::OTHER_LABEL`].
    pub fn scrape_gauges(&self) -> Vec<(&'static str, &'static str, String, f64)> {
        let mut out = Vec::new();
        let mut add = |metric: &'static str, label: &'static str, values: Vec<(String, u64)>| {
            for (value, n) in capped(values) {
                out.push((metric, label, value, n as f64));
            }
        };
        let (mut depths, mut waiting) = (BTreeMap::<String, u64>::new(), BTreeMap::<String, u64>::new());
        for leader in self.local_leaders() {
            for (queue, n) in leader.host.queues.depths() {
                *depths.entry(queue).or_default() += n as u64;
            }
            for (queue, n) in leader.host.queues.waiting_polls() {
                *waiting.entry(queue).or_default() += n as u64;
            }
        }
        if !depths.is_empty() || !waiting.is_empty() {
            add(names::TASK_QUEUE_DEPTH, "queue", depths.into_iter().collect());
            add(names::TASK_POLLS_WAITING, "queue", waiting.into_iter().collect());
        }
        let mut running = BTreeMap::<String, u64>::new();
        for read in self.workflow_reads() {
            match read.running_counts() {
                Ok(counts) => counts.into_iter().for_each(|(name, n)| *running.entry(name).or_default() += n),
                Err(e) => tracing::warn!(error = %e, "counting running workflows"),
            }
        }
        add(names::WORKFLOW_RUNNING, "workflowName", running.into_iter().collect());
        out
    }

    /// Tasks waiting per task type (domain-less queues), from the local replica.
    pub fn queue_sizes(&self, task_types: &[String]) -> Result<BTreeMap<String, usize>, Error> {
        let mut out = BTreeMap::new();
        for t in task_types {
            let mut size = 0;
            for read in self.workflow_reads() {
                size += read.queue_size(t)?;
            }
            out.insert(t.clone(), size);
        }
        Ok(out)
    }

    /// Every worker queue and the tasks waiting in it, by queue name.
    pub fn queue_all(&self) -> Result<BTreeMap<String, usize>, Error> {
        let mut out = BTreeMap::new();
        for read in self.workflow_reads() {
            for item in read.queue_entries()? {
                if !QueueName::is_system_name(&item.queue) {
                    *out.entry(item.queue).or_insert(0) += 1;
                }
            }
        }
        Ok(out)
    }

    /// Every worker queue with its tasks waiting (`size`) and handed out, not yet finished
    /// (`uacked`: IN_PROGRESS worker tasks, by the queue they were polled from).
    pub fn queue_all_verbose(&self) -> Result<BTreeMap<String, (usize, usize)>, Error> {
        let mut out: BTreeMap<String, (usize, usize)> =
            self.queue_all()?.into_iter().map(|(queue, size)| (queue, (size, 0))).collect();
        for read in self.workflow_reads() {
            let mut by_workflow: BTreeMap<overture_core::WorkflowId, Vec<String>> = BTreeMap::new();
            for item in read.running_entries()? {
                by_workflow.entry(item.workflow_id).or_default().push(item.task_id);
            }
            for (workflow_id, task_ids) in by_workflow {
                let Some(wf) = read.workflow(&workflow_id)? else { continue };
                for task in wf.tasks.iter().filter(|t| task_ids.contains(&t.task_id)) {
                    if let Some(queue) = task.queue.as_ref().filter(|q| !QueueName::is_system_name(q)) {
                        out.entry(queue.clone()).or_default().1 += 1;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Conductor's poll data for every queue of `task_type` (all queues if `None`), as the
    /// leader saw them; with partitions, as every node's partitions saw them, the latest poll of
    /// each queue (a node that does not answer within a few seconds adds none).
    pub async fn poll_data(&self, task_type: Option<&str>) -> Result<Vec<PollRecord>, Error> {
        if !self.partitioned() {
            return Ok(poll_data_of(&[self.leader()?], task_type));
        }
        let mut records = poll_data_of(&self.local_leaders(), task_type);
        records.extend(self.poll_data_of_others(task_type).await);
        Ok(latest_polls(records))
    }

    /// The events of an execution, oldest first, with their revisions.
    pub fn history(&self, workflow_id: &str) -> Result<Vec<(u64, overture_core::Event)>, Error> {
        self.workflow(workflow_id)?;
        Ok(self.read_of(workflow_id).events(workflow_id)?)
    }

    /// Waits up to `timeout` for this node to serve writes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        let mut watch = self.replica().leadership_watch();
        // Partitioned: every group too (a one-node cluster leads them all).
        let ready =
            || self.is_ready() && (!self.partitioned() || self.local_leaders().len() == self.inner.leaders.len());
        while started.elapsed() < timeout && !ready() {
            // Leader services start right after the Raft state change this wakes on.
            let _ = tokio::time::timeout(Duration::from_millis(20), watch.changed()).await;
        }
        ready()
    }
}

/// A scrape-time gauge's values, at most [`names::MAX_LABEL_VALUES`] of them: the largest, and
/// the rest summed under [`names::OTHER_LABEL`] (nothing there if they sum to 0).
fn capped(mut values: Vec<(String, u64)>) -> Vec<(String, u64)> {
    if values.len() <= names::MAX_LABEL_VALUES {
        return values;
    }
    values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let rest: u64 = values.iter().skip(names::MAX_LABEL_VALUES).map(|(_, n)| n).sum();
    values.truncate(names::MAX_LABEL_VALUES);
    if rest > 0 {
        values.push((names::OTHER_LABEL.to_owned(), rest));
    }
    values
}

/// The poll data the leader services in `leaders` keep, the latest poll of each queue.
pub(super) fn poll_data_of(leaders: &[Arc<Leader>], task_type: Option<&str>) -> Vec<PollRecord> {
    let records =
        leaders.iter().flat_map(|leader| leader.host.polls.all()).filter_map(|((domain, name), time, worker)| {
            task_type.is_none_or(|t| t == name).then(|| PollRecord {
                task_type: name.into(),
                domain,
                worker_id: worker,
                last_poll_time: time,
            })
        });
    latest_polls(records.collect())
}

/// The latest record of each queue (task type and domain) among `records`.
fn latest_polls(records: Vec<PollRecord>) -> Vec<PollRecord> {
    let mut latest: BTreeMap<(String, Option<String>), PollRecord> = BTreeMap::new();
    for r in records {
        let key = (r.task_type.to_string(), r.domain.clone());
        if latest.get(&key).is_none_or(|l| l.last_poll_time < r.last_poll_time) {
            latest.insert(key, r);
        }
    }
    latest.into_values().collect()
}

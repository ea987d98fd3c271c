//! The engine: what the API layer calls. It validates, routes each request to the right place
//! (workflow actor, queues, Raft, or the local read view) and maps outcomes to [`Error`]s.
//!
//! Writes need this node to be the ready leader; otherwise they fail with
//! [`Error::Unavailable`], which the API turns into a retryable 503. Reads are served from the
//! local replica on any node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overture_core::dsl::{EventHandler, StartWorkflowRequest, TaskDef, WorkflowDef};
use overture_core::rows::queue_name;
use overture_core::{Command, Object, Plan, TaskResultStatus, TaskState, TaskUpdate, WorkflowState};
use overture_core::{queries, validate};
use overture_raft::codec::JsonBytes;
use overture_raft::keys::TaskLogRow;
use overture_raft::replica::ClusterStatus;
use overture_raft::rpc::RpcServer;
use overture_raft::{Leadership, ReadView, Replica, Request, Response};
use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;

use crate::actor::UpdateOutcome;
use crate::error::Error;
use crate::leader::Leader;
use crate::names;
use crate::options::EngineOptions;
use crate::workflows::{fill_task_defs, prepare_start};

mod schedules;

/// The engine handle: cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    replica: Replica,
    leader: RwLock<Option<Arc<Leader>>>,
    options: EngineOptions,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The last poll of one queue (Conductor's `PollData`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRecord {
    /// The task type polled.
    pub task_type: String,
    #[allow(missing_docs)]
    pub domain: Option<String>,
    /// The worker that polled last.
    pub worker_id: Option<String>,
    /// Epoch millis.
    pub last_poll_time: i64,
}

impl Engine {
    /// Starts the engine on a replica: it follows Raft leadership from now on.
    pub fn start(replica: Replica, options: EngineOptions) -> Engine {
        let engine = Engine {
            inner: Arc::new(Inner { replica, leader: RwLock::new(None), options, watcher: Mutex::new(None) }),
        };
        let watcher = tokio::spawn(engine.clone().follow_leadership());
        *engine.inner.watcher.lock() = Some(watcher);
        engine
    }

    /// Starts and stops leader services as leadership comes and goes.
    async fn follow_leadership(self) {
        let mut watch = self.inner.replica.leadership_watch();
        loop {
            let now = watch.current();
            let current = self.inner.leader.read().clone();
            match (now.ready, current) {
                (true, Some(leader)) if leader.term() == now.term => leader.host.set_lease(now.lease),
                (true, current) => {
                    if let Some(old) = current {
                        self.step_down(&old);
                    }
                    let replica = self.inner.replica.clone();
                    match Leader::start(replica, now.term, now.lease, &self.inner.options) {
                        Ok(leader) => *self.inner.leader.write() = Some(Arc::new(leader)),
                        Err(e) => tracing::error!(error = %e, "cannot start leader services"),
                    }
                }
                (false, Some(old)) => self.step_down(&old),
                (false, None) => {}
            }
            if !watch.changed().await {
                break;
            }
        }
    }

    fn step_down(&self, leader: &Arc<Leader>) {
        *self.inner.leader.write() = None;
        leader.stop();
    }

    /// Stops leader services and Raft. Reads keep working on what is stored.
    pub async fn shutdown(&self) {
        if let Some(w) = self.inner.watcher.lock().take() {
            w.abort();
        }
        let current = self.inner.leader.read().clone();
        if let Some(ctx) = current {
            self.step_down(&ctx);
        }
        self.inner.replica.shutdown().await;
    }

    /// The replica under the engine.
    pub fn replica(&self) -> &Replica {
        &self.inner.replica
    }

    fn read(&self) -> &ReadView {
        self.inner.replica.read()
    }

    /// Where this node stands in its group.
    pub fn leadership(&self) -> Leadership {
        self.inner.replica.leadership()
    }

    /// This node can serve writes now: it is the ready leader and holds its lease.
    pub fn is_ready(&self) -> bool {
        self.inner.leader.read().as_ref().is_some_and(|leader| leader.host.holds_lease())
    }

    /// Why this node cannot serve writes now, as the error a request gets; `None` if it can.
    pub fn not_serving(&self) -> Option<Error> {
        self.leader().err()
    }

    fn leader(&self) -> Result<Arc<Leader>, Error> {
        if let Some(leader) = self.inner.leader.read().clone() {
            leader.host.serving()?;
            return Ok(leader);
        }
        let l = self.leadership();
        Err(Error::Unavailable(match (l.is_leader, l.leader) {
            (true, _) => "this node was just elected leader and is catching up; retry shortly".into(),
            (false, Some(id)) if id != self.inner.replica.node_id() => {
                format!("this node is not the leader; node {id} is")
            }
            _ => "no leader is elected yet; retry shortly".into(),
        }))
    }

    async fn propose(&self, request: Request) -> Result<(), Error> {
        self.leader()?;
        match self.inner.replica.propose(request).await? {
            Response::Ok | Response::Applied { .. } | Response::Existing { .. } | Response::Purged { .. } => Ok(()),
            Response::NotFound(m) => Err(Error::NotFound(m)),
            Response::Conflict(m) => Err(Error::Conflict(m)),
            Response::RevisionConflict { current } => Err(Error::Conflict(format!("conflicting revision {current}"))),
            Response::Many(_) => Err(Error::Internal("a single request was answered with many responses".into())),
            Response::Rejected(m) => Err(Error::BadRequest(m)),
        }
    }

    // ---- cluster ----

    /// Where the group stands, as this node sees it.
    pub fn cluster_status(&self) -> ClusterStatus {
        self.inner.replica.status()
    }

    /// The client address of the current leader, if one is known and it is not this node.
    pub fn leader_address(&self) -> Option<String> {
        let leader = self.leadership().leader?;
        (leader != self.inner.replica.node_id()).then(|| self.inner.replica.node_addr(leader)).flatten()
    }

    /// Adds a learner (a non-voting member) and waits until it has caught up.
    pub async fn add_learner(&self, id: u64, address: String) -> Result<(), Error> {
        self.leader()?;
        Ok(self.inner.replica.add_learner(id, address).await?)
    }

    /// Makes a learner a voter.
    pub async fn promote(&self, id: u64) -> Result<(), Error> {
        self.leader()?;
        Ok(self.inner.replica.promote(id).await?)
    }

    /// Removes a member.
    pub async fn remove_member(&self, id: u64) -> Result<(), Error> {
        self.leader()?;
        Ok(self.inner.replica.remove(id).await?)
    }

    /// Waits until local reads reflect every write committed before the call (leader only).
    pub async fn ensure_linearizable(&self) -> Result<(), Error> {
        self.leader()?;
        Ok(self.inner.replica.ensure_linearizable().await?)
    }

    /// A digest of the state machine and the applied index it was taken at.
    pub async fn digest(&self) -> Result<(u64, String), Error> {
        let replica = self.inner.replica.clone();
        tokio::task::spawn_blocking(move || replica.digest())
            .await
            .map_err(|e| Error::Internal(format!("digest task: {e}")))?
            .map_err(Error::from)
    }

    /// The server half of Raft RPC.
    pub fn rpc(&self) -> &RpcServer {
        self.inner.replica.rpc()
    }

    // ---- metadata ----

    /// Creates or replaces task definitions.
    pub async fn put_task_defs(&self, mut defs: Vec<TaskDef>) -> Result<(), Error> {
        let now = crate::now_ms();
        for def in &mut defs {
            validate::task_def(def).map_err(Error::Invalid)?;
            def.audit.create_time = Some(now);
            def.audit.update_time = None;
            def.audit.updated_by = None;
        }
        self.propose(Request::PutTaskDefs { defs: defs.iter().map(JsonBytes::of).collect() }).await
    }

    /// Replaces an existing task definition.
    pub async fn update_task_def(&self, def: TaskDef) -> Result<(), Error> {
        validate::task_def(&def).map_err(Error::Invalid)?;
        self.propose(Request::UpdateTaskDef { def: JsonBytes::of(&def), time: crate::now_ms() }).await
    }

    /// Removes a task definition.
    pub async fn delete_task_def(&self, name: &str) -> Result<(), Error> {
        self.propose(Request::DeleteTaskDef { name: name.to_owned() }).await
    }

    /// Adds an event handler (`create`), or replaces an existing one.
    pub async fn put_event_handler(&self, handler: EventHandler, create: bool) -> Result<(), Error> {
        validate::event_handler(&handler).map_err(Error::Invalid)?;
        self.propose(Request::PutEventHandler { handler: JsonBytes::of(&handler), create }).await
    }

    /// Removes an event handler.
    pub async fn delete_event_handler(&self, name: &str) -> Result<(), Error> {
        self.propose(Request::DeleteEventHandler { name: name.to_owned() }).await
    }

    /// Every event handler.
    pub fn event_handlers(&self) -> Result<Vec<EventHandler>, Error> {
        Ok(self.read().event_handlers()?)
    }

    /// A task definition.
    pub fn task_def(&self, name: &str) -> Result<TaskDef, Error> {
        self.read().task_def(name)?.ok_or_else(|| Error::NotFound(format!("No such taskType found by name: {name}")))
    }

    /// Every task definition.
    pub fn task_defs(&self) -> Result<Vec<TaskDef>, Error> {
        Ok(self.read().task_defs()?)
    }

    /// Stores workflow definitions; with `overwrite` false an existing `(name, version)` conflicts.
    pub async fn put_workflow_defs(&self, defs: Vec<WorkflowDef>, overwrite: bool) -> Result<(), Error> {
        for def in &defs {
            validate::workflow_def(def).map_err(Error::Invalid)?;
        }
        let defs = defs.iter().map(JsonBytes::of).collect();
        self.propose(Request::PutWorkflowDefs { defs, overwrite, time: crate::now_ms() }).await
    }

    /// Removes one version of a workflow definition.
    pub async fn delete_workflow_def(&self, name: &str, version: i32) -> Result<(), Error> {
        self.propose(Request::DeleteWorkflowDef { name: name.to_owned(), version }).await
    }

    /// A workflow definition: `version`, or the latest.
    pub fn workflow_def(&self, name: &str, version: Option<i32>) -> Result<WorkflowDef, Error> {
        self.read().workflow_def(name, version)?.ok_or_else(|| {
            let v = version.map_or_else(|| "null".to_owned(), |v| v.to_string());
            Error::NotFound(format!("No such workflow found by name: {name}, version: {v}"))
        })
    }

    /// Every version of every workflow definition.
    pub fn workflow_defs(&self) -> Result<Vec<WorkflowDef>, Error> {
        Ok(self.read().workflow_defs()?)
    }

    // ---- workflows ----

    /// Starts a workflow and returns its id once the start is committed.
    pub async fn start_workflow(&self, request: StartWorkflowRequest) -> Result<String, Error> {
        let leader = self.leader()?;
        let workflow_id = crate::new_id();
        let name = request.name.clone().or_else(|| request.workflow_def.as_ref().map(|d| d.name.clone()));
        let started = match prepare_start(self.read(), request, workflow_id, None) {
            Ok(cmd) => leader.workflows.start_workflow(cmd).await,
            Err(e) => Err(e),
        };
        // Refusals that are the request's doing; a 503 during an election is not a start error.
        // A name with no definition gets no series of its own: anyone can send any name.
        let label = match &started {
            Err(Error::NotFound(_)) => Some(names::UNKNOWN_LABEL.to_owned()),
            Err(Error::BadRequest(_) | Error::Invalid(_) | Error::Conflict(_)) => {
                Some(names::workflow_label(&name.unwrap_or_default()))
            }
            _ => None,
        };
        if let Some(label) = label {
            metrics::counter!(names::WORKFLOW_START_ERROR, "workflowName" => label).increment(1);
        }
        started
    }

    /// Starts a workflow and waits, up to `wait`, until it ends, blocks on a WAIT without a
    /// deadline, or finishes one of `wait_refs`. Woken by the commits that change it. Answers
    /// the workflow and whether the wait ran out.
    pub async fn execute_sync(
        &self,
        request: StartWorkflowRequest,
        wait_refs: &[String],
        wait: Duration,
    ) -> Result<(WorkflowState, bool), Error> {
        let id = self.start_workflow(request).await?;
        let watch = self.leader()?.host.watchers.watch(&id);
        let deadline = tokio::time::Instant::now() + wait;
        let result = loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wf = self.workflow(&id)?;
            if queries::settled(&wf, wait_refs) {
                break (wf, false);
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => break (self.workflow(&id)?, true),
            }
        };
        Ok(result)
    }

    /// Sends an operation (pause, resume, retry, skip, ...) to a workflow.
    pub async fn operate(&self, workflow_id: &str, command: overture_core::Command) -> Result<(), Error> {
        self.workflow(workflow_id)?;
        self.leader()?.workflows.command(workflow_id, command).await.map(|_| ())
    }

    /// `POST /workflow/{id}/retry?resumeSubworkflowTasks=`: runs the failed tasks again. With
    /// `resume_subworkflows`, a failed SUB_WORKFLOW task whose child can be retried is not run
    /// again with a new child: the child is retried (the same way, recursively) and the task
    /// waits for it.
    pub async fn retry(&self, workflow_id: &str, resume_subworkflows: bool) -> Result<(), Error> {
        let mut resume = Vec::new();
        let mut children = Vec::new();
        if resume_subworkflows {
            let wf = self.workflow(workflow_id)?;
            for (t, child_id) in queries::ended_children(&wf) {
                if self.workflow(child_id).is_ok_and(|child| queries::retryable(&child)) {
                    resume.push(t.task_id.clone());
                    children.push((t.task_id.clone(), child_id.to_owned()));
                }
            }
        }
        // The parent first, so it waits for its children before they can end again.
        self.operate(workflow_id, Command::Retry { resume }).await?;
        for (task_id, child_id) in children {
            if let Err(e) = Box::pin(self.retry(&child_id, true)).await {
                // The child could not be retried after all: tell the waiting task how it ended.
                tracing::warn!(workflow_id, child_id, error = %e, "retrying a sub-workflow failed");
                let child = self.workflow(&child_id)?;
                let ended = overture_core::command::ChildEnded {
                    task_id,
                    child_id: child_id.clone(),
                    status: child.header.status,
                    output: child.header.output.clone(),
                    reason: child.header.reason_for_incompletion.clone(),
                };
                self.operate(workflow_id, Command::ChildEnded(Box::new(ended))).await?;
            }
        }
        Ok(())
    }

    /// Restarts a finished workflow, on the latest version of its definition if asked.
    pub async fn restart(&self, workflow_id: &str, use_latest_definitions: bool) -> Result<(), Error> {
        let wf = self.workflow(workflow_id)?;
        let plan = if use_latest_definitions {
            let name = &wf.header.workflow_name;
            let mut def = self
                .read()
                .workflow_def(name, None)?
                .ok_or_else(|| Error::NotFound(format!("No such workflow found by name: {name}, version: null")))?;
            fill_task_defs(self.read(), &mut def.tasks)?;
            Some(Arc::new(Plan::new(def)))
        } else {
            None
        };
        self.operate(workflow_id, overture_core::Command::Restart { plan }).await
    }

    /// Deletes a workflow execution. With `archive` (Conductor's default) only a finished one.
    pub async fn remove_workflow(&self, workflow_id: &str, archive: bool) -> Result<(), Error> {
        let wf = self.workflow(workflow_id)?;
        if archive && !wf.header.status.is_terminal() {
            return Err(Error::BadRequest(format!(
                "Workflow {workflow_id} is {}: only a finished workflow can be archived",
                wf.header.status.as_str()
            )));
        }
        self.leader()?.workflows.stop_actor(workflow_id);
        self.propose(Request::RemoveWorkflow { workflow_id: workflow_id.to_owned() }).await
    }

    /// Workflow actors live on this node (none unless it leads).
    pub fn live_actors(&self) -> usize {
        self.leader().map_or(0, |l| l.workflows.live_actors())
    }

    /// An execution, from the local replica.
    pub fn workflow(&self, id: &str) -> Result<WorkflowState, Error> {
        crate::workflows::workflow(self.read(), id)
    }

    /// A workflow's header (status, input, output, variables, times), without its tasks.
    pub fn workflow_header(&self, id: &str) -> Result<overture_core::WorkflowHeader, Error> {
        self.read().workflow_header(id)?.ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {id}")))
    }

    /// Terminates a workflow.
    pub async fn terminate(&self, id: &str, reason: Option<String>) -> Result<(), Error> {
        self.workflow(id)?;
        self.leader()?.workflows.terminate(id, reason).await
    }

    // ---- tasks ----

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
        let queue = queue_name(task_type, domain, None, None);
        if queue.starts_with(overture_core::rows::SYSTEM_QUEUE_PREFIX) {
            return Err(Error::BadRequest(format!(
                "{queue} is an internal queue of the server; workers cannot poll it"
            )));
        }
        let leader = self.leader()?;
        leader.host.polls.record(task_type, domain, worker_id.as_deref(), crate::now_ms());
        leader.workflows.poll_queue(&queue, task_type, worker_id, count, wait).await
    }

    /// Records a task result.
    pub async fn update_task(&self, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        self.leader()?.workflows.update_task(update).await
    }

    /// Records a task result, then hands the same worker the next task of that queue, if any
    /// (`POST /tasks/update-v2`).
    pub async fn update_task_and_poll(&self, update: TaskUpdate) -> Result<Option<Box<RawValue>>, Error> {
        let worker_id = update.worker_id.clone();
        let workflows = self.leader()?.workflows.clone();
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
        self.workflow(workflow_id)?;
        self.leader()?.workflows.update_by_ref(workflow_id, Some(reference.to_owned()), status, output, worker_id).await
    }

    /// Signals a workflow: updates the task it is blocked on (its first open WAIT or HUMAN task,
    /// else its first open worker task) with `status` and `output`. Returns the task's id, or
    /// `None` if nothing was waiting.
    pub async fn signal(
        &self,
        workflow_id: &str,
        status: TaskResultStatus,
        output: Object,
    ) -> Result<Option<String>, Error> {
        let wf = self.workflow(workflow_id)?;
        let load = |id: &str| self.workflow(id).ok();
        let target = queries::signal_target(&wf, &load).unwrap_or_else(|| workflow_id.to_owned());
        self.leader()?.workflows.update_by_ref(&target, None, status, output, None).await
    }

    /// Appends a line to a task's execution log.
    pub async fn add_task_log(&self, task_id: &str, log: String) -> Result<(), Error> {
        let owner = crate::workflows::task_owner(self.read(), task_id)?;
        self.leader()?.workflows.add_log(&owner, task_id.to_owned(), log).await
    }

    /// A task and its workflow, from the local replica.
    pub fn task(&self, task_id: &str) -> Result<(WorkflowState, TaskState), Error> {
        crate::workflows::task(self.read(), task_id)
    }

    /// A task's execution log.
    pub fn task_logs(&self, task_id: &str) -> Result<Vec<TaskLogRow>, Error> {
        Ok(self.read().task_logs(task_id)?)
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
        if let Some(leader) = self.inner.leader.read().clone() {
            let widen = |v: Vec<(String, usize)>| v.into_iter().map(|(q, n)| (q, n as u64)).collect();
            add(names::TASK_QUEUE_DEPTH, "queue", widen(leader.host.queues.depths()));
            add(names::TASK_POLLS_WAITING, "queue", widen(leader.host.queues.waiting_polls()));
        }
        match self.read().running_counts() {
            Ok(counts) => add(names::WORKFLOW_RUNNING, "workflowName", counts.into_iter().collect()),
            Err(e) => tracing::warn!(error = %e, "counting running workflows"),
        }
        out
    }

    /// Tasks waiting per task type (domain-less queues), from the local replica.
    pub fn queue_sizes(&self, task_types: &[String]) -> Result<BTreeMap<String, usize>, Error> {
        let mut out = BTreeMap::new();
        for t in task_types {
            out.insert(t.clone(), self.read().queue_size(t)?);
        }
        Ok(out)
    }

    /// Every worker queue and the tasks waiting in it, by queue name.
    pub fn queue_all(&self) -> Result<BTreeMap<String, usize>, Error> {
        let mut out = BTreeMap::new();
        for item in self.read().queue_entries()? {
            if !item.queue.starts_with(overture_core::rows::SYSTEM_QUEUE_PREFIX) {
                *out.entry(item.queue).or_insert(0) += 1;
            }
        }
        Ok(out)
    }

    /// Conductor's poll data for every queue of `task_type` (all queues if `None`), as the
    /// leader saw them.
    pub fn poll_data(&self, task_type: Option<&str>) -> Result<Vec<PollRecord>, Error> {
        Ok(self
            .leader()?
            .host
            .polls
            .all()
            .into_iter()
            .filter_map(|((domain, name), time, worker)| {
                task_type.is_none_or(|t| t == name).then_some(PollRecord {
                    task_type: name,
                    domain,
                    worker_id: worker,
                    last_poll_time: time,
                })
            })
            .collect())
    }

    /// The events of an execution, oldest first, with their revisions.
    pub fn history(&self, workflow_id: &str) -> Result<Vec<(u64, overture_core::Event)>, Error> {
        self.workflow(workflow_id)?;
        Ok(self.read().events(workflow_id)?)
    }

    /// Waits up to `timeout` for this node to serve writes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        let mut watch = self.inner.replica.leadership_watch();
        while started.elapsed() < timeout && !self.is_ready() {
            // Leader services start right after the Raft state change this wakes on.
            let _ = tokio::time::timeout(Duration::from_millis(20), watch.changed()).await;
        }
        self.is_ready()
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

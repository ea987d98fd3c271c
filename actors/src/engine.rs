//! The engine: what the API layer calls. It validates, routes each request to the right place
//! (workflow actor, queues, Raft, or the local read view) and maps outcomes to [`Error`]s.
//!
//! Writes need this node to be the ready leader; otherwise they fail with
//! [`Error::Unavailable`], which the API turns into a retryable 503. Reads are served from the
//! local replica on any node.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overture_core::dsl::{EventHandler, StartWorkflowRequest, TaskDef, WorkflowDef, WorkflowTask};
use overture_core::rows::queue_name;
use overture_core::validate;
use overture_core::{
    Command, Object, Plan, StartWorkflow, TaskResultStatus, TaskState, TaskStatus, TaskUpdate, WorkflowState,
    WorkflowStatus,
};
use overture_raft::codec::JsonBytes;
use overture_raft::keys::TaskLogRow;
use overture_raft::replica::ClusterStatus;
use overture_raft::rpc::RpcServer;
use overture_raft::{Leadership, ReadView, Replica, Request, Response};
use parking_lot::{Mutex, RwLock};
use serde_json::value::RawValue;

use crate::actor::UpdateOutcome;
use crate::error::Error;
use crate::leader::LeaderContext;
use crate::limits::{Admission, TaskLimits};
use crate::names;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Passivate a workflow actor after this long without messages.
    pub idle_actor_timeout: Duration,
    /// Live workflow actors at most: beyond, the least recently active are passivated.
    pub max_live_actors: usize,
    /// How long ended executions are kept, and how often the leader looks for expired ones.
    pub retention: crate::retention::Retention,
    /// How late a schedule's fire may run when the schedule does not catch up.
    pub schedule_grace: Duration,
    /// The largest output a task may have, in bytes: an HTTP task's response body over it
    /// fails the task.
    pub max_task_output_bytes: usize,
    /// Where JSON_JQ_TRANSFORM queries run: sandbox processes under time and memory limits.
    /// Without one (the default), jq tasks fail saying jq is not available.
    pub jq: overture_script::Sandbox,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            idle_actor_timeout: Duration::from_secs(30),
            max_live_actors: crate::actor::DEFAULT_MAX_LIVE,
            retention: Default::default(),
            schedule_grace: crate::scheduler::DEFAULT_GRACE,
            jq: overture_script::Sandbox::unavailable(),
            max_task_output_bytes: 3 << 20,
        }
    }
}

/// The engine handle: cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    replica: Replica,
    leader: RwLock<Option<Arc<LeaderContext>>>,
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

/// A handle to the engine that does not keep it alive (held by leader services).
#[derive(Clone)]
pub(crate) struct WeakEngine(std::sync::Weak<Inner>);

impl WeakEngine {
    pub fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
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
                (true, Some(ctx)) if ctx.term == now.term => ctx.set_lease(now.lease),
                (true, current) => {
                    if let Some(old) = current {
                        self.step_down(&old);
                    }
                    match LeaderContext::start(
                        self.inner.replica.clone(),
                        now.term,
                        self.inner.options.idle_actor_timeout,
                        self.inner.options.max_live_actors,
                        self.inner.options.jq.clone(),
                    ) {
                        Ok(ctx) => {
                            ctx.set_lease(now.lease);
                            ctx.set_engine(WeakEngine(Arc::downgrade(&self.inner)));
                            let stopped = ctx.stopped();
                            crate::retention::spawn(&ctx, self.inner.options.retention, stopped.clone());
                            crate::scheduler::spawn(&ctx, self.inner.options.schedule_grace, stopped.clone());
                            *self.inner.leader.write() = Some(ctx);
                            crate::executor::spawn(&self, &stopped);
                        }
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

    fn step_down(&self, ctx: &Arc<LeaderContext>) {
        *self.inner.leader.write() = None;
        ctx.stop();
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
        self.inner.leader.read().as_ref().is_some_and(|ctx| ctx.holds_lease())
    }

    /// Why this node cannot serve writes now, as the error a request gets; `None` if it can.
    pub fn not_serving(&self) -> Option<Error> {
        self.leader().err()
    }

    pub(crate) fn leader(&self) -> Result<Arc<LeaderContext>, Error> {
        if let Some(ctx) = self.inner.leader.read().clone() {
            if !ctx.holds_lease() {
                return Err(Error::Unavailable(crate::error::LEASE_LOST.into()));
            }
            return Ok(ctx);
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

    /// The largest output a task may have, in bytes.
    pub(crate) fn max_task_output_bytes(&self) -> usize {
        self.inner.options.max_task_output_bytes
    }

    /// Starts a workflow and returns its id once the start is committed.
    pub async fn start_workflow(&self, request: StartWorkflowRequest) -> Result<String, Error> {
        let ctx = self.leader()?;
        let workflow_id = crate::new_id();
        let name = request.name.clone().or_else(|| request.workflow_def.as_ref().map(|d| d.name.clone()));
        let started = match prepare_start(self.read(), request, workflow_id, None) {
            Ok(cmd) => ctx.start_workflow(cmd).await,
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

    /// Starts a workflow under a given id (derived from the task that starts it); starting it
    /// again is a no-op.
    pub(crate) async fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: String,
        parent: Option<(String, String)>,
    ) -> Result<(), Error> {
        let ctx = self.leader()?;
        if self.read().workflow(&workflow_id)?.is_some() {
            return Ok(());
        }
        let cmd = prepare_start(self.read(), request, workflow_id.clone(), parent)?;
        match ctx.start_workflow(cmd).await {
            Ok(id) if id == workflow_id => Ok(()),
            Ok(other) => Err(Error::Conflict(format!("its idempotency key already started workflow {other}"))),
            // Started meanwhile (a second delivery of the same effect).
            Err(Error::Conflict(_)) if self.read().workflow(&workflow_id)?.is_some() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Merges variables into a running workflow's `workflow.variables`.
    pub(crate) async fn update_variables(
        &self,
        workflow_id: &str,
        variables: Object,
        append: bool,
    ) -> Result<(), Error> {
        self.workflow(workflow_id)?;
        let cmd = overture_core::Command::UpdateVariables { variables, append_array: append };
        self.leader()?.command(workflow_id, cmd).await.map(|_| ())
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
        let ctx = self.leader()?;
        let watch = ctx.watchers.watch(&id);
        let deadline = tokio::time::Instant::now() + wait;
        let result = loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wf = self.workflow(&id)?;
            if settled(&wf, wait_refs) {
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
        self.leader()?.command(workflow_id, command).await.map(|_| ())
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
            for t in wf.tasks.iter().filter(|t| t.task_type == "SUB_WORKFLOW" && !t.retried && t.status.is_terminal()) {
                let Some(child_id) = t.sub_workflow_id.as_deref() else { continue };
                let Ok(child) = self.workflow(child_id) else { continue };
                let retryable = matches!(
                    child.header.status,
                    WorkflowStatus::Failed | WorkflowStatus::TimedOut | WorkflowStatus::Terminated
                ) && (child.header.status == WorkflowStatus::TimedOut
                    || child.tasks.iter().any(|c| {
                        !c.retried
                            && matches!(
                                c.status,
                                TaskStatus::Failed
                                    | TaskStatus::FailedWithTerminalError
                                    | TaskStatus::TimedOut
                                    | TaskStatus::Canceled
                            )
                    }));
                if retryable {
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
        self.leader()?.registry.stop(workflow_id);
        self.propose(Request::RemoveWorkflow { workflow_id: workflow_id.to_owned() }).await
    }

    /// Workflow actors live on this node (none unless it leads).
    pub fn live_actors(&self) -> usize {
        self.leader().map_or(0, |l| l.registry.len())
    }

    /// An execution, from the local replica.
    pub fn workflow(&self, id: &str) -> Result<WorkflowState, Error> {
        self.read().workflow(id)?.ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {id}")))
    }

    /// A workflow's header (status, input, output, variables, times), without its tasks.
    pub fn workflow_header(&self, id: &str) -> Result<overture_core::WorkflowHeader, Error> {
        self.read().workflow_header(id)?.ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {id}")))
    }

    /// Terminates a workflow.
    pub async fn terminate(&self, id: &str, reason: Option<String>) -> Result<(), Error> {
        self.workflow(id)?;
        self.leader()?.terminate(id, reason).await
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
        self.leader()?.polls.record(task_type, domain, worker_id.as_deref(), crate::now_ms());
        self.poll_queue(&queue, task_type, worker_id, count, wait).await
    }

    pub(crate) async fn poll_queue(
        &self,
        queue: &str,
        task_type: &str,
        worker_id: Option<String>,
        count: usize,
        wait: Duration,
    ) -> Result<Vec<Box<RawValue>>, Error> {
        let ctx = self.leader()?;
        let deadline = tokio::time::Instant::now() + wait;
        let notify = ctx.queues.notifier(queue);
        let mut stopped = ctx.stopped();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let popped = ctx.queues.pop(queue, count.max(1));
            // Limits of the task definition: tasks over them go back to the queue, quietly.
            let now = crate::now_ms();
            let limits = if popped.is_empty() || queue.starts_with(overture_core::rows::SYSTEM_QUEUE_PREFIX) {
                TaskLimits::default()
            } else {
                ctx.limits.of(task_type, now, || {
                    self.read().task_def(task_type).map(|d| d.map(|d| TaskLimits::of(&d)).unwrap_or_default())
                })?
            };
            let mut admitted = Vec::with_capacity(popped.len());
            for p in popped {
                match ctx.limits.admit(task_type, limits, now) {
                    Admission::Admit => admitted.push(p),
                    Admission::Busy => {
                        metrics::counter!(names::TASK_CONCURRENT_EXECUTION_LIMITED, "taskType" => names::task_type_label(task_type))
                            .increment(1);
                        ctx.queues.put_back(&p.item(queue), None)
                    }
                    Admission::NotBefore(at) => {
                        metrics::counter!(names::TASK_RATE_LIMITED, "taskType" => names::task_type_label(task_type))
                            .increment(1);
                        ctx.queues.put_back(&p.item(queue), Some(at))
                    }
                }
            }
            let popped = admitted;
            if !popped.is_empty() {
                let claims = popped.iter().map(|p| ctx.claim(p, worker_id.clone()));
                let results = futures::future::join_all(claims).await;
                for _ in &popped {
                    ctx.limits.settle(task_type, limits);
                }
                let mut tasks = Vec::with_capacity(results.len());
                let mut transient = None;
                for (p, result) in popped.iter().zip(results) {
                    match result {
                        Ok(task) => {
                            let waited = (crate::now_ms() - p.ready_at).max(0) as f64 / 1000.0;
                            metrics::histogram!(names::TASK_QUEUE_WAIT).record(waited);
                            tasks.push(task);
                        }
                        // Refused: the task moved on (finished, canceled, polled), and its queue
                        // entry goes with it; or it is not ready yet by this leader's clock (the
                        // clock jumped back since it was queued), and it waits until it is.
                        Err(Error::NotFound(_) | Error::Conflict(_) | Error::BadRequest(_) | Error::Invalid(_)) => {
                            if self.task(&p.task_id).is_ok_and(|(wf, t)| {
                                t.status == overture_core::TaskStatus::Scheduled && !wf.header.status.is_terminal()
                            }) {
                                ctx.queues.put_back(&p.item(queue), None);
                            }
                        }
                        // Not handed out, and its durable queue row is intact: put it back. A claim
                        // that did commit after all removes it again when applied, and a second
                        // claim of a task already polled is refused by the decider.
                        Err(e) => {
                            // A full disk or lost leadership refuses every claim alike; that is
                            // reported once, where it is detected, not per task.
                            if matches!(e, Error::DiskFull(_) | Error::Unavailable(_)) {
                                tracing::debug!(task_id = %p.task_id, error = %e, "claim refused; re-queued");
                            } else {
                                tracing::warn!(task_id = %p.task_id, error = %e, "claim failed; re-queued");
                            }
                            ctx.queues.add(&p.item(queue), crate::now_ms());
                            transient = Some(e);
                        }
                    }
                }
                if !tasks.is_empty() {
                    metrics::counter!(names::TASK_POLL, "taskType" => names::task_type_label(task_type))
                        .increment(tasks.len() as u64);
                    return Ok(tasks);
                }
                if let Some(e) = transient {
                    return Err(e);
                }
                continue;
            }
            if *stopped.borrow() || tokio::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            // Wait for a task to enter the queue, or for a decision to hand one over directly.
            let (waiter, mut incoming) = ctx.queues.wait_for_hand_off(queue, worker_id.clone());
            let (woken, handed) = tokio::select! {
                task = &mut incoming => (Wake::HandedOff, Some(task)),
                _ = &mut notified => (Wake::Queue, None),
                _ = tokio::time::sleep_until(deadline) => (Wake::Done, None),
                _ = stopped.changed() => (Wake::Done, None),
            };
            // A decision that took this poll just before it left is committing its task: wait.
            let handed = match handed {
                Some(task) => task,
                None if ctx.queues.leave(queue, &waiter) => Ok(None),
                None => incoming.await,
            };
            if let Ok(Some(task)) = handed {
                if woken == Wake::Queue {
                    // The wake-up was for a queued task: another poll takes that one.
                    notify.notify_one();
                }
                return Ok(vec![task]);
            }
            if woken == Wake::Done {
                return Ok(Vec::new());
            }
        }
    }

    /// Records a task result.
    pub async fn update_task(&self, update: TaskUpdate) -> Result<UpdateOutcome, Error> {
        let ctx = self.leader()?;
        let owner = self.task_owner(&update.task_id)?;
        let status = update.status;
        let outcome = ctx.update(&owner, update).await?;
        metrics::counter!(names::TASK_UPDATE, "status" => status.as_str()).increment(1);
        Ok(outcome)
    }

    /// Records a task result, then hands the same worker the next task of that queue, if any
    /// (`POST /tasks/update-v2`).
    pub async fn update_task_and_poll(&self, update: TaskUpdate) -> Result<Option<Box<RawValue>>, Error> {
        let worker_id = update.worker_id.clone();
        let outcome = self.update_task(update).await?;
        let Some(queue) = outcome.queue.filter(|_| outcome.terminal) else { return Ok(None) };
        let mut next = self.poll_queue(&queue, &outcome.task_type, worker_id, 1, Duration::ZERO).await?;
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
        self.leader()?.update_by_ref(workflow_id, Some(reference.to_owned()), status, output, worker_id).await
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
        let target = self.signal_target(workflow_id, 0)?.unwrap_or_else(|| workflow_id.to_owned());
        self.leader()?.update_by_ref(&target, None, status, output, None).await
    }

    /// The workflow a signal lands in: the first with an open WAIT or HUMAN task, looking at
    /// this workflow and then, depth first, its running sub-workflows; `None` if there is none
    /// (the signal then completes this workflow's open worker task, if any).
    fn signal_target(&self, workflow_id: &str, depth: usize) -> Result<Option<String>, Error> {
        let wf = self.workflow(workflow_id)?;
        let open = |t: &&TaskState| !t.status.is_terminal() && !t.retried;
        if wf.tasks.iter().filter(open).any(|t| matches!(t.task_type.as_str(), "WAIT" | "HUMAN")) {
            return Ok(Some(workflow_id.to_owned()));
        }
        if depth >= 16 {
            return Ok(None);
        }
        for task in wf.tasks.iter().filter(open).filter(|t| t.task_type == "SUB_WORKFLOW") {
            let Some(child) = task.sub_workflow_id.as_deref() else { continue };
            if let Ok(Some(found)) = self.signal_target(child, depth + 1) {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Appends a line to a task's execution log.
    pub async fn add_task_log(&self, task_id: &str, log: String) -> Result<(), Error> {
        let owner = self.task_owner(task_id)?;
        self.leader()?.add_log(&owner, task_id.to_owned(), log).await
    }

    fn task_owner(&self, task_id: &str) -> Result<String, Error> {
        Ok(self
            .read()
            .task_owner(task_id)?
            .ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?
            .workflow_id)
    }

    /// A task and its workflow, from the local replica.
    pub fn task(&self, task_id: &str) -> Result<(WorkflowState, TaskState), Error> {
        let not_found = || Error::NotFound(format!("Task not found for taskId: {task_id}"));
        let owner = self.read().task_owner(task_id)?.ok_or_else(not_found)?;
        let workflow = self.read().workflow(&owner.workflow_id)?.ok_or_else(not_found)?;
        let task = workflow.task(owner.seq).cloned().ok_or_else(not_found)?;
        Ok((workflow, task))
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
        if let Some(ctx) = self.inner.leader.read().clone() {
            let widen = |v: Vec<(String, usize)>| v.into_iter().map(|(q, n)| (q, n as u64)).collect();
            add(names::TASK_QUEUE_DEPTH, "queue", widen(ctx.queues.depths()));
            add(names::TASK_POLLS_WAITING, "queue", widen(ctx.queues.waiting_polls()));
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
        let ctx = self.leader()?;
        Ok(ctx
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

/// Turns a start request into the command that starts `workflow_id`: validates it, finds its
/// definition (version absent or 0: the latest) and freezes the task definitions in the
/// execution's snapshot, as Conductor does.
pub(crate) fn prepare_start(
    read: &ReadView,
    request: StartWorkflowRequest,
    workflow_id: String,
    parent: Option<(String, String)>,
) -> Result<StartWorkflow, Error> {
    let input = request.input.ok_or_else(|| Error::BadRequest("Input payload cannot be null".into()))?;
    if let Some(strategy) = request.idempotency_strategy.as_deref()
        && !["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"].contains(&strategy)
    {
        return Err(Error::BadRequest(format!(
            "idempotencyStrategy {strategy} is not one of FAIL, RETURN_EXISTING, FAIL_ON_RUNNING"
        )));
    }
    if !(0..=99).contains(&request.priority) {
        return Err(Error::BadRequest(format!("priority: {} should be between 0 and 99", request.priority)));
    }
    let plan = match request.workflow_def {
        Some(mut def) => {
            validate::workflow_def(&def).map_err(Error::Invalid)?;
            fill_task_defs(read, &mut def.tasks)?;
            Arc::new(Plan::new(def))
        }
        None => {
            let name = request.name.filter(|n| !n.trim().is_empty());
            let name = name.ok_or_else(|| Error::BadRequest("Workflow name cannot be null or empty".into()))?;
            let version = request.version.filter(|v| *v > 0);
            let build = |read: &ReadView| -> Result<Option<Plan>, Error> {
                let Some(mut def) = read.workflow_def(&name, version)? else { return Ok(None) };
                fill_task_defs(read, &mut def.tasks)?;
                Ok(Some(Plan::new(def)))
            };
            read.start_plan(&name, version, build)?.ok_or_else(|| {
                let v = version.map_or_else(|| "null".to_owned(), |v| v.to_string());
                Error::NotFound(format!("No such workflow found by name: {name}, version: {v}"))
            })?
        }
    };
    Ok(StartWorkflow {
        workflow_id,
        plan,
        input,
        correlation_id: request.correlation_id,
        priority: request.priority,
        task_to_domain: request.task_to_domain,
        created_by: request.created_by,
        idempotency_key: request.idempotency_key,
        idempotency_strategy: request.idempotency_strategy,
        parent,
    })
}

/// Fills in the registered definition of every task, at any depth, that has none embedded.
fn fill_task_defs(read: &ReadView, tasks: &mut [WorkflowTask]) -> Result<(), Error> {
    for task in tasks {
        if task.task_definition.is_none() {
            task.task_definition = read.task_def(&task.name)?;
        }
        for case in task.decision_cases.values_mut() {
            fill_task_defs(read, case)?;
        }
        fill_task_defs(read, &mut task.default_case)?;
        for branch in &mut task.fork_tasks {
            fill_task_defs(read, branch)?;
        }
        fill_task_defs(read, &mut task.loop_over)?;
    }
    Ok(())
}

/// Whether a synchronous execution can answer: the workflow ended, waits on a WAIT without a
/// deadline, or finished one of `wait_refs` (a loop task also by its base name).
fn settled(wf: &WorkflowState, wait_refs: &[String]) -> bool {
    wf.header.status.is_terminal()
        || wf
            .tasks
            .iter()
            .any(|t| t.task_type == "WAIT" && t.status == overture_core::TaskStatus::InProgress && t.wait_timeout == 0)
        || wait_refs.iter().any(|r| wf.latest(r).is_some_and(|t| t.status.is_terminal()))
}

/// What ended a long poll's wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A decision handed it a task (or tried to: its batch failed).
    HandedOff,
    /// A task entered the queue.
    Queue,
    /// The poll's time is up, or leadership ended.
    Done,
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

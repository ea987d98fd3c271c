//! The workflow actor: one per active execution on the leader, so decisions about one workflow
//! happen one at a time without locks.
//!
//! Each message is decide → propose → wait for commit and apply → reply. The actor's copy of the
//! state is a cache: it is loaded from the replica on first use and dropped whenever a proposal
//! fails, so a retry always decides on committed state. If the workflow changed underneath (the
//! version guard reported a conflict), the actor reloads and decides again.
//!
//! Actors are activated on demand and passivated when idle or finished; messages carry their own
//! reply channel, so a message lost to a stopping actor surfaces as a closed channel and the
//! registry retries it on a fresh actor.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use overture_core::command::{Command, Ctx, IdSource, StartWorkflow, TaskResultStatus, TaskUpdate};
use overture_core::rows::TimerKind;
use overture_core::{Object, WorkflowState, decide, render};
use overture_raft::{Request, Response, WorkflowBatch};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::env::LeaderEnv;
use crate::error::Error;
use crate::leader::LeaderContext;
use crate::names;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What became of a task update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The queue the task was polled from, if a worker runs it.
    pub queue: Option<String>,
    /// The task is now terminal.
    pub terminal: bool,
}

/// Messages a workflow actor handles.
pub(crate) enum WorkflowMsg {
    Start(Box<StartWorkflow>, Reply<()>),
    Poll {
        task_id: String,
        worker_id: Option<String>,
        reply: Reply<Box<RawValue>>,
    },
    Update(Box<TaskUpdate>, Reply<UpdateOutcome>),
    UpdateByRef {
        /// `None`: the task a signal completes (see `WorkflowState::blocking_task`).
        reference: Option<String>,
        status: TaskResultStatus,
        output: Object,
        worker_id: Option<String>,
        reply: Reply<Option<String>>,
    },
    Terminate {
        reason: Option<String>,
        reply: Reply<()>,
    },
    AddLog {
        task_id: String,
        log: String,
        reply: Reply<()>,
    },
    Timer {
        kind: TimerKind,
        seq: u32,
        fire_at: i64,
        reply: Reply<bool>,
    },
}

impl WorkflowMsg {
    fn task_id(&self) -> Option<&str> {
        match self {
            WorkflowMsg::Poll { task_id, .. } | WorkflowMsg::AddLog { task_id, .. } => Some(task_id),
            WorkflowMsg::Update(update, _) => Some(&update.task_id),
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            WorkflowMsg::Start(..) => "start",
            WorkflowMsg::Poll { .. } => "poll",
            WorkflowMsg::Update(..) => "update",
            WorkflowMsg::UpdateByRef { .. } => "update_by_ref",
            WorkflowMsg::Terminate { .. } => "terminate",
            WorkflowMsg::AddLog { .. } => "add_log",
            WorkflowMsg::Timer { .. } => "timer",
        }
    }
}

/// Random UUIDs for new task ids.
struct UuidIds;
impl IdSource for UuidIds {
    fn next_id(&mut self) -> String {
        uuid::Uuid::new_v4().to_string()
    }
}

pub(crate) struct WorkflowActor;

pub(crate) struct ActorArgs {
    pub workflow_id: String,
    pub ctx: Arc<LeaderContext>,
    pub last_active: Arc<AtomicI64>,
}

pub(crate) struct ActorState {
    id: String,
    state: Option<WorkflowState>,
    ctx: Arc<LeaderContext>,
    last_active: Arc<AtomicI64>,
}

impl Actor for WorkflowActor {
    type Msg = WorkflowMsg;
    type State = ActorState;
    type Arguments = ActorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkflowMsg>,
        args: ActorArgs,
    ) -> Result<ActorState, ActorProcessingErr> {
        Ok(ActorState { id: args.workflow_id, state: None, ctx: args.ctx, last_active: args.last_active })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkflowMsg>,
        msg: WorkflowMsg,
        st: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        let started = Instant::now();
        let command = msg.name();
        let span = tracing::info_span!("workflow", workflow_id = %st.id, command, term = st.ctx.term, task_id = tracing::field::Empty);
        if let Some(task_id) = msg.task_id() {
            span.record("task_id", task_id);
        }
        st.handle(msg).instrument(span).await;
        metrics::histogram!(names::DECIDE_SECONDS, "command" => command).record(started.elapsed().as_secs_f64());
        st.last_active.store(crate::now_ms(), Ordering::Relaxed);
        if st.state.as_ref().is_some_and(|s| s.header.status.is_terminal()) {
            st.ctx.registry.passivate(&st.id, &myself);
        }
        Ok(())
    }
}

impl ActorState {
    async fn handle(&mut self, msg: WorkflowMsg) {
        match msg {
            WorkflowMsg::Start(cmd, reply) => {
                let _ = reply.send(self.start(*cmd).await);
            }
            WorkflowMsg::Poll { task_id, worker_id, reply } => {
                let result = self.execute(Command::Poll { task_id: task_id.clone(), worker_id }).await;
                let _ = reply.send(result.and_then(|_| self.render_task(&task_id)));
            }
            WorkflowMsg::Update(update, reply) => {
                let task_id = update.task_id.clone();
                let result = self.execute(Command::Update(update)).await;
                let _ = reply.send(result.and_then(|_| self.outcome(&task_id)));
            }
            WorkflowMsg::UpdateByRef { reference, status, output, worker_id, reply } => {
                let _ = reply.send(self.update_by_ref(reference.as_deref(), status, output, worker_id).await);
            }
            WorkflowMsg::Terminate { reason, reply } => {
                let _ = reply.send(self.execute(Command::Terminate { reason }).await.map(|_| ()));
            }
            WorkflowMsg::AddLog { task_id, log, reply } => {
                let _ = reply.send(self.execute(Command::AddLog { task_id, log }).await.map(|_| ()));
            }
            WorkflowMsg::Timer { kind, seq, fire_at, reply } => {
                let _ = reply.send(self.execute(Command::Timer { kind, seq, fire_at }).await.map(|n| n > 0));
            }
        }
    }

    fn load(&mut self) -> Result<&mut WorkflowState, Error> {
        if self.state.is_none() {
            self.state = self.ctx.replica.read().workflow(&self.id)?;
        }
        self.state.as_mut().ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {}", self.id)))
    }

    async fn start(&mut self, cmd: StartWorkflow) -> Result<(), Error> {
        if self.load().is_ok() {
            return Err(Error::Conflict(format!("Workflow {} already exists", self.id)));
        }
        let name = cmd.plan.def.name.clone();
        let (state, events) = {
            let env = LeaderEnv { read: self.ctx.replica.read() };
            decide::start(cmd, &mut Ctx { now: crate::now_ms(), ids: &mut UuidIds, env: &env })
        };
        let batch = WorkflowBatch { workflow_id: self.id.clone(), expected_revision: 0, events };
        match self.ctx.replica.propose(Request::Workflow(batch)).await {
            Ok(Response::Applied { .. }) => {
                self.state = Some(state);
                metrics::counter!(names::WORKFLOW_START_SUCCESS, "workflowName" => name).increment(1);
                Ok(())
            }
            Ok(other) => Err(Error::Conflict(format!("Workflow {} could not be created: {other}", self.id))),
            Err(e) => Err(e.into()),
        }
    }

    /// Decides and commits one command; returns how many events it produced.
    async fn execute(&mut self, cmd: Command) -> Result<usize, Error> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let replica = self.ctx.replica.clone();
            let state = self.load()?;
            let expected_revision = state.header.revision;
            let events = {
                let env = LeaderEnv { read: replica.read() };
                decide::decide(state, cmd.clone(), &mut Ctx { now: crate::now_ms(), ids: &mut UuidIds, env: &env })?
            };
            if events.is_empty() {
                return Ok(0);
            }
            let count = events.len();
            let batch = WorkflowBatch { workflow_id: self.id.clone(), expected_revision, events };
            match self.ctx.replica.propose(Request::Workflow(batch)).await {
                Ok(Response::Applied { .. }) => return Ok(count),
                Ok(Response::RevisionConflict { .. }) => {
                    metrics::counter!(names::DECIDE_CONFLICT).increment(1);
                    self.state = None;
                }
                Ok(other) => {
                    self.state = None;
                    return Err(Error::Internal(format!("unexpected reply to a workflow batch: {other}")));
                }
                Err(e) => {
                    self.state = None;
                    return Err(e.into());
                }
            }
        }
        Err(Error::Unavailable(format!("workflow {} kept changing while deciding; retry", self.id)))
    }

    fn render_task(&mut self, task_id: &str) -> Result<Box<RawValue>, Error> {
        let state = self.load()?;
        let task =
            state.task_by_id(task_id).ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?;
        serde_json::value::to_raw_value(&render::task(state, task, crate::now_ms()))
            .map_err(|e| Error::Internal(format!("rendering a task: {e}")))
    }

    fn outcome(&mut self, task_id: &str) -> Result<UpdateOutcome, Error> {
        let state = self.load()?;
        let task =
            state.task_by_id(task_id).ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?;
        Ok(UpdateOutcome { queue: task.queue.clone(), terminal: task.status.is_terminal() })
    }

    async fn update_by_ref(
        &mut self,
        reference: Option<&str>,
        status: TaskResultStatus,
        output: Object,
        worker_id: Option<String>,
    ) -> Result<Option<String>, Error> {
        let state = self.load()?;
        let task = match reference {
            None => state.blocking_task(),
            Some(reference) => {
                let open = |r: &str| state.latest(r).filter(|t| !t.status.is_terminal());
                let base = reference.rsplit_once("__").map_or(reference, |(b, _)| b);
                open(reference).or_else(|| open(base))
            }
        };
        let Some(task) = task else { return Ok(None) };
        let task_id = task.task_id.clone();
        let update = TaskUpdate {
            task_id: task_id.clone(),
            status,
            output: Some(output),
            merge_output: true,
            reason: None,
            worker_id,
            callback_after_seconds: 0,
            extend_lease: false,
            logs: Vec::new(),
        };
        self.execute(Command::Update(Box::new(update))).await?;
        Ok(Some(task_id))
    }
}

/// The leader's live workflow actors.
#[derive(Default)]
pub(crate) struct Registry {
    actors: Mutex<HashMap<String, Slot>>,
}

#[derive(Clone)]
struct Slot {
    actor: ActorRef<WorkflowMsg>,
    last_active: Arc<AtomicI64>,
}

impl Registry {
    async fn slot(&self, ctx: &Arc<LeaderContext>, id: &str) -> Result<Slot, Error> {
        if let Some(slot) = self.actors.lock().get(id) {
            return Ok(slot.clone());
        }
        let last_active = Arc::new(AtomicI64::new(crate::now_ms()));
        let args = ActorArgs { workflow_id: id.to_owned(), ctx: ctx.clone(), last_active: last_active.clone() };
        let (actor, _join) = Actor::spawn(None, WorkflowActor, args)
            .await
            .map_err(|e| Error::Internal(format!("cannot start a workflow actor: {e}")))?;
        let mut actors = self.actors.lock();
        if let Some(existing) = actors.get(id) {
            // Someone else activated it meanwhile; use theirs.
            actor.stop(None);
            return Ok(existing.clone());
        }
        let slot = Slot { actor, last_active };
        actors.insert(id.to_owned(), slot.clone());
        metrics::gauge!(names::ACTORS_ACTIVE).set(actors.len() as f64);
        Ok(slot)
    }

    /// Sends a message to a workflow's actor (activating it) and waits for the reply. A message
    /// lost to an actor that stopped is retried on a fresh one: nothing was committed for it.
    pub async fn send<T, P: Clone>(
        &self,
        ctx: &Arc<LeaderContext>,
        id: &str,
        payload: P,
        wrap: impl Fn(P, Reply<T>) -> WorkflowMsg,
        timeout: Duration,
    ) -> Result<T, Error> {
        for _ in 0..3 {
            let slot = self.slot(ctx, id).await?;
            let (tx, rx) = oneshot::channel();
            if slot.actor.cast(wrap(payload.clone(), tx)).is_err() {
                self.forget(id, &slot.actor);
                continue;
            }
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(result)) => return result,
                Ok(Err(_closed)) => self.forget(id, &slot.actor),
                Err(_) => return Err(Error::Unavailable(format!("workflow {id} did not answer within {timeout:?}"))),
            }
        }
        Err(Error::Unavailable(format!("workflow {id} is being moved; retry")))
    }

    fn forget(&self, id: &str, actor: &ActorRef<WorkflowMsg>) {
        let mut actors = self.actors.lock();
        if actors.get(id).is_some_and(|s| s.actor.get_id() == actor.get_id()) {
            actors.remove(id);
        }
    }

    /// Stops an actor whose workflow is finished.
    pub fn passivate(&self, id: &str, actor: &ActorRef<WorkflowMsg>) {
        self.forget(id, actor);
        actor.stop(None);
        metrics::gauge!(names::ACTORS_ACTIVE).set(self.actors.lock().len() as f64);
    }

    /// Stops actors idle for longer than `idle`.
    pub fn passivate_idle(&self, idle: Duration) -> usize {
        let cutoff = crate::now_ms() - idle.as_millis() as i64;
        let mut actors = self.actors.lock();
        let idle_ids: Vec<String> = actors
            .iter()
            .filter(|(_, s)| s.last_active.load(Ordering::Relaxed) < cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &idle_ids {
            if let Some(slot) = actors.remove(id) {
                slot.actor.stop(None);
            }
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(actors.len() as f64);
        idle_ids.len()
    }

    /// Stops every actor (leadership ended).
    pub fn stop_all(&self) {
        let mut actors = self.actors.lock();
        for (_, slot) in actors.drain() {
            slot.actor.stop(None);
        }
        metrics::gauge!(names::ACTORS_ACTIVE).set(0.0);
    }
}

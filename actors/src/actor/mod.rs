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

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use overture_core::command::{Command, Ctx, StartWorkflow, TaskResultStatus, TaskUpdate};
use overture_core::external::PayloadTarget;
use overture_core::queue::QueueName;
use overture_core::rows::TimerKind;
use overture_core::{Event, Object, TaskStatus, TaskType, WorkflowId, WorkflowState, decide, render, secrets};
use overture_raft::{Request, Response, WorkflowBatch};
use parking_lot::Mutex;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tracing::Instrument;

use crate::env::LeaderEnv;
use crate::error::Error;
use crate::host::Host;
use crate::names;
use crate::queues::HandOff;

mod registry;

pub use registry::DEFAULT_MAX_LIVE;
pub(crate) use registry::Registry;

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What became of a task update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateOutcome {
    /// The queue the task was polled from, if a worker runs it.
    pub queue: Option<String>,
    /// The task's type (what workers poll for).
    pub task_type: TaskType,
    /// The task is now terminal.
    pub terminal: bool,
}

/// Messages a workflow actor handles.
pub(crate) enum WorkflowMsg {
    /// Start; answers the id of the workflow that now runs for the request (another one's, if
    /// its idempotency key says to return the existing workflow).
    Start(Box<StartWorkflow>, Reply<WorkflowId>),
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
    /// Any other command; answers how many events it produced.
    Command(Box<Command>, Reply<usize>),
    /// Work is waiting in the actor's inbox.
    Drain,
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
            WorkflowMsg::Command(..) => "command",
            WorkflowMsg::Drain => "drain",
        }
    }
}

pub(crate) struct WorkflowActor;

pub(crate) struct ActorArgs {
    pub workflow_id: WorkflowId,
    pub registry: Arc<Registry>,
    pub last_active: Arc<AtomicI64>,
    pub inbox: Arc<Inbox>,
}

/// Messages waiting for a workflow's actor. Senders push here and wake the actor only when the
/// inbox was empty; the actor takes everything at once, so commands that arrive while it waits for
/// a commit are decided together and proposed as one Raft entry.
#[derive(Default)]
pub(crate) struct Inbox {
    queue: Mutex<Vec<WorkflowMsg>>,
}

/// Messages one workflow's inbox holds at most. Past that, a sender is told to slow down (429):
/// a client hammering one workflow gets push-back instead of a queue that grows with its rate.
/// As many as a node takes requests in flight (`max_in_flight`), so the results of a fork of
/// thousands of tasks finishing together all fit.
pub const MAX_INBOX: usize = 10_000;

impl Inbox {
    /// Adds a message; true if the actor needs waking. A full inbox hands the message back.
    fn push(&self, msg: WorkflowMsg) -> Result<bool, WorkflowMsg> {
        let mut queue = self.queue.lock();
        if queue.len() >= MAX_INBOX {
            return Err(msg);
        }
        queue.push(msg);
        Ok(queue.len() == 1)
    }

    fn take(&self) -> Vec<WorkflowMsg> {
        std::mem::take(&mut *self.queue.lock())
    }
}

pub(crate) struct ActorState {
    id: WorkflowId,
    state: Option<WorkflowState>,
    host: Arc<Host>,
    /// The registry that activated this actor, to leave it when the workflow ends.
    registry: Arc<Registry>,
    last_active: Arc<AtomicI64>,
    inbox: Arc<Inbox>,
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
        Ok(ActorState {
            id: args.workflow_id,
            state: None,
            host: args.registry.host.clone(),
            registry: args.registry,
            last_active: args.last_active,
            inbox: args.inbox,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkflowMsg>,
        msg: WorkflowMsg,
        st: &mut ActorState,
    ) -> Result<(), ActorProcessingErr> {
        let mut batch = vec![msg];
        batch.extend(st.inbox.take());
        batch.retain(|m| !matches!(m, WorkflowMsg::Drain));
        if batch.is_empty() {
            return Ok(());
        }
        // Busy counts as active: the eviction of least recently active actors passes it over.
        st.last_active.store(crate::now_ms(), Ordering::Relaxed);
        let started = Instant::now();
        let command = if batch.len() == 1 { batch[0].name() } else { "batch" };
        let span = tracing::info_span!("workflow", workflow_id = %st.id, command, messages = batch.len(), term = st.host.term, task_id = tracing::field::Empty);
        if let [only] = batch.as_slice()
            && let Some(task_id) = only.task_id()
        {
            span.record("task_id", task_id);
        }
        metrics::histogram!(names::DECIDE_BATCH_SIZE).record(batch.len() as f64);
        st.handle_batch(batch, command).instrument(span).await;
        metrics::histogram!(names::DECIDE_SECONDS, "command" => command).record(started.elapsed().as_secs_f64());
        st.last_active.store(crate::now_ms(), Ordering::Relaxed);
        if st.state.as_ref().is_some_and(|s| s.header.status.is_terminal()) {
            st.registry.passivate(&st.id, &myself);
        }
        Ok(())
    }
}

/// One command of a batch, and how to answer its sender once the batch is committed.
enum Pending {
    Poll { task_id: String, reply: Reply<Box<RawValue>> },
    Update { task_id: String, reply: Reply<UpdateOutcome> },
    UpdateByRef { reply: Reply<Option<String>> },
    Done { reply: Reply<()> },
    Timer { reply: Reply<bool> },
    Count { reply: Reply<usize> },
}

/// A command to decide: a plain one, or an update of a task found by reference (or the task a
/// signal completes) in the state as the batch has left it.
enum Job {
    Command(Command),
    ByRef { reference: Option<String>, status: TaskResultStatus, output: Object, worker_id: Option<String> },
}

/// What one job did: events it produced and, for a by-reference update, the task it updated.
struct JobOutcome {
    events: usize,
    task_id: Option<String>,
}

impl ActorState {
    /// Decides every message of a batch in order on the same state and commits their events as
    /// one Raft entry; then answers each sender. A start is committed on its own.
    async fn handle_batch(&mut self, batch: Vec<WorkflowMsg>, command: &'static str) {
        let mut jobs: Vec<(Job, Pending)> = Vec::new();
        for msg in batch {
            let job = match msg {
                WorkflowMsg::Start(cmd, reply) => {
                    self.run_jobs(std::mem::take(&mut jobs), command).await;
                    let _ = reply.send(self.start(*cmd).await);
                    continue;
                }
                WorkflowMsg::Drain => continue,
                WorkflowMsg::Poll { task_id, worker_id, reply } => (
                    Job::Command(Command::Poll { task_id: task_id.clone(), worker_id }),
                    Pending::Poll { task_id, reply },
                ),
                WorkflowMsg::Update(update, reply) => {
                    let task_id = update.task_id.clone();
                    (Job::Command(Command::Update(update)), Pending::Update { task_id, reply })
                }
                WorkflowMsg::UpdateByRef { reference, status, output, worker_id, reply } => {
                    (Job::ByRef { reference, status, output, worker_id }, Pending::UpdateByRef { reply })
                }
                WorkflowMsg::Terminate { reason, reply } => {
                    (Job::Command(Command::Terminate { reason }), Pending::Done { reply })
                }
                WorkflowMsg::AddLog { task_id, log, reply } => {
                    (Job::Command(Command::AddLog { task_id, log }), Pending::Done { reply })
                }
                WorkflowMsg::Timer { kind, seq, fire_at, reply } => {
                    (Job::Command(Command::Timer { kind, seq, fire_at }), Pending::Timer { reply })
                }
                WorkflowMsg::Command(cmd, reply) => (Job::Command(*cmd), Pending::Count { reply }),
            };
            jobs.push(job);
        }
        self.run_jobs(jobs, command).await;
        // Stored payloads are held only while deciding and answering: a live actor waiting for
        // its next message keeps none, so memory does not grow with idle workflows' payloads.
        if let Some(state) = self.state.as_mut() {
            crate::payloads::unload(state);
        }
    }

    async fn run_jobs(&mut self, jobs: Vec<(Job, Pending)>, command: &'static str) {
        if jobs.is_empty() {
            return;
        }
        let (jobs, pending): (Vec<Job>, Vec<Pending>) = jobs.into_iter().unzip();
        let results = self.execute_all(&jobs, command).await;
        for (result, pending) in results.into_iter().zip(pending) {
            match pending {
                Pending::Poll { task_id, reply } => {
                    let _ = reply.send(result.and_then(|_| self.render_task(&task_id)));
                }
                Pending::Update { task_id, reply } => {
                    let _ = reply.send(result.and_then(|_| self.outcome(&task_id)));
                }
                Pending::UpdateByRef { reply } => {
                    let _ = reply.send(result.map(|o| o.task_id));
                }
                Pending::Done { reply } => {
                    let _ = reply.send(result.map(|_| ()));
                }
                Pending::Timer { reply } => {
                    let _ = reply.send(result.map(|o| o.events > 0));
                }
                Pending::Count { reply } => {
                    let _ = reply.send(result.map(|o| o.events));
                }
            }
        }
    }

    fn load(&mut self) -> Result<&mut WorkflowState, Error> {
        if self.state.is_none() {
            self.state = self.host.replica.read().workflow(&self.id)?;
        }
        self.state.as_mut().ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {}", self.id)))
    }

    /// Loads the state with the content of its payloads stored elsewhere, to decide on.
    async fn load_payloads(&mut self) -> Result<&mut WorkflowState, Error> {
        let host = self.host.clone();
        let state = self.load()?;
        if state.externals().values().any(|e| !e.loaded) {
            let loaded = crate::payloads::load_into(&host.payloads.storage, host.replica.read(), state).await;
            if let Err(e) = loaded {
                self.state = None;
                return Err(e);
            }
        }
        self.load()
    }

    async fn start(&mut self, cmd: StartWorkflow) -> Result<WorkflowId, Error> {
        if self.load().is_ok() {
            return Err(Error::Conflict(format!("Workflow {} already exists", self.id)));
        }
        let began = std::time::SystemTime::now();
        let name = cmd.plan.def.name.clone();
        let scripts = cmd.plan.runs_scripts();
        let input_stored_at = cmd.input_stored_at.clone();
        let (state, events, handed) = blocking_if(scripts, || {
            let env = self.host.env();
            let (mut state, mut events) =
                decide::start(cmd, &mut Ctx { now: crate::now_ms(), ids: &mut self.host.ids(), env: &env });
            let handed = hand_off(&self.host, &mut state, &mut events, &env);
            (state, events, handed)
        });
        let (mut state, mut events) = (state, events);
        let stored = input_stored_at.map(|path| (PayloadTarget::WorkflowInput, path)).into_iter().collect();
        crate::payloads::offload(&self.host.replica, &self.host.payloads, &mut state, &mut events, &stored).await?;
        let decided = crate::traces::workflow::Decided::of(&events);
        let batch = WorkflowBatch { workflow_id: self.id.clone(), expected_revision: 0, events };
        // Boxed: openraft's write future is large, and inline it would make every live actor's
        // task that much bigger (about 7 KB of the 30 KB a waiting workflow's actor cost).
        match Box::pin(self.host.replica.propose(Request::Workflow(batch))).await {
            Ok(Response::Applied { revision }) => {
                tracing::debug!(revision, workflow_name = %name, "started");
                if state.header.status.is_terminal() {
                    tracing::debug!(status = state.header.status.as_str(), "workflow ended");
                }
                if let Some(decided) = decided {
                    decided.committed(&state, "start", began);
                }
                self.state = Some(state);
                self.deliver(handed);
                metrics::counter!(names::WORKFLOW_START_SUCCESS, "workflowName" => names::workflow_label(&name))
                    .increment(1);
                Ok(self.id.clone())
            }
            Ok(Response::Existing { workflow_id }) => Ok(workflow_id),
            Ok(Response::Conflict(message)) => Err(Error::Conflict(message)),
            Ok(Response::Rejected(message)) => Err(Error::BadRequest(message)),
            Ok(other) => Err(Error::Conflict(format!("Workflow {} could not be created: {other}", self.id))),
            Err(e) => Err(e.into()),
        }
    }

    /// Decides the jobs in order and commits all their events in one proposal. A job the
    /// decider refuses gets its rejection and changes nothing; the others go on. If the workflow
    /// changed underneath (the version guard), everything is decided again on fresh state.
    async fn execute_all(&mut self, jobs: &[Job], command: &'static str) -> Vec<Result<JobOutcome, Error>> {
        const ATTEMPTS: usize = 3;
        for _ in 0..ATTEMPTS {
            let began = std::time::SystemTime::now();
            let host = self.host.clone();
            let state = match self.load_payloads().await {
                Ok(state) => state,
                Err(e) => return jobs.iter().map(|_| Err(e.clone())).collect(),
            };
            let expected_revision = state.header.revision;
            let scripts = state.plan.runs_scripts();
            let mut events = Vec::new();
            let mut results = Vec::with_capacity(jobs.len());
            let handed = blocking_if(scripts, || {
                let env = host.env();
                for job in jobs {
                    let mut ctx = Ctx { now: crate::now_ms(), ids: &mut host.ids(), env: &env };
                    let (cmd, task_id) = match job {
                        Job::Command(cmd) => (Some(cmd.clone()), None),
                        Job::ByRef { reference, status, output, worker_id } => {
                            match by_ref_update(state, reference.as_deref(), *status, output, worker_id) {
                                Some(update) => {
                                    let id = update.task_id.clone();
                                    (Some(Command::Update(Box::new(update))), Some(id))
                                }
                                None => (None, None),
                            }
                        }
                    };
                    let Some(cmd) = cmd else {
                        results.push(Ok(JobOutcome { events: 0, task_id: None }));
                        continue;
                    };
                    match decide::decide(state, cmd, &mut ctx) {
                        Ok(new) => {
                            results.push(Ok(JobOutcome { events: new.len(), task_id }));
                            events.extend(new);
                        }
                        Err(rejection) => results.push(Err(rejection.into())),
                    }
                }
                hand_off(&host, state, &mut events, &env)
            });
            if events.is_empty() {
                return results;
            }
            let stored = stored_outputs(state, jobs);
            if let Err(e) = crate::payloads::offload(&host.replica, &host.payloads, state, &mut events, &stored).await {
                self.state = None;
                return jobs.iter().map(|_| Err(e.clone())).collect();
            }
            let ended = Ended::of(state, &events);
            let decided = crate::traces::workflow::Decided::of(&events);
            let batch = WorkflowBatch { workflow_id: self.id.clone(), expected_revision, events };
            match Box::pin(self.host.replica.propose(Request::Workflow(batch))).await {
                Ok(Response::Applied { revision }) => {
                    tracing::debug!(revision, ended_tasks = ended.tasks.len(), "committed");
                    if let Some((_, status, _)) = &ended.workflow {
                        tracing::debug!(status, "workflow ended");
                    }
                    ended.record();
                    if let (Some(decided), Some(state)) = (decided, self.state.as_ref()) {
                        decided.committed(state, command, began);
                    }
                    self.deliver(handed);
                    return results;
                }
                Ok(Response::RevisionConflict { .. }) => {
                    metrics::counter!(names::DECIDE_CONFLICT).increment(1);
                    self.state = None;
                }
                Ok(other) => {
                    self.state = None;
                    let e = Error::Internal(format!("unexpected reply to a workflow batch: {other}"));
                    return jobs.iter().map(|_| Err(e.clone())).collect();
                }
                Err(e) => {
                    self.state = None;
                    let e: Error = e.into();
                    return jobs.iter().map(|_| Err(e.clone())).collect();
                }
            }
        }
        let e = Error::Unavailable(format!("workflow {} kept changing while deciding; retry", self.id));
        jobs.iter().map(|_| Err(e.clone())).collect()
    }

    /// Sends each task handed to a waiting poll, now that the batch that polled it committed.
    /// (A batch that fails drops its hand-offs instead, and those polls look again.)
    fn deliver(&mut self, handed: Vec<HandedOff>) {
        for h in handed {
            let task = self.render_task(&h.task_id);
            if let Err(e) = &task {
                tracing::warn!(task_id = %h.task_id, error = %e, "rendering a handed-off task");
            }
            let rendered = task.is_ok();
            if h.reply.send(task.ok()).is_err() {
                // As when a poll's request goes away while its claim commits: the task is
                // IN_PROGRESS with nobody on it until its response timeout.
                tracing::warn!(task_id = %h.task_id, "the poll a task was handed to went away");
            } else if rendered {
                tracing::debug!(task_id = %h.task_id, "handed to a waiting poll");
                let waited = (crate::now_ms() - h.ready_at).max(0) as f64 / 1000.0;
                metrics::histogram!(names::TASK_QUEUE_WAIT).record(waited);
                metrics::counter!(names::TASK_POLL, "taskType" => names::task_type_label(&h.task_type)).increment(1);
                metrics::counter!(names::TASK_HANDED_OFF, "taskType" => names::task_type_label(&h.task_type))
                    .increment(1);
            }
        }
    }

    fn render_task(&mut self, task_id: &str) -> Result<Box<RawValue>, Error> {
        let state = self.load()?;
        let task =
            state.task_by_id(task_id).ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?;
        let raw = serde_json::value::to_raw_value(&render::task(state, task, crate::now_ms()))
            .map_err(|e| Error::Internal(format!("rendering a task: {e}")))?;
        if !secrets::mentions_secrets(raw.get()) {
            return Ok(raw);
        }
        // Handed over: the one place a secret's value is put in (see overture_core::secrets).
        let mut value: serde_json::Value =
            serde_json::from_str(raw.get()).map_err(|e| Error::Internal(format!("reading a rendered task: {e}")))?;
        let read = self.host.replica.read();
        let lookup = |name: &str| read.variable(overture_raft::types::VariableKind::Secret, name).ok().flatten();
        if let Some(input) = value.get_mut("inputData") {
            let count = secrets::substitute(input, &lookup);
            metrics::counter!(names::SECRETS_SUBSTITUTED).increment(count as u64);
        }
        serde_json::value::to_raw_value(&value).map_err(|e| Error::Internal(format!("rendering a task: {e}")))
    }

    fn outcome(&mut self, task_id: &str) -> Result<UpdateOutcome, Error> {
        let state = self.load()?;
        let task =
            state.task_by_id(task_id).ok_or_else(|| Error::NotFound(format!("No such task found by id: {task_id}")))?;
        Ok(UpdateOutcome {
            queue: task.queue.clone(),
            task_type: task.task_type.clone(),
            terminal: task.status.is_terminal(),
        })
    }
}

/// The task outputs that results in `jobs` name as stored already (`externalOutputPayloadStoragePath`).
fn stored_outputs(state: &WorkflowState, jobs: &[Job]) -> std::collections::HashMap<PayloadTarget, String> {
    jobs.iter()
        .filter_map(|job| match job {
            Job::Command(Command::Update(u)) => {
                let path = u.output_stored_at.clone()?;
                Some((PayloadTarget::TaskOutput(state.task_by_id(&u.task_id)?.seq), path))
            }
            _ => None,
        })
        .collect()
}

/// A task a decision handed to a waiting poll, sent to it once the batch commits.
struct HandedOff {
    task_id: String,
    task_type: TaskType,
    ready_at: i64,
    reply: HandOff,
}

/// Hands the worker tasks that `events` schedule straight to long polls waiting for them (see
/// `queues.rs`): each is decided as polled by that poll's worker and its events join the batch,
/// so the commit that schedules the task also dispatches it, where the queue would take a second
/// commit (the poll's). Only tasks ready now, in a queue with nothing else ready, of a task type
/// without `concurrentExecLimit` or rate limit (those go through the queue and its checks).
fn hand_off(host: &Host, state: &mut WorkflowState, events: &mut Vec<Event>, env: &LeaderEnv<'_>) -> Vec<HandedOff> {
    let mut handed = Vec::new();
    if state.header.status.is_terminal() {
        return handed;
    }
    let scheduled: Vec<u32> =
        events.iter().filter_map(|e| if let Event::TaskScheduled(s) = e { Some(s.task.seq) } else { None }).collect();
    for seq in scheduled {
        let now = crate::now_ms();
        let Some(task) = state.task(seq) else { continue };
        let Some(queue) = task.queue.as_deref() else { continue };
        if task.status != TaskStatus::Scheduled || task.ready_at() > now || QueueName::is_system_name(queue) {
            continue;
        }
        let limits = host.limits.of(&task.task_type, now, env.read);
        if !limits.is_ok_and(|l| l.is_unlimited()) {
            continue;
        }
        let Some((worker_id, reply)) = host.queues.take_waiter(queue) else { continue };
        let (task_id, task_type, ready_at) = (task.task_id.clone(), task.task_type.clone(), task.ready_at());
        let poll = Command::Poll { task_id: task_id.clone(), worker_id };
        match decide::decide(state, poll, &mut Ctx { now, ids: &mut host.ids(), env }) {
            Ok(new) => {
                events.extend(new);
                handed.push(HandedOff { task_id, task_type, ready_at, reply });
            }
            // The poll looks again.
            Err(_) => drop(reply),
        }
    }
    handed
}

/// Tasks and the workflow that a decision ended, for the metrics recorded once it commits.
struct Ended {
    /// Task type, final status, seconds from start to end (none if it never started).
    tasks: Vec<(TaskType, &'static str, Option<f64>)>,
    /// Definition name, final status, seconds from start to end.
    workflow: Option<(String, &'static str, f64)>,
}

impl Ended {
    fn of(state: &WorkflowState, events: &[overture_core::Event]) -> Ended {
        use overture_core::Event;
        let mut seen = std::collections::BTreeSet::new();
        let mut tasks = Vec::new();
        for e in events {
            let Some(seq) = e.task_seq() else { continue };
            if !matches!(e, Event::TaskUpdated(_) | Event::TaskStatusChanged { .. }) || !seen.insert(seq) {
                continue;
            }
            if let Some(t) = state.task(seq).filter(|t| t.status.is_terminal()) {
                let ran = (t.start_time > 0 && t.end_time >= t.start_time)
                    .then(|| (t.end_time - t.start_time) as f64 / 1000.0);
                tasks.push((t.task_type.clone(), t.status.as_str(), ran));
            }
        }
        let h = &state.header;
        let workflow = events
            .iter()
            .any(|e| matches!(e, Event::WorkflowEnded(_)))
            .then(|| (h.workflow_name.clone(), h.status.as_str(), (h.end_time - h.create_time).max(0) as f64 / 1000.0));
        Ended { tasks, workflow }
    }

    fn record(self) {
        for (task_type, status, ran) in self.tasks {
            if status == TaskStatus::TimedOut.as_str() {
                metrics::counter!(names::TASK_TIMEOUT, "taskType" => names::task_type_label(&task_type)).increment(1);
            }
            if let Some(seconds) = ran {
                metrics::histogram!(names::TASK_EXECUTION, "taskType" => names::task_type_label(&task_type), "status" => status).record(seconds);
            }
        }
        if let Some((name, status, seconds)) = self.workflow {
            metrics::histogram!(names::WORKFLOW_EXECUTION, "workflowName" => names::workflow_label(&name), "status" => status).record(seconds);
        }
    }
}

/// Runs a decision that may evaluate scripts (up to their time limit) without stalling the other
/// tasks of this runtime worker: on a multi-threaded runtime the worker hands its other tasks
/// off first. Decisions without scripts run in place.
pub(crate) fn blocking_if<T>(scripts: bool, decide: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if scripts && multi_thread { tokio::task::block_in_place(decide) } else { decide() }
}

/// The update a by-reference report (or a signal, without a reference) makes: of the open task
/// with that reference name (a loop task also by its base name), or of the task the workflow is
/// blocked on. `None` if there is no such task.
fn by_ref_update(
    state: &WorkflowState,
    reference: Option<&str>,
    status: TaskResultStatus,
    output: &Object,
    worker_id: &Option<String>,
) -> Option<TaskUpdate> {
    let task = match reference {
        None => state.blocking_task(),
        Some(reference) => {
            let open = |r: &str| state.latest(r).filter(|t| !t.status.is_terminal());
            let base = reference.rsplit_once("__").map_or(reference, |(b, _)| b);
            open(reference).or_else(|| open(base))
        }
    }?;
    Some(TaskUpdate {
        task_id: task.task_id.clone(),
        status,
        output: Some(output.clone()),
        merge_output: true,
        reason: None,
        worker_id: worker_id.clone(),
        callback_after_seconds: 0,
        extend_lease: false,
        logs: Vec::new(),
        output_stored_at: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain() -> WorkflowMsg {
        WorkflowMsg::Drain
    }

    /// An inbox takes [`MAX_INBOX`] messages and hands the next one back: a client hammering one
    /// workflow is told to slow down instead of growing the queue. Only the first message of an
    /// empty inbox wakes the actor.
    #[test]
    fn an_inbox_is_bounded_and_wakes_its_actor_once() {
        let inbox = Inbox::default();
        assert!(matches!(inbox.push(drain()), Ok(true)), "the first message wakes the actor");
        for _ in 1..MAX_INBOX {
            assert!(matches!(inbox.push(drain()), Ok(false)));
        }
        assert!(inbox.push(drain()).is_err(), "a full inbox refuses");
        assert_eq!(inbox.take().len(), MAX_INBOX);
        assert!(matches!(inbox.push(drain()), Ok(true)), "taken: room again, and a wake-up");
    }
}

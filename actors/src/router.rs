//! Acting on a workflow wherever its group is led. In a partitioned cluster a leader's service
//! sometimes acts on a workflow of another partition: a schedule's fire (run by the metadata
//! group's leader) starts a workflow in the partition its id hashes to, and an event handler's
//! action starts, completes, terminates or updates one. The [`Router`] does it on this node when
//! this node leads that partition, and otherwise asks the node that does
//! ([`paths::PARTITION_START`], [`paths::PARTITION_OP`]).
//!
//! A start is idempotent: its id is derived from what caused it, so a start repeated after a
//! failover on either side, or after an answer lost in transit, finds the workflow the first
//! one made. An [`Op`] repeated finds its task already completed, its workflow already
//! terminated (a no-op), or sets the same variables again. The cause (the schedule's fire, the
//! broker message) is recorded only after the effect is acknowledged, so nothing is lost either.

use std::sync::Weak;
use std::time::Duration;

use overture_core::dsl::StartWorkflowRequest;
use overture_core::{Object, TaskResultStatus, TaskUpdate, WorkflowId};
use overture_raft::codec::{JsonBytes, decode_message, encode_message};
use overture_raft::network::paths;
use serde::{Deserialize, Serialize};

use crate::engine::Inner;
use crate::error::Error;
use crate::workflows::Workflows;

/// How long a start or an operation on another node may take.
const REMOTE_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Acts on workflows of any group; held by leader services. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Router {
    engine: Weak<Inner>,
    partitions: u16,
}

/// A start asked of the node that leads the workflow's partition.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RemoteStart {
    /// The `StartWorkflowRequest`, as JSON.
    request: JsonBytes,
    workflow_id: String,
    /// The parent workflow and its task, for a sub-workflow.
    parent: Option<(String, String)>,
}

/// An operation on one workflow (an event handler's action), done where its partition is led.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum Op {
    /// Records a task's result.
    Update(Box<TaskUpdate>),
    /// Records the result of the open task with this reference name.
    #[serde(rename_all = "camelCase")]
    UpdateByRef { workflow_id: String, reference: String, status: TaskResultStatus, output: Object },
    /// Terminates a workflow; one already ended stays as it is.
    #[serde(rename_all = "camelCase")]
    Terminate { workflow_id: String, reason: Option<String> },
    /// Merges variables into a workflow's.
    #[serde(rename_all = "camelCase")]
    UpdateVariables { workflow_id: String, variables: Object, append: bool },
    /// Records a default event queue's message in the task it names.
    #[serde(rename_all = "camelCase")]
    FromDefaultQueue { workflow_id: String, status: TaskResultStatus, payload: serde_json::Value },
}

impl Op {
    /// The workflow or task it acts on, whose partition does it.
    fn target(&self) -> &str {
        match self {
            Op::Update(update) => &update.task_id,
            Op::UpdateByRef { workflow_id, .. }
            | Op::Terminate { workflow_id, .. }
            | Op::UpdateVariables { workflow_id, .. }
            | Op::FromDefaultQueue { workflow_id, .. } => workflow_id,
        }
    }

    /// Does it through this node's actors of its partition.
    async fn run(self, workflows: &Workflows) -> Result<(), Error> {
        match self {
            Op::Update(update) => workflows.update_task(*update).await.map(|_| ()),
            Op::UpdateByRef { workflow_id, reference, status, output } => {
                workflows.workflow(&workflow_id)?;
                workflows.update_by_ref(&workflow_id, Some(reference), status, output, None).await.map(|_| ())
            }
            Op::Terminate { workflow_id, reason } => {
                workflows.workflow(&workflow_id)?;
                match workflows.terminate(&workflow_id, reason).await {
                    Ok(()) | Err(Error::Conflict(_)) => Ok(()),
                    Err(e) => Err(e),
                }
            }
            Op::UpdateVariables { workflow_id, variables, append } => {
                workflows.update_variables(&workflow_id, variables, append).await
            }
            Op::FromDefaultQueue { status, payload, .. } => {
                crate::default_queues::apply_here(workflows, status, &payload).await.map(|_| ())
            }
        }
    }
}

/// Runs `effect` until it succeeds or fails for a reason that does not pass, trying again after
/// 0.1 s, doubling to 2 s, for as long as `host`'s term lasts (a lease lost for a moment under
/// load does not end it): a broker message's effect on a workflow whose partition is being
/// re-elected, or is overloaded, lands once it can. A consumer's slots bound how many wait so.
/// When the term ends first, the message is not acknowledged and the next leader gets it again.
/// The effect must be idempotent.
pub(crate) async fn until_it_lands<T, F, Fut>(host: &crate::host::Host, mut effect: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match effect().await {
            // Not a storage failure or a bug (`Internal`): that would only fail again.
            Err(e) if e.is_retryable() && !matches!(e, Error::Internal(_)) && !host.is_stopped() => {
                tracing::debug!(error = %e, "an effect on a workflow: trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

/// What a remote start answers: nothing, or an error as its HTTP status and message.
type RemoteAnswer = Result<(), (u16, String)>;

impl Router {
    pub fn new(engine: Weak<Inner>, partitions: u16) -> Router {
        Router { engine, partitions }
    }

    /// The number of partitions of the cluster.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    /// Does `op` in its workflow's group, here or on the node that leads it.
    pub async fn act(&self, op: Op) -> Result<(), Error> {
        let inner = self.engine.upgrade().ok_or_else(|| Error::Unavailable("this node is shutting down".into()))?;
        match inner.leader_of(inner.groups.group_of(op.target())) {
            Ok(leader) => op.run(&leader.workflows).await,
            Err(Error::Elsewhere { node, address, .. }) => {
                let message = JsonBytes::of(&op);
                let answer: RemoteAnswer = inner
                    .groups
                    .ask(node, &address, paths::PARTITION_OP, &message, REMOTE_START_TIMEOUT)
                    .await
                    .map_err(|e| Error::Unavailable(format!("acting on a workflow on node {node}: {e}")))?;
                answer.map_err(|(status, message)| from_status(status, message))
            }
            Err(e) => Err(e),
        }
    }

    /// Starts a workflow under `workflow_id` in its group, here or on the node that leads it;
    /// starting it again is a no-op.
    pub async fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> Result<(), Error> {
        let inner = self.engine.upgrade().ok_or_else(|| Error::Unavailable("this node is shutting down".into()))?;
        let group = inner.groups.group_of(&workflow_id);
        match inner.leader_of(group) {
            Ok(leader) => leader.workflows.start_child(request, workflow_id, parent).await,
            Err(Error::Elsewhere { node, address, .. }) => {
                let message = RemoteStart {
                    request: JsonBytes::of(&request),
                    workflow_id: workflow_id.into_string(),
                    parent: parent.map(|(id, task)| (id.into_string(), task)),
                };
                let answer: RemoteAnswer = inner
                    .groups
                    .ask(node, &address, paths::PARTITION_START, &message, REMOTE_START_TIMEOUT)
                    .await
                    .map_err(|e| Error::Unavailable(format!("starting a workflow on node {node}: {e}")))?;
                answer.map_err(|(status, message)| from_status(status, message))
            }
            Err(e) => Err(e),
        }
    }
}

/// Serves a start another node asks of this one ([`Router::start_child`]); answers the encoded
/// [`RemoteAnswer`].
pub(crate) async fn serve_start(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let answer: Result<RemoteAnswer, String> = match decode_message::<RemoteStart>(bytes) {
        Err(e) => Err(format!("a remote start that does not decode: {e}")),
        Ok(start) => match start.request.parse::<StartWorkflowRequest>() {
            Err(e) => Err(format!("a remote start whose request does not parse: {e}")),
            Ok(request) => {
                let workflow_id: WorkflowId = start.workflow_id.into();
                let parent = start.parent.map(|(id, task)| (WorkflowId::from(id), task));
                let group = inner.groups.group_of(&workflow_id);
                // Only where it is led: a second hop could go round in circles while leadership moves.
                let started = match inner.leader_of(group) {
                    Ok(leader) => leader.workflows.start_child(request, workflow_id, parent).await,
                    Err(Error::Elsewhere { group, .. }) => Err(Error::Unavailable(format!(
                        "partition {group} moved while a start was sent to this node; retry"
                    ))),
                    Err(e) => Err(e),
                };
                Ok(started.map_err(|e| (status_of(&e), e.to_string())))
            }
        },
    };
    encode_message(&answer)
}

/// Serves an [`Op`] another node asks of this one ([`Router::act`]); answers the encoded
/// [`RemoteAnswer`].
pub(crate) async fn serve_op(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let answer: Result<RemoteAnswer, String> = match decode_message::<JsonBytes>(bytes) {
        Err(e) => Err(format!("a remote operation that does not decode: {e}")),
        Ok(json) => match json.parse::<Op>() {
            Err(e) => Err(format!("a remote operation that does not parse: {e}")),
            Ok(op) => {
                let done = match inner.leader_of(inner.groups.group_of(op.target())) {
                    Ok(leader) => op.run(&leader.workflows).await,
                    Err(Error::Elsewhere { group, .. }) => Err(Error::Unavailable(format!(
                        "partition {group} moved while an operation was sent to this node; retry"
                    ))),
                    Err(e) => Err(e),
                };
                Ok(done.map_err(|e| (status_of(&e), e.to_string())))
            }
        },
    };
    encode_message(&answer)
}

/// The HTTP status an error maps to, to carry it across.
fn status_of(e: &Error) -> u16 {
    match e {
        Error::NotFound(_) => 404,
        Error::Conflict(_) => 409,
        Error::BadRequest(_) | Error::Invalid(_) => 400,
        Error::Overloaded(_) => 429,
        Error::DiskFull(_) => 507,
        Error::Unavailable(_) | Error::Elsewhere { .. } => 503,
        Error::Internal(_) => 500,
    }
}

fn from_status(status: u16, message: String) -> Error {
    match status {
        404 => Error::NotFound(message),
        409 => Error::Conflict(message),
        400 => Error::BadRequest(message),
        429 => Error::Overloaded(message),
        507 => Error::DiskFull(message),
        503 => Error::Unavailable(message),
        _ => Error::Internal(message),
    }
}

//! The engine's side of [`crate::router`]: a start or an [`Op`] on a workflow is done through
//! this node's leader services of its partition, or asked of the node that leads it
//! ([`paths::PARTITION_START`], [`paths::PARTITION_OP`]), which does it only if it leads the
//! partition itself (one hop: a second could go round in circles while leadership moves).

use std::time::Duration;

use futures::future::BoxFuture;
use overture_core::WorkflowId;
use overture_core::dsl::StartWorkflowRequest;
use overture_raft::codec::{JsonBytes, decode_message, encode_message};
use overture_raft::network::paths;
use serde::{Deserialize, Serialize};

use super::Inner;
use crate::error::Error;
use crate::router::{Op, Reach};
use crate::workflows::Workflows;

/// How long a start or an operation on another node may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(30);

/// A start asked of the node that leads the workflow's partition.
#[derive(Debug, Serialize, Deserialize)]
struct RemoteStart {
    /// The `StartWorkflowRequest`, as JSON.
    request: JsonBytes,
    workflow_id: String,
    /// The parent workflow and its task, for a sub-workflow.
    parent: Option<(String, String)>,
}

/// What a remote start or operation answers: nothing, or an error as its HTTP status and
/// message.
type RemoteAnswer = Result<(), (u16, String)>;

impl Reach for Inner {
    fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            match self.leader_of(self.groups.group_of(&workflow_id)) {
                Ok(leader) => leader.workflows.start_child(request, workflow_id, parent).await,
                Err(Error::Elsewhere { node, address, .. }) => {
                    let message = RemoteStart {
                        request: JsonBytes::of(&request),
                        workflow_id: workflow_id.into_string(),
                        parent: parent.map(|(id, task)| (id.into_string(), task)),
                    };
                    self.ask(node, &address, paths::PARTITION_START, &message).await
                }
                Err(e) => Err(e),
            }
        })
    }

    fn act(&self, op: Op) -> BoxFuture<'_, Result<(), Error>> {
        Box::pin(async move {
            match self.leader_of(self.groups.group_of(op.target())) {
                Ok(leader) => run(op, &leader.workflows).await,
                Err(Error::Elsewhere { node, address, .. }) => {
                    self.ask(node, &address, paths::PARTITION_OP, &JsonBytes::of(&op)).await
                }
                Err(e) => Err(e),
            }
        })
    }
}

impl Inner {
    /// Asks node `node` at `address` to do what `message` says on `path`.
    async fn ask<M: Serialize>(&self, node: u64, address: &str, path: &str, message: &M) -> Result<(), Error> {
        let answer: RemoteAnswer = self
            .groups
            .ask(node, address, path, message, REMOTE_TIMEOUT)
            .await
            .map_err(|e| Error::Unavailable(format!("asking node {node} to act on a workflow: {e}")))?;
        answer.map_err(|(status, message)| from_status(status, message))
    }

    /// The leader services of the group that holds `id`, if this node leads it; a retryable
    /// error if it moved to another node meanwhile.
    fn leading(&self, id: &str) -> Result<std::sync::Arc<crate::leader::Leader>, Error> {
        match self.leader_of(self.groups.group_of(id)) {
            Err(Error::Elsewhere { group, .. }) => Err(Error::Unavailable(format!(
                "partition {group} moved while a request for it was sent to this node; retry"
            ))),
            other => other,
        }
    }
}

/// Does `op` through this node's actors of its partition.
async fn run(op: Op, workflows: &Workflows) -> Result<(), Error> {
    match op {
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

/// Serves a start another node asks of this one; answers the encoded [`RemoteAnswer`].
pub(super) async fn serve_start(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let answer: Result<RemoteAnswer, String> = match decode_message::<RemoteStart>(bytes) {
        Err(e) => Err(format!("a remote start that does not decode: {e}")),
        Ok(start) => match start.request.parse::<StartWorkflowRequest>() {
            Err(e) => Err(format!("a remote start whose request does not parse: {e}")),
            Ok(request) => {
                let workflow_id: WorkflowId = start.workflow_id.into();
                let parent = start.parent.map(|(id, task)| (WorkflowId::from(id), task));
                let started = match inner.leading(&workflow_id) {
                    Ok(leader) => leader.workflows.start_child(request, workflow_id, parent).await,
                    Err(e) => Err(e),
                };
                Ok(started.map_err(|e| (status_of(&e), e.to_string())))
            }
        },
    };
    encode_message(&answer)
}

/// Serves an [`Op`] another node asks of this one; answers the encoded [`RemoteAnswer`].
pub(super) async fn serve_op(inner: &Inner, bytes: &[u8]) -> Vec<u8> {
    let answer: Result<RemoteAnswer, String> = match decode_message::<JsonBytes>(bytes) {
        Err(e) => Err(format!("a remote operation that does not decode: {e}")),
        Ok(json) => match json.parse::<Op>() {
            Err(e) => Err(format!("a remote operation that does not parse: {e}")),
            Ok(op) => {
                let done = match inner.leading(op.target()) {
                    Ok(leader) => run(op, &leader.workflows).await,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_kind_across_nodes() {
        let kinds = [
            Error::NotFound("n".into()),
            Error::Conflict("c".into()),
            Error::BadRequest("b".into()),
            Error::Overloaded("o".into()),
            Error::DiskFull("d".into()),
            Error::Unavailable("u".into()),
            Error::Internal("i".into()),
        ];
        for e in kinds {
            let back = from_status(status_of(&e), e.to_string());
            assert_eq!(std::mem::discriminant(&back), std::mem::discriminant(&e), "{e:?} came back as {back:?}");
        }
    }
}

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
use crate::limits::Admission;
use crate::permits::PermitAsk;
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

/// The status a remote start answers, with the workflow's id as the message, when the start is
/// held by another workflow than the one asked for (its idempotency key's, `RETURN_EXISTING`):
/// HTTP's "see other". The answer's form is unchanged, so nodes of the release before read it
/// as an error, which is what they answered themselves.
const SEE_OTHER: u16 = 303;

impl Reach for Inner {
    fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> BoxFuture<'_, Result<WorkflowId, Error>> {
        Box::pin(async move {
            match self.leader_of(self.groups.group_of(&workflow_id)) {
                Ok(leader) => leader.workflows.start_child(request, workflow_id, parent).await,
                Err(Error::Elsewhere { node, address, .. }) => {
                    let message = RemoteStart {
                        request: JsonBytes::of(&request),
                        workflow_id: workflow_id.to_string(),
                        parent: parent.map(|(id, task)| (id.into_string(), task)),
                    };
                    match self.ask(node, &address, paths::PARTITION_START, &message).await {
                        Ok(()) => Ok(workflow_id),
                        Err(RemoteError::Other(existing)) => Ok(existing.into()),
                        Err(RemoteError::Failed(e)) => Err(e),
                    }
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
                    self.ask(node, &address, paths::PARTITION_OP, &JsonBytes::of(&op)).await.map_err(RemoteError::error)
                }
                Err(e) => Err(e),
            }
        })
    }

    fn permit(&self, ask: PermitAsk) -> BoxFuture<'_, Admission> {
        Box::pin(self.ask_permit(ask))
    }

    fn return_permit(&self, task_id: String) {
        self.give_back_permit(task_id);
    }
}

/// A remote start's or operation's answer other than plain success.
enum RemoteError {
    /// A start held by this other workflow ([`SEE_OTHER`]).
    Other(String),
    /// It failed.
    Failed(Error),
}

impl RemoteError {
    /// As an error: an operation has no other workflow to answer.
    fn error(self) -> Error {
        match self {
            RemoteError::Other(id) => Error::Internal(format!("an operation answered with workflow {id}")),
            RemoteError::Failed(e) => e,
        }
    }
}

impl Inner {
    /// Asks node `node` at `address` to do what `message` says on `path`.
    async fn ask<M: Serialize>(&self, node: u64, address: &str, path: &str, message: &M) -> Result<(), RemoteError> {
        let answer: RemoteAnswer =
            self.groups.ask(node, address, path, message, REMOTE_TIMEOUT).await.map_err(|e| {
                RemoteError::Failed(Error::Unavailable(format!("asking node {node} to act on a workflow: {e}")))
            })?;
        answer.map_err(|(status, message)| match status {
            SEE_OTHER => RemoteError::Other(message),
            _ => RemoteError::Failed(from_status(status, message)),
        })
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
                    Ok(leader) => leader.workflows.start_child(request, workflow_id.clone(), parent).await,
                    Err(e) => Err(e),
                };
                Ok(match started {
                    Ok(id) if id == workflow_id => Ok(()),
                    Ok(other) => Err((SEE_OTHER, other.into_string())),
                    Err(e) => Err((status_of(&e), e.to_string())),
                })
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

    /// The bytes of every message one node sends another about partitions (starts, polls,
    /// operations, backups' read index, limits' permits and reports) and of their answers,
    /// pinned. Nodes of two releases
    /// exchange these during a rolling upgrade: a change here is a change to the node-to-node
    /// protocol, which needs a new `PROTOCOL_VERSION` and a node that still reads the old form
    /// (README, Which versions mix). A failure prints the new bytes.
    #[test]
    fn partition_messages_keep_their_wire_format() {
        use crate::engine::polls::Poll;
        use overture_core::Object;
        use overture_core::command::{TaskResultStatus, TaskUpdate};

        fn hex(bytes: &[u8]) -> String {
            bytes.iter().map(|b| format!("{b:02x}")).collect()
        }
        fn pinned<T: Serialize + serde::de::DeserializeOwned + std::fmt::Debug>(
            name: &str,
            value: &T,
            expected: &str,
            problems: &mut Vec<String>,
        ) {
            let bytes = encode_message(value);
            if hex(&bytes) != expected {
                problems.push(format!("{name}: now {}", hex(&bytes)));
            }
            match decode_message::<T>(&bytes) {
                Ok(back) if format!("{back:?}") == format!("{value:?}") => {}
                other => problems.push(format!("{name}: does not read back: {other:?}")),
            }
        }
        let mut problems = Vec::new();
        let request = StartWorkflowRequest {
            name: Some("订单".into()),
            version: Some(2),
            correlation_id: Some("c-1".into()),
            input: Some(serde_json::json!({"客户": "张三"}).as_object().cloned().unwrap_or_default()),
            task_to_domain: [("发货".to_owned(), "d".to_owned())].into_iter().collect(),
            workflow_def: None,
            priority: 5,
            created_by: None,
            idempotency_key: Some("k".into()),
            idempotency_strategy: Some("RETURN_EXISTING".into()),
            external_input_payload_storage_path: None,
        };
        let start = RemoteStart {
            request: JsonBytes::of(&request),
            workflow_id: "wf-1".into(),
            parent: Some(("wf-0".into(), "task-0".into())),
        };
        pinned("start", &start, START, &mut problems);
        // A start held by another workflow answers its id under `SEE_OTHER`.
        let answers: [RemoteAnswer; 3] = [Ok(()), Err((409, "已存在".into())), Err((SEE_OTHER, "wf-2".into()))];
        pinned("start or op answer", &answers, ANSWERS, &mut problems);
        let poll =
            Poll { task_type: "发货".into(), domain: Some("d".into()), worker_id: Some("w-1".into()), count: 3 };
        pinned("poll", &poll, POLL, &mut problems);
        let polled: [Result<Vec<String>, String>; 2] = [Ok(vec!["{\"taskId\":\"t-1\"}".into()]), Err("no".into())];
        pinned("poll answer", &polled, POLL_ANSWER, &mut problems);
        let ops = [
            Op::Update(Box::new(TaskUpdate {
                task_id: "t-1".into(),
                status: TaskResultStatus::Completed,
                output: serde_json::json!({"结果": 1}).as_object().cloned(),
                merge_output: false,
                reason: None,
                worker_id: Some("w".into()),
                callback_after_seconds: 0,
                extend_lease: false,
                logs: vec!["日志".into()],
                output_stored_at: None,
            })),
            Op::UpdateByRef {
                workflow_id: "wf-1".into(),
                reference: "审批".into(),
                status: TaskResultStatus::Failed,
                output: Object::new(),
            },
            Op::Terminate { workflow_id: "wf-1".into(), reason: Some("取消".into()) },
            Op::UpdateVariables { workflow_id: "wf-1".into(), variables: Object::new(), append: true },
            Op::FromDefaultQueue {
                workflow_id: "wf-1".into(),
                status: TaskResultStatus::Completed,
                payload: serde_json::json!([1, "二"]),
            },
        ];
        let ops: Vec<JsonBytes> = ops.iter().map(JsonBytes::of).collect();
        pinned("operations", &ops, OPS, &mut problems);
        let read_index: (overture_raft::GroupId, Result<u64, String>) = (3, Ok(42));
        pinned("read index", &read_index, READ_INDEX, &mut problems);
        let notice = crate::engine::ready::ReadyNotice { node: 3, queue: "审批:发货".into() };
        pinned("ready notice", &notice, READY_NOTICE, &mut problems);
        let noticed: [Result<bool, String>; 2] = [Ok(true), Err("no".into())];
        pinned("ready notice answer", &noticed, READY_NOTICE_ANSWER, &mut problems);
        pinned("poll data ask", &Some("发货".to_owned()), POLL_DATA_ASK, &mut problems);
        let record = crate::engine::PollRecord {
            task_type: "发货".into(),
            domain: Some("d".into()),
            worker_id: Some("w-1".into()),
            last_poll_time: 1_700_000_000_000,
        };
        let data: [Result<Vec<crate::engine::PollRecord>, String>; 2] = [Ok(vec![record]), Err("no".into())];
        pinned("poll data answer", &data, POLL_DATA_ANSWER, &mut problems);
        let ask = crate::permits::PermitAsk {
            def: "发货".into(),
            task_id: "t-1".into(),
            concurrent: 2,
            per_window: 10,
            window_ms: 60_000,
        };
        pinned("permit ask", &ask, PERMIT_ASK, &mut problems);
        let granted: [Result<crate::permits::PermitAnswer, String>; 2] = [Ok((2, 1_700_000_000_000)), Err("no".into())];
        pinned("permit answer", &granted, PERMIT_ANSWER, &mut problems);
        let report = crate::permits::RunningReport {
            groups: vec![(3, 7, vec![("发货".into(), vec!["t-1".into()])])],
            returned: vec!["t-2".into()],
        };
        pinned("running report", &report, RUNNING_REPORT, &mut problems);
        let wake: [Result<Vec<String>, String>; 2] = [Ok(vec!["发货".into()]), Err("no".into())];
        pinned("running report answer", &wake, RUNNING_REPORT_ANSWER, &mut problems);
        assert!(problems.is_empty(), "partition messages changed their wire format:\n{}", problems.join("\n"));
    }

    const START: &str = "01fb02017b226e616d65223a22e8aea2e58d95222c2276657273696f6e223a322c22636f7272656c6174696f6e4964223a22632d31222c22696e707574223a7b22e5aea2e688b7223a22e5bca0e4b889227d2c227461736b546f446f6d61696e223a7b22e58f91e8b4a7223a2264227d2c22776f726b666c6f77446566223a6e756c6c2c227072696f72697479223a352c22637265617465644279223a6e756c6c2c226964656d706f74656e63794b6579223a226b222c226964656d706f74656e63795374726174656779223a2252455455524e5f4558495354494e47222c2265787465726e616c496e7075745061796c6f616453746f7261676550617468223a6e756c6c7d0477662d31010477662d30067461736b2d30";
    const ANSWERS: &str = "010001fb990109e5b7b2e5ad98e59ca801fb2f010477662d32";
    const POLL: &str = "0106e58f91e8b4a70101640103772d3103";
    const POLL_ANSWER: &str = "010001107b227461736b4964223a22742d31227d01026e6f";
    const OPS: &str = "0105d47b22757064617465223a7b227461736b5f6964223a22742d31222c22737461747573223a22434f4d504c45544544222c226f7574707574223a7b22e7bb93e69e9c223a317d2c226d657267655f6f7574707574223a66616c73652c22726561736f6e223a6e756c6c2c22776f726b65725f6964223a2277222c2263616c6c6261636b5f61667465725f7365636f6e6473223a302c22657874656e645f6c65617365223a66616c73652c226c6f6773223a5b22e697a5e5bf97225d2c226f75747075745f73746f7265645f6174223a6e756c6c7d7d587b227570646174654279526566223a7b22776f726b666c6f774964223a2277662d31222c227265666572656e6365223a22e5aea1e689b9222c22737461747573223a224641494c4544222c226f7574707574223a7b7d7d7d357b227465726d696e617465223a7b22776f726b666c6f774964223a2277662d31222c22726561736f6e223a22e58f96e6b688227d7d467b227570646174655661726961626c6573223a7b22776f726b666c6f774964223a2277662d31222c227661726961626c6573223a7b7d2c22617070656e64223a747275657d7d537b2266726f6d44656661756c745175657565223a7b22776f726b666c6f774964223a2277662d31222c22737461747573223a22434f4d504c45544544222c227061796c6f6164223a5b312c22e4ba8c225d7d7d";
    const READ_INDEX: &str = "0103002a";
    const READY_NOTICE: &str = "01030de5aea1e689b93ae58f91e8b4a7";
    const READY_NOTICE_ANSWER: &str = "01000101026e6f";
    const POLL_DATA_ASK: &str = "010106e58f91e8b4a7";
    const PERMIT_ASK: &str = "0106e58f91e8b4a703742d31020afcc0d40100";
    const PERMIT_ANSWER: &str = "010002fd00d0ca9f1703000001026e6f";
    const RUNNING_REPORT: &str = "010103070106e58f91e8b4a70103742d310103742d32";
    const RUNNING_REPORT_ANSWER: &str = "01000106e58f91e8b4a701026e6f";
    const POLL_DATA_ANSWER: &str = "01000106e58f91e8b4a70101640103772d31fd00d0ca9f1703000001026e6f";

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

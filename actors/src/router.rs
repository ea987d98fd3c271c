//! Acting on a workflow wherever its group is led. In a partitioned cluster a leader's service
//! sometimes acts on a workflow of another partition: a schedule's fire (run by the metadata
//! group's leader) starts a workflow in the partition its id hashes to, a START_WORKFLOW task
//! with an idempotency key starts one in the key's partition, and an event handler's action
//! starts, completes, terminates or updates one. The [`Router`] does it on this node when
//! this node leads that partition, and otherwise asks the node that does (the engine's
//! [`Reach`], over `/internal/partitions/start` and `/internal/partitions/op`).
//!
//! A start is idempotent: its id is derived from what caused it, so a start repeated after a
//! failover on either side, or after an answer lost in transit, finds the workflow the first
//! one made. An [`Op`] repeated finds its task already completed, its workflow already
//! terminated (a no-op), or sets the same variables again. The cause (the schedule's fire, the
//! broker message) is recorded only after the effect is acknowledged, so nothing is lost either.

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use overture_core::dsl::StartWorkflowRequest;
use overture_core::{Object, TaskResultStatus, TaskUpdate, WorkflowId};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::limits::{Admission, TaskLimits};
use crate::permits::{PermitAsk, RETRY_MS};

/// What acts on a workflow of any group: the engine, which knows which groups this node leads
/// and how to ask the others.
pub(crate) trait Reach: Send + Sync {
    /// Starts a workflow under `workflow_id` in its group; starting it again is a no-op.
    /// Answers the workflow that holds the start: `workflow_id`, or the one its idempotency key
    /// returned (`RETURN_EXISTING`, for a start without a parent).
    fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> BoxFuture<'_, Result<WorkflowId, Error>>;

    /// Does `op` in its workflow's group.
    fn act(&self, op: Op) -> BoxFuture<'_, Result<(), Error>>;

    /// Asks the metadata group's leader for a permit to hand out a task of a limited
    /// definition ([`crate::permits`]).
    fn permit(&self, ask: PermitAsk) -> BoxFuture<'_, Admission>;

    /// Returns a permit, soon, with a report: its task ended, or its hand-off did not happen.
    fn return_permit(&self, task_id: String);
}

/// Acts on workflows of any group; held by leader services. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Router {
    reach: Weak<dyn Reach>,
    partitions: u16,
}

impl Router {
    pub fn new(reach: Weak<dyn Reach>, partitions: u16) -> Router {
        Router { reach, partitions }
    }

    /// The number of partitions of the cluster.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }

    fn reach(&self) -> Result<Arc<dyn Reach>, Error> {
        self.reach.upgrade().ok_or_else(|| Error::Unavailable("this node is shutting down".into()))
    }

    /// Starts a workflow under `workflow_id` in its group, here or on the node that leads it;
    /// starting it again is a no-op. Answers as [`Reach::start_child`].
    pub async fn start_child(
        &self,
        request: StartWorkflowRequest,
        workflow_id: WorkflowId,
        parent: Option<(WorkflowId, String)>,
    ) -> Result<WorkflowId, Error> {
        self.reach()?.start_child(request, workflow_id, parent).await
    }

    /// Does `op` in its workflow's group, here or on the node that leads it.
    pub async fn act(&self, op: Op) -> Result<(), Error> {
        self.reach()?.act(op).await
    }

    /// A permit of the cluster's count to hand out `task_id` of `def` (see [`crate::permits`]).
    pub async fn permit(&self, def: &str, task_id: &str, limits: TaskLimits) -> Admission {
        let Ok(reach) = self.reach() else { return Admission::Undecided(crate::now_ms() + RETRY_MS) };
        let ask = PermitAsk {
            def: def.to_owned(),
            task_id: task_id.to_owned(),
            concurrent: u32::try_from(limits.concurrent).unwrap_or(u32::MAX),
            per_window: u32::try_from(limits.per_window).unwrap_or(u32::MAX),
            window_ms: limits.window_ms,
        };
        reach.permit(ask).await
    }

    /// Returns a permit: its task ended, or its hand-off did not happen.
    pub fn return_permit(&self, task_id: &str) {
        if let Ok(reach) = self.reach() {
            reach.return_permit(task_id.to_owned());
        }
    }
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
    pub fn target(&self) -> &str {
        match self {
            Op::Update(update) => &update.task_id,
            Op::UpdateByRef { workflow_id, .. }
            | Op::Terminate { workflow_id, .. }
            | Op::UpdateVariables { workflow_id, .. }
            | Op::FromDefaultQueue { workflow_id, .. } => workflow_id,
        }
    }
}

/// Runs `effect` until it succeeds or fails for a reason that does not pass, trying again after
/// 0.1 s, doubling to 2 s, until `stopped` (the caller's leadership term ended; a lease lost for
/// a moment under load does not end it): a broker message's effect on a workflow whose
/// partition is being re-elected, or is overloaded, lands once it can. A consumer's slots bound
/// how many wait so. When the term ends first, the message is not acknowledged and the next
/// leader gets it again. The effect must be idempotent.
pub(crate) async fn until_it_lands<T, F, Fut>(stopped: impl Fn() -> bool, mut effect: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        match effect().await {
            // Not a storage failure or a bug (`Internal`): that would only fail again.
            Err(e) if e.is_retryable() && !matches!(e, Error::Internal(_)) && !stopped() => {
                tracing::debug!(error = %e, "an effect on a workflow: trying again");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            done => return done,
        }
    }
}

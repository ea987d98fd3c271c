//! `POST /workflow/test`: runs a definition with mocked task results and no worker, as
//! conductor-oss's workflow test service does.
//!
//! The workflow is a real, stored execution started with `taskToDomain["*"]` set to a fresh
//! test domain ([`overture_core::queue::TEST_DOMAIN_PREFIX`]), so no worker polls its tasks and
//! the leader's executor leaves its HTTP, EVENT and START_WORKFLOW tasks to the mocks. Then, until
//! the workflow ends or nothing more can be done: each open task that needs a mock
//! ([`queries::needs_mock`]) takes the next mock listed for its reference name (`ref__N` inside a
//! DO_WHILE, a retry takes the next one), and a SUB_WORKFLOW with a `subWorkflowTestRequest`
//! drives its child the same way with the child's own mocks. It answers the workflow as it stands
//! when an open task has no mock left, when it ends, or when the time allowed runs out.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::time::Duration;

use overture_core::dsl::StartWorkflowRequest;
use overture_core::queue::TEST_DOMAIN_PREFIX;
use overture_core::{Object, TaskResultStatus, TaskUpdate, WorkflowState, queries};
use serde::Deserialize;

use super::Engine;
use crate::error::Error;

/// Conductor's `WorkflowTestRequest`: a start request with mocks.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowTestRequest {
    /// What to start.
    #[serde(flatten)]
    pub start: StartWorkflowRequest,
    /// Reference name → the results its task takes, in order.
    #[serde(default)]
    pub task_ref_to_mock_output: BTreeMap<String, Vec<TaskMock>>,
    /// SUB_WORKFLOW reference name → the mocks of the child it starts.
    #[serde(default)]
    pub sub_workflow_test_request: BTreeMap<String, WorkflowTestRequest>,
}

/// Conductor's `TaskMock`: one result a task takes.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskMock {
    /// The task's status: COMPLETED (the default), FAILED, ...
    #[serde(default = "completed")]
    pub status: String,
    /// The task's output.
    #[serde(default)]
    pub output: Option<Object>,
    /// Accepted as conductor-oss does; the task's times are the ones the mock was applied at.
    #[serde(default)]
    pub execution_time: i64,
    /// Accepted as conductor-oss does; see `execution_time`.
    #[serde(default)]
    pub queue_wait_time: i64,
}

fn completed() -> String {
    "COMPLETED".to_owned()
}

/// How long a test may run before it answers the workflow as it stands.
const TEST_TIME: Duration = Duration::from_secs(60);
/// How long a test waits for a change it cannot see (a child starting) before it looks again.
const LOOK_AGAIN: Duration = Duration::from_millis(50);

/// The mocks of one workflow under test.
struct Mocks {
    by_ref: BTreeMap<String, VecDeque<TaskMock>>,
    children: BTreeMap<String, WorkflowTestRequest>,
    driven: HashSet<String>,
}

impl Mocks {
    fn of(request: &WorkflowTestRequest) -> Mocks {
        Mocks {
            by_ref: request
                .task_ref_to_mock_output
                .iter()
                .map(|(r, m)| (r.clone(), m.iter().cloned().collect()))
                .collect(),
            children: request.sub_workflow_test_request.clone(),
            driven: HashSet::new(),
        }
    }

    /// Whether anything is left to apply.
    fn pending(&self) -> bool {
        !self.by_ref.is_empty() || self.children.keys().any(|r| !self.driven.contains(r))
    }
}

impl Engine {
    /// Starts the request's workflow in a test domain and drives it with its mocks; answers the
    /// workflow as it stands at the end.
    pub async fn test_workflow(&self, mut request: WorkflowTestRequest) -> Result<WorkflowState, Error> {
        let domain = format!("{TEST_DOMAIN_PREFIX}{}", uuid::Uuid::new_v4().simple());
        request.start.task_to_domain.insert("*".to_owned(), domain);
        let id = self.start_workflow(request.start.clone()).await?;
        let deadline = tokio::time::Instant::now() + TEST_TIME;
        self.drive(&id, Mocks::of(&request), deadline).await
    }

    /// Applies `mocks` to workflow `id` until it ends, needs a mock it lacks, or `deadline`.
    async fn drive(&self, id: &str, mut mocks: Mocks, deadline: tokio::time::Instant) -> Result<WorkflowState, Error> {
        let watch = self.leader()?.host.watchers.watch(id);
        loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let wf = self.workflow(id)?;
            let open: Vec<_> = wf.tasks.iter().filter(|t| !t.status.is_terminal() && !t.retried).collect();
            let missing = open
                .iter()
                .any(|t| queries::needs_mock(&t.kind()) && !mocks.by_ref.contains_key(&t.reference_task_name));
            if wf.header.status.is_terminal() || missing || !mocks.pending() || tokio::time::Instant::now() >= deadline
            {
                return Ok(wf);
            }
            let mut moved = false;
            for task in open {
                let reference = &task.reference_task_name;
                if let (Some(child), Some(child_request)) = (&task.sub_workflow_id, mocks.children.get(reference)) {
                    if mocks.driven.insert(reference.clone()) {
                        Box::pin(self.drive(child, Mocks::of(child_request), deadline)).await?;
                        moved = true;
                    }
                    continue;
                }
                if !queries::needs_mock(&task.kind()) {
                    continue;
                }
                let Some(mock) = mocks.by_ref.get_mut(reference).and_then(VecDeque::pop_front) else {
                    mocks.by_ref.remove(reference);
                    continue;
                };
                let status = TaskResultStatus::parse(&mock.status).ok_or_else(|| {
                    Error::BadRequest(format!("Mock of {reference}: unknown status {:?}", mock.status))
                })?;
                let update = TaskUpdate {
                    task_id: task.task_id.clone(),
                    status,
                    output: Some(mock.output.unwrap_or_default()),
                    merge_output: false,
                    reason: None,
                    worker_id: Some("workflow-test".to_owned()),
                    callback_after_seconds: 0,
                    extend_lease: false,
                    logs: Vec::new(),
                    output_stored_at: None,
                };
                self.update_task(update).await?;
                moved = true;
            }
            if !moved {
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(LOOK_AGAIN) => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
        }
    }
}

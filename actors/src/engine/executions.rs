//! Workflow executions: start, synchronous execution, operations, removal and reads.

use std::sync::Arc;
use std::time::Duration;

use overture_core::dsl::StartWorkflowRequest;
use overture_core::queries;
use overture_core::{Command, Plan, WorkflowId, WorkflowState};
use overture_raft::Request;

use super::Engine;

/// How often a synchronous wait looks at a workflow again while it runs sub-workflows.
const CHILD_RECHECK: Duration = Duration::from_millis(100);

/// Where a synchronous execution or signal stands when it answers.
#[derive(Debug, Clone)]
pub struct SyncRun {
    /// The workflow started or signalled.
    pub target: WorkflowState,
    /// The workflow (the target or one of its sub-workflows) and the `seq` of the task in it
    /// that the wait stopped at, if it stopped at one.
    pub blocking: Option<(WorkflowState, u32)>,
    /// The wait ran out first.
    pub timed_out: bool,
}
use crate::error::Error;
use crate::names;
use crate::workflows::{fill_task_defs, prepare_start};

impl Engine {
    /// Starts a workflow and returns its id once the start is committed.
    pub async fn start_workflow(&self, mut request: StartWorkflowRequest) -> Result<WorkflowId, Error> {
        let name = crate::start_name(&request).map(str::to_owned);
        let (leader, workflow_id) = self.start_in(&request)?;
        // The start request's trace, when it named one: the workflow's spans go into it.
        if let Some(request_span) = crate::traces::current_request() {
            crate::traces::remember(&workflow_id, request_span);
        }
        let storage = &leader.host.payloads.storage;
        let read = leader.host.replica.read();
        let started = match crate::payloads::take_stored_input(storage, read, &mut request).await {
            Ok(stored) => match prepare_start(read, request, workflow_id.into(), None) {
                Ok(mut cmd) => {
                    // Referred to only if nothing was added to it (an `inputTemplate`'s defaults).
                    cmd.input_stored_at = stored.filter(|_| cmd.plan.def.input_template.is_empty());
                    leader.workflows.start_workflow(cmd).await
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        // Partitioned: a definition registered a moment ago through another node may not have
        // reached this node's replica of the metadata group yet; its leader has it, and starts
        // the workflow in a partition it leads.
        if matches!(started, Err(Error::NotFound(_)))
            && self.partitioned()
            && let Err(elsewhere @ Error::Elsewhere { .. }) = self.leader()
        {
            return Err(elsewhere);
        }
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

    /// Where a start goes, and the id it gets. Without partitions: the leader, a new id. With
    /// them: a partition this node leads, taken in turn, and an id that lands in it; a start with
    /// an idempotency key goes to the partition the (name, key) pair hashes to, wherever it is
    /// led, so one partition sees every start that reuses the key. A node that leads no
    /// partition sends the start to the leader of one ([`Error::Elsewhere`]).
    fn start_in(&self, request: &StartWorkflowRequest) -> Result<(Arc<crate::leader::Leader>, String), Error> {
        let partitions = self.partitions();
        if partitions <= 1 {
            return Ok((self.leader()?, crate::new_id()));
        }
        let group = match crate::key_partition(request, partitions) {
            Some(group) => group,
            None => {
                let local: Vec<_> = self.local_leaders().into_iter().filter(|l| l.host.group != 0).collect();
                if !local.is_empty() {
                    let turn = self.inner.next_start.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let leader = local[turn % local.len()].clone();
                    let id = crate::new_id_in(leader.host.group, partitions);
                    return Ok((leader, id));
                }
                overture_raft::partition_of(&crate::new_id(), partitions)
            }
        };
        Ok((self.inner.leader_of(group)?, crate::new_id_in(group, partitions)))
    }

    /// Starts a workflow and waits for it as [`Engine::await_run`] does.
    pub async fn execute_sync(
        &self,
        request: StartWorkflowRequest,
        wait_refs: &[String],
        wait: Duration,
    ) -> Result<SyncRun, Error> {
        let id = self.start_workflow(request).await?;
        self.await_run(&id, wait_refs, wait).await
    }

    /// Waits, up to `wait`, until workflow `id` ends or blocks ([`queries::blocking`]: an open
    /// WAIT without a deadline, or a finished task of `wait_refs`, in it or in a running
    /// sub-workflow). Woken by the commits that change it; while sub-workflows run, whose commits
    /// do not, it also looks every 100 ms.
    pub async fn await_run(&self, id: &str, wait_refs: &[String], wait: Duration) -> Result<SyncRun, Error> {
        let watch = self.leader_for(id)?.host.watchers.watch(id);
        let deadline = tokio::time::Instant::now() + wait;
        let load = |child: &str| self.workflow(child).ok();
        loop {
            let notified = watch.notify().notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let target = self.workflow(id)?;
            let blocking = queries::blocking(&target, wait_refs, &load);
            if target.header.status.is_terminal() || blocking.is_some() {
                return Ok(SyncRun { target, blocking, timed_out: false });
            }
            let again = if queries::has_running_children(&target) { CHILD_RECHECK } else { wait };
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(again) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    return Ok(SyncRun { target: self.workflow(id)?, blocking: None, timed_out: true });
                }
            }
        }
    }

    /// Sends an operation (pause, resume, retry, skip, ...) to a workflow.
    pub async fn operate(&self, workflow_id: &str, command: overture_core::Command) -> Result<(), Error> {
        // Where it is led first: a node that does not lead it may not have seen it yet.
        let leader = self.leader_for(workflow_id)?;
        self.workflow(workflow_id)?;
        leader.workflows.command(workflow_id, command).await.map(|_| ())
    }

    /// `POST /workflow/{id}/retry?resumeSubworkflowTasks=`: runs the failed tasks again. With
    /// `resume_subworkflows`, a failed SUB_WORKFLOW task whose child can be retried is not run
    /// again with a new child: the child is retried (the same way, recursively) and the task
    /// waits for it.
    pub async fn retry(&self, workflow_id: &str, resume_subworkflows: bool) -> Result<(), Error> {
        self.leader_for(workflow_id)?;
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
                    child_id: child_id.as_str().into(),
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
        self.leader_for(workflow_id)?;
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
        let leader = self.leader_for(workflow_id)?;
        let wf = self.workflow(workflow_id)?;
        if archive && !wf.header.status.is_terminal() {
            return Err(Error::BadRequest(format!(
                "Workflow {workflow_id} is {}: only a finished workflow can be archived",
                wf.header.status.as_str()
            )));
        }
        leader.workflows.stop_actor(workflow_id);
        self.propose_in(&leader, Request::RemoveWorkflow { workflow_id: workflow_id.into() }).await
    }

    /// Workflow actors live on this node (none unless it leads).
    pub fn live_actors(&self) -> usize {
        self.local_leaders().iter().map(|l| l.workflows.live_actors()).sum()
    }

    /// An execution, from the local replica.
    pub fn workflow(&self, id: &str) -> Result<WorkflowState, Error> {
        crate::workflows::workflow(self.read_of(id), id)
    }

    /// A workflow's header (status, input, output, variables, times), without its tasks.
    pub fn workflow_header(&self, id: &str) -> Result<overture_core::WorkflowHeader, Error> {
        self.read_of(id)
            .workflow_header(id)?
            .ok_or_else(|| Error::NotFound(format!("No such workflow found by id: {id}")))
    }

    /// Terminates a workflow.
    pub async fn terminate(&self, id: &str, reason: Option<String>) -> Result<(), Error> {
        let leader = self.leader_for(id)?;
        self.workflow(id)?;
        leader.workflows.terminate(id, reason).await
    }
}

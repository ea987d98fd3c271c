//! Timer follow-ups that involve a second workflow or an event queue, carried out by the
//! leader and then acknowledged to the workflow that asked, which removes its timer: telling a
//! parent its child ended, starting a failure workflow, terminating a canceled task's child, and
//! publishing an ended workflow's status (`crate::status_listener`).
//!
//! Each step is idempotent (derived ids, no-op updates of finished work), so a follow-up cut short
//! by a failover is simply done again by the next leader.

use overture_core::command::{ChildEnded, Command};
use overture_core::dsl::StartWorkflowRequest;
use overture_core::rows::{TimerItem, TimerKind};
use overture_core::{WorkflowId, WorkflowState, render};

use crate::brokers::Brokers;
use crate::error::Error;
use crate::workflows::{Workflows, prepare_start};

/// Fires a durable timer: a deadline goes to its workflow's decider; a follow-up is carried out
/// here. Answers whether the timer did anything (`false`: not due yet by the actor's clock).
pub(crate) async fn fire(workflows: &Workflows, brokers: &Brokers, timer: &TimerItem) -> Result<bool, Error> {
    let (id, seq) = (timer.workflow_id.as_str(), timer.seq);
    match timer.kind {
        TimerKind::NotifyParent => notify_parent(workflows, id).await.map(|_| true),
        TimerKind::StartFailureWorkflow => start_failure_workflow(workflows, id).await.map(|_| true),
        TimerKind::CancelChild => cancel_child(workflows, id, seq).await.map(|_| true),
        TimerKind::PublishStatus => crate::status_listener::publish(workflows, brokers, id).await.map(|_| true),
        TimerKind::WorkflowTimeout
        | TimerKind::TaskTimeout
        | TimerKind::PollTimeout
        | TimerKind::TotalTimeout
        | TimerKind::ResponseTimeout
        | TimerKind::WaitTimeout => workflows.fire_timer(timer).await,
    }
}

async fn notify_parent(workflows: &Workflows, child_id: &str) -> Result<(), Error> {
    let child = workflows.workflow(child_id)?;
    let h = &child.header;
    if let (Some(parent), Some(task_id)) = (&h.parent_workflow_id, &h.parent_workflow_task_id) {
        let ended = ChildEnded {
            task_id: task_id.clone(),
            child_id: child_id.into(),
            status: h.status,
            output: h.output.clone(),
            reason: h.reason_for_incompletion.clone(),
        };
        match workflows.command(parent, Command::ChildEnded(Box::new(ended))).await {
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    workflows.command(child_id, Command::ParentNotified).await.map(|_| ())
}

async fn start_failure_workflow(workflows: &Workflows, workflow_id: &str) -> Result<(), Error> {
    let failed = workflows.workflow(workflow_id)?;
    let started = match failure_workflow_request(&failed) {
        Some(request) => {
            let id: WorkflowId = workflows.host().derived_id("failure-workflow", workflow_id).into();
            match prepare_start(workflows.read(), request, id.clone(), None) {
                Ok(cmd) => match workflows.start_workflow(cmd).await {
                    Ok(_) | Err(Error::Conflict(_)) => Ok(id),
                    Err(e @ Error::Unavailable(_)) => return Err(e),
                    Err(e) => Err(e.to_string()),
                },
                Err(e) => Err(e.to_string()),
            }
        }
        None => Err("failureWorkflow names no workflow".to_owned()),
    };
    let (workflow_id_started, error) = match started {
        Ok(id) => (Some(id), None),
        Err(e) => {
            tracing::warn!(workflow_id, error = %e, "cannot start the failure workflow");
            (None, Some(e))
        }
    };
    let cmd = Command::FailureWorkflowStarted { workflow_id: workflow_id_started, error };
    workflows.command(workflow_id, cmd).await.map(|_| ())
}

async fn cancel_child(workflows: &Workflows, workflow_id: &str, seq: u32) -> Result<(), Error> {
    let parent = workflows.workflow(workflow_id)?;
    if let Some(child) = parent.task(seq).and_then(|t| t.sub_workflow_id.clone()) {
        let reason = Some(format!("Parent workflow {workflow_id} has been terminated"));
        match workflows.terminate(&child, reason).await {
            // Already ended (a COMPLETED child cannot be terminated) or gone: nothing to do.
            Ok(()) | Err(Error::Conflict(_) | Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    workflows.command(workflow_id, Command::ChildCanceled { seq }).await.map(|_| ())
}

/// The start request of a failed workflow's `failureWorkflow`: its input plus `workflowId`,
/// `reason`, `failureStatus`, `failureTaskId` and the whole `failedWorkflow`; the same
/// correlation id and task domains. `$workflow.input.x` or `${workflow.input.x}` names are
/// resolved against the failed workflow.
fn failure_workflow_request(failed: &WorkflowState) -> Option<StartWorkflowRequest> {
    let def = &failed.plan.def;
    let raw = def.failure_workflow.as_deref()?.trim();
    let name = if let Some(path) = raw.strip_prefix('$') {
        let expression = if path.starts_with('{') { raw.to_owned() } else { format!("${{{path}}}") };
        let scope =
            overture_core::expr::Scope { state: failed, task_id: None, env: &overture_core::command::NoEnvironment };
        match overture_core::expr::resolve_value(&serde_json::Value::String(expression), &scope) {
            Ok(serde_json::Value::String(s)) => s,
            _ => return None,
        }
    } else {
        raw.to_owned()
    };
    if name.is_empty() {
        return None;
    }
    let h = &failed.header;
    let mut input = h.input.clone();
    input.insert("workflowId".into(), h.workflow_id.to_string().into());
    input.insert("reason".into(), h.reason_for_incompletion.clone().into());
    input.insert("failureStatus".into(), h.status.as_str().into());
    let failed_task = failed.tasks.iter().rev().find(|t| !t.status.is_successful());
    if let Some(t) = failed_task {
        input.insert("failureTaskId".into(), t.task_id.clone().into());
    }
    let view = serde_json::to_value(render::workflow(failed, true, crate::now_ms())).unwrap_or_default();
    input.insert("failedWorkflow".into(), view);
    Some(StartWorkflowRequest {
        name: Some(name),
        version: def.failure_workflow_version,
        correlation_id: h.correlation_id.clone(),
        input: Some(input),
        task_to_domain: h.task_to_domain.clone(),
        workflow_def: None,
        priority: h.priority,
        created_by: None,
        idempotency_key: None,
        idempotency_strategy: None,
        external_input_payload_storage_path: None,
    })
}

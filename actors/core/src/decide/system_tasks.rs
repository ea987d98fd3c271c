//! What a task comes to the moment it is scheduled, by its type, as a value: it waits (for a
//! worker, the leader's executor, the tasks it joins, a timer or a person), it ends at once, or
//! its definition cannot run and the workflow fails.
//!
//! The rules here only compute; `schedule` turns a [`Started`] into events. A system task's
//! failure ([`system::Failure`]) becomes a [`Started`] in one place, `From<system::Failure>`.

use crate::command::Environment;
use crate::dsl::WorkflowTask;
use crate::expr::Scope;
use crate::plan::TaskKind;
use crate::state::{Object, TaskState, TaskStatus, WorkflowHeader};
use crate::system;
use serde_json::{Value, json};

use super::{Decider, with_iteration};

/// What a task comes to when it is scheduled.
#[derive(Debug)]
pub(super) enum Started {
    /// It waits: for a worker, the leader's executor, the tasks it joins, a timer or a person.
    Waits,
    /// It ended at once with this status, output and reason.
    Ended {
        /// Its final status.
        status: TaskStatus,
        /// Its output (empty keeps what the task already has).
        output: Object,
        /// Why it did not complete.
        reason: Option<String>,
    },
    /// A SET_VARIABLE that completed: the workflow's variables become these.
    SetsVariables(Object),
    /// The definition cannot run: the workflow fails with this reason, and the task is not created.
    FailsWorkflow(String),
}

impl Started {
    fn completed(output: Object) -> Started {
        Started::Ended { status: TaskStatus::Completed, output, reason: None }
    }

    /// Fails the task for good (no retry): its input or a rule of its type is wrong.
    pub(super) fn failed_terminal(reason: String) -> Started {
        Started::Ended { status: TaskStatus::FailedWithTerminalError, output: Object::new(), reason: Some(reason) }
    }
}

impl From<system::Failure> for Started {
    fn from(f: system::Failure) -> Started {
        match f {
            system::Failure::Task(status, reason, output) => Started::Ended { status, output, reason: Some(reason) },
            system::Failure::Workflow(reason) => Started::FailsWorkflow(reason),
        }
    }
}

impl Decider<'_, '_> {
    /// Runs `task`, just created for `wt`, as far as its type allows now. It may set the task's
    /// status (IN_PROGRESS for what waits in place), input and output.
    pub(super) fn start_task(
        &self,
        kind: &TaskKind,
        wt: &WorkflowTask,
        task: &mut TaskState,
        iteration: i32,
    ) -> Started {
        let env = self.ctx.env;
        match kind {
            // Queued for a worker, or for the leader's executor.
            TaskKind::Simple | TaskKind::UserDefined | TaskKind::Dynamic => Started::Waits,
            TaskKind::SubWorkflow
            | TaskKind::StartWorkflow
            | TaskKind::Http
            | TaskKind::Event
            | TaskKind::KafkaPublish => Started::Waits,
            TaskKind::Noop | TaskKind::ForkJoin => Started::completed(Object::new()),
            TaskKind::Switch | TaskKind::Decision => branch(kind, wt, task, env),
            TaskKind::ForkJoinDynamic => dynamic_fork(wt, task, iteration, self.has_dynamic_fork()),
            TaskKind::Join | TaskKind::ExclusiveJoin => {
                let join_on = self.join_on(wt, iteration);
                join(kind, wt, task, join_on, iteration)
            }
            TaskKind::DoWhile => self.do_while(wt, task),
            TaskKind::Wait => wait(task, self.ctx.now),
            TaskKind::Human => {
                task.status = TaskStatus::InProgress;
                Started::Waits
            }
            TaskKind::Terminate => match system::terminate(&task.input) {
                Ok((_, _, output)) => Started::completed(output),
                Err(f) => f.into(),
            },
            TaskKind::SetVariable => set_variable(&self.state.header, task),
            TaskKind::Inline | TaskKind::Lambda | TaskKind::JsonJqTransform => {
                let result = match kind {
                    TaskKind::Inline => system::inline(&task.input, env),
                    TaskKind::Lambda => system::lambda(wt, &task.input, env),
                    _ => system::json_jq(&task.input, env),
                };
                result.map_or_else(Started::from, Started::completed)
            }
            TaskKind::Unsupported(t) => Started::FailsWorkflow(unsupported(wt, t)),
        }
    }

    /// Whether the execution already has a dynamic fork task (conductor-oss then names the
    /// tasks of a simple-form dynamic fork after their fork too).
    fn has_dynamic_fork(&self) -> bool {
        self.state.tasks.iter().any(|t| {
            t.task_type.as_str() == "FORK"
                && self
                    .state
                    .workflow_task(t)
                    .is_some_and(|(wt, _)| TaskKind::of(&wt.task_type) == TaskKind::ForkJoinDynamic)
        })
    }

    /// A DO_WHILE starts its first iteration, or completes at once over an empty `items` list.
    fn do_while(&self, wt: &WorkflowTask, task: &mut TaskState) -> Started {
        task.status = TaskStatus::InProgress;
        task.iteration = 1;
        task.output.insert("iteration".to_owned(), Value::from(1));
        let Some(expr) = wt.items.as_deref() else { return Started::Waits };
        let scope = Scope { state: self.state, task_id: None, env: self.ctx.env };
        let items = match crate::expr::resolve_value(&Value::String(expr.to_owned()), &scope) {
            Ok(Value::Array(items)) => items,
            Ok(Value::Null) => Vec::new(),
            Ok(other) => vec![other],
            Err(e) => return Started::failed_terminal(format!("The loop's items {e}")),
        };
        if items.is_empty() {
            task.iteration = 0;
            task.output.insert("iteration".to_owned(), Value::from(0));
            task.input.insert("_items".to_owned(), Value::Array(items));
            return Started::completed(task.output.clone());
        }
        task.output.insert("loopIndex".to_owned(), Value::from(0));
        task.output.insert("loopItem".to_owned(), items[0].clone());
        task.input.insert("_items".to_owned(), Value::Array(items));
        Started::Waits
    }
}

/// Why a task of a type this release does not run cannot be scheduled.
pub(super) fn unsupported(wt: &WorkflowTask, task_type: &str) -> String {
    format!("Task {} has type {task_type}, which this Overture release does not run", wt.task_reference_name)
}

/// SWITCH and DECISION choose their case now; the flow enters it once the task is acted on.
fn branch(kind: &TaskKind, wt: &WorkflowTask, task: &mut TaskState, env: &dyn Environment) -> Started {
    let switch = *kind == TaskKind::Switch;
    let case =
        if switch { system::switch_case(wt, &task.input, env) } else { system::decision_case(wt, &task.input, env) };
    let case = match case {
        Ok(case) => case,
        Err(f) => return f.into(),
    };
    task.input.insert("case".to_owned(), Value::String(case.clone()));
    let mut output = Object::new();
    if switch {
        output.insert("evaluationResult".to_owned(), json!([case]));
        output.insert("selectedCase".to_owned(), Value::String(case));
    } else {
        output.insert("caseOutput".to_owned(), json!([case]));
    }
    Started::completed(output)
}

/// A FORK_JOIN_DYNAMIC records the tasks it forks; they are scheduled once it is acted on.
fn dynamic_fork(wt: &WorkflowTask, task: &mut TaskState, iteration: i32, earlier_fork: bool) -> Started {
    let forked = match system::dynamic_fork_after(wt, &task.input, earlier_fork) {
        Ok(forked) => forked,
        Err(f) => return f.into(),
    };
    let refs: Vec<Value> =
        forked.iter().map(|t| Value::String(with_iteration(&t.task_reference_name, iteration))).collect();
    task.input.insert("forkedTasks".to_owned(), Value::Array(refs));
    let defs = serde_json::to_value(&forked).unwrap_or(Value::Null);
    task.input.insert("forkedTaskDefs".to_owned(), defs);
    Started::completed(Object::new())
}

/// JOIN and EXCLUSIVE_JOIN wait, IN_PROGRESS, for the tasks they join on.
fn join(kind: &TaskKind, wt: &WorkflowTask, task: &mut TaskState, join_on: Vec<String>, iteration: i32) -> Started {
    task.input.insert("joinOn".to_owned(), json!(join_on));
    if *kind == TaskKind::ExclusiveJoin {
        let defaults: Vec<String> =
            wt.default_exclusive_join_task.iter().map(|r| with_iteration(r, iteration)).collect();
        task.input.insert("defaultExclusiveJoinTask".to_owned(), json!(defaults));
    }
    task.status = TaskStatus::InProgress;
    Started::Waits
}

/// A WAIT waits IN_PROGRESS, until its `until`/`duration` if it has one.
fn wait(task: &mut TaskState, now: i64) -> Started {
    match system::wait_until(&task.input, now) {
        Ok(until) => {
            task.status = TaskStatus::InProgress;
            task.wait_timeout = until;
            if until > 0 {
                task.callback_after_seconds = (until - now).max(0) / 1000;
            }
            Started::Waits
        }
        Err(f) => f.into(),
    }
}

/// SET_VARIABLE merges its input into the workflow's variables, within Conductor's size limit.
fn set_variable(header: &WorkflowHeader, task: &TaskState) -> Started {
    let mut merged = header.variables.clone();
    for (k, v) in &task.input {
        merged.insert(k.clone(), v.clone());
    }
    let size = serde_json::to_vec(&merged).map_or(usize::MAX, |b| b.len());
    if size > system::MAX_VARIABLES_BYTES {
        return Started::failed_terminal(format!(
            "The variables payload size: {size} of workflow: {} is greater than the permissible limit: {} bytes",
            header.workflow_id,
            system::MAX_VARIABLES_BYTES
        ));
    }
    Started::SetsVariables(merged)
}

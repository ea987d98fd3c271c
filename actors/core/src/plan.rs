//! A workflow definition compiled for the decider: tasks indexed by reference name, each knowing
//! what comes after it.
//!
//! Compiling never fails: rules live in [`crate::validate`], which runs when a definition is
//! registered or submitted inline. A plan is also rebuilt from stored definitions, which must load
//! even if a later release adds a rule they break; the decider fails such a workflow with a reason
//! rather than refusing to load it.

use std::collections::HashMap;

use crate::dsl::{TaskDef, WorkflowDef, WorkflowTask};

/// What kind of work a task of the definition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// A worker polls it by name (`SIMPLE`).
    Simple,
    /// A type Overture does not run yet; the decider fails the workflow if it is reached.
    Unsupported(String),
}

impl TaskKind {
    /// Classifies a `type` string.
    pub fn of(task_type: &str) -> TaskKind {
        match task_type {
            "SIMPLE" => TaskKind::Simple,
            other => TaskKind::Unsupported(other.to_owned()),
        }
    }
}

/// One task of the definition, placed.
#[derive(Debug, Clone)]
pub struct PlanTask {
    /// The task as written in the definition (with `taskDefinition` filled in at start).
    pub task: WorkflowTask,
    #[allow(missing_docs)]
    pub kind: TaskKind,
    /// Index of the task that follows it in the same list.
    next: Option<usize>,
}

impl PlanTask {
    /// The effective task definition: the embedded one, if any.
    pub fn task_def(&self) -> Option<&TaskDef> {
        self.task.task_definition.as_ref()
    }
}

/// A compiled workflow definition.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition, as the execution's snapshot.
    pub def: WorkflowDef,
    tasks: Vec<PlanTask>,
    by_ref: HashMap<String, usize>,
}

impl Plan {
    /// Compiles a definition. Duplicate reference names keep their first occurrence (validation
    /// rejects them before a definition is accepted).
    pub fn new(def: WorkflowDef) -> Plan {
        let mut tasks = Vec::with_capacity(def.tasks.len());
        let mut by_ref = HashMap::with_capacity(def.tasks.len());
        let count = def.tasks.len();
        for (i, task) in def.tasks.iter().enumerate() {
            by_ref.entry(task.task_reference_name.clone()).or_insert(i);
            tasks.push(PlanTask {
                task: task.clone(),
                kind: TaskKind::of(&task.task_type),
                next: (i + 1 < count).then_some(i + 1),
            });
        }
        Plan { def, tasks, by_ref }
    }

    /// The first task to schedule, if the definition has any.
    pub fn first(&self) -> Option<&PlanTask> {
        self.tasks.first()
    }

    /// The task with this reference name.
    pub fn task(&self, reference_name: &str) -> Option<&PlanTask> {
        self.by_ref.get(reference_name).map(|&i| &self.tasks[i])
    }

    /// The task scheduled after `reference_name` completes, or `None` at the end of the workflow.
    pub fn next_after(&self, reference_name: &str) -> Option<&PlanTask> {
        let i = *self.by_ref.get(reference_name)?;
        self.tasks[i].next.map(|n| &self.tasks[n])
    }

    /// Every task, in definition order.
    pub fn tasks(&self) -> impl Iterator<Item = &PlanTask> {
        self.tasks.iter()
    }
}

//! The flow of a running workflow: acting on finished tasks, stepping to what follows each one,
//! loop iterations and joins, until nothing changes.

use crate::dsl::WorkflowTask;
use crate::event::Event;
use crate::expr::{Scope, resolve_object};
use crate::plan::{CaseChoice, Slot, TaskKind};
use crate::state::{Object, TaskState, TaskStatus, WorkflowStatus};
use crate::system;
use serde_json::Value;

use super::{Decider, MAX_ITERATIONS_PER_DECISION, failure_reason};

impl Decider<'_, '_> {
    /// Acts on every task that reached a terminal status and was not acted on yet, and on every
    /// JOIN that can complete, until nothing changes; then completes the workflow if nothing is
    /// left to do.
    pub(super) fn run(&mut self) {
        loop {
            if !self.running() {
                return;
            }
            let mut progressed = false;
            let mut i = 0;
            while i < self.state.tasks.len() {
                let t = &self.state.tasks[i];
                i += 1;
                // A SKIPPED task is stepped over where the flow reaches it, not acted on here.
                if t.retried || t.executed || !t.status.is_terminal() || t.status == TaskStatus::Skipped {
                    continue;
                }
                progressed = true;
                let seq = t.seq;
                if t.status.is_successful() {
                    self.emit(Event::TaskExecuted { seq });
                    self.after(seq);
                } else if self.handle_failure(seq) {
                    // Tolerated (permissive): the flow goes on as if it had succeeded.
                    if self.state.tasks[seq as usize - 1].status.is_terminal()
                        && !self.state.tasks[seq as usize - 1].retried
                    {
                        self.emit(Event::TaskExecuted { seq });
                        self.after(seq);
                    }
                }
                if !self.running() {
                    return;
                }
            }
            progressed |= self.evaluate_joins();
            if !progressed {
                break;
            }
        }
        if self.state.header.status == WorkflowStatus::Running
            && self.state.tasks.iter().all(|t| t.status.is_terminal())
        {
            let permissive_failure = self.state.tasks.iter().find(|t| {
                !t.retried
                    && !t.status.is_successful()
                    && self.state.workflow_task(t).is_some_and(|(wt, _)| wt.permissive && !wt.optional)
            });
            match permissive_failure {
                Some(t) => {
                    let reason = failure_reason(t, WorkflowStatus::Failed);
                    self.end(WorkflowStatus::Failed, Some(reason));
                }
                None => self.end(WorkflowStatus::Completed, None),
            }
        }
    }

    /// What follows a task that finished well: a SWITCH enters its case, a fork starts its
    /// branches, a TERMINATE ends the workflow, anything else continues with the next task.
    pub(super) fn after(&mut self, seq: u32) {
        let plan = self.plan();
        let task = self.state.tasks[seq as usize - 1].clone();
        let Some(node) = plan.task(task.base_reference()) else { return };
        if task.workflow_task.is_some() && node.kind != TaskKind::Dynamic {
            // A dynamically forked task: its branch ends here and the JOIN takes over.
            return;
        }
        if task.workflow_task.is_none() && node.kind == TaskKind::Dynamic {
            return;
        }
        let iteration = if node.kind == TaskKind::DoWhile { 0 } else { task.iteration };
        if matches!(node.kind, TaskKind::ForkJoin | TaskKind::ForkJoinDynamic)
            && plan.next_in_list(node.index).is_none_or(|n| n.kind != TaskKind::Join)
        {
            let reason = "Fork task definition is not followed by a join task.  Check the blueprint".to_owned();
            self.end(WorkflowStatus::Failed, Some(reason));
            return;
        }
        match node.kind {
            TaskKind::Switch | TaskKind::Decision => {
                let case = task.input.get("case").and_then(Value::as_str).unwrap_or("null");
                match plan.case(node.index, case) {
                    CaseChoice::Task(head) => self.schedule(plan.at(head), iteration, None),
                    CaseChoice::Nothing => self.continue_after(node.index, iteration),
                }
            }
            TaskKind::ForkJoin => {
                for head in plan.branch_heads(node.index) {
                    self.schedule(head, iteration, None);
                }
                self.continue_after(node.index, iteration);
            }
            TaskKind::ForkJoinDynamic => {
                let forked: Vec<WorkflowTask> = task
                    .input
                    .get("forkedTaskDefs")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                for wt in &forked {
                    self.schedule_dynamic(wt, iteration);
                    if !self.running() {
                        return;
                    }
                }
                self.continue_after(node.index, iteration);
            }
            TaskKind::Terminate => {
                let (status, reason) = match system::terminate(&task.input) {
                    Ok((status, reason, _)) => (status, reason),
                    Err(_) => (WorkflowStatus::Failed, None),
                };
                let reason = reason.or_else(|| {
                    (status != WorkflowStatus::Completed)
                        .then(|| format!("Workflow is {} by TERMINATE task: {}", status.as_str(), task.task_id))
                });
                self.end_with(status, reason, Some(task.output.clone()), true);
            }
            _ => self.continue_after(node.index, iteration),
        }
    }

    /// Schedules what follows the plan task at `index` once it (and anything it contains) is done:
    /// the next task in its list; at the end of a case, what follows the SWITCH; at the end of a
    /// fork branch, nothing (the JOIN waits); at the end of a loop body, the loop's next step.
    pub(super) fn continue_after(&mut self, index: usize, iteration: i32) {
        let plan = self.plan();
        let mut at = index;
        loop {
            if let Some(next) = plan.next_in_list(at) {
                self.schedule(next, iteration, None);
                return;
            }
            match plan.at(at).slot {
                Slot::Top | Slot::Branch(..) => return,
                Slot::Case(owner, _) => at = owner,
                Slot::Loop(owner) => {
                    self.iteration_done(owner, iteration);
                    return;
                }
            }
        }
    }

    /// With `keepLastN` (a whole number among the loop's input parameters, as conductor-oss reads
    /// it), starting iteration `next` drops the tasks of the iterations before the last
    /// `keepLastN` (`next` among them), so a long loop keeps its workflow small.
    fn prune_iterations(&mut self, dw: &TaskState, loop_index: usize, next: i32) {
        let plan = self.plan();
        let node = plan.at(loop_index);
        let Some(keep) = node.task.input_parameters.get("keepLastN").and_then(Value::as_i64).filter(|k| *k >= 1) else {
            return;
        };
        let through = i64::from(next) - keep;
        if through < 1 {
            return;
        }
        let inside = |t: &TaskState| plan.task(t.base_reference()).is_some_and(|n| plan.is_inside(n.index, loop_index));
        let tasks: Vec<u32> = self
            .state
            .tasks
            .iter()
            .filter(|t| !t.is_pruned() && t.seq != dw.seq && t.iteration >= 1 && i64::from(t.iteration) <= through)
            .filter(|t| inside(t))
            .map(|t| t.seq)
            .collect();
        if !tasks.is_empty() {
            self.emit(Event::IterationsPruned { seq: dw.seq, through: through as i32, tasks });
        }
    }

    /// A DO_WHILE's body finished iteration `iteration`: record its outputs, then start the next
    /// iteration or complete the loop.
    pub(super) fn iteration_done(&mut self, loop_index: usize, iteration: i32) {
        let plan = self.plan();
        let node = plan.at(loop_index);
        let Some(dw) = self.state.latest(&node.task.task_reference_name).cloned() else { return };
        if dw.status != TaskStatus::InProgress || dw.iteration != iteration {
            return;
        }
        // The latest output of each task of the body, by reference name, for the condition.
        let mut latest_by_ref = Object::new();
        for n in plan.tasks().filter(|p| plan.is_inside(p.index, loop_index)) {
            if let Some(t) = self.state.latest(&n.task.task_reference_name).filter(|t| t.iteration > 0) {
                latest_by_ref.insert(n.task.task_reference_name.clone(), Value::Object(t.output.clone()));
            }
        }
        let mut output = dw.output.clone();
        output.insert("iteration".to_owned(), Value::from(iteration));
        // Every iteration's outputs: assembled only when the condition reads them or the loop ends.
        let full = || self.state.loop_output(&dw);
        let condition_sees_iterations = node
            .task
            .loop_condition
            .as_deref()
            .is_some_and(|c| system::reads_loop_iterations(c, &node.task.task_reference_name));
        let time = self.ctx.now;

        let items = dw.input.get("_items").and_then(Value::as_array).cloned();
        let more_items = items.as_ref().is_none_or(|items| (iteration as usize) < items.len());
        let wants_more = if !more_items {
            Ok(false)
        } else {
            match node.task.loop_condition.as_deref().filter(|c| !c.trim().is_empty()) {
                None => Ok(items.is_some()),
                Some(condition) => {
                    let scope = Scope { state: self.state, task_id: Some(&dw.task_id), env: self.ctx.env };
                    match resolve_object(&node.task.input_parameters, &scope) {
                        Err(e) => Err(format!("the loop's input {e}")),
                        Ok(mut input) => {
                            // The loop's own output, with every iteration's outputs only if the
                            // condition can read them (copying them all each iteration would make
                            // a long loop slow).
                            let own = if condition_sees_iterations { full() } else { output.clone() };
                            input.insert(node.task.task_reference_name.clone(), Value::Object(own));
                            for (k, v) in latest_by_ref {
                                input.insert(k, v);
                            }
                            self.ctx
                                .env
                                .javascript(condition, &Value::Object(input))
                                .map(|v| system::truthy(&v))
                                .map_err(|e| e.to_string())
                        }
                    }
                }
            }
        };
        match wants_more {
            Ok(true) => {
                let next = iteration + 1;
                self.prune_iterations(&dw, loop_index, next);
                output.insert("iteration".to_owned(), Value::from(next));
                if let Some(items) = &items {
                    output.insert("loopIndex".to_owned(), Value::from(next - 1));
                    output.insert("loopItem".to_owned(), items[(next - 1) as usize].clone());
                }
                self.iterations += 1;
                if self.iterations > MAX_ITERATIONS_PER_DECISION {
                    // Pause here; the WaitTimeout timer resumes the loop in a fresh decision.
                    self.emit(Event::TaskIterated { seq: dw.seq, iteration: next, output, resume_at: time, time });
                    return;
                }
                self.emit(Event::TaskIterated { seq: dw.seq, iteration: next, output, resume_at: 0, time });
                if let Some(head) = plan.loop_head(loop_index) {
                    self.schedule(head, next, None);
                }
            }
            Ok(false) => {
                let full = full();
                self.finish_system_task(dw.seq, TaskStatus::Completed, Some(full), None);
            }
            Err(e) => {
                let full = full();
                let reason = format!("Unable to evaluate the loop condition: {e}");
                self.finish_system_task(dw.seq, TaskStatus::FailedWithTerminalError, Some(full), Some(reason));
            }
        }
    }

    /// Completes every open JOIN and EXCLUSIVE_JOIN whose tasks are done. Returns whether any did.
    pub(super) fn evaluate_joins(&mut self) -> bool {
        let mut changed = false;
        let open: Vec<u32> = self
            .state
            .tasks
            .iter()
            .filter(|t| {
                t.status == TaskStatus::InProgress && matches!(t.kind(), TaskKind::Join | TaskKind::ExclusiveJoin)
            })
            .map(|t| t.seq)
            .collect();
        for seq in open {
            let t = &self.state.tasks[seq as usize - 1];
            let strings = |key: &str| -> Vec<String> {
                t.input
                    .get(key)
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            };
            let join_on = strings("joinOn");
            let outcome = if t.kind() == TaskKind::Join {
                let permissive = self.state.workflow_task(t).is_some_and(|(wt, _)| wt.permissive);
                system::join_outcome(self.state, &join_on, permissive)
            } else {
                system::exclusive_join_outcome(self.state, &join_on, &strings("defaultExclusiveJoinTask"))
            };
            if let Some(outcome) = outcome {
                self.finish_system_task(seq, outcome.status, Some(outcome.output), outcome.reason);
                changed = true;
            }
        }
        changed
    }
}

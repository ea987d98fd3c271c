//! A workflow definition compiled for the decider: every task of the definition, at any depth,
//! indexed by reference name and placed in its list (top level, a SWITCH case, a fork branch or a
//! DO_WHILE body), so the decider can ask "what follows this task" and "what contains it".
//!
//! Compiling never fails: rules live in [`crate::validate`], which runs when a definition is
//! registered or submitted inline. A plan is also rebuilt from stored definitions, which must load
//! even if a later release adds a rule they break; the decider fails such a workflow with a reason
//! rather than refusing to load it.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use serde_json::value::RawValue;

use crate::dsl::{TaskDef, WorkflowDef, WorkflowTask};

/// What kind of work a task of the definition is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskKind {
    /// A worker polls it by name (`SIMPLE`).
    Simple,
    /// A worker polls it by its type; the type is not a system type, and its task definition must
    /// exist (Conductor's USER_DEFINED). The literal type `USER_DEFINED` is one of these, as in
    /// conductor-oss: its task definition is found by the task's `name`, and workers poll the
    /// type `USER_DEFINED`.
    UserDefined,
    /// A worker task whose name is read from the input (`dynamicTaskNameParam`).
    Dynamic,
    /// `SWITCH`.
    Switch,
    /// The legacy `DECISION`.
    Decision,
    /// `FORK_JOIN`: static branches.
    ForkJoin,
    /// `FORK_JOIN_DYNAMIC`: branches read from the input.
    ForkJoinDynamic,
    /// `JOIN`.
    Join,
    /// `EXCLUSIVE_JOIN`.
    ExclusiveJoin,
    /// `DO_WHILE`.
    DoWhile,
    /// `WAIT`.
    Wait,
    /// `HUMAN`.
    Human,
    /// `TERMINATE`.
    Terminate,
    /// `SET_VARIABLE`.
    SetVariable,
    /// `NOOP`.
    Noop,
    /// `INLINE`.
    Inline,
    /// The legacy `LAMBDA`.
    Lambda,
    /// `JSON_JQ_TRANSFORM`.
    JsonJqTransform,
    /// `SUB_WORKFLOW`: runs a child workflow (the leader's executor starts it).
    SubWorkflow,
    /// `START_WORKFLOW`: starts another workflow and does not wait for it.
    StartWorkflow,
    /// `HTTP`: the leader's executor makes the call.
    Http,
    /// `EVENT`: the leader's executor publishes the task's input as a message.
    Event,
    /// `KAFKA_PUBLISH`: the leader's executor appends a record to a Kafka topic.
    KafkaPublish,
    /// A system type Overture does not run yet; refused at registration, and the decider fails
    /// the workflow if a stored definition reaches one.
    Unsupported(String),
}

impl TaskKind {
    /// Classifies a `type` string.
    pub fn of(task_type: &str) -> TaskKind {
        match task_type {
            "SIMPLE" => TaskKind::Simple,
            "DYNAMIC" => TaskKind::Dynamic,
            "SWITCH" => TaskKind::Switch,
            "DECISION" => TaskKind::Decision,
            "FORK_JOIN" => TaskKind::ForkJoin,
            "FORK_JOIN_DYNAMIC" => TaskKind::ForkJoinDynamic,
            "JOIN" => TaskKind::Join,
            "EXCLUSIVE_JOIN" => TaskKind::ExclusiveJoin,
            "DO_WHILE" => TaskKind::DoWhile,
            "WAIT" => TaskKind::Wait,
            "HUMAN" => TaskKind::Human,
            "TERMINATE" => TaskKind::Terminate,
            "SET_VARIABLE" => TaskKind::SetVariable,
            "NOOP" => TaskKind::Noop,
            "INLINE" => TaskKind::Inline,
            "LAMBDA" => TaskKind::Lambda,
            "JSON_JQ_TRANSFORM" => TaskKind::JsonJqTransform,
            "SUB_WORKFLOW" => TaskKind::SubWorkflow,
            "START_WORKFLOW" => TaskKind::StartWorkflow,
            "HTTP" => TaskKind::Http,
            "EVENT" => TaskKind::Event,
            "KAFKA_PUBLISH" => TaskKind::KafkaPublish,
            // The AI tasks of Orkes and conductor-oss 3.2x, which this release does not run.
            other if other.starts_with("LLM_") || other.contains("MCP") => TaskKind::Unsupported(other.to_owned()),
            _ => TaskKind::UserDefined,
        }
    }

    /// The Conductor `type` of a system task kind; `None` for worker tasks (whose type is their
    /// own name) and for types this release does not run.
    pub fn system_type(&self) -> Option<&'static str> {
        Some(match self {
            TaskKind::Simple | TaskKind::UserDefined | TaskKind::Unsupported(_) => return None,
            TaskKind::Dynamic => "DYNAMIC",
            TaskKind::Switch => "SWITCH",
            TaskKind::Decision => "DECISION",
            TaskKind::ForkJoin => "FORK_JOIN",
            TaskKind::ForkJoinDynamic => "FORK_JOIN_DYNAMIC",
            TaskKind::Join => "JOIN",
            TaskKind::ExclusiveJoin => "EXCLUSIVE_JOIN",
            TaskKind::DoWhile => "DO_WHILE",
            TaskKind::Wait => "WAIT",
            TaskKind::Human => "HUMAN",
            TaskKind::Terminate => "TERMINATE",
            TaskKind::SetVariable => "SET_VARIABLE",
            TaskKind::Noop => "NOOP",
            TaskKind::Inline => "INLINE",
            TaskKind::Lambda => "LAMBDA",
            TaskKind::JsonJqTransform => "JSON_JQ_TRANSFORM",
            TaskKind::SubWorkflow => "SUB_WORKFLOW",
            TaskKind::StartWorkflow => "START_WORKFLOW",
            TaskKind::Http => "HTTP",
            TaskKind::Event => "EVENT",
            TaskKind::KafkaPublish => "KAFKA_PUBLISH",
        })
    }

    /// A task a worker executes (polled from a queue).
    pub fn is_worker_task(&self) -> bool {
        matches!(self, TaskKind::Simple | TaskKind::UserDefined | TaskKind::Dynamic)
    }

    /// A system task the leader's executor runs (it does I/O or starts workflows), handed to it
    /// through an internal queue like a worker task.
    pub fn is_executed_by_leader(&self) -> bool {
        matches!(
            self,
            TaskKind::SubWorkflow | TaskKind::StartWorkflow | TaskKind::Http | TaskKind::Event | TaskKind::KafkaPublish
        )
    }

    /// Conductor's built-in control tasks, which are never retried.
    pub fn is_built_in(&self) -> bool {
        matches!(
            self,
            TaskKind::Switch
                | TaskKind::Decision
                | TaskKind::ForkJoin
                | TaskKind::ForkJoinDynamic
                | TaskKind::Join
                | TaskKind::ExclusiveJoin
                | TaskKind::DoWhile
        )
    }
}

/// The list a task sits in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// The definition's own task list.
    Top,
    /// A case of a SWITCH or DECISION (`None`: the default case).
    Case(usize, Option<String>),
    /// Branch `i` of a FORK_JOIN.
    Branch(usize, usize),
    /// The body of a DO_WHILE.
    Loop(usize),
}

impl Slot {
    /// The task that owns the list, if the list is not the top level.
    pub fn owner(&self) -> Option<usize> {
        match self {
            Slot::Top => None,
            Slot::Case(i, _) | Slot::Branch(i, _) | Slot::Loop(i) => Some(*i),
        }
    }
}

/// One task of the definition, placed.
#[derive(Debug, Clone)]
pub struct PlanTask {
    /// The task as written in the definition (with `taskDefinition` filled in at start).
    pub task: WorkflowTask,
    /// What kind of task it is, from `task.task_type`.
    pub kind: TaskKind,
    /// Position in the plan.
    pub index: usize,
    /// The list it is in.
    pub slot: Slot,
    next: Option<usize>,
    /// First task of each case (an empty case maps to `None`).
    cases: BTreeMap<String, Option<usize>>,
    default_case: Option<usize>,
    branches: Vec<Option<usize>>,
    loop_first: Option<usize>,
    /// `task` and its `taskDefinition` as JSON, made on first use: every task an execution of
    /// this plan renders (each poll response) embeds both.
    json: OnceLock<(Box<RawValue>, Option<Box<RawValue>>)>,
}

impl PlanTask {
    /// The effective task definition: the embedded one, if any.
    pub fn task_def(&self) -> Option<&TaskDef> {
        self.task.task_definition.as_ref()
    }

    /// `task` as JSON, and its `taskDefinition` if it has one.
    pub fn json(&self) -> (&RawValue, Option<&RawValue>) {
        let (task, def) =
            self.json.get_or_init(|| (raw_json(&self.task), self.task.task_definition.as_ref().map(raw_json)));
        (task, def.as_deref())
    }
}

fn raw_json(value: &impl serde::Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).unwrap_or_else(|e| unreachable!("JSON encoding of a model cannot fail: {e}"))
}

/// Which list a SWITCH or DECISION continues into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseChoice {
    /// The case (or default) exists and starts with this task.
    Task(usize),
    /// The case exists but is empty, or there is nothing to run: continue after the switch.
    Nothing,
}

/// A compiled workflow definition.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The definition, as the execution's snapshot.
    pub def: WorkflowDef,
    /// `def` as JSON, made once: every execution of a definition shares its plan, and its JSON
    /// is what the log and the definition blob store.
    def_json: OnceLock<Vec<u8>>,
    /// The hash of `def_json` the store keys the definition by, made once.
    def_hash: OnceLock<[u8; 32]>,
    tasks: Vec<PlanTask>,
    by_ref: HashMap<String, usize>,
    first: Option<usize>,
    runs_scripts: bool,
}

/// Plans made by [`Plan::from_def_json`], by the JSON they were made from: a memo of a pure
/// function, bounded by [`DECODED_MAX_PLANS`] and [`DECODED_MAX_BYTES`] and emptied when full.
static DECODED: LazyLock<Mutex<Decoded>> = LazyLock::new(Mutex::default);
/// How many decoded definitions are kept.
const DECODED_MAX_PLANS: usize = 256;
/// How many bytes of definition JSON are kept; a definition over a sixteenth of it is not.
const DECODED_MAX_BYTES: usize = 16 << 20;

#[derive(Default)]
struct Decoded {
    plans: HashMap<Box<[u8]>, Arc<Plan>>,
    bytes: usize,
}

impl Decoded {
    fn keep(&mut self, plan: &Arc<Plan>) {
        let json = plan.def_json();
        if json.len() > DECODED_MAX_BYTES / 16 {
            return;
        }
        if self.bytes + json.len() > DECODED_MAX_BYTES || self.plans.len() >= DECODED_MAX_PLANS {
            self.plans.clear();
            self.bytes = 0;
        }
        self.bytes += json.len();
        self.plans.insert(json.into(), plan.clone());
    }
}

impl Plan {
    /// The definition as JSON (encoded on first use).
    pub fn def_json(&self) -> &[u8] {
        self.def_json.get_or_init(|| {
            serde_json::to_vec(&self.def).unwrap_or_else(|e| unreachable!("JSON encoding of a model cannot fail: {e}"))
        })
    }

    /// The hash of [`Plan::def_json`], computed by `hash` on first use. The core does not pick
    /// the hash function; its one caller, the store, always passes the same.
    pub fn def_hash(&self, hash: impl FnOnce(&[u8]) -> [u8; 32]) -> [u8; 32] {
        *self.def_hash.get_or_init(|| hash(self.def_json()))
    }

    /// The plan of a definition read back as JSON (an event from the log or from the leader),
    /// with `json` as its [`Plan::def_json`]. Every event of one definition carries the same
    /// bytes, so a plan made from them is kept and shared ([`DECODED`]): a follower applying
    /// starts, or a node replaying its log, parses and compiles each definition once, not once
    /// per workflow.
    pub fn from_def_json(json: Vec<u8>) -> Result<Arc<Plan>, serde_json::Error> {
        let decoded = || DECODED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(plan) = decoded().plans.get(json.as_slice()) {
            return Ok(plan.clone());
        }
        let plan = Arc::new(Plan::new(crate::payload::from_slice(&json)?));
        let _ = plan.def_json.set(json);
        decoded().keep(&plan);
        Ok(plan)
    }

    /// Compiles a definition. Duplicate reference names keep their first occurrence (validation
    /// rejects them before a definition is accepted).
    pub fn new(mut def: WorkflowDef) -> Plan {
        let list = std::mem::take(&mut def.tasks);
        let mut plan = Plan {
            def,
            def_json: OnceLock::new(),
            def_hash: OnceLock::new(),
            tasks: Vec::new(),
            by_ref: HashMap::new(),
            first: None,
            runs_scripts: false,
        };
        plan.first = plan.add_list(&list, &Slot::Top);
        plan.def.tasks = list;
        plan.runs_scripts = plan.tasks.iter().any(|t| match t.kind {
            TaskKind::Inline
            | TaskKind::Lambda
            | TaskKind::JsonJqTransform
            | TaskKind::DoWhile
            | TaskKind::Decision
            | TaskKind::ForkJoinDynamic => true,
            TaskKind::Switch => t.task.evaluator_type.as_deref().is_some_and(|e| e != "value-param"),
            _ => false,
        });
        plan
    }

    /// Adds a list of tasks; returns the index of its first task.
    fn add_list(&mut self, list: &[WorkflowTask], slot: &Slot) -> Option<usize> {
        let mut previous: Option<usize> = None;
        let mut first = None;
        for task in list {
            let index = self.tasks.len();
            self.by_ref.entry(task.task_reference_name.clone()).or_insert(index);
            let mut planned = task.clone();
            planned.name_embedded_definition();
            self.tasks.push(PlanTask {
                task: planned,
                kind: TaskKind::of(&task.task_type),
                index,
                slot: slot.clone(),
                next: None,
                cases: BTreeMap::new(),
                default_case: None,
                branches: Vec::new(),
                loop_first: None,
                json: OnceLock::new(),
            });
            let mut cases = BTreeMap::new();
            for (name, case) in &task.decision_cases {
                cases.insert(name.clone(), self.add_list(case, &Slot::Case(index, Some(name.clone()))));
            }
            let default_case = self.add_list(&task.default_case, &Slot::Case(index, None));
            let branches: Vec<Option<usize>> = task
                .fork_tasks
                .iter()
                .enumerate()
                .map(|(b, branch)| self.add_list(branch, &Slot::Branch(index, b)))
                .collect();
            let loop_first = self.add_list(&task.loop_over, &Slot::Loop(index));
            let node = &mut self.tasks[index];
            node.cases = cases;
            node.default_case = default_case;
            node.branches = branches;
            node.loop_first = loop_first;
            if let Some(p) = previous {
                self.tasks[p].next = Some(index);
            }
            previous = Some(index);
            first.get_or_insert(index);
        }
        first
    }

    /// The first task to schedule, if the definition has any.
    pub fn first(&self) -> Option<&PlanTask> {
        self.first.map(|i| &self.tasks[i])
    }

    /// The task with this reference name (without any `__N` loop suffix).
    pub fn task(&self, reference_name: &str) -> Option<&PlanTask> {
        self.by_ref.get(reference_name).map(|&i| &self.tasks[i])
    }

    /// The task at this plan position.
    pub fn at(&self, index: usize) -> &PlanTask {
        &self.tasks[index]
    }

    /// The task after this one in the same list.
    pub fn next_in_list(&self, index: usize) -> Option<&PlanTask> {
        self.tasks[index].next.map(|n| &self.tasks[n])
    }

    /// Where a SWITCH or DECISION goes for `case`. SWITCH takes the default case only when the
    /// case is absent; DECISION also when it is empty.
    pub fn case(&self, index: usize, case: &str) -> CaseChoice {
        let node = &self.tasks[index];
        let chosen = match node.cases.get(case) {
            Some(Some(first)) => Some(*first),
            Some(None) if node.kind == TaskKind::Switch => None,
            _ => node.default_case,
        };
        chosen.map_or(CaseChoice::Nothing, CaseChoice::Task)
    }

    /// The first task of each non-empty branch of a FORK_JOIN.
    pub fn branch_heads(&self, index: usize) -> Vec<&PlanTask> {
        self.tasks[index].branches.iter().flatten().map(|&i| &self.tasks[i]).collect()
    }

    /// The last task of each branch of a FORK_JOIN (what a JOIN waits on by default).
    pub fn branch_tails(&self, index: usize) -> Vec<&PlanTask> {
        let mut out = Vec::new();
        for head in self.tasks[index].branches.iter().flatten() {
            let mut i = *head;
            while let Some(n) = self.tasks[i].next {
                i = n;
            }
            out.push(&self.tasks[i]);
        }
        out
    }

    /// The first task of a DO_WHILE's body.
    pub fn loop_head(&self, index: usize) -> Option<&PlanTask> {
        self.tasks[index].loop_first.map(|i| &self.tasks[i])
    }

    /// Whether `index` sits, at any depth, inside the task at `ancestor`.
    pub fn is_inside(&self, mut index: usize, ancestor: usize) -> bool {
        while let Some(owner) = self.tasks[index].slot.owner() {
            if owner == ancestor {
                return true;
            }
            index = owner;
        }
        false
    }

    /// The innermost DO_WHILE containing the task, if any.
    pub fn enclosing_loop(&self, mut index: usize) -> Option<&PlanTask> {
        while let Some(owner) = self.tasks[index].slot.owner() {
            if self.tasks[owner].kind == TaskKind::DoWhile {
                return Some(&self.tasks[owner]);
            }
            index = owner;
        }
        None
    }

    /// Whether deciding this workflow may run a script (JavaScript or jq), which can take up to
    /// the script time limit: INLINE, LAMBDA, JSON_JQ_TRANSFORM, a JavaScript SWITCH, DECISION
    /// or loop condition, or a dynamic fork (whose tasks could be any of those).
    pub fn runs_scripts(&self) -> bool {
        self.runs_scripts
    }

    /// Every task, at any depth, in definition order (a task before the tasks it contains).
    pub fn tasks(&self) -> impl Iterator<Item = &PlanTask> {
        self.tasks.iter()
    }
}

/// `ref` without its DO_WHILE iteration suffix: `task__3` → `task`.
pub fn base_reference(reference: &str, iteration: i32) -> &str {
    if iteration > 0
        && let Some((base, n)) = reference.rsplit_once("__")
        && n == iteration.to_string()
    {
        return base;
    }
    reference
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{DECODED_MAX_BYTES, DECODED_MAX_PLANS, Decoded, Plan, TaskKind};

    fn def_json(name: &str) -> Vec<u8> {
        let def = serde_json::json!({
            "name": name, "version": 1, "schemaVersion": 2,
            "tasks": [{"name": "审核订单", "taskReferenceName": "审核", "type": "SIMPLE"}]
        });
        serde_json::to_vec(&def).expect("a definition encodes")
    }

    /// Events of one definition share one plan, keyed by the bytes they carried, and the plan
    /// answers those very bytes as its JSON (the store hashes what the leader wrote).
    #[test]
    fn one_definitions_json_decodes_to_one_shared_plan() {
        let json = def_json("订单审批-shared");
        let first = Plan::from_def_json(json.clone()).expect("decodes");
        let second = Plan::from_def_json(json.clone()).expect("decodes");
        assert!(Arc::ptr_eq(&first, &second), "the second decode reuses the first plan");
        assert_eq!(first.def_json(), json.as_slice());
        assert_eq!(first.def.name, "订单审批-shared");
        assert!(first.task("审核").is_some());
        let other = Plan::from_def_json(def_json("订单审批-other")).expect("decodes");
        assert!(!Arc::ptr_eq(&first, &other));
        assert!(Plan::from_def_json(b"{\"name\": ".to_vec()).is_err(), "broken JSON is an error, not a plan");
    }

    /// The memo stays bounded however many definitions, or how large, pass through it.
    #[test]
    fn the_decoded_plans_stay_bounded() {
        let mut decoded = Decoded::default();
        for i in 0..DECODED_MAX_PLANS + 50 {
            decoded.keep(&Plan::from_def_json(def_json(&format!("bounded-{i}"))).expect("decodes"));
            assert!(decoded.plans.len() <= DECODED_MAX_PLANS);
        }
        let big = format!(
            "{{\"name\": \"big\", \"description\": \"{}\", \"tasks\": []}}",
            "长".repeat(DECODED_MAX_BYTES / 40)
        );
        decoded.keep(&Plan::from_def_json(big.into_bytes()).expect("decodes"));
        assert!(decoded.bytes <= DECODED_MAX_BYTES && decoded.plans.keys().all(|k| k.len() <= DECODED_MAX_BYTES / 16));
    }

    /// A system kind's type name reads back as that kind: the two directions cannot drift apart.
    #[test]
    fn a_system_type_names_its_kind() {
        let kinds = [
            TaskKind::Dynamic,
            TaskKind::Switch,
            TaskKind::Decision,
            TaskKind::ForkJoin,
            TaskKind::ForkJoinDynamic,
            TaskKind::Join,
            TaskKind::ExclusiveJoin,
            TaskKind::DoWhile,
            TaskKind::Wait,
            TaskKind::Human,
            TaskKind::Terminate,
            TaskKind::SetVariable,
            TaskKind::Noop,
            TaskKind::Inline,
            TaskKind::Lambda,
            TaskKind::JsonJqTransform,
            TaskKind::SubWorkflow,
            TaskKind::StartWorkflow,
            TaskKind::Http,
            TaskKind::Event,
            TaskKind::KafkaPublish,
        ];
        for kind in kinds {
            let name = kind.system_type().expect("a system kind has a type name");
            assert_eq!(TaskKind::of(name), kind, "{name}");
        }
        assert_eq!(TaskKind::of("SIMPLE").system_type(), None);
        assert_eq!(TaskKind::of("my_worker_task").system_type(), None);
    }
}

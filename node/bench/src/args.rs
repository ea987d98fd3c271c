//! The benchmark's settings (its command-line flags), the workflow shapes it runs, and the names
//! of the workflows and task types it registers.

use anyhow::bail;

/// Benchmark settings.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Base URL of the node, or of every node of a cluster separated by commas: starters and
    /// workers spread over them, and a request that cannot reach one node moves to the next.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub(crate) url: String,
    /// Workflows to run.
    #[arg(long, default_value_t = 2000)]
    pub(crate) workflows: usize,
    /// SIMPLE tasks per workflow.
    #[arg(long, default_value_t = 5)]
    pub(crate) tasks: usize,
    /// Workflows in flight at once.
    #[arg(long, default_value_t = 50)]
    pub(crate) concurrency: usize,
    /// Workers per task type [default: enough slots for every workflow in flight, that is
    /// `concurrency` ÷ `batch` rounded up, and at least 4]. With fewer slots than workflows in
    /// flight, ready tasks wait for a free worker, and the figures measure the workers.
    #[arg(long)]
    pub(crate) workers: Option<usize>,
    /// Slots per worker: tasks asked for per poll and run side by side.
    #[arg(long, default_value_t = 8)]
    pub(crate) batch: usize,
    /// Each task's `responseTimeoutSeconds`: a task handed out whose worker never reports (a
    /// reply lost in a failover) is retried after this long.
    #[arg(long, default_value_t = 10)]
    pub(crate) response_timeout: u64,
    /// Workflow shape: `linear` runs `--tasks` SIMPLE tasks in a row; `fork` forks `--width`
    /// tasks at once (FORK_JOIN_DYNAMIC + JOIN); `loop` runs one task `--width` times (DO_WHILE);
    /// `mix` switches between a sub-workflow and an inline task.
    #[arg(long, value_enum, default_value_t = Shape::Linear)]
    pub(crate) shape: Shape,
    /// Branches of a `fork`, iterations of a `loop`.
    #[arg(long, default_value_t = 1000)]
    pub(crate) width: usize,
    /// Open loop: start this many workflows per second, whatever is in flight (instead of
    /// keeping `--concurrency` in flight), to see latency under a given load.
    #[arg(long)]
    pub(crate) rate: Option<f64>,
    /// Write a chart of throughput and p99 workflow latency over time (SVG) to this file.
    #[arg(long)]
    pub(crate) chart: Option<std::path::PathBuf>,
    /// Measure the machine's ceilings first: synced writes per second in this directory (put
    /// it on the nodes' data disk) and loopback HTTP requests per second to the first node.
    #[arg(long)]
    pub(crate) ceilings: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    /// Run no workers: someone else's poll the tasks (`deploy/bench-python-sdk.sh` runs the
    /// official Python SDK's). Each workflow starts with the synchronous execute call, which
    /// answers once the workflow completes; dispatch latencies are the workers' to see. Linear
    /// shape only.
    #[arg(long)]
    pub(crate) external_workers: bool,
}

/// What each benchmark workflow looks like.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// SIMPLE tasks one after another.
    Linear,
    /// A dynamic fork of `--width` SIMPLE tasks and their JOIN.
    Fork,
    /// A DO_WHILE of `--width` iterations of one SIMPLE task.
    Loop,
    /// Start rate: each workflow is one NOOP task, so a start is the whole workflow (one
    /// decision, one commit) and no worker runs.
    StartOnly,
    /// Workflows left waiting: each has one SIMPLE task that no worker polls, so they stay
    /// RUNNING (for the memory of many waiting workflows).
    Waiting,
    /// A task, then a SWITCH: every other workflow runs a SUB_WORKFLOW of two tasks, the others
    /// one inline task; then a last task (3 or 4 worker tasks, 2 system tasks, and a child
    /// workflow for half of them).
    Mix,
}

/// Worker task types of the mix: first, inline, the child's second, last.
pub(crate) const MIX_TASK_TYPES: usize = 4;

impl BenchArgs {
    /// Refuses settings the benchmark cannot run with.
    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.tasks == 0
            || self.workflows == 0
            || self.concurrency == 0
            || self.workers() == 0
            || self.width == 0
            || self.batch == 0
        {
            bail!("--workflows, --tasks, --width, --concurrency, --workers and --batch must be at least 1");
        }
        if self.external_workers && (self.shape != Shape::Linear || self.rate.is_some()) {
            bail!("--external-workers runs the linear shape in a closed loop only");
        }
        if self.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
            bail!("--rate must be a positive number of workflows per second");
        }
        if self.urls().is_empty() {
            bail!("--url names no node");
        }
        Ok(())
    }
    /// Worker tasks each workflow runs.
    pub(crate) fn tasks_per_workflow(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => self.width,
            Shape::Mix => MIX_TASK_TYPES,
            Shape::StartOnly | Shape::Waiting => 0,
        }
    }
    /// Workers per task type.
    pub(crate) fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| self.concurrency.div_ceil(self.batch.max(1)).max(4))
    }
    /// Task types (one per linear step; one for the other shapes).
    pub(crate) fn task_types(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => 1,
            Shape::Mix => MIX_TASK_TYPES,
            Shape::StartOnly | Shape::Waiting => 0,
        }
    }
    /// The name the benchmark's workflow definition is registered under.
    pub(crate) fn workflow_name(&self) -> String {
        match self.shape {
            Shape::Linear => format!("bench_linear_{}", self.tasks),
            Shape::Fork => format!("bench_fork_{}", self.width),
            Shape::Loop => format!("bench_loop_{}", self.width),
            Shape::StartOnly => "bench_start_only".to_owned(),
            Shape::Waiting => "bench_waiting".to_owned(),
            Shape::Mix => "bench_mix".to_owned(),
        }
    }
    /// The nodes' base URLs from `--url`, without trailing slashes.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.url.split(',').map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()).collect()
    }
}

/// The task type of step (or worker task type) `i`.
pub(crate) fn task_name(i: usize) -> String {
    format!("bench_task_{i}")
}

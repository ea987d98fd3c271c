//! `overture bench`: drives a running node the way production workers do and reports what it saw.
//!
//! Workflows of K SIMPLE tasks (one task type per step), or of one task type forked `width` ways
//! or looped `width` times, are started with at most `concurrency` in flight. For each task type, `workers` workers batch-poll with a long-poll timeout and report
//! each result with `update-v2`, which hands back the next task of their type when there is one.
//!
//! Each worker has `batch` slots, like an SDK worker with that many threads: it polls for as
//! many tasks as it has slots and runs them side by side, each slot following the tasks
//! `update-v2` hands back.
//!
//! Reported: workflows/s and tasks/s over the whole run; task dispatch latency (from the server's
//! `scheduledTime` of a task to a worker receiving it, so it includes any wait for a free worker;
//! and of the tasks scheduled while the poll that received them was waiting: dispatch to a
//! waiting long-poller);
//! workflow latency (from sending the start request to the acknowledgement of its last task's
//! update, which commits the workflow's completion).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Benchmark settings.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Base URL of the node, or of every node of a cluster separated by commas: starters and
    /// workers spread over them, and a request that cannot reach one node moves to the next.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Workflows to run.
    #[arg(long, default_value_t = 2000)]
    workflows: usize,
    /// SIMPLE tasks per workflow.
    #[arg(long, default_value_t = 5)]
    tasks: usize,
    /// Workflows in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Workers per task type [default: enough slots for every workflow in flight, that is
    /// `concurrency` ÷ `batch` rounded up, and at least 4]. With fewer slots than workflows in
    /// flight, ready tasks wait for a free worker, and the figures measure the workers.
    #[arg(long)]
    workers: Option<usize>,
    /// Slots per worker: tasks asked for per poll and run side by side.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Each task's `responseTimeoutSeconds`: a task handed out whose worker never reports (a
    /// reply lost in a failover) is retried after this long.
    #[arg(long, default_value_t = 10)]
    response_timeout: u64,
    /// Workflow shape: `linear` runs `--tasks` SIMPLE tasks in a row; `fork` forks `--width`
    /// tasks at once (FORK_JOIN_DYNAMIC + JOIN); `loop` runs one task `--width` times (DO_WHILE);
    /// `mix` switches between a sub-workflow and an inline task.
    #[arg(long, value_enum, default_value_t = Shape::Linear)]
    shape: Shape,
    /// Branches of a `fork`, iterations of a `loop`.
    #[arg(long, default_value_t = 1000)]
    width: usize,
    /// Open loop: start this many workflows per second, whatever is in flight (instead of
    /// keeping `--concurrency` in flight), to see latency under a given load.
    #[arg(long)]
    rate: Option<f64>,
    /// Write a chart of throughput and p99 workflow latency over time (SVG) to this file.
    #[arg(long)]
    chart: Option<std::path::PathBuf>,
    /// Measure the machine's ceilings first: synced writes per second in this directory (put
    /// it on the nodes' data disk) and loopback HTTP requests per second to the first node.
    #[arg(long)]
    ceilings: Option<std::path::PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Run no workers: someone else's poll the tasks (`deploy/bench-python-sdk.sh` runs the
    /// official Python SDK's). Each workflow starts with the synchronous execute call, which
    /// answers once the workflow completes; dispatch latencies are the workers' to see. Linear
    /// shape only.
    #[arg(long)]
    external_workers: bool,
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
const MIX_TASK_TYPES: usize = 4;

impl BenchArgs {
    /// Worker tasks each workflow runs.
    fn tasks_per_workflow(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => self.width,
            Shape::Mix => MIX_TASK_TYPES,
            Shape::StartOnly | Shape::Waiting => 0,
        }
    }
    /// Workers per task type.
    fn workers(&self) -> usize {
        self.workers.unwrap_or_else(|| self.concurrency.div_ceil(self.batch.max(1)).max(4))
    }
    /// Task types (one per linear step; one for the other shapes).
    fn task_types(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => 1,
            Shape::Mix => MIX_TASK_TYPES,
            Shape::StartOnly | Shape::Waiting => 0,
        }
    }
    fn workflow_name(&self) -> String {
        match self.shape {
            Shape::Linear => format!("bench_linear_{}", self.tasks),
            Shape::Fork => format!("bench_fork_{}", self.width),
            Shape::Loop => format!("bench_loop_{}", self.width),
            Shape::StartOnly => "bench_start_only".to_owned(),
            Shape::Waiting => "bench_waiting".to_owned(),
            Shape::Mix => "bench_mix".to_owned(),
        }
    }
    fn urls(&self) -> Vec<String> {
        self.url.split(',').map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty()).collect()
    }
}

struct Shared {
    client: reqwest::Client,
    /// `{url}/api` of each node.
    bases: Vec<String>,
    /// When a request to each node last failed to connect (wall ms).
    unreachable: Vec<AtomicI64>,
    args: BenchArgs,
    began: Instant,
    starts: Vec<Mutex<Option<Instant>>>,
    /// Worker tasks finished, per workflow.
    finished: Vec<AtomicUsize>,
    /// When the last update of each workflow was sent (wall clock, ms), for update → pollable.
    last_update: Vec<AtomicI64>,
    ids: Mutex<Vec<String>>,
    dispatch_ms: Mutex<Vec<f64>>,
    /// Dispatch of the tasks scheduled after the poll that received them was sent: seconds
    /// since the run began when each was received, and its latency.
    waiting_dispatch_ms: Mutex<Vec<(f64, f64)>>,
    pollable_ms: Mutex<Vec<f64>>,
    start_ms: Mutex<Vec<f64>>,
    /// Seconds since the run began when each workflow completed, and its latency.
    workflow_ms: Mutex<Vec<(f64, f64)>>,
    in_flight: Semaphore,
    completed: AtomicUsize,
    tasks_done: AtomicUsize,
    errors: AtomicUsize,
    done: AtomicBool,
}

impl Shared {
    /// The node a request goes to: spread by `n`, moved on by `attempt` after a failure, and
    /// past nodes that could not be reached in the last second.
    fn base(&self, n: usize, attempt: usize) -> &str {
        let len = self.bases.len();
        let now = wall_ms();
        let up = |i: usize| now - self.unreachable[i].load(Ordering::Relaxed) > 1000;
        let first = (n + attempt) % len;
        let pick = (0..len).map(|k| (first + k) % len).find(|&i| up(i)).unwrap_or(first);
        &self.bases[pick]
    }

    /// A request to `base` could not be sent: avoid that node for a second.
    fn unreachable(&self, base: &str) {
        if let Some(i) = self.bases.iter().position(|b| b == base) {
            self.unreachable[i].store(wall_ms(), Ordering::Relaxed);
        }
    }
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn task_name(i: usize) -> String {
    format!("bench_task_{i}")
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.tasks == 0
        || args.workflows == 0
        || args.concurrency == 0
        || args.workers() == 0
        || args.width == 0
        || args.batch == 0
    {
        bail!("--workflows, --tasks, --width, --concurrency, --workers and --batch must be at least 1");
    }
    if args.external_workers && (args.shape != Shape::Linear || args.rate.is_some()) {
        bail!("--external-workers runs the linear shape in a closed loop only");
    }
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        bail!("--rate must be a positive number of workflows per second");
    }
    let urls = args.urls();
    if urls.is_empty() {
        bail!("--url names no node");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        // Conductor's API never redirects: a redirect is an answer to report, not to follow.
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()?;
    let ceilings = match &args.ceilings {
        Some(dir) => Some(measure_ceilings(&client, &urls[0], dir).await?),
        None => None,
    };
    let bases: Vec<String> = urls.iter().map(|u| format!("{u}/api")).collect();
    setup(&client, &bases[0], &args).await?;
    let nodes_before = node_stats(&client, &urls).await;

    let shared = Arc::new(Shared {
        client,
        unreachable: bases.iter().map(|_| AtomicI64::new(0)).collect(),
        bases,
        began: Instant::now(),
        starts: (0..args.workflows).map(|_| Mutex::new(None)).collect(),
        finished: (0..args.workflows).map(|_| AtomicUsize::new(0)).collect(),
        last_update: (0..args.workflows).map(|_| AtomicI64::new(0)).collect(),
        ids: Mutex::new(Vec::with_capacity(args.workflows)),
        dispatch_ms: Mutex::new(Vec::with_capacity(args.workflows * args.tasks_per_workflow())),
        waiting_dispatch_ms: Mutex::new(Vec::new()),
        pollable_ms: Mutex::new(Vec::with_capacity(args.workflows * args.tasks_per_workflow())),
        start_ms: Mutex::new(Vec::with_capacity(args.workflows)),
        workflow_ms: Mutex::new(Vec::with_capacity(args.workflows)),
        in_flight: Semaphore::new(args.concurrency),
        completed: AtomicUsize::new(0),
        tasks_done: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        args: args.clone(),
    });

    let mut handles = Vec::new();
    let own_workers = if args.external_workers { 0 } else { args.task_types() };
    for step in 0..own_workers {
        for w in 0..args.workers() {
            handles.push(tokio::spawn(worker(shared.clone(), step, w, format!("bench-{step}-{w}"))));
        }
    }
    let sampler = tokio::spawn(sample(shared.clone()));
    let next = Arc::new(AtomicUsize::new(0));
    match args.rate {
        Some(rate) => open_loop(shared.clone(), rate).await?,
        None => {
            let starters: Vec<_> =
                (0..args.concurrency.min(16)).map(|i| tokio::spawn(starter(shared.clone(), next.clone(), i))).collect();
            for s in starters {
                s.await??;
            }
        }
    }
    while shared.completed.load(Ordering::Acquire) < args.workflows {
        if shared.began.elapsed() > Duration::from_secs(600) {
            bail!(
                "gave up after 600 s: {} of {} workflows completed",
                shared.completed.load(Ordering::Acquire),
                args.workflows
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = shared.began.elapsed();
    shared.done.store(true, Ordering::Release);
    for h in handles {
        h.await??;
    }
    let timeline = sampler.await?;
    let nodes_after = node_stats(&shared.client, &urls).await;
    let verified = verify(&shared).await?;
    let nodes = node_report(&urls, &nodes_before, &nodes_after, args.workflows);
    let report = report(&shared, elapsed, verified, timeline, nodes, ceilings);
    if let Some(path) = &args.chart {
        std::fs::write(path, chart(&report)).with_context(|| format!("writing {}", path.display()))?;
    }
    print_report(&args, &report);
    Ok(())
}

/// Starts `rate` workflows per second, each in its own task, whatever is in flight.
async fn open_loop(s: Arc<Shared>, rate: f64) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut starts = Vec::with_capacity(s.args.workflows);
    for n in 0..s.args.workflows {
        tick.tick().await;
        starts.push(tokio::spawn(start_one(s.clone(), n)));
    }
    for h in starts {
        h.await??;
    }
    Ok(())
}

/// One sample of the run's progress, taken once a second.
struct Sample {
    /// Seconds since the run began.
    at: f64,
    tasks: usize,
    workflows: usize,
    /// The whole machine's CPU time so far (where the system reports it).
    cpu: Option<MachineCpu>,
    /// Each node's figures so far (none for a node that did not answer).
    nodes: Vec<Option<NodeStats>>,
}

/// The machine's CPU time since boot, in clock ticks, from `/proc/stat` (Linux): all of it, the
/// part spent idle (or waiting for I/O), and the part the hypervisor gave to other guests while
/// this one had work ("steal"). On a shared virtual machine stolen time is the noise a run
/// cannot see from inside its own processes.
#[derive(Clone, Copy, Debug, PartialEq)]
struct MachineCpu {
    total: u64,
    idle: u64,
    stolen: u64,
}

impl MachineCpu {
    fn read() -> Option<MachineCpu> {
        MachineCpu::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The first line of `/proc/stat`: `cpu user nice system idle iowait irq softirq steal ...`.
    fn parse(stat: &str) -> Option<MachineCpu> {
        let mut fields = stat.lines().next()?.split_whitespace();
        if fields.next()? != "cpu" {
            return None;
        }
        let ticks: Vec<u64> = fields.map(str::parse).collect::<Result<_, _>>().ok()?;
        // guest and guest_nice (fields 9 and 10) are already counted in user and nice.
        let counted = &ticks[..ticks.len().min(8)];
        Some(MachineCpu {
            total: counted.iter().sum(),
            idle: counted.get(3)? + counted.get(4).copied().unwrap_or(0),
            stolen: counted.get(7).copied().unwrap_or(0),
        })
    }

    /// Shares of the CPU time between two readings that was busy and that was stolen.
    fn shares(before: MachineCpu, after: MachineCpu) -> Option<(f64, f64)> {
        let total = after.total.checked_sub(before.total).filter(|&t| t > 0)? as f64;
        let idle = after.idle.saturating_sub(before.idle) as f64;
        let stolen = after.stolen.saturating_sub(before.stolen) as f64;
        Some((1.0 - idle / total, stolen / total))
    }
}

/// Once a second until the run ends: tasks finished so far, workflows completed so far, the
/// machine's CPU time and each node's figures (one `/metrics` request a node a second).
async fn sample(s: Arc<Shared>) -> Vec<Sample> {
    let urls = s.args.urls();
    let take = async |s: &Shared| Sample {
        at: s.began.elapsed().as_secs_f64(),
        tasks: s.tasks_done.load(Ordering::Relaxed),
        workflows: s.completed.load(Ordering::Relaxed),
        cpu: MachineCpu::read(),
        nodes: node_stats(&s.client, &urls).await,
    };
    let mut out = vec![Sample { at: 0.0, ..take(&s).await }];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while !s.done.load(Ordering::Acquire) {
        tick.tick().await;
        out.push(take(&s).await);
    }
    out
}

async fn setup(client: &reqwest::Client, base: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let defs: Vec<Value> = (0..args.task_types().max(1))
        .map(|i| {
            json!({"name": task_name(i), "retryCount": 3, "retryDelaySeconds": 0,
                   "responseTimeoutSeconds": args.response_timeout, "ownerEmail": "bench@overture"})
        })
        .collect();
    let r =
        client.post(format!("{base}/metadata/taskdefs")).json(&defs).send().await.context("is the node running?")?;
    if !r.status().is_success() {
        bail!("registering task definitions: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let tasks = args.tasks;
    let (steps, output) = match args.shape {
        Shape::Linear => {
            let steps: Vec<Value> = (0..tasks)
                .map(|i| {
                    let input = if i == 0 { json!({"n": "${workflow.input.n}"}) } else { json!({"prev": format!("${{t{}.output.step}}", i - 1)}) };
                    json!({"name": task_name(i), "taskReferenceName": format!("t{i}"), "type": "SIMPLE", "inputParameters": input})
                })
                .collect();
            (json!(steps), json!({"last": format!("${{t{}.output.step}}", tasks - 1)}))
        }
        Shape::Fork => (
            json!([
                {"name": "fan_out", "taskReferenceName": "fan_out", "type": "FORK_JOIN_DYNAMIC",
                 "inputParameters": {"forkTaskName": task_name(0), "forkTaskInputs": "${workflow.input.items}"}},
                {"name": "fan_in", "taskReferenceName": "fan_in", "type": "JOIN"}
            ]),
            json!({}),
        ),
        Shape::StartOnly => (json!([{"name": "noop", "taskReferenceName": "noop", "type": "NOOP"}]), json!({})),
        Shape::Waiting => (json!([{"name": task_name(0), "taskReferenceName": "t0", "type": "SIMPLE"}]), json!({})),
        Shape::Mix => {
            let child = json!([{"name": "bench_mix_child", "version": 1, "schemaVersion": 2,
                "tasks": [
                    {"name": task_name(1), "taskReferenceName": "c1", "type": "SIMPLE", "inputParameters": {"n": "${workflow.input.n}"}},
                    {"name": task_name(2), "taskReferenceName": "c2", "type": "SIMPLE", "inputParameters": {"prev": "${c1.output.step}"}}
                ],
                "outputParameters": {"step": "${c2.output.step}"}}]);
            let r = client.put(format!("{base}/metadata/workflow")).json(&child).send().await?;
            if !r.status().is_success() {
                bail!(
                    "registering the child workflow definition: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            (
                json!([
                    {"name": task_name(0), "taskReferenceName": "first", "type": "SIMPLE", "inputParameters": {"n": "${workflow.input.n}"}},
                    {"name": "route", "taskReferenceName": "route", "type": "SWITCH", "evaluatorType": "value-param",
                     "expression": "route", "inputParameters": {"route": "${workflow.input.route}"},
                     "decisionCases": {"child": [
                         {"name": "bench_mix_child", "taskReferenceName": "child", "type": "SUB_WORKFLOW",
                          "subWorkflowParam": {"name": "bench_mix_child", "version": 1},
                          "inputParameters": {"n": "${workflow.input.n}"}}
                     ]},
                     "defaultCase": [
                         {"name": task_name(1), "taskReferenceName": "inline", "type": "SIMPLE", "inputParameters": {"prev": "${first.output.step}"}}
                     ]},
                    {"name": task_name(3), "taskReferenceName": "last", "type": "SIMPLE", "inputParameters": {"route": "${workflow.input.route}"}}
                ]),
                json!({"last": "${last.output.step}"}),
            )
        }
        Shape::Loop => (
            json!([
                {"name": "repeat", "taskReferenceName": "repeat", "type": "DO_WHILE",
                 "loopCondition": format!("$.repeat['iteration'] < {}", args.width),
                 "loopOver": [{"name": task_name(0), "taskReferenceName": "t0", "type": "SIMPLE",
                               "inputParameters": {"i": "${repeat.output.iteration}"}}]}
            ]),
            json!({"iterations": "${repeat.output.iteration}"}),
        ),
    };
    let def = json!([{"name": args.workflow_name(), "version": 1, "tasks": steps, "schemaVersion": 2,
                      "outputParameters": output}]);
    let r = client.put(format!("{base}/metadata/workflow")).json(&def).send().await?;
    if !r.status().is_success() {
        bail!("registering the workflow definition: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

async fn starter(s: Arc<Shared>, next: Arc<AtomicUsize>, _lane: usize) -> anyhow::Result<()> {
    loop {
        let n = next.fetch_add(1, Ordering::AcqRel);
        if n >= s.args.workflows {
            return Ok(());
        }
        s.in_flight.acquire().await?.forget();
        start_one(s.clone(), n).await?;
    }
}

/// Starts workflow `n` (retrying through elections and lost nodes) and records how long the
/// start took; a start-only workflow is complete once started.
async fn start_one(s: Arc<Shared>, n: usize) -> anyhow::Result<()> {
    let began = Instant::now();
    *s.starts[n].lock() = Some(began);
    let mut input = json!({"n": n});
    if s.args.shape == Shape::Fork {
        input["items"] = (0..s.args.width).map(|i| json!({"i": i})).collect();
    }
    if s.args.shape == Shape::Mix {
        input["route"] = json!(if n.is_multiple_of(2) { "child" } else { "inline" });
    }
    let body =
        json!({"name": s.args.workflow_name(), "version": 1, "correlationId": format!("bench-{n}"), "input": input});
    if s.args.external_workers {
        return execute_one(&s, n, &body, began).await;
    }
    let mut retry = Retry::new();
    let mut attempt = 0;
    loop {
        let base = s.base(n, attempt).to_owned();
        let r = s.client.post(format!("{base}/workflow")).json(&body).send().await;
        match r {
            Ok(r) if r.status().is_success() => {
                let id = r.text().await?;
                s.ids.lock().push(id);
                break;
            }
            // Retryable: an election (503), an overloaded node (429) or a node that went away.
            Ok(r) if matches!(r.status().as_u16(), 503 | 429) => {}
            Ok(r) => bail!("starting a workflow: {} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => {
                tracing::debug!(error = %e, "start failed; retrying");
                s.unreachable(&base);
                attempt += 1;
            }
        }
        s.errors.fetch_add(1, Ordering::Relaxed);
        retry.wait("starting a workflow").await?;
    }
    s.start_ms.lock().push(began.elapsed().as_secs_f64() * 1000.0);
    if matches!(s.args.shape, Shape::StartOnly | Shape::Waiting) {
        complete(&s, n);
    }
    Ok(())
}

/// Runs workflow `n` with the synchronous execute call (external workers run its tasks).
async fn execute_one(s: &Shared, n: usize, body: &Value, began: Instant) -> anyhow::Result<()> {
    let base = s.base(n, 0);
    let url = format!("{base}/workflow/execute/{}/1?waitForSeconds=300", s.args.workflow_name());
    let r = s.client.post(url).json(body).send().await.context("executing a workflow")?;
    if !r.status().is_success() {
        bail!("executing a workflow: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    let run: Run = r.json().await?;
    if run.status != "COMPLETED" {
        bail!("workflow {} is {} after {:?}: are the workers running?", run.workflow_id, run.status, began.elapsed());
    }
    s.ids.lock().push(run.workflow_id);
    s.tasks_done.fetch_add(s.args.tasks, Ordering::Relaxed);
    complete(s, n);
    Ok(())
}

/// Workflow `n` completed.
fn complete(s: &Shared, n: usize) {
    if let Some(start) = s.starts.get(n).and_then(|m| *m.lock()) {
        s.workflow_ms.lock().push((s.began.elapsed().as_secs_f64(), start.elapsed().as_secs_f64() * 1000.0));
    }
    s.completed.fetch_add(1, Ordering::AcqRel);
    // A closed loop frees a slot for the next start; an open loop has none to free.
    if s.args.rate.is_none() {
        s.in_flight.add_permits(1);
    }
}

/// One worker with `batch` slots, like an SDK worker with that many threads: whenever a slot is
/// free it long-polls for as many tasks as there are free slots, and runs each task in a slot of
/// its own (following the tasks `update-v2` hands back). Until the seventh session it polled only
/// once all its slots were free.
async fn worker(s: Arc<Shared>, step: usize, index: usize, worker_id: String) -> anyhow::Result<()> {
    let slots = Arc::new(Semaphore::new(s.args.batch.max(1)));
    let worker_id: Arc<str> = worker_id.into();
    let mut running = tokio::task::JoinSet::new();
    let mut attempt = 0;
    while !s.done.load(Ordering::Acquire) {
        while let Some(ran) = running.try_join_next() {
            ran??;
        }
        let first = slots.clone().acquire_owned().await?;
        let free = 1 + slots.available_permits();
        let base = s.base(index, attempt).to_owned();
        let poll_url =
            format!("{base}/tasks/poll/batch/{}?count={free}&timeout=1000&workerid={worker_id}", task_name(step));
        let sent = wall_ms();
        let tasks: Vec<PolledTask> = match s.client.get(&poll_url).send().await {
            Ok(r) if r.status().is_success() => r.json().await?,
            failed => {
                if failed.is_err() {
                    s.unreachable(&base);
                    attempt += 1;
                }
                s.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let received = wall_ms();
        let mut permits = std::iter::once(first).chain(std::iter::from_fn(|| slots.clone().try_acquire_owned().ok()));
        for task in tasks {
            record_dispatch(&s, &task, received, Some(sent));
            // The node hands out at most `free` tasks, so each has a slot.
            let slot = permits.next();
            let (s, worker_id) = (s.clone(), worker_id.clone());
            running.spawn(async move {
                let _slot = slot;
                let mut current = Some(task);
                while let Some(task) = current.take() {
                    current = execute(&s, step, index, &worker_id, &task).await?;
                }
                anyhow::Ok(())
            });
        }
    }
    while let Some(ran) = running.join_next().await {
        ran??;
    }
    Ok(())
}

/// What a workflow's execution reports that the benchmark checks.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    workflow_id: String,
    status: String,
}

/// The fields of a handed-out task that the workers use. Like a worker written against a typed
/// client, they deserialize only these and skip the rest of Conductor's task JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolledTask {
    task_id: String,
    workflow_instance_id: String,
    correlation_id: Option<String>,
    scheduled_time: Option<i64>,
}

/// A task result as `update-v2` takes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskResult<'a> {
    workflow_instance_id: &'a str,
    task_id: &'a str,
    status: &'static str,
    output_data: StepOutput,
    worker_id: &'a str,
}

#[derive(Serialize)]
struct StepOutput {
    step: usize,
}

fn workflow_number(task: &PolledTask) -> Option<usize> {
    task.correlation_id.as_deref().and_then(|c| c.strip_prefix("bench-")).and_then(|n| n.parse::<usize>().ok())
}

/// Task dispatch latency: from the server's `scheduledTime` to the worker holding the task, and
/// separately for a task scheduled after the poll that received it was sent (`poll_sent`; none
/// for a task `update-v2` handed back): one a waiting long-poller received. And for a task that
/// follows another of its workflow, from that one's update being sent to this one being
/// pollable (its `scheduledTime`).
fn record_dispatch(s: &Shared, task: &PolledTask, received: i64, poll_sent: Option<i64>) {
    let Some(scheduled) = task.scheduled_time else { return };
    let ms = (received - scheduled).max(0) as f64;
    s.dispatch_ms.lock().push(ms);
    if poll_sent.is_some_and(|sent| scheduled >= sent) {
        s.waiting_dispatch_ms.lock().push((s.began.elapsed().as_secs_f64(), ms));
    }
    let updated = workflow_number(task).and_then(|n| s.last_update.get(n)).map_or(0, |u| u.load(Ordering::Acquire));
    if updated > 0 && s.args.shape != Shape::Fork {
        s.pollable_ms.lock().push((scheduled - updated).max(0) as f64);
    }
}

/// "Runs" one task and reports it with update-v2; returns the next task handed back.
async fn execute(
    s: &Shared,
    step: usize,
    index: usize,
    worker_id: &str,
    task: &PolledTask,
) -> anyhow::Result<Option<PolledTask>> {
    let result = TaskResult {
        workflow_instance_id: &task.workflow_instance_id,
        task_id: &task.task_id,
        status: "COMPLETED",
        output_data: StepOutput { step },
        worker_id,
    };
    let n = workflow_number(task);
    let mut retry = Retry::new();
    let mut attempt = 0;
    let response = loop {
        if let Some(u) = n.and_then(|n| s.last_update.get(n)) {
            u.store(wall_ms(), Ordering::Release);
        }
        let base = s.base(index, attempt).to_owned();
        match s.client.post(format!("{base}/tasks/update-v2")).json(&result).send().await {
            Ok(r) if r.status().is_success() => break r,
            Ok(_) => {}
            Err(_) => {
                s.unreachable(&base);
                attempt += 1;
            }
        }
        s.errors.fetch_add(1, Ordering::Relaxed);
        retry.wait("updating a task").await?;
    };
    s.tasks_done.fetch_add(1, Ordering::Relaxed);
    // The update of a workflow's last task commits its completion (the JOIN or the loop's last
    // condition is decided with it).
    let last = match s.args.shape {
        Shape::Linear => step + 1 == s.args.tasks,
        Shape::Fork | Shape::Loop => {
            n.and_then(|n| s.finished.get(n)).is_some_and(|f| f.fetch_add(1, Ordering::AcqRel) + 1 == s.args.width)
        }
        Shape::Mix => step + 1 == MIX_TASK_TYPES,
        Shape::StartOnly | Shape::Waiting => false,
    };
    if last && let Some(n) = n {
        complete(s, n);
    }
    if response.status().as_u16() == 204 {
        return Ok(None);
    }
    let body = response.bytes().await?;
    // No next task: an empty body (or anything but a task).
    let next = serde_json::from_slice::<PolledTask>(&body).ok();
    if let Some(next) = &next {
        record_dispatch(s, next, wall_ms(), None);
    }
    Ok(next)
}

/// Backoff for retryable failures (elections, a node going away): 20 ms doubling to 500 ms, for
/// up to 30 s, as a patient client would.
struct Retry {
    started: Instant,
    pause: Duration,
}

impl Retry {
    fn new() -> Retry {
        Retry { started: Instant::now(), pause: Duration::from_millis(20) }
    }

    async fn wait(&mut self, what: &str) -> anyhow::Result<()> {
        if self.started.elapsed() > Duration::from_secs(30) {
            bail!("{what} kept failing for 30 s");
        }
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(500));
        Ok(())
    }
}

/// Checks every workflow reports COMPLETED (RUNNING for the waiting shape).
async fn verify(s: &Shared) -> anyhow::Result<usize> {
    let expected = if s.args.shape == Shape::Waiting { "RUNNING" } else { "COMPLETED" };
    let ids = s.ids.lock().clone();
    let mut completed = 0;
    for chunk in ids.chunks(64) {
        let checks = chunk.iter().map(|id| s.client.get(format!("{}/workflow/{id}/status", s.base(0, 0))).send());
        for r in futures::future::join_all(checks).await {
            let v: Value = r?.json().await?;
            if v["status"] == expected {
                completed += 1;
            }
        }
    }
    Ok(completed)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(values: &[f64]) -> Value {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    json!({"count": v.len(), "p50": percentile(&v, 50.0), "p90": percentile(&v, 90.0), "p99": percentile(&v, 99.0), "max": v.last()})
}

/// How long a node's `/metrics` may take to answer the benchmark.
const STATS_TIMEOUT: Duration = Duration::from_secs(2);

/// What a node's `/metrics` says about its process, its data directory and its log's fsyncs.
#[derive(Debug, Clone, Default)]
struct NodeStats {
    cpu_seconds: f64,
    peak_rss_bytes: f64,
    data_bytes: f64,
    /// The Raft log's fsync histogram: (upper bound in seconds, fsyncs that took at most that
    /// long), ascending, `+Inf` last. A commit waits for its fsync, so a slow one holds every
    /// dispatch and update behind it.
    fsyncs: Vec<(f64, f64)>,
}

impl NodeStats {
    fn fsyncs(&self) -> f64 {
        self.fsyncs.last().map_or(0.0, |b| b.1)
    }

    /// Fsyncs that took over 5 ms.
    fn slow_fsyncs(&self) -> f64 {
        self.fsyncs() - self.fsyncs.iter().find(|b| b.0 >= 0.005).map_or(0.0, |b| b.1)
    }
}

/// Fsyncs between two readings of a histogram: how many took over 5 ms, and the upper bound of
/// the slowest one's bucket in ms (none if there were none; infinite, null in JSON, if it took
/// longer than the last bound, an hour).
fn fsyncs_between(before: &NodeStats, after: &NodeStats) -> (f64, Option<f64>) {
    let count = |s: &NodeStats, le: f64| s.fsyncs.iter().find(|b| b.0 == le).map_or(0.0, |b| b.1);
    let total = after.fsyncs() - before.fsyncs();
    let slowest = (total > 0.0)
        .then(|| after.fsyncs.iter().find(|b| b.1 - count(before, b.0) >= total).map(|b| b.0 * 1000.0))
        .flatten();
    (after.slow_fsyncs() - before.slow_fsyncs(), slowest)
}

/// Each node's figures; none for a node that does not answer within [`STATS_TIMEOUT`] (killed, or
/// frozen, which would otherwise hold the once-a-second sampling for the client's whole timeout).
async fn node_stats(client: &reqwest::Client, urls: &[String]) -> Vec<Option<NodeStats>> {
    let mut out = Vec::new();
    for url in urls {
        let text = match client.get(format!("{url}/metrics")).timeout(STATS_TIMEOUT).send().await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        out.push(parse_node_stats(&text));
    }
    out
}

/// A node's figures from the text of its `/metrics`; none without the process and data ones.
fn parse_node_stats(text: &str) -> Option<NodeStats> {
    let value = |name: &str| -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    };
    let fsyncs: Vec<(f64, f64)> = text
        .lines()
        .filter_map(|l| {
            let (le, count) = l.strip_prefix("overture_raft_fsync_seconds_bucket{le=\"")?.split_once("\"} ")?;
            Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, count.trim().parse().ok()?))
        })
        .collect();
    Some(NodeStats {
        cpu_seconds: value("process_cpu_seconds_total")?,
        peak_rss_bytes: value("process_resident_memory_max_bytes")?,
        data_bytes: value("overture_data_dir_bytes")?,
        fsyncs,
    })
}

/// Per node: CPU seconds the run cost it, its peak RSS, bytes its data directory grew per
/// workflow, and its log's fsyncs (all, and those over 5 ms). A node that did not answer (killed
/// during the run) has no figures.
fn node_report(urls: &[String], before: &[Option<NodeStats>], after: &[Option<NodeStats>], workflows: usize) -> Value {
    let nodes: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| match (before.get(i).and_then(Option::as_ref), after.get(i).and_then(Option::as_ref)) {
            (Some(b), Some(a)) => {
                let (slow, slowest) = fsyncs_between(b, a);
                json!({
                "url": url,
                "cpuSeconds": a.cpu_seconds - b.cpu_seconds,
                "peakRssBytes": a.peak_rss_bytes,
                "dataBytesPerWorkflow": (a.data_bytes - b.data_bytes) / workflows as f64,
                "logFsyncs": a.fsyncs() - b.fsyncs(),
                "logFsyncsOver5Ms": slow,
                "slowestLogFsyncMs": slowest,
                })
            }
            _ => json!({"url": url}),
        })
        .collect();
    Value::Array(nodes)
}

/// How long the synced-write probe runs: long enough to meet the disk's occasional stalls.
const FSYNC_PROBE: Duration = Duration::from_secs(4);

/// The machine's ceilings: synced 4 KiB writes in `dir` one after another for [`FSYNC_PROBE`]
/// (how many a second, how long the slowest take, and the share of the time a commit would
/// wait more than 5 ms for one), and GET `/health` requests per second over loopback (64 at a
/// time) for two seconds.
async fn measure_ceilings(client: &reqwest::Client, url: &str, dir: &std::path::Path) -> anyhow::Result<Value> {
    let path = dir.join(format!(".overture-bench-fsync-{}", std::process::id()));
    let synced = tokio::task::spawn_blocking(move || -> anyhow::Result<Value> {
        use std::io::Write;
        let mut file = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let block = [7u8; 4096];
        let began = Instant::now();
        let mut latencies = Vec::new();
        while began.elapsed() < FSYNC_PROBE {
            let one = Instant::now();
            file.write_all(&block)?;
            file.sync_data()?;
            latencies.push(one.elapsed().as_secs_f64() * 1000.0);
        }
        let wall_ms = began.elapsed().as_secs_f64() * 1000.0;
        drop(file);
        let _ = std::fs::remove_file(&path);
        // A commit that starts while an fsync is stalled waits for the rest of it: the share of
        // the time in which a commit would end more than 5 ms after it began.
        let stalled_ms: f64 = latencies.iter().map(|ms| (ms - 5.0).max(0.0)).sum();
        let rate = latencies.len() as f64 / (wall_ms / 1000.0);
        latencies.sort_by(f64::total_cmp);
        Ok(json!({
            "perSecond": rate,
            "p99Ms": percentile(&latencies, 99.0),
            "maxMs": latencies.last(),
            "stalledShare": stalled_ms / wall_ms,
        }))
    })
    .await??;
    let count = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let lanes: Vec<_> = (0..64)
        .map(|_| {
            let (client, url, count) = (client.clone(), format!("{url}/health"), count.clone());
            tokio::spawn(async move {
                while began.elapsed() < Duration::from_secs(2) {
                    if client.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await?;
    }
    let http = count.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64();
    Ok(json!({
        "syncedWritesPerSecond": synced["perSecond"],
        "syncedWriteP99Ms": synced["p99Ms"],
        "syncedWriteMaxMs": synced["maxMs"],
        "syncStalledShare": synced["stalledShare"],
        "loopbackHttpPerSecond": http,
    }))
}

/// Latencies received outside the seconds in which a node's log fsync took over 5 ms (and the
/// second after each, which the stall's backlog spills into): what the software does when the
/// disk does not stall. A figure next to the whole run's, never instead of it.
fn outside_stalls(samples: &[Sample], values: &[(f64, f64)]) -> Vec<f64> {
    let stalled: Vec<bool> = samples.windows(2).map(|w| fsyncs_in(&w[0], &w[1]).0 > 0.0).collect();
    let calm: Vec<(f64, f64)> = samples
        .windows(2)
        .enumerate()
        .filter(|&(i, _)| !stalled[i.saturating_sub(1)..=i].contains(&true))
        .map(|(_, w)| (w[0].at, w[1].at))
        .collect();
    values.iter().filter(|(at, _)| calm.iter().any(|(t0, t1)| at > t0 && at <= t1)).map(|(_, ms)| *ms).collect()
}

/// Log fsyncs over 5 ms between two samples, summed over the nodes that answered both, and the
/// slowest one's bucket bound (ms).
fn fsyncs_in(a: &Sample, b: &Sample) -> (f64, Option<f64>) {
    let per_node = a.nodes.iter().zip(&b.nodes).filter_map(|(x, y)| Some(fsyncs_between(x.as_ref()?, y.as_ref()?)));
    per_node
        .fold((0.0, None), |(slow, slowest), (s, m)| (slow + s, [slowest, m].into_iter().flatten().reduce(f64::max)))
}

/// Per second of the run: tasks and workflows finished, p99 latency of the workflows completed
/// and of the tasks a waiting poll received in it, how busy the machine was and how much of its
/// CPU time the host took, and the log fsyncs over 5 ms on every node (a disk stall shows as a
/// latency spike in a second that was not busy).
fn timeline(samples: &[Sample], completions: &[(f64, f64)], dispatches: &[(f64, f64)]) -> Value {
    let p99_within = |values: &[(f64, f64)], t0: f64, t1: f64| {
        let mut within: Vec<f64> = values.iter().filter(|(at, _)| *at > t0 && *at <= t1).map(|(_, ms)| *ms).collect();
        within.sort_by(f64::total_cmp);
        if within.is_empty() { Value::Null } else { json!(percentile(&within, 99.0)) }
    };
    let points: Vec<Value> = samples
        .windows(2)
        .map(|w| {
            let (a, b) = (&w[0], &w[1]);
            let secs = (b.at - a.at).max(1e-9);
            let shares = a.cpu.zip(b.cpu).and_then(|(x, y)| MachineCpu::shares(x, y));
            let fsyncs = fsyncs_in(a, b);
            json!({
                "second": b.at,
                "tasksPerSecond": (b.tasks - a.tasks) as f64 / secs,
                "workflowsPerSecond": (b.workflows - a.workflows) as f64 / secs,
                "workflowP99Ms": p99_within(completions, a.at, b.at),
                "waitingDispatchP99Ms": p99_within(dispatches, a.at, b.at),
                "machineBusy": shares.map(|s| s.0),
                "machineStolen": shares.map(|s| s.1),
                "logFsyncsOver5Ms": fsyncs.0,
                "slowestLogFsyncMs": fsyncs.1,
            })
        })
        .collect();
    Value::Array(points)
}

fn report(
    s: &Shared,
    elapsed: Duration,
    verified: usize,
    samples: Vec<Sample>,
    nodes: Value,
    ceilings: Option<Value>,
) -> Value {
    let secs = elapsed.as_secs_f64();
    let a = &s.args;
    let completions = s.workflow_ms.lock().clone();
    let latencies: Vec<f64> = completions.iter().map(|(_, ms)| *ms).collect();
    let dispatches = s.waiting_dispatch_ms.lock().clone();
    let waiting: Vec<f64> = dispatches.iter().map(|(_, ms)| *ms).collect();
    let calm = outside_stalls(&samples, &dispatches);
    let machine = samples
        .first()
        .zip(samples.last())
        .and_then(|(a, b)| MachineCpu::shares(a.cpu?, b.cpu?))
        .map(|(busy, stolen)| json!({"busy": busy, "stolen": stolen}));
    json!({
        "shape": format!("{:?}", a.shape).to_lowercase(),
        "nodes": a.urls().len(),
        "workflows": a.workflows, "tasksPerWorkflow": a.tasks_per_workflow(), "concurrency": a.concurrency,
        "rate": a.rate,
        "workersPerTaskType": (!a.external_workers).then_some(a.workers()), "pollBatch": a.batch,
        "externalWorkers": a.external_workers,
        "seconds": secs,
        "workflowsPerSecond": a.workflows as f64 / secs,
        "tasksPerSecond": s.tasks_done.load(Ordering::Relaxed) as f64 / secs,
        "startMs": summary(&s.start_ms.lock()),
        "taskDispatchMs": summary(&s.dispatch_ms.lock()),
        "waitingPollerDispatchMs": summary(&waiting),
        "waitingPollerDispatchOutsideStallsMs": summary(&calm),
        "updateToPollableMs": summary(&s.pollable_ms.lock()),
        "workflowLatencyMs": summary(&latencies),
        "verifiedCompleted": verified,
        "retriedRequests": s.errors.load(Ordering::Relaxed),
        "perNode": nodes,
        "ceilings": ceilings,
        "machineCpu": machine,
        "timeline": timeline(&samples, &completions, &dispatches),
    })
}

fn print_report(a: &BenchArgs, report: &Value) {
    if a.json {
        println!("{report}");
        return;
    }
    let load = match a.rate {
        Some(rate) => format!("{rate} started per second"),
        None => format!("{} in flight", a.concurrency),
    };
    let tasks = match a.shape {
        Shape::Mix => format!("{}–{}", MIX_TASK_TYPES - 1, MIX_TASK_TYPES),
        _ => a.tasks_per_workflow().to_string(),
    };
    let workers = if a.external_workers {
        "external workers".to_owned()
    } else {
        format!("{} workers per task type, poll batch {}", a.workers(), a.batch)
    };
    println!(
        "overture bench: {} {} workflows × {tasks} tasks on {} node(s), {load}, {workers}",
        a.workflows,
        report["shape"].as_str().unwrap_or_default(),
        report["nodes"],
    );
    if let Some(c) = report["ceilings"].as_object() {
        let f = |key: &str| c.get(key).and_then(Value::as_f64).unwrap_or_default();
        println!(
            "  machine          {:.0} synced writes/s (p99 {:.2} ms, max {:.1} ms; {:.2}% of the time a commit \
             would wait over 5 ms), {:.0} loopback HTTP requests/s",
            f("syncedWritesPerSecond"),
            f("syncedWriteP99Ms"),
            f("syncedWriteMaxMs"),
            f("syncStalledShare") * 100.0,
            f("loopbackHttpPerSecond"),
        );
    }
    println!("  elapsed          {:.2} s", report["seconds"].as_f64().unwrap_or_default());
    println!("  workflows/s      {:.1}", report["workflowsPerSecond"].as_f64().unwrap_or_default());
    println!("  tasks/s          {:.1}", report["tasksPerSecond"].as_f64().unwrap_or_default());
    let line = |label: &str, v: &Value| {
        if v["count"].as_u64().unwrap_or(0) > 0 {
            let f = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
            println!(
                "  {label:<18} p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
                f("p50"),
                f("p90"),
                f("p99"),
                f("max")
            );
        }
    };
    line("start", &report["startMs"]);
    line("task dispatch", &report["taskDispatchMs"]);
    line("  to waiting poll", &report["waitingPollerDispatchMs"]);
    line("  outside stalls", &report["waitingPollerDispatchOutsideStallsMs"]);
    line("update→pollable", &report["updateToPollableMs"]);
    line("workflow latency", &report["workflowLatencyMs"]);
    if let Some(m) = report["machineCpu"].as_object() {
        let f = |key: &str| m.get(key).and_then(Value::as_f64).unwrap_or_default() * 100.0;
        println!("  machine CPU      {:.0}% busy, {:.1}% taken by the host (steal)", f("busy"), f("stolen"));
    }
    for node in report["perNode"].as_array().into_iter().flatten() {
        match node["cpuSeconds"].as_f64() {
            Some(cpu) => println!(
                "  node {:<22} cpu {:.1} s  peak RSS {:.0} MB  data {:.0} bytes/workflow  log fsyncs {:.0} ({:.0} over 5 ms)",
                node["url"].as_str().unwrap_or_default(),
                cpu,
                node["peakRssBytes"].as_f64().unwrap_or_default() / 1e6,
                node["dataBytesPerWorkflow"].as_f64().unwrap_or_default(),
                node["logFsyncs"].as_f64().unwrap_or_default(),
                node["logFsyncsOver5Ms"].as_f64().unwrap_or_default(),
            ),
            None => println!(
                "  node {:<22} (no figures: not reachable at the start or the end)",
                node["url"].as_str().unwrap_or_default()
            ),
        }
    }
    let expected = if a.shape == Shape::Waiting { "RUNNING" } else { "COMPLETED" };
    println!(
        "  verified {expected} {}/{}   retried requests {}",
        report["verifiedCompleted"], a.workflows, report["retriedRequests"]
    );
}

/// An SVG chart of a report's timeline: tasks per second (solid) and p99 workflow latency of the
/// workflows completed in each second (dashed, right axis), so a failover shows as a dip and a
/// spike.
fn chart(report: &Value) -> String {
    let points: Vec<(f64, f64, Option<f64>)> = report["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["second"].as_f64().unwrap_or(0.0),
                p["tasksPerSecond"].as_f64().unwrap_or(0.0),
                p["workflowP99Ms"].as_f64(),
            )
        })
        .collect();
    let (w, h, left, right, top, bottom) = (800.0, 360.0, 70.0, 70.0, 40.0, 40.0);
    let max_t = points.iter().map(|p| p.0).fold(1.0, f64::max);
    let max_rate = points.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let max_p99 = points.iter().filter_map(|p| p.2).fold(1.0, f64::max) * 1.1;
    let x = |t: f64| left + (w - left - right) * t / max_t;
    let y = |v: f64, max: f64| top + (h - top - bottom) * (1.0 - v / max);
    let rate_line: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.0), y(p.1, max_rate))).collect();
    let p99_line: Vec<String> =
        points.iter().filter_map(|p| p.2.map(|v| format!("{:.1},{:.1}", x(p.0), y(v, max_p99)))).collect();
    let title = format!(
        "overture bench: {} workflows ({}), {} node(s)",
        report["workflows"],
        report["shape"].as_str().unwrap_or_default(),
        report["nodes"]
    );
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="24" font-size="14">{title}</text>
<line x1="{left}" y1="{bottom_y}" x2="{right_x}" y2="{bottom_y}" stroke="#444"/>
<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom_y}" stroke="#444"/>
<line x1="{right_x}" y1="{top}" x2="{right_x}" y2="{bottom_y}" stroke="#444"/>
<text x="8" y="{top}" fill="#1f5fbf">{max_rate:.0} tasks/s</text>
<text x="{right_label}" y="{top}" fill="#c0392b">{max_p99:.0} ms p99</text>
<text x="{right_x}" y="{time_y}" text-anchor="end">{max_t:.0} s</text>
<text x="{left}" y="{time_y}">0 s</text>
<polyline fill="none" stroke="#1f5fbf" stroke-width="2" points="{rate}"/>
<polyline fill="none" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5,3" points="{p99}"/>
</svg>
"##,
        bottom_y = h - bottom,
        right_x = w - right,
        right_label = w - right + 4.0,
        time_y = h - bottom + 18.0,
        rate = rate_line.join(" "),
        p99 = p99_line.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_cpu_is_read_from_the_first_line_of_proc_stat() {
        let stat = "cpu  5202086 163400 1076137 5016736 223714 0 120159 6586 40 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let cpu = MachineCpu::parse(stat).expect("a cpu line");
        // guest time (40) is already part of user time, so it is not counted twice.
        assert_eq!(
            cpu,
            MachineCpu {
                total: 5202086 + 163400 + 1076137 + 5016736 + 223714 + 120159 + 6586,
                idle: 5016736 + 223714,
                stolen: 6586,
            }
        );
        // Older kernels stop before steal.
        let old = MachineCpu::parse("cpu 10 0 10 80\n").expect("four fields");
        assert_eq!(old, MachineCpu { total: 100, idle: 80, stolen: 0 });
        for bad in ["", "intr 1 2 3\n", "cpu 1 2 x 4\n", "cpu 1 2\n"] {
            assert_eq!(MachineCpu::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn machine_shares_are_of_the_time_between_two_readings() {
        let before = MachineCpu { total: 1000, idle: 400, stolen: 10 };
        let after = MachineCpu { total: 1200, idle: 450, stolen: 30 };
        assert_eq!(MachineCpu::shares(before, after), Some((0.75, 0.1)));
        // No time passed (or the counters went back): no shares rather than a division by zero.
        assert_eq!(MachineCpu::shares(after, after), None);
        assert_eq!(MachineCpu::shares(after, before), None);
    }

    #[test]
    fn log_fsyncs_come_from_the_nodes_histogram() {
        let metrics = |buckets: [u32; 4]| {
            format!(
                "process_cpu_seconds_total 2.5\nprocess_resident_memory_max_bytes 1000\noverture_data_dir_bytes 7\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.001\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.005\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"0.25\"}} {}\n\
                 overture_raft_fsync_seconds_bucket{{le=\"+Inf\"}} {}\n\
                 overture_raft_fsync_seconds_count {}\n",
                buckets[0], buckets[1], buckets[2], buckets[3], buckets[3]
            )
        };
        let before = parse_node_stats(&metrics([10, 12, 12, 12])).expect("figures");
        assert_eq!((before.cpu_seconds, before.fsyncs(), before.slow_fsyncs()), (2.5, 12.0, 0.0));
        // Five more fsyncs, one of them between 5 and 250 ms.
        let after = parse_node_stats(&metrics([13, 16, 17, 17])).expect("figures");
        assert_eq!(fsyncs_between(&before, &after), (1.0, Some(250.0)));
        // Only fast ones: the slowest is under the first bound whose count took them all.
        let fast = parse_node_stats(&metrics([12, 16, 16, 16])).expect("figures");
        assert_eq!(fsyncs_between(&before, &fast), (0.0, Some(5.0)));
        assert_eq!(fsyncs_between(&before, &before), (0.0, None));
        // A node without the process figures (not Overture, or not up yet) has none.
        assert!(parse_node_stats("overture_data_dir_bytes 7\n").is_none());
    }

    #[test]
    fn latencies_outside_stalls_leave_out_the_stalled_second_and_the_next() {
        // One node; its fsyncs over 5 ms so far at each second: a stall in the third second.
        let sample = |at: f64, slow: f64| Sample {
            at,
            tasks: 0,
            workflows: 0,
            cpu: None,
            nodes: vec![Some(NodeStats {
                fsyncs: vec![(0.005, 100.0), (f64::INFINITY, 100.0 + slow)],
                ..Default::default()
            })],
        };
        let samples: Vec<Sample> =
            [0.0, 0.0, 0.0, 1.0, 1.0, 1.0].iter().enumerate().map(|(i, &s)| sample(i as f64, s)).collect();
        let values: Vec<(f64, f64)> = (0..10).map(|i| (0.5 * i as f64 + 0.25, i as f64)).collect();
        // Seconds (0, 1] and (1, 2] are calm, (2, 3] stalled, (3, 4] after it, (4, 5] calm again.
        assert_eq!(outside_stalls(&samples, &values), [0.0, 1.0, 2.0, 3.0, 8.0, 9.0]);
    }
}

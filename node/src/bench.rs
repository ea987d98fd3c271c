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
//! `scheduledTime` of a task to a worker receiving it, so it includes any wait for a free worker);
//! workflow latency (from sending the start request to the acknowledgement of its last task's
//! update, which commits the workflow's completion).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

/// Benchmark settings.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Base URL of the node.
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
    /// Workers per task type.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// Slots per worker: tasks asked for per poll and run side by side.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Each task's `responseTimeoutSeconds`: a task handed out whose worker never reports (a
    /// reply lost in a failover) is retried after this long.
    #[arg(long, default_value_t = 10)]
    response_timeout: u64,
    /// Workflow shape: `linear` runs `--tasks` SIMPLE tasks in a row; `fork` forks `--width`
    /// tasks at once (FORK_JOIN_DYNAMIC + JOIN); `loop` runs one task `--width` times (DO_WHILE).
    #[arg(long, value_enum, default_value_t = Shape::Linear)]
    shape: Shape,
    /// Branches of a `fork`, iterations of a `loop`.
    #[arg(long, default_value_t = 1000)]
    width: usize,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
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
}

impl BenchArgs {
    /// Worker tasks each workflow runs.
    fn tasks_per_workflow(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => self.width,
        }
    }
    /// Task types (one per linear step; one for the other shapes).
    fn task_types(&self) -> usize {
        match self.shape {
            Shape::Linear => self.tasks,
            Shape::Fork | Shape::Loop => 1,
        }
    }
    fn workflow_name(&self) -> String {
        match self.shape {
            Shape::Linear => format!("bench_linear_{}", self.tasks),
            Shape::Fork => format!("bench_fork_{}", self.width),
            Shape::Loop => format!("bench_loop_{}", self.width),
        }
    }
}

struct Shared {
    client: reqwest::Client,
    base: String,
    args: BenchArgs,
    starts: Vec<Mutex<Option<Instant>>>,
    /// Worker tasks finished, per workflow.
    finished: Vec<AtomicUsize>,
    ids: Mutex<Vec<String>>,
    dispatch_ms: Mutex<Vec<f64>>,
    workflow_ms: Mutex<Vec<f64>>,
    in_flight: Semaphore,
    completed: AtomicUsize,
    tasks_done: AtomicUsize,
    errors: AtomicUsize,
    done: AtomicBool,
}

fn wall_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

fn task_name(i: usize) -> String {
    format!("bench_task_{i}")
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if args.tasks == 0 || args.workflows == 0 || args.concurrency == 0 || args.workers == 0 || args.width == 0 {
        bail!("--workflows, --tasks, --width, --concurrency and --workers must be at least 1");
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = format!("{}/api", args.url.trim_end_matches('/'));
    setup(&client, &base, &args).await?;

    let shared = Arc::new(Shared {
        client,
        base,
        starts: (0..args.workflows).map(|_| Mutex::new(None)).collect(),
        finished: (0..args.workflows).map(|_| AtomicUsize::new(0)).collect(),
        ids: Mutex::new(Vec::with_capacity(args.workflows)),
        dispatch_ms: Mutex::new(Vec::with_capacity(args.workflows * args.tasks_per_workflow())),
        workflow_ms: Mutex::new(Vec::with_capacity(args.workflows)),
        in_flight: Semaphore::new(args.concurrency),
        completed: AtomicUsize::new(0),
        tasks_done: AtomicUsize::new(0),
        errors: AtomicUsize::new(0),
        done: AtomicBool::new(false),
        args: args.clone(),
    });

    let started = Instant::now();
    let mut handles = Vec::new();
    for step in 0..args.task_types() {
        for w in 0..args.workers {
            handles.push(tokio::spawn(worker(shared.clone(), step, format!("bench-{step}-{w}"))));
        }
    }
    let next = Arc::new(AtomicUsize::new(0));
    let starters: Vec<_> =
        (0..args.concurrency.min(16)).map(|_| tokio::spawn(starter(shared.clone(), next.clone()))).collect();
    for s in starters {
        s.await??;
    }
    while shared.completed.load(Ordering::Acquire) < args.workflows {
        if started.elapsed() > Duration::from_secs(600) {
            bail!(
                "gave up after 600 s: {} of {} workflows completed",
                shared.completed.load(Ordering::Acquire),
                args.workflows
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    shared.done.store(true, Ordering::Release);
    for h in handles {
        h.await??;
    }
    let verified = verify(&shared).await?;
    report(&shared, elapsed, verified);
    Ok(())
}

async fn setup(client: &reqwest::Client, base: &str, args: &BenchArgs) -> anyhow::Result<()> {
    let defs: Vec<Value> = (0..args.task_types())
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

async fn starter(s: Arc<Shared>, next: Arc<AtomicUsize>) -> anyhow::Result<()> {
    loop {
        let n = next.fetch_add(1, Ordering::AcqRel);
        if n >= s.args.workflows {
            return Ok(());
        }
        s.in_flight.acquire().await?.forget();
        *s.starts[n].lock() = Some(Instant::now());
        let mut input = json!({"n": n});
        if s.args.shape == Shape::Fork {
            input["items"] = (0..s.args.width).map(|i| json!({"i": i})).collect();
        }
        let body = json!({"name": s.args.workflow_name(), "version": 1, "correlationId": format!("bench-{n}"), "input": input});
        let mut retry = Retry::new();
        loop {
            let r = s.client.post(format!("{}/workflow", s.base)).json(&body).send().await;
            match r {
                Ok(r) if r.status().is_success() => {
                    let id = r.text().await?;
                    s.ids.lock().push(id);
                    break;
                }
                // Retryable: an election (503) or a node that went away.
                Ok(r) if r.status().as_u16() == 503 => {}
                Ok(r) => bail!("starting a workflow: {} {}", r.status(), r.text().await.unwrap_or_default()),
                Err(e) => tracing::debug!(error = %e, "start failed; retrying"),
            }
            s.errors.fetch_add(1, Ordering::Relaxed);
            retry.wait("starting a workflow").await?;
        }
    }
}

/// One worker with `batch` slots, like an SDK worker with that many threads: it asks for as many
/// tasks as it has slots, runs each in its own slot (following `update-v2` hand-offs), and polls
/// again once the slots are free.
async fn worker(s: Arc<Shared>, step: usize, worker_id: String) -> anyhow::Result<()> {
    let poll_url = format!(
        "{}/tasks/poll/batch/{}?count={}&timeout=1000&workerid={worker_id}",
        s.base,
        task_name(step),
        s.args.batch
    );
    while !s.done.load(Ordering::Acquire) {
        let tasks: Vec<Value> = match s.client.get(&poll_url).send().await {
            Ok(r) if r.status().is_success() => r.json().await?,
            Ok(_) | Err(_) => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let received = wall_ms();
        let slots = tasks.into_iter().map(|task| {
            record_dispatch(&s, &task, received);
            let (s, worker_id) = (&s, worker_id.as_str());
            async move {
                let mut current = Some(task);
                while let Some(task) = current.take() {
                    current = execute(s, step, worker_id, &task).await?;
                }
                anyhow::Ok(())
            }
        });
        for result in futures::future::join_all(slots).await {
            result?;
        }
    }
    Ok(())
}

/// Task dispatch latency: from the server's `scheduledTime` to the worker holding the task.
fn record_dispatch(s: &Shared, task: &Value, received: i64) {
    if let Some(scheduled) = task["scheduledTime"].as_i64() {
        s.dispatch_ms.lock().push((received - scheduled).max(0) as f64);
    }
}

/// "Runs" one task and reports it with update-v2; returns the next task handed back.
async fn execute(s: &Shared, step: usize, worker_id: &str, task: &Value) -> anyhow::Result<Option<Value>> {
    let result = json!({
        "workflowInstanceId": task["workflowInstanceId"], "taskId": task["taskId"], "status": "COMPLETED",
        "outputData": {"step": step}, "workerId": worker_id
    });
    let mut retry = Retry::new();
    let response = loop {
        match s.client.post(format!("{}/tasks/update-v2", s.base)).json(&result).send().await {
            Ok(r) if r.status().is_success() => break r,
            _ => {
                s.errors.fetch_add(1, Ordering::Relaxed);
                retry.wait("updating a task").await?;
            }
        }
    };
    s.tasks_done.fetch_add(1, Ordering::Relaxed);
    let n = task["correlationId"].as_str().and_then(|c| c.strip_prefix("bench-")).and_then(|n| n.parse::<usize>().ok());
    // The update of a workflow's last task commits its completion (the JOIN or the loop's last
    // condition is decided with it).
    let last = match s.args.shape {
        Shape::Linear => step + 1 == s.args.tasks,
        Shape::Fork | Shape::Loop => {
            n.and_then(|n| s.finished.get(n)).is_some_and(|f| f.fetch_add(1, Ordering::AcqRel) + 1 == s.args.width)
        }
    };
    if last {
        if let Some(start) = n.and_then(|n| s.starts.get(n)).and_then(|m| *m.lock()) {
            s.workflow_ms.lock().push(start.elapsed().as_secs_f64() * 1000.0);
        }
        s.completed.fetch_add(1, Ordering::AcqRel);
        s.in_flight.add_permits(1);
    }
    if response.status().as_u16() == 204 {
        return Ok(None);
    }
    let body = response.bytes().await?;
    let next = serde_json::from_slice::<Value>(&body).ok().filter(Value::is_object);
    if let Some(next) = &next {
        record_dispatch(s, next, wall_ms());
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

/// Checks every workflow reports COMPLETED.
async fn verify(s: &Shared) -> anyhow::Result<usize> {
    let ids = s.ids.lock().clone();
    let mut completed = 0;
    for chunk in ids.chunks(64) {
        let checks = chunk.iter().map(|id| s.client.get(format!("{}/workflow/{id}/status", s.base)).send());
        for r in futures::future::join_all(checks).await {
            let v: Value = r?.json().await?;
            if v["status"] == "COMPLETED" {
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

fn summary(values: &Mutex<Vec<f64>>) -> Value {
    let mut v = values.lock().clone();
    v.sort_by(f64::total_cmp);
    json!({"count": v.len(), "p50": percentile(&v, 50.0), "p90": percentile(&v, 90.0), "p99": percentile(&v, 99.0), "max": v.last()})
}

fn report(s: &Shared, elapsed: Duration, verified: usize) {
    let secs = elapsed.as_secs_f64();
    let a = &s.args;
    let report = json!({
        "shape": format!("{:?}", a.shape).to_lowercase(),
        "workflows": a.workflows, "tasksPerWorkflow": a.tasks_per_workflow(), "concurrency": a.concurrency,
        "workersPerTaskType": a.workers, "pollBatch": a.batch,
        "seconds": secs,
        "workflowsPerSecond": a.workflows as f64 / secs,
        "tasksPerSecond": s.tasks_done.load(Ordering::Relaxed) as f64 / secs,
        "taskDispatchMs": summary(&s.dispatch_ms),
        "workflowLatencyMs": summary(&s.workflow_ms),
        "verifiedCompleted": verified,
        "retriedRequests": s.errors.load(Ordering::Relaxed),
    });
    if a.json {
        println!("{report}");
        return;
    }
    let d = &report["taskDispatchMs"];
    let w = &report["workflowLatencyMs"];
    println!(
        "overture bench: {} {} workflows × {} tasks, {} in flight, {} workers per task type, poll batch {}",
        a.workflows,
        report["shape"].as_str().unwrap_or_default(),
        a.tasks_per_workflow(),
        a.concurrency,
        a.workers,
        a.batch
    );
    println!("  elapsed          {secs:.2} s");
    println!("  workflows/s      {:.1}", report["workflowsPerSecond"].as_f64().unwrap_or_default());
    println!("  tasks/s          {:.1}", report["tasksPerSecond"].as_f64().unwrap_or_default());
    println!("  task dispatch    p50 {} ms  p90 {} ms  p99 {} ms  max {} ms", d["p50"], d["p90"], d["p99"], d["max"]);
    println!(
        "  workflow latency p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        w["p50"].as_f64().unwrap_or(f64::NAN),
        w["p90"].as_f64().unwrap_or(f64::NAN),
        w["p99"].as_f64().unwrap_or(f64::NAN),
        w["max"].as_f64().unwrap_or(f64::NAN)
    );
    println!("  verified COMPLETED {verified}/{}   retried requests {}", a.workflows, report["retriedRequests"]);
}

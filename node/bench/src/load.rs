//! The load: starters that keep `--concurrency` workflows in flight (or an open loop that starts
//! `--rate` a second), workers that poll and report tasks, retries through elections and lost
//! nodes, and the check that every workflow ended as it should.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use crate::args::{MIX_TASK_TYPES, Shape, task_name};
use crate::shared::{Shared, wall_ms};

/// Starts `rate` workflows per second, each in its own task, whatever is in flight.
pub(crate) async fn open_loop(s: Arc<Shared>, rate: f64) -> anyhow::Result<()> {
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

/// One of the closed loop's starters: starts the next workflow whenever one in flight completes,
/// until every workflow has been started.
pub(crate) async fn starter(s: Arc<Shared>, next: Arc<AtomicUsize>, _lane: usize) -> anyhow::Result<()> {
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
pub(crate) async fn worker(s: Arc<Shared>, step: usize, index: usize, worker_id: String) -> anyhow::Result<()> {
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

/// The output each task reports: its step.
#[derive(Serialize)]
struct StepOutput {
    step: usize,
}

/// The number of a task's workflow, from its correlation id.
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
pub(crate) async fn verify(s: &Shared) -> anyhow::Result<usize> {
    let expected = if s.args.shape == Shape::Waiting { "RUNNING" } else { "COMPLETED" };
    let ids = s.ids.lock().clone();
    let mut completed = 0;
    for chunk in ids.chunks(64) {
        for v in futures::future::join_all(chunk.iter().map(|id| status_of(s, id))).await {
            if v?["status"] == expected {
                completed += 1;
            }
        }
    }
    Ok(completed)
}

/// A workflow's status, through any node that answers: a run may have lost one.
async fn status_of(s: &Shared, id: &str) -> anyhow::Result<Value> {
    let mut retry = Retry::new();
    let mut attempt = 0;
    loop {
        let base = s.base(0, attempt).to_owned();
        match s.client.get(format!("{base}/workflow/{id}/status")).send().await {
            Ok(r) if r.status().is_success() => return Ok(r.json().await?),
            Ok(r) if r.status().as_u16() == 503 => {}
            Ok(r) => bail!("reading workflow {id}: {} {}", r.status(), r.text().await.unwrap_or_default()),
            Err(e) => {
                tracing::debug!(error = %e, "a status read failed; trying another node");
                s.unreachable(&base);
                attempt += 1;
            }
        }
        retry.wait("reading a workflow's status").await?;
    }
}

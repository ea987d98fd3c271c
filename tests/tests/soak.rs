//! The soak: a three-node cluster under a mixed load, with a random fault every 30 s, then the
//! fault suite's checks. CI runs it for 3 minutes; `OVERTURE_SOAK_SECONDS=1800` runs the long
//! version (docs/RELIABILITY.md has the figures and how to rerun them). `OVERTURE_SOAK_SEED`
//! repeats a run's choice of faults. With `OVERTURE_SOAK_KEEP` set, a run whose nodes end with
//! different states keeps their data directories (and the file systems they are on) and prints
//! where, to compare them.
//!
//! The load is linear workflows (the ledger's: every start and every result acknowledged is
//! checked) and mixed ones: a SWITCH on an INLINE script's result, a FORK_JOIN of two worker
//! tasks, a JSON_JQ_TRANSFORM and a SUB_WORKFLOW of the linear definition. Faults, one at a time,
//! each healed before the next: kill -9 and restart, SIGSTOP and SIGCONT, the leader cut off, a
//! follower cut off, a bridge, a full disk, a clock jump.

use std::collections::BTreeMap;

use futures::StreamExt;
use std::time::{Duration, Instant};

use overture_tests::faults::{self, Observer, SmallDisk};
use overture_tests::{Cluster, Rng, Workload, check_ledger, client, send_retrying, wait_status_at};
use serde_json::json;

const KINDS: [&str; 7] = ["kill", "freeze", "leader-cut-off", "follower-cut-off", "bridge", "full-disk", "clock-jump"];

fn urls(c: &Cluster) -> Vec<String> {
    c.nodes.iter().map(|n| n.url.clone()).collect()
}

/// The mixed definition: a SWITCH on an INLINE result, a fork of two worker tasks, jq, and a
/// sub-workflow of the linear definition `linear`.
async fn register_mixed(url: &str, prefix: &str, linear: &str) -> String {
    let name = format!("{prefix}_mixed");
    let def = json!({
        "name": name, "version": 1,
        "tasks": [
            {"name": "pick", "taskReferenceName": "pick", "type": "INLINE",
             "inputParameters": {"evaluatorType": "javascript", "n": "${workflow.input.n}", "expression": "$.n % 2 == 0 ? 'even' : 'odd'"}},
            {"name": "route", "taskReferenceName": "route", "type": "SWITCH", "evaluatorType": "value-param",
             "expression": "which", "inputParameters": {"which": "${pick.output.result}"},
             "decisionCases": {
                "even": [{"name": "split", "taskReferenceName": "split", "type": "FORK_JOIN", "forkTasks": [
                    [{"name": format!("{prefix}_0"), "taskReferenceName": "left"}],
                    [{"name": format!("{prefix}_1"), "taskReferenceName": "right"}]]},
                    {"name": "split_join", "taskReferenceName": "split_join", "type": "JOIN", "joinOn": ["left", "right"]}],
                "odd": [{"name": "child", "taskReferenceName": "child", "type": "SUB_WORKFLOW",
                    "subWorkflowParam": {"name": linear, "version": 1}, "inputParameters": {"n": "${workflow.input.n}"}}]
             }},
            {"name": "shape", "taskReferenceName": "shape", "type": "JSON_JQ_TRANSFORM",
             "inputParameters": {"n": "${workflow.input.n}", "queryExpression": "{n: .n, doubled: (.n * 2)}"}}
        ],
        "outputParameters": {"shape": "${shape.output.result}"}
    });
    let r = send_retrying(client().post(format!("{url}/api/metadata/workflow?overwrite=true")).json(&def)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    name
}

/// Starts mixed workflows through the nodes in turn until stopped; returns the acknowledged ids.
fn start_mixed(
    urls: Vec<String>,
    name: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<Vec<(String, i64)>> {
    tokio::spawn(async move {
        let c = overture_tests::client_builder().timeout(Duration::from_secs(3)).build().expect("client");
        let mut started = Vec::new();
        let mut n = 0i64;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            n += 1;
            let url = &urls[n as usize % urls.len()];
            match c.post(format!("{url}/api/workflow/{name}")).json(&json!({"n": n})).send().await {
                Ok(r) if r.status().is_success() => {
                    if let Ok(id) = r.text().await {
                        started.push((id, n));
                    }
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started
    })
}

/// Tasks waiting in the leader's worker queues, from its `/metrics` (0 if unreadable).
async fn queued_tasks(url: &str) -> u64 {
    overture_tests::metric_sum(url, "task_queue_depth").await.unwrap_or(0.0) as u64
}

/// Injects one fault of `kind` and heals it; returns a line describing it.
async fn inject(c: &mut Cluster, disks: &mut [SmallDisk], kind: &str, rng: &mut Rng) -> String {
    let leader = c.wait_leader(Duration::from_secs(30)).await;
    let victim = 1 + rng.below(3);
    let follower = c.other_than(leader);
    match kind {
        "kill" => {
            c.nodes[victim - 1].kill9().await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.restart(victim).await;
            format!("kill -9 node {victim} (leader {leader}), restart after 5 s")
        }
        "freeze" => {
            c.nodes[victim - 1].sigstop();
            tokio::time::sleep(Duration::from_secs(5)).await;
            c.nodes[victim - 1].sigcont();
            format!("SIGSTOP node {victim} (leader {leader}) for 5 s")
        }
        "leader-cut-off" => {
            faults::isolate(c, &[leader]).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
            faults::heal(c).await;
            format!("leader {leader} cut off from both followers for 8 s")
        }
        "follower-cut-off" => {
            faults::isolate(c, &[follower]).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
            faults::heal(c).await;
            format!("follower {follower} cut off for 8 s")
        }
        "bridge" => {
            let (a, b) = (leader, follower);
            let middle = (1..=3).find(|n| *n != a && *n != b).unwrap_or(1);
            faults::cut_link(c, a, b).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
            faults::heal(c).await;
            format!("bridge through node {middle}: {a} and {b} cut from each other for 8 s")
        }
        "full-disk" => {
            let filled = disks[victim - 1].fill();
            tokio::time::sleep(Duration::from_secs(10)).await;
            disks[victim - 1].free();
            format!("node {victim}'s disk full ({} MiB of ballast) for 10 s (leader {leader})", filled >> 20)
        }
        _ => {
            let offset = (rng.below(20) as i64 - 10) * 1_000;
            faults::jump_clock(c, victim, offset).await;
            tokio::time::sleep(Duration::from_secs(10)).await;
            faults::jump_clock(c, victim, 0).await;
            format!("node {victim}'s clock {offset:+} ms for 10 s (leader {leader})")
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mixed_load_survives_a_random_fault_every_30_seconds() {
    let seconds: u64 = std::env::var("OVERTURE_SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(180);
    let seed: u64 = std::env::var("OVERTURE_SOAK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    eprintln!("soak: {seconds} s, seed {seed} (OVERTURE_SOAK_SEED={seed} repeats the faults)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().expect("dir");
    // Everything is kept (the checker reads every acknowledged task back at the end), so the
    // file systems are sized for a long run.
    let mut disks: Vec<SmallDisk> =
        (1..=3).map(|n| SmallDisk::mount(&dir.path().join(format!("node-{n}")), 2048)).collect();
    let mut c = Cluster::start(dir.path(), 3, faults::CONFIG).await;
    let observer = Observer::start(urls(&c));
    let linear = Workload::register(&c.nodes[0].url, "soak", 3).await;
    let mixed = register_mixed(&c.nodes[0].url, "soak", &linear).await;
    let load = Workload::run(urls(&c), "soak", 3, 2, 6, usize::MAX);
    let stop_mixed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mixed_starts = start_mixed(urls(&c), mixed, stop_mixed.clone());

    // Each kind once in a shuffled order, then at random: a short run still covers them all.
    let mut order: Vec<&str> = KINDS.to_vec();
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let began = Instant::now();
    let mut faults_by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    let mut round = 0usize;
    while began.elapsed() + Duration::from_secs(30) <= Duration::from_secs(seconds) {
        let round_began = Instant::now();
        let kind = if round < order.len() { order[round] } else { KINDS[rng.below(KINDS.len())] };
        let what = inject(&mut c, &mut disks, kind, &mut rng).await;
        let leader = c.wait_leader(Duration::from_secs(60)).await;
        let queued = queued_tasks(&c.nodes[leader - 1].url).await;
        eprintln!(
            "soak {:>5} s: {what}; leader now {leader}; so far {} starts and {} results acknowledged, {queued} tasks queued",
            began.elapsed().as_secs(),
            load.started(),
            load.updated()
        );
        *faults_by_kind.entry(kind).or_default() += 1;
        round += 1;
        let rest = Duration::from_secs(30).saturating_sub(round_began.elapsed());
        tokio::time::sleep(rest).await;
    }
    let ran = began.elapsed();

    stop_mixed.store(true, std::sync::atomic::Ordering::Relaxed);
    let mixed_started = mixed_starts.await.expect("the mixed starter");
    let ledger = load.stop().await;
    let finisher = Workload::run(urls(&c), "soak", 3, 0, 6, 0);
    let leader = c.wait_leader(Duration::from_secs(60)).await;
    let via = c.nodes[leader - 1].url.clone();
    check_ledger(&via, &ledger, 3, Duration::from_secs(120)).await;
    let via = &via;
    futures::stream::iter(&mixed_started)
        .for_each_concurrent(16, |(id, n)| async move {
            let wf = wait_status_at(via, id, "COMPLETED", Duration::from_secs(120)).await;
            assert_eq!(wf["output"]["shape"], json!({"n": n, "doubled": n * 2}), "{id}");
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for t in wf["tasks"].as_array().cloned().unwrap_or_default() {
                if t["status"] == "COMPLETED" {
                    *seen.entry(t["referenceTaskName"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
                }
            }
            assert!(seen.values().all(|&k| k == 1), "{id}: a task completed twice: {seen:?}");
        })
        .await;
    finisher.stop().await;
    let seen = observer.stop().await;
    assert!(seen.split_terms().is_empty(), "two leaders in one term: {:?}", seen.split_terms());
    if let Err(e) = faults::digests_agree(&c, Duration::from_secs(300)).await {
        if std::env::var_os("OVERTURE_SOAK_KEEP").is_some() {
            drop(c);
            tokio::time::sleep(Duration::from_secs(2)).await;
            std::mem::forget(disks);
            eprintln!("KEPT {}", dir.keep().display());
        }
        panic!("every node's state is the same: {e}");
    }

    let starts = ledger.started.lock().expect("lock").len();
    let results = ledger.updated.lock().expect("lock").len();
    let pause = seen.longest_pause(began, began + ran);
    let summary = json!({
        "seconds": ran.as_secs(), "seed": seed, "faults": faults_by_kind,
        "linearStartsAcknowledged": starts, "mixedStartsAcknowledged": mixed_started.len(),
        "resultsAcknowledged": results, "startsPerSecond": (starts + mixed_started.len()) as f64 / ran.as_secs_f64(),
        "longestWritePauseMs": pause.as_millis() as u64, "terms": seen.last_term(), "lost": 0, "completedTwice": 0
    });
    eprintln!("SOAK {summary}");
    assert!(round as u64 >= seconds / 30 - 1, "a fault every 30 s: {round} in {ran:?}");
    assert!(starts > 0 && !mixed_started.is_empty(), "the load ran");
}

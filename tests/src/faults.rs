//! Faults for the fault suite and the soak, and the checks that run beside them.
//!
//! - Partitions go through a node's fault injection (`/internal/faults/partition`, on nodes
//!   started with `fault_injection = true`): the node stops talking Raft with the peers named and
//!   refuses what they forward, while clients still reach every node.
//! - A full disk is a node's data directory on a small tmpfs of the test's own ([`SmallDisk`]),
//!   filled with a ballast file and emptied again (mounting needs root, as CI and this machine
//!   have).
//! - A clock jump moves one node's wall clock (`/internal/faults/clock`).
//! - [`Observer`] watches the cluster meanwhile: which node claims to lead each term, and when
//!   writes succeed, so a check can say "never two leaders in one term" and "no write paused
//!   longer than this".

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Cluster, client, send};

/// The cluster secret [`Cluster::start`] gives every node.
pub const SECRET: &str = "test-secret";

/// What to append to every node's configuration for the fault suite: fault injection on, and a
/// small disk reserve (the test file systems are small).
pub const CONFIG: &str = "fault_injection = true\nmin_free_disk_bytes = 16777216\n";

/// Cuts node `n` (1-based) off from `peers` on its side; `&[]` reconnects it.
pub async fn cut_off(c: &Cluster, n: usize, peers: &[usize]) {
    let url = format!("{}/internal/faults/partition", c.nodes[n - 1].url);
    let r =
        send(client().put(url).header("x-overture-cluster-secret", SECRET).json(&json!({"cutOffFrom": peers}))).await;
    assert_eq!(r.status, 200, "partitioning node {n}: {}", r.text);
}

/// Splits the cluster: every pair with one node in `side` and the other not is cut.
pub async fn isolate(c: &Cluster, side: &[usize]) {
    let all: Vec<usize> = (1..=c.nodes.len()).collect();
    for &n in &all {
        let inside = side.contains(&n);
        let others: Vec<usize> = all.iter().copied().filter(|m| side.contains(m) != inside).collect();
        cut_off(c, n, &others).await;
    }
}

/// Cuts exactly the links between `a` and `b` (both sides), leaving the others.
pub async fn cut_link(c: &Cluster, a: usize, b: usize) {
    cut_off(c, a, &[b]).await;
    cut_off(c, b, &[a]).await;
}

/// Reconnects every node.
pub async fn heal(c: &Cluster) {
    for n in 1..=c.nodes.len() {
        if c.nodes[n - 1].is_running() {
            cut_off(c, n, &[]).await;
        }
    }
}

/// Moves node `n`'s wall clock by `offset_ms`.
pub async fn jump_clock(c: &Cluster, n: usize, offset_ms: i64) {
    let url = format!("{}/internal/faults/clock", c.nodes[n - 1].url);
    let r =
        send(client().put(url).header("x-overture-cluster-secret", SECRET).json(&json!({"offsetMs": offset_ms}))).await;
    assert_eq!(r.status, 200, "moving node {n}'s clock: {}", r.text);
}

/// Node `n`'s status (`/api/cluster/status`), or `None` if it does not answer in time.
pub async fn status(c: &Cluster, n: usize) -> Option<Value> {
    let r = client().get(c.api(n, "/cluster/status")).timeout(Duration::from_millis(500)).send().await.ok()?;
    r.json().await.ok()
}

/// Waits until every running node has applied the same index and their state digests agree;
/// otherwise says what each node reported last.
pub async fn digests_agree(c: &Cluster, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let mut seen = Vec::new();
        for n in (1..=c.nodes.len()).filter(|n| c.nodes[n - 1].is_running()) {
            // A digest reads the whole store: a long soak's takes seconds.
            let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_secs(5));
            let reply = client().get(c.api(n, "/cluster/digest")).timeout(wait).send().await;
            let v = match reply {
                Ok(r) => r.json::<Value>().await.unwrap_or(Value::Null),
                Err(e) => Value::String(e.to_string()),
            };
            // With partitions, every partition's too.
            seen.push((n, (v["appliedIndex"].clone(), v["digest"].clone(), v["groups"].clone())));
        }
        let first = seen.first().map(|(_, d)| d.clone());
        if first.is_some_and(|f| !f.0.is_null() && seen.iter().all(|(_, d)| *d == f)) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("nodes report (node, (applied index, digest, partitions')): {seen:?}"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Watches a cluster while faults happen: the leader each node reports for each term, and the
/// moments writes succeed.
pub struct Observer {
    /// Term → nodes that said they lead it.
    claims: Arc<std::sync::Mutex<BTreeMap<u64, BTreeSet<usize>>>>,
    /// When a probe write succeeded.
    writes: Arc<std::sync::Mutex<Vec<Instant>>>,
    stop: Arc<AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
}

/// What an [`Observer`] saw.
pub struct Observed {
    /// Term → nodes that said they lead it.
    pub claims: BTreeMap<u64, BTreeSet<usize>>,
    /// When a probe write succeeded, in order.
    pub writes: Vec<Instant>,
}

impl Observed {
    /// Terms in which more than one node said it led.
    pub fn split_terms(&self) -> Vec<(u64, BTreeSet<usize>)> {
        self.claims.iter().filter(|(_, nodes)| nodes.len() > 1).map(|(t, n)| (*t, n.clone())).collect()
    }

    /// The longest time between two successful writes within `from..to`.
    pub fn longest_pause(&self, from: Instant, to: Instant) -> Duration {
        let inside: Vec<Instant> = self.writes.iter().copied().filter(|t| *t >= from && *t <= to).collect();
        let mut longest = inside.first().map_or(to - from, |first| *first - from);
        for pair in inside.windows(2) {
            longest = longest.max(pair[1] - pair[0]);
        }
        longest.max(inside.last().map_or(Duration::ZERO, |last| to - *last))
    }

    /// The longest time between two successful writes from the first one to `to`: how long
    /// writes stall on this machine, under this load, with no fault.
    pub fn longest_pause_before(&self, to: Instant) -> Duration {
        self.writes.first().map_or(Duration::ZERO, |first| self.longest_pause(*first, to))
    }

    /// The highest term any node reported.
    pub fn last_term(&self) -> u64 {
        self.claims.keys().copied().max().unwrap_or(0)
    }
}

impl Observer {
    /// Starts watching the nodes at `urls` (node `i + 1` at `urls[i]`): each node's status every
    /// 25 ms, and a small write every 20 ms through each node in turn.
    pub fn start(urls: Vec<String>) -> Observer {
        let claims = Arc::new(std::sync::Mutex::new(BTreeMap::<u64, BTreeSet<usize>>::new()));
        let writes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let (url, claims, stop) = (url.clone(), claims.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let c = crate::client_builder().timeout(Duration::from_millis(400)).build().expect("client");
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = c.get(format!("{url}/api/cluster/status")).send().await
                        && let Ok(v) = r.json::<Value>().await
                        && v["state"] == "Leader"
                        && let Some(term) = v["term"].as_u64()
                    {
                        claims.lock().expect("lock").entry(term).or_default().insert(i + 1);
                    }
                    tokio::time::sleep(Duration::from_millis(25)).await;
                }
            }));
        }
        {
            let (writes, stop) = (writes.clone(), stop.clone());
            handles.push(tokio::spawn(async move {
                let c = crate::client_builder().timeout(Duration::from_secs(2)).build().expect("client");
                let mut k = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let url = &urls[k % urls.len()];
                    let def = json!([{"name": "observer_probe", "description": format!("write {k}")}]);
                    if let Ok(r) = c.post(format!("{url}/api/metadata/taskdefs")).json(&def).send().await
                        && r.status().is_success()
                    {
                        writes.lock().expect("lock").push(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }));
        }
        Observer { claims, writes, stop, handles }
    }

    /// What has been seen so far, without stopping.
    pub fn seen(&self) -> Observed {
        let mut writes = self.writes.lock().expect("lock").clone();
        writes.sort();
        Observed { claims: self.claims.lock().expect("lock").clone(), writes }
    }

    /// Stops watching and returns what was seen.
    pub async fn stop(self) -> Observed {
        self.stop.store(true, Ordering::Relaxed);
        for h in &self.handles {
            h.abort();
        }
        for h in self.handles {
            let _ = h.await;
        }
        let mut writes = std::mem::take(&mut *self.writes.lock().expect("lock"));
        writes.sort();
        Observed { claims: std::mem::take(&mut *self.claims.lock().expect("lock")), writes }
    }
}

/// A small tmpfs mounted at a directory for the test's life, to fill up on purpose. Unmounted
/// when dropped.
pub struct SmallDisk {
    mount: PathBuf,
    ballast: Option<PathBuf>,
}

impl SmallDisk {
    /// Mounts a tmpfs of `mib` MiB at `mount` (created if needed). Needs root.
    pub fn mount(mount: &Path, mib: u64) -> SmallDisk {
        std::fs::create_dir_all(mount).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(mount)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a {mib} MiB tmpfs at {} (the fault suite runs as root)", mount.display());
        SmallDisk { mount: mount.to_owned(), ballast: None }
    }

    /// Fills the file system: a ballast file written until the disk refuses. Returns its size.
    pub fn fill(&mut self) -> u64 {
        use std::io::Write;
        let path = self.mount.join("ballast");
        let mut file = std::fs::File::create(&path).expect("ballast file");
        let block = vec![0u8; 1 << 20];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // Then page by page, for what a whole block no longer fits in.
        while let Ok(n @ 1..) = file.write(&block[..4096]) {
            written += n as u64;
        }
        let _ = file.flush();
        self.ballast = Some(path);
        written
    }

    /// Fills the file system but for about `leave` bytes. Returns the ballast's size.
    pub fn fill_leaving(&mut self, leave: u64) -> u64 {
        let written = self.fill().saturating_sub(leave);
        if let Some(path) = &self.ballast {
            let file = std::fs::OpenOptions::new().write(true).open(path).expect("ballast file");
            file.set_len(written).expect("ballast shortened");
        }
        written
    }

    /// Removes the ballast.
    pub fn free(&mut self) {
        if let Some(path) = self.ballast.take() {
            std::fs::remove_file(path).expect("ballast removed");
        }
    }

    /// Bytes free on the file system now.
    pub fn free_bytes(&self) -> u64 {
        let out = std::process::Command::new("df").args(["-B1", "--output=avail"]).arg(&self.mount).output();
        out.ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().nth(1).and_then(|l| l.trim().parse().ok()))
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // A node still holding files in it would keep it busy: detach it lazily.
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

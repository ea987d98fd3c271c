//! The test harness: real `overture` node processes on loopback, driven over HTTP.
//!
//! Nodes bind port 0 and report their address on stdout; helpers wait on conditions (readiness,
//! workflow status) with deadlines, never on fixed sleeps; every process is killed when its
//! handle drops.

pub mod brokers;
pub mod echo;
pub mod faults;
pub mod js;
pub mod keyed;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// This crate's directory, read when the test runs: a build cache shared between checkouts can
/// hold a test binary compiled in another checkout, so the compile-time path may be stale.
pub fn crate_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The `overture` binary: `$OVERTURE_BIN`, or the one cargo built next to this test.
pub fn overture_bin() -> PathBuf {
    if let Ok(path) = std::env::var("OVERTURE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    // target/<profile>/deps/<test> → target/<profile>/overture
    let dir = exe.parent().and_then(Path::parent).expect("target directory");
    let bin = dir.join("overture");
    assert!(bin.exists(), "{} not found: build the workspace first (cargo build --workspace)", bin.display());
    bin
}

/// A running node.
pub struct Node {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

/// `overture dev` on a free loopback port with its data in `data_dir`.
fn dev_args(data_dir: &Path) -> Vec<std::ffi::OsString> {
    let mut args: Vec<std::ffi::OsString> = ["dev", "--listen", "127.0.0.1:0", "--data-dir"].map(Into::into).to_vec();
    args.push(data_dir.into());
    args
}

impl Node {
    /// Starts `overture dev` on `data_dir` and waits until it serves writes.
    pub async fn start(data_dir: &Path) -> Node {
        Node::start_with(data_dir, &[]).await
    }

    /// Starts `overture dev` with extra flags.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Node {
        let mut args = dev_args(data_dir);
        args.extend(extra.iter().map(Into::into));
        Node::spawn(&args, &[], data_dir).await
    }

    /// Starts `overture dev` with extra environment (`OVERTURE_*` settings, `RUST_LOG`).
    pub async fn start_with_env(data_dir: &Path, env: &[(&str, &str)]) -> Node {
        Node::spawn(&dev_args(data_dir), env, data_dir).await
    }

    /// Starts `overture` with these arguments and extra environment, logging next to `data_dir`,
    /// and waits until it serves requests.
    pub async fn spawn(args: &[std::ffi::OsString], env: &[(&str, &str)], data_dir: &Path) -> Node {
        let node = Node::launch(args, env, data_dir).await;
        node.wait_ready().await;
        node
    }

    /// Starts `overture` and waits only until it listens (a cluster member cannot be ready
    /// before a quorum of its peers runs).
    pub async fn launch(args: &[std::ffi::OsString], env: &[(&str, &str)], data_dir: &Path) -> Node {
        let log_path = data_dir.with_extension("log");
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&log_path).expect("log file");
        let mut child = Command::new(overture_bin())
            .args(args)
            .env("RUST_LOG", "info,openraft=warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("overture starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("stdout readable") {
                if let Some(url) = line.strip_prefix("overture listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("overture exited before listening; see {}", log_path.display());
        })
        .await
        .expect("overture reports its address within 60 s");
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Node { child: Some(child), url, data_dir: data_dir.to_path_buf() }
    }

    /// `url` + `/api` + `path`.
    pub fn api(&self, path: &str) -> String {
        format!("{}/api{path}", self.url)
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&self) {
        let client = client();
        let ok = wait_for(Duration::from_secs(30), || async {
            client.get(format!("{}/ready", self.url)).send().await.is_ok_and(|r| r.status().is_success())
        })
        .await;
        assert!(ok, "node at {} did not become ready", self.url);
    }

    /// Kills the process with SIGKILL and waits for it to die.
    pub async fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("SIGKILL");
            child.wait().await.expect("reaped");
        }
    }

    /// Freezes the process (SIGSTOP): to its peers it is partitioned away.
    pub fn sigstop(&self) {
        self.signal("-STOP");
    }

    /// Resumes a frozen process (SIGCONT).
    pub fn sigcont(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().and_then(Child::id).expect("a running process");
        let ok = std::process::Command::new("kill").args([sig, &pid.to_string()]).status().expect("kill runs");
        assert!(ok.success(), "kill {sig} {pid}");
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the process with SIGTERM (graceful) and waits for it to exit.
    pub async fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
            match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                Ok(status) => assert!(status.expect("reaped").success(), "graceful shutdown exits 0"),
                Err(_) => panic!("node did not exit within 30 s of SIGTERM"),
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// A small deterministic generator (xorshift): a test that draws from it with a seed it prints
/// repeats the same way.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number below `n` (which must not be 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    client_builder().timeout(Duration::from_secs(30)).build().expect("client")
}

/// A client builder for tests, which talk plain HTTP to loopback. Its TLS settings are made once
/// per process and trust nothing: reqwest's own would load the system's certificate store for
/// every client, and tests build many.
pub fn client_builder() -> reqwest::ClientBuilder {
    static TLS: std::sync::OnceLock<rustls::ClientConfig> = std::sync::OnceLock::new();
    let tls = TLS.get_or_init(|| {
        // ring, as the node uses (deprecated in rustls only for lacking post-quantum key exchange).
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth()
    });
    reqwest::Client::builder().tls_backend_preconfigured(tls.clone())
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub async fn wait_for<F, Fut>(timeout: Duration, mut condition: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// A response's status and body, parsed as JSON when it is JSON.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The raw body.
    pub text: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

/// Sends a request and collects the reply.
pub async fn send(request: reqwest::RequestBuilder) -> Reply {
    let r = request.send().await.expect("request sent");
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let text = r.text().await.expect("body");
    Reply { status, content_type, text }
}

/// Sends a request as a patient client does: a retryable 503 (an election, leadership moving
/// while the request was forwarded) is retried for up to 10 s.
pub async fn send_retrying(request: reqwest::RequestBuilder) -> Reply {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = send(request.try_clone().expect("a request with a buffered body")).await;
        if r.status != 503 || Instant::now() >= deadline {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until a workflow reaches `status`; returns the workflow JSON.
pub async fn wait_status(node: &Node, workflow_id: &str, status: &str, timeout: Duration) -> Value {
    wait_status_at(&node.url, workflow_id, status, timeout).await
}

/// A group of `overture server` processes, node N on `127.0.0.N` at a port picked free.
pub struct Cluster {
    /// Index `i` holds node `i + 1`.
    pub nodes: Vec<Node>,
    configs: Vec<PathBuf>,
}

impl Cluster {
    /// Starts `size` members under `dir` and waits until a leader serves writes and every member
    /// knows it. `extra` is appended to every node's configuration file, and so is
    /// `partitions = N` when `OVERTURE_TEST_PARTITIONS=N` is set and `extra` names none, so any
    /// cluster test can be run against partitioned nodes.
    pub async fn start(dir: &Path, size: usize, extra: &str) -> Cluster {
        let extra = with_test_partitions(extra);
        let addrs: Vec<String> = (1..=size)
            .map(|n| {
                let ip = format!("127.0.0.{n}");
                let listener = std::net::TcpListener::bind((ip.as_str(), 0)).expect("a free port");
                format!("{ip}:{}", listener.local_addr().expect("addr").port())
            })
            .collect();
        let members: String = addrs.iter().enumerate().map(|(i, a)| format!("{} = \"{a}\"\n", i + 1)).collect();
        let mut configs = Vec::new();
        for (i, addr) in addrs.iter().enumerate() {
            configs.push(write_node_config(dir, i + 1, addr, &format!("{extra}\n[members]\n{members}")));
        }
        let mut nodes = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            nodes.push(Node::launch(&server_args(config), &[], &dir.join(format!("node-{}", i + 1))).await);
        }
        let cluster = Cluster { nodes, configs };
        cluster.wait_leader(Duration::from_secs(60)).await;
        for node in &cluster.nodes {
            node.wait_ready().await;
        }
        cluster.wait_dealt_out(Duration::from_secs(60)).await;
        cluster
    }

    /// With partitions, waits until every node sees each partition led by its preferred node:
    /// the balancer deals the partitions out in the first seconds, and a request that meets a
    /// partition while it moves gets a retryable 503, which a test of something else should not
    /// have to expect. Without partitions (or with authentication on), returns at once.
    async fn wait_dealt_out(&self, timeout: Duration) {
        let dealt_out = |status: &Value| {
            let groups = status["groups"].as_array().cloned().unwrap_or_default();
            groups
                .iter()
                .filter(|g| g["group"] != 0)
                .all(|g| g["leader"].is_u64() && g["leader"] == g["preferredLeader"])
        };
        if self.status(1).await["partitions"].as_u64().unwrap_or(1) <= 1 {
            return;
        }
        let settled = wait_for(timeout, || async {
            let mut all = true;
            for n in 1..=self.nodes.len() {
                all &= dealt_out(&self.status(n).await);
            }
            all
        })
        .await;
        assert!(settled, "partitions not dealt out within {timeout:?}: {}", self.status(1).await);
    }

    /// `url` of node `n` (1-based) + `/api` + `path`.
    pub fn api(&self, n: usize, path: &str) -> String {
        self.nodes[n - 1].api(path)
    }

    /// The node (1-based) that leads and serves writes, among running nodes, once there is one.
    pub async fn wait_leader(&self, timeout: Duration) -> usize {
        let client = client();
        let deadline = Instant::now() + timeout;
        loop {
            for (i, node) in self.nodes.iter().enumerate().filter(|(_, n)| n.is_running()) {
                // `/ready` needs no token, so this works with authentication on.
                let url = format!("{}/ready", node.url);
                if let Ok(r) = client.get(url).timeout(Duration::from_millis(500)).send().await
                    && let Ok(v) = r.json::<Value>().await
                    && v["isLeader"] == true
                    && v["ready"] == true
                {
                    return i + 1;
                }
            }
            assert!(Instant::now() < deadline, "no leader within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A running node (1-based) other than `not`.
    pub fn other_than(&self, not: usize) -> usize {
        (1..=self.nodes.len()).find(|n| *n != not && self.nodes[n - 1].is_running()).expect("another running node")
    }

    /// Restarts node `n` (1-based) on its data, without waiting for readiness.
    pub async fn restart(&mut self, n: usize) {
        let config = self.configs[n - 1].clone();
        let data = self.nodes[n - 1].data_dir.clone();
        self.nodes[n - 1] = Node::launch(&server_args(&config), &[], &data).await;
    }

    /// This node's status (`/api/cluster/status`).
    pub async fn status(&self, n: usize) -> Value {
        send(client().get(self.api(n, "/cluster/status"))).await.json()
    }

    /// Starts node `id` on `127.0.0.{id}` under `dir` with `join = true` (and `extra` in its
    /// configuration, with `OVERTURE_TEST_PARTITIONS` as in [`Cluster::start`]), waiting to be added; returns it and its address. It is not one of
    /// [`Cluster::nodes`].
    pub async fn launch_joiner(&self, dir: &Path, id: usize, extra: &str) -> (Node, String) {
        let listener = std::net::TcpListener::bind(format!("127.0.0.{id}:0")).expect("a free port");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let config = write_node_config(dir, id, &addr, &format!("join = true\n{}\n", with_test_partitions(extra)));
        (Node::launch(&server_args(&config), &[], &dir.join(format!("node-{id}"))).await, addr)
    }

    /// A new cluster of `size` members under `dir` made from the backup in `backup`: node 1 is
    /// restored from it (`overture restore`) and starts as a cluster of one, then nodes 2 to
    /// `size` start empty and join it (`overture cluster add-learner`, then `promote`).
    /// `extra` is as in [`Cluster::start`]; its partitions must be the backup's.
    pub async fn restore(dir: &Path, backup: &Path, size: usize, extra: &str) -> Cluster {
        let extra = with_test_partitions(extra);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let out = std::process::Command::new(overture_bin())
            .arg("restore")
            .arg("--backup")
            .arg(backup)
            .arg("--data-dir")
            .arg(dir.join("node-1"))
            .args(["--node-id", "1", "--address", &addr])
            .output()
            .expect("overture restore runs");
        assert!(out.status.success(), "overture restore: {}", String::from_utf8_lossy(&out.stderr));
        let config = write_node_config(dir, 1, &addr, &format!("{extra}\n[members]\n1 = \"{addr}\"\n"));
        let first = Node::launch(&server_args(&config), &[], &dir.join("node-1")).await;
        let mut cluster = Cluster { nodes: vec![first], configs: vec![config] };
        cluster.wait_leader(Duration::from_secs(60)).await;
        for id in 2..=size {
            let (node, address) = cluster.launch_joiner(dir, id, &extra).await;
            cluster.admin(1, &["add-learner", "--id", &id.to_string(), "--address", &address]);
            cluster.admin(1, &["promote", "--id", &id.to_string()]);
            cluster.configs.push(dir.join(format!("node-{id}.toml")));
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            node.wait_ready().await;
        }
        cluster
    }

    /// Runs `overture cluster <args> --url <node n>` and returns what it printed; fails the test
    /// if the command fails.
    pub fn admin(&self, n: usize, args: &[&str]) -> String {
        let out = std::process::Command::new(overture_bin())
            .arg("cluster")
            .args(args)
            .args(["--url", &self.nodes[n - 1].url])
            .output()
            .expect("overture cluster runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// `extra` with `partitions = N` before it when `OVERTURE_TEST_PARTITIONS=N` is set and `extra`
/// names no partitions.
fn with_test_partitions(extra: &str) -> String {
    match std::env::var("OVERTURE_TEST_PARTITIONS") {
        Ok(p) if !p.is_empty() && !extra.contains("partitions") => format!("partitions = {p}\n{extra}"),
        _ => extra.to_owned(),
    }
}

/// Writes `dir/node-{n}.toml` for node `n` at `addr` with its data in `dir/node-{n}`, the test
/// cluster secret, and `rest` (settings, then tables) after them; returns its path.
fn write_node_config(dir: &Path, n: usize, addr: &str, rest: &str) -> PathBuf {
    let data = dir.join(format!("node-{n}"));
    let config = dir.join(format!("node-{n}.toml"));
    let text = format!(
        "node_id = {n}\nlisten = \"{addr}\"\ndata_dir = \"{}\"\ncluster_secret = \"test-secret\"\n{rest}",
        data.display()
    );
    std::fs::write(&config, text).expect("config written");
    config
}

fn server_args(config: &Path) -> Vec<std::ffi::OsString> {
    vec!["server".into(), "--config".into(), config.into()]
}

/// What clients were told succeeded, during a workload that may see faults.
#[derive(Default)]
pub struct Ledger {
    /// Workflows whose start was acknowledged.
    pub started: std::sync::Mutex<Vec<String>>,
    /// Task results acknowledged: (task id, workflow id, output sent).
    pub updated: std::sync::Mutex<Vec<(String, String, Value)>>,
    /// When the first write after a fault was acknowledged.
    pub first_write_after: std::sync::Mutex<Option<Instant>>,
}

/// A workload of linear workflows (`steps` SIMPLE tasks named `{prefix}_{i}`) against any of a
/// set of node URLs, recording only acknowledged work, until stopped.
pub struct Workload {
    /// What was acknowledged.
    pub ledger: std::sync::Arc<Ledger>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// The workflow definition name.
    pub name: String,
    /// Tasks per workflow.
    pub steps: usize,
}

impl Workload {
    /// Registers the definitions through `url`: each step is retried after its response timeout
    /// (10 s, longer than a failover plus a client's retry, so only tasks nobody holds any more
    /// come back that way; a result arriving after it is a no-op, as in Conductor).
    pub async fn register(url: &str, prefix: &str, steps: usize) -> String {
        let c = client();
        let defs: Vec<Value> = (0..steps)
            .map(|i| serde_json::json!({"name": format!("{prefix}_{i}"), "retryCount": 10, "retryDelaySeconds": 0, "responseTimeoutSeconds": 10}))
            .collect();
        let r = send_retrying(c.post(format!("{url}/api/metadata/taskdefs")).json(&defs)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let tasks: Vec<Value> = (0..steps)
            .map(|i| serde_json::json!({"name": format!("{prefix}_{i}"), "taskReferenceName": format!("s{i}"), "inputParameters": {"n": "${workflow.input.n}"}}))
            .collect();
        let name = format!("{prefix}_flow");
        let def = serde_json::json!({"name": name, "version": 1, "tasks": tasks});
        let r = send_retrying(c.post(format!("{url}/api/metadata/workflow?overwrite=true")).json(&def)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        name
    }

    /// Starts `starters` loops starting workflows (up to `max_starts` in all) and `workers`
    /// worker loops, spread over `urls`. The load is closed: starters wait while more than
    /// [`Workload::BACKLOG`] tasks are started but not yet acknowledged, so a long run holds a
    /// steady state instead of queueing work faster than the workers do it.
    pub fn run(
        urls: Vec<String>,
        prefix: &str,
        steps: usize,
        starters: usize,
        workers: usize,
        max_starts: usize,
    ) -> Workload {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let ledger = std::sync::Arc::new(Ledger::default());
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let started = std::sync::Arc::new(AtomicUsize::new(0));
        let done = std::sync::Arc::new(AtomicUsize::new(0));
        // This workload's own workflows: the workers also serve tasks of other workflows that use
        // the same task types (a soak's mixed load), which must not count as this backlog's.
        let own = std::sync::Arc::new(std::sync::Mutex::new(std::collections::HashSet::<String>::new()));
        let name = format!("{prefix}_flow");
        let mut handles = Vec::new();
        for s in 0..starters {
            let (urls, ledger, stop, started, done, own, name) =
                (urls.clone(), ledger.clone(), stop.clone(), started.clone(), done.clone(), own.clone(), name.clone());
            handles.push(tokio::spawn(async move {
                let c = client_builder().timeout(Duration::from_secs(3)).build().expect("client");
                let mut k = s;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let so_far = started.load(Ordering::Relaxed);
                    if so_far >= max_starts || so_far * steps > done.load(Ordering::Relaxed) + Self::BACKLOG {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    let url = &urls[k % urls.len()];
                    let body = serde_json::json!({"name": name, "input": {"n": k}});
                    match c.post(format!("{url}/api/workflow")).json(&body).send().await {
                        Ok(r) if r.status().is_success() => {
                            if let Ok(id) = r.text().await {
                                own.lock().expect("lock").insert(id.clone());
                                started.fetch_add(1, Ordering::Relaxed);
                                ledger.started.lock().expect("lock").push(id);
                                ledger.first_write_after.lock().expect("lock").get_or_insert_with(Instant::now);
                            }
                        }
                        // 503 during an election, connection errors to a dead node: try elsewhere.
                        _ => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
            }));
        }
        for w in 0..workers {
            let (urls, ledger, stop, done, own) =
                (urls.clone(), ledger.clone(), stop.clone(), done.clone(), own.clone());
            let prefix = prefix.to_owned();
            handles.push(tokio::spawn(async move {
                let c = client_builder().timeout(Duration::from_secs(3)).build().expect("client");
                let mut k = w;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let url = &urls[k % urls.len()];
                    let step = k % steps;
                    let poll = format!("{url}/api/tasks/poll/batch/{prefix}_{step}?count=5&timeout=200&workerid=w{w}");
                    let Ok(r) = c.get(poll).send().await else { continue };
                    let Ok(tasks) = r.json::<Vec<Value>>().await else { continue };
                    for t in tasks {
                        let task_id = t["taskId"].as_str().unwrap_or_default().to_owned();
                        let wf = t["workflowInstanceId"].as_str().unwrap_or_default().to_owned();
                        let output = serde_json::json!({"doneBy": format!("w{w}"), "task": task_id});
                        let result = serde_json::json!({"workflowInstanceId": wf, "taskId": task_id, "status": "COMPLETED", "outputData": output});
                        // Report through any node; on failure try the next one a few times.
                        for attempt in 0..urls.len() * 3 {
                            let target = &urls[(k + attempt) % urls.len()];
                            if let Ok(r) = c.post(format!("{target}/api/tasks")).json(&result).send().await
                                && r.status().is_success()
                            {
                                ledger.updated.lock().expect("lock").push((task_id.clone(), wf.clone(), output.clone()));
                                if own.lock().expect("lock").contains(&wf) {
                                    done.fetch_add(1, Ordering::Relaxed);
                                }
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }));
        }
        Workload { ledger, stop, handles, name, steps }
    }

    /// Tasks a workload lets wait for its workers (started, not yet acknowledged) before its
    /// starters pause.
    pub const BACKLOG: usize = 1_000;

    /// Acknowledged starts so far.
    pub fn started(&self) -> usize {
        self.ledger.started.lock().expect("lock").len()
    }

    /// Acknowledged results so far.
    pub fn updated(&self) -> usize {
        self.ledger.updated.lock().expect("lock").len()
    }

    /// Stops every loop.
    pub async fn stop(self) -> std::sync::Arc<Ledger> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for h in self.handles {
            let _ = h.await;
        }
        self.ledger
    }
}

/// Checks what a faulty run must still guarantee, through the node at `url`: every acknowledged
/// workflow exists and completes, every acknowledged result is stored as sent, no task was
/// acknowledged twice, and each step of each workflow completed exactly once. Each workflow is
/// read once (with its tasks), 16 at a time: a long soak acknowledges hundreds of thousands of
/// results.
pub async fn check_ledger(url: &str, ledger: &Ledger, steps: usize, timeout: Duration) {
    use futures::StreamExt;
    use std::collections::{BTreeSet, HashMap, HashSet};
    let started = ledger.started.lock().expect("lock").clone();
    let updated = ledger.updated.lock().expect("lock").clone();
    let distinct: HashSet<&String> = updated.iter().map(|(t, _, _)| t).collect();
    assert_eq!(distinct.len(), updated.len(), "no task was completed by two workers");
    let mut results: HashMap<&str, Vec<(&str, &Value)>> = HashMap::new();
    for (task_id, wf, output) in &updated {
        results.entry(wf.as_str()).or_default().push((task_id.as_str(), output));
    }
    let started: HashSet<&str> = started.iter().map(String::as_str).collect();
    let workflows: BTreeSet<&str> = started.iter().copied().chain(results.keys().copied()).collect();
    futures::stream::iter(workflows)
        .for_each_concurrent(16, |id| {
            let (started, results) = (&started, &results);
            async move {
                // A workflow started outside the ledger only has to hold the results it was sent.
                let wf = if started.contains(id) {
                    wait_status_at(url, id, "COMPLETED", timeout).await
                } else {
                    send(client().get(format!("{url}/api/workflow/{id}"))).await.json()
                };
                let tasks = wf["tasks"].as_array().cloned().unwrap_or_default();
                let by_id: HashMap<&str, &Value> =
                    tasks.iter().map(|t| (t["taskId"].as_str().unwrap_or_default(), t)).collect();
                for (task_id, output) in results.get(id).into_iter().flatten() {
                    let t =
                        by_id.get(task_id).unwrap_or_else(|| panic!("acknowledged result of {task_id} survives: {wf}"));
                    assert_eq!(t["status"], "COMPLETED", "acknowledged result of {task_id} survives: {t}");
                    assert_eq!(&&t["outputData"], output, "{task_id} keeps its output");
                }
                if started.contains(id) {
                    let mut completed: HashMap<&str, usize> = HashMap::new();
                    for t in tasks.iter().filter(|t| t["status"] == "COMPLETED") {
                        *completed.entry(t["referenceTaskName"].as_str().unwrap_or_default()).or_default() += 1;
                    }
                    assert_eq!(completed.len(), steps, "{id}: {completed:?}");
                    assert!(completed.values().all(|&n| n == 1), "{id}: a step completed twice: {completed:?}");
                }
            }
        })
        .await;
}

/// The sum of every series of the metric `name` on the node at `url`'s `/metrics` (all label
/// values), or `None` if it has none or does not answer.
pub async fn metric_sum(url: &str, name: &str) -> Option<f64> {
    let text = client().get(format!("{url}/metrics")).send().await.ok()?.text().await.ok()?;
    let values: Vec<f64> = text
        .lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The Raft group a workload through `leader` loads: the one group of an unpartitioned
/// cluster, else the first partition `leader` leads (starts go to partitions the node leads).
/// Partitions are dealt out to the nodes after the cluster starts, so this waits, up to 30 s,
/// until `leader` leads one: the metadata group takes almost no entries under load.
pub async fn loaded_group(c: &Cluster, leader: usize) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = c.status(leader).await;
        let groups = status["groups"].as_array().cloned().unwrap_or_default();
        let led = groups.iter().find(|g| g["group"] != 0 && g["leader"].as_u64() == Some(leader as u64));
        match led.and_then(|g| g["group"].as_u64()) {
            Some(group) => return group,
            None if groups.len() <= 1 => return 0,
            None => assert!(Instant::now() < deadline, "node {leader} leads no partition after 30 s: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A field of group `group` in a node's cluster status (group 0's are the status's own).
pub fn group_field(status: &Value, group: u64, field: &str) -> Option<u64> {
    if group == 0 {
        return status[field].as_u64();
    }
    status["groups"].as_array()?.iter().find(|g| g["group"] == group)?[field].as_u64()
}

/// Waits until the workflow, read through the node at `url`, reaches `status`; returns its JSON.
pub async fn wait_status_at(url: &str, workflow_id: &str, status: &str, timeout: Duration) -> Value {
    let client = client();
    let url = format!("{url}/api/workflow/{workflow_id}");
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    let mut last = Value::Null;
    loop {
        if let Ok(r) = client.get(&url).send().await
            && let Ok(v) = r.json::<Value>().await
        {
            if v["status"] == status {
                return v;
            }
            last = v;
        }
        assert!(Instant::now() < deadline, "workflow {workflow_id} did not reach {status}; last seen: {last:#}");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

/// Runs `tests/python/sdk_workload.py` (the official Python SDK's workers and clients) against a
/// node and asserts every check in it passed.
pub async fn run_python_sdk_workload(url: &str) {
    finish_python_sdk(spawn_python_sdk("sdk_workload.py", &[url])).await;
}

/// Starts one of the Python SDK scripts in `tests/python` with these arguments; its stdout is
/// piped so the caller can follow its progress lines.
pub fn spawn_python_sdk(script: &str, args: &[&str]) -> tokio::process::Child {
    let python = std::env::var("OVERTURE_PYTHON").unwrap_or_else(|_| "python3".into());
    let probe = std::process::Command::new(&python).args(["-c", "import conductor.client"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the Conductor SDK. Run the suite with tests/run.sh, which installs it, \
         or `pip install -r tests/python/requirements.txt` and set OVERTURE_PYTHON. ({probe:?})"
    );
    let scripts = crate_dir().join("python");
    Command::new(&python)
        .arg(scripts.join(script))
        .args(args)
        .current_dir(&scripts)
        .env("PYTHONPATH", &scripts)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        // Held open for the script's life; a script that runs until told (bench_workers.py)
        // ends when it closes.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts")
}

/// Waits for a Python SDK script to print `line` (a progress marker) on its stdout; returns what
/// it printed so far.
pub async fn wait_for_python_line(child: &mut tokio::process::Child, line: &str, timeout: Duration) -> String {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.as_mut().expect("stdout is piped");
    let mut reader = tokio::io::BufReader::new(stdout);
    let mut seen = String::new();
    let found = tokio::time::timeout(timeout, async {
        let mut buf = String::new();
        loop {
            buf.clear();
            match reader.read_line(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {
                    seen.push_str(&buf);
                    if buf.trim_end() == line {
                        return true;
                    }
                }
            }
        }
    })
    .await;
    assert!(matches!(found, Ok(true)), "the script never printed {line:?}; it printed:\n{seen}");
    seen
}

/// Waits for a Python SDK script to end and asserts it reported no failures.
pub async fn finish_python_sdk(child: tokio::process::Child) {
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the SDK script finishes within 300 s")
        .expect("python ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK script failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", output.status);
    assert!(stdout.contains("\"failures\": []"), "{stdout}");
}

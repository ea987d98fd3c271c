//! The test harness: real `overture` node processes on loopback, driven over HTTP.
//!
//! Nodes bind port 0 and report their address on stdout; helpers wait on conditions (readiness,
//! workflow status) with deadlines, never on fixed sleeps; every process is killed when its
//! handle drops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

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

impl Node {
    /// Starts `overture dev` on `data_dir` and waits until it serves writes.
    pub async fn start(data_dir: &Path) -> Node {
        Node::start_with(data_dir, &[]).await
    }

    /// Starts `overture dev` with extra flags.
    pub async fn start_with(data_dir: &Path, extra: &[&str]) -> Node {
        let mut args: Vec<std::ffi::OsString> =
            ["dev", "--listen", "127.0.0.1:0", "--data-dir"].map(Into::into).to_vec();
        args.push(data_dir.into());
        args.extend(extra.iter().map(Into::into));
        Node::spawn(&args, &[], data_dir).await
    }

    /// Starts `overture` with these arguments and extra environment, logging next to `data_dir`,
    /// and waits until it serves writes.
    pub async fn spawn(args: &[std::ffi::OsString], env: &[(&str, &str)], data_dir: &Path) -> Node {
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
        let node = Node { child: Some(child), url, data_dir: data_dir.to_path_buf() };
        node.wait_ready().await;
        node
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

/// An HTTP client for tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client")
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

/// Waits until a workflow reaches `status`; returns the workflow JSON.
pub async fn wait_status(node: &Node, workflow_id: &str, status: &str, timeout: Duration) -> Value {
    let client = client();
    let url = node.api(&format!("/workflow/{workflow_id}"));
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

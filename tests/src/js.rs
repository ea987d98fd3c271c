//! Running the official JavaScript SDK's test scripts (`tests/js/*.mjs`, with
//! `@io-orkes/conductor-javascript` pinned in `tests/js/package-lock.json`) against a node.
//!
//! Each script takes the node's URL, prints a `FAIL: …` line for each failed check and, last, one
//! JSON line `{"failures": [...]}`, and exits non-zero if any check failed. Node.js (18 or later)
//! runs them; `./tests/run.sh` installs the SDK (`npm ci` in `tests/js`). A missing SDK is a
//! failure with instructions, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::{Child, Command};

use crate::crate_dir;

/// `tests/js`, where the scripts and their `node_modules` live.
pub fn js_dir() -> PathBuf {
    crate_dir().join("js")
}

/// Starts `tests/js/<script>` under Node.js with these arguments; its stdout and stderr are
/// piped. The SDK reads `CONDUCTOR_*` variables before its configuration, so none is passed on.
pub fn spawn_js_sdk(script: &str, args: &[&str]) -> Child {
    let dir = js_dir();
    assert!(
        dir.join("node_modules/@io-orkes/conductor-javascript/package.json").is_file(),
        "the Conductor JavaScript SDK is not installed in {}: run ./tests/run.sh, or `npm ci` there",
        dir.display()
    );
    let mut command = Command::new("node");
    command.arg(dir.join(script)).args(args).current_dir(&dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CONDUCTOR_") {
            command.env_remove(name);
        }
    }
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts (Node.js 18 or later is needed)")
}

/// Waits (up to 300 s) for a script started by [`spawn_js_sdk`] to end, and asserts that it
/// exited 0 and that its last `{"failures": [...]}` line lists none. A script still running then
/// is killed, and what it printed is shown.
pub async fn finish_js_sdk(mut child: Child) {
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait()).await;
    if status.is_err() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let stdout = stdout.await.expect("stdout reader");
    let stderr = stderr.await.expect("stderr reader");
    println!("{stdout}");
    let Ok(status) = status else {
        panic!("the SDK script did not finish within 300 s:\n{stdout}\n--- stderr ---\n{stderr}");
    };
    let status = status.expect("node ran");
    let summary = stdout
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line.trim()).ok())
        .find_map(|v| v.get("failures").cloned());
    let Some(failures) = summary else {
        panic!("the SDK script printed no summary ({status}):\n{stdout}\n--- stderr ---\n{stderr}");
    };
    let failures = failures.as_array().cloned().unwrap_or_default();
    let listed: Vec<String> =
        failures.iter().map(|f| format!("- {}", f.as_str().map_or_else(|| f.to_string(), str::to_owned))).collect();
    assert!(
        failures.is_empty() && status.success(),
        "the SDK script reported {} failure(s) ({status}):\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        failures.len(),
        listed.join("\n"),
    );
}

async fn read_all(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> String {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        let _ = pipe.read_to_end(&mut bytes).await;
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Runs `tests/js/<script>` against the node at `url` and asserts every check in it passed.
pub async fn run_js_sdk(script: &str, url: &str) {
    finish_js_sdk(spawn_js_sdk(script, &[url])).await;
}

//! The official `conductor-python` SDK (PyPI, 2.0.0) against a real node: definitions through
//! its metadata client, workflows through its workflow client and builder, real `TaskHandler`
//! workers (one process per worker) completing, failing, retrying and re-queueing tasks.
//!
//! The interpreter is `$OVERTURE_PYTHON` (the test script points it at a virtualenv with the
//! SDK installed), else `python3`. A missing SDK is a failure with instructions, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use overture_tests::Node;

fn python() -> String {
    std::env::var("OVERTURE_PYTHON").unwrap_or_else(|_| "python3".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_python_sdk_runs_a_workload() {
    let python = python();
    let probe = std::process::Command::new(&python).args(["-c", "import conductor.client"]).output();
    assert!(
        probe.as_ref().is_ok_and(|o| o.status.success()),
        "{python} cannot import the Conductor SDK. Run the suite with tests/run.sh, which installs it, \
         or `pip install -r tests/python/requirements.txt` and set OVERTURE_PYTHON. ({probe:?})"
    );
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let scripts = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python");
    let child = tokio::process::Command::new(&python)
        .arg(scripts.join("sdk_workload.py"))
        .arg(&node.url)
        .current_dir(&scripts)
        .env("PYTHONPATH", &scripts)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python starts");
    let output = tokio::time::timeout(Duration::from_secs(300), child.wait_with_output())
        .await
        .expect("the SDK workload finishes within 300 s")
        .expect("python ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "SDK workload failed ({}):\n{stdout}\n--- stderr ---\n{stderr}", output.status);
    assert!(stdout.contains("\"failures\": []"), "{stdout}");
}

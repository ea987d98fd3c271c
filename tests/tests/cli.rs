//! `overture server --config FILE`: the file, environment overrides, and refusals.

use std::process::Stdio;

use overture_tests::{Node, client, overture_bin, send};

#[tokio::test]
async fn server_runs_from_a_config_file_with_env_overrides() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("from-env");
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        "node_id = 7\nlisten = \"127.0.0.1:0\"\ndata_dir = \"/nonexistent/overridden\"\nlog_format = \"json\"\n\n[members]\n7 = \"127.0.0.1:0\"\n",
    )
    .expect("config written");
    // OVERTURE_DATA_DIR overrides the file's data_dir.
    let args = ["server".into(), "--config".into(), config.clone().into_os_string()];
    let node = Node::spawn(&args, &[("OVERTURE_DATA_DIR", data.to_str().expect("utf-8 path"))], &data).await;
    assert!(data.join("db").exists(), "the data directory came from the environment");
    let ready = send(client().get(format!("{}/ready", node.url))).await.json();
    assert_eq!((ready["leader"].as_u64(), ready["ready"].as_bool()), (Some(7), Some(true)));
    let log = std::fs::read_to_string(data.with_extension("log")).expect("log");
    assert!(log.lines().any(|l| l.starts_with('{') && l.contains("\"node_id\":7")), "JSON logs: {log}");
}

#[tokio::test]
async fn bad_configuration_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let cases = [
        ("listen = \"no-port\"\n", "is not host:port"),
        ("nodeid = 1\n", "unknown field `nodeid`"),
        ("node_id = 1\n[members]\n1 = \"a:1\"\n2 = \"b:1\"\n", "cluster_secret is required"),
        (
            "node_id = 1\ncluster_secret = \"s\"\nlisten = \"127.0.0.1:0\"\n[members]\n1 = \"a:1\"\n2 = \"b:1\"\n",
            "fixed port",
        ),
    ];
    for (text, expected) in cases {
        let config = dir.path().join("bad.toml");
        std::fs::write(&config, text).expect("written");
        let out = std::process::Command::new(overture_bin())
            .args(["server", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text:?} must be refused");
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
}

#[tokio::test]
async fn json_logs_carry_workflow_and_request_spans() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("node");
    let mut args: Vec<std::ffi::OsString> =
        ["dev", "--listen", "127.0.0.1:0", "--log-format", "json", "--data-dir"].map(Into::into).to_vec();
    args.push(data.clone().into());
    let filter = "info,openraft=warn,overture_actors=debug,overture_api=debug";
    let node = Node::spawn(&args, &[("RUST_LOG", filter)], &data).await;
    let c = client();
    let start = serde_json::json!({"name": "logged", "workflowDef": {"name": "logged", "version": 1,
        "tasks": [{"name": "noop", "taskReferenceName": "noop", "type": "NOOP"}]}});
    let id = send(c.post(node.api("/workflow")).header("x-request-id", "req-42").json(&start)).await.text;
    let ended = overture_tests::wait_for(std::time::Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(data.with_extension("log")).unwrap_or_default();
        log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|line| {
            line["fields"]["message"] == "workflow ended"
                && line["span"]["workflow_id"] == id.as_str()
                && line["span"]["name"] == "workflow"
        })
    })
    .await;
    let log = std::fs::read_to_string(data.with_extension("log")).expect("log");
    assert!(ended, "a JSON line in the workflow's span, with its id:\n{log}");
    let request = log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).any(|line| {
        line["span"]["name"] == "http" && line["span"]["request_id"] == "req-42" && line["fields"]["status"] == 200
    });
    assert!(request, "a JSON line in the request's span, with the caller's request id:\n{log}");
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "every line is JSON:\n{log}");
}

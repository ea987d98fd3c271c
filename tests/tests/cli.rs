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

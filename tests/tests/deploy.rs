//! `deploy/`: the local cluster script runs a real cluster; the container, Kubernetes,
//! Prometheus and Grafana files parse and agree with what the nodes really are and export.
//! (No Docker engine or Kubernetes runs here: their files are checked by reading them.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use overture_tests::{Cluster, Workload, client, overture_bin, send};
use serde_json::Value;

fn deploy() -> PathBuf {
    overture_tests::crate_dir().join("../deploy")
}

fn python() -> String {
    std::env::var("OVERTURE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Three consecutive free ports on 127.0.0.1.
fn free_base() -> u16 {
    for _ in 0..200 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = probe.local_addr().expect("addr").port();
        drop(probe);
        if base < 60_000 && (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
    panic!("no three consecutive free ports");
}

fn script(root: &Path, base: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(deploy().join("local-cluster.sh"))
        .args(args)
        .env("OVERTURE_BIN", overture_bin())
        .env("OVERTURE_BASE_PORT", base.to_string())
        .env("OVERTURE_DATA_ROOT", root)
        .output()
        .expect("script runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_cluster_script_runs_kills_and_restarts_nodes() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path().join("cluster-data");
    let base = free_base();
    let (ok, out) = script(&root, base, &["up"]);
    assert!(ok, "up: {out}");
    assert!(out.contains(&format!("http://127.0.0.1:{}/api", base + 2)), "{out}");

    // A write through node 2 works, whoever leads.
    let r = send(
        client()
            .post(format!("http://127.0.0.1:{}/api/metadata/taskdefs", base + 1))
            .json(&serde_json::json!([{"name": "via_script"}])),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (ok, out) = script(&root, base, &["status"]);
    assert!(ok && out.contains("leader") && out.contains("lag"), "status: {out}");

    let (ok, out) = script(&root, base, &["kill", "1"]);
    assert!(ok && out.contains("SIGKILL"), "kill: {out}");
    let (ok, out) = script(&root, base, &["restart", "1"]);
    assert!(ok && out.contains("is back"), "restart: {out}");
    let r = send(client().get(format!("http://127.0.0.1:{base}/api/metadata/taskdefs/via_script"))).await;
    assert_eq!(r.status, 200, "node 1 came back on its data: {}", r.text);

    let (ok, out) = script(&root, base, &["down"]);
    assert!(ok, "down: {out}");
    let (_, out) = script(&root, base, &["status"]);
    assert_eq!(out.matches("stopped").count(), 3, "{out}");
}

#[test]
fn deploy_files_parse_and_describe_three_nodes() {
    let check = r#"
import sys, yaml
root = sys.argv[1]
compose = yaml.safe_load(open(f"{root}/docker-compose.yml"))
services = compose["services"]
assert sorted(services) == ["overture-1", "overture-2", "overture-3"], services
ids = sorted(s["environment"]["OVERTURE_NODE_ID"] for s in services.values())
assert ids == ["1", "2", "3"], ids
members = {s["environment"]["OVERTURE_MEMBERS"] for s in services.values()}
assert len(members) == 1, "every node lists the same members"
docs = list(yaml.safe_load_all(open(f"{root}/kubernetes/overture.yaml")))
kinds = [d["kind"] for d in docs]
assert kinds.count("Service") == 2 and kinds.count("StatefulSet") == 1, kinds
headless = [d for d in docs if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"]
assert headless, "a headless Service"
sts = [d for d in docs if d["kind"] == "StatefulSet"][0]
assert sts["spec"]["replicas"] == 3 and sts["spec"]["serviceName"] == headless[0]["metadata"]["name"]
container = sts["spec"]["template"]["spec"]["containers"][0]
assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
env = {e["name"] for e in container["env"]}
assert {"OVERTURE_MEMBERS", "OVERTURE_CLUSTER_SECRET", "OVERTURE_ADVERTISE"} <= env, env
prom = yaml.safe_load(open(f"{root}/prometheus/prometheus.yml"))
targets = prom["scrape_configs"][0]["static_configs"][0]["targets"]
assert len(targets) == 3 and prom["scrape_configs"][0]["metrics_path"] == "/metrics", targets
print("ok")
"#;
    let out = Command::new(python()).args(["-c", check]).arg(deploy()).output().expect("python runs");
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    for script in ["local-cluster.sh", "dev.sh", "lib.sh", "docker-entrypoint.sh"] {
        let out = Command::new("bash").arg("-n").arg(deploy().join(script)).output().expect("bash runs");
        assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let dockerfile = std::fs::read_to_string(deploy().join("Dockerfile")).expect("Dockerfile");
    for line in dockerfile.lines().filter(|l| l.starts_with("COPY ") && !l.contains("--from")) {
        let source = line.split_whitespace().nth(1).expect("a source");
        assert!(source == "." || deploy().join("..").join(source).exists(), "{line}: {source} exists");
    }
    let unit = std::fs::read_to_string(deploy().join("systemd/overture.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/overture server --config") && unit.contains("[Install]"));
}

/// Metric names a PromQL expression reads: what is left once label matchers `{...}`, ranges
/// `[...]`, groupings `by (...)` and function names are taken out.
fn metric_names(expr: &str) -> Vec<String> {
    let mut kept = String::new();
    let mut rest = expr;
    while let Some(ch) = rest.chars().next() {
        let close = match ch {
            '{' => Some('}'),
            '[' => Some(']'),
            'b' if rest.starts_with("by (") || rest.starts_with("by(") => Some(')'),
            _ => None,
        };
        match close.and_then(|c| rest.find(c)) {
            Some(end) => rest = &rest[end + 1..],
            None => {
                kept.push(ch);
                rest = &rest[ch.len_utf8()..];
            }
        }
    }
    kept.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty() && !t.starts_with(|c: char| c.is_ascii_digit()))
        .filter(|t| !["sum", "max", "rate", "or", "histogram_quantile"].contains(t))
        .map(str::to_owned)
        .collect()
}

#[test]
fn metric_names_are_read_from_promql() {
    let expr =
        "max by (node) (overture_raft_commit_index) or sum by (status) (rate(workflow_completion_total{a=\"b\"}[1m]))";
    assert_eq!(metric_names(expr), ["overture_raft_commit_index", "workflow_completion_total"]);
    let expr = "histogram_quantile(0.99, sum by (le, route) (rate(http_server_requests_seconds_bucket[1m])))";
    assert_eq!(metric_names(expr), ["http_server_requests_seconds_bucket"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_metrics_the_nodes_export() {
    let dir = tempfile::tempdir().expect("dir");
    let c = Cluster::start(dir.path(), 3, "snapshot_every = 50").await;
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let follower = c.other_than(leader);
    Workload::register(&c.nodes[follower - 1].url, "dash", 1).await;
    let load = Workload::run(vec![c.nodes[follower - 1].url.clone()], "dash", 1, 1, 2, 20);
    assert!(
        overture_tests::wait_for(Duration::from_secs(60), || async { load.started() >= 20 && load.updated() >= 20 })
            .await
    );
    load.stop().await;
    let mut exported = String::new();
    for node in &c.nodes {
        exported.push_str(&send(client().get(format!("{}/metrics", node.url))).await.text);
    }
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/overture-dashboard.json")).expect("dashboard"),
    )
    .expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("expr");
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(
                    exported.lines().any(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} "))),
                    "panel {:?} queries {name}, which no node exports",
                    panel["title"]
                );
            }
        }
    }
}

/// Runs `have_libclang` from `deploy/lib.sh` against a fake library layout under `root` and a
/// fake `ldconfig -p` printing `ldconfig`: whether the set-up scripts would see libclang there.
fn sees_libclang(root: &Path, ldconfig: &str) -> bool {
    let fake_ldconfig = root.join("fake-ldconfig");
    std::fs::write(&fake_ldconfig, format!("#!/bin/sh\nprintf '%s\\n' '{ldconfig}'\n")).expect("script written");
    let status = Command::new("chmod").arg("+x").arg(&fake_ldconfig).status().expect("chmod");
    assert!(status.success());
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source '{}' && have_libclang", deploy().join("lib.sh").display()))
        .env("OVERTURE_SYSROOT", root)
        .env("OVERTURE_LDCONFIG", &fake_ldconfig)
        .env_remove("LIBCLANG_PATH")
        .output()
        .expect("bash runs");
    out.status.success()
}

/// The set-up scripts install libclang-dev unless the C library bindgen loads is there. Debian's
/// LLVM packages bring `libclang-cpp.so.N`, a different library: a fresh machine with only that
/// must still get libclang installed (a build without it fails in librocksdb-sys).
#[test]
fn the_setup_scripts_tell_libclang_from_libclang_cpp() {
    let dir = tempfile::tempdir().expect("dir");
    let root = dir.path();
    let llvm = root.join("usr/lib/llvm-14/lib");
    let multiarch = root.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&llvm).expect("dirs");
    std::fs::create_dir_all(&multiarch).expect("dirs");
    std::fs::write(llvm.join("libclang-cpp.so.14"), b"").expect("file");
    std::fs::write(multiarch.join("libclang-cpp.so.14"), b"").expect("file");
    let cpp_only = "\tlibclang-cpp.so.14 (libc6,x86-64) => /lib/x86_64-linux-gnu/libclang-cpp.so.14";
    assert!(!sees_libclang(root, cpp_only), "libclang-cpp is not libclang");
    assert!(!sees_libclang(root, ""), "nothing installed");

    // What libclang-dev installs, in each place bindgen looks.
    std::fs::write(llvm.join("libclang-14.so.1"), b"").expect("file");
    assert!(sees_libclang(root, cpp_only), "LLVM's own directory");
    std::fs::remove_file(llvm.join("libclang-14.so.1")).expect("removed");
    std::fs::write(multiarch.join("libclang.so.1"), b"").expect("file");
    assert!(sees_libclang(root, cpp_only), "the multiarch directory");
    std::fs::remove_file(multiarch.join("libclang.so.1")).expect("removed");
    let known = "\tlibclang-14.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libclang-14.so.1";
    assert!(sees_libclang(root, known), "known to the dynamic linker");
}

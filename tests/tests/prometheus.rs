//! `deploy/prometheus` against a real Prometheus: `promtool` checks the configuration, the alert
//! rules and their unit tests, and a Prometheus started from the deployment configuration scrapes
//! a real three-node cluster under load, answers every query of the Grafana dashboard, evaluates
//! every alert rule, and fires alerts for a failing workflow, a queue nobody polls and a killed
//! node.
//!
//! `prometheus` and `promtool` come from Debian's `prometheus` package, which `tests/run.sh`
//! installs (`ensure_prometheus` in `deploy/lib.sh`); `OVERTURE_PROMETHEUS` and
//! `OVERTURE_PROMTOOL` name other binaries. The Prometheus a test starts listens on a free port
//! (never 9090) with its data in a temporary directory, and is killed when the test ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use overture_tests::{Cluster, Workload, client, send, send_retrying, wait_for, wait_status_at};
use serde_json::{Value, json};

fn deploy() -> PathBuf {
    overture_tests::crate_dir().join("../deploy")
}

/// The binary `$var` names, else `name` on the `PATH`; fails the test, saying how to install
/// it, when there is none. (Missing tools fail: a skipped test would hide broken rules.)
fn tool(var: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|p| p.is_file()));
    on_path.unwrap_or_else(|| {
        panic!(
            "{name} is not installed. Run the suite with tests/run.sh, which installs Debian's `prometheus` \
             package (prometheus and promtool), or `apt-get install prometheus`; or set {var} to the binary."
        )
    })
}

/// Runs `promtool` in `deploy/prometheus` and returns what it printed; fails the test if it fails.
fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("OVERTURE_PROMTOOL", "promtool"))
        .args(args)
        .current_dir(deploy().join("prometheus"))
        .output()
        .expect("promtool runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

/// A YAML file of `deploy/`, as JSON values.
fn read_yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(deploy().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The alerting rules of a rule file.
fn alert_rules(rules: &Value) -> Vec<&Value> {
    let groups = rules["groups"].as_array().expect("rule groups");
    groups.iter().flat_map(|g| g["rules"].as_array().expect("rules")).filter(|r| r["alert"].is_string()).collect()
}

#[test]
fn promtool_passes_the_config_the_rules_and_their_unit_tests() {
    let out = promtool(&["check", "config", "prometheus.yml"]);
    assert!(out.contains("SUCCESS: 1 rule files found"), "prometheus.yml loads the alert rules: {out}");
    let out = promtool(&["check", "rules", "overture-alerts.yml"]);
    let count = alert_rules(&read_yaml("prometheus/overture-alerts.yml")).len();
    assert!(out.contains(&format!("SUCCESS: {count} rules found")), "{out}");
    let out = promtool(&["test", "rules", "overture-alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Every alert says how bad it is and what to do, and its unit tests show it both firing and
/// staying quiet.
#[test]
fn every_alert_has_a_severity_a_runbook_and_unit_tests_both_ways() {
    let rules = read_yaml("prometheus/overture-alerts.yml");
    let tests = read_yaml("prometheus/overture-alerts.test.yml");
    let cases: Vec<&Value> = tests["tests"]
        .as_array()
        .expect("tests")
        .iter()
        .flat_map(|t| t["alert_rule_test"].as_array().expect("cases"))
        .collect();
    let alerts = alert_rules(&rules);
    assert!(alerts.len() >= 7, "{alerts:?}");
    for rule in alerts {
        let name = rule["alert"].as_str().expect("name");
        assert!(["critical", "warning"].contains(&rule["labels"]["severity"].as_str().unwrap_or_default()), "{name}");
        assert!(rule["for"].is_string(), "{name} waits before firing");
        for key in ["summary", "description", "runbook"] {
            assert!(rule["annotations"][key].as_str().is_some_and(|t| t.len() > 10), "{name} has a {key}");
        }
        let mine: Vec<&&Value> = cases.iter().filter(|c| c["alertname"] == name).collect();
        let fires = |c: &&&Value| c["exp_alerts"].as_array().is_some_and(|a| !a.is_empty());
        assert!(mine.iter().any(fires), "{name} has a unit test in which it fires");
        assert!(mine.iter().any(|c| !fires(c)), "{name} has a unit test in which it does not fire");
    }
    let config = read_yaml("prometheus/prometheus.yml");
    assert_eq!(config["rule_files"], json!(["overture-alerts.yml"]), "a path relative to prometheus.yml");
}

/// Metric names a PromQL expression reads: its identifiers once string literals, label matchers,
/// ranges and grouping clauses are taken out, less function calls and keywords.
fn metric_names(expr: &str) -> Vec<String> {
    let mut kept = String::new();
    let mut rest = expr;
    while let Some(ch) = rest.chars().next() {
        let clause = ["by", "without", "on", "ignoring", "group_left", "group_right"].iter().find_map(|k| {
            let after = rest.strip_prefix(k)?.trim_start();
            let boundary = !kept.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_');
            (boundary && after.starts_with('(')).then_some(after)
        });
        let (skip_from, close) = match (clause, ch) {
            (Some(after), _) => (after, ')'),
            (None, '{') => (rest, '}'),
            (None, '[') => (rest, ']'),
            (None, '"') => (&rest[1..], '"'),
            _ => {
                kept.push(ch);
                rest = &rest[ch.len_utf8()..];
                continue;
            }
        };
        let skip_from = if close == '"' { skip_from } else { &skip_from[1..] };
        let end = skip_from.find(close).expect("a closing bracket or quote");
        kept.push(' ');
        rest = &skip_from[end + 1..];
    }
    let keywords = ["and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"];
    let mut names = Vec::new();
    let mut tail = kept.as_str();
    while let Some(start) = tail.find(|c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.') {
        let token_end = tail[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.'))
            .map_or(tail.len(), |e| start + e);
        let token = &tail[start..token_end];
        tail = &tail[token_end..];
        let call = tail.trim_start().starts_with('(');
        if !call && !token.starts_with(|c: char| c.is_ascii_digit() || c == '.') && !keywords.contains(&token) {
            names.push(token.to_owned());
        }
    }
    names
}

#[test]
fn metric_names_are_read_from_promql() {
    let expr = r#"label_replace(sum by (job, queue) (task_queue_depth{queue!~"x.*"}) > 0, "t", "$2", "queue", "(.*:)?(.*)")
        unless on (job, t) (sum by (job, t) (increase(task_poll_total[10m])) > 0)"#;
    assert_eq!(metric_names(expr), ["task_queue_depth", "task_poll_total"]);
    let expr = "(a_lag and on (job, instance) (b_leader == 1)) > 1e3 or (c - d) > 1000";
    assert_eq!(metric_names(expr), ["a_lag", "b_leader", "c", "d"]);
    let expr = "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 0.25";
    assert_eq!(metric_names(expr), ["x_bucket"]);
}

/// A Grafana query as Prometheus takes it: the interval variables become durations, any other
/// variable (a node picker, say) matches everything.
fn grafana_to_promql(expr: &str) -> String {
    let mut out = expr.to_owned();
    for (var, value) in [("__rate_interval", "1m"), ("__interval", "5s"), ("__range", "1m")] {
        out = out.replace(&format!("${{{var}}}"), value).replace(&format!("${var}"), value);
    }
    while let Some(start) = out.find('$') {
        let rest = &out[start + 1..];
        let len = if rest.starts_with('{') {
            rest.find('}').expect("a closing brace") + 1
        } else {
            rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())
        };
        out.replace_range(start..start + 1 + len, ".*");
    }
    out
}

/// A Prometheus process, killed (and reaped) when dropped.
struct Prometheus {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` on `config` with its data under `dir`, on a free port, and waits until
    /// it is ready.
    async fn start(config: &Path, dir: &Path) -> Prometheus {
        let binary = tool("OVERTURE_PROMETHEUS", "prometheus");
        // A port picked free can be taken before Prometheus binds it: then try another.
        for attempt in 0..3 {
            let port =
                std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("log file");
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!("--storage.tsdb.path={}", dir.join(format!("tsdb-{attempt}")).display()))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .expect("prometheus starts");
            let mut p = Prometheus { child, url: format!("http://127.0.0.1:{port}"), log };
            let c = client();
            let ready = wait_for(Duration::from_secs(30), || {
                let exited = p.child.try_wait().ok().flatten().is_some();
                let probe = c.get(format!("{}/-/ready", p.url)).send();
                async move { exited || probe.await.is_ok_and(|r| r.status().is_success()) }
            })
            .await;
            let exited = p.child.try_wait().ok().flatten().is_some();
            if ready && !exited {
                return p;
            }
            let log = p.log_tail();
            assert!(exited && log.contains("address already in use"), "prometheus did not become ready:\n{log}");
        }
        panic!("prometheus found no free port in three tries");
    }

    /// The end of Prometheus's log, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// `GET /api/v1/{path}` with these query parameters: its `data`.
    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}/api/v1/{path}", self.url), params).expect("url");
        let r = send(client().get(url)).await;
        assert_eq!(r.status, 200, "{path} {params:?}: {}", r.text);
        let v = r.json();
        assert_eq!(v["status"], "success", "{v}");
        v["data"].clone()
    }

    /// The series an instant query returns.
    async fn query(&self, expr: &str) -> Vec<Value> {
        self.api("query", &[("query", expr)]).await["result"].as_array().cloned().unwrap_or_default()
    }

    /// Whether an alert named `name` whose labels include `labels` is firing.
    async fn firing(&self, name: &str, labels: &Value) -> bool {
        let alerts = self.api("alerts", &[]).await;
        alerts["alerts"].as_array().into_iter().flatten().any(|a| {
            a["state"] == "firing"
                && a["labels"]["alertname"] == name
                && labels.as_object().expect("labels").iter().all(|(k, v)| &a["labels"][k] == v)
        })
    }

    /// Waits until an alert named `name` whose labels include `labels` is firing.
    async fn wait_firing(&self, name: &str, labels: &Value, timeout: Duration) {
        let fired = wait_for(timeout, || self.firing(name, labels)).await;
        let alerts = self.api("alerts", &[]).await;
        assert!(fired, "{name} {labels} did not fire within {timeout:?}; alerts: {alerts:#}\n{}", self.log_tail());
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Registers `{name}` (one task, no retries) and `{name}_flow` through `url`.
async fn register_one_task_flow(url: &str, name: &str) {
    let c = client();
    let task = json!([{"name": name, "retryCount": 0, "responseTimeoutSeconds": 60}]);
    let r = send_retrying(c.post(format!("{url}/api/metadata/taskdefs")).json(&task)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let flow = json!({"name": format!("{name}_flow"), "version": 1,
        "tasks": [{"name": name, "taskReferenceName": "only", "type": "SIMPLE"}]});
    let r = send_retrying(c.post(format!("{url}/api/metadata/workflow?overwrite=true")).json(&flow)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Starts `{task}_flow` through `url` and returns its id.
async fn start_flow(url: &str, task: &str) -> String {
    let r = send_retrying(client().post(format!("{url}/api/workflow")).json(&json!({"name": format!("{task}_flow")})))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
}

/// Starts a `prom_fail_flow` workflow through `url`, takes its task as a worker and fails it,
/// so the workflow fails (its task has no retries).
async fn fail_a_workflow(url: &str) {
    let id = start_flow(url, "prom_fail").await;
    let c = client();
    let mut task = None;
    for _ in 0..30 {
        // A long poll: it answers as soon as the task is ready.
        let r = send(c.get(format!("{url}/api/tasks/poll/batch/prom_fail?count=1&timeout=1000&workerid=failer"))).await;
        if let Some(t) = r.json().as_array().and_then(|a| a.first().cloned()) {
            task = Some(t);
            break;
        }
    }
    let task = task.expect("the prom_fail task is handed out");
    let result = json!({"workflowInstanceId": id, "taskId": task["taskId"], "status": "FAILED",
        "reasonForIncompletion": "failed on purpose by the Prometheus test"});
    let r = send_retrying(c.post(format!("{url}/api/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status_at(url, &id, "FAILED", Duration::from_secs(30)).await;
}

/// A real Prometheus, configured from `deploy/prometheus/prometheus.yml` with the cluster's
/// addresses as targets, scrapes a three-node cluster under load. Every target is up, every alert
/// rule evaluates without error and reads only metrics the nodes export, every query of the
/// Grafana dashboard returns data, and alerts fire: a workflow that keeps failing, a queue nobody
/// polls, and a node killed with SIGKILL.
///
/// The alert rules are loaded from a copy whose `for` durations are cut to 2 s (with scrapes and
/// evaluations every second): the production values (a minute and more) would make the test
/// wait that long. Everything else in the rules and the configuration is as deployed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_cluster_and_fires_alerts() {
    let dir = tempfile::tempdir().expect("dir");
    let mut c = Cluster::start(dir.path(), 3, "").await;
    let urls: Vec<String> = c.nodes.iter().map(|n| n.url.clone()).collect();
    let addresses: Vec<String> = urls.iter().map(|u| u.trim_start_matches("http://").to_owned()).collect();
    Workload::register(&urls[0], "prom", 1).await;
    register_one_task_flow(&urls[0], "prom_fail").await;
    register_one_task_flow(&urls[0], "prom_idle").await;

    // The deployment's rules, each waiting 2 s instead of its production `for`.
    let mut rules = read_yaml("prometheus/overture-alerts.yml");
    let alert_count = alert_rules(&rules).len();
    for group in rules["groups"].as_array_mut().expect("groups") {
        for rule in group["rules"].as_array_mut().expect("rules") {
            rule["for"] = json!("2s");
        }
    }
    let rules_path = dir.path().join("overture-alerts.yml");
    std::fs::write(&rules_path, serde_yaml_ng::to_string(&rules).expect("YAML")).expect("rules written");
    // The deployment's configuration, scraping this cluster every second.
    let mut config = read_yaml("prometheus/prometheus.yml");
    config["global"]["scrape_interval"] = json!("1s");
    config["global"]["evaluation_interval"] = json!("1s");
    config["rule_files"] = json!([rules_path]);
    let job = &mut config["scrape_configs"][0];
    assert_eq!(job["job_name"], "overture");
    assert_eq!(job["static_configs"].as_array().map(Vec::len), Some(1), "{job}");
    job["static_configs"][0]["targets"] = json!(addresses);
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, serde_yaml_ng::to_string(&config).expect("YAML")).expect("config written");

    let prometheus = Prometheus::start(&config_path, dir.path()).await;
    let all_up = wait_for(Duration::from_secs(20), || async {
        let targets = prometheus.api("targets", &[]).await;
        let active = targets["activeTargets"].as_array().cloned().unwrap_or_default();
        active.len() == 3 && active.iter().all(|t| t["health"] == "up" && t["labels"]["job"] == "overture")
    })
    .await;
    let targets = prometheus.api("targets", &[]).await;
    assert!(all_up, "every node is scraped: {targets:#}");
    let mut instances: Vec<&str> = targets["activeTargets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["labels"]["node"].as_str())
        .collect();
    instances.sort_unstable();
    assert_eq!(instances, addresses.iter().map(String::as_str).collect::<Vec<_>>(), "the `node` label is the address");

    // The load: workflows started and their tasks polled and completed in the background, one
    // workflow left waiting on a task nobody polls, and failed workflows.
    let load = Workload::run(urls.clone(), "prom", 1, 1, 2, 500);
    start_flow(&urls[1], "prom_idle").await;
    fail_a_workflow(&urls[0]).await;

    // Every query of the dashboard returns at least one series.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy().join("grafana/overture-dashboard.json")).expect("dashboard"),
    )
    .expect("JSON");
    let queries: Vec<(String, String)> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().into_iter().flatten().map(move |t| (p, t)))
        .map(|(p, t)| {
            (p["title"].as_str().unwrap_or_default().to_owned(), grafana_to_promql(t["expr"].as_str().expect("expr")))
        })
        .collect();
    assert!(queries.len() >= 10, "{queries:?}");
    let empty = std::sync::Mutex::new(Vec::new());
    let answered = wait_for(Duration::from_secs(30), || async {
        let mut missing = Vec::new();
        for (title, expr) in &queries {
            if prometheus.query(expr).await.is_empty() {
                missing.push(format!("{title}: {expr}"));
            }
        }
        let done = missing.is_empty();
        *empty.lock().expect("lock") = missing;
        done
    })
    .await;
    assert!(answered, "dashboard queries that return nothing:\n{}", empty.lock().expect("lock").join("\n"));

    // Every alert rule is loaded, evaluates without error, and reads metrics that exist.
    let evaluated = wait_for(Duration::from_secs(20), || async {
        let groups = prometheus.api("rules", &[("type", "alert")]).await;
        let rules: Vec<Value> = groups["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        rules.len() == alert_count && rules.iter().all(|r| r["health"] == "ok")
    })
    .await;
    let groups = prometheus.api("rules", &[("type", "alert")]).await;
    assert!(evaluated, "every alert rule is loaded and evaluates: {groups:#}");
    let exported: Vec<Value> =
        prometheus.api("label/__name__/values", &[]).await.as_array().cloned().unwrap_or_default();
    for rule in alert_rules(&read_yaml("prometheus/overture-alerts.yml")) {
        let expr = rule["expr"].as_str().expect("expr");
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{expr}");
        for name in names {
            assert!(exported.contains(&json!(name)), "alert {} reads {name}, which no node exports", rule["alert"]);
        }
    }

    // Alerts: before any node dies none is down; the failing workflow and the queue nobody
    // polls fire, the workload's own workflows (which all complete) do not.
    let alerts = prometheus.api("alerts", &[]).await;
    assert!(
        !alerts["alerts"].as_array().into_iter().flatten().any(|a| a["labels"]["alertname"] == "OvertureNodeDown"),
        "no node is down yet: {alerts:#}"
    );
    // Workflows fail through node 1 (so in a group it leads, whose leader counts them) until the
    // alert fires: a rate needs the counter to rise between two scrapes, and a counter's first
    // sample (1, its first failure) shows no rise.
    let failing = json!({"workflowName": "prom_fail_flow"});
    let fired = wait_for(Duration::from_secs(30), || async {
        fail_a_workflow(&urls[0]).await;
        prometheus.firing("OvertureWorkflowsFailing", &failing).await
    })
    .await;
    let alerts = prometheus.api("alerts", &[]).await;
    assert!(fired, "OvertureWorkflowsFailing {failing} did not fire; alerts: {alerts:#}\n{}", prometheus.log_tail());
    prometheus
        .wait_firing(
            "OvertureTasksWaitingWithoutPoller",
            &json!({"queue": "prom_idle", "taskType": "prom_idle"}),
            Duration::from_secs(30),
        )
        .await;
    let alerts = prometheus.api("alerts", &[]).await;
    assert!(
        !alerts["alerts"].as_array().into_iter().flatten().any(|a| a["labels"]["workflowName"] == "prom_flow"),
        "workflows that complete do not alert: {alerts:#}"
    );

    // A follower killed with SIGKILL: its scrapes fail and the node-down alert fires for it.
    let leader = c.wait_leader(Duration::from_secs(10)).await;
    let victim = c.other_than(leader);
    c.nodes[victim - 1].kill9().await;
    let instance = &addresses[victim - 1];
    prometheus
        .wait_firing(
            "OvertureNodeDown",
            &json!({"instance": instance, "job": "overture", "severity": "critical", "cluster": "local"}),
            Duration::from_secs(30),
        )
        .await;
    load.stop().await;
}

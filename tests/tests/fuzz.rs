//! Hostile requests at every route of a real node (issue 5): malformed and mistyped JSON, huge
//! numbers, deep nesting, unknown enum values, path tricks and junk query values. None may crash
//! the node or get a 5xx, and every refusal is a Conductor-style JSON error.
//!
//! The routes are read from the router's source (`api/src/lib.rs`), so a new route is fuzzed
//! without touching this file. The inputs come from a seeded generator: a failure names its
//! seed and request, and reruns the same way.

use std::collections::BTreeSet;

use overture_tests::{Node, Rng, client, crate_dir};
use serde_json::{Value, json};

/// Every `(method, path)` the router declares: the `/api` router's routes under `/api`, the
/// others as they are. (The internal Raft routes are named by constants, and refuse callers
/// without the cluster secret; they are fuzzed by path below.)
fn routes() -> Vec<(String, String)> {
    let source = std::fs::read_to_string(crate_dir().join("../api/src/lib.rs")).expect("router source");
    let api = source
        .split("let api = Router::new()")
        .nth(1)
        .and_then(|s| s.split("let internal").next())
        .expect("api router");
    let root = source.split(".nest(\"/api\", api)").nth(1).expect("root router");
    let mut out = BTreeSet::new();
    for (section, prefix) in [(api, "/api"), (root, "")] {
        for chunk in section.split(".route(").skip(1) {
            let Some(path) = chunk.strip_prefix('"').and_then(|c| c.split('"').next()) else { continue };
            let handlers = chunk.split(';').next().unwrap_or(chunk);
            for (needle, method) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("delete(", "DELETE")] {
                if handlers.contains(needle) {
                    out.insert((method.to_owned(), format!("{prefix}{path}")));
                }
            }
        }
    }
    for internal in ["/internal/raft/append", "/internal/raft/vote", "/internal/raft/snapshot"] {
        out.insert(("POST".to_owned(), internal.to_owned()));
    }
    out.into_iter().collect()
}

const SEGMENTS: &[&str] = &[
    "x",
    "..",
    "..%2F..%2Fetc%2Fpasswd",
    "%00",
    "a%00b",
    "%F0%9F%92%A5",
    "%FF%FE",
    "-1",
    "0",
    "99999999999999999999999",
    "1e400",
    "true",
    "null",
    "%27%20OR%201%3D1",
    "RUNNING",
    "COMPLETED",
    "NOT_A_STATUS",
    "signal",
    "sync",
];

const QUERIES: &[&str] = &[
    "",
    "?start=-5&size=99999999999999999999",
    "?count=abc&timeout=1e309",
    "?timeout=-1&count=-7",
    "?version=xyz&includeTasks=maybe&includeClosed=perhaps",
    "?query=(((&freeText=%22&sort=%3A%3A",
    "?query=status%20IN%20(&sort=startTime%3ASIDEWAYS",
    "?query=startTime%20%3E%2099999999999999999999999",
    "?status=NOPE&status=&reason=%00",
    "?useLatestDefinitions=2&archiveWorkflow=&resumeSubworkflowTasks=yes",
    "?returnStrategy=EVERYTHING&timeoutMillis=-3",
    "?waitForSeconds=-1&waitUntilTaskRef=%00",
    "?taskType=&domain=%FF&workerid=%00",
    "?consistent=true&consistent=false",
];

fn nested(depth: usize, open: &str, close: &str) -> String {
    format!("{}1{}", open.repeat(depth), close.repeat(depth))
}

fn bodies() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"}".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"123".to_vec(),
        b"\"just a string\"".to_vec(),
        b"1e999".to_vec(),
        vec![0xFF, 0xFE, 0x00, 0x7B],
        nested(100_000, "[", "]").into_bytes(),
        nested(120, "{\"a\":", "}").into_bytes(),
        nested(20_000, "{\"a\":", "}").into_bytes(),
    ];
    let junk = [
        json!({"name": 123, "tasks": "x", "version": "one", "input": [], "priority": 1e20}),
        json!({"name": "w", "version": 99999999999u64, "tasks": [{"name": "t", "taskReferenceName": "t", "type": "NOT_A_TYPE"}]}),
        json!({"name": "w", "tasks": [{"name": "", "taskReferenceName": null, "type": "FORK_JOIN", "forkTasks": [[{}]]}]}),
        json!({"name": "w", "tasks": [{"name": "s", "taskReferenceName": "s", "type": "SWITCH", "evaluatorType": "javascript", "expression": "while(true){}", "decisionCases": {"a": "b"}}]}),
        json!({"workflowInstanceId": {}, "taskId": [], "status": "BOGUS", "outputData": "x", "callbackAfterSeconds": -1e30}),
        json!({"workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED", "outputData": {"deep": nested(100, "[", "]")}}),
        json!([null, 1, "x", {"a": []}]),
        Value::Array(vec![json!("id-1"); 1001]),
        json!({"keyId": 1, "keySecret": null}),
        json!({"reRunFromTaskId": 5, "workflowInput": "x", "taskInput": []}),
        json!({"name": "h", "event": "", "actions": [{"action": "start_agent_of_chaos"}], "active": "yes"}),
        json!({"nodeId": -1, "address": 5}),
        json!({"name": "w", "input": {"x": "\u{0}\u{FFFF}"}, "idempotencyStrategy": "MAYBE", "workflowDef": {"tasks": 7}}),
        json!([{"name": "t", "retryCount": -5, "retryLogic": "SOMETIMES", "timeoutSeconds": 1e18, "responseTimeoutSeconds": "soon"}]),
    ];
    out.extend(junk.iter().map(|v| v.to_string().into_bytes()));
    out
}

fn fill(path: &str, rng: &mut Rng) -> String {
    path.split('/')
        .map(|segment| if segment.starts_with('{') { (*rng.pick(SEGMENTS)).to_owned() } else { segment.to_owned() })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_at_every_route_get_json_4xx_and_never_a_5xx() {
    let dir = tempfile::tempdir().expect("dir");
    let node = Node::start(&dir.path().join("node")).await;
    let routes = routes();
    assert!(routes.len() >= 70, "the router's routes are read from its source: {} {routes:?}", routes.len());
    let bodies = bodies();
    let seed = 0x005E_ED0F_0E7E_u64;
    let mut rng = Rng(seed);
    let mut requests = Vec::new();
    for (method, path) in &routes {
        // Every body against every route once, with random path values and queries.
        for body in &bodies {
            let url = format!("{}{}{}", node.url, fill(path, &mut rng), rng.pick(QUERIES));
            requests.push((method.clone(), url, body.clone()));
        }
    }
    // A fresh connection per request: a refused body never poisons a pooled connection.
    let c = overture_tests::client_builder().pool_max_idle_per_host(0).build().expect("client");
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    let mut handles = Vec::new();
    for (method, url, body) in requests {
        let (c, permit) = (c.clone(), sem.clone().acquire_owned().await.expect("open"));
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
            let shown = format!("{method} {} ({} body bytes)", url.chars().take(160).collect::<String>(), body.len());
            let response = match c.request(m, &url).header("content-type", "application/json").body(body).send().await {
                Ok(r) => r,
                Err(e) => return Some(format!("{shown}: no answer: {e}")),
            };
            let status = response.status().as_u16();
            let json =
                response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            let text = response.text().await.unwrap_or_default();
            let head: String = text.chars().take(300).collect();
            if status >= 500 {
                return Some(format!("{shown}: {status} {head}"));
            }
            if status >= 400 {
                let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                let conductor_error =
                    json && body["status"].as_u64() == Some(u64::from(status)) && body["message"].is_string();
                if !conductor_error {
                    return Some(format!("{shown}: {status} is not a JSON error: {head}"));
                }
            }
            None
        }));
    }
    let total = handles.len();
    let mut failures = Vec::new();
    for h in handles {
        failures.extend(h.await.expect("request task"));
    }
    eprintln!("{total} hostile requests: {} bodies at each of {} routes", bodies.len(), routes.len());
    assert!(
        failures.is_empty(),
        "seed {seed:#x}: {} of {total} requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let health = overture_tests::send(client().get(format!("{}/health", node.url))).await.json();
    assert_eq!(health["healthy"], true, "the node is still up after {total} hostile requests");
}

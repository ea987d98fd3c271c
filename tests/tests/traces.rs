//! Traces: nodes configured with an OTLP endpoint send the spans of each workflow to it, in the
//! trace of the start request's `traceparent`. The collector here is a small OTLP/HTTP receiver
//! that decodes what arrives (protobuf, or JSON), as a real collector does.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use overture_tests::{Cluster, Node, client, send, send_retrying, wait_for, wait_status_at};
use serde_json::{Value, json};

/// One span as the collector received it.
#[derive(Debug, Clone)]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    attributes: BTreeMap<String, String>,
    /// The resource's `service.name` and `service.instance.id`.
    service: String,
    instance: String,
    start_ns: u128,
    end_ns: u128,
}

/// What the collector received, shared with its handler.
#[derive(Clone, Default)]
struct Spans {
    spans: Arc<Mutex<Vec<Span>>>,
    content_types: Arc<Mutex<BTreeSet<String>>>,
}

impl Spans {
    fn of_trace(&self, trace_id: &str) -> Vec<Span> {
        let spans = self.spans.lock().expect("spans");
        spans.iter().filter(|s| s.trace_id == trace_id).cloned().collect()
    }
}

/// An OTLP/HTTP receiver on a free loopback port: `POST /v1/traces`, protobuf or JSON.
async fn collector() -> (String, Spans, tokio::task::JoinHandle<()>) {
    let spans = Spans::default();
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive)).with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.expect("collector serves");
    });
    (url, spans, server)
}

async fn receive(State(store): State<Spans>, headers: HeaderMap, body: Bytes) -> (StatusCode, Vec<u8>) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let request: Value = if content_type.starts_with("application/json") {
        match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(e) => return (StatusCode::BAD_REQUEST, format!("not JSON: {e}").into_bytes()),
        }
    } else if content_type.starts_with("application/x-protobuf") {
        match ExportTraceServiceRequest::decode(body.as_ref()) {
            Ok(r) => serde_json::to_value(&r).expect("protobuf as JSON"),
            Err(e) => return (StatusCode::BAD_REQUEST, format!("not OTLP protobuf: {e}").into_bytes()),
        }
    } else {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, b"OTLP/HTTP is protobuf or JSON".to_vec());
    };
    let mut received = Vec::new();
    for rs in request["resourceSpans"].as_array().into_iter().flatten() {
        let resource = attributes(&rs["resource"]["attributes"]);
        for ss in rs["scopeSpans"].as_array().into_iter().flatten() {
            for s in ss["spans"].as_array().into_iter().flatten() {
                let text = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
                let nanos = |k: &str| s[k].as_str().and_then(|n| n.parse().ok()).or(s[k].as_u64().map(u128::from));
                received.push(Span {
                    trace_id: text("traceId").to_lowercase(),
                    span_id: text("spanId").to_lowercase(),
                    parent_span_id: text("parentSpanId").to_lowercase(),
                    name: text("name"),
                    attributes: attributes(&s["attributes"]),
                    service: resource.get("service.name").cloned().unwrap_or_default(),
                    instance: resource.get("service.instance.id").cloned().unwrap_or_default(),
                    start_ns: nanos("startTimeUnixNano").unwrap_or_default(),
                    end_ns: nanos("endTimeUnixNano").unwrap_or_default(),
                });
            }
        }
    }
    store.spans.lock().expect("spans").extend(received);
    store.content_types.lock().expect("types").insert(content_type.clone());
    // An empty ExportTraceServiceResponse, in the request's encoding.
    let answer = if content_type.starts_with("application/json") { b"{}".to_vec() } else { Vec::new() };
    (StatusCode::OK, answer)
}

/// OTLP attributes (`[{key, value: {stringValue | intValue | …}}]`) as text.
fn attributes(list: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in list.as_array().into_iter().flatten() {
        let value = kv["value"].as_object().and_then(|v| v.values().next()).cloned().unwrap_or(Value::Null);
        let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
        out.insert(kv["key"].as_str().unwrap_or_default().to_owned(), text);
    }
    out
}

/// 32 hex digits, new each run.
fn random_hex(bytes: usize) -> String {
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    let mut rng = overture_tests::Rng(seed as u64 | 1);
    (0..bytes).map(|_| format!("{:02x}", rng.below(256))).collect()
}

/// Registers a worker task and a workflow: the worker task, then a SET_VARIABLE.
async fn register(url: &str, name: &str, task: &str) {
    let c = client();
    let r = send(c.post(format!("{url}/api/metadata/taskdefs")).json(&json!([{
        "name": task, "retryCount": 0, "responseTimeoutSeconds": 60, "timeoutSeconds": 0
    }])))
    .await;
    assert!(r.status < 300, "{}", r.text);
    let def = json!({
        "name": name, "version": 1, "schemaVersion": 2,
        "tasks": [
            {"name": task, "taskReferenceName": "工作", "type": "SIMPLE"},
            {"name": "set_done", "taskReferenceName": "标记", "type": "SET_VARIABLE", "inputParameters": {"done": true}}
        ]
    });
    let r = send(c.post(format!("{url}/api/metadata/workflow")).json(&def)).await;
    assert!(r.status < 300, "{}", r.text);
}

/// Registers workflow `name`: one SET_VARIABLE.
async fn register_one_step(node: &Node, name: &str) {
    let def = json!({"name": name, "version": 1, "schemaVersion": 2, "tasks": [
        {"name": "x", "taskReferenceName": "x", "type": "SET_VARIABLE", "inputParameters": {"a": 1}}
    ]});
    let r = send(client().post(node.api("/metadata/workflow")).json(&def)).await;
    assert!(r.status < 300, "{}", r.text);
}

/// Polls `task` at `url` until a task comes, and completes it.
async fn work_one(poll_url: &str, update_url: &str, task: &str) -> String {
    let c = client();
    let polled = Arc::new(Mutex::new(Value::Null));
    let got = wait_for(Duration::from_secs(30), || {
        let (c, polled) = (c.clone(), polled.clone());
        let url = format!("{poll_url}/api/tasks/poll/{task}?workerid=tracer-1");
        async move {
            let r = send(c.get(url)).await;
            if r.status == 200 && !r.text.is_empty() {
                *polled.lock().expect("polled") = r.json();
                return true;
            }
            false
        }
    })
    .await;
    assert!(got, "a {task} task was polled");
    let polled = polled.lock().expect("polled").clone();
    let task_id = polled["taskId"].as_str().expect("taskId").to_owned();
    let result = json!({
        "taskId": task_id, "workflowInstanceId": polled["workflowInstanceId"], "status": "COMPLETED",
        "workerId": "tracer-1", "outputData": {"结果": "好"}
    });
    let r = send_retrying(c.post(format!("{update_url}/api/tasks")).json(&result)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    task_id
}

/// Waits until the collector holds spans of `trace_id` that `done` accepts.
async fn wait_spans(spans: &Spans, trace_id: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
    let arrived = wait_for(Duration::from_secs(30), || async { done(&spans.of_trace(trace_id)) }).await;
    let got = spans.of_trace(trace_id);
    assert!(arrived, "the trace's spans did not all arrive; got {got:#?}");
    got
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

/// A workflow started on a three-node cluster with a `traceparent` is one trace: the start
/// request's spans (the node it came to and the leader it was forwarded to), the workflow's root
/// span under them, and under the root its decisions, its worker task's poll and update (polled
/// and reported through other nodes) and its system task, each with its ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_started_with_a_traceparent_is_one_trace_with_its_tasks() {
    let (otlp, spans, collector) = collector().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path(), 3, &format!("[traces]\notlp_endpoint = \"{otlp}\"\n")).await;
    let leader = cluster.wait_leader(Duration::from_secs(30)).await;
    let follower = cluster.other_than(leader);
    let url = |n: usize| cluster.nodes[n - 1].url.clone();
    register(&url(leader), "订单追踪", "trace_work").await;

    let (trace_id, client_span) = (random_hex(16), random_hex(8));
    let traceparent = format!("00-{trace_id}-{client_span}-01");
    let start = client()
        .post(format!("{}/api/workflow/订单追踪", url(follower)))
        .header("traceparent", &traceparent)
        .json(&json!({"客户": "张三"}));
    let r = send_retrying(start).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let workflow_id = r.text.trim().to_owned();
    let third = (1..=3).find(|n| *n != leader && *n != follower).expect("a third node");
    let task_id = work_one(&url(third), &url(follower), "trace_work").await;
    wait_status_at(&url(leader), &workflow_id, "COMPLETED", Duration::from_secs(30)).await;

    let got = wait_spans(&spans, &trace_id, |s| {
        !named(s, "workflow 订单追踪").is_empty()
            && !named(s, "poll trace_work").is_empty()
            && !named(s, "update trace_work").is_empty()
            && !named(s, "SET_VARIABLE 标记").is_empty()
            && s.iter().any(|span| span.parent_span_id == client_span)
    })
    .await;
    let by_id: BTreeMap<&str, &Span> = got.iter().map(|s| (s.span_id.as_str(), s)).collect();

    // The request: the node it came to, under the client's span; the start it forwarded, under that.
    // (The route is the router's pattern: the start by name shares `/workflow/{id}` with reads.)
    let servers: Vec<&Span> = got.iter().filter(|s| s.name == "POST /api/workflow/{id}").collect();
    assert!(!servers.is_empty(), "the start request's span: {got:#?}");
    let first = servers.iter().find(|s| s.parent_span_id == client_span).expect("the receiving node's span");
    assert_eq!(first.attributes.get("http.request.method").map(String::as_str), Some("POST"));
    assert_eq!(first.attributes.get("http.response.status_code").map(String::as_str), Some("200"));

    // The root: the workflow's whole run, under the request's spans, which lead to the client's.
    let root = named(&got, "workflow 订单追踪")[0];
    assert_eq!(root.attributes.get("overture.workflow.id"), Some(&workflow_id));
    assert_eq!(root.attributes.get("overture.workflow.status").map(String::as_str), Some("COMPLETED"));
    let mut up = root.parent_span_id.as_str();
    let mut hops = 0;
    while up != client_span {
        let parent = by_id.get(up).unwrap_or_else(|| panic!("the root's ancestor {up} is in the trace: {got:#?}"));
        assert!(parent.name.starts_with("POST "), "the root hangs from request spans, not {}", parent.name);
        up = parent.parent_span_id.as_str();
        hops += 1;
        assert!(hops < 5, "a cycle of parents");
    }

    // Under the root: the start, the decisions, the task's poll and update, the system task.
    let poll = named(&got, "poll trace_work")[0];
    let update = named(&got, "update trace_work")[0];
    let set = named(&got, "SET_VARIABLE 标记")[0];
    for child in [poll, update, set] {
        assert_eq!(child.parent_span_id, root.span_id, "{} is a child of the workflow's root", child.name);
        assert_eq!(child.attributes.get("overture.workflow.id"), Some(&workflow_id));
        assert!(child.start_ns <= child.end_ns && root.start_ns <= child.start_ns && child.end_ns <= root.end_ns);
    }
    assert_eq!(poll.attributes.get("overture.task.id"), Some(&task_id));
    assert_eq!(poll.attributes.get("overture.task.ref").map(String::as_str), Some("工作"));
    assert_eq!(poll.attributes.get("overture.worker.id").map(String::as_str), Some("tracer-1"));
    assert_eq!(update.attributes.get("overture.task.id"), Some(&task_id));
    assert_eq!(update.attributes.get("overture.task.status").map(String::as_str), Some("COMPLETED"));
    assert!(poll.end_ns <= update.end_ns, "the poll comes before the update");
    assert!(!named(&got, "start 订单追踪").is_empty(), "the start");
    let decides = named(&got, "decide");
    assert!(decides.len() >= 2 && decides.iter().all(|d| d.parent_span_id == root.span_id), "{decides:#?}");
    assert!(got.iter().all(|s| s.service == "overture" && s.instance.starts_with("overture-node-")));

    // Sent as OTLP's default encoding, and counted.
    assert!(spans.content_types.lock().expect("types").contains("application/x-protobuf"));
    let mut exported = 0.0;
    for n in 1..=3 {
        exported += overture_tests::metric_sum(&url(n), "overture_trace_spans_exported_total").await.unwrap_or(0.0);
    }
    assert!(exported >= got.len() as f64, "every span received was counted as sent: {exported}");
    collector.abort();
}

/// Without a `traceparent`, a workflow's trace id is its id; a sub-workflow goes into its
/// parent's trace under the parent's root. Here over OTLP/HTTP JSON, and a request whose
/// `traceparent` is malformed or not sampled starts nothing of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflow_without_a_traceparent_is_traced_under_its_id_with_its_children() {
    let (otlp, spans, collector) = collector().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with_env(
        &dir.path().join("node"),
        &[("OVERTURE_OTLP_ENDPOINT", otlp.as_str()), ("OVERTURE_OTLP_PROTOCOL", "http/json")],
    )
    .await;
    let c = client();
    let child = json!({"name": "子流程", "version": 1, "schemaVersion": 2, "tasks": [
        {"name": "x", "taskReferenceName": "子任务", "type": "SET_VARIABLE", "inputParameters": {"a": 1}}
    ]});
    let parent = json!({"name": "父流程", "version": 1, "schemaVersion": 2, "tasks": [
        {"name": "sub", "taskReferenceName": "调用", "type": "SUB_WORKFLOW", "subWorkflowParam": {"name": "子流程", "version": 1}}
    ]});
    for def in [child, parent] {
        let r = send(c.post(node.api("/metadata/workflow")).json(&def)).await;
        assert!(r.status < 300, "{}", r.text);
    }
    let mut ids = Vec::new();
    for traceparent in ["", "00-not-a-trace-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"] {
        let mut start = c.post(node.api("/workflow/父流程")).json(&json!({}));
        if !traceparent.is_empty() {
            start = start.header("traceparent", traceparent);
        }
        let r = send(start).await;
        assert_eq!(r.status, 200, "{}", r.text);
        ids.push(r.text.trim().to_owned());
    }
    for id in &ids {
        wait_status_at(&node.url, id, "COMPLETED", Duration::from_secs(30)).await;
    }
    for id in &ids {
        let trace_id = id.replace('-', "");
        let got = wait_spans(&spans, &trace_id, |s| {
            named(s, "workflow 父流程").len() == 1 && named(s, "workflow 子流程").len() == 1
        })
        .await;
        let root = named(&got, "workflow 父流程")[0];
        assert_eq!(root.parent_span_id, "", "the parent's root starts its trace");
        assert_eq!(root.attributes.get("overture.workflow.id"), Some(id));
        let child_root = named(&got, "workflow 子流程")[0];
        assert_eq!(child_root.parent_span_id, root.span_id, "the child's root is under the parent's");
        let sub = named(&got, "SUB_WORKFLOW 调用")[0];
        assert_eq!(sub.parent_span_id, root.span_id);
        let set = named(&got, "SET_VARIABLE 子任务")[0];
        assert_eq!(set.parent_span_id, child_root.span_id, "the child's task is under the child's root");
        assert!(got.iter().all(|s| !s.name.starts_with("POST ")), "no request span without a sampled traceparent");
    }
    assert!(spans.content_types.lock().expect("types").iter().all(|t| t.starts_with("application/json")));
    collector.abort();
}

/// A collector that is down costs the node nothing but the spans: workflows run, and the failed
/// sends are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_is_down_loses_spans_not_workflows() {
    // A port that was free a moment ago: nothing listens there.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("address"))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with_env(&dir.path().join("node"), &[("OVERTURE_OTLP_ENDPOINT", closed.as_str())]).await;
    register_one_step(&node, "无人接收").await;
    let c = client();
    let traceparent = format!("00-{}-{}-01", random_hex(16), random_hex(8));
    for _ in 0..5 {
        let r = send(c.post(node.api("/workflow/无人接收")).header("traceparent", &traceparent).json(&json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        wait_status_at(&node.url, r.text.trim(), "COMPLETED", Duration::from_secs(30)).await;
    }
    let failed = wait_for(Duration::from_secs(30), || async {
        overture_tests::metric_sum(&node.url, "overture_trace_export_failures_total").await.is_some_and(|n| n > 0.0)
    })
    .await;
    assert!(failed, "failed sends are counted");
    let dropped = overture_tests::metric_sum(&node.url, "overture_trace_spans_dropped_total").await;
    assert!(dropped.is_some_and(|n| n > 0.0), "{dropped:?}");
    assert_eq!(send(c.get(format!("{}/ready", node.url))).await.status, 200);
}

/// A collector that takes the connection and never answers is given up on after the export
/// timeout (10 s), and sending goes on: later spans are tried, and the failures counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_that_never_answers_is_given_up_on() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let silent = format!("http://{}", listener.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with_env(&dir.path().join("node"), &[("OVERTURE_OTLP_ENDPOINT", silent.as_str())]).await;
    register_one_step(&node, "沉默").await;
    let c = client();
    let start = || async {
        let r = send(c.post(node.api("/workflow/沉默")).json(&json!({}))).await;
        assert_eq!(r.status, 200, "{}", r.text);
        wait_status_at(&node.url, r.text.trim(), "COMPLETED", Duration::from_secs(30)).await;
    };
    start().await;
    let failures = || async { overture_tests::metric_sum(&node.url, "overture_trace_export_failures_total").await };
    assert!(
        wait_for(Duration::from_secs(30), || async { failures().await.is_some_and(|n| n >= 1.0) }).await,
        "the silent collector's batch failed after the timeout"
    );
    // Sending goes on after a batch that timed out: the next one is tried, and fails too.
    start().await;
    assert!(
        wait_for(Duration::from_secs(30), || async { failures().await.is_some_and(|n| n >= 2.0) }).await,
        "the next batch was tried"
    );
    held.abort();
}

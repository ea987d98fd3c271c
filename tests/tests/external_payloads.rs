//! External payload storage through the API of real nodes, as conductor-oss's clients use it:
//! `externalstoragelocation` answers a signed URI, the client puts or gets the payload there
//! with no token, and payloads over their threshold leave the execution's rows.

use std::time::Duration;

use overture_tests::s3::S3Server;
use overture_tests::{Cluster, Node, Reply, client, metric_sum, send, send_retrying, wait_status};
use serde_json::{Value, json};

const MIB: usize = 1 << 20;

/// A JSON object of about `bytes` bytes, with multi-byte text, and its encoding.
fn big_payload(bytes: usize) -> (Value, Vec<u8>) {
    let unit = "订单数据-payload-";
    let text = unit.repeat(bytes / unit.len() + 1);
    let value = json!({"data": text, "中文键": "值"});
    let encoded = serde_json::to_vec(&value).expect("encodes");
    (value, encoded)
}

async fn location(node_api: &str, resource: &str, q: &str) -> Reply {
    send(client().get(format!("{node_api}/{resource}/externalstoragelocation?{q}"))).await
}

async fn poll(node: &Node, task_type: &str) -> Value {
    let c = client();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = send(c.get(node.api(&format!("/tasks/poll/{task_type}?workerid=w1"))).timeout(Duration::from_secs(60)))
            .await;
        if r.status == 200 {
            return r.json();
        }
        assert!(std::time::Instant::now() < deadline, "no {task_type} task to poll: {} {}", r.status, r.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn register_pipeline(name: &str) -> Value {
    json!({"name": name, "version": 1, "ownerEmail": "t@example.com", "tasks": [
        {"name": "produce", "taskReferenceName": "produce", "type": "SIMPLE"},
        {"name": "consume", "taskReferenceName": "consume", "type": "SIMPLE",
         "inputParameters": {"data": "${produce.output.data}", "键": "${produce.output.中文键}"}}
    ]})
}

/// Completes the `produce` task of workflow `id` with `payload`: uploaded first as the Java SDK
/// does (WRITE location, PUT to the URI without a token, `externalOutputPayloadStoragePath` in
/// the result), or inline as the Python and JavaScript SDKs send it.
async fn produce(node: &Node, id: &str, upload: bool, payload: &Value, encoded: &[u8]) {
    let c = client();
    let produce = poll(node, "produce").await;
    let task_id = produce["taskId"].as_str().expect("task id");
    let result = if upload {
        let r = location(&node.api(""), "tasks", "path=&operation=WRITE&payloadType=TASK_OUTPUT").await;
        assert_eq!(r.status, 200, "{}", r.text);
        let loc = r.json();
        let (uri, path) = (loc["uri"].as_str().expect("uri"), loc["path"].as_str().expect("path"));
        assert!(path.starts_with("task/output/") && path.ends_with(".json"), "{path}");
        // Java's HttpURLConnection sends a form content type and no token.
        let put = c
            .put(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encoded.to_vec())
            .timeout(Duration::from_secs(120));
        let r = send(put).await;
        assert_eq!(r.status, 200, "{}", r.text);
        json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED",
               "outputData": {}, "externalOutputPayloadStoragePath": path})
    } else {
        json!({"workflowInstanceId": id, "taskId": task_id, "status": "COMPLETED", "outputData": payload})
    };
    let r = send(c.post(node.api("/tasks")).json(&result).timeout(Duration::from_secs(120))).await;
    assert_eq!(r.status, 200, "upload={upload}: {}", r.text);
}

/// Polls the `consume` task of workflow `id` and checks its worker got `payload`'s data inline;
/// that the API shows the first task's output and this task's input stored elsewhere, by path,
/// and a READ location gives them back; then completes it and the workflow. Answers the READ
/// location's URI of the stored output.
async fn consume(node: &Node, id: &str, payload: &Value) -> String {
    let c = client();
    let consume = poll(node, "consume").await;
    assert_eq!(consume["inputData"]["data"], payload["data"], "the next task reads it");
    assert_eq!(consume["inputData"]["键"], "值");
    assert!(consume.get("externalInputPayloadStoragePath").is_none(), "a worker gets the content inline");

    let wf = send(c.get(node.api(&format!("/workflow/{id}?includeTasks=true")))).await.json();
    let tasks = wf["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[0]["outputData"], json!({}));
    let out_path = tasks[0]["externalOutputPayloadStoragePath"].as_str().expect("output stored elsewhere");
    assert_eq!(tasks[1]["inputData"], json!({}));
    let in_path = tasks[1]["externalInputPayloadStoragePath"].as_str().expect("input stored elsewhere");
    assert_ne!(out_path, in_path);
    let r = location(&node.api(""), "tasks", &format!("path={out_path}&operation=READ&payloadType=TASK_OUTPUT")).await;
    let out_uri = r.json()["uri"].as_str().expect("uri").to_owned();
    let stored = send(c.get(&out_uri).timeout(Duration::from_secs(120))).await;
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(serde_json::from_str::<Value>(&stored.text).expect("JSON"), *payload);
    let r = location(&node.api(""), "workflow", &format!("path={in_path}&operation=read&payloadType=task_input")).await;
    let stored = send(c.get(r.json()["uri"].as_str().expect("uri")).timeout(Duration::from_secs(120))).await.json();
    assert_eq!(stored["data"], payload["data"]);

    let done = json!({"workflowInstanceId": id, "taskId": consume["taskId"], "status": "COMPLETED",
                      "outputData": {"done": true}});
    assert_eq!(send(c.post(node.api("/tasks")).json(&done)).await.status, 200);
    let wf = wait_status(node, id, "COMPLETED", Duration::from_secs(20)).await;
    assert_eq!(wf["output"]["done"], true);
    out_uri
}

/// The must-show: a 20 MB task output goes through external storage and the next task reads
/// it, uploaded by the worker (the Java SDK's way) and sent inline (the node offloads it); the
/// second time the node is killed (-9) and restarted in between, and loads the stored payload back.
#[tokio::test]
async fn a_20_mb_task_output_goes_through_external_storage_and_the_next_task_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let max = (32 * MIB).to_string();
    // conductor-oss's maximums (10 MiB) raised, there as here, for a 20 MB payload.
    let env = [("OVERTURE_MAX_TASK_OUTPUT_BYTES", max.as_str()), ("OVERTURE_MAX_TASK_INPUT_BYTES", max.as_str())];
    let data = dir.path().join("n");
    let mut node = Node::start_with_env(&data, &env).await;
    let c = client();
    let r = send(c.post(node.api("/metadata/workflow")).json(&register_pipeline("big_pipeline"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (payload, encoded) = big_payload(20 * MIB);
    assert!(encoded.len() >= 20 * MIB);

    let id = send(c.post(node.api("/workflow/big_pipeline")).json(&json!({}))).await.text;
    produce(&node, &id, true, &payload, &encoded).await;
    let uri = consume(&node, &id, &payload).await;
    assert_eq!(send(c.get(&uri)).await.content_type.as_deref(), Some("application/json"));
    // The worker stored the output; the node stored the next task's input.
    assert_eq!(metric_sum(&node.url, "overture_external_payloads_offloaded_total").await, Some(1.0));
    let stored = metric_sum(&node.url, "overture_external_payload_bytes_stored_total").await.unwrap_or(0.0);
    assert!(stored >= 2.0 * (20 * MIB) as f64, "{stored}");

    let id = send(c.post(node.api("/workflow/big_pipeline")).json(&json!({}))).await.text;
    produce(&node, &id, false, &payload, &encoded).await;
    // Acknowledged is durable, and a restarted node loads stored payloads back to decide.
    node.kill9().await;
    let node = Node::start_with_env(&data, &env).await;
    consume(&node, &id, &payload).await;
    assert!(metric_sum(&node.url, "overture_external_payloads_loaded_total").await.unwrap_or(0.0) >= 1.0);
}

/// With `storage = "s3"` payloads go to an S3-compatible bucket (s3rver): `externalstoragelocation`
/// answers presigned bucket URLs, the node stores what it offloads there and reads it back after a
/// restart. (s3rver checks a presigned URL's access key but not its V4 signature; the signature
/// itself is pinned to AWS's published example in `actors/src/payloads/s3.rs`.)
#[tokio::test]
async fn payloads_go_to_an_s3_bucket_when_configured() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s3 = S3Server::start(&dir.path().join("s3"), "overture-payloads").await;
    let env = [
        ("OVERTURE_PAYLOAD_STORAGE", "s3"),
        ("OVERTURE_S3_ENDPOINT", s3.endpoint.as_str()),
        ("OVERTURE_S3_BUCKET", s3.bucket.as_str()),
        ("OVERTURE_S3_ACCESS_KEY", S3Server::KEY),
        ("OVERTURE_S3_SECRET_KEY", S3Server::KEY),
        ("OVERTURE_S3_PREFIX", "conductor/"),
    ];
    let data = dir.path().join("n");
    let mut node = Node::start_with_env(&data, &env).await;
    let c = client();
    assert_eq!(send(c.get(node.api("/admin/config"))).await.json()["externalPayloadStorage"], "s3");
    let r = send(c.post(node.api("/metadata/workflow")).json(&register_pipeline("s3_pipeline"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (payload, encoded) = big_payload(4 * MIB);

    let r = location(&node.api(""), "tasks", "path=&operation=WRITE&payloadType=TASK_OUTPUT").await;
    let uri = r.json()["uri"].as_str().expect("uri").to_owned();
    let bucket_prefix = format!("{}/overture-payloads/conductor/task/output/", s3.endpoint);
    assert!(uri.starts_with(&bucket_prefix) && uri.contains("X-Amz-Signature="), "{uri}");
    let stranger = uri.replace("X-Amz-Credential=S3RVER", "X-Amz-Credential=STRANGER");
    assert_eq!(send(c.put(&stranger).body("{}")).await.status, 403, "the bucket checks the key");

    let id = send(c.post(node.api("/workflow/s3_pipeline")).json(&json!({}))).await.text;
    produce(&node, &id, true, &payload, &encoded).await;
    let out_uri = consume(&node, &id, &payload).await;
    assert!(out_uri.starts_with(&bucket_prefix), "{out_uri}");

    let id = send(c.post(node.api("/workflow/s3_pipeline")).json(&json!({}))).await.text;
    produce(&node, &id, false, &payload, &encoded).await;
    node.kill9().await;
    node = Node::start_with_env(&data, &env).await;
    let out_uri = consume(&node, &id, &payload).await;
    assert!(out_uri.starts_with(&bucket_prefix), "the node stored the output in the bucket: {out_uri}");
    assert!(metric_sum(&node.url, "overture_external_payloads_loaded_total").await.unwrap_or(0.0) >= 1.0);
}

/// The location routes answer as conductor-oss's, the URIs carry their own authority (a node
/// with API keys serves them without a token, and refuses one altered), a path is written once,
/// and every bad input gets a 4xx that says what to do.
#[tokio::test]
async fn locations_and_uris_refuse_what_they_should() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::start_with_env(&dir.path().join("n"), &[("OVERTURE_API_KEYS", "ops:secret-12345")]).await;
    let c = client();
    let token = send(c.post(node.api("/token")).json(&json!({"keyId": "ops", "keySecret": "secret-12345"})))
        .await
        .json()["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let get = |path: &str| c.get(node.api(path)).header("X-Authorization", token.clone());
    assert_eq!(
        send(c.get(node.api("/workflow/externalstoragelocation?path=&operation=WRITE&payloadType=WORKFLOW_INPUT")))
            .await
            .status,
        401
    );

    let r = send(get("/workflow/externalstoragelocation?path=x&operation=DELETE&payloadType=WORKFLOW_INPUT")).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"].as_str().expect("message").starts_with("Invalid input - Operation: DELETE"),
        "{}",
        r.text
    );
    let r = send(get("/tasks/external-storage-location?path=x&operation=READ&payloadType=LOGS")).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = send(get("/tasks/externalstoragelocation?operation=READ&payloadType=TASK_INPUT")).await;
    assert_eq!(r.status, 400, "a READ needs a path: {}", r.text);
    let r = send(get("/tasks/externalstoragelocation?path=../x&operation=WRITE&payloadType=TASK_INPUT")).await;
    assert_eq!(r.status, 400, "{}", r.text);

    // A path the client picks, in Chinese, through the hyphenated alias.
    let r =
        send(get("/workflow/external-storage-location?path=订单/输入.json&operation=WRITE&payloadType=WORKFLOW_INPUT"))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let write = r.json();
    assert_eq!(write["path"], "订单/输入.json");
    let uri = write["uri"].as_str().expect("uri").to_owned();
    assert!(uri.starts_with(&node.url) && uri.contains("/api/external-payloads/"), "{uri}");

    let tampered = uri.replace("operation=WRITE", "operation=READ");
    assert_eq!(send(c.put(&tampered).body("{}")).await.status, 403);
    // The signature's last hex digit changed (to one it is not).
    let other = if uri.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{other}", &uri[..uri.len() - 1]);
    assert_eq!(send(c.put(&forged).body("{}")).await.status, 403);
    assert_eq!(send(c.get(&uri)).await.status, 403, "a WRITE URI does not read");
    let r = send(c.put(&uri).body("[1, 2]")).await;
    assert_eq!(r.status, 400, "a payload is a JSON object: {}", r.text);
    let r = send(c.put(&uri).body(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)))).await;
    assert_eq!(r.status, 400, "deeply nested: {}", r.text);
    assert_eq!(send(c.put(&uri).body(r#"{"名字":"张三"}"#)).await.status, 200);
    let r = send(c.put(&uri).body(r#"{"名字":"李四"}"#)).await;
    assert_eq!(r.status, 409, "a path is written once: {}", r.text);

    let r =
        send(get("/workflow/externalstoragelocation?path=订单/输入.json&operation=READ&payloadType=WORKFLOW_INPUT"))
            .await;
    let read_uri = r.json()["uri"].as_str().expect("uri").to_owned();
    assert_eq!(send(c.get(&read_uri)).await.json(), json!({"名字": "张三"}));
    // A start whose input the client stored (the Java SDK's `startWorkflow` over its threshold).
    let def = json!({"name": "greet", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.名字}"}}],
        "outputParameters": {"who": "${workflow.variables.who}"}});
    let post = |path: &str| c.post(node.api(path)).header("X-Authorization", token.clone());
    assert_eq!(send(post("/metadata/workflow").json(&def)).await.status, 200);
    let start = json!({"name": "greet", "input": {}, "externalInputPayloadStoragePath": "订单/输入.json"});
    let id = send(post("/workflow").json(&start)).await.text;
    let mut wf = Value::Null;
    for _ in 0..200 {
        wf = send(get(&format!("/workflow/{id}"))).await.json();
        if wf["status"] == "COMPLETED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wf["output"]["who"], "张三");
    assert_eq!(wf["input"], json!({}));
    assert_eq!(wf["externalInputPayloadStoragePath"], "订单/输入.json");
    let start = json!({"name": "greet", "externalInputPayloadStoragePath": "订单/没有.json"});
    let r = send(post("/workflow").json(&start)).await;
    assert_eq!(r.status, 400, "{}", r.text);

    let r =
        send(get("/workflow/externalstoragelocation?path=nothing/here.json&operation=READ&payloadType=WORKFLOW_INPUT"))
            .await;
    assert_eq!(send(c.get(r.json()["uri"].as_str().expect("uri"))).await.status, 404);

    // A result naming a payload that was never stored.
    let r = send(c.post(node.api("/tasks")).header("X-Authorization", token.clone()).json(&json!({
        "workflowInstanceId": "w", "taskId": "t", "status": "COMPLETED", "externalOutputPayloadStoragePath": "task/output/none.json"
    })))
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("No payload is stored at task/output/none.json"), "{}", r.text);
}

/// In a three-node cluster a payload uploaded through one follower's URI is read through every
/// node, and removing the execution that stored payloads elsewhere removes them.
#[tokio::test]
async fn payloads_are_replicated_and_removed_with_their_execution() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = Cluster::start(dir.path(), 3, "[payloads]\ntask_output_threshold_bytes = 1024\n").await;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let follower = cluster.other_than(leader);
    let c = client();
    let q = "path=&operation=WRITE&payloadType=TASK_OUTPUT";
    let loc = send_retrying(c.get(cluster.api(follower, &format!("/tasks/externalstoragelocation?{q}")))).await.json();
    let (payload, encoded) = big_payload(3 * MIB);
    let r = send_retrying(c.put(loc["uri"].as_str().expect("uri")).body(encoded.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let path = loc["path"].as_str().expect("path");
    for n in 1..=3 {
        let q = format!("path={path}&operation=READ&payloadType=TASK_OUTPUT");
        let loc = send_retrying(c.get(cluster.api(n, &format!("/tasks/externalstoragelocation?{q}")))).await.json();
        let r = send_retrying(c.get(loc["uri"].as_str().expect("uri"))).await;
        assert_eq!(r.status, 200, "node {n}: {}", r.text);
        assert_eq!(serde_json::from_str::<Value>(&r.text).expect("JSON"), payload, "node {n}");
    }

    // An output over the (lowered) threshold is stored elsewhere; removing the execution removes it.
    let def = json!({"name": "small_out", "version": 1, "tasks": [
        {"name": "emit", "taskReferenceName": "emit", "type": "INLINE", "inputParameters": {
            "evaluatorType": "graaljs", "expression": "({text: 'x'.repeat(4096)})"}}]});
    assert_eq!(send_retrying(c.post(cluster.api(leader, "/metadata/workflow")).json(&def)).await.status, 200);
    let id = send_retrying(c.post(cluster.api(follower, "/workflow/small_out")).json(&json!({}))).await.text;
    let wf =
        overture_tests::wait_status_at(&cluster.nodes[follower - 1].url, &id, "COMPLETED", Duration::from_secs(20))
            .await;
    let stored = wf["tasks"][0]["externalOutputPayloadStoragePath"].as_str().expect("stored elsewhere").to_owned();
    assert_eq!(wf["tasks"][0]["outputData"], json!({}));
    let q = format!("path={stored}&operation=READ&payloadType=TASK_OUTPUT");
    let loc = send_retrying(c.get(cluster.api(follower, &format!("/tasks/externalstoragelocation?{q}")))).await.json();
    let uri = loc["uri"].as_str().expect("uri").to_owned();
    assert_eq!(send_retrying(c.get(&uri)).await.json()["result"]["text"].as_str().map(str::len), Some(4096));
    let r = send_retrying(c.delete(cluster.api(follower, &format!("/workflow/{id}/remove")))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(send_retrying(c.get(&uri)).await.status, 404, "removed with its execution");
}

//! Secrets and environment variables through the API of a real node: `${workflow.env.NAME}`
//! resolves when a task is scheduled; `${workflow.secrets.NAME}` reaches the server an HTTP task
//! calls and appears in no API response, UI page or log line.

use std::time::Duration;

use overture_tests::{Node, client, send, wait_status};
use serde_json::json;

#[tokio::test]
async fn a_secret_in_an_http_header_reaches_the_server_and_nothing_else() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("node");
    // Debug logs: the strictest check that no line carries the secret.
    let node = Node::start_with_env(&data, &[("RUST_LOG", "debug,openraft=info,h2=info,hyper=info")]).await;
    let c = client();
    let secret = format!("sk-秘密-{}", std::process::id());
    let r = send(c.put(node.api("/secrets/payment_key")).body(secret.clone())).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(c.put(node.api("/environment/region")).body("huadong")).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (server, heads) = overture_tests::echo::recording().await;
    let def = json!({"name": "pay", "version": 1, "tasks": [{
        "name": "charge", "taskReferenceName": "charge", "type": "HTTP",
        "inputParameters": {"http_request": {
            "uri": format!("{server}/charge?region=${{workflow.env.region}}"), "method": "POST",
            "headers": {"Authorization": "Bearer ${workflow.secrets.payment_key}"},
            "body": {"金额": 42}
        }}
    }]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    let id = send(c.post(node.api("/workflow/pay")).json(&json!({}))).await.text;
    let done = wait_status(&node, &id, "COMPLETED", Duration::from_secs(20)).await;

    let seen = heads.lock().expect("heads").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].starts_with("POST /charge?region=huadong "), "the environment variable resolved: {}", seen[0]);
    assert!(
        seen[0].lines().any(|l| l.eq_ignore_ascii_case(&format!("authorization: Bearer {secret}"))),
        "the secret reached the server: {}",
        seen[0]
    );
    let task = &done["tasks"][0];
    assert_eq!(task["inputData"]["http_request"]["headers"]["Authorization"], "Bearer ${workflow.secrets.payment_key}");
    let task_id = task["taskId"].as_str().expect("task id");

    // Every read a client or the UI makes of this execution, its definition and the stores.
    let reads = [
        format!("/workflow/{id}"),
        format!("/workflow/{id}?includeTasks=true"),
        format!("/workflow/{id}/history"),
        format!("/workflow/{id}/tasks"),
        format!("/tasks/{task_id}"),
        format!("/tasks/{task_id}/log"),
        "/workflow/search?query=workflowType%3D%27pay%27".to_owned(),
        "/workflow/search-v2?query=workflowType%3D%27pay%27".to_owned(),
        "/tasks/search?query=taskType%3D%27HTTP%27".to_owned(),
        "/tasks/search-v2?query=taskType%3D%27HTTP%27".to_owned(),
        "/metadata/workflow/pay".to_owned(),
        "/secrets".to_owned(),
        "/secrets/v2".to_owned(),
        "/secrets/payment_key".to_owned(),
        "/secrets/payment_key/exists".to_owned(),
        "/environment".to_owned(),
        "/admin/config".to_owned(),
    ];
    for path in reads {
        let r = send(c.get(node.api(&path))).await;
        assert!(!r.text.contains(&secret), "GET /api{path} shows the secret: {}", r.text);
    }
    let r = send(c.get(node.api("/secrets/payment_key"))).await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(send(c.get(node.api("/secrets"))).await.json(), json!(["payment_key"]));
    assert_eq!(send(c.get(node.api("/secrets/payment_key/exists"))).await.json(), json!(true));
    assert_eq!(send(c.get(node.api("/environment/region"))).await.text, "huadong");
    for page in ["/", "/metrics"] {
        let r = send(c.get(format!("{}{page}", node.url))).await;
        assert!(!r.text.contains(&secret), "{page} shows the secret");
    }
    let metrics = send(c.get(format!("{}/metrics", node.url))).await.text;
    assert!(metrics.lines().any(|l| l.starts_with("overture_secrets_substituted_total 1")), "counted");

    assert_eq!(send(c.delete(node.api("/secrets/payment_key"))).await.status, 200);
    assert_eq!(send(c.get(node.api("/secrets/payment_key/exists"))).await.json(), json!(false));
    assert_eq!(send(c.delete(node.api("/secrets/payment_key"))).await.status, 404);
    assert_eq!(send(c.put(node.api("/secrets/bad%20name")).body("x")).await.status, 400);
    assert_eq!(send(c.put(node.api("/secrets/empty")).body("")).await.status, 400);

    let log = std::fs::read_to_string(data.with_extension("log")).expect("node log");
    assert!(log.lines().count() > 10, "the node logged at debug level");
    assert!(!log.contains(&secret), "a log line shows the secret");
}

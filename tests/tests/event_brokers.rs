//! Event queues on real message brokers, driven by the brokers' own clients: NATS core and
//! JetStream (Debian's nats-server; the official nats-py client publishes and subscribes),
//! RabbitMQ (Debian's rabbitmq-server; pika), Kafka (Tansu, a Kafka-protocol broker; Confluent's
//! client, librdkafka, produces and consumes) and SQS (moto's server; AWS's boto3).

use std::collections::BTreeMap;
use std::time::Duration;

use overture_tests::brokers::{MotoServer, NatsServer, RabbitMq, Tansu};
use overture_tests::{
    Cluster, Node, client, metric_sum, send, send_retrying, spawn_python_sdk, wait_for, wait_for_python_line,
};
use serde_json::{Value, json};

/// conductor-oss's prefix of `jsm:` subjects (app id `conductor`, stack `test`), Overture's default.
const JSM_PREFIX: &str = "conductor_jsm_notify_test_";

/// Waits until `/event/queues` says handler `name`'s queue has nothing waiting (`lag` 0, which the
/// broker reports; `null` where it cannot say) and answers its row.
async fn caught_up(node: &Node, name: &str) -> Value {
    let row = || async {
        let queues = send(client().get(node.api("/event/queues"))).await.json();
        queues.as_array().and_then(|q| q.iter().find(|h| h["name"] == name)).cloned().unwrap_or_default()
    };
    let zero = wait_for(Duration::from_secs(15), || async { row().await["lag"] == 0 }).await;
    let last = row().await;
    assert!(zero, "the broker's count of {name}'s waiting messages comes to 0: {last}");
    last
}

/// Waits until the leader consumes `n` queues of `kind`.
async fn wait_consumers(node: &Node, kind: &str, n: f64) {
    let url = node.url.clone();
    let name = format!("overture_event_queue_consumers{{queueType=\"{kind}\"}}");
    let ok = wait_for(Duration::from_secs(20), || {
        let (url, name) = (url.clone(), name.clone());
        async move { metric_sum(&url, &name).await == Some(n) }
    })
    .await;
    assert!(ok, "the leader does not consume {n} {kind} queue(s)");
}

/// Workflows of `name` by correlation id, with their statuses (searched a page of 5,000 at a time).
async fn by_correlation(node: &Node, name: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for page in 0.. {
        let q = format!("/workflow/search?start={}&size=5000&query=workflowType%3D%27{name}%27", page * 5000);
        let found = send(client().get(node.api(&q))).await.json();
        let results = found["results"].as_array().cloned().unwrap_or_default();
        for w in &results {
            let cid = w["correlationId"].as_str().unwrap_or_default().to_owned();
            out.entry(cid).or_default().push(w["status"].as_str().unwrap_or_default().to_owned());
        }
        if results.len() < 5000 {
            break;
        }
    }
    out
}

/// The `greeted` workflows by correlation id once `done` holds of them (or as they are after
/// `timeout`).
async fn until(
    timeout: Duration,
    node: &Node,
    done: impl Fn(&BTreeMap<String, Vec<String>>) -> bool,
) -> BTreeMap<String, Vec<String>> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let seen = by_correlation(node, "greeted").await;
        if done(&seen) || std::time::Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The JSON messages a subscriber script printed, once it has ended.
async fn received(subscriber: tokio::process::Child) -> Vec<Value> {
    let out =
        tokio::time::timeout(Duration::from_secs(60), subscriber.wait_with_output()).await.expect("ends").expect("ran");
    String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Waits until `n` `greeted` workflows exist, one COMPLETED per correlation id.
async fn one_completed_each(node: &Node, n: usize) {
    let done = |seen: &BTreeMap<String, Vec<String>>| seen.len() == n && seen.values().all(|s| s == &["COMPLETED"]);
    let seen = until(Duration::from_secs(30), node, done).await;
    assert!(done(&seen), "one COMPLETED workflow per message: {seen:?}");
}

async fn publish(url: &str, subject: &str, body: &str, extra: &[&str]) {
    let mut args = vec!["publish", url, subject, body];
    args.extend_from_slice(extra);
    let mut child = spawn_python_sdk("nats_client.py", &args);
    let status =
        tokio::time::timeout(Duration::from_secs(60), child.wait()).await.expect("publisher ends").expect("ran");
    assert!(status.success(), "nats_client.py publish {subject} failed");
}

fn started_by(name: &str, event: &str) -> Value {
    json!({"name": name, "event": event, "active": true, "actions": [{"action": "start_workflow",
        "start_workflow": {"name": "greeted", "correlationId": "${id}", "input": {"who": "${who}"}}}]})
}

/// A message published with the broker's own client starts a workflow through an event handler,
/// on NATS core and on JetStream; EVENT tasks publish to both, and the broker's client receives
/// the message; a message that is not JSON is counted and dropped; queue types not served are
/// refused at registration.
#[tokio::test]
async fn nats_and_jetstream_messages_start_workflows_and_event_tasks_publish_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start(&dir.path().join("nats")).await;
    let node = Node::start_with_env(
        &dir.path().join("n"),
        &[("OVERTURE_NATS_URL", nats.url.as_str()), ("OVERTURE_JSM_URL", nats.url.as_str())],
    )
    .await;
    let c = client();
    let greeted = json!({"name": "greeted", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}],
        "outputParameters": {"who": "${workflow.variables.who}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&greeted)).await.status, 200);
    for (name, event) in [("from_nats", "nats:orders.new"), ("from_jsm", "jsm:payments.in")] {
        let r = send(c.post(node.api("/event")).json(&started_by(name, event))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = send(c.post(node.api("/event")).json(&started_by("from_kafka", "kafka:payments"))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("kafka is not configured"), "{}", r.text);
    let r = send(c.post(node.api("/event")).json(&started_by("from_stan", "nats_stream:payments"))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("nats_stream are not supported") && r.text.contains("use jsm:"), "{}", r.text);
    wait_consumers(&node, "nats", 1.0).await;
    wait_consumers(&node, "jsm", 1.0).await;

    publish(&nats.url, "orders.new", "not json", &[]).await;
    publish(&nats.url, "orders.new", r#"{"who": "张三", "id": "nats-1"}"#, &[]).await;
    // conductor-oss's default prefix of JetStream subjects, as its producers publish them.
    let payments = format!("{JSM_PREFIX}payments.in");
    publish(&nats.url, &payments, r#"{"who": "李四", "id": "jsm-{i}"}"#, &["--jetstream", "--count", "20"]).await;
    one_completed_each(&node, 21).await;
    let wf = send(c.get(node.api("/workflow/greeted/correlated/nats-1?includeClosed=true"))).await.json();
    assert_eq!(wf[0]["output"]["who"], "张三");
    assert_eq!(wf[0]["input"]["conductor.event.name"], "nats:orders.new");
    let invalid =
        metric_sum(&node.url, "overture_event_queue_messages_processed_total{queueType=\"nats\",outcome=\"invalid\"}")
            .await;
    assert_eq!(invalid, Some(1.0), "the message that is not JSON was counted and dropped");
    let queues = send(c.get(node.api("/event/queues"))).await.json();
    let row = queues.as_array().and_then(|q| q.iter().find(|h| h["name"] == "from_nats")).cloned().unwrap_or_default();
    assert_eq!(
        (row["consuming"].as_bool(), row["handled"].as_u64(), row["invalid"].as_u64()),
        (Some(true), Some(1), Some(1)),
        "{row}"
    );
    assert!(row["lastError"].as_str().is_some_and(|e| e.contains("is not JSON")), "{row}");
    assert_eq!(row["lag"], Value::Null, "NATS core keeps nothing to count");
    assert_eq!(caught_up(&node, "from_jsm").await["handled"], 20);

    // EVENT tasks publish on both; a core subscriber of the subjects receives both messages.
    let notify = json!({"name": "notify", "version": 1, "tasks": [
        {"name": "to_nats", "taskReferenceName": "to_nats", "type": "EVENT", "sink": "nats:orders.done",
         "inputParameters": {"订单": "${workflow.input.order}"}},
        {"name": "to_jsm", "taskReferenceName": "to_jsm", "type": "EVENT", "sink": "jsm:orders.done",
         "inputParameters": {"订单": "${workflow.input.order}", "again": true}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&notify)).await.status, 200);
    let subjects = format!("orders.done,{JSM_PREFIX}orders.done");
    let mut subscriber = spawn_python_sdk("nats_client.py", &["subscribe", &nats.url, &subjects, "2"]);
    wait_for_python_line(&mut subscriber, "READY", Duration::from_secs(30)).await;
    let id = send(c.post(node.api("/workflow/notify")).json(&json!({"order": "订单-42"}))).await.text;
    let wf = overture_tests::wait_status(&node, &id, "COMPLETED", Duration::from_secs(30)).await;
    let received = received(subscriber).await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert!(received.iter().all(|m| m["订单"] == "订单-42" && m["workflowInstanceId"] == id.as_str()), "{received:?}");
    let tasks = wf["tasks"].as_array().expect("tasks");
    assert_eq!(tasks[0]["outputData"]["event_produced"], "nats:orders.done");
    assert_eq!(tasks[1]["outputData"]["event_produced"], "jsm:orders.done");
    assert_eq!(tasks[1]["outputData"]["sequence"], 1, "JetStream's acknowledgement: {}", tasks[1]["outputData"]);
}

/// The leader of a three-node cluster is killed (-9) while JetStream messages flow through a
/// handler that starts workflows: the new leader's consumer gets what the old one had not
/// acknowledged, and every message starts its workflow exactly once. 2,000 messages here;
/// `OVERTURE_BROKER_MESSAGES=10000` runs the long version.
#[tokio::test]
async fn leader_killed_while_jetstream_messages_flow_starts_each_workflow_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let nats = NatsServer::start(&dir.path().join("nats")).await;
    let config = format!("[event_queues.jsm]\nurl = \"{}\"\nack_wait_seconds = 3\nmax_deliver = -1\n", nats.url);
    let handler = started_by("from_jsm", "jsm:orders.in");
    let (mut cluster, leader) = cluster_with_handler(dir.path(), &config, &handler).await;
    wait_consumers(&cluster.nodes[leader - 1], "jsm", 1.0).await;

    let n = failover_messages();
    let count = n.to_string();
    let subject = format!("{JSM_PREFIX}orders.in");
    let publisher = tokio::spawn({
        let url = nats.url.clone();
        async move { publish(&url, &subject, r#"{"who": "w", "id": "m-{i}"}"#, &["--jetstream", "--count", &count]).await }
    });
    kill_leader_while_flowing(&mut cluster, leader, "jsm", n, publisher).await;
}

/// An EVENT task whose broker is down waits and tries again (counted in
/// `overture_event_queue_publish_failed_total`), and completes once the broker is back; the
/// workflows that do not use it are not held up.
#[tokio::test]
async fn an_event_task_waits_for_a_broker_that_is_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = NatsServer::free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let node = Node::start_with_env(&dir.path().join("n"), &[("OVERTURE_JSM_URL", url.as_str())]).await;
    let c = client();
    let def = json!({"name": "audit", "version": 1, "tasks": [{"name": "out", "taskReferenceName": "out",
        "type": "EVENT", "sink": "jsm:audit.log", "inputParameters": {"what": "${workflow.input.what}"}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&def)).await.status, 200);
    let id = send(c.post(node.api("/workflow/audit")).json(&json!({"what": "登录"}))).await.text;
    let failed = "overture_event_queue_publish_failed_total{queueType=\"jsm\"}";
    let node_url = node.url.clone();
    let tried = wait_for(Duration::from_secs(30), || {
        let node_url = node_url.clone();
        async move { metric_sum(&node_url, failed).await.unwrap_or(0.0) >= 1.0 }
    })
    .await;
    assert!(tried, "the publish was tried and failed");
    let other = json!({"name": "plain", "version": 1, "tasks": [{"name": "v", "taskReferenceName": "v",
        "type": "SET_VARIABLE", "inputParameters": {"x": 1}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&other)).await.status, 200);
    let plain = send(c.post(node.api("/workflow/plain")).json(&json!({}))).await.text;
    overture_tests::wait_status(&node, &plain, "COMPLETED", Duration::from_secs(10)).await;
    let wf = send(c.get(node.api(&format!("/workflow/{id}")))).await.json();
    assert_eq!(wf["status"], "RUNNING", "the EVENT task waits for its broker");

    let _nats = NatsServer::start_on(&dir.path().join("nats"), port).await;
    let wf = overture_tests::wait_status(&node, &id, "COMPLETED", Duration::from_secs(40)).await;
    let out = &wf["tasks"][0]["outputData"];
    assert_eq!(out["subject"], format!("{JSM_PREFIX}audit.log"));
    assert_eq!(out["sequence"], 1, "{out}");
}

/// Runs a broker client to its end (at most 5 minutes: the long failover runs publish 10,000
/// messages, which moto takes minutes to accept).
async fn run_client(script: &str, args: &[&str]) {
    let mut child = spawn_python_sdk(script, args);
    let status = tokio::time::timeout(Duration::from_secs(300), child.wait()).await.expect("client ends").expect("ran");
    assert!(status.success(), "{script} {} failed", args.first().copied().unwrap_or_default());
}

/// RabbitMQ: messages pika publishes to a queue and to a topic exchange start workflows through
/// handlers on `amqp_queue:` and `amqp_exchange:` (each message once, by its message id); an
/// EVENT task's message on `amqp_queue:` reaches a pika consumer, after the broker confirmed it.
#[tokio::test]
async fn amqp_queues_and_exchanges_start_workflows_and_event_tasks_publish_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rabbit = RabbitMq::start(&dir.path().join("rabbit")).await;
    let node = Node::start_with_env(&dir.path().join("n"), &[("OVERTURE_AMQP_URL", rabbit.url.as_str())]).await;
    let c = client();
    let greeted = json!({"name": "greeted", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}],
        "outputParameters": {"who": "${workflow.variables.who}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&greeted)).await.status, 200);
    for (name, event) in [
        ("from_queue", "amqp_queue:orders.new"),
        ("from_exchange", "amqp_exchange:events?exchangeType=topic&routingKey=payments.#"),
    ] {
        let r = send(c.post(node.api("/event")).json(&started_by(name, event))).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    wait_consumers(&node, "amqp_queue", 1.0).await;
    wait_consumers(&node, "amqp_exchange", 1.0).await;

    run_client(
        "amqp_client.py",
        &["publish", &rabbit.url, "orders.new", r#"{"who": "王五", "id": "q-{i}"}"#, "--count", "5"],
    )
    .await;
    let exchange_args =
        ["publish-exchange", &rabbit.url, "events", "payments.eu", r#"{"who": "赵六", "id": "x-{i}"}"#, "--count", "5"];
    run_client("amqp_client.py", &exchange_args).await;
    one_completed_each(&node, 10).await;
    let wf = send(c.get(node.api("/workflow/greeted/correlated/x-3?includeClosed=true"))).await.json();
    assert_eq!(wf[0]["output"]["who"], "赵六");
    assert_eq!(wf[0]["input"]["conductor.event.messageId"], "m-3");
    for name in ["from_queue", "from_exchange"] {
        assert_eq!(caught_up(&node, name).await["handled"], 5);
    }

    let notify = json!({"name": "notify_mq", "version": 1, "tasks": [
        {"name": "to_mq", "taskReferenceName": "to_mq", "type": "EVENT", "sink": "amqp_queue:orders.done",
         "inputParameters": {"订单": "${workflow.input.order}"}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&notify)).await.status, 200);
    let mut subscriber = spawn_python_sdk("amqp_client.py", &["subscribe", &rabbit.url, "orders.done", "1"]);
    wait_for_python_line(&mut subscriber, "READY", Duration::from_secs(30)).await;
    let id = send(c.post(node.api("/workflow/notify_mq")).json(&json!({"order": "订单-7"}))).await.text;
    let wf = overture_tests::wait_status(&node, &id, "COMPLETED", Duration::from_secs(30)).await;
    let received = received(subscriber).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["订单"], "订单-7");
    let task = &wf["tasks"][0];
    assert_eq!(task["outputData"]["event_produced"], "amqp_queue:orders.done");
    assert_eq!(task["outputData"]["messageId"], task["taskId"]);
}

/// The leader of a three-node cluster is killed (-9) while pika publishes to a RabbitMQ queue a
/// handler consumes: RabbitMQ hands what the dead leader had not acknowledged to the new one,
/// and each message (by its `message-id`) starts its workflow exactly once. 2,000 messages here;
/// `OVERTURE_BROKER_MESSAGES=10000` runs the long version.
#[tokio::test]
async fn leader_killed_while_amqp_messages_flow_starts_each_workflow_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rabbit = RabbitMq::start(&dir.path().join("rabbit")).await;
    let config = format!("[event_queues.amqp]\nurl = \"{}\"\n", rabbit.url);
    let handler = started_by("from_queue", "amqp_queue:orders.in");
    let (mut cluster, leader) = cluster_with_handler(dir.path(), &config, &handler).await;
    wait_consumers(&cluster.nodes[leader - 1], "amqp_queue", 1.0).await;

    let n = failover_messages();
    let publisher = client_in_background("amqp_client.py", ["publish", &rabbit.url, "orders.in"], n, &[]);
    kill_leader_while_flowing(&mut cluster, leader, "amqp_queue", n, publisher).await;
}

/// The leader of a three-node cluster is killed (-9) while boto3 sends to an SQS queue (moto's
/// server) a handler consumes: what the dead leader received and had not deleted becomes visible
/// again after the visibility timeout (5 s here) and reaches the new leader, and each message (by
/// its `MessageId`) starts its workflow exactly once. 500 messages here (moto takes a few hundred
/// a second, fewer under load); `OVERTURE_BROKER_MESSAGES=10000` runs the long version.
#[tokio::test]
async fn leader_killed_while_sqs_messages_flow_starts_each_workflow_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = MotoServer::start().await;
    let config = format!(
        "[event_queues.sqs]\nendpoint = \"{}\"\naccess_key = \"test\"\nsecret_key = \"test\"\nvisibility_timeout_seconds = 5\nwait_seconds = 1\n",
        moto.url
    );
    let handler = started_by("from_sqs", "sqs:orders_in");
    let (mut cluster, leader) = cluster_with_handler(dir.path(), &config, &handler).await;
    wait_consumers(&cluster.nodes[leader - 1], "sqs", 1.0).await;

    let n = failover_messages_or(500);
    let publisher = client_in_background("sqs_client.py", ["send", &moto.url, "orders_in"], n, &[]);
    kill_leader_while_flowing(&mut cluster, leader, "sqs", n, publisher).await;
}

/// Waits until the leader at `url` consumes `queue` from saved positions (its lag is published),
/// so what is produced from now on is read.
async fn wait_kafka_consumer(url: &str, queue: &str) {
    let name = format!("overture_event_queue_consumer_lag{{queue=\"{queue}\"}}");
    let url = url.to_owned();
    let ok = wait_for(Duration::from_secs(30), || {
        let (url, name) = (url.clone(), name.clone());
        async move { metric_sum(&url, &name).await.is_some() }
    })
    .await;
    assert!(ok, "the leader does not consume {queue}");
}

/// A three-node cluster configured with `config`, the `greeted` workflow and `handler`
/// registered through its leader; answers the cluster and its leader.
async fn cluster_with_handler(dir: &std::path::Path, config: &str, handler: &Value) -> (Cluster, usize) {
    let cluster = Cluster::start(dir, 3, config).await;
    let leader = cluster.wait_leader(Duration::from_secs(20)).await;
    let c = client();
    let greeted = json!({"name": "greeted", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}]});
    assert_eq!(send_retrying(c.post(cluster.api(leader, "/metadata/workflow")).json(&greeted)).await.status, 200);
    let r = send_retrying(c.post(cluster.api(leader, "/event")).json(handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    (cluster, leader)
}

/// How many messages the failover tests send: 2,000, or `OVERTURE_BROKER_MESSAGES`.
fn failover_messages() -> usize {
    failover_messages_or(2000)
}

/// `OVERTURE_BROKER_MESSAGES`, or `default`.
fn failover_messages_or(default: usize) -> usize {
    std::env::var("OVERTURE_BROKER_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs a broker client in the background as a failover test's publisher: `command` (its
/// subcommand, the broker's address, the queue), the failover message `n` times, then `extra`.
fn client_in_background(
    script: &'static str,
    command: [&str; 3],
    n: usize,
    extra: &[&str],
) -> tokio::task::JoinHandle<()> {
    let message = r#"{"who": "w", "id": "m-{i}"}"#.to_owned();
    let count = n.to_string();
    let mut args: Vec<String> = command.iter().map(|a| (*a).to_owned()).collect();
    args.extend([message, "--count".into(), count]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_client(script, &args).await
    })
}

/// Kills the leader (-9) once a tenth of the `n` messages of `kind` a running `publisher` sends
/// are handled; then every message must start its workflow exactly once on the new leader.
async fn kill_leader_while_flowing(
    cluster: &mut Cluster,
    leader: usize,
    kind: &str,
    n: usize,
    publisher: tokio::task::JoinHandle<()>,
) {
    let url = cluster.nodes[leader - 1].url.clone();
    let handled = format!("overture_event_queue_messages_processed_total{{queueType=\"{kind}\",outcome=\"handled\"}}");
    let flowing = wait_for(Duration::from_secs(60), || {
        let (url, handled) = (url.clone(), handled.clone());
        async move { metric_sum(&url, &handled).await.unwrap_or(0.0) >= (n / 10) as f64 }
    })
    .await;
    assert!(flowing, "the leader handles {kind} messages");
    cluster.nodes[leader - 1].kill9().await;
    let survivor = cluster.other_than(leader);
    let next = cluster.wait_leader(Duration::from_secs(30)).await;
    assert_ne!(next, leader);
    publisher.await.expect("publisher");

    let seen = until(Duration::from_secs(180), &cluster.nodes[survivor - 1], |seen| seen.len() == n).await;
    assert_eq!(seen.len(), n, "every message started its workflow");
    let twice: Vec<_> = seen.iter().filter(|(_, s)| s.len() != 1).collect();
    assert!(twice.is_empty(), "messages whose workflow started more than once: {twice:?}");
    cluster.restart(leader).await;
}

/// Records a Kafka consumer (Confluent's client) read from `topic`'s beginning.
async fn read_back(bootstrap: &str, topic: &str, count: usize) -> Vec<Value> {
    let reader = spawn_python_sdk("kafka_client.py", &["consume", bootstrap, topic, &count.to_string()]);
    received(reader).await
}

/// Kafka: records Confluent's client produces start workflows through a handler written for
/// conductor-oss (its `{key, headers, payload}` wrapper, a condition that skips a record that is
/// not JSON); an EVENT task's message and a KAFKA_PUBLISH task's record are read back by a Kafka
/// consumer, and each task's output says where its record went; KAFKA_PUBLISH to a broker that
/// is not there fails with conductor-oss's reason.
#[tokio::test]
async fn kafka_records_start_workflows_and_event_and_kafka_publish_tasks_reach_consumers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kafka = Tansu::start().await;
    let node =
        Node::start_with_env(&dir.path().join("n"), &[("OVERTURE_KAFKA_BOOTSTRAP_SERVERS", kafka.bootstrap.as_str())])
            .await;
    let c = client();
    let greeted = json!({"name": "greeted", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}],
        "outputParameters": {"who": "${workflow.variables.who}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&greeted)).await.status, 200);
    let handler = json!({"name": "from_kafka", "event": "kafka:订单", "active": true,
        "condition": "$.payload.id !== undefined",
        "actions": [{"action": "start_workflow", "start_workflow": {"name": "greeted",
            "correlationId": "${payload.id}", "input": {"who": "${payload.who}", "key": "${key}"}}}]});
    let r = send(c.post(node.api("/event")).json(&handler)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_kafka_consumer(&node.url, "kafka:订单").await;

    run_client("kafka_client.py", &["produce", &kafka.bootstrap, "订单", "not json"]).await;
    let produce =
        ["produce", &kafka.bootstrap, "订单", r#"{"who": "王五", "id": "k-{i}"}"#, "--count", "5", "--key", "键-{i}"];
    run_client("kafka_client.py", &produce).await;
    one_completed_each(&node, 5).await;
    let wf = send(c.get(node.api("/workflow/greeted/correlated/k-3?includeClosed=true"))).await.json();
    assert_eq!(wf[0]["output"]["who"], "王五");
    assert_eq!(wf[0]["input"]["key"], "键-3");
    assert_eq!(wf[0]["input"]["conductor.event.name"], "kafka:订单");
    assert_eq!(wf[0]["input"]["conductor.event.messageId"], "订单:0-4", "topic:partition-offset");
    let handled = "overture_event_queue_messages_processed_total{queueType=\"kafka\",outcome=\"handled\"}";
    assert_eq!(metric_sum(&node.url, handled).await, Some(6.0), "the record that is not JSON was handled and skipped");
    let lag = "overture_event_queue_consumer_lag{queue=\"kafka:订单\"}";
    let url = node.url.clone();
    let caught_up = wait_for(Duration::from_secs(10), || {
        let url = url.clone();
        async move { metric_sum(&url, lag).await == Some(0.0) }
    })
    .await;
    assert!(caught_up, "the consumer's lag comes back to 0");
    let queues = send(c.get(node.api("/event/queues"))).await.json();
    let row = queues.as_array().and_then(|q| q.iter().find(|h| h["name"] == "from_kafka")).cloned().unwrap_or_default();
    assert_eq!((row["queueType"].as_str(), row["consuming"].as_bool()), (Some("kafka"), Some(true)), "{row}");
    assert_eq!(
        (row["handled"].as_u64(), row["lag"].as_i64(), row["lastError"].as_str()),
        (Some(6), Some(0), None),
        "{row}"
    );

    let notify = json!({"name": "notify_kafka", "version": 1, "tasks": [
        {"name": "to_topic", "taskReferenceName": "to_topic", "type": "EVENT", "sink": "kafka:orders.done",
         "inputParameters": {"订单": "${workflow.input.order}"}},
        {"name": "publish", "taskReferenceName": "publish", "type": "KAFKA_PUBLISH",
         "inputParameters": {"kafka_request": {"bootStrapServers": kafka.bootstrap, "topic": "receipts",
            "key": "${workflow.input.order}", "value": {"订单": "${workflow.input.order}", "total": 12.5},
            "headers": {"来源": "overture"}}}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&notify)).await.status, 200);
    let id = send(c.post(node.api("/workflow/notify_kafka")).json(&json!({"order": "订单-7"}))).await.text;
    let wf = overture_tests::wait_status(&node, &id, "COMPLETED", Duration::from_secs(30)).await;
    let (event, publish) = (&wf["tasks"][0], &wf["tasks"][1]);
    assert_eq!(event["outputData"]["event_produced"], "kafka:orders.done");
    assert_eq!(event["outputData"]["topic"], "orders.done", "{}", event["outputData"]);
    assert_eq!(publish["outputData"]["topic"], "receipts", "{}", publish["outputData"]);

    let done = read_back(&kafka.bootstrap, "orders.done", 1).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!(done[0]["key"], event["taskId"]);
    assert_eq!(done[0]["offset"], event["outputData"]["offset"]);
    let message: Value = serde_json::from_str(done[0]["value"].as_str().expect("a value")).expect("JSON");
    assert_eq!((message["订单"].as_str(), message["workflowInstanceId"].as_str()), (Some("订单-7"), Some(id.as_str())));
    let receipts = read_back(&kafka.bootstrap, "receipts", 1).await;
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["key"], "订单-7");
    assert_eq!(receipts[0]["headers"]["来源"], "overture");
    let value: Value = serde_json::from_str(receipts[0]["value"].as_str().expect("a value")).expect("JSON");
    assert_eq!(value, json!({"订单": "订单-7", "total": 12.5}));

    let nowhere = format!("127.0.0.1:{}", NatsServer::free_port());
    let lost = json!({"name": "publish_nowhere", "version": 1, "tasks": [{"name": "p", "taskReferenceName": "p",
        "type": "KAFKA_PUBLISH", "inputParameters": {"kafka_request": {"bootStrapServers": nowhere, "topic": "t",
        "value": "v", "requestTimeoutMs": 500, "maxBlockMs": 500}}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&lost)).await.status, 200);
    let id = send(c.post(node.api("/workflow/publish_nowhere")).json(&json!({}))).await.text;
    let wf = overture_tests::wait_status(&node, &id, "FAILED", Duration::from_secs(30)).await;
    let reason = wf["tasks"][0]["reasonForIncompletion"].as_str().unwrap_or_default();
    assert!(reason.starts_with("Failed to invoke kafka task due to:"), "{reason}");
}

/// A Tansu broker and a one-node cluster using it (`[event_queues.kafka]`), with `extra`
/// configuration.
async fn node_on_kafka(dir: &std::path::Path, extra: &str) -> (Tansu, Cluster) {
    let kafka = Tansu::start().await;
    let config = format!("[event_queues.kafka]\nbootstrap_servers = \"{}\"\n{extra}", kafka.bootstrap);
    let cluster = Cluster::start(dir, 1, &config).await;
    (kafka, cluster)
}

/// Workflow status listeners on Kafka: with `[workflow_status_listener.kafka]`, a completed and a
/// terminated workflow (both `workflowStatusListenerEnabled`) publish conductor-oss's
/// `{workflowName, eventType, payload}` records keyed by the workflow id, COMPLETED or TERMINATED
/// on the default topic and FINALIZED on its own; a definition's `workflowStatusListenerSink`
/// gets the summary too. A Kafka consumer reads them all back.
#[tokio::test]
async fn ended_workflows_publish_their_status_to_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let extra = "[workflow_status_listener.kafka]\nevent_topics = { FINALIZED = \"wf-finalized\" }";
    let (kafka, cluster) = node_on_kafka(dir.path(), extra).await;
    let node = &cluster.nodes[0];
    let c = client();
    let listened = |name: &str, task: Value| {
        json!({"name": name, "version": 1, "workflowStatusListenerEnabled": true,
            "workflowStatusListenerSink": "kafka:审批-状态", "tasks": [task]})
    };
    let done = listened(
        "审批",
        json!({"name": "s", "taskReferenceName": "s", "type": "SET_VARIABLE",
        "inputParameters": {"结果": "同意"}}),
    );
    let waits = listened("等待", json!({"name": "w", "taskReferenceName": "w", "type": "WAIT"}));
    for def in [&done, &waits] {
        assert_eq!(send(c.post(node.api("/metadata/workflow")).json(def)).await.status, 200);
    }
    let completed = send(c.post(node.api("/workflow/审批")).json(&json!({"申请人": "李雷"}))).await.text;
    overture_tests::wait_status(node, &completed, "COMPLETED", Duration::from_secs(30)).await;
    let terminated = send(c.post(node.api("/workflow/等待")).json(&json!({}))).await.text;
    let r = send(c.delete(node.api(&format!("/workflow/{terminated}?reason=不要了")))).await;
    assert!(r.status < 300, "terminate: {} {}", r.status, r.text);

    let by_key = |records: Vec<Value>| -> BTreeMap<String, Value> {
        records
            .into_iter()
            .map(|r| {
                let key = r["key"].as_str().unwrap_or_default().to_owned();
                (key, serde_json::from_str(r["value"].as_str().unwrap_or_default()).expect("JSON"))
            })
            .collect()
    };
    let events = by_key(read_back(&kafka.bootstrap, "workflow-status-events", 2).await);
    assert_eq!(events.len(), 2, "{events:?}");
    let (c_event, t_event) = (&events[&completed], &events[&terminated]);
    assert_eq!((c_event["workflowName"].as_str(), c_event["eventType"].as_str()), (Some("审批"), Some("COMPLETED")));
    assert_eq!(c_event["payload"]["workflowId"], completed.as_str());
    assert_eq!(c_event["payload"]["status"], "COMPLETED");
    assert_eq!(c_event["payload"]["input"]["申请人"], "李雷");
    assert_eq!(
        (t_event["eventType"].as_str(), t_event["payload"]["status"].as_str()),
        (Some("TERMINATED"), Some("TERMINATED"))
    );
    assert_eq!(t_event["payload"]["reasonForIncompletion"], "不要了");
    let finalized = by_key(read_back(&kafka.bootstrap, "wf-finalized", 2).await);
    assert_eq!(finalized.len(), 2, "{finalized:?}");
    assert!(finalized.values().all(|e| e["eventType"] == "FINALIZED"), "{finalized:?}");
    let sunk = read_back(&kafka.bootstrap, "审批-状态", 2).await;
    let summaries: BTreeMap<String, String> = sunk
        .iter()
        .map(|r| {
            let v: Value = serde_json::from_str(r["value"].as_str().unwrap_or_default()).expect("JSON");
            (
                v["workflowId"].as_str().unwrap_or_default().to_owned(),
                v["status"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let expected = BTreeMap::from([(completed.clone(), "COMPLETED".to_owned()), (terminated, "TERMINATED".to_owned())]);
    assert_eq!(summaries, expected);
}

/// A status listener whose Kafka never answers (a socket that takes connections and never
/// replies) holds none of the leader's other timers back: 300 ended workflows owe their status
/// to it, and a WAIT of 1 s started after them still ends on time. (Each publish waits up to
/// 10 s for the broker; before publishes had slots of their own, they took every timer slot.)
#[tokio::test]
async fn a_status_listener_broker_that_never_answers_holds_no_other_timer_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let hole = std::net::TcpListener::bind("127.0.0.1:0").expect("a socket that never answers");
    let config = format!(
        "[event_queues.kafka]\nbootstrap_servers = \"{}\"\n[workflow_status_listener.kafka]\n",
        hole.local_addr().expect("addr")
    );
    let cluster = Cluster::start(dir.path(), 1, &config).await;
    let node = &cluster.nodes[0];
    let c = client();
    let listened = json!({"name": "listened", "version": 1, "workflowStatusListenerEnabled": true,
        "tasks": [{"name": "s", "taskReferenceName": "s", "type": "SET_VARIABLE", "inputParameters": {"x": 1}}]});
    let waits = json!({"name": "waits", "version": 1,
        "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT", "inputParameters": {"duration": "1s"}}]});
    for def in [&listened, &waits] {
        assert_eq!(send(c.post(node.api("/metadata/workflow")).json(def)).await.status, 200);
    }
    let mut ended = Vec::new();
    for _ in 0..300 {
        ended.push(send(c.post(node.api("/workflow/listened")).json(&json!({}))).await.text);
    }
    overture_tests::wait_status(node, &ended[299], "COMPLETED", Duration::from_secs(30)).await;
    let started = std::time::Instant::now();
    let id = send(c.post(node.api("/workflow/waits")).json(&json!({}))).await.text;
    overture_tests::wait_status(node, &id, "COMPLETED", Duration::from_secs(30)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(7), "a 1 s WAIT took {took:?} while status publishes hang");
    let failed = "overture_timer_failed_total{kind=\"publish_status\"}";
    let url = node.url.clone();
    let retried = wait_for(Duration::from_secs(60), || {
        let url = url.clone();
        async move { metric_sum(&url, failed).await.unwrap_or(0.0) > 0.0 }
    })
    .await;
    assert!(retried, "the status publishes fail and are tried again");
    drop(hole);
}

/// Default event queues on Kafka (`default_queue_type = "kafka"`): `POST /api/queue/update`
/// publishes a task status message that completes the WAIT task it names, with the body in the
/// task's output; a record Confluent's client produces on the FAILED topic, naming only the
/// workflow, fails its open WAIT task; `GET /api/queue/` names both topics; a status with no
/// queue is a 400.
#[tokio::test]
async fn default_event_queues_on_kafka_complete_and_fail_waiting_tasks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (kafka, cluster) = node_on_kafka(dir.path(), "[event_queues]\ndefault_queue_type = \"kafka\"").await;
    let node = &cluster.nodes[0];
    let c = client();
    let (completed, failed) = ("conductor_kafka_notify_test_COMPLETED", "conductor_kafka_notify_test_FAILED");
    let queues = send(c.get(node.api("/queue/"))).await.json();
    assert_eq!(queues, json!({"COMPLETED": completed, "FAILED": failed}));
    for topic in [completed, failed] {
        wait_kafka_consumer(&node.url, &format!("kafka:{topic}")).await;
    }
    let approval = json!({"name": "审批流程", "version": 1, "tasks": [
        {"name": "prepare", "taskReferenceName": "prepare", "type": "SET_VARIABLE", "inputParameters": {"x": 1}},
        {"name": "wait", "taskReferenceName": "审批", "type": "WAIT"}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&approval)).await.status, 200);
    let start = || async { send(c.post(node.api("/workflow/审批流程")).json(&json!({}))).await.text };
    let (first, second) = (start().await, start().await);

    let r =
        send(c.post(node.api(&format!("/queue/update/{first}/审批/COMPLETED"))).json(&json!({"意见": "同意"}))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let wf = overture_tests::wait_status(node, &first, "COMPLETED", Duration::from_secs(30)).await;
    let output = &wf["tasks"][1]["outputData"];
    // The whole message, as conductor-oss merges it: on Kafka, its `{key, headers, payload}`.
    assert_eq!(output["payload"]["意见"], "同意", "{output}");
    assert!(output["payload"]["externalId"].as_str().is_some_and(|e| e.contains(&first)), "{output}");

    let record = json!({"externalId": json!({"workflowId": second}).to_string(), "原因": "材料不全"}).to_string();
    run_client("kafka_client.py", &["produce", &kafka.bootstrap, failed, &record]).await;
    let wf = overture_tests::wait_status(node, &second, "FAILED", Duration::from_secs(30)).await;
    assert_eq!(wf["tasks"][1]["status"], "FAILED");
    assert_eq!(
        wf["tasks"][1]["outputData"]["payload"]["原因"], "材料不全",
        "the whole record, as conductor-oss merges it"
    );

    let r = send(c.post(node.api(&format!("/queue/update/{first}/审批/IN_PROGRESS"))).json(&json!({}))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("There is no queue for handling IN_PROGRESS status"), "{}", r.text);
    let sizes = send(c.get(node.api("/queue/size"))).await.json();
    assert!(sizes[completed].is_i64() && sizes[failed].is_i64(), "{sizes}");
    let row = caught_up(node, "_default_FAILED").await;
    assert_eq!(
        (row["event"].as_str(), row["handled"].as_u64()),
        (Some(format!("kafka:{failed}").as_str()), Some(1)),
        "{row}"
    );
}

/// The leader of a three-node cluster is killed (-9) while records flow through a handler on a
/// topic of three partitions: the new leader's consumer goes on from the positions the old one
/// saved, and every record starts its workflow exactly once. 2,000 records here;
/// `OVERTURE_BROKER_MESSAGES=10000` runs the long version.
#[tokio::test]
async fn leader_killed_while_kafka_records_flow_starts_each_workflow_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kafka = Tansu::start().await;
    let config = format!("[event_queues.kafka]\nbootstrap_servers = \"{}\"\ntopic_partitions = 3\n", kafka.bootstrap);
    let handler = json!({"name": "from_kafka", "event": "kafka:orders.in", "active": true,
        "actions": [{"action": "start_workflow", "start_workflow": {"name": "greeted",
            "correlationId": "${payload.id}", "input": {"who": "${payload.who}"}}}]});
    let (mut cluster, leader) = cluster_with_handler(dir.path(), &config, &handler).await;
    wait_kafka_consumer(&cluster.nodes[leader - 1].url, "kafka:orders.in").await;

    let n = failover_messages();
    // One record per batch: Tansu 0.6 answers a fetch from an offset inside a batch with nothing
    // (Kafka answers with the batch, and the client skips what is before the offset), and a new
    // leader resumes from wherever the last one's effects ended.
    let extra = ["--key", "m-{i}", "--unbatched"];
    let publisher = client_in_background("kafka_client.py", ["produce", &kafka.bootstrap, "orders.in"], n, &extra);
    kill_leader_while_flowing(&mut cluster, leader, "kafka", n, publisher).await;
}

/// SQS: messages AWS's SDK sends start workflows through a handler on `sqs:` (each message once:
/// it is deleted after its actions commit, and its `MessageId` keys them); an EVENT task's message
/// is received by the SDK, and the task's output gives SQS's message id. The requests are signed
/// (AWS Signature Version 4) with the credentials AWS's SDKs read from the environment.
#[tokio::test]
async fn sqs_messages_start_workflows_and_event_tasks_publish_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let moto = MotoServer::start().await;
    let env = [
        ("OVERTURE_SQS_ENDPOINT", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let node = Node::start_with_env(&dir.path().join("n"), &env).await;
    let c = client();
    let greeted = json!({"name": "greeted", "version": 1, "tasks": [{"name": "hello", "taskReferenceName": "hello",
        "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}],
        "outputParameters": {"who": "${workflow.variables.who}"}});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&greeted)).await.status, 200);
    let r = send(c.post(node.api("/event")).json(&started_by("from_sqs", "sqs:orders_new"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    wait_consumers(&node, "sqs", 1.0).await;

    run_client("sqs_client.py", &["send", &moto.url, "orders_new", "not json"]).await;
    run_client(
        "sqs_client.py",
        &["send", &moto.url, "orders_new", r#"{"who": "孙七", "id": "s-{i}"}"#, "--count", "12"],
    )
    .await;
    one_completed_each(&node, 12).await;
    let wf = send(c.get(node.api("/workflow/greeted/correlated/s-7?includeClosed=true"))).await.json();
    assert_eq!(wf[0]["output"]["who"], "孙七");
    assert_eq!(wf[0]["input"]["conductor.event.name"], "sqs:orders_new");
    assert!(
        wf[0]["input"]["conductor.event.messageId"].as_str().is_some_and(|id| !id.is_empty()),
        "{}",
        wf[0]["input"]
    );
    let url = node.url.clone();
    let invalid = "overture_event_queue_messages_processed_total{queueType=\"sqs\",outcome=\"invalid\"}";
    let counted = wait_for(Duration::from_secs(10), || {
        let url = url.clone();
        async move { metric_sum(&url, invalid).await == Some(1.0) }
    })
    .await;
    assert!(counted, "the message that is not JSON was counted and dropped");
    assert_eq!(caught_up(&node, "from_sqs").await["handled"], 12, "the message that is not JSON is counted apart");

    let notify = json!({"name": "notify_sqs", "version": 1, "tasks": [
        {"name": "to_sqs", "taskReferenceName": "to_sqs", "type": "EVENT", "sink": "sqs:orders_done",
         "inputParameters": {"订单": "${workflow.input.order}"}}]});
    assert_eq!(send(c.post(node.api("/metadata/workflow")).json(&notify)).await.status, 200);
    let id = send(c.post(node.api("/workflow/notify_sqs")).json(&json!({"order": "订单-9"}))).await.text;
    let wf = overture_tests::wait_status(&node, &id, "COMPLETED", Duration::from_secs(30)).await;
    let out = &wf["tasks"][0]["outputData"];
    assert_eq!(out["event_produced"], "sqs:orders_done");
    assert!(out["messageId"].as_str().is_some_and(|m| !m.is_empty()), "{out}");
    let received = received(spawn_python_sdk("sqs_client.py", &["receive", &moto.url, "orders_done", "1"])).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(
        (received[0]["订单"].as_str(), received[0]["workflowInstanceId"].as_str()),
        (Some("订单-9"), Some(id.as_str()))
    );
}

#!/usr/bin/env python3
"""Messages per second from a broker to started workflows, on one node: the leader consumes an
event queue whose handler starts a one-task workflow (SET_VARIABLE), and N messages are published
with the broker's own client as fast as it goes.

  deploy/bench-brokers.py N jsm|nats|kafka|amqp|sqs [--backlog]

With --backlog (amqp, sqs) the N messages are published before the handler exists, and the time
is from its registration until all are handled: the node's rate alone, whatever the publisher's.

Brokers: nats-server (jsm, nats), RabbitMQ's rabbitmq-server (amqp), Tansu (kafka) and moto's
server (sqs), as tests/run.sh installs them; clients nats-py, pika, confluent-kafka and boto3
(tests/python/requirements.txt). Needs a release build (`cargo build --release --bin overture`,
or OVERTURE_BIN). Prints one JSON line: how long the publisher took (the broker's ceiling with
this client) and how long until every message was handled, then how many workflows exist and
completed.
"""
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def popen_group(*args, **kwargs):
    """Starts a broker in a process group of its own, which the end of the run stops whole."""
    return subprocess.Popen(*args, start_new_session=True, **kwargs)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def http(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, method=method, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return r.read().decode()


def metric(url, name):
    text = http("GET", url + "/metrics")
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name))


def has_metric(url, name):
    return any(l.startswith(name) for l in http("GET", url + "/metrics").splitlines())


def wait_port(port, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"nothing listens on port {port}")


def body(i):
    return json.dumps({"who": "w", "id": f"m-{i}"}).encode()


class Nats:
    """nats-server with JetStream; `jsm:` or `nats:` queues; nats-py publishes."""

    def __init__(self, d, jetstream):
        self.port, self.jetstream = free_port(), jetstream
        self.proc = popen_group(["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", d + "/nats"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 20)
        self.url = f"nats://127.0.0.1:{self.port}"
        self.env = {"OVERTURE_JSM_URL": self.url, "OVERTURE_NATS_URL": self.url}
        self.kind = "jsm" if jetstream else "nats"
        self.event = f"{self.kind}:tput.in"
        self.params = {"correlationId": "${id}", "input": {"who": "${who}"}}
        self.ready = f'overture_event_queue_consumers{{queueType="{self.kind}"}}'

    def publish(self, n):
        import nats

        async def run():
            nc = await nats.connect(self.url)
            if self.jetstream:
                js, futs = nc.jetstream(), []
                for i in range(n):
                    futs.append(js.publish("conductor_jsm_notify_test_tput.in", body(i)))
                    if len(futs) >= 256:
                        await asyncio.gather(*futs)
                        futs = []
                await asyncio.gather(*futs)
            else:
                for i in range(n):
                    await nc.publish("tput.in", body(i))
                await nc.flush()
            await nc.close()

        asyncio.run(run())


class Kafka:
    """Tansu (in-memory storage); `kafka:` queues, handlers reading conductor-oss's wrapper;
    confluent-kafka produces (acks=all, batched)."""

    def __init__(self, d):
        self.port = free_port()
        tansu = os.environ.get("OVERTURE_TANSU") or os.path.expanduser("~/.cache/overture-tools/tansu/bin/tansu")
        listener = f"tcp://127.0.0.1:{self.port}"
        self.proc = popen_group([tansu, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                                      "--storage-engine", "memory://tansu/"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 20)
        self.servers = f"127.0.0.1:{self.port}"
        self.env = {"OVERTURE_KAFKA_BOOTSTRAP_SERVERS": self.servers}
        self.kind, self.event = "kafka", "kafka:tput.in"
        self.params = {"correlationId": "${payload.id}", "input": {"who": "${payload.who}"}}
        self.ready = 'overture_event_queue_consumer_lag{queue="kafka:tput.in"}'

    def publish(self, n):
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.servers, "acks": "all", "linger.ms": 5})
        for i in range(n):
            while True:
                try:
                    producer.produce("tput.in", value=body(i), key=f"m-{i}".encode())
                    break
                except BufferError:
                    producer.poll(0.05)
            producer.poll(0)
        if producer.flush(120):
            raise SystemExit("not every record was delivered")


class Amqp:
    """A RabbitMQ node of its own; `amqp_queue:` queues; pika publishes persistent messages with
    publisher confirms, one at a time (its blocking channel)."""

    def __init__(self, d):
        self.port, dist = free_port(), free_port()
        home = d + "/rabbit"
        os.makedirs(home)
        with open(home + "/enabled_plugins", "w") as f:
            f.write("[].")
        env = dict(os.environ, RABBITMQ_NODENAME=f"overture_bench_{self.port}@localhost", RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
                   RABBITMQ_NODE_PORT=str(self.port), RABBITMQ_DIST_PORT=str(dist), RABBITMQ_MNESIA_BASE=home + "/mnesia",
                   RABBITMQ_LOG_BASE=home + "/log", RABBITMQ_ENABLED_PLUGINS_FILE=home + "/enabled_plugins", HOME=home)
        server = os.environ.get("OVERTURE_RABBITMQ_SERVER", "/usr/lib/rabbitmq/bin/rabbitmq-server")
        self.proc = popen_group([server], env=env, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 90)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2f"
        self.env = {"OVERTURE_AMQP_URL": self.url}
        self.kind, self.event = "amqp_queue", "amqp_queue:tput.in"
        self.params = {"correlationId": "${id}", "input": {"who": "${who}"}}
        self.ready = 'overture_event_queue_consumers{queueType="amqp_queue"}'

    def publish(self, n):
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(self.url))
        channel = connection.channel()
        channel.confirm_delivery()
        channel.queue_declare("tput.in", durable=True)
        for i in range(n):
            props = pika.BasicProperties(message_id=f"m-{i}", delivery_mode=2, content_type="application/json")
            channel.basic_publish(exchange="", routing_key="tput.in", body=body(i), properties=props)
        connection.close()


class Sqs:
    """moto's server (SQS's API); `sqs:` queues; boto3 sends batches of 10."""

    def __init__(self, d):
        self.port = free_port()
        self.proc = popen_group([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 30)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {"OVERTURE_SQS_ENDPOINT": self.url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
        self.kind, self.event = "sqs", "sqs:tput_in"
        self.params = {"correlationId": "${id}", "input": {"who": "${who}"}}
        self.ready = 'overture_event_queue_consumers{queueType="sqs"}'

    def publish(self, n):
        import boto3

        sqs = boto3.client("sqs", endpoint_url=self.url, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")
        url = sqs.create_queue(QueueName="tput_in")["QueueUrl"]
        for start in range(0, n, 10):
            entries = [{"Id": str(i), "MessageBody": body(i).decode()} for i in range(start, min(start + 10, n))]
            if sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed"):
                raise SystemExit("not every message was sent")


def main(n, kind, backlog):
    d = tempfile.mkdtemp(prefix="overture-bench-brokers-")
    broker = {"jsm": lambda: Nats(d, True), "nats": lambda: Nats(d, False), "kafka": lambda: Kafka(d),
              "amqp": lambda: Amqp(d), "sqs": lambda: Sqs(d)}[kind]()
    op = free_port()
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/overture-target"))
    binary = os.environ.get("OVERTURE_BIN") or os.path.join(target, "release", "overture")
    env = dict(os.environ, RUST_LOG="warn", **broker.env)
    node = subprocess.Popen([binary, "dev", "--listen", f"127.0.0.1:{op}", "--data-dir", d + "/node"],
                            env=env, stdout=subprocess.DEVNULL, stderr=open(d + "/node.log", "w"))
    url = f"http://127.0.0.1:{op}"
    for _ in range(100):
        try:
            http("GET", url + "/ready")
            break
        except Exception:
            time.sleep(0.1)
    http("POST", url + "/api/metadata/workflow", {"name": "greeted", "version": 1, "tasks": [{"name": "hello",
         "taskReferenceName": "hello", "type": "SET_VARIABLE", "inputParameters": {"who": "${workflow.input.who}"}}]})
    handler = {"name": "h", "event": broker.event, "active": True, "actions": [
        {"action": "start_workflow", "start_workflow": dict(name="greeted", **broker.params)}]}
    if backlog:
        t_pub0 = time.time()
        broker.publish(n)
        t_pub = time.time() - t_pub0
        t0 = time.time()
        http("POST", url + "/api/event", handler)
    else:
        http("POST", url + "/api/event", handler)
        while not has_metric(url, broker.ready) or metric(url, broker.ready) < (0 if kind == "kafka" else 1):
            time.sleep(0.1)
        t0 = time.time()
        broker.publish(n)
        t_pub = time.time() - t0
    handled = f'overture_event_queue_messages_processed_total{{queueType="{broker.kind}",outcome="handled"}}'
    while metric(url, handled) < n:
        time.sleep(0.05)
    t_all = time.time() - t0
    print(json.dumps({"kind": kind, "backlog": backlog, "messages": n, "publish_s": round(t_pub, 2), "publish_per_s": round(n / t_pub),
                      "handled_s": round(t_all, 2), "workflows_per_s": round(n / t_all)}))
    query = "/api/workflow/search?size=1&query=workflowType%3D%27greeted%27"
    hits = json.loads(http("GET", url + query))["totalHits"]
    done = json.loads(http("GET", url + query + "%20AND%20status%3D%27COMPLETED%27"))["totalHits"]
    print(json.dumps({"workflows": hits, "completed": done}))
    node.terminate()
    node.wait()
    # The broker's whole process group: rabbitmq-server's Erlang node outlives the script.
    os.killpg(broker.proc.pid, 15)
    broker.proc.wait()
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] not in ("jsm", "nats", "kafka", "amqp", "sqs"):
        raise SystemExit(__doc__)
    backlog = "--backlog" in sys.argv
    if backlog and sys.argv[2] not in ("amqp", "sqs"):
        raise SystemExit("--backlog needs a queue that keeps messages before it is consumed (amqp, sqs)")
    main(int(sys.argv[1]), sys.argv[2], backlog)

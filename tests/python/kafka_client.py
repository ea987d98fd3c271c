"""Confluent's Kafka client (confluent-kafka, librdkafka) as a user's producer or consumer, for
tests/tests/event_brokers.rs.

  kafka_client.py produce SERVERS TOPIC JSON [--count N] [--key KEY] [--unbatched]
      produces JSON (with {i} replaced by 0..N-1) N times, keyed by KEY (with {i} replaced) if
      given, one record per batch with --unbatched; waits for every delivery report; prints
      "PUBLISHED N".
  kafka_client.py consume SERVERS TOPIC COUNT
      reads every partition of TOPIC from its beginning (no consumer group) and prints each
      record as a JSON line {"partition", "offset", "key", "value", "headers"} until COUNT have
      arrived (or 60 s pass).
"""

import json
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition, OFFSET_BEGINNING


def produce(servers, topic, template, count, key, unbatched):
    config = {"bootstrap.servers": servers, "acks": "all", "linger.ms": 5}
    if unbatched:
        config["batch.num.messages"] = 1
    producer = Producer(config)
    failed = []

    def report(err, _msg):
        if err is not None:
            failed.append(str(err))

    for i in range(count):
        body = template.replace("{i}", str(i)).encode()
        k = key.replace("{i}", str(i)).encode() if key is not None else None
        while True:
            try:
                producer.produce(topic, value=body, key=k, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(60)
    if failed or left:
        raise SystemExit(f"delivery failed: {failed[:3]} ({left} not delivered)")
    print(f"PUBLISHED {count}", flush=True)


def consume(servers, topic, count):
    consumer = Consumer({"bootstrap.servers": servers, "group.id": "overture-test-reader", "enable.auto.commit": False})
    deadline = time.time() + 60
    partitions = None
    while partitions is None and time.time() < deadline:
        meta = consumer.list_topics(topic, timeout=10)
        found = meta.topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            partitions = sorted(found.partitions)
        else:
            time.sleep(0.2)
    if partitions is None:
        raise SystemExit(f"topic {topic} has no partitions")
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    seen = 0
    while seen < count and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        headers = {k: (v or b"").decode() for k, v in (msg.headers() or [])}
        print(
            json.dumps(
                {
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "key": msg.key().decode() if msg.key() is not None else None,
                    "value": msg.value().decode() if msg.value() is not None else None,
                    "headers": headers,
                },
                ensure_ascii=False,
            ),
            flush=True,
        )
        seen += 1
    consumer.close()
    if seen < count:
        raise SystemExit(f"read {seen} of {count} records")


def main(argv):
    if argv[1] == "produce":
        count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 1
        key = argv[argv.index("--key") + 1] if "--key" in argv else None
        produce(argv[2], argv[3], argv[4], count, key, "--unbatched" in argv)
    elif argv[1] == "consume":
        consume(argv[2], argv[3], int(argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

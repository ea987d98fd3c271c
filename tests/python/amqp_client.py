"""RabbitMQ's Python client (pika) as a user's producer or consumer, for
tests/tests/event_brokers.rs.

  amqp_client.py publish URL QUEUE JSON [--count N]
      publishes JSON (with {i} replaced by 0..N-1) to the queue N times, persistent, with the
      message id m-{i}; prints "PUBLISHED N".
  amqp_client.py publish-exchange URL EXCHANGE ROUTING_KEY JSON [--count N]
      the same to a topic exchange.
  amqp_client.py subscribe URL QUEUE COUNT
      declares the queue (durable), prints "READY", then prints each message's body on a line of
      its own, acknowledging it, until COUNT have arrived (or 60 s pass).
"""

import sys
import time

import pika


def publish(url, exchange, routing_key, template, count):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    if exchange:
        channel.exchange_declare(exchange, exchange_type="topic", durable=True)
    else:
        channel.queue_declare(routing_key, durable=True)
    for i in range(count):
        body = template.replace("{i}", str(i)).encode()
        props = pika.BasicProperties(message_id=f"m-{i}", delivery_mode=2, content_type="application/json")
        channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body, properties=props)
    connection.close()
    print(f"PUBLISHED {count}", flush=True)


def subscribe(url, queue, count):
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, durable=True)
    print("READY", flush=True)
    seen = 0
    deadline = time.time() + 60
    for method, _, body in channel.consume(queue, inactivity_timeout=1):
        if method is not None:
            print(body.decode(), flush=True)
            channel.basic_ack(method.delivery_tag)
            seen += 1
        if seen >= count or time.time() > deadline:
            break
    connection.close()


def main(argv):
    count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 1
    if argv[1] == "publish":
        publish(argv[2], "", argv[3], argv[4], count)
    elif argv[1] == "publish-exchange":
        publish(argv[2], argv[3], argv[4], argv[5], count)
    elif argv[1] == "subscribe":
        subscribe(argv[2], argv[3], int(argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

"""AWS's Python SDK (boto3) as a user's producer or consumer of an SQS queue, for
tests/tests/event_brokers.rs.

  sqs_client.py send ENDPOINT QUEUE JSON [--count N]
      sends JSON (with {i} replaced by 0..N-1) N times, creating the queue if missing; prints
      "PUBLISHED N".
  sqs_client.py receive ENDPOINT QUEUE COUNT
      receives (and deletes) messages, printing each body on a line of its own, until COUNT have
      arrived (or 60 s pass).
"""

import sys
import time

import boto3


def client(endpoint):
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="test", aws_secret_access_key="test")


def queue_url(sqs, name):
    return sqs.create_queue(QueueName=name)["QueueUrl"]


def send(endpoint, name, template, count):
    sqs = client(endpoint)
    url = queue_url(sqs, name)
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": template.replace("{i}", str(i))}
                   for i in range(start, min(start + 10, count))]
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed", [])
        if failed:
            raise SystemExit(f"not sent: {failed}")
    print(f"PUBLISHED {count}", flush=True)


def receive(endpoint, name, count):
    sqs = client(endpoint)
    url = queue_url(sqs, name)
    seen = 0
    deadline = time.time() + 60
    while seen < count and time.time() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in answer.get("Messages", []):
            print(m["Body"], flush=True)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            seen += 1
    if seen < count:
        raise SystemExit(f"received {seen} of {count}")


def main(argv):
    if argv[1] == "send":
        count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 1
        send(argv[2], argv[3], argv[4], count)
    elif argv[1] == "receive":
        receive(argv[2], argv[3], int(argv[4]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

"""The official NATS client (nats-py) as a user's producer or consumer, for
tests/tests/event_brokers.rs.

  nats_client.py publish URL SUBJECT JSON [--jetstream] [--count N]
      publishes JSON (with {i} replaced by 0..N-1) N times; prints "PUBLISHED N".
  nats_client.py subscribe URL SUBJECT[,SUBJECT...] COUNT
      subscribes, prints "READY", then prints each message's body on a line of its own until
      COUNT have arrived (or 60 s pass).
"""

import asyncio
import sys

import nats


async def publish(url, subject, template, jetstream, count):
    nc = await nats.connect(url)
    js = nc.jetstream() if jetstream else None
    for i in range(count):
        body = template.replace("{i}", str(i)).encode()
        if js is not None:
            await js.publish(subject, body)
        else:
            await nc.publish(subject, body)
    await nc.flush()
    await nc.close()
    print(f"PUBLISHED {count}", flush=True)


async def subscribe(url, subject, count):
    nc = await nats.connect(url)
    seen = asyncio.Queue()

    async def on_message(msg):
        await seen.put(msg.data.decode())

    for one in subject.split(","):
        await nc.subscribe(one, cb=on_message)
    await nc.flush()
    print("READY", flush=True)
    for _ in range(count):
        body = await asyncio.wait_for(seen.get(), timeout=60)
        print(body, flush=True)
    await nc.close()


def main(argv):
    if argv[1] == "publish":
        jetstream = "--jetstream" in argv
        count = int(argv[argv.index("--count") + 1]) if "--count" in argv else 1
        asyncio.run(publish(argv[2], argv[3], argv[4], jetstream, count))
    elif argv[1] == "subscribe":
        asyncio.run(subscribe(argv[2], argv[3], int(argv[4])))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv)

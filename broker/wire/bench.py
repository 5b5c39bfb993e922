"""Wire throughput: the same confluent-kafka client against the lab and librdkafka's mock.

    python -m broker.wire.bench [--records N] [--size BYTES] [--json]

One confluent-kafka producer (acks=all, idempotence on) sends N messages of SIZE
bytes to a 1-partition topic, replicated 3 times, and waits for every delivery
report; then a consumer reads them all back.  Start-up is not timed: the producer
first sends one message and waits for it (its producer id, its connection to the
leader), and the consumer is timed from the first record it reads (joining a
group takes group.initial.rebalance.delay.ms, 3 s).  First against a headless lab
(``python -m broker listen --port 0`` in its own process, so it has its own
interpreter as librdkafka's mock has its own threads), then against librdkafka's
mock cluster (``test.mock.num.brokers=3``).  Prints both rates and the lab's
ratio to the mock.  Exit codes: 0 measured and correct (every message delivered
and read back once), 1 a correctness check failed, 2 bad option or
confluent-kafka not installed.  Figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

TOPIC = "bench"
START_TIMEOUT_S = 30


def _produce(config: dict[str, Any], records: int, size: int) -> tuple[float, int]:
    from confluent_kafka import Producer

    producer = Producer({**config, "acks": "all", "enable.idempotence": True, "linger.ms": 5})
    payload = b"x" * size
    failed = 0

    def report(err: object, _msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1

    producer.list_topics(TOPIC, timeout=20)  # creates it: the first send is not timed in
    # Neither is the start-up: the first message waits for the producer id, which librdkafka
    # asks for again on a 500 ms timer when no broker connection is up yet (as against either
    # cluster), then for the connection to the partition's leader.
    producer.produce(TOPIC, payload, on_delivery=report)
    if producer.flush(20):
        raise RuntimeError("the warm-up message was not delivered in 20 s")
    start = time.perf_counter()
    for _ in range(records):
        while True:
            try:
                producer.produce(TOPIC, payload, on_delivery=report)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(120)
    elapsed = time.perf_counter() - start
    return elapsed, failed + left


def _consume(config: dict[str, Any], records: int) -> tuple[float, int]:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {**config, "group.id": f"bench-{time.monotonic_ns()}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([TOPIC])
    read = 0
    # Timed from the first record on: joining the group waits for
    # group.initial.rebalance.delay.ms (3 s on both clusters), which would make most of it.
    start = 0.0
    deadline = time.monotonic() + 120
    while read < records and time.monotonic() < deadline:
        for message in consumer.consume(1000, 0.5):
            if message.error() is None:
                if not read:
                    start = time.perf_counter()
                read += 1
    elapsed = time.perf_counter() - start if read else 0.0
    consumer.close()
    return elapsed, read


def _side(name: str, config: dict[str, Any], records: int, size: int) -> dict[str, Any]:
    produce_s, undelivered = _produce(config, records, size)
    # The warm-up message is read too: timed from it, the consumer reads `records` more.
    consume_s, read = _consume(config, records + 1)
    return {
        "side": name,
        "produce_s": round(produce_s, 3),
        "produce_per_s": round(records / produce_s),
        "consume_s": round(consume_s, 3),
        "consume_per_s": round(records / consume_s) if consume_s > 0 else 0,
        "undelivered": undelivered,
        "read": read - 1,  # the timed ones
    }


def _lab(records: int, size: int) -> dict[str, Any]:
    room = subprocess.Popen(
        [sys.executable, "-m", "broker", "listen", "--port", "0", "--commands"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert room.stdout is not None
        bootstrap = ""
        while not bootstrap:
            line = room.stdout.readline()
            if not line:
                raise RuntimeError("the lab's listener did not start")
            if line.startswith("bootstrap "):
                bootstrap = line.split()[1]
        return _side("lab", {"bootstrap.servers": bootstrap}, records, size)
    finally:
        if room.stdin is not None:
            room.stdin.close()
        try:
            room.wait(timeout=10)
        except subprocess.TimeoutExpired:
            room.kill()
            room.wait(timeout=10)


def _mock(records: int, size: int) -> dict[str, Any]:
    from confluent_kafka import Producer

    # The mock cluster lives in the client that creates it; the others reach it through
    # its brokers' addresses.
    owner = Producer({"test.mock.num.brokers": 3})
    brokers = owner.list_topics(timeout=10).brokers.values()
    bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)
    try:
        return _side("librdkafka mock", {"bootstrap.servers": bootstrap}, records, size)
    finally:
        owner.flush(1)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.wire.bench")
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    if not 1 <= args.records <= 1_000_000 or not 1 <= args.size <= 100_000:
        parser.error("--records from 1 to 1,000,000, --size from 1 to 100,000")
    try:
        import confluent_kafka
    except ImportError:
        print("confluent-kafka is not installed (pip install confluent-kafka)", file=sys.stderr)
        return 2
    lab = _lab(args.records, args.size)
    mock = _mock(args.records, args.size)
    result = {
        "records": args.records,
        "size": args.size,
        "librdkafka": confluent_kafka.libversion()[0],
        "lab": lab,
        "mock": mock,
        "produce_ratio": round(lab["produce_per_s"] / mock["produce_per_s"], 3),
        "consume_ratio": round(lab["consume_per_s"] / mock["consume_per_s"], 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for side in (lab, mock):
            print(
                f"{side['side']:>16}: produce {side['produce_per_s']:>9,}/s "
                f"({side['produce_s']} s), consume {side['consume_per_s']:>9,}/s "
                f"({side['consume_s']} s), undelivered {side['undelivered']}, "
                f"read {side['read']}"
            )
        print(f"lab / mock: produce {result['produce_ratio']}, consume {result['consume_ratio']}")
    correct = all(s["undelivered"] == 0 and s["read"] == args.records for s in (lab, mock))
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())

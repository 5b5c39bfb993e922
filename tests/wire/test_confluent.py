"""Unmodified confluent-kafka (librdkafka) and aiokafka clients against a headless room."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from confluent_kafka import Consumer, KafkaError, Message, Producer

from tests.wire.room import Room

pytestmark = pytest.mark.timeout(120)


def rd_producer(room: Room, **config: Any) -> Producer:
    return Producer({"bootstrap.servers": room.bootstrap, "socket.timeout.ms": 3000, **config})


def delivered(p: Producer, topic: str, values: list[bytes]) -> list[int]:
    """Produce ``values`` and wait for every delivery report; their offsets."""
    reports: list[tuple[KafkaError | None, Message]] = []
    for value in values:
        p.produce(topic, value, on_delivery=lambda err, msg: reports.append((err, msg)))
    assert p.flush(30) == 0
    assert [err for err, _ in reports] == [None] * len(values)
    return [msg.offset() for _, msg in reports]


def consume(room: Room, topic: str, expected: int, **config: Any) -> list[bytes]:
    """Read ``topic`` in a fresh group from the start until ``expected`` values came (or
    a deadline; the test then fails on the values), plus whatever one more poll adds."""
    consumer = Consumer(
        {
            "bootstrap.servers": room.bootstrap,
            "group.id": f"reader-{time.monotonic_ns()}",
            "auto.offset.reset": "earliest",
            **config,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                if len(values) >= expected:
                    break
                continue
            assert message.error() is None, message.error()
            values.append(message.value())
        return values
    finally:
        consumer.close()


def test_produce_and_consume_in_a_group(room: Room) -> None:
    p = rd_producer(room, **{"client.id": "rd-writer", "enable.idempotence": True})
    offsets = delivered(p, "rd-orders", [f"v{i}".encode() for i in range(50)])
    assert offsets == list(range(50))
    assert consume(room, "rd-orders", 50) == [f"v{i}".encode() for i in range(50)]


def test_an_idempotent_producer_s_retry_after_a_dropped_response_is_no_duplicate(
    room: Room,
) -> None:
    delivered(rd_producer(room), "rd-retried", [b"first"])
    assert "ok" in room.command(do="drop-response", api="Produce", client="rd-retrier")
    p = rd_producer(
        room,
        **{"client.id": "rd-retrier", "enable.idempotence": True, "request.timeout.ms": 2000},
    )
    assert delivered(p, "rd-retried", [b"once"]) == [1]
    assert [r["hit"] for r in room.command(do="faults")["ok"]] == [1]  # the answer was lost
    assert consume(room, "rd-retried", 2) == [b"first", b"once"]


def test_transactions_commit_and_abort(room: Room) -> None:
    p = rd_producer(room, **{"transactional.id": "rd-txn"})
    p.init_transactions(20)
    for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
        p.begin_transaction()
        p.produce("rd-payments", value)
        p.flush(10)
        if commit:
            p.commit_transaction(20)
        else:
            p.abort_transaction(20)
    committed = consume(room, "rd-payments", 2, **{"isolation.level": "read_committed"})
    assert committed == [b"c1", b"c2"]
    everything = consume(room, "rd-payments", 3, **{"isolation.level": "read_uncommitted"})
    assert everything == [b"c1", b"a1", b"c2"]


async def test_aiokafka_produces_and_consumes(room: Room) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=room.bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send_and_wait("aio", f"a{i}".encode()) for i in range(10)]
    finally:
        await producer.stop()
    assert [m.offset for m in sent] == list(range(10))
    consumer = AIOKafkaConsumer(
        "aio", bootstrap_servers=room.bootstrap, group_id="aio", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < 10:
            batches = await consumer.getmany(timeout_ms=30_000)
            assert batches, "nothing within 30 s"
            values += [r.value for records in batches.values() for r in records]
    finally:
        await consumer.stop()
    assert values == [f"a{i}".encode() for i in range(10)]


async def test_aiokafka_transactions_commit_and_abort(room: Room) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=room.bootstrap, transactional_id="aio-txn")
    await producer.start()
    try:
        for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
            await producer.begin_transaction()
            await producer.send_and_wait("aio-payments", value)
            if commit:
                await producer.commit_transaction()
            else:
                await producer.abort_transaction()
    finally:
        await producer.stop()
    committed = consume(room, "aio-payments", 2, **{"isolation.level": "read_committed"})
    assert committed == [b"c1", b"c2"]

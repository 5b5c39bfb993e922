"""Unmodified kafka-python (3.0.12) clients against a headless room."""

from __future__ import annotations

import time
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.wire.clients import FAST, create_topic, read_all
from tests.wire.room import Room

pytestmark = pytest.mark.timeout(120)


def producer(room: Room, client_id: str, **config: Any) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=room.bootstrap, client_id=client_id, **{**FAST, **config}
    )


def test_produce_then_consume_round_trips_keys_values_headers_and_offsets(room: Room) -> None:
    p = producer(room, "writer", acks="all")
    sent = [
        p.send("orders", key=f"k{i}".encode(), value=bytes([i, 0xFF, 0]), headers=[("h", b"x")])
        for i in range(25)
    ]
    p.flush(timeout=20)
    offsets = [f.get(timeout=1).offset for f in sent]
    assert offsets == list(range(25))
    p.close()
    records = read_all(room, "orders", 25)
    assert [r.offset for r in records] == list(range(25))
    assert [r.key for r in records] == [f"k{i}".encode() for i in range(25)]
    assert [r.value for r in records] == [bytes([i, 0xFF, 0]) for i in range(25)]
    assert all(r.headers == [("h", b"x")] for r in records)


def test_metadata_creates_the_topic_and_advertises_each_broker_on_its_own_port(
    room: Room,
) -> None:
    p = producer(room, "asker")
    try:
        # A producer's Metadata request allows auto-creation: Kafka's default, 1 partition.
        assert p.partitions_for("created-by-metadata") == {0}
        ports = {b.node_id: f"{b.host}:{b.port}" for b in p._metadata.brokers()}
        assert ports == room.brokers
    finally:
        p.close()


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_dropped_produce_response_is_retried(room: Room, idempotent: bool) -> None:
    """The leader appends, the answer is lost, the client times out and retries: with
    idempotence the retry is answered with the original offset and the log holds one
    copy; without it the log holds two."""
    topic = f"retried-{idempotent}".lower()
    warm = producer(room, "warm")
    warm.send(topic, b"first").get(timeout=10)
    warm.close()
    answer = room.command(do="drop-response", api="Produce", client="retrier")
    assert "ok" in answer, answer
    p = producer(room, "retrier", acks="all", enable_idempotence=idempotent, retries=5)
    metadata = p.send(topic, b"once").get(timeout=30)
    p.close()
    assert [r["hit"] for r in room.command(do="faults")["ok"]] == [1]  # the answer was lost
    values = [r.value for r in read_all(room, topic, 2)]
    if idempotent:
        assert values == [b"first", b"once"]
        assert metadata.offset == 1
    else:
        assert values == [b"first", b"once", b"once"]
        assert metadata.offset == 2


def test_transactions_commit_and_abort_for_both_isolation_levels(room: Room) -> None:
    p = producer(room, "txn", transactional_id="txn-1")
    p.init_transactions()
    for value, commit in ((b"c1", True), (b"a1", False), (b"c2", True)):
        p.begin_transaction()
        p.send("payments", value)
        p.flush(timeout=10)  # sent before the end: an abort drops what is still unsent
        if commit:
            p.commit_transaction()
        else:
            p.abort_transaction()
    p.close()
    committed = read_all(room, "payments", 2, isolation_level="read_committed")
    assert [r.value for r in committed] == [b"c1", b"c2"]
    everything = read_all(room, "payments", 3, isolation_level="read_uncommitted")
    assert [r.value for r in everything] == [b"c1", b"a1", b"c2"]


def test_a_parked_fetch_over_several_partitions_wakes_when_one_gets_data(room: Room) -> None:
    """Partitions 0 and 3 of a 4-partition topic share broker-1 as leader, so one Fetch
    asks for both; it waits up to fetch.max.wait.ms for data and answers as soon as a
    record reaches either."""
    create_topic(room, "multi", 4)
    consumer = KafkaConsumer(
        bootstrap_servers=room.bootstrap, fetch_max_wait_ms=8000, auto_offset_reset="latest"
    )
    p = producer(room, "waker", acks=1)
    try:
        consumer.assign([TopicPartition("multi", n) for n in range(4)])
        assert consumer.poll(timeout_ms=500) == {}  # positions found, a fetch now parked
        start = time.monotonic()
        p.send("multi", b"wake", partition=3).get(timeout=10)
        got: dict[Any, list[Any]] = {}
        while not got and time.monotonic() - start < 20:
            got = consumer.poll(timeout_ms=100)
        waited = time.monotonic() - start
        assert [r.value for records in got.values() for r in records] == [b"wake"]
        assert waited < 4, f"answered after {waited:.1f} s: the parked fetch was not woken"
    finally:
        consumer.close()
        p.close()


def test_a_disconnected_client_reconnects_and_goes_on(room: Room) -> None:
    p = producer(room, "cut", acks="all")
    try:
        assert p.send("cut-off", b"before").get(timeout=10).offset == 0
        answer = room.command(do="disconnect", client="cut")
        assert answer["ok"].startswith(("1 connections", "2 connections")), answer
        assert p.send("cut-off", b"after").get(timeout=20).offset == 1
    finally:
        p.close()
    assert "error" in room.command(do="disconnect", client="nobody")


def test_an_injected_retriable_error_is_retried_by_the_client(room: Room) -> None:
    refused = room.command(do="error-response", api="Produce", client="hiccup", error="NOPE")
    assert "error" in refused
    answer = room.command(
        do="error-response", api="Produce", client="hiccup", error="NOT_ENOUGH_REPLICAS"
    )
    assert "ok" in answer, answer
    p = producer(room, "hiccup", acks="all", retries=3)
    assert p.send("hiccups", b"x").get(timeout=20).offset == 0
    p.close()
    assert [r["hit"] for r in room.command(do="faults")["ok"]] == [1]
    assert [r.value for r in read_all(room, "hiccups", 1)] == [b"x"]

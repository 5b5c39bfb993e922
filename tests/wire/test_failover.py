"""A leader crash under real kafka-python producers: acks=all loses nothing, acks=1
loses what the isolated leader acknowledged alone (the client sees the new leader
through Metadata).  A crashed broker's port refuses connections, as a Kafka broker's
whose process is gone does, until it restarts."""

from __future__ import annotations

import logging

import pytest
from kafka import KafkaProducer, TopicPartition

from broker.simulation import Simulation
from broker.wire.control import default_spec
from broker.wire.gateway import Gateway
from tests.wire.room import Room, accepts, eventually
from tests.wire.test_kafka_python import FAST, read_all

pytestmark = pytest.mark.timeout(120)


def leader_of(p: KafkaProducer, topic: str) -> int:
    p.partitions_for(topic)  # creates the topic (auto-creation) and learns its leader
    leader: int = p._metadata.leader_for_partition(TopicPartition(topic, 0))
    return leader


def test_acks_all_loses_nothing_when_the_leader_crashes_mid_produce(room: Room) -> None:
    p = KafkaProducer(
        bootstrap_servers=room.bootstrap, client_id="safe", acks="all", linger_ms=5, **FAST
    )
    assert leader_of(p, "failover") == 1
    futures = []
    for i in range(200):
        futures.append(p.send("failover", f"m{i}".encode()))
        if i == 60:
            p.flush(timeout=10)
            assert "ok" in room.command(do="crash-broker", broker=1)
    p.flush(timeout=60)
    acked = {f.get(timeout=1).offset: f"m{i}".encode() for i, f in enumerate(futures)}
    assert len(acked) == 200
    # The client went on with the new leader, which it learnt from Metadata.
    assert p._metadata.leader_for_partition(TopicPartition("failover", 0)) != 1
    p.close()
    log = {r.offset: r.value for r in read_all(room, "failover", 200)}
    assert all(log.get(offset) == value for offset, value in acked.items())


def test_acks_1_loses_what_an_isolated_leader_acknowledged_alone(room: Room) -> None:
    p = KafkaProducer(
        bootstrap_servers=room.bootstrap,
        client_id="hasty",
        acks=1,
        enable_idempotence=False,
        **FAST,
    )
    assert leader_of(p, "risky") == 1
    assert p.send("risky", b"replicated").get(timeout=10).offset == 0
    eventually(lambda: len(read_all(room, "risky", 1)) == 1, what="the first record")
    assert "ok" in room.command(do="isolate-broker", broker=1, **{"from": "brokers"})
    acked = [p.send("risky", f"alone-{i}".encode()).get(timeout=10).offset for i in range(3)]
    assert acked == [1, 2, 3]  # acknowledged by the leader alone
    assert "ok" in room.command(do="crash-broker", broker=1)
    # After broker.session.timeout.ms the controller elects a follower that never had them;
    # the next record takes the offset the first lost one had.
    after = p.send("risky", b"after").get(timeout=60)
    assert after.offset == 1
    p.close()
    values = [r.value for r in read_all(room, "risky", 2)]
    assert values == [b"replicated", b"after"]


def test_a_crashed_brokers_port_refuses_connections_until_it_restarts(room: Room) -> None:
    assert accepts(room.brokers[2])
    assert "ok" in room.command(do="crash-broker", broker=2)
    eventually(lambda: not accepts(room.brokers[2]), what="broker-2's port to close")
    assert accepts(room.brokers[1]) and accepts(room.brokers[3])
    assert "ok" in room.command(do="restart-broker", broker=2)
    eventually(lambda: accepts(room.brokers[2]), what="broker-2's port to open again")


def test_a_refusal_repeated_in_a_loop_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulation(default_spec())
    gateway = Gateway(sim, {1: 1, 2: 2, 3: 3})
    sim.cluster.brokers[1].crash()
    with caplog.at_level(logging.WARNING, logger="broker.wire"):
        for _ in range(500):
            assert gateway.open(1, lambda _data: None, lambda _why: None) is None
    assert [r.getMessage() for r in caplog.records] == [
        "connection to broker-1 refused: the broker is down"
    ]
    assert len(gateway.refused) == 50  # the recent ones, for the room's own checks

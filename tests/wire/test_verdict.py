"""The verdict judges external clients' records: a gateway driven without sockets (frames in,
frames out, the engine's clock stepped by hand), exact offsets and message ids."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import (
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
)
from kafka.record.memory_records import MemoryRecordsBuilder

from broker.checker import Ledger
from broker.protocol import TopicPartition
from broker.scenario import load
from broker.simulation import Simulation
from broker.wire.control import apply_command, default_spec
from broker.wire.gateway import Gateway, Limits, WireConnection
from broker.wire.ledger import WireLedger

pytestmark = pytest.mark.timeout(30)


class Client:
    """One TCP connection of an external client, as the listener would hand its frames."""

    def __init__(self, gw: Gateway, broker: int, client_id: str) -> None:
        self.gw, self.client_id = gw, client_id
        self.answers: list[bytes] = []
        self.closes: list[str] = []
        conn = gw.open(broker, self.answers.append, self.closes.append)
        assert conn is not None
        self.conn: WireConnection = conn
        self.correlation = 0

    def request(self, request: Any, version: int) -> None:
        self.correlation += 1
        request.API_VERSION = version
        request.with_header(correlation_id=self.correlation, client_id=self.client_id)
        self.gw.receive(self.conn, bytes(request.encode(header=True)))

    def answer(self, cls: Any, version: int) -> Any:
        data = self.answers.pop(0)
        return cls.decode(data[4:], version=version, header=True)

    def close(self) -> None:
        """The client gives up on the connection (request.timeout.ms ran out)."""
        self.gw.closed(self.conn)


def records(
    values: list[bytes], producer: tuple[int, int, int] = (-1, -1, -1), txn: bool = False
) -> bytes:
    pid, epoch, sequence = producer
    builder = MemoryRecordsBuilder(
        magic=2,
        compression_type=0,
        batch_size=1 << 20,
        transactional=txn,
        producer_id=pid,
        producer_epoch=epoch,
        base_sequence=sequence,
    )
    for value in values:
        builder.append(timestamp=None, key=b"k", value=value, headers=[])
    builder.close()
    return bytes(builder.buffer())


def produce(data: bytes, acks: int = -1, txn_id: str | None = None) -> ProduceRequest:
    part = ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=data)
    topic = ProduceRequest.TopicProduceData(name="orders", partition_data=[part])
    return ProduceRequest(transactional_id=txn_id, acks=acks, timeout_ms=5000, topic_data=[topic])


def run(sim: Simulation, ms: int = 200) -> None:
    sim.scheduler.run_until(sim.now_ms + ms)


def partition_answer(client: Client) -> tuple[int, int]:
    response = client.answer(ProduceResponse, 7)
    part = response.responses[0].partition_responses[0]
    return part.error_code, part.base_offset


@pytest.fixture
def room() -> tuple[Simulation, Gateway]:
    sim = Simulation(default_spec())
    gw = Gateway(sim, {1: 9092, 2: 9093, 3: 9094})
    setup = Client(gw, 1, "setup")
    setup.request(
        MetadataRequest(
            topics=[MetadataRequest.MetadataRequestTopic(name="orders")],
            allow_auto_topic_creation=True,
        ),
        4,
    )
    run(sim)
    metadata = setup.answer(MetadataResponse, 4)
    assert metadata.topics[0].partitions[0].leader_id == 1
    return sim, gw


def anomalies(sim: Simulation) -> list[tuple[str, str, str | None, tuple[int, ...]]]:
    return [(a.kind, a.message_id, a.partition, a.offsets) for a in sim.verdict().anomalies]


def test_acknowledged_records_are_judged_with_their_offsets(room: Any) -> None:
    sim, gw = room
    app = Client(gw, 1, "app")
    app.request(produce(records([b"a", b"b"])), 7)
    run(sim)
    assert partition_answer(app) == (0, 0)
    app.request(produce(records([b"c"]), acks=0), 7)
    run(sim)
    messages = sim.ledger.messages
    assert {m: (e.status, e.acks, e.producer, e.index) for m, e in messages.items()} == {
        "app-1": ("acked", (("orders-0", 0),), "app", 1),
        "app-2": ("acked", (("orders-0", 1),), "app", 2),
        "app-3": ("acked", (("orders-0", -1),), "app", 3),  # acks=0: no offset
    }
    verdict = sim.verdict()
    assert verdict.outcome["produced"] == 3
    assert verdict.outcome["acknowledged"] == 3
    assert verdict.outcome["in_log"] == 3
    assert anomalies(sim) == []


def test_a_failed_produce_is_failed_with_the_kafka_error(room: Any) -> None:
    sim, gw = room
    apply_command(
        sim,
        {"do": "error-response", "api": "Produce", "client": "app", "error": "NOT_ENOUGH_REPLICAS"},
        gw,
    )
    app = Client(gw, 1, "app")
    app.request(produce(records([b"a"])), 7)
    run(sim)
    assert partition_answer(app) == (19, -1)  # NOT_ENOUGH_REPLICAS
    entry = sim.ledger.messages["app-1"]
    assert (entry.status, entry.errors) == ("failed", ("NOT_ENOUGH_REPLICAS",))
    assert sim.verdict().outcome["failed"] == 1
    assert anomalies(sim) == []


def test_a_resent_batch_without_idempotence_is_a_second_copy_of_the_same_message(
    room: Any,
) -> None:
    sim, gw = room
    app = Client(gw, 1, "app")
    app.request(produce(records([b"first"])), 7)
    run(sim)
    assert partition_answer(app) == (0, 0)
    apply_command(sim, {"do": "drop-response", "api": "Produce", "client": "app"}, gw)
    app.request(produce(records([b"x", b"y"])), 7)
    run(sim)
    assert app.answers == []  # the broker appended them; the answer was lost
    assert sim.ledger.messages["app-2"].status == "pending"
    app.close()
    assert sim.ledger.messages["app-2"].status == "unanswered"
    again = Client(gw, 1, "app")
    again.request(produce(records([b"x", b"y"])), 7)  # the client's retry
    run(sim)
    assert partition_answer(again) == (0, 3)
    entry = sim.ledger.messages["app-2"]
    assert (entry.status, entry.acks, entry.sends, entry.attempts) == (
        "acked",
        (("orders-0", 3),),
        1,  # the application handed it over once
        2,  # in two Produce requests
    )
    assert sorted(sim.ledger.messages) == ["app-1", "app-2", "app-3"]
    assert anomalies(sim) == [
        ("duplicate", "app-2", "orders-0", (1, 3)),
        ("duplicate", "app-3", "orders-0", (2, 4)),
    ]
    verdict = sim.verdict()
    assert verdict.anomalies[0].explanation == (
        "2 committed copies at orders-0@1, orders-0@3; sent 1 time(s) in 2 Produce request(s)"
    )
    outcome = verdict.outcome
    assert (outcome["produced"], outcome["in_log"], outcome["duplicated"]) == (3, 3, 2)
    # Once acknowledged, the same content again is a new message.
    again.request(produce(records([b"x", b"y"])), 7)
    run(sim)
    assert partition_answer(again) == (0, 5)
    assert sorted(sim.ledger.messages)[-2:] == ["app-4", "app-5"]


def init_producer_id(client: Client, txn_id: str | None = None) -> tuple[int, int]:
    client.request(
        InitProducerIdRequest(
            transactional_id=txn_id,
            transaction_timeout_ms=60_000,
            producer_id=-1,
            producer_epoch=-1,
        ),
        1,
    )
    run(client.gw.sim)
    answer = client.answer(InitProducerIdResponse, 1)
    assert answer.error_code == 0
    return answer.producer_id, answer.producer_epoch


def test_a_deduplicated_idempotent_retry_is_the_same_message_once(room: Any) -> None:
    sim, gw = room
    app = Client(gw, 1, "safe")
    pid, epoch = init_producer_id(app)
    app.request(produce(records([b"a"], (pid, epoch, 0))), 7)
    run(sim)
    assert partition_answer(app) == (0, 0)
    apply_command(sim, {"do": "drop-response", "api": "Produce", "client": "safe"}, gw)
    app.request(produce(records([b"b", b"c"], (pid, epoch, 1))), 7)
    run(sim)
    assert app.answers == []
    app.close()
    again = Client(gw, 1, "safe")
    again.request(produce(records([b"b", b"c"], (pid, epoch, 1))), 7)
    run(sim)
    # DUPLICATE_SEQUENCE path: not appended, answered with the original offset.
    assert partition_answer(again) == (0, 1)
    assert {m: (e.status, e.acks, e.attempts) for m, e in sim.ledger.messages.items()} == {
        "safe-1": ("acked", (("orders-0", 0),), 1),
        "safe-2": ("acked", (("orders-0", 1),), 2),
        "safe-3": ("acked", (("orders-0", 2),), 2),
    }
    assert anomalies(sim) == []
    assert sim.verdict().outcome["in_log"] == 3


def test_a_request_never_answered_is_not_lost(room: Any) -> None:
    sim, gw = room
    apply_command(sim, {"do": "drop-request", "api": "Produce", "client": "app"}, gw)
    app = Client(gw, 1, "app")
    app.request(produce(records([b"a"])), 7)
    run(sim)
    app.close()  # the client gives up: it reports a timeout to its application
    assert sim.ledger.messages["app-1"].status == "unanswered"
    outcome = sim.verdict().outcome
    assert (outcome["produced"], outcome["in_log"], outcome["lost"]) == (1, 0, 0)


def test_acknowledged_by_an_isolated_leader_alone_then_gone_is_lost(room: Any) -> None:
    sim, gw = room
    app = Client(gw, 1, "hasty")
    app.request(produce(records([b"replicated"])), 7)
    run(sim, 2000)
    assert partition_answer(app) == (0, 0)
    apply_command(sim, {"do": "isolate-broker", "broker": 1, "from": "brokers"}, gw)
    run(sim, 50)
    app.request(produce(records([b"alone"]), acks=1), 7)
    run(sim, 50)
    assert partition_answer(app) == (0, 1)  # acknowledged by the leader alone
    apply_command(sim, {"do": "crash-broker", "broker": 1}, gw)
    run(sim, 30_000)  # the controller fences broker-1 and elects a follower
    assert sim.cluster.controller.partitions[("orders", 0)].leader != 1
    assert anomalies(sim) == [("lost", "hasty-2", "orders-0", (1,))]
    [lost] = sim.verdict().anomalies
    assert lost.explanation.startswith("acknowledged (orders-0@1) but not in the committed log")


def test_aborted_transactional_records_are_not_lost_and_committed_ones_are_acknowledged(
    room: Any,
) -> None:
    sim, gw = room
    coordinator = Client(gw, 1, "payer")
    pid, epoch = init_producer_id(coordinator, "pay-1")
    coordinator.close()
    leader = Client(gw, 1, "payer")

    # AddPartitionsToTxn: the engine verifies transactional writes (KIP-890), so the
    # partition is added as a client would, through the coordinator.
    def add_partition() -> None:
        topic_cls = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic
        leader.request(
            AddPartitionsToTxnRequest(
                v3_and_below_transactional_id="pay-1",
                v3_and_below_producer_id=pid,
                v3_and_below_producer_epoch=epoch,
                v3_and_below_topics=[topic_cls(name="orders", partitions=[0])],
            ),
            3,
        )
        run(sim)
        leader.answers.pop(0)

    def end(commit: bool) -> int:
        leader.request(
            EndTxnRequest(
                transactional_id="pay-1", producer_id=pid, producer_epoch=epoch, committed=commit
            ),
            3,
        )
        run(sim, 2000)
        error: int = leader.answer(EndTxnResponse, 3).error_code
        return error

    add_partition()
    leader.request(produce(records([b"refund"], (pid, epoch, 0), txn=True), txn_id="pay-1"), 7)
    run(sim, 2000)
    assert partition_answer(leader) == (0, 0)
    assert sim.ledger.messages["payer-1"].status == "in-transaction"
    assert end(commit=False) == 0
    add_partition()
    leader.request(produce(records([b"pay"], (pid, epoch, 1), txn=True), txn_id="pay-1"), 7)
    run(sim, 2000)
    assert partition_answer(leader) == (0, 2)  # after the abort marker at 1
    assert end(commit=True) == 0
    assert {m: e.status for m, e in sim.ledger.messages.items()} == {
        "payer-1": "aborted",
        "payer-2": "acked",
    }
    outcome = sim.verdict().outcome
    assert (outcome["aborted"], outcome["acknowledged"], outcome["in_log"]) == (1, 1, 1)
    assert anomalies(sim) == []


def test_a_purely_simulated_run_records_exactly_what_it_did_before() -> None:
    spec = load("producer-acks1-failover")
    plain = Simulation.from_scenario(spec)
    plain.run()
    listened = Simulation.from_scenario(spec)
    Gateway(listened, {1: 1, 2: 2, 3: 3}, limits=Limits())
    listened.run()
    assert listened.verdict().to_dict() == plain.verdict().to_dict()
    assert sorted(listened.ledger.messages) == sorted(plain.ledger.messages)
    assert all(m.split("-")[0] == "p1" for m in plain.ledger.messages)


def test_a_client_named_like_a_simulated_producer_gets_ids_of_its_own() -> None:
    sim = Simulation.from_scenario(load("producer-acks1-failover"))
    gw = Gateway(sim, {1: 9092, 2: 9093, 3: 9094})
    sim.scheduler.run_until(50)
    assert {"p1-0", "p1-1", "p1-2"} <= set(sim.ledger.messages)  # the simulated p1's
    app = Client(gw, 1, "p1")
    app.request(produce(records([b"outside"]), acks=1), 7)
    run(sim, 20)
    error, offset = partition_answer(app)
    assert error == 0
    leader = sim.cluster.brokers[1].replicas[("orders", 0)].log
    [batch] = [lb for lb in leader.batches if lb.base_offset == offset]
    assert [r.message_id for r in batch.batch.records] == ["p1.wire-1"]
    assert sim.ledger.messages["p1.wire-1"].producer == "p1"


def test_the_batches_remembered_for_resends_are_bounded() -> None:
    numbers = itertools.count(1)
    told = WireLedger(Ledger(), lambda c, n: [f"{c}-{next(numbers)}" for _ in range(n)], 2)
    tp = TopicPartition("orders", 0)
    a, b, c = ((-1, -1, -1, content) for content in (101, 102, 103))
    assert [told.ids_for("app", tp, k, 1, answered=True) for k in (a, b, c)] == [
        ["app-1"],
        ["app-2"],
        ["app-3"],
    ]
    assert told.ids_for("app", tp, c, 1, answered=True) == ["app-3"]  # a resend of c
    assert told.ids_for("app", tp, a, 1, answered=True) == ["app-4"]  # a: forgotten
    assert len(told._batches) == 2 and len(told._unacked) == 2
    assert told.ids_for("app", tp, b, 1, answered=False) == ["app-5"]  # acks=0: not kept
    assert told.ids_for("app", tp, b, 1, answered=False) == ["app-6"]
    assert told.ids_for("other", tp, c, 1, answered=True) == ["other-7"]  # another client


def test_listeners_opened_again_give_new_records_new_ids(room: Any) -> None:
    """A room's listeners closed and opened again are a new gateway on the same run: its
    clients' records must not take the ids of those written before (a second "app-1" would
    read as a resend of the first, and the verdict would count a duplicate)."""
    sim, gw = room
    app = Client(gw, 1, "app")
    app.request(produce(records([b"a", b"b"])), 7)
    run(sim)
    assert partition_answer(app) == (0, 0)
    for conn in list(gw.connections.values()):
        gw.closed(conn)

    reopened = Gateway(sim, {1: 9092, 2: 9093, 3: 9094})
    again = Client(reopened, 1, "app")
    again.request(produce(records([b"c"])), 7)
    run(sim)
    assert partition_answer(again) == (0, 2)
    messages = sim.ledger.messages
    assert {m: (e.status, e.acks, e.sends, e.attempts) for m, e in messages.items()} == {
        "app-1": ("acked", (("orders-0", 0),), 1, 1),
        "app-2": ("acked", (("orders-0", 1),), 1, 1),
        "app-3": ("acked", (("orders-0", 2),), 1, 1),
    }
    assert anomalies(sim) == []

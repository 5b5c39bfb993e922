"""The transaction coordinator: its state table, every transition logged to __transaction_state
before it takes effect, InitProducerId fencing, the checks on AddPartitionsToTxn and EndTxn,
markers and coordinator epochs, transaction.timeout.ms, a new coordinator finishing what the old
one prepared, offsets sent inside a transaction (KIP-447) and partition verification (KIP-890)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from broker.errors import ErrorCode
from broker.faults import FaultRule
from broker.groups import OFFSETS_TOPIC
from broker.protocol import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    InitProducerIdResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    ProduceRequest,
    ProduceResponse,
    SyncGroupRequest,
    TopicPartition,
    TxnOffsetCommitRequest,
    WriteTxnMarkersRequest,
)
from broker.records import Record, RecordBatch
from broker.scenario import load_text
from broker.simulation import Simulation
from broker.transactions import (
    ALLOWED_PREVIOUS,
    TRANSACTION_STATE_TOPIC,
    TxnEntry,
    TxnMetadata,
    TxnState,
)
from tests.broker.conftest import events_of, submit
from tests.broker.consumer_support import RawClient

ORDERS_0 = TopicPartition("orders", 0)
ORDERS_1 = TopicPartition("orders", 1)
TXN_STATE_0 = TopicPartition(TRANSACTION_STATE_TOPIC, 0)
OFFSETS_0 = TopicPartition(OFFSETS_TOPIC, 0)

# Three brokers, a fixed 1 ms latency, "orders" with two partitions.  p1 (transactional) and
# the consumer "idle" only start at 500 s: they are there so that __transaction_state-0 and
# __consumer_offsets-0 exist (both led by broker-1), and the tests talk to the brokers by hand.
TXN_CLUSTER = """
semantics = "exactly-once"
duration_ms = 600000

[cluster]
brokers = 3
latency_ms = 1
"group.initial.rebalance.delay.ms" = 0
"broker.session.timeout.ms" = 2000
{cluster}

[[topics]]
name = "orders"
partitions = 2
"replication.factor" = 3
{topic}

[[producers]]
name = "p1"
start_ms = 500000
[producers.config]
"transactional.id" = "app-tx"

[[consumers]]
name = "idle"
group = "other"
topics = ["orders"]
start_ms = 500000

[[steps]]
at_ms = 590000
do = "note"
"""


def txn_cluster(cluster: str = "", topic: str = "") -> Simulation:
    sim = Simulation(load_text(TXN_CLUSTER.format(cluster=cluster, topic=topic), "unit-test"))
    sim.run_until(100)
    return sim


def txn_log(sim: Simulation, broker_id: int = 1) -> list[tuple[int, str, dict[str, Any]]]:
    """__transaction_state-0 on one broker: (offset, key, decoded value)."""
    log = sim.cluster.brokers[broker_id].replicas[TXN_STATE_0].log
    out = []
    for offset, lb, i in log.records_below(log.log_end_offset):
        record = lb.batch.records[i]
        out.append((offset, record.key, json.loads(record.value)))
    return out


def states(sim: Simulation, broker: str | None = None) -> list[str]:
    """The coordinator's applied transitions, in order."""
    return [e.detail for e in events_of(sim, "txn.state", broker)]


def markers(sim: Simulation, broker_id: int, tp: TopicPartition) -> list[tuple[int, Any]]:
    """The control batches of a partition on one broker: (offset, batch)."""
    log = sim.cluster.brokers[broker_id].replicas[tp].log
    return [(lb.base_offset, lb.batch) for lb in log.batches if lb.batch.is_control]


# -- the state table ---------------------------------------------------------------
# Kafka's TransactionState table, written out from kafka-semantics.md §4 (not from the code).
EXPECTED_PREVIOUS = {
    "Empty": {"Empty", "CompleteCommit", "CompleteAbort"},
    "Ongoing": {"Ongoing", "Empty", "CompleteCommit", "CompleteAbort"},
    "PrepareCommit": {"Ongoing"},
    "PrepareAbort": {"Ongoing", "PrepareEpochFence"},
    "CompleteCommit": {"PrepareCommit"},
    "CompleteAbort": {"PrepareAbort"},
    "PrepareEpochFence": {"Ongoing"},
    "Dead": {"Empty", "CompleteCommit", "CompleteAbort"},
}
PAIRS = [(current, target) for current in TxnState for target in TxnState]
ALLOWED = [(c, t) for c, t in PAIRS if c.value in EXPECTED_PREVIOUS[t.value]]
REFUSED = [(c, t) for c, t in PAIRS if c.value not in EXPECTED_PREVIOUS[t.value]]


def pair_id(pair: tuple[TxnState, TxnState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_the_table_is_kafkas() -> None:
    assert {t.value: {s.value for s in prev} for t, prev in ALLOWED_PREVIOUS.items()} == (
        EXPECTED_PREVIOUS
    )
    assert (len(ALLOWED), len(REFUSED)) == (16, 48)


def entry_in(sim: Simulation, state: TxnState) -> TxnEntry:
    """A transactional.id "t" in ``state`` registered at broker-1's coordinator."""
    meta = TxnMetadata("t", 7, 3, 60000, state, (ORDERS_0,), 50)
    entry = TxnEntry(meta)
    sim.cluster.brokers[1].txns.entries["t"] = entry
    return entry


def transition(
    sim: Simulation, entry: TxnEntry, target: TxnState
) -> tuple[ErrorCode, list[ErrorCode]]:
    called: list[ErrorCode] = []
    error = sim.cluster.brokers[1].txns._transition(entry, target, called.append, producer_epoch=4)
    return error, called


@pytest.mark.parametrize("pair", ALLOWED, ids=pair_id)
def test_an_allowed_transition_is_logged_then_applied(pair: tuple[TxnState, TxnState]) -> None:
    current, target = pair
    sim = txn_cluster()
    entry = entry_in(sim, current)
    before = entry.meta
    log = sim.cluster.brokers[1].replicas[TXN_STATE_0].log
    assert log.log_end_offset == 0

    error, called = transition(sim, entry, target)

    assert error is ErrorCode.NONE
    # Written first: one record at offset 0 holding the whole new state...
    assert txn_log(sim) == [
        (
            0,
            "txn/t",
            {
                "transactional_id": "t",
                "producer_id": 7,
                "producer_epoch": 4,
                "timeout_ms": 60000,
                "state": target.value,
                "partitions": ["orders-0"],
                "start_ms": 50,
            },
        )
    ]
    # ...but nothing changes until that record is committed.
    assert (entry.meta, entry.pending, called) == (before, target, [])
    applied_at = None
    while applied_at is None:
        sim.run_until(sim.now_ms + 1)
        if log.high_watermark == 0:
            assert (entry.meta, called) == (before, [])
        else:
            applied_at = sim.now_ms
    assert called == [ErrorCode.NONE]
    assert entry.meta == TxnMetadata("t", 7, 4, 60000, target, (ORDERS_0,), 50)
    assert entry.pending is None
    [hw] = [e for e in events_of(sim, "hw.advance", "broker-1") if e.partition == str(TXN_STATE_0)]
    [applied] = events_of(sim, "txn.state")
    assert applied.time_ms == hw.time_ms == applied_at
    assert applied.detail == (
        f"t: {current.value} -> {target.value} (PID 7 epoch 4, partitions orders-0)"
    )


@pytest.mark.parametrize("pair", REFUSED, ids=pair_id)
def test_a_refused_transition_is_invalid_txn_state_and_changes_nothing(
    pair: tuple[TxnState, TxnState],
) -> None:
    current, target = pair
    sim = txn_cluster()
    entry = entry_in(sim, current)
    before = entry.meta

    error, called = transition(sim, entry, target)
    sim.run_until(200)

    assert (error, error.value) == (ErrorCode.INVALID_TXN_STATE, 48)
    assert entry.meta is before
    assert (entry.pending, called) == (None, [])
    assert txn_log(sim) == []
    assert events_of(sim, "txn.state") == []
    [refused] = events_of(sim, "txn.illegal-transition")
    assert (refused.error, refused.detail) == (
        "INVALID_TXN_STATE",
        f"t: {current.value} -> {target.value} refused",
    )


def test_a_transition_while_another_is_being_logged_is_concurrent_transactions() -> None:
    sim = txn_cluster()
    entry = entry_in(sim, TxnState.ONGOING)
    assert transition(sim, entry, TxnState.PREPARE_COMMIT)[0] is ErrorCode.NONE

    error, called = transition(sim, entry, TxnState.PREPARE_ABORT)

    assert (error, error.value) == (ErrorCode.CONCURRENT_TRANSACTIONS, 51)
    sim.run_until(200)
    assert called == []
    assert [value["state"] for _o, _k, value in txn_log(sim)] == ["PrepareCommit"]
    assert entry.meta.state is TxnState.PREPARE_COMMIT


def test_a_transition_is_not_applied_while_its_record_cannot_be_replicated() -> None:
    sim = txn_cluster('"replica.lag.time.max.ms" = 1000')
    submit(sim, do="isolate-broker", broker=2)
    submit(sim, do="isolate-broker", broker=3)
    sim.run_until(110)
    entry = entry_in(sim, TxnState.ONGOING)
    log = sim.cluster.brokers[1].replicas[TXN_STATE_0].log

    error, called = transition(sim, entry, TxnState.PREPARE_COMMIT)
    sim.run_until(1000)

    assert error is ErrorCode.NONE
    assert (log.high_watermark, log.log_end_offset) == (0, 1)
    assert (entry.meta.state, entry.pending, called) == (
        TxnState.ONGOING,
        TxnState.PREPARE_COMMIT,
        [],
    )
    sim.run_until(1500)  # the ISR shrinks to [1]: the record is committed, the state applied
    assert log.high_watermark == 1
    assert (entry.meta.state, entry.pending, called) == (
        TxnState.PREPARE_COMMIT,
        None,
        [ErrorCode.NONE],
    )


# -- requests through the network ----------------------------------------------------
class TxnClient(RawClient):
    """A bare transactional client: hand-made coordinator requests to broker-1."""

    tid = "raw-tx"

    def init(self, timeout_ms: int = 60000) -> InitProducerIdResponse:
        answer = self.ask(1, InitProducerIdRequest(self.tid, transaction_timeout_ms=timeout_ms))
        assert isinstance(answer, InitProducerIdResponse)
        return answer

    def add(self, pid: int, epoch: int, *tps: TopicPartition) -> ErrorCode:
        return self.ask(1, AddPartitionsToTxnRequest(self.tid, pid, epoch, tps)).error

    def end(self, pid: int, epoch: int, commit: bool, wait_ms: int = 20) -> ErrorCode:
        return self.ask(1, EndTxnRequest(self.tid, pid, epoch, commit), wait_ms).error

    def produce(
        self, broker: int, tp: TopicPartition, pid: int, epoch: int, *ids: str
    ) -> ProduceResponse:
        batch = RecordBatch(
            tuple(Record(i, None, "v") for i in ids), pid, epoch, 0, is_transactional=True
        )
        answer = self.ask(broker, ProduceRequest(tp, batch, -1, 5000, self.tid))
        assert isinstance(answer, ProduceResponse)
        return answer

    def ask_soon(self, broker: int, request: Any) -> Any:
        """Send, and return the answer the moment it arrives (1 ms steps)."""
        before = len(self.answers)
        self.sim.network.send_request(self.name, f"broker-{broker}", request)
        while len(self.answers) == before:
            self.sim.run_until(self.sim.now_ms + 1)
        [answer] = self.answers[before:]
        return answer


def test_init_producer_id_gives_epoch_0_then_bumps_it_at_every_call() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)

    first, second, third = client.init(), client.init(), client.init()

    assert [(a.error, a.producer_id, a.producer_epoch) for a in (first, second, third)] == [
        (ErrorCode.NONE, 0, 0),
        (ErrorCode.NONE, 0, 1),
        (ErrorCode.NONE, 0, 2),
    ]
    assert states(sim) == [
        "raw-tx: Empty -> Empty (PID 0 epoch 0)",
        "raw-tx: Empty -> Empty (PID 0 epoch 1)",
        "raw-tx: Empty -> Empty (PID 0 epoch 2)",
    ]
    # The epoch is what fences: the first instance's requests are refused now.
    assert client.add(0, 1, ORDERS_0) is ErrorCode.PRODUCER_FENCED


def test_init_producer_id_during_a_transaction_is_concurrent_transactions_until_aborted() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    assert client.init().producer_epoch == 0
    assert client.add(0, 0, ORDERS_0, ORDERS_1) is ErrorCode.NONE
    request = InitProducerIdRequest("raw-tx")

    # A new instance asks again and again, each time as soon as it has its answer.
    answers: list[tuple[int, ErrorCode, int]] = []
    while not answers or answers[-1][1] is not ErrorCode.NONE:
        answer = client.ask_soon(1, request)
        answers.append((sim.now_ms, answer.error, answer.producer_epoch))

    [complete] = [e for e in events_of(sim, "txn.state") if "-> CompleteAbort" in e.detail]
    refused = [a for a in answers if a[1] is ErrorCode.CONCURRENT_TRANSACTIONS]
    assert ErrorCode.CONCURRENT_TRANSACTIONS.value == 51
    assert refused == answers[:-1]
    # Asked at 141 ms (the first, which starts the fence), answered every 2 ms while the abort
    # goes on; the abort completes at 151 ms; the next request then gets epoch 2.
    assert [time_ms for time_ms, _e, _p in refused] == [142, 144, 146, 148, 150]
    assert complete.time_ms == 151
    assert answers[-1] == (156, ErrorCode.NONE, 2)
    [fence] = events_of(sim, "txn.fence")
    assert fence.detail.startswith("raw-tx: a new instance called initTransactions")
    assert states(sim)[2:] == [
        "raw-tx: Ongoing -> PrepareEpochFence (PID 0 epoch 1, partitions orders-0, orders-1)",
        "raw-tx: PrepareEpochFence -> PrepareAbort (PID 0 epoch 1, partitions orders-0, orders-1)",
        "raw-tx: PrepareAbort -> CompleteAbort (PID 0 epoch 1)",
        "raw-tx: CompleteAbort -> Empty (PID 0 epoch 2)",
    ]
    for broker_id, tp in ((1, ORDERS_0), (2, ORDERS_1)):
        [(offset, marker)] = markers(sim, broker_id, tp)
        assert (offset, marker.records[0].key, marker.producer_epoch) == (0, "ABORT", 1)


def test_add_partitions_with_an_old_epoch_is_producer_fenced() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()
    client.init()
    log_before = txn_log(sim)

    error = client.add(0, 0, ORDERS_0)

    assert (error, error.value) == (ErrorCode.PRODUCER_FENCED, 90)
    [fenced] = events_of(sim, "txn.fenced")
    assert (fenced.error, fenced.detail) == ("PRODUCER_FENCED", "raw-tx: epoch 0 < 1")
    assert txn_log(sim) == log_before
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.EMPTY


def test_requests_from_an_unknown_producer_id_are_invalid_producer_id_mapping() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()

    wrong_pid = client.add(99, 0, ORDERS_0)
    unknown_id = client.ask(1, AddPartitionsToTxnRequest("nobody-tx", 0, 0, (ORDERS_0,))).error
    end = client.end(99, 0, commit=True)

    assert (wrong_pid, wrong_pid.value) == (ErrorCode.INVALID_PRODUCER_ID_MAPPING, 49)
    assert unknown_id is ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert end is ErrorCode.INVALID_PRODUCER_ID_MAPPING
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.EMPTY
    assert len(txn_log(sim)) == 1


def test_end_txn_in_empty_is_invalid_txn_state() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()

    commit, abort = client.end(0, 0, commit=True), client.end(0, 0, commit=False)

    assert (commit, abort) == (ErrorCode.INVALID_TXN_STATE, ErrorCode.INVALID_TXN_STATE)
    assert [e.detail for e in events_of(sim, "txn.illegal-transition")] == [
        "raw-tx: EndTxn in state Empty",
        "raw-tx: EndTxn in state Empty",
    ]
    assert len(txn_log(sim)) == 1


def test_a_retried_end_txn_after_complete_commit_succeeds_the_other_outcome_does_not() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()
    client.add(0, 0, ORDERS_0)
    assert client.end(0, 0, commit=True) is ErrorCode.NONE
    sim.run_until(sim.now_ms + 50)
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.COMPLETE_COMMIT
    logged = len(txn_log(sim))

    retried = client.end(0, 0, commit=True)
    other = client.end(0, 0, commit=False)

    assert (retried, other) == (ErrorCode.NONE, ErrorCode.INVALID_TXN_STATE)
    assert len(txn_log(sim)) == logged
    assert len(markers(sim, 1, ORDERS_0)) == 1


def test_end_txn_while_markers_are_being_written_is_concurrent_transactions() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()
    client.add(0, 0, ORDERS_0)
    request = EndTxnRequest("raw-tx", 0, 0, True)
    assert client.ask_soon(1, request).error is ErrorCode.NONE  # PrepareCommit is logged
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.PREPARE_COMMIT

    error = client.ask_soon(1, request).error

    assert (error, error.value) == (ErrorCode.CONCURRENT_TRANSACTIONS, 51)
    sim.run_until(sim.now_ms + 50)
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.COMPLETE_COMMIT
    assert len(markers(sim, 1, ORDERS_0)) == 1


# -- markers ----------------------------------------------------------------------------
def committed_two_partition_txn(sim: Simulation) -> TxnClient:
    """raw-tx writes t0 to orders-0 (leader broker-1) and t1, t2 to orders-1 (leader
    broker-2) in one transaction, then commits."""
    client = TxnClient(sim)
    client.init()
    assert client.add(0, 0, ORDERS_0, ORDERS_1) is ErrorCode.NONE
    assert client.produce(1, ORDERS_0, 0, 0, "t0").base_offset == 0
    assert client.produce(2, ORDERS_1, 0, 0, "t1", "t2").base_offset == 0
    assert client.end(0, 0, commit=True) is ErrorCode.NONE
    sim.run_until(sim.now_ms + 50)
    return client


def test_commit_markers_take_an_offset_in_every_partition_of_the_transaction() -> None:
    sim = txn_cluster()
    committed_two_partition_txn(sim)

    [(offset_0, marker_0)] = markers(sim, 1, ORDERS_0)
    [(offset_1, marker_1)] = markers(sim, 2, ORDERS_1)
    assert (offset_0, offset_1) == (1, 2)
    for marker in (marker_0, marker_1):
        assert (marker.is_control, marker.is_transactional) == (True, True)
        assert (marker.producer_id, marker.producer_epoch) == (0, 0)
        [record] = marker.records
        assert (record.key, record.value) == ("COMMIT", "coordinator epoch 0")
    for broker_id, tp, end in ((1, ORDERS_0, 2), (2, ORDERS_1, 3)):
        log = sim.cluster.brokers[broker_id].replicas[tp].log
        assert (log.log_end_offset, log.last_stable_offset, log.ongoing) == (end, end, {})
    assert [(e.actor, e.partition, e.offset) for e in events_of(sim, "txn.marker")] == [
        ("broker-1", "orders-0", 1),
        ("broker-2", "orders-1", 2),
    ]
    assert states(sim)[-3:] == [
        "raw-tx: Empty -> Ongoing (PID 0 epoch 0, partitions orders-0, orders-1)",
        "raw-tx: Ongoing -> PrepareCommit (PID 0 epoch 0, partitions orders-0, orders-1)",
        "raw-tx: PrepareCommit -> CompleteCommit (PID 0 epoch 0)",
    ]


def test_abort_markers_enter_the_aborted_index_of_every_partition() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init()
    client.add(0, 0, ORDERS_0, ORDERS_1)
    client.produce(1, ORDERS_0, 0, 0, "t0")
    client.produce(2, ORDERS_1, 0, 0, "t1", "t2")

    assert client.end(0, 0, commit=False) is ErrorCode.NONE
    sim.run_until(sim.now_ms + 50)

    for broker_id, tp, marker_offset in ((1, ORDERS_0, 1), (2, ORDERS_1, 2)):
        [(offset, marker)] = markers(sim, broker_id, tp)
        assert (offset, marker.records[0].key) == (marker_offset, "ABORT")
        log = sim.cluster.brokers[broker_id].replicas[tp].log
        assert [(t.producer_id, t.first_offset, t.last_offset) for t in log.aborted] == [
            (0, 0, marker_offset)
        ]
    assert states(sim)[-1] == "raw-tx: PrepareAbort -> CompleteAbort (PID 0 epoch 0)"


def test_a_marker_from_an_older_coordinator_epoch_is_fenced_and_not_appended() -> None:
    sim = txn_cluster()
    client = RawClient(sim)
    newer = client.ask(1, WriteTxnMarkersRequest(ORDERS_0, 5, 0, 3, True))
    log = sim.cluster.brokers[1].replicas[ORDERS_0].log
    assert (newer.error, log.log_end_offset) == (ErrorCode.NONE, 1)

    older = client.ask(1, WriteTxnMarkersRequest(ORDERS_0, 5, 0, 2, False))

    assert (older.error, older.error.value) == (ErrorCode.TRANSACTION_COORDINATOR_FENCED, 52)
    assert log.log_end_offset == 1
    assert [b.records[0].key for _o, b in markers(sim, 1, ORDERS_0)] == ["COMMIT"]
    [fenced] = events_of(sim, "txn.marker-fenced")
    assert (fenced.partition, fenced.error, fenced.detail) == (
        "orders-0",
        "TRANSACTION_COORDINATOR_FENCED",
        "marker from coordinator epoch 2 < 3",
    )
    # The same epoch again is not fenced (a retried marker).
    same = client.ask(1, WriteTxnMarkersRequest(ORDERS_0, 5, 0, 3, True))
    assert (same.error, log.log_end_offset) == (ErrorCode.NONE, 2)


def test_a_new_partition_leader_still_fences_a_marker_from_an_older_coordinator_epoch() -> None:
    sim = txn_cluster()
    client = RawClient(sim)
    assert client.ask(1, WriteTxnMarkersRequest(ORDERS_0, 5, 0, 3, True)).error is ErrorCode.NONE
    submit(sim, do="crash-broker", broker=1)
    sim.run_until(sim.now_ms + 3000)
    assert sim.cluster.leader_of(ORDERS_0) == 2
    log = sim.cluster.brokers[2].replicas[ORDERS_0].log
    assert log.log_end_offset == 1  # broker-2 holds the COMMIT marker of coordinator epoch 3

    older = client.ask(2, WriteTxnMarkersRequest(ORDERS_0, 5, 0, 2, False))

    assert older.error is ErrorCode.TRANSACTION_COORDINATOR_FENCED
    assert log.log_end_offset == 1


# -- transaction.timeout.ms -----------------------------------------------------------
def test_an_ongoing_transaction_past_its_timeout_is_fenced_and_aborted_by_the_coordinator() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init(timeout_ms=1000)
    client.add(0, 0, ORDERS_0)
    client.produce(1, ORDERS_0, 0, 0, "t0")
    [ongoing] = [e for e in events_of(sim, "txn.state") if "-> Ongoing" in e.detail]
    start_ms = sim.cluster.transaction_metadata("raw-tx").start_ms

    sim.run_until(start_ms + 999)
    assert events_of(sim, "txn.timeout") == []
    sim.run_until(start_ms + 1100)

    [timeout] = events_of(sim, "txn.timeout")
    assert timeout.time_ms == start_ms + 1000
    assert start_ms < ongoing.time_ms
    assert timeout.detail.startswith("raw-tx: open longer than transaction.timeout.ms=1000")
    assert states(sim)[-3:] == [
        "raw-tx: Ongoing -> PrepareEpochFence (PID 0 epoch 1, partitions orders-0)",
        "raw-tx: PrepareEpochFence -> PrepareAbort (PID 0 epoch 1, partitions orders-0)",
        "raw-tx: PrepareAbort -> CompleteAbort (PID 0 epoch 1)",
    ]
    [(offset, marker)] = markers(sim, 1, ORDERS_0)
    assert (offset, marker.records[0].key, marker.producer_epoch) == (1, "ABORT", 1)
    # The producer that stalled is fenced now.
    assert client.end(0, 0, commit=True) is ErrorCode.PRODUCER_FENCED


def test_a_transaction_ended_in_time_is_not_aborted_by_the_timeout() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init(timeout_ms=1000)
    client.add(0, 0, ORDERS_0)
    client.end(0, 0, commit=True)

    sim.run_until(sim.now_ms + 3000)

    assert events_of(sim, "txn.timeout") == []
    assert sim.cluster.transaction_metadata("raw-tx") == TxnMetadata(
        "raw-tx", 0, 0, 1000, TxnState.COMPLETE_COMMIT
    )


# -- a new coordinator ----------------------------------------------------------------
def test_a_new_coordinator_loads_the_log_and_finishes_the_markers_of_a_prepared_commit() -> None:
    # orders-0 and orders-1 are led by brokers 2 and 3; broker-1 only coordinates.
    sim = txn_cluster(topic="replicas = [[2, 3, 1], [3, 1, 2]]")
    client = TxnClient(sim)
    client.init()
    client.add(0, 0, ORDERS_0, ORDERS_1)
    client.produce(2, ORDERS_0, 0, 0, "t0")
    client.produce(3, ORDERS_1, 0, 0, "t1")
    # broker-1's markers spend 10 s in the network: it crashes before they arrive.
    sim.network.arm(
        FaultRule(
            "delay-request", api="WriteTxnMarkers", src="broker-1", count=None, delay_ms=10_000
        )
    )
    assert client.end(0, 0, commit=True) is ErrorCode.NONE
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.PREPARE_COMMIT
    crash_ms = sim.now_ms
    submit(sim, do="crash-broker", broker=1)

    sim.run_until(crash_ms + 5000)

    [loaded] = events_of(sim, "txn.loaded")
    assert loaded.actor == "broker-2"
    assert loaded.detail == (
        "coordinator for raw-tx at coordinator epoch 1: state rebuilt from the log"
    )
    assert crash_ms + 2000 <= loaded.time_ms <= crash_ms + 2100
    for broker_id, tp in ((2, ORDERS_0), (3, ORDERS_1)):
        [(offset, marker)] = markers(sim, broker_id, tp)
        assert (offset, marker.records[0].key, marker.records[0].value) == (
            1,
            "COMMIT",
            "coordinator epoch 1",
        )
        assert sim.cluster.brokers[broker_id].replicas[tp].log.last_stable_offset == 2
    assert states(sim, "broker-2") == ["raw-tx: PrepareCommit -> CompleteCommit (PID 0 epoch 0)"]
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.COMPLETE_COMMIT

    # Then the old coordinator's markers arrive: fenced by the coordinator epoch.
    sim.run_until(crash_ms + 12_000)
    fenced = events_of(sim, "txn.marker-fenced")
    assert sorted((e.actor, e.partition, e.detail) for e in fenced) == [
        ("broker-2", "orders-0", "marker from coordinator epoch 0 < 1"),
        ("broker-3", "orders-1", "marker from coordinator epoch 0 < 1"),
    ]
    assert [len(markers(sim, b, tp)) for b, tp in ((2, ORDERS_0), (3, ORDERS_1))] == [1, 1]


def test_a_new_coordinator_rebuilds_an_ongoing_transaction_and_keeps_its_timeout() -> None:
    sim = txn_cluster()
    client = TxnClient(sim)
    client.init(timeout_ms=5000)
    client.add(0, 0, ORDERS_1)
    start_ms = sim.cluster.transaction_metadata("raw-tx").start_ms
    submit(sim, do="crash-broker", broker=1)

    sim.run_until(start_ms + 5100)

    [loaded] = events_of(sim, "txn.loaded")
    assert loaded.actor == "broker-2"
    [timeout] = events_of(sim, "txn.timeout")
    assert (timeout.actor, timeout.time_ms) == ("broker-2", start_ms + 5000)
    assert sim.cluster.transaction_metadata("raw-tx").state is TxnState.COMPLETE_ABORT


# -- offsets inside a transaction (TxnOffsetCommit, KIP-447) ------------------------------
def group_member(client: RawClient) -> tuple[str, int]:
    """Join group g alone and sync: (member id, generation)."""
    join = client.ask(1, JoinGroupRequest("g", "", "tester", 6000, 10_000, "range", ("orders",)))
    assert isinstance(join, JoinGroupResponse)
    client.ask(1, SyncGroupRequest("g", join.generation_id, join.member_id, ()))
    return join.member_id, join.generation_id


def fetch(client: RawClient) -> OffsetFetchResponse:
    answer = client.ask(1, OffsetFetchRequest("g", (ORDERS_0,)))
    assert isinstance(answer, OffsetFetchResponse)
    return answer


def offsets_in_txn(
    sim: Simulation, member: Callable[[str, int], tuple[str, int]] = lambda m, g: (m, g)
) -> tuple[TxnClient, ErrorCode]:
    client = TxnClient(sim)
    member_id, generation = member(*group_member(client))
    client.init()
    assert client.ask(1, AddOffsetsToTxnRequest("raw-tx", 0, 0, "g")).error is ErrorCode.NONE
    assert sim.cluster.transaction_metadata("raw-tx").partitions == (OFFSETS_0,)
    answer = client.ask(
        1, TxnOffsetCommitRequest("raw-tx", "g", 0, 0, member_id, generation, ((ORDERS_0, 5),))
    )
    return client, answer.error


def test_offsets_sent_in_a_transaction_are_unstable_until_the_commit_marker() -> None:
    sim = txn_cluster()
    client, error = offsets_in_txn(sim)
    assert error is ErrorCode.NONE

    unstable = fetch(client)

    assert (unstable.error, unstable.error.value) == (ErrorCode.UNSTABLE_OFFSET_COMMIT, 88)
    assert [e.detail for e in events_of(sim, "offset.pending")] == [
        "group g: orders-0=5 pending in the transaction of PID 0"
    ]
    assert client.end(0, 0, commit=True) is ErrorCode.NONE
    sim.run_until(sim.now_ms + 50)
    assert [e.detail for e in events_of(sim, "offset.committed")] == [
        "group g: orders-0=5 visible: the transaction committed"
    ]
    assert fetch(client).offsets == ((ORDERS_0, 5),)


def test_offsets_sent_in_an_aborted_transaction_are_dropped() -> None:
    sim = txn_cluster()
    client, _error = offsets_in_txn(sim)

    assert client.end(0, 0, commit=False) is ErrorCode.NONE
    sim.run_until(sim.now_ms + 50)

    assert [e.detail for e in events_of(sim, "offset.dropped")] == [
        "group g: orders-0=5 dropped: the transaction aborted"
    ]
    answer = fetch(client)
    assert (answer.error, answer.offsets) == (ErrorCode.NONE, ((ORDERS_0, -1),))


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        (lambda m, g: (m, g + 1), ErrorCode.ILLEGAL_GENERATION),
        (lambda m, g: ("nobody-9", g), ErrorCode.UNKNOWN_MEMBER_ID),
    ],
    ids=["stale-generation", "unknown-member"],
)
def test_txn_offset_commit_from_another_generation_or_member_is_refused(
    member: Callable[[str, int], tuple[str, int]], expected: ErrorCode
) -> None:
    sim = txn_cluster()

    client, error = offsets_in_txn(sim, member)

    assert error is expected
    assert expected.value in (22, 25)
    [rejected] = events_of(sim, "offset.commit-rejected")
    assert rejected.error == expected.name
    assert events_of(sim, "offset.pending") == []
    log = sim.cluster.brokers[1].replicas[OFFSETS_0].log
    keys = [lb.batch.records[i].key for _o, lb, i in log.records_below(log.log_end_offset)]
    assert keys == ["group/g"]  # the group's metadata only: no offset record
    answer = fetch(client)
    assert (answer.error, answer.offsets) == (ErrorCode.NONE, ((ORDERS_0, -1),))


# -- KIP-890: partition verification --------------------------------------------------------
def write_outside_the_transaction(sim: Simulation) -> tuple[TxnClient, ProduceResponse]:
    """raw-tx adds orders-0 only, writes t0 there, then writes x1 to orders-1."""
    client = TxnClient(sim)
    client.init()
    client.add(0, 0, ORDERS_0)
    assert client.produce(1, ORDERS_0, 0, 0, "t0").error is ErrorCode.NONE
    return client, client.produce(2, ORDERS_1, 0, 0, "x1")


def test_with_verification_a_write_to_a_partition_not_in_the_transaction_is_refused() -> None:
    sim = txn_cluster()

    client, answer = write_outside_the_transaction(sim)

    assert (answer.error, answer.error.value) == (ErrorCode.INVALID_TXN_STATE, 48)
    log = sim.cluster.brokers[2].replicas[ORDERS_1].log
    assert (log.log_end_offset, log.ongoing) == (0, {})
    [refused] = [e for e in events_of(sim, "produce.reject") if e.partition == "orders-1"]
    assert refused.detail == (
        "KIP-890 verification: orders-1 is not part of an open transaction of this producer"
    )
    client.end(0, 0, commit=True)
    sim.run_until(sim.now_ms + 50)
    assert log.last_stable_offset == log.high_watermark == 0


def test_without_verification_the_write_is_appended_and_hangs_the_lso() -> None:
    sim = txn_cluster('"transaction.partition.verification.enable" = false')

    client, answer = write_outside_the_transaction(sim)
    assert (answer.error, answer.base_offset) == (ErrorCode.NONE, 0)
    client.end(0, 0, commit=True)
    sim.run_until(sim.now_ms + 50)
    # A later write to orders-1 by someone else, committed...
    other = TxnClient(sim, "other")
    other.ask(2, ProduceRequest(ORDERS_1, RecordBatch((Record("y", None, "v"),)), -1, 5000))
    sim.run_until(sim.now_ms + 1000)

    log = sim.cluster.brokers[2].replicas[ORDERS_1].log
    assert [b.batch.records[0].message_id for b in log.batches] == ["x1", "y"]
    # ...but the COMMIT marker went to orders-0 only: orders-1's transaction never ends.
    assert [e.partition for e in events_of(sim, "txn.marker")] == ["orders-0"]
    assert (log.ongoing, log.high_watermark, log.last_stable_offset) == ({0: 0}, 2, 0)

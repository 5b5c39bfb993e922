"""The partition log's side of transactions: open transactions, markers, the
last stable offset, the aborted-transaction index, and what a read_committed
consumer is allowed to see."""

from __future__ import annotations

from broker.clients.consumer import Consumer
from broker.errors import ErrorCode
from broker.log import PartitionLog
from broker.protocol import FetchResponse, TopicPartition
from broker.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    AbortedTxn,
    Record,
    RecordBatch,
    marker_batch,
)

TP = TopicPartition("orders", 0)


def data(*ids: str, pid: int = -1, transactional: bool = False) -> RecordBatch:
    return RecordBatch(
        tuple(Record(i, None, "v") for i in ids),
        producer_id=pid,
        producer_epoch=0 if pid >= 0 else -1,
        base_sequence=0 if pid >= 0 else -1,
        is_transactional=transactional,
    )


def build(*batches: RecordBatch) -> PartitionLog:
    log = PartitionLog(TP)
    for batch in batches:
        log.append_as_leader(batch, 0, 0)
    log.update_high_watermark(log.log_end_offset)
    return log


def test_an_open_transaction_holds_the_last_stable_offset_at_its_first_offset() -> None:
    log = build(data("a"), data("t1", "t2", pid=7, transactional=True), data("b"))

    assert log.first_unstable_offset == 1
    assert log.last_stable_offset == 1
    assert log.high_watermark == 4


def test_a_commit_marker_takes_an_offset_and_releases_the_lso() -> None:
    log = build(data("t1", pid=7, transactional=True), marker_batch(CONTROL_COMMIT, 7, 0, 0))

    assert log.log_end_offset == 2
    assert log.first_unstable_offset is None
    assert log.last_stable_offset == 2
    assert log.aborted == []


def test_an_abort_marker_enters_the_aborted_index_from_first_offset_to_marker() -> None:
    log = build(
        data("a"),
        data("t1", pid=7, transactional=True),
        data("b"),
        data("t2", pid=7, transactional=True),
        marker_batch(CONTROL_ABORT, 7, 0, 0),
    )

    assert log.aborted == [AbortedTxn(7, 1, 4)]
    assert log.aborted_between(0, 5) == (AbortedTxn(7, 1, 4),)
    assert log.aborted_between(5, 9) == ()


def test_truncating_away_a_marker_reopens_its_transaction() -> None:
    log = build(data("t1", pid=7, transactional=True), marker_batch(CONTROL_ABORT, 7, 0, 0))

    log.truncate_to(1)

    assert log.aborted == []
    assert log.ongoing == {7: 0}
    assert log.last_stable_offset == 0


def consumer_view(log: PartitionLog, isolation: str) -> list[str]:
    """What a consumer's fetch handling keeps from one response for the whole log."""
    response = FetchResponse(
        TP,
        ErrorCode.NONE,
        log.high_watermark,
        0,
        tuple(log.batches),
        aborted_transactions=log.aborted_between(0, log.log_end_offset),
    )
    consumer = object.__new__(Consumer)
    consumer.isolation = 1 if isolation == "read_committed" else 0
    return [r.message_id for lb in consumer._visible_batches(response) for r in lb.batch.records]


def test_read_committed_skips_aborted_data_and_markers_read_uncommitted_only_markers() -> None:
    log = build(
        data("a"),
        data("t1", pid=7, transactional=True),
        data("u1", pid=8, transactional=True),
        data("t2", pid=7, transactional=True),
        marker_batch(CONTROL_ABORT, 7, 0, 0),
        marker_batch(CONTROL_COMMIT, 8, 0, 0),
        data("b"),
    )

    assert consumer_view(log, "read_committed") == ["a", "u1", "b"]
    assert consumer_view(log, "read_uncommitted") == ["a", "t1", "u1", "t2", "b"]


def test_a_later_transaction_of_the_same_producer_is_not_skipped() -> None:
    log = build(
        data("t1", pid=7, transactional=True),
        marker_batch(CONTROL_ABORT, 7, 0, 0),
        data("t2", pid=7, transactional=True),
        marker_batch(CONTROL_COMMIT, 7, 0, 0),
    )

    assert consumer_view(log, "read_committed") == ["t2"]


def test_a_read_committed_consumer_waits_at_the_lso_then_steps_over_markers() -> None:
    from broker.scenario import load_text
    from broker.simulation import Simulation

    spec = load_text(
        """
semantics = "at-least-once"
duration_ms = 20000
[cluster]
"group.initial.rebalance.delay.ms" = 0
latency_ms = 1
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[[consumers]]
name = "reader"
group = "g"
topics = ["orders"]
commit = "after-processing"
processing_ms = 0
[consumers.config]
"auto.offset.reset" = "earliest"
"isolation.level" = "read_committed"
[[steps]]
at_ms = 5000
do = "note"
""",
        "txn-log",
    )
    sim = Simulation(spec, seed=1)
    sim.run_until(1000)
    broker = sim.cluster.brokers[sim.cluster.leader_of(TP)]
    replica = broker.replicas[TP]

    def write(batch: RecordBatch) -> None:
        replica.log.append_as_leader(batch, replica.leader_epoch, sim.now_ms)
        broker._on_leader_append(replica)

    write(data("t1", pid=7, transactional=True))
    write(data("t2", pid=7, transactional=True))
    sim.run_until(2000)
    reader = sim.consumers["reader"].client
    assert reader is not None
    assert reader.positions[TP] == 0  # the open transaction holds the LSO at 0

    write(marker_batch(CONTROL_ABORT, 7, 0, 0))
    write(data("t3", pid=9, transactional=True))
    write(marker_batch(CONTROL_COMMIT, 9, 0, 0))
    sim.run_until(4000)

    processed = [m for m, done in sim.ledger.processing.items() if done]
    assert processed == ["t3"]
    assert reader.positions[TP] == 5  # past the COMMIT marker at offset 4
    assert reader.committed[TP] == 5

"""The external database: its transactions, and the three ways a consumer writes to it
(dual write, offsets stored with the output, idempotent upsert) after the same crash, and
after a refused write."""

from __future__ import annotations

import pytest

from broker.protocol import TopicPartition
from broker.simulation import Simulation
from broker.sink import Sink, SinkWriteFailed
from tests.broker.consumer_support import (
    consumer,
    details,
    events_of,
    processed_offsets,
    produce,
    run_sim,
    step,
)

ORDERS_0 = TopicPartition("orders", 0)


def rows(sink: Sink) -> list[tuple[str, str, str]]:
    """(primary key, message id, writer) of every row, in row order."""
    return [
        (r.key, r.message_id, r.written_by)
        for r in sorted(sink.output.values(), key=lambda r: r.row_id)
    ]


# -- the Sink's transactions ------------------------------------------------------------
def test_rows_become_visible_only_when_their_transaction_commits() -> None:
    sink = Sink()
    tx = sink.begin("w")
    sink.insert(tx, "m-1", "v1")
    sink.insert(tx, "m-2", "v2")
    sink.store_offset(tx, "g", ORDERS_0, 2)

    assert sink.output == {}
    assert sink.stored_offset("g", ORDERS_0) is None

    sink.commit(tx, 50)

    assert rows(sink) == [("row-1", "m-1", "w"), ("row-2", "m-2", "w")]
    assert sink.stored_offset("g", ORDERS_0) == 2
    assert sink.message_counts() == {"m-1": 1, "m-2": 1}
    assert sink.snapshot()["rows"][0]["written_ms"] == 50


def test_a_rolled_back_transaction_writes_nothing() -> None:
    sink = Sink()
    tx = sink.begin("w")
    sink.insert(tx, "m-1", "v1")
    sink.store_offset(tx, "g", ORDERS_0, 1)

    sink.rollback(tx)

    assert sink.output == {}
    assert sink.stored_offset("g", ORDERS_0) is None
    assert sink.rollbacks == 1
    with pytest.raises(AssertionError):
        sink.commit(tx, 0)


def test_plain_inserts_of_the_same_message_make_two_rows() -> None:
    sink = Sink()
    for _ in range(2):
        tx = sink.begin("w")
        sink.insert(tx, "m-1", "v1")
        sink.commit(tx, 0)

    assert sink.message_counts() == {"m-1": 2}


def test_an_upsert_replaces_the_row_with_the_same_key() -> None:
    sink = Sink()
    for message_id in ("m-1", "m-2"):
        tx = sink.begin("w")
        sink.upsert(tx, "order-0", message_id, f"value of {message_id}")
        sink.commit(tx, 0)

    assert rows(sink) == [("order-0", "m-2", "w")]
    assert sink.output["order-0"].value == "value of m-2"
    assert sink.message_counts() == {"m-2": 1}


def test_fail_next_refuses_the_write_and_rolls_back_the_whole_transaction() -> None:
    sink = Sink()
    tx = sink.begin("w")
    sink.insert(tx, "m-1", "v1")  # accepted into the transaction
    sink.fail_next = 1

    with pytest.raises(SinkWriteFailed, match="db refused the write of m-2"):
        sink.insert(tx, "m-2", "v2")

    assert not tx.open
    assert sink.output == {}  # m-1 is not half-written
    assert (sink.rollbacks, sink.fail_next) == (1, 0)
    # The next write goes through.
    tx = sink.begin("w")
    sink.insert(tx, "m-1", "v1")
    sink.commit(tx, 0)
    assert sink.message_counts() == {"m-1": 1}


def test_fail_next_counts_down_one_refused_write_at_a_time() -> None:
    sink = Sink()
    sink.fail_next = 2
    refused = 0
    for _ in range(3):
        tx = sink.begin("w")
        try:
            sink.insert(tx, "m", "v")
        except SinkWriteFailed:
            refused += 1
            continue
        sink.commit(tx, 0)

    assert (refused, len(sink.output)) == (2, 1)


def test_a_commit_past_the_row_limit_fails_and_writes_nothing() -> None:
    sink = Sink(max_rows=2)
    tx = sink.begin("w")
    for i in range(3):
        sink.insert(tx, f"m-{i}", "v")

    with pytest.raises(SinkWriteFailed, match="full"):
        sink.commit(tx, 0)

    assert sink.output == {}
    assert sink.rollbacks == 1


# -- the three modes after the same crash ------------------------------------------------
MODES = {
    "dual-write": "after-processing",
    "offsets-with-output": "none",
    "idempotent-upsert": "after-processing",
}


def crash_after_first_batch(mode: str, **kwargs: object) -> Simulation:
    """8 orders; the loader crashes right after processing its first batch (0..3)."""
    return run_sim(
        consumer(
            "loader",
            commit=MODES[mode],
            sink=mode,
            processing_ms=20,
            config={"max.poll.records": 4},
        ),
        steps=produce(0, 8)
        + step(0, "crash-consumer", consumer="loader", at="after-processing")
        + step(1000, "restart-consumer", consumer="loader"),
        **kwargs,
    )


def test_dual_write_inserts_the_first_batch_twice() -> None:
    sim = crash_after_first_batch("dual-write")
    assert sim.sink is not None

    assert sim.sink.message_counts() == {
        **{f"p1-{i}": 2 for i in range(4)},
        **{f"p1-{i}": 1 for i in range(4, 8)},
    }
    assert [message for _k, message, writer in rows(sim.sink) if writer == "loader"] == [
        "p1-0",
        "p1-1",
        "p1-2",
        "p1-3",
    ]
    outcome = sim.verdict().outcome
    assert (outcome["sunk"], outcome["duplicated_in_sink"], outcome["lost"]) == (8, 4, 0)


def test_offsets_with_output_seeks_to_the_stored_offset_and_writes_each_record_once() -> None:
    sim = crash_after_first_batch("offsets-with-output")
    assert sim.sink is not None

    [seek] = events_of(sim, "consumer.seek")
    assert (seek.actor, seek.partition, seek.offset) == ("loader#2", "orders-0", 4)
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert sim.sink.stored_offset("billing", ORDERS_0) == 8
    assert processed_offsets(sim, "loader#2") == [4, 5, 6, 7]
    # Nothing is committed to Kafka: the database holds the position.
    assert events_of(sim, "consumer.commit") == []
    outcome = sim.verdict().outcome
    assert (outcome["sunk"], outcome["duplicated"], outcome["lost"]) == (8, 0, 0)


def test_idempotent_upsert_keeps_one_row_per_key_despite_reprocessing() -> None:
    sim = crash_after_first_batch("idempotent-upsert")
    assert sim.sink is not None

    assert sorted(key for key, _m, _w in rows(sim.sink)) == sorted(f"order-{i}" for i in range(8))
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    # The replayed batch overwrote the first incarnation's rows.
    assert {writer for _k, _m, writer in rows(sim.sink)} == {"loader#2"}
    outcome = sim.verdict().outcome
    assert (outcome["reprocessed"], outcome["duplicated_in_sink"], outcome["sunk"]) == (4, 0, 8)


def test_a_crash_inside_the_database_transaction_rolls_it_back() -> None:
    sim = run_sim(
        consumer(
            "loader",
            commit="none",
            sink="offsets-with-output",
            processing_ms=20,
            config={"max.poll.records": 4},
        ),
        steps=produce(0, 8)
        + step(0, "crash-consumer", consumer="loader", at="after-record", after_records=2)
        + step(1000, "restart-consumer", consumer="loader"),
    )
    assert sim.sink is not None

    assert [e.offset for e in events_of(sim, "consumer.process", "loader")] == [0, 1]
    assert sim.sink.rollbacks == 1
    assert events_of(sim, "consumer.seek") == []  # nothing stored: starts from earliest
    assert processed_offsets(sim, "loader#2") == list(range(8))
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert {writer for _k, _m, writer in rows(sim.sink)} == {"loader#2"}


# -- a refused write --------------------------------------------------------------------------
def refused_write(mode: str) -> Simulation:
    """8 orders, a record every 5 ms; the write of p1-2 (in the loader's second batch) fails."""
    return run_sim(
        consumer(
            "loader",
            commit=MODES[mode],
            sink=mode,
            processing_ms=20,
            config={"max.poll.records": 4},
        ),
        steps=produce(0, 8, 5) + step(60, "fail-sink", count=1),
        semantics="exactly-once" if mode == "offsets-with-output" else "at-least-once",
    )


@pytest.mark.parametrize("mode", ["offsets-with-output", "idempotent-upsert", "dual-write"])
def test_a_refused_write_reads_the_batch_again_and_ends_with_one_row_per_record(mode: str) -> None:
    sim = refused_write(mode)
    assert sim.sink is not None

    [failed] = events_of(sim, "sink.write-failed")
    assert (failed.partition, failed.offset) == ("orders-0", 2)
    assert failed.detail.startswith("db refused the write of p1-2; reading again from ")
    assert details(sim, "sink.fault") == ["the next 1 write(s) will fail"]
    # The next poll starts again at the refused record.
    polled = [e.offset for e in events_of(sim, "consumer.poll")]
    assert polled == [0, 2, 2, 6]
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert sim.sink.rollbacks == 1


def test_a_refused_write_is_not_counted_as_processing() -> None:
    sim = refused_write("offsets-with-output")

    outcome = sim.verdict().outcome
    assert (outcome["reprocessed"], outcome["duplicated"]) == (0, 0)
    assert sim.verdict().failures == ()


def test_reading_the_batch_again_after_a_refused_write_is_not_a_nonmonotonic_poll() -> None:
    sim = refused_write("idempotent-upsert")

    assert sim.verdict().outcome["nonmonotonic_polls"] == 0

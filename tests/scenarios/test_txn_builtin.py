"""The txn-* built-in scenarios: each reaches its declared verdict for several seeds and shows the
exact fact it was written to teach (markers and their offsets, what each reader processed and
when, fencing, the coordinator's timeout, KIP-890 and KIP-447)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

import broker
from broker.events import Event
from broker.protocol import TopicPartition
from broker.scenario import builtin_names, load, load_text
from broker.simulation import Simulation

SEEDS = (1, 2, 3, 4, 5)
TXN_BUILTINS = [n for n in builtin_names() if n.startswith("txn-")]
ORDERS_0 = TopicPartition("orders", 0)


@cache
def run(name: str, seed: int | None = None) -> Simulation:
    """Runs are deterministic, so each (scenario, seed) is run once and shared (read only)."""
    sim = Simulation.from_scenario(load(name), seed=seed)
    sim.run()
    return sim


def events(sim: Simulation, kind: str, actor: str | None = None) -> list[Event]:
    return [e for e in sim.events if e.kind == kind and (actor is None or e.actor == actor)]


def processed(sim: Simulation, consumer: str) -> list[tuple[int, str, str, int]]:
    """(time, message id, partition, offset) of what one consumer processed, in time order."""
    return sorted(
        (p.time_ms, message_id, p.partition, p.offset)
        for message_id, done in sim.ledger.processing.items()
        for p in done
        if p.consumer == consumer
    )


def marker_offsets(sim: Simulation) -> list[tuple[str | None, int | None, str]]:
    return [(e.partition, e.offset, e.detail.split()[0]) for e in events(sim, "txn.marker")]


def test_the_txn_builtins_are_the_documented_ones() -> None:
    assert set(TXN_BUILTINS) == {
        "txn-abort-read-committed",
        "txn-atomic-multi-partition",
        "txn-hanging-without-kip890",
        "txn-offsets-after-commit",
        "txn-open-holds-lso",
        "txn-read-process-write-crash",
        "txn-timeout-abort",
        "txn-zombie-consumer-generation",
        "txn-zombie-fenced",
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", TXN_BUILTINS)
def test_every_txn_builtin_reaches_as_expected_and_settles(name: str, seed: int) -> None:
    sim = run(name, seed)
    verdict = sim.verdict()

    assert verdict.verdict == "as-expected", verdict.mismatches
    assert sim.ended == "settled"


# -- txn-atomic-multi-partition ------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_atomic_multi_partition_commit_markers_then_the_reader_sees_all_four(seed: int) -> None:
    sim = run("txn-atomic-multi-partition", seed)

    assert sorted(marker_offsets(sim)) == [("orders-0", 2, "COMMIT"), ("orders-1", 2, "COMMIT")]
    last_marker_ms = max(e.time_ms for e in events(sim, "txn.marker"))
    done = processed(sim, "reader")
    assert sorted((m, p, o) for _t, m, p, o in done) == [
        ("p1-0", "orders-0", 0),
        ("p1-1", "orders-0", 1),
        ("p1-2", "orders-1", 0),
        ("p1-3", "orders-1", 1),
    ]
    assert min(t for t, _m, _p, _o in done) >= last_marker_ms
    # The data itself was in the log (acknowledged) long before.
    assert max(e.time_ms for e in events(sim, "produce.ack", "p1")) < 200 < last_marker_ms


# -- txn-abort-read-committed --------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_abort_read_committed_the_careful_reader_skips_the_aborted_orders(seed: int) -> None:
    sim = run("txn-abort-read-committed", seed)

    assert marker_offsets(sim) == [("orders-0", 3, "ABORT"), ("orders-0", 6, "COMMIT")]
    assert [(m, o) for _t, m, _p, o in processed(sim, "careful")] == [("p1-3", 4), ("p1-4", 5)]
    assert [(m, o) for _t, m, _p, o in processed(sim, "dirty")] == [
        ("p1-0", 0),
        ("p1-1", 1),
        ("p1-2", 2),
        ("p1-3", 4),
        ("p1-4", 5),
    ]
    reads = [
        (a.message_id, a.offsets, a.allowed)
        for a in sim.verdict().anomalies
        if a.kind == "aborted-read"
    ]
    assert reads == [("p1-0", (0,), False), ("p1-1", (1,), False), ("p1-2", (2,), False)]
    assert sim.aborted_data()["orders-0"] == {0, 1, 2}


# -- txn-zombie-fenced ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_zombie_fenced_the_old_instance_is_refused_the_new_one_has_epoch_2(seed: int) -> None:
    sim = run("txn-zombie-fenced", seed)

    [late] = events(sim, "produce.failed", "p1")
    assert (late.partition, late.error) == ("orders-0", "INVALID_PRODUCER_EPOCH")
    assert late.detail.startswith("[p1-2] PID 0 epoch 0")
    # Kafka >= 2.7 (KIP-588): the leader's INVALID_PRODUCER_EPOCH is abortable; the zombie
    # aborts, and the coordinator answers that EndTxn with PRODUCER_FENCED, which is fatal.
    states = [(e.detail, e.error) for e in events(sim, "txn.client-state", "p1")]
    assert states[-3:] == [
        ("IN_TRANSACTION -> ABORTABLE_ERROR (Produce to orders-0)", "INVALID_PRODUCER_EPOCH"),
        ("ABORTABLE_ERROR -> ABORTING_TRANSACTION", None),
        ("ABORTING_TRANSACTION -> FATAL_ERROR (EndTxn)", "PRODUCER_FENCED"),
    ]
    [end] = [e for e in events(sim, "txn.response", "p1") if e.detail.startswith("EndTxn")]
    assert end.error == "PRODUCER_FENCED"
    [fenced] = events(sim, "app.fenced", "p1")
    assert fenced.error == "PRODUCER_FENCED"
    assert late.time_ms < end.time_ms == fenced.time_ms
    ready = [
        e.detail for e in events(sim, "txn.client-state", "p1-new") if "-> READY (PID" in e.detail
    ]
    assert ready == ["INITIALIZING -> READY (PID 0 epoch 2)"]
    # p1's transaction was aborted under the fencing epoch; only p1-new's orders are visible.
    assert marker_offsets(sim) == [("orders-0", 2, "ABORT"), ("orders-0", 5, "COMMIT")]
    assert sim.committed_logs()["orders-0"] == [(3, "p1-new-0"), (4, "p1-new-1")]


# -- txn-timeout-abort ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_timeout_abort_the_coordinator_aborts_and_the_late_commit_is_fenced(seed: int) -> None:
    sim = run("txn-timeout-abort", seed)

    [timeout] = events(sim, "txn.timeout")
    [ongoing] = [e for e in events(sim, "txn.state") if "Empty -> Ongoing" in e.detail]
    assert ongoing.time_ms < timeout.time_ms <= ongoing.time_ms + 3000
    assert marker_offsets(sim) == [("orders-0", 2, "ABORT")]
    [fenced] = events(sim, "txn.fenced")
    assert (fenced.time_ms > 5000, fenced.error) == (True, "PRODUCER_FENCED")
    [stopped] = events(sim, "app.fenced", "p1")
    assert stopped.error == "PRODUCER_FENCED"
    assert timeout.time_ms < fenced.time_ms
    assert processed(sim, "reader") == []


# -- txn-open-holds-lso --------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_open_holds_lso_the_reader_gets_nothing_until_the_commit(seed: int) -> None:
    sim = run("txn-open-holds-lso", seed)

    [(_partition, _offset, kind)] = marker_offsets(sim)
    [marker] = events(sim, "txn.marker")
    assert (marker.offset, kind) == (6, "COMMIT")
    p2_acked = [e.time_ms for e in events(sim, "produce.ack", "p2")]
    assert len(p2_acked) == 5 and max(p2_acked) < 1000
    done = processed(sim, "reader")
    assert [(m, o) for _t, m, _p, o in done] == [
        ("p1-0", 0),
        ("p2-0", 1),
        ("p2-1", 2),
        ("p2-2", 3),
        ("p2-3", 4),
        ("p2-4", 5),
    ]
    assert min(t for t, _m, _p, _o in done) >= marker.time_ms
    assert len(events(sim, "consumer.poll", "reader")) == 1  # all six in one poll


# -- txn-hanging-without-kip890 ------------------------------------------------------------
def hanging(verification: bool, seed: int) -> Simulation:
    path = Path(broker.__file__).parent / "scenarios" / "txn-hanging-without-kip890.toml"
    text = path.read_text()
    switch = '"transaction.partition.verification.enable" = false'
    assert switch in text
    if verification:
        text = text.replace(switch, switch.replace("false", "true"))
    sim = Simulation(load_text(text, "txn-hanging"), seed=seed)
    sim.run()
    return sim


@pytest.mark.parametrize("seed", SEEDS)
def test_hanging_without_kip890_the_late_write_lands_after_the_abort_and_the_lso_sticks(
    seed: int,
) -> None:
    sim = run("txn-hanging-without-kip890", seed)

    assert marker_offsets(sim) == [("orders-0", 0, "ABORT")]
    late = [e for e in events(sim, "produce.append") if "[p1-0]" in e.detail]
    assert [(e.offset, e.time_ms > 5000) for e in late] == [(1, True)]
    log, hw = sim.cluster.committed(ORDERS_0)
    assert log is not None
    # p1's late write opened a transaction at offset 1 that nothing will ever close.
    assert (list(log.ongoing.values()), log.last_stable_offset, hw) == ([1], 1, 5)
    lost = sorted(a.message_id for a in sim.verdict().anomalies if a.kind == "lost")
    assert lost == ["p2-0", "p2-1", "p2-2"]
    assert processed(sim, "reader") == []


@pytest.mark.parametrize("seed", SEEDS)
def test_hanging_with_verification_the_late_write_is_refused_and_nothing_is_lost(
    seed: int,
) -> None:
    sim = hanging(verification=True, seed=seed)

    refused = [e for e in events(sim, "produce.reject") if e.partition == "orders-0"]
    assert refused and {e.error for e in refused} == {"INVALID_TXN_STATE"}
    assert all(e.detail.startswith("KIP-890 verification: ") for e in refused)
    assert [e for e in events(sim, "produce.append") if "[p1-0]" in e.detail] == []
    log, hw = sim.cluster.committed(ORDERS_0)
    assert log is not None
    assert (log.ongoing, log.last_stable_offset, hw) == ({}, 4, 4)
    outcome = sim.verdict().outcome
    assert (outcome["lost"], outcome["processed"]) == (0, 3)


# -- txn-read-process-write-crash ----------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_read_process_write_crash_aborted_outputs_then_each_output_committed_once(
    seed: int,
) -> None:
    sim = run("txn-read-process-write-crash", seed)

    assert sim.aborted_data()["enriched-0"] == {0, 1, 2}
    assert [(p, o, k) for p, o, k in marker_offsets(sim) if p == "enriched-0"] == [
        ("enriched-0", 3, "ABORT"),
        ("enriched-0", 7, "COMMIT"),
        ("enriched-0", 11, "COMMIT"),
    ]
    outputs = sim.committed_logs()["enriched-0"]
    assert outputs == [
        (4, "p1-0>enriched"),
        (5, "p1-1>enriched"),
        (6, "p1-2>enriched"),
        (8, "p1-3>enriched"),
        (9, "p1-4>enriched"),
        (10, "p1-5>enriched"),
    ]
    # The crashed instance's offsets were dropped with its transaction.
    [dropped] = events(sim, "offset.dropped")
    assert dropped.detail == "group enricher: orders-0=3 dropped: the transaction aborted"
    assert [(m, o) for _t, m, _p, o in processed(sim, "downstream")] == [(m, o) for o, m in outputs]


# -- txn-zombie-consumer-generation --------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_zombie_consumer_generation_the_stale_offsets_are_refused_and_the_txn_aborts(
    seed: int,
) -> None:
    sim = run("txn-zombie-consumer-generation", seed)

    [rejected] = events(sim, "offset.commit-rejected")
    assert (rejected.error, rejected.dst) == ("UNKNOWN_MEMBER_ID", "enricher-a.producer")
    assert "generation 2 (group is at 3)" in rejected.detail
    [abort] = events(sim, "processor.abort", "enricher-a")
    assert abort.detail == (
        "sendOffsetsToTransaction failed with UNKNOWN_MEMBER_ID: aborting the transaction"
    )
    moves = [e.detail for e in events(sim, "txn.client-state", "enricher-a.producer")][-3:]
    assert moves == [
        "IN_TRANSACTION -> ABORTABLE_ERROR (TxnOffsetCommit)",
        "ABORTABLE_ERROR -> ABORTING_TRANSACTION",
        "ABORTING_TRANSACTION -> READY (aborted)",
    ]
    # The zombie froze mid-transaction: the outputs it had written are the aborted data.
    zombie_ack = events(sim, "produce.ack", "enricher-a.producer")[0]
    assert zombie_ack.offset is not None
    assert sim.aborted_data()["enriched-0"] == set(range(zombie_ack.offset, zombie_ack.offset + 3))
    outputs = sorted(m for _o, m in sim.committed_logs()["enriched-0"])
    assert outputs == sorted(f"p1-{i}>enriched" for i in range(12))

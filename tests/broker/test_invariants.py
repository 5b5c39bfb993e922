from __future__ import annotations

from broker.invariants import violations
from broker.log import EpochEntry
from broker.records import LogBatch
from broker.simulation import Simulation
from tests.broker.conftest import ORDERS_0, batch, log_of, make_sim, step


def settled_sim() -> Simulation:
    sim = make_sim(
        config='acks = 1\n"linger.ms" = 0\n"enable.idempotence" = false',
        steps=step(10, "produce", producer="p1", topic="orders", count=3, interval_ms=5),
        hold_ms=2000,
    )
    sim.run_until(1000)
    return sim


def test_no_violations_at_any_step_of_a_failover_with_truncation() -> None:
    sim = make_sim(
        config='acks = 1\n"linger.ms" = 0\n"enable.idempotence" = false',
        cluster='"broker.session.timeout.ms" = 2000',
        steps=step(10, "produce", producer="p1", topic="orders", count=2, interval_ms=5)
        + step(1000, "isolate-broker", broker=1)
        + step(1010, "produce", producer="p1", topic="orders", count=3, interval_ms=5)
        + step(1100, "crash-broker", broker=1)
        + step(4000, "produce", producer="p1", topic="orders", count=2, interval_ms=5)
        + step(5000, "heal")
        + step(5000, "restart-broker", broker=1),
    )
    seen: list[str] = []
    steps = 0

    while sim.step():
        steps += 1
        seen.extend(violations(sim))

    assert seen == []
    assert steps == 88
    assert len(sim.ledger.truncations) == 1


def test_a_high_watermark_above_the_log_end_is_reported() -> None:
    sim = settled_sim()
    log_of(sim, 2).high_watermark = 5

    assert violations(sim) == ["broker-2 orders-0: cursors out of order: log start 0, HW 5, LEO 3"]


def test_a_gap_in_offsets_is_reported() -> None:
    sim = settled_sim()
    log = log_of(sim, 3)
    log.batches[1] = LogBatch(4, 0, log.batches[1].batch)

    assert violations(sim) == [
        "broker-3 orders-0: offsets not dense: expected 1, batch starts at 4",
        "broker-3 orders-0: LEO 3 but the batches end at 1",
    ]


def test_a_log_end_offset_past_the_batches_is_reported() -> None:
    sim = settled_sim()
    log_of(sim, 1).log_end_offset = 4

    assert violations(sim) == ["broker-1 orders-0: LEO 4 but the batches end at 3"]


def test_a_non_monotonic_epoch_cache_is_reported() -> None:
    sim = settled_sim()
    log_of(sim, 2).epoch_cache = [EpochEntry(2, 0), EpochEntry(1, 2)]

    assert violations(sim) == [
        "broker-2 orders-0: leader epoch cache not monotonic: "
        "[EpochEntry(epoch=2, start_offset=0), EpochEntry(epoch=1, start_offset=2)]"
    ]


def test_a_leader_outside_the_isr_and_an_empty_isr_are_reported() -> None:
    sim = settled_sim()
    state = sim.cluster.partition(ORDERS_0)

    state.isr = [2, 3]
    assert violations(sim) == ["orders-0: leader 1 not in ISR [2, 3]"]
    state.isr = []
    assert violations(sim) == ["orders-0: empty ISR", "orders-0: leader 1 not in ISR []"]


def test_an_in_sync_replica_holding_another_record_at_a_committed_offset_is_reported() -> None:
    sim = settled_sim()
    log = log_of(sim, 3)
    log.batches[1] = LogBatch(1, 0, batch("intruder"))

    assert violations(sim) == [
        "orders-0: in-sync broker-3 holds intruder at committed offset 1, the leader p1-1"
    ]

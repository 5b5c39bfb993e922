"""Producer guarantees under random faults followed by a final heal (Jepsen style).

Every run also checks the engine invariants after every event (``run_checked``).  Each
property counts what its schedules did to the cluster and fails if the faults rarely bit.
"""

from __future__ import annotations

from fault_schedules import FaultStats, Schedule, run_checked, schedules
from hypothesis import Phase, find, given, note, settings
from hypothesis import strategies as st
from hypothesis_profiles import coverage_checked

from broker.checker import Verdict
from broker.simulation import Simulation


def _run(schedule: Schedule) -> tuple[Simulation, Verdict]:
    note(schedule.toml())
    sim = run_checked(schedule.spec())
    verdict = sim.verdict()
    note(f"ended {sim.ended} at {sim.now_ms} ms: {verdict.outcome}")
    for anomaly in verdict.anomalies:
        note(f"{anomaly.kind} {anomaly.message_id}: {anomaly.explanation}")
    return sim, verdict


def _assert_settled_and_decided(sim: Simulation, verdict: Verdict) -> None:
    # After the final heal nothing may stay stuck: the producer ends idle, every replica holds
    # the leader's log, and every message was either acknowledged or reported failed.
    assert sim.ended == "settled", f"ended {sim.ended} at {sim.now_ms} ms"
    outcome = verdict.outcome
    assert outcome["acknowledged"] + outcome["failed"] == outcome["produced"], outcome


def test_idempotent_acks_all_loses_and_duplicates_nothing() -> None:
    """acks=all, enable.idempotence=true, RF 3, min.insync.replicas 2: exactly once, in order."""
    stats = FaultStats()

    @given(schedules(idempotent=True))
    def prop(schedule: Schedule) -> None:
        sim, verdict = _run(schedule)
        stats.add(sim)
        _assert_settled_and_decided(sim, verdict)
        assert verdict.outcome["lost"] == 0, verdict.anomalies
        assert verdict.outcome["duplicated"] == 0, verdict.anomalies
        # The idempotent producer also keeps each partition in send order (max.in.flight <= 5).
        assert verdict.outcome["reordered"] == 0, verdict.anomalies

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()
    assert stats.truncations > 0, stats  # some runs truncated a returning leader's log


def test_acks_all_without_idempotence_loses_nothing() -> None:
    """acks=all, idempotence off: at least once (duplicates and reordering allowed), also
    when the application crashes and, on restart, resends what was never acknowledged."""
    stats = FaultStats()

    @given(
        st.one_of(
            schedules(idempotent=False),
            schedules(idempotent=False, producer_crashes=True),
        )
    )
    def prop(schedule: Schedule) -> None:
        sim, verdict = _run(schedule)
        stats.add(sim)
        _assert_settled_and_decided(sim, verdict)
        assert verdict.outcome["lost"] == 0, verdict.anomalies

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()


def test_idempotent_producer_across_application_restarts_loses_nothing() -> None:
    """A restarted application gets a new producer id, so it may duplicate, never lose."""
    stats = FaultStats()

    @given(schedules(idempotent=True, producer_crashes=True))
    def prop(schedule: Schedule) -> None:
        sim, verdict = _run(schedule)
        stats.add(sim)
        _assert_settled_and_decided(sim, verdict)
        assert verdict.outcome["lost"] == 0, verdict.anomalies

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()


def test_the_oracle_catches_losses_with_acks_1() -> None:
    """The same generator and checker find the classic acks=1 loss, so the properties above
    are not vacuous: a schedule where an acknowledged write is truncated away exists."""

    def loses_an_acked_write(schedule: Schedule) -> bool:
        sim = Simulation(schedule.spec())
        sim.run()
        return any(
            a.kind == "lost" and sim.ledger.messages[a.message_id].status == "acked"
            for a in sim.verdict().anomalies
        )

    found = find(
        schedules(idempotent=False, acks="1"),
        loses_an_acked_write,
        settings=settings(
            max_examples=2_000, derandomize=True, database=None, phases=[Phase.generate]
        ),
    )
    assert loses_an_acked_write(found)

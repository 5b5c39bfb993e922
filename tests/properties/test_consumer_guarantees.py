"""Consumer guarantees under random crash, stall and restart schedules (Jepsen style).

One or two consumers of one group read a topic of 1-3 partitions that a healthy producer
fills with 5-40 records.  The consumers crash (at once, or at an armed point of their poll
loop), stall shorter or longer than ``session.timeout.ms`` (a stall past it makes a zombie)
and restart; at the end every consumer is restarted (``consumer_schedules``).  Every run
checks after each event that the group never has two owners for one partition and that its
generation never goes back, plus the engine invariants (``run_checked``), and must end
settled with polls in offset order.  Each property counts what its schedules did to the
consumers and fails if the faults rarely bit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from consumer_schedules import (
    ConsumerSchedule,
    ConsumerStats,
    GroupWatch,
    consumer_schedules,
    group_violations,
    run_checked,
)
from hypothesis import event, given, note, target
from hypothesis_profiles import coverage_checked

from broker.assignors import COOPERATIVE
from broker.checker import Verdict
from broker.scenario import load
from broker.simulation import Simulation

ROOT = Path(__file__).resolve().parents[2]


def _run(schedule: ConsumerSchedule) -> tuple[Simulation, GroupWatch, Verdict]:
    note(schedule.toml())
    sim, watch = run_checked(schedule.spec())
    verdict = sim.verdict()
    note(f"ended {sim.ended} at {sim.now_ms} ms: {verdict.outcome}")
    for anomaly in verdict.anomalies:
        note(f"{anomaly.kind} ({anomaly.where}) {anomaly.message_id}: {anomaly.explanation}")
    return sim, watch, verdict


def _assert_settled_in_order(sim: Simulation, verdict: Verdict) -> None:
    # After the final restarts nothing may stay stuck: every consumer is idle, owns its share
    # of the partitions and has read them to the end.
    assert sim.ended == "settled", f"ended {sim.ended} at {sim.now_ms} ms"
    outcome = verdict.outcome
    # The producer side has no faults: every record is acknowledged and in the log.
    assert outcome["acknowledged"] == outcome["produced"] == outcome["in_log"], outcome
    # Within one consumer's continuous ownership of a partition (a seek, as after a failed
    # sink write, starts a new one), polls go forward one by one.
    assert outcome["poll_skips"] == 0, verdict.anomalies
    assert outcome["nonmonotonic_polls"] == 0, verdict.anomalies


def test_commit_after_processing_never_loses_a_record() -> None:
    """Process, then commitSync (per batch or per record): at least once.  Duplicates are
    allowed, losses are not: every record in the log is processed (lost counts those polled
    and never processed, unseen those never polled)."""
    stats = ConsumerStats()

    @given(
        consumer_schedules(
            commits=("after-processing",),
            sinks=("none", "dual-write", "idempotent-upsert"),
            sink_failures=True,
        )
    )
    def prop(schedule: ConsumerSchedule) -> None:
        sim, watch, verdict = _run(schedule)
        stats.add(sim, watch)
        _assert_settled_in_order(sim, verdict)
        outcome = verdict.outcome
        assert outcome["unseen"] == 0, verdict.anomalies
        if schedule.strategy == COOPERATIVE and not schedule.zombie_free:
            # A known engine bug: a cooperative member expelled while stalled keeps its
            # positions and skips the rest of its abandoned batch (test_consumer_regressions.py).
            event("cooperative zombie: losses not checked (known engine bug)")
            return
        assert outcome["lost"] == 0, verdict.anomalies
        assert outcome["processed"] == outcome["in_log"], outcome
        if schedule.consumers[0]["sink"] != "none":
            assert outcome["sunk"] == outcome["in_log"], outcome

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()
    # Some crashes landed between processing and the commit: the property is not vacuous.
    assert stats.reprocessed >= stats.examples // 10, stats
    assert stats.sink_failed >= stats.examples // 16, stats


def test_commit_before_processing_never_processes_a_record_twice() -> None:
    """commitSync the batch's end offsets, then process: at most once.  Losses are allowed
    (a crash mid-batch), processing a record twice is not, zombies included: a zombie's
    commit fails before it processes anything it polled after being expelled."""
    stats = ConsumerStats()

    @given(consumer_schedules(commits=("before-processing",), semantics="at-most-once"))
    def prop(schedule: ConsumerSchedule) -> None:
        sim, watch, verdict = _run(schedule)
        stats.add(sim, watch)
        _assert_settled_in_order(sim, verdict)
        outcome = verdict.outcome
        assert outcome["reprocessed"] == 0, verdict.anomalies
        # Nothing goes unread: what is not processed was polled, then lost by a crash.
        assert outcome["unseen"] == 0, verdict.anomalies
        assert outcome["processed"] + outcome["lost"] == outcome["in_log"], outcome

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()
    assert stats.lost >= stats.examples // 10, stats  # the at-most-once losses do happen


def test_offsets_stored_with_the_output_neither_lose_nor_duplicate_in_the_sink() -> None:
    """Rows and the next offset in one database transaction, seek to the stored offset on
    assignment, no Kafka commits: every record in the log has exactly one row.

    Zombies are the exception, as in real life: a consumer stalled past its session finishes
    its batch after the group moved on and commits rows and a stale offset to the database,
    which nothing fences (test_consumer_regressions.py).  So ``duplicated_in_sink == 0`` is
    checked on zombie-free schedules, losses on all."""
    stats = ConsumerStats()
    zombie_free = 0

    @given(
        consumer_schedules(
            commits=("none",),
            sinks=("offsets-with-output",),
            sink_failures=True,
            semantics="exactly-once",
        )
    )
    def prop(schedule: ConsumerSchedule) -> None:
        nonlocal zombie_free
        sim, watch, verdict = _run(schedule)
        stats.add(sim, watch)
        _assert_settled_in_order(sim, verdict)
        outcome = verdict.outcome
        assert outcome["lost"] == 0, verdict.anomalies
        assert outcome["unseen"] == 0, verdict.anomalies
        assert outcome["sunk"] == outcome["in_log"], outcome
        if schedule.zombie_free:
            zombie_free += 1
            event("zombie-free schedule")
            assert outcome["duplicated_in_sink"] == 0, verdict.anomalies
            # Each row written once: one row per record, and no more rows than records.
            assert sim.sink is not None
            assert len(sim.sink.output) == outcome["in_log"], sim.sink.snapshot()

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()
    assert zombie_free >= stats.examples // 5, (zombie_free, stats)
    # Crashes and failed writes with the database transaction open happened, and were rolled
    # back.
    assert stats.crash_points["crashed before sink commit"] > 0, stats
    assert stats.sink_failed >= stats.examples // 10, stats
    assert stats.rolled_back >= stats.examples // 5, stats


def test_group_invariants_hold_under_any_commit_strategy() -> None:
    """Whatever the consumers commit and when (auto-commit with processing handed off
    included), the checks of ``run_checked`` hold after every event: one owner per partition
    on the coordinator and among the clients stable in its current generation, a generation
    that never goes back, the engine invariants; and every run settles with polls in order."""
    stats = ConsumerStats()

    @given(
        consumer_schedules(
            commits=("auto", "before-processing", "after-processing", "none"), handoff=True
        )
    )
    def prop(schedule: ConsumerSchedule) -> None:
        sim, watch, verdict = _run(schedule)
        stats.add(sim, watch)
        event(f"commit={schedule.consumers[0]['commit']}")
        event(f"processing={schedule.consumers[0]['processing']}")
        target(float(watch.generations_seen), label="group generations")
        _assert_settled_in_order(sim, verdict)

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()


def _fingerprint(sim: Simulation) -> tuple[list[str], str, str]:
    return (
        sim.trace(include_quiet=True),
        json.dumps(sim.snapshot(), sort_keys=True),
        json.dumps(sim.verdict().to_dict(), sort_keys=True),
    )


@given(
    consumer_schedules(
        commits=("auto", "before-processing", "after-processing", "none"),
        sinks=("none", "dual-write", "offsets-with-output", "idempotent-upsert"),
        handoff=True,
    )
)
def test_same_schedule_and_seed_give_the_same_trace(schedule: ConsumerSchedule) -> None:
    note(schedule.toml())
    spec = schedule.spec()
    first, second = Simulation(spec), Simulation(spec)
    first.run()
    second.run()
    trace_1, snapshot_1, verdict_1 = _fingerprint(first)
    trace_2, snapshot_2, verdict_2 = _fingerprint(second)
    assert any(" consumer.poll " in line for line in trace_1)  # a real run, not an empty one
    for i, (a, b) in enumerate(zip(trace_1, trace_2, strict=False)):
        assert a == b, f"traces part at event {i}:\n  {a}\n  {b}"
    assert len(trace_1) == len(trace_2)
    assert snapshot_1 == snapshot_2
    assert verdict_1 == verdict_2


_CHILD = """
import json, sys
from broker.scenario import load
from broker.simulation import Simulation
sim = Simulation(load(sys.argv[1]), seed=7)
sim.run()
print(json.dumps([sim.trace(include_quiet=True), sim.snapshot()], sort_keys=True))
"""


def test_consumer_runs_agree_across_processes_and_hash_seeds() -> None:
    """Groups, assignors and sinks iterate sets and dicts of partitions: nothing may depend
    on str hashing (PYTHONHASHSEED).  Two consumers, two partitions, a zombie."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, "consumer-zombie-rebalance"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
        )
        outputs.append(child.stdout)
    assert outputs[0] == outputs[1]
    trace = json.loads(outputs[0])[0]
    assert any(" group.member-expired " in line for line in trace)
    assert load("consumer-zombie-rebalance").consumers  # the built-in still has consumers


def test_the_group_check_catches_two_owners_and_a_generation_going_back() -> None:
    """The group check is not vacuous: planted faults in a settled run are reported."""
    sim, watch = run_checked(load("consumer-zombie-rebalance"))
    assert sim.ended == "settled"
    assert group_violations(sim, watch) == []
    a, b = (app.client for app in sim.consumers.values())
    assert a is not None and b is not None and a.state == b.state == "stable"
    a.assignment = b.assignment = a.assignment + b.assignment  # both claim every partition
    problems = group_violations(sim, watch)
    assert any("owned by both" in p for p in problems), problems
    assert any("the coordinator says" in p for p in problems), problems
    watch.generations["billing"] += 1  # as if the group had been further along before
    assert any("went back" in p for p in group_violations(sim, watch))

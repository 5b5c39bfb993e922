"""The consumer-* and sink-* built-in scenarios: each reaches its declared verdict for several
seeds and shows the exact fact it was written to teach."""

from __future__ import annotations

import re
from functools import cache

import pytest

from broker.events import Event
from broker.scenario import builtin_names, load
from broker.simulation import Simulation

SEEDS = (1, 2, 3, 4, 5)
CONSUMER_BUILTINS = [n for n in builtin_names() if n.startswith(("consumer-", "sink-"))]


@cache
def run(name: str, seed: int | None = None) -> Simulation:
    """Runs are deterministic, so each (scenario, seed) is run once and shared (read only)."""
    sim = Simulation.from_scenario(load(name), seed=seed)
    sim.run()
    return sim


def events(sim: Simulation, kind: str, actor: str | None = None) -> list[Event]:
    return [e for e in sim.events if e.kind == kind and (actor is None or e.actor == actor)]


def anomalies(sim: Simulation) -> list[tuple[str, str, tuple[int, ...], str]]:
    return [(a.kind, a.message_id, a.offsets, a.where) for a in sim.verdict().anomalies]


def processed_by(sim: Simulation, message_id: str) -> list[tuple[str, str, int]]:
    return [(p.consumer, p.partition, p.offset) for p in sim.ledger.processing[message_id]]


def test_the_consumer_builtins_are_the_documented_ones() -> None:
    assert set(CONSUMER_BUILTINS) >= {
        "consumer-auto-commit-async-loss",
        "consumer-auto-commit-crash",
        "consumer-commit-after-processing",
        "consumer-commit-before-processing",
        "consumer-new-group-latest",
        "consumer-zombie-rebalance",
        "sink-dual-write",
        "sink-idempotent-upsert",
        "sink-offset-with-output",
        "sink-restart-from-committed",
    }


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", CONSUMER_BUILTINS)
def test_every_consumer_builtin_reaches_as_expected(name: str, seed: int) -> None:
    sim = run(name, seed)
    verdict = sim.verdict()

    assert verdict.verdict == "as-expected", verdict.mismatches
    assert sim.ended == "settled"
    assert verdict.outcome["poll_skips"] == verdict.outcome["nonmonotonic_polls"] == 0


# -- consumer-commit-before-processing ------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_commit_before_processing_loses_p1_2_and_p1_3(seed: int) -> None:
    sim = run("consumer-commit-before-processing", seed)

    assert anomalies(sim) == [
        ("lost", "p1-2", (2,), "processing"),
        ("lost", "p1-3", (3,), "processing"),
    ]
    commits = [(e.actor, e.detail) for e in events(sim, "consumer.commit")]
    assert commits == [
        ("billing", "OffsetCommit generation 1: orders-0=4"),
        ("billing#2", "OffsetCommit generation 2: orders-0=8"),
    ]
    [position] = events(sim, "consumer.position", "billing#2")
    assert (position.offset, position.detail) == (4, "starts at the committed offset")
    outcome = sim.verdict().outcome
    assert (outcome["processed"], outcome["lost"], outcome["duplicated"]) == (6, 2, 0)


# -- consumer-commit-after-processing ---------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_commit_after_processing_processes_offsets_0_to_3_twice(seed: int) -> None:
    sim = run("consumer-commit-after-processing", seed)

    assert anomalies(sim) == [("duplicate", f"p1-{i}", (i, i), "processing") for i in range(4)]
    for i in range(4):
        assert processed_by(sim, f"p1-{i}") == [
            ("billing", "orders-0", i),
            ("billing#2", "orders-0", i),
        ]
    # The first incarnation never committed: the replacement starts from earliest again.
    assert [e.actor for e in events(sim, "consumer.commit")] == ["billing#2", "billing#2"]
    outcome = sim.verdict().outcome
    assert (outcome["processed"], outcome["reprocessed"], outcome["lost"]) == (8, 4, 0)


# -- consumer-zombie-rebalance -----------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_zombie_rebalance_rejects_billing_as_commit_with_unknown_member_id(seed: int) -> None:
    sim = run("consumer-zombie-rebalance", seed)

    [rejected] = events(sim, "offset.commit-rejected")
    assert rejected.error == "UNKNOWN_MEMBER_ID"
    assert re.fullmatch(
        r"group billing: billing-a-\d generation 2 \(group is at 3\): orders-0=2", rejected.detail
    )
    [failed] = events(sim, "consumer.commit-failed", "billing-a")
    assert failed.error == "UNKNOWN_MEMBER_ID"
    assert failed.detail.startswith("CommitFailedException")
    [expired] = events(sim, "group.member-expired")
    assert expired.detail.startswith("group billing: billing-a-")
    assert expired.time_ms < rejected.time_ms


@pytest.mark.parametrize("seed", SEEDS)
def test_zombie_rebalance_processes_p1_1_in_both_consumers(seed: int) -> None:
    sim = run("consumer-zombie-rebalance", seed)

    assert anomalies(sim) == [("duplicate", "p1-1", (1, 1), "processing")]
    assert sorted(processed_by(sim, "p1-1")) == [
        ("billing-a", "orders-0", 1),
        ("billing-b", "orders-0", 1),
    ]
    # billing-b took over orders-0 from billing-a's last commit, offset 1.
    takeover = [e.offset for e in events(sim, "consumer.position", "billing-b")]
    assert takeover.count(1) == 1
    outcome = sim.verdict().outcome
    assert (outcome["processed"], outcome["lost"], outcome["reprocessed"]) == (16, 0, 1)


# -- consumer-new-group-latest ------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_new_group_latest_never_sees_offsets_0_to_4(seed: int) -> None:
    sim = run("consumer-new-group-latest", seed)

    assert anomalies(sim) == [("unseen", f"p1-{i}", (i,), "processing") for i in range(5)]
    [position] = events(sim, "consumer.position")
    assert (position.offset, position.detail) == (
        5,
        "no committed offset: auto.offset.reset=latest",
    )
    assert sorted(sim.ledger.processing) == ["p1-5", "p1-6", "p1-7"]
    assert events(sim, "offset.committed")[-1].detail == "group reports: orders-0=8"


# -- consumer-auto-commit-crash ------------------------------------------------------------------
def test_auto_commit_crash_replays_from_the_last_auto_commit_offset_10() -> None:
    sim = run("consumer-auto-commit-crash")

    [auto, *_] = events(sim, "consumer.auto-commit")
    assert (auto.time_ms, auto.detail) == (
        1033,
        "auto.commit.interval.ms elapsed: committing positions orders-0=10",
    )
    [position] = events(sim, "consumer.position", "billing#2")
    assert position.offset == 10
    assert anomalies(sim) == [("duplicate", f"p1-{i}", (i, i), "processing") for i in range(10, 14)]


@pytest.mark.parametrize("seed", SEEDS)
def test_auto_commit_crash_reprocesses_exactly_what_followed_the_last_commit(seed: int) -> None:
    sim = run("consumer-auto-commit-crash", seed)

    committed = [e for e in events(sim, "offset.committed") if e.time_ms < 1500]
    last_commit = int(committed[-1].detail.rpartition("=")[2])
    [position] = events(sim, "consumer.position", "billing#2")
    assert position.offset == last_commit
    first = sorted(
        p.offset for m in sim.ledger.processing.values() for p in m if p.consumer == "billing"
    )
    replayed = [o for o in first if o >= last_commit]
    assert replayed  # the crash came between two auto-commits
    assert [a[2][0] for a in anomalies(sim)] == replayed
    assert {a[0] for a in anomalies(sim)} == {"duplicate"}


# -- consumer-auto-commit-async-loss ---------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_async_loss_commits_20_while_the_worker_has_processed_only_0_to_6(seed: int) -> None:
    sim = run("consumer-auto-commit-async-loss", seed)

    assert [e.detail for e in events(sim, "consumer.commit")] == [
        "OffsetCommit generation 1: orders-0=20"
    ]
    assert sorted(sim.ledger.processing, key=lambda m: int(m[3:])) == [f"p1-{i}" for i in range(7)]
    assert anomalies(sim) == [("lost", f"p1-{i}", (i,), "processing") for i in range(7, 20)]
    [position] = events(sim, "consumer.position", "billing#2")
    assert (position.offset, position.detail) == (20, "starts at the committed offset")


# -- sink-dual-write -------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_dual_write_holds_rows_for_the_first_batch_twice(seed: int) -> None:
    sim = run("sink-dual-write", seed)
    assert sim.sink is not None

    assert sim.sink.message_counts() == {
        **{f"p1-{i}": 2 for i in range(4)},
        **{f"p1-{i}": 1 for i in range(4, 8)},
    }
    assert len(sim.sink.output) == 12
    sink_dups = [a for a in anomalies(sim) if a[3] == "sink"]
    assert sink_dups == [("duplicate", f"p1-{i}", (), "sink") for i in range(4)]
    assert sim.verdict().outcome["duplicated_in_sink"] == 4


# -- sink-offset-with-output -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_offset_with_output_writes_8_rows_and_seeks_to_offset_4(seed: int) -> None:
    sim = run("sink-offset-with-output", seed)
    assert sim.sink is not None

    assert len(sim.sink.output) == 8
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    [seek] = events(sim, "consumer.seek")
    assert (seek.actor, seek.partition, seek.offset) == ("loader#2", "orders-0", 4)
    assert [e.detail for e in events(sim, "sink.commit")] == [
        "db: 4 row(s) and offsets orders-0=4 committed in one transaction",
        "db: 4 row(s) and offsets orders-0=8 committed in one transaction",
    ]
    assert events(sim, "consumer.commit") == []
    assert anomalies(sim) == []


# -- sink-idempotent-upsert ------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_idempotent_upsert_reprocesses_4_but_keeps_one_row_per_key(seed: int) -> None:
    sim = run("sink-idempotent-upsert", seed)
    assert sim.sink is not None

    assert sorted(sim.sink.output) == sorted(f"order-{i}" for i in range(8))
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert anomalies(sim) == [("duplicate", f"p1-{i}", (i, i), "processing") for i in range(4)]
    outcome = sim.verdict().outcome
    assert (outcome["reprocessed"], outcome["duplicated_in_sink"], outcome["sunk"]) == (4, 0, 8)


def test_offset_with_output_stays_as_expected_after_a_refused_write() -> None:
    from broker.scenario import step_parser

    sim = Simulation.from_scenario(load("sink-offset-with-output"))
    sim.run_until(50)
    sim.submit(step_parser(sim.spec)({"do": "fail-sink", "count": 1}, "command", sim.now_ms))
    sim.run()
    assert sim.sink is not None

    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert sim.verdict().verdict == "as-expected", sim.verdict().mismatches

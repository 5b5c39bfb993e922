"""Two built-ins for the offset mistakes that undo exactly-once (issue 12), each against its
correct twin: txn-offsets-after-commit (a processor that commits its input offsets with
commitSync() after the transaction, `offsets = "after-commit"`) and sink-restart-from-committed
(offsets stored with the output, but the restart starts from Kafka's committed offset,
`restart_from = "committed"`)."""

from __future__ import annotations

from functools import cache

import pytest

from broker.events import Event
from broker.scenario import BUILTIN_DIR, ScenarioError, load, load_text
from broker.simulation import Simulation

SEEDS = (1, 2, 3, 4, 5)
OUT = "enriched"


@cache
def run(name: str, seed: int, replace: tuple[str, str] | None = None) -> Simulation:
    """The built-in, or (with ``replace``) its file with one line changed."""
    spec = load(name) if replace is None else load_text(_with(name, *replace), name)
    sim = Simulation.from_scenario(spec, seed=seed)
    sim.run()
    return sim


def _with(name: str, old: str, new: str) -> str:
    """A built-in's file with one line changed."""
    text = (BUILTIN_DIR / f"{name}.toml").read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    return text.replace(old, new)


def events(sim: Simulation, kind: str) -> list[Event]:
    return [e for e in sim.events if e.kind == kind]


def anomalies(sim: Simulation) -> list[tuple[str, str, tuple[int, ...], str | None]]:
    return [(a.kind, a.message_id, a.offsets, a.where) for a in sim.verdict().anomalies]


# -- txn-offsets-after-commit --------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_after_commit_offsets_commit_the_first_three_results_twice(seed: int) -> None:
    sim = run("txn-offsets-after-commit", seed)

    [crash] = [e for e in events(sim, "app.crash") if e.actor == "enricher"]
    assert crash.detail == "crashed after commit"  # its transaction had committed
    assert sim.committed_logs()[f"{OUT}-0"] == [
        (0, "p1-0>enriched"),
        (1, "p1-1>enriched"),
        (2, "p1-2>enriched"),
        (4, "p1-0>enriched"),
        (5, "p1-1>enriched"),
        (6, "p1-2>enriched"),
        (8, "p1-3>enriched"),
        (9, "p1-4>enriched"),
        (10, "p1-5>enriched"),
    ]
    markers = [(e.partition, e.offset, e.detail.split()[0]) for e in events(sim, "txn.marker")]
    assert markers == [
        (f"{OUT}-0", 3, "COMMIT"),
        (f"{OUT}-0", 7, "COMMIT"),
        (f"{OUT}-0", 11, "COMMIT"),
    ]
    # Only the restarted instance ever got to its commitSync().
    commits = [(e.actor, e.detail) for e in events(sim, "processor.offsets-committed")]
    assert commits == [
        ("enricher#2", "commitSync orders-0=3 done"),
        ("enricher#2", "commitSync orders-0=6 done"),
    ]
    assert anomalies(sim) == [
        *[("duplicate", f"p1-{i}>enriched", (i, i + 4), "log") for i in range(3)],
        *[("duplicate", f"p1-{i}>enriched", (i, i + 4), "processing") for i in range(3)],
    ]
    verdict = sim.verdict()
    assert verdict.verdict == "as-expected", verdict.mismatches
    outcome = verdict.outcome
    assert (outcome["duplicated_in_log"], outcome["reprocessed"], outcome["lost"]) == (3, 3, 0)


def test_in_transaction_offsets_survive_the_same_crash() -> None:
    """The twin: the same file with the offsets inside the transaction has no anomaly."""
    sim = run(
        "txn-offsets-after-commit", 1, ('offsets = "after-commit"', 'offsets = "in-transaction"')
    )

    assert events(sim, "processor.offsets-committed") == []
    assert [m for _o, m in sim.committed_logs()[f"{OUT}-0"]] == [
        f"p1-{i}>enriched" for i in range(6)
    ]
    assert anomalies(sim) == []


# -- sink-restart-from-committed ------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_restart_from_committed_inserts_the_first_batch_twice(seed: int) -> None:
    sim = run("sink-restart-from-committed", seed)
    assert sim.sink is not None

    [ignored] = events(sim, "consumer.stored-offset-ignored")
    assert (ignored.actor, ignored.partition, ignored.offset) == ("loader#2", "orders-0", 4)
    positions = [(e.actor, e.partition, e.offset) for e in events(sim, "consumer.position")]
    assert positions == [("loader", "orders-0", 0), ("loader#2", "orders-0", 0)]
    assert sim.sink.message_counts() == {
        **{f"p1-{i}": 2 for i in range(4)},
        **{f"p1-{i}": 1 for i in range(4, 8)},
    }
    assert len(sim.sink.output) == 12
    # The database's stored offset was right all along; the auto-commit came too late.
    assert [e.detail for e in events(sim, "consumer.commit")] == [
        "OffsetCommit generation 2: orders-0=8"
    ]
    assert anomalies(sim) == [
        *[("duplicate", f"p1-{i}", (i, i), "processing") for i in range(4)],
        *[("duplicate", f"p1-{i}", (), "sink") for i in range(4)],
    ]
    verdict = sim.verdict()
    assert verdict.verdict == "as-expected", verdict.mismatches


def test_restart_from_stored_seeks_to_offset_4_and_writes_each_row_once() -> None:
    sim = run(
        "sink-restart-from-committed",
        1,
        ('restart_from = "committed"', 'restart_from = "stored"'),
    )
    assert sim.sink is not None

    [seek] = events(sim, "consumer.seek")
    assert (seek.actor, seek.partition, seek.offset) == ("loader#2", "orders-0", 4)
    assert sim.sink.message_counts() == {f"p1-{i}": 1 for i in range(8)}
    assert anomalies(sim) == []


# -- the two options in the scenario format ---------------------------------------------------
def test_a_processor_offsets_value_outside_the_two_is_refused() -> None:
    text = _with("txn-offsets-after-commit", '"after-commit"\n[', '"before-commit"\n[')
    with pytest.raises(ScenarioError) as err:
        load_text(text, "x")
    assert err.value.path == "processors[0].offsets"
    assert "in-transaction" in str(err.value) and "after-commit" in str(err.value)


def test_restart_from_needs_offsets_stored_with_the_output() -> None:
    text = _with(
        "sink-restart-from-committed", 'sink = "offsets-with-output"', 'sink = "dual-write"'
    )
    with pytest.raises(ScenarioError) as err:
        load_text(text, "x")
    assert err.value.path == "consumers[0].restart_from"


def test_the_defaults_are_the_correct_ways() -> None:
    assert load("txn-read-process-write-crash").processors[0].offsets == "in-transaction"
    assert load("sink-offset-with-output").consumers[0].restart_from == "stored"

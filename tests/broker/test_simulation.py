"""The facade's contract for drivers such as the dashboard."""

from __future__ import annotations

import pytest

from broker.scenario import ScenarioError, Step, load_text
from broker.simulation import Simulation

SCENARIO = """
semantics = "at-least-once"
duration_ms = 60000
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[producers.config]
"linger.ms" = 0
[[steps]]
do = "produce"
producer = "p1"
topic = "orders"
count = 2
"""


def make() -> Simulation:
    return Simulation(load_text(SCENARIO, "facade"), seed=3)


def test_run_until_moves_the_clock_to_the_requested_time() -> None:
    sim = make()

    sim.run_until(250)

    assert sim.now_ms == 250
    assert sim.ended is None


def test_a_command_wakes_a_settled_run_and_is_recorded_with_its_time() -> None:
    sim = make()
    sim.run()
    assert sim.ended == "settled"
    settled_at = sim.now_ms

    sim.submit(
        Step(
            0,
            "produce",
            {"producer": "p1", "topic": "orders", "count": 1, "interval_ms": 0, "value": "late"},
        )
    )
    verdict = sim.run()

    assert sim.commands[0][0] == settled_at
    assert verdict.outcome["produced"] == 3
    assert verdict.outcome["in_log"] == 3
    assert sim.ended == "settled"


def test_a_command_after_the_duration_is_refused() -> None:
    sim = Simulation(load_text(SCENARIO.replace("60000", "1"), "facade"), seed=3)
    sim.run()
    assert sim.ended == "duration"

    with pytest.raises(ScenarioError, match="the run is over"):
        sim.submit(Step(0, "note"))


def test_a_clone_runs_on_independently_to_the_same_end() -> None:
    from broker.scenario import load

    spec = load("consumer-zombie-rebalance")
    whole = Simulation(spec, seed=2)
    whole.run()
    sim = Simulation(spec, seed=2)
    for _ in range(300):
        sim.step()

    twin = sim.clone()
    twin.run()
    sim.run()

    assert twin.trace(include_quiet=True) == whole.trace(include_quiet=True)
    assert sim.trace(include_quiet=True) == whole.trace(include_quiet=True)
    assert twin.events is not sim.events and twin.scheduler is not sim.scheduler


def test_last_returns_the_newest_events_oldest_first() -> None:
    sim = make()
    sim.run()
    newest = sim.events.last(2)

    assert [e.seq for e in newest] == [sim.events.next_seq - 2, sim.events.next_seq - 1]


def test_read_records_gives_a_window_at_any_offset_with_the_leaders_cursors() -> None:
    sim = Simulation(load_text(SCENARIO.replace("count = 2", "count = 600"), "window"), seed=3)
    sim.run()

    window = sim.read_records("orders-0", 100, 5)

    assert [r["offset"] for r in window["records"]] == [100, 101, 102, 103, 104]
    assert [r["message_id"] for r in window["records"]] == [f"p1-{n}" for n in range(100, 105)]
    assert window["high_watermark"] == window["log_end_offset"] == 600
    # The newest records read the same through the window and the snapshot.
    newest = sim.snapshot()["partitions"][0]["records"][-3:]
    assert sim.read_records("orders-0", 597, 10)["records"] == newest


@pytest.mark.parametrize("partition", ["orders-7", "nosuch-0", "orders", ""])
def test_read_records_of_an_unknown_partition_is_empty(partition: str) -> None:
    window = make().read_records(partition, 0, 10)

    assert window["records"] == []
    assert window["leader"] is None


def test_a_clone_keeps_its_own_ledger_while_sharing_the_immutable_records() -> None:
    sim = make()
    while not any(e.kind == "produce.send" for e in sim.events):
        sim.step()
    twin = sim.clone()
    # A record never changes, so a checkpoint shares it; a ledger entry changes, so it is copied.
    assert twin.producers["p1"].outbox["p1-0"][0] is sim.producers["p1"].outbox["p1-0"][0]
    assert twin.ledger.messages["p1-0"] is not sim.ledger.messages["p1-0"]
    before = {m: (e.status, e.attempts, e.acks) for m, e in twin.ledger.messages.items()}

    sim.run()

    # The original's messages were acknowledged; the checkpoint still has them pending.
    assert {e.status for e in sim.ledger.messages.values()} == {"acked"}
    assert {m: (e.status, e.attempts, e.acks) for m, e in twin.ledger.messages.items()} == before
    assert {e.status for e in twin.ledger.messages.values()} == {"pending"}

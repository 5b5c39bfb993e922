"""Network fault buttons: each offered one is a command the engine accepts, and does what its
label says."""

from __future__ import annotations

import pytest

from broker.faults import FAULT_KINDS
from broker.scenario import load, load_text
from dashboard.live.timeline import Timeline
from dashboard.panels import presenters
from dashboard.panels.observe import scenario_info, snapshot_of

QUIET = """
semantics = "at-least-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
count = 3
interval_ms = 100
"""


def buttons(timeline: Timeline) -> dict[str, presenters.FaultOption]:
    options = presenters.fault_options(scenario_info(timeline.spec), snapshot_of(timeline.sim))
    return {o.id: o for o in options}


def press(timeline: Timeline, option_id: str) -> None:
    option = buttons(timeline)[option_id]
    assert option.available, option.why_not
    timeline.submit(option.command, option.label)


def run_until(timeline: Timeline, kind: str) -> list[str]:
    seen = []
    while timeline.step_engine():
        seen = [f"{e.actor} {e.detail}" for e in timeline.sim.events if e.kind == kind]
        if seen:
            break
    return seen


def test_a_broker_can_be_cut_off_from_the_others_and_the_network_healed() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    offered = buttons(timeline)

    assert offered["isolate-broker:2"].label == "Cut broker-2 off from the other brokers"
    assert offered["heal"].label == "Heal the network (remove every network fault)"
    press(timeline, "isolate-broker:2")
    assert run_until(timeline, "fault.isolate") == [
        "network broker-2 cut off from broker-1, broker-3"
    ]
    press(timeline, "heal")
    assert run_until(timeline, "fault.healed") == ["network all network faults removed"]


def test_a_crashed_broker_cannot_be_cut_off() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    press(timeline, "crash-broker:3")
    run_until(timeline, "broker.crash")

    isolate = buttons(timeline)["isolate-broker:3"]

    assert not isolate.available and isolate.why_not == "broker-3 is down"


@pytest.mark.skipif("disconnect-request" not in FAULT_KINDS, reason="the engine has no such fault")
def test_breaking_the_connection_of_the_next_request_makes_the_producer_retry() -> None:
    # Nothing else breaks a connection here.
    timeline = Timeline(load_text(QUIET, "quiet"))
    option = buttons(timeline)["disconnect-request:p1"]
    assert option.label == "Break the connection carrying the next produce request"

    press(timeline, "disconnect-request:p1")
    disconnected = run_until(timeline, "disconnected")

    assert disconnected and disconnected[0].startswith("p1 connection to broker-1 lost")
    assert run_until(timeline, "produce.retry")
    while timeline.step_engine():
        pass
    assert timeline.sim.verdict().outcome["acknowledged"] == 3

"""An application whose start time has not come is "not started", not "crashed", and its crash,
stall and restart buttons are unavailable until it runs."""

from __future__ import annotations

from typing import Any

from broker.scenario import load, load_text
from dashboard.live.runtime import Room
from dashboard.live.timeline import Timeline
from dashboard.panels import consumer_panels, fragments, presenters, txn_panels
from tests.dashboard.conftest import observed


def options(obs: dict[str, Any]) -> dict[str, presenters.FaultOption]:
    return {o.id: o for o in presenters.fault_options(obs["scenario"], obs["snapshot"])}


def test_a_consumer_at_0_ms_is_not_started_and_cannot_be_restarted() -> None:
    obs = observed(Timeline(load("consumer-commit-after-processing")))

    panel = consumer_panels.consumers_panel(obs)
    html = fragments.build_model(obs).html["consumers"]
    buttons = options(obs)

    assert panel is not None
    [billing] = panel["consumers"]
    assert (billing["icon"], billing["state"]) == ("\u25cc", "not started (starts at 0 ms)")
    assert "crashed" not in html
    assert 'class="consumer is-not-started"' in html
    restart = buttons["restart-consumer:billing"]
    assert not restart.available
    assert restart.why_not == "billing has not started yet (it starts at 0 ms)"
    assert not buttons["crash-consumer:now:billing"].available
    assert not buttons["stall-consumer:billing"].available


def test_once_started_then_crashed_the_consumer_is_crashed_and_restartable() -> None:
    timeline = Timeline(load("consumer-commit-after-processing"))
    while not any(e.kind == "app.start" and e.actor == "billing" for e in timeline.sim.events):
        timeline.step_engine()
    running = observed(timeline)
    assert options(running)["crash-consumer:now:billing"].available
    assert not options(running)["restart-consumer:billing"].available

    timeline.submit({"do": "crash-consumer", "consumer": "billing", "at": "now"}, "Crash billing")
    timeline.step_engine()
    crashed = observed(timeline)

    panel = consumer_panels.consumers_panel(crashed)
    assert panel is not None
    assert panel["consumers"][0]["state"] == "crashed"
    restart = options(crashed)["restart-consumer:billing"]
    assert restart.available and restart.why_not == ""


def test_the_room_refuses_restarting_a_consumer_that_has_not_started() -> None:
    room = Room("r1", load("consumer-commit-after-processing"))

    restart = {o.id: o for o in room.fault_options()}["restart-consumer:billing"]

    assert not restart.available


def test_a_processor_before_its_start_is_not_started() -> None:
    obs = observed(Timeline(load("txn-read-process-write-crash")))

    panel = txn_panels.processors_panel(obs)

    assert panel is not None
    assert {p["state"] for p in panel["processors"]} == {"not started (starts at 0 ms)"}
    name = panel["processors"][0]["name"]
    assert not options(obs)[f"restart-processor:{name}"].available


def test_a_producer_that_starts_later_is_not_started_until_then() -> None:
    spec = load_text(
        """
        semantics = "at-least-once"
        [[topics]]
        name = "orders"
        [[producers]]
        name = "late"
        start_ms = 500
        [[steps]]
        at_ms = 600
        do = "produce"
        producer = "late"
        topic = "orders"
        count = 1
        """,
        "late-producer",
    )
    timeline = Timeline(spec)

    obs = observed(timeline)
    html = fragments.build_model(obs).html["producers"]

    assert "not started (starts at 500 ms)" in html
    assert "crashed" not in html
    assert not options(obs)["restart-producer:late"].available
    assert not options(obs)["crash-producer:late"].available
    while (
        timeline.sim.now_ms < 500
        or not options(observed(timeline))["crash-producer:late"].available
    ):
        assert timeline.step_engine()
    assert "running" in fragments.build_model(observed(timeline)).html["producers"]

"""The experiments panel over HTTP: presses become recorded commands, refusals name the problem
and change nothing, the limits hold, and a saved run with experiments replays the same."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from broker.scenario import load
from dashboard.live.runtime import Room, registry
from dashboard.live.timeline import Timeline
from dashboard.panels.experiments import experiment_command, experiments_panel
from dashboard.panels.observe import verdict_of
from dashboard.runs.store import replay_to_end
from dashboard.workshops.rooms import builtin_text, commands_of, create_run
from tests.dashboard.conftest import observed, open_room, step

HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def post(client: Client, url: str, **fields: str) -> Any:
    return client.post(f"{url}control/", {"action": "experiment", **fields}, **HTMX)


def the_room() -> Room:
    [room] = registry.rooms.values()
    return room


def to_the_end(room: Room) -> None:
    room.tick(0.0)  # applies the queued presses
    step(room.timeline)


def test_send_three_more_after_the_script_appends_three_offsets(client: Client) -> None:
    url = open_room(client, "producer-acks0-lost")
    room = the_room()
    step(room.timeline)

    response = post(client, url, do="produce", producer="p1", topic="clicks", count="3")

    assert response.status_code == 204
    to_the_end(room)
    assert [c.label for c in room.timeline.commands] == ["Send 3 more from p1 to clicks"]
    assert room.timeline.commands[0].raw == {
        "do": "produce",
        "producer": "p1",
        "topic": "clicks",
        "count": 3,
        "value": "v{i}",
        "key": "click-{i}",
    }
    assert room.timeline.sim.committed_logs()["clicks-0"][3:] == [
        (3, "p1-4"),
        (4, "p1-5"),
        (5, "p1-6"),
    ]


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"do": "produce", "producer": "p1", "count": "0"},
            "Send how many? A whole number from 1 to 1,000 (LAB_MAX_SEND_MORE), got '0'.",
        ),
        (
            {"do": "produce", "producer": "p1", "count": "many"},
            "Send how many? A whole number from 1 to 1,000 (LAB_MAX_SEND_MORE), got 'many'.",
        ),
        (
            {"do": "produce", "producer": "p9", "count": "2"},
            "producer: no producer 'p9' (declared: p1)",
        ),
        (
            {
                "do": "configure",
                "producer": "p1",
                "acks": "all",
                "enable.idempotence": "false",
                "max.in.flight.requests.per.connection": "1",
            },
            "Nothing to change: p1 already has acks=all, enable.idempotence=false, "
            "max.in.flight.requests.per.connection=1.",
        ),
        (
            {
                "do": "configure",
                "producer": "p1",
                "acks": "1",
                "enable.idempotence": "true",
                "max.in.flight.requests.per.connection": "1",
            },
            '"enable.idempotence": true is incompatible with these settings (Kafka refuses it '
            "too): acks must be all",
        ),
        (
            {"do": "configure", "producer": "p1", "max.in.flight.requests.per.connection": "x"},
            '"max.in.flight.requests.per.connection": expected an integer, got a string',
        ),
        (
            {"do": "explode"},
            "Which experiment? One of: produce, start-consumer, configure (got 'explode').",
        ),
    ],
)
def test_a_refused_press_names_the_problem_and_changes_nothing(
    client: Client, fields: dict[str, str], error: str
) -> None:
    url = open_room(client)
    room = the_room()

    response = post(client, url, **fields)

    assert response.status_code == 400
    assert response.text == error
    assert not room.pending and room.timeline.commands == []


def test_send_more_is_bounded_by_lab_max_send_more_and_the_records_per_run(
    client: Client,
) -> None:
    url = open_room(client)
    with override_settings(LAB_MAX_SEND_MORE=4):
        too_many = post(client, url, do="produce", producer="p1", count="5")
    with override_settings(LAB_MAX_RECORDS_PER_RUN=10):
        over_the_run = post(client, url, do="produce", producer="p1", count="8")

    assert too_many.text == (
        "Send how many? A whole number from 1 to 4 (LAB_MAX_SEND_MORE), got '5'."
    )
    assert over_the_run.text == (
        "With 8 more this run would produce 11 records; the dashboard runs at most 10 per run "
        "(LAB_MAX_RECORDS_PER_RUN)."
    )


def test_a_settings_change_is_recorded_and_the_panel_shows_the_new_values(client: Client) -> None:
    url = open_room(client)
    room = the_room()

    response = post(
        client,
        url,
        do="configure",
        producer="p1",
        acks="all",
        **{"enable.idempotence": "true", "max.in.flight.requests.per.connection": "1"},
    )

    assert response.status_code == 204
    to_the_end(room)
    assert [(c.label, c.raw) for c in room.timeline.commands] == [
        (
            "Configure p1: enable.idempotence=true",
            {"do": "configure", "producer": "p1", "enable.idempotence": True},
        )
    ]
    panel = experiments_panel(observed(room.timeline))
    assert panel is not None
    assert [(p["acks"], p["idempotence"], p["in_flight"]) for p in panel["producers"]] == [
        ("all", "true", 1)
    ]
    # Pressed before the run started: it starts idempotent, and the lost answer's retry is
    # no duplicate any more.
    assert verdict_of(room.timeline.sim)["outcome"]["duplicated"] == 0


def test_an_attendee_cannot_press_and_a_view_has_no_panel(client: Client) -> None:
    url = open_room(client)
    attendee = Client()

    response = attendee.post(
        f"{url}control/", {"action": "experiment", "do": "start-consumer"}, **HTMX
    )

    assert response.status_code == 403
    assert the_room().timeline.commands == []
    view = observed(Timeline(load("producer-acks0-lost")))
    view["room"] = {"kind": "view"}
    assert experiments_panel(view) is None


def test_a_saved_run_with_experiments_replays_to_the_same_end() -> None:
    name = "consumer-cooperative-rebalance"
    live = Timeline(load(name))
    step(live, 3000)
    for fields in (
        {"do": "start-consumer", "group": "billing"},
        {"do": "configure", "producer": "p1", "acks": "1"},
        {"do": "produce", "producer": "p1", "topic": "orders", "count": "6"},
    ):
        raw, label = experiment_command(fields, live)
        live.submit(raw, label)
    step(live, 5000)
    raw, label = experiment_command(
        {"do": "configure", "consumer": "c3", "isolation.level": "read_committed"}, live
    )
    live.submit(raw, label)
    step(live)
    run = create_run(live.spec, builtin_text(name), None, live.commands)

    replayed = replay_to_end(run)

    assert [c.raw for c in commands_of(run)] == [c.raw for c in live.commands]
    assert replayed.sim.trace(include_quiet=True) == live.sim.trace(include_quiet=True)
    assert verdict_of(replayed.sim) == verdict_of(live.sim)
    assert [c["instance"] for c in replayed.sim.snapshot()["consumers"]] == [
        "billing-a",
        "billing-b",
        "c3#2",
    ]


def test_presses_stop_at_the_commands_a_saved_run_may_have(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = open_room(client)
    monkeypatch.setattr("dashboard.runs.store.MAX_COMMANDS", 1)
    assert post(client, url, do="start-consumer", topic="orders").status_code == 204
    the_room().tick(0.0)

    refused = post(client, url, do="start-consumer", topic="orders")

    assert refused.status_code == 400
    assert refused.text == "This run has reached 1 commands, the most a saved run may have."
    assert len(the_room().timeline.commands) == 1

"""Event pacing (one moment per beat) and pause on anomaly: layers of the runtime, at the edge.

Runtime tests drive ``Room.tick(now)`` with an injected clock; the engine never sees it.
"""

import pytest
from django.test import Client

from broker.scenario import load
from dashboard.live.runtime import Control, Room, registry
from dashboard.live.timeline import Timeline
from dashboard.models import LabRoom
from dashboard.panels.observe import verdict_of
from dashboard.workshops.forms import ControlForm
from tests.dashboard.conftest import open_room, open_workshop

HTMX = {"HTTP_HX_REQUEST": "true"}
SCENARIO = "producer-retry-duplicate"


def duplicates_at(position: int) -> int:
    """The verdict's duplicates in the log once a fresh run has played ``position`` moments."""
    timeline = Timeline(load(SCENARIO), None)
    while timeline.position < position and timeline.step_event():
        pass
    assert timeline.position == position
    return int(verdict_of(timeline.sim)["outcome"]["duplicated_in_log"])


def form_control(room: Room, fields: dict[str, str]) -> Control:
    form = ControlForm(fields, room=room)
    assert form.is_valid(), form.errors
    return form.control()


def test_beat_pacing_plays_one_moment_per_beat() -> None:
    room = Room("r1", load(SCENARIO))
    room.submit(form_control(room, {"beats": "1"}))  # a beat-rate button posts only "beats"
    room.submit(Control("play"))

    room.tick(100.0)
    assert (room.speed, room.beats, room.timeline.position) == ("beat", "1", 1)
    room.tick(100.5)  # half a beat: nothing yet, however much virtual time is due
    assert room.timeline.position == 1
    room.tick(101.0)
    assert room.timeline.position == 2
    room.tick(102.0)
    assert room.timeline.position == 3
    assert room.playing
    assert room.clock_ms == room.timeline.sim.now_ms
    assert "playing 1 moment/s, one moment a beat" in room.page().html["run-header"]


def test_a_late_tick_plays_one_moment_not_a_burst() -> None:
    room = Room("r1", load(SCENARIO))
    room.submit(Control("speed", speed="beat", beats="2"))
    room.submit(Control("play"))

    room.tick(0.0)
    room.tick(10.0)  # twenty beats late
    assert room.timeline.position == 2
    room.tick(10.25)
    assert room.timeline.position == 2
    room.tick(10.5)
    assert room.timeline.position == 3


def test_pause_on_anomaly_stops_at_the_moment_the_duplicate_is_appended() -> None:
    room = Room("r1", load(SCENARIO))
    room.submit(form_control(room, {"on": "on"}))  # the toggle posts only "on"
    room.submit(Control("speed", speed="end"))

    for _ in range(100):
        room.tick(0.0)
        if not room.playing:
            break

    position = room.timeline.position
    assert not room.playing and not room.timeline.ended
    verdict = verdict_of(room.timeline.sim)
    assert verdict["outcome"]["duplicated_in_log"] == 1
    assert duplicates_at(position - 1) == 0
    assert position == 10
    assert room.paused_for is not None
    assert room.paused_for["text"].startswith("Paused: duplicate of p1-0 (2 committed copies")
    page = room.page()
    assert room.paused_for["text"] in page.html["run-header"]
    assert "is-cause" in page.html["verdict"]  # its card is highlighted (room.js)
    toggle = page.html["scrubber-panel"].split('id="btn-anomaly-pause"')[1][:200]
    assert 'aria-pressed="true"' in toggle

    room.submit(Control("play"))  # playing on: the reason goes, the run reaches its end
    for _ in range(100):
        room.tick(1.0)
    assert room.timeline.ended and room.paused_for is None


def test_pause_on_anomaly_with_beat_pacing_stops_on_the_same_beat() -> None:
    room = Room("r1", load(SCENARIO))
    room.submit(Control("anomaly-pause", on=True))
    room.submit(Control("speed", speed="beat", beats="2"))
    room.submit(Control("play"))

    for beat in range(40):
        room.tick(beat / 2)

    assert not room.playing and room.timeline.position == 10


def test_without_the_toggle_the_run_plays_through_the_anomaly() -> None:
    room = Room("r1", load(SCENARIO))
    room.submit(Control("anomaly-pause", on=True))
    room.submit(Control("anomaly-pause", on=False))
    room.submit(Control("speed", speed="end"))
    for _ in range(100):
        room.tick(0.0)
    assert room.timeline.ended and room.paused_for is None


def test_the_history_row_shows_the_beat_rates_and_the_toggle() -> None:
    room = Room("r1", load(SCENARIO))
    html = room.page().html["scrubber-panel"]
    for rate in ("0.5 moments/s", "1 moment/s", "2 moments/s"):
        assert rate in html
    assert 'name="on" value="on"' in html


@pytest.mark.django_db
@pytest.mark.parametrize("data", [{"beats": "1"}, {"on": "on"}, {"speed": "beat"}])
def test_an_attendees_pacing_control_is_refused(client: Client, data: dict) -> None:
    room = open_workshop(client)
    live = registry.rooms[room.id]
    attendee = attendee_of(room)

    response = attendee.post(f"/rooms/{room.id}/control/", data, **HTMX)

    assert response.status_code == 403
    assert "only the room's presenters can do that" in response.text
    live.tick(0.0)
    assert (live.speed, live.pause_on_anomaly, live.playing) == ("1", False, False)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"beats": "3"}, "It plays 0.5, 1, 2 moments a second."),
        ({"speed": "beat", "beats": "fast"}, "It plays 0.5, 1, 2 moments a second."),
        ({"speed": "2", "beats": "1"}, "A beat rate goes with event pacing"),
        ({"action": "anomaly-pause"}, "Pause on anomaly: on or off?"),
    ],
)
def test_a_bad_pacing_control_is_a_clear_400(client: Client, data: dict, message: str) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()

    response = client.post(f"{url}control/", data, **HTMX)

    assert response.status_code == 400
    assert message in response.text
    assert not room.pending


@pytest.mark.django_db
def test_a_presenters_beat_rate_and_toggle_are_applied(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()

    assert client.post(f"{url}control/", {"beats": "0.5"}, **HTMX).status_code == 204
    assert client.post(f"{url}control/", {"on": "on"}, **HTMX).status_code == 204
    room.tick(0.0)

    assert (room.speed, room.beats, room.pause_on_anomaly) == ("beat", "0.5", True)


def attendee_of(room: LabRoom) -> Client:
    attendee = Client()
    assert attendee.get(f"/r/{room.code}/", follow=True).status_code == 200
    return attendee

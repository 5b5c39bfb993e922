"""Compare two settings side by side (issue 13): two rooms that step together.

The runtime side is driven as the room tests drive rooms: ``Pair.apply_pending`` and each
room's ``tick(now)`` with an injected clock (the pacing task does exactly this every 50 ms).
"""

from html import unescape
from typing import Any

import pytest
from django.test import Client
from django.test.utils import override_settings

from dashboard.compare import pair as pairs
from dashboard.compare import store
from dashboard.live import pacing
from dashboard.live.runtime import registry
from dashboard.models import LabRoom, SavedRun
from dashboard.panels.observe import verdict_of
from dashboard.runs.store import replay_to_end
from dashboard.workshops import rooms
from tests.dashboard.conftest import open_workshop

pytestmark = pytest.mark.django_db
SCENARIO = "producer-retry-duplicate"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture(autouse=True)
def no_pacing_task(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test ticks the pair itself, with its own clock (the browser tests run the task)."""
    monkeypatch.setattr(pairs.Pair, "ensure_running", lambda self: None)


def open_compare(client: Client, **fields: str) -> str:
    """Open a compare through the form (the client presents it); load its page; its id."""
    data = {"scenario": SCENARIO, "a": "idempotence-off", "b": "idempotence-on", "mode": "private"}
    response = client.post("/compare/new/", {**data, **fields})
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get(response["Location"])
    assert page.status_code == 200
    return str(response["Location"]).strip("/").split("/")[-1]


def live(compare_id: str) -> pairs.Pair:
    pair = pairs.pairs[compare_id]
    assert all(registry.get(room.id) is room for room in pair.rooms)
    return pair


def tick(pair: pairs.Pair, now: float) -> None:
    pair.apply_pending()
    for room in pair.rooms:
        room.tick(now)
    pair.keep_together(now)


def press(client: Client, compare_id: str, side: str = "a", **fields: str) -> Any:
    return client.post(f"/compare/{compare_id}/control/{side}/", fields, **HTMX)


def outcome(pair: pairs.Pair) -> list[dict[str, Any]]:
    return [verdict_of(room.timeline.sim)["outcome"] for room in pair.rooms]


def play_to_end(client: Client, compare_id: str) -> pairs.Pair:
    pair = live(compare_id)
    assert press(client, compare_id, speed="end").status_code == 204
    for _ in range(500):
        tick(pair, 0.0)
        if not any(room.playing for room in pair.rooms) and not pair.pending:
            break
    assert all(room.timeline.ended for room in pair.rooms)
    return pair


def test_the_form_offers_the_settings_worth_comparing_in_the_scenario(client: Client) -> None:
    page = client.get(f"/compare/new/?scenario={SCENARIO}").content.decode()
    assert "idempotence off" in page and "idempotence on (acks=all)" in page
    assert 'value="idempotence-off" checked' in page and 'value="idempotence-on" checked' in page

    txn = client.get("/compare/new/?scenario=txn-abort-read-committed").content.decode()
    assert "read_uncommitted" in txn and "read_committed" in txn

    sink = client.get("/compare/new/?scenario=sink-dual-write").content.decode()
    assert "dual write" in sink and "offsets with the output" in sink


def test_a_room_and_the_home_page_lead_to_the_compare_form(client: Client) -> None:
    home = client.get("/").content.decode()
    assert f'href="/compare/new/?scenario={SCENARIO}"' in home

    room = open_workshop(client, "sink-dual-write")
    page = client.get(f"/rooms/{room.id}/").content.decode()
    assert f'href="/compare/new/?room={room.id}"' in page  # "Compare with…"
    form = client.get(f"/compare/new/?room={room.id}").content.decode()
    assert "dual write" in form and f'name="room" value="{room.id}"' in form

    response = client.post(
        "/compare/new/",
        {
            "room": room.id,
            "a": "dual-write",
            "b": "offsets-with-output",
            "seed": "7",
            "mode": "private",
        },
    )
    assert response.status_code == 302
    compare = store.find(response["Location"].strip("/").split("/")[-1])
    assert compare is not None
    assert compare.a.run.scenario_toml == room.run.scenario_toml  # the room's scenario
    assert (compare.a.run.seed, compare.b.run.seed) == (7, 7)  # one seed, both panes
    assert (compare.a.kind, compare.b.kind) == ("sandbox", "sandbox")
    assert compare.a.code is None


def test_idempotence_off_duplicates_and_on_delivers_exactly_once(client: Client) -> None:
    compare_id = open_compare(client)
    page = client.get(f"/compare/{compare_id}/").content.decode()
    assert "only this differs" in page
    assert "p1: enable.idempotence=false" in page
    assert "p1: enable.idempotence=true, acks=all" in page

    off, on = outcome(play_to_end(client, compare_id))

    assert off["duplicated_in_log"] >= 1 and off["lost"] == 0
    assert on["duplicated_in_log"] == 0 and on["lost"] == 0


@pytest.mark.parametrize(
    ("scenario", "a", "b", "count"),
    [
        ("txn-abort-read-committed", "read-uncommitted", "read-committed", "aborted_reads"),
        ("sink-dual-write", "dual-write", "offsets-with-output", "duplicated_in_sink"),
    ],
)
def test_the_presets_of_transactions_and_sinks_make_the_difference_they_name(
    client: Client, scenario: str, a: str, b: str, count: str
) -> None:
    form = client.get(f"/compare/new/?scenario={scenario}").content.decode()
    assert f'value="{a}" checked' in form and f'value="{b}" checked' in form  # the default pair

    compare_id = open_compare(client, scenario=scenario, a=a, b=b)
    weak, strong = outcome(play_to_end(client, compare_id))

    assert weak[count] > 0 and strong[count] == 0
    assert weak["lost"] == strong["lost"] == 0


def test_both_panes_step_through_the_same_virtual_time(client: Client) -> None:
    compare_id = open_compare(client)
    pair = live(compare_id)
    clocks = []
    for _ in range(6):
        assert press(client, compare_id, "b", action="step").status_code == 204
        tick(pair, 0.0)
        a, b = pair.rooms
        assert a.clock_ms == b.clock_ms
        clocks.append(a.clock_ms)
    assert clocks == sorted(clocks) and clocks[-1] > clocks[0]  # moving on, together

    assert press(client, compare_id, action="back").status_code == 204
    tick(pair, 0.0)
    a, b = pair.rooms
    assert a.clock_ms == b.clock_ms < clocks[-1]


@pytest.fixture
def roomy_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy test machine must not slow a pane's clock down (playback.py) unless a test says so."""
    monkeypatch.setattr(pacing.turns, "left_s", lambda: 1.0)


@override_settings(LAB_TICK_BUDGET_MS=1000)
@pytest.mark.usefixtures("roomy_budget")
def test_playing_keeps_one_virtual_clock_and_a_fault_lands_in_both_at_the_same_time(
    client: Client,
) -> None:
    compare_id = open_compare(client, a="scenario")
    pair = live(compare_id)
    press(client, compare_id, action="play")
    tick(pair, 100.0)
    tick(pair, 100.4)  # 400 ms of virtual time at 1x
    a, b = pair.rooms
    assert a.playing and b.playing
    assert a.clock_ms == b.clock_ms == 400

    steps = [room.timeline.steps for room in pair.rooms]
    assert press(client, compare_id, "b", action="fault", fault="crash-broker:2").status_code == 204
    tick(pair, 100.4)  # the press, applied before either engine moves on
    pressed = [
        [c for c in room.timeline.commands if c.raw["do"] == "crash-broker"] for room in pair.rooms
    ]
    assert [len(p) for p in pressed] == [1, 1]
    # In each pane after every event up to the shared clock, and before any later one.
    assert [p[0].step_index for p in pressed] == steps
    assert all(p[0].time_ms <= 400 for p in pressed)
    tick(pair, 100.45)
    assert all("broker-2 is already down" in str(room.fault_options()) for room in pair.rooms)

    press(client, compare_id, action="pause")
    tick(pair, 100.5)
    assert not a.playing and not b.playing


@override_settings(LAB_TICK_BUDGET_MS=1000)
@pytest.mark.usefixtures("roomy_budget")
def test_a_pane_that_cannot_keep_up_holds_the_other_back(client: Client) -> None:
    compare_id = open_compare(client, a="scenario")
    pair = live(compare_id)
    press(client, compare_id, action="speed", speed="1")
    press(client, compare_id, action="play")
    tick(pair, 100.0)
    a, b = pair.rooms
    a._anchor_wall, a._anchor_virtual = 100.0, -300  # as if its engine had fallen behind
    tick(pair, 100.5)
    assert a.clock_ms == b.clock_ms == 200  # not 500: B waits for A
    tick(pair, 101.0)
    assert a.clock_ms == b.clock_ms == 700  # both on from the slower clock


def test_the_scrubber_of_one_pane_takes_the_other_to_the_same_virtual_time(
    client: Client,
) -> None:
    compare_id = open_compare(client)
    pair = play_to_end(client, compare_id)
    assert press(client, compare_id, "a", action="seek", position="3").status_code == 204
    tick(pair, 0.0)
    a, b = pair.rooms
    assert a.timeline.position == 3
    assert a.clock_ms == b.clock_ms == a.timeline.sim.now_ms
    assert b.timeline.sim.now_ms <= a.clock_ms


def test_each_pane_is_a_saved_run_that_replays_to_the_same_verdict(client: Client) -> None:
    compare_id = open_compare(client)
    pair = play_to_end(client, compare_id)
    for room in pair.rooms:
        room.timeline.sim  # noqa: B018 - the live engine, at its end
        run = SavedRun.objects.get(id=room.info["run_id"])
        assert run.origin == "compare"
        assert run.commands[0]["raw"]["do"] == "configure"
        assert run.commands[0]["step_index"] == 0
        replayed = verdict_of(replay_to_end(run).sim)["outcome"]
        assert replayed == verdict_of(room.timeline.sim)["outcome"]


def test_a_reset_starts_both_runs_again_with_their_settings(client: Client) -> None:
    compare_id = open_compare(client)
    pair = play_to_end(client, compare_id)
    press(client, compare_id, action="reset")
    tick(pair, 0.0)
    assert [room.timeline.steps for room in pair.rooms] == [0, 0]
    assert [len(room.timeline.commands) for room in pair.rooms] == [1, 1]
    off, on = outcome(play_to_end(client, compare_id))
    assert off["duplicated_in_log"] >= 1 and on["duplicated_in_log"] == 0


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"b": "bogus"}, "pane B: no setting 'bogus' here"),
        ({"b": "idempotence-off"}, "Panes A and B have the same setting"),
        (
            {"b": "custom", "b_custom": "producer p1 acks"},
            "pane B, line 1: 'acks' is not key=value",
        ),
        ({"b": "custom", "b_custom": "producer p9 acks=1"}, "pane B"),
        ({"b": "custom", "b_custom": ""}, "pane B: the free choice is empty"),
        ({"seed": "-4"}, "seed:"),
        ({"mode": "public"}, "mode:"),
        ({"scenario": "no-such-thing"}, "There is no built-in scenario 'no-such-thing'"),
    ],
)
def test_bad_input_is_refused_with_what_was_wrong(
    client: Client, fields: dict[str, str], words: str
) -> None:
    data = {"scenario": SCENARIO, "a": "idempotence-off", "b": "idempotence-on", "mode": "private"}
    response = client.post("/compare/new/", {**data, **fields})
    assert response.status_code == 400
    assert words in unescape(response.content.decode())
    assert not LabRoom.objects.exists()


def test_a_bad_press_is_refused_with_what_was_wrong_and_changes_nothing(client: Client) -> None:
    compare_id = open_compare(client)
    refused = press(client, compare_id, beats="1")
    assert refused.status_code == 400
    assert "Event pacing moves each pane by its own moments" in refused.content.decode()
    assert press(client, compare_id, "c", action="step").status_code == 400
    unknown = press(client, compare_id, action="fault", fault="melt-the-disk")
    assert unknown.status_code == 400 and "no fault 'melt-the-disk'" in unknown.content.decode()
    assert not live(compare_id).pending


def test_an_experiment_pressed_in_one_pane_is_recorded_in_both(client: Client) -> None:
    compare_id = open_compare(client)
    pair = live(compare_id)
    sent = press(
        client, compare_id, "b", action="experiment", do="produce", producer="p1", count="2"
    )
    assert sent.status_code == 204, sent.content.decode()
    tick(pair, 0.0)
    pressed = [[c.raw for c in room.timeline.commands[1:]] for room in pair.rooms]
    assert pressed[0] == pressed[1]
    assert [(r["do"], r["count"]) for r in pressed[0]] == [("produce", 2)]


def test_a_press_one_pane_cannot_take_goes_to_neither(client: Client) -> None:
    compare_id = open_compare(client)
    pair = live(compare_id)
    a = pair.rooms[0]
    a.timeline.submit({"do": "crash-broker", "broker": 2}, "as if pane A had lost broker-2")
    while all(o.available for o in a.fault_options() if o.id == "crash-broker:2"):
        assert a.timeline.step_engine()
    pressed_before = [len(room.timeline.commands) for room in pair.rooms]

    refused = press(client, compare_id, "b", action="fault", fault="crash-broker:2")

    assert refused.status_code == 400
    assert "Not now in pane A: crash-broker:2 (broker-2 is already down)" in unescape(
        refused.content.decode()
    )
    assert not pair.pending
    assert [len(room.timeline.commands) for room in pair.rooms] == pressed_before


def test_an_attendee_may_watch_but_not_press(client: Client) -> None:
    compare_id = open_compare(client, mode="workshop")
    attendee = Client()
    page = attendee.get(f"/compare/{compare_id}/").content.decode()
    assert "You are following the presenter" in page and "End this compare" not in page
    refused = press(attendee, compare_id, action="play")
    assert refused.status_code == 403
    assert not live(compare_id).pending
    assert attendee.post(f"/compare/{compare_id}/end/").status_code == 403


def test_ending_a_compare_ends_both_rooms_and_keeps_both_runs(client: Client) -> None:
    compare_id = open_compare(client, mode="workshop")
    compare = store.find(compare_id)
    assert compare is not None
    runs = [compare.a.run_id, compare.b.run_id]

    response = client.post(f"/compare/{compare_id}/end/")

    assert response.status_code == 302 and response["Location"] == f"/runs/{runs[0]}/"
    assert not LabRoom.objects.exists()
    assert SavedRun.objects.filter(id__in=runs).count() == 2
    assert all(registry.get(room_id) is None for room_id in compare.room_ids)
    assert not live_or_none(compare_id)
    assert client.get(f"/compare/{compare_id}/").status_code == 404


def live_or_none(compare_id: str) -> bool:
    pair = pairs.pairs.get(compare_id)
    return pair is not None and pair.bound()


def test_the_home_page_lists_a_compare_once_and_links_its_page(client: Client) -> None:
    compare_id = open_compare(client, mode="workshop")
    home = client.get("/").content.decode()
    assert f'href="/compare/{compare_id}/">Compare: ' in home
    assert "/rooms/" not in home  # not its panes' rooms: a press there moves one pane alone


def test_the_join_code_takes_an_attendee_to_both_panes(client: Client) -> None:
    compare_id = open_compare(client, mode="workshop")
    code = LabRoom.objects.get(id=compare_id).code
    response = Client().get(f"/r/{code}/")
    assert response.status_code == 302 and response["Location"] == f"/compare/{compare_id}/"


def test_a_pane_is_the_room_page_framable_by_the_lab_only(client: Client) -> None:
    compare_id = open_compare(client)
    response = client.get(f"/compare/{compare_id}/pane/b/")
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert 'class="in-pane pane-b is-room' in html and 'id="verdict"' in html
    # The room page itself stays unframable.
    room = client.get(f"/rooms/{compare_id}/")
    assert "frame-ancestors 'none'" in room["Content-Security-Policy"]
    assert client.get(f"/compare/{compare_id}/pane/c/").status_code == 404


GENEROUS = {"LAB_RATE_ROOM_CREATE": "10000/60", "LAB_RATE_FORK": "10000/60"}


@override_settings(**GENEROUS, LAB_MAX_ROOMS=3, LAB_MAX_ROOMS_PER_CLIENT=6)
def test_a_compare_counts_as_two_workshop_rooms(client: Client) -> None:
    open_compare(client, mode="workshop")
    assert LabRoom.objects.filter(kind="workshop").count() == 2

    refused = Client(REMOTE_ADDR="10.0.0.9").post(
        "/compare/new/",
        {"scenario": SCENARIO, "a": "idempotence-off", "b": "idempotence-on", "mode": "workshop"},
    )
    assert refused.status_code == 429  # room A would fit, room B would not: neither is made
    assert "The lab already runs 3 workshop rooms in use" in refused.content.decode()
    assert LabRoom.objects.filter(kind="workshop").count() == 2


@override_settings(LAB_MAX_PLAYING_ROOMS=3)
def test_a_compare_plays_only_when_both_its_runs_fit_under_the_playing_cap(
    client: Client,
) -> None:
    playing, waiting, private = (
        open_compare(client, mode=m) for m in ("workshop",) * 2 + ("private",)
    )
    assert press(client, playing, action="play").status_code == 204
    tick(live(playing), 0.0)
    assert sum(room.playing for room in registry.rooms.values()) == 2

    refused = press(client, waiting, action="play")
    assert refused.status_code == 429  # frees up when another run pauses
    assert "it plays two runs, and the lab already plays 2 of at most 3" in refused.content.decode()
    assert not live(waiting).pending

    with override_settings(LAB_MAX_PLAYING_ROOMS=8, LAB_MAX_PLAYING_PRIVATE=3):
        press(client, private, action="step")  # a step is never refused
        assert press(client, private, action="play").status_code == 204  # 2 of 3 private
        tick(live(private), 0.0)
        second = open_compare(client)
        refused = press(client, second, action="play")
    assert refused.status_code == 429
    assert "two private runs, and 2 are already playing, of at most 3" in refused.content.decode()


@override_settings(LAB_RATE_ROOM_CREATE="3/60")
def test_a_compare_counts_twice_against_the_rate_of_room_creations(client: Client) -> None:
    open_compare(client, mode="workshop")  # 2 of 3
    refused = client.post(
        "/compare/new/",
        {"scenario": SCENARIO, "a": "idempotence-off", "b": "idempotence-on", "mode": "workshop"},
    )
    assert refused.status_code == 429
    assert "Too many room creations from your address" in refused.content.decode()


def test_the_settings_are_recorded_commands_of_each_pane(client: Client) -> None:
    compare_id = open_compare(client)
    compare = store.find(compare_id)
    assert compare is not None
    assert store.settings_of(compare.a) == [
        {"do": "configure", "producer": "p1", "enable.idempotence": False}
    ]
    assert store.settings_of(compare.b) == [
        {"do": "configure", "producer": "p1", "enable.idempotence": True, "acks": "all"}
    ]
    assert rooms.is_presenter(client.session, compare.a.id)
    assert rooms.is_presenter(client.session, compare.b.id)

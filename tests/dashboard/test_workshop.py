"""Workshop rooms: roles, join codes, presenter links, votes, forks and expiry."""

import json
import re
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from dashboard.asgi import application
from dashboard.live import service
from dashboard.live.runtime import Control, registry
from dashboard.models import CODE_ALPHABET, LabRoom, Question, SavedRun, Vote, hash_key
from dashboard.workshops import rooms
from tests.dashboard.conftest import ORIGIN, open_workshop, session_headers

HTMX = {"HTTP_HX_REQUEST": "true"}
pytestmark = pytest.mark.django_db


def attendee_of(room: LabRoom) -> Client:
    attendee = Client()
    response = attendee.get(f"/r/{room.code}/", follow=True)
    assert response.status_code == 200
    return attendee


# -- rooms, codes and links --
def test_a_new_room_has_an_eight_symbol_code_and_a_hashed_presenter_key(client: Client) -> None:
    room = open_workshop(client)
    page = client.get(f"/rooms/{room.id}/").text

    assert re.fullmatch(f"[{CODE_ALPHABET}]{{8}}", room.code)
    assert f'<strong id="join-code">{room.code}</strong>' in page
    assert f'href="http://testserver/r/{room.code}/"' in page
    key = re.search(rf"/rooms/{room.id}/present/([\w-]+)/", page).group(1)
    assert room.presenter_key_hash == hash_key(key) and key not in room.presenter_key_hash
    assert 'class="is-room role-presenter kind-workshop"' in page


def test_the_join_code_is_forgiving_about_case_and_spaces(client: Client) -> None:
    room = open_workshop(client)
    code = room.code

    typed = Client().get("/join/", {"code": f" {code[:2].lower()}-{code[2:].lower()} "})
    linked = Client().get(f"/r/{code}/")

    assert typed["Location"] == linked["Location"] == f"/rooms/{room.id}/"


def test_an_unknown_code_says_so(client: Client) -> None:
    response = Client().get("/r/ZZZZ/")

    assert response.status_code == 404
    assert "There is no open room with the code <strong>ZZZZ</strong>." in response.text


def test_an_attendee_sees_the_room_without_controls_or_notes(client: Client) -> None:
    room = open_workshop(client)

    page = attendee_of(room).get(f"/rooms/{room.id}/").text

    assert 'class="is-room role-attendee kind-workshop"' in page
    assert 'id="btn-sandbox"' in page and 'id="btn-detach"' in page
    assert 'id="speaker-notes"' not in page
    assert 'id="share"' not in page and "/present/" not in page


def test_the_home_page_lists_the_rooms_this_browser_presents(client: Client) -> None:
    room = open_workshop(client)

    mine, theirs = client.get("/").text, Client().get("/").text

    assert f'href="/rooms/{room.id}/"' in mine and f"code <strong>{room.code}</strong>" in mine
    assert f"/rooms/{room.id}/" not in theirs


def test_the_presenter_link_makes_another_browser_a_presenter(client: Client) -> None:
    room = open_workshop(client)
    key = re.search(r"/present/([\w-]+)/", client.get(f"/rooms/{room.id}/").text).group(1)
    colleague = Client()

    response = colleague.get(f"/rooms/{room.id}/present/{key}/")

    assert response["Location"] == f"/rooms/{room.id}/"
    page = colleague.get(f"/rooms/{room.id}/").text
    assert "role-presenter" in page and 'id="speaker-notes"' in page
    # The key is shown only to the browser that made the room.
    assert 'id="presenter-link"' not in page


def test_a_wrong_presenter_key_is_refused(client: Client) -> None:
    room = open_workshop(client)
    stranger = Client()

    response = stranger.get(f"/rooms/{room.id}/present/not-the-key/")

    assert response.status_code == 403
    assert "This presenter link is not valid" in response.text
    assert "role-attendee" in stranger.get(f"/rooms/{room.id}/").text


def test_a_reloaded_room_numbers_its_frames_past_the_earlier_copy(client: Client) -> None:
    room = open_workshop(client)
    before = registry.rooms[room.id]
    for _ in range(5):
        before.submit(Control("step"))
        before.tick(0.0)
    registry.clear()  # a new worker, or the room dropped from memory

    client.get(f"/rooms/{room.id}/")

    # Browsers still show the earlier copy's frames: the new ones must not look older.
    assert registry.rooms[room.id].seq > before.seq


def test_keys_are_compared_by_their_hash_in_constant_time() -> None:
    stored = hash_key("right")

    assert rooms.check_key(LabRoom(presenter_key_hash=stored), "right")
    assert not rooms.check_key(LabRoom(presenter_key_hash=stored), "wrong")
    assert not rooms.check_key(LabRoom(presenter_key_hash=stored), "é" * 300)


# -- role enforcement: every control path --
PRESENTER_POSTS = [
    ("control/", {"action": "step"}),
    ("control/", {"action": "fault", "fault": "drop-response:p1"}),
    ("control/", {"speed": "end"}),
    ("control/", {"action": "reset"}),
    ("ask/", {"prompt": "What next?", "presets": ["lost", "duplicated"]}),
    ("reveal/", {}),
]


@pytest.mark.parametrize(("path", "data"), PRESENTER_POSTS)
def test_an_attendees_control_is_refused_and_changes_nothing(
    client: Client, path: str, data: dict
) -> None:
    room = open_workshop(client)
    live = registry.rooms[room.id]
    first_seq = live.seq
    attendee = attendee_of(room)

    plain = attendee.post(f"/rooms/{room.id}/{path}", data)
    htmx = attendee.post(f"/rooms/{room.id}/{path}", data, **HTMX)

    assert plain.status_code == htmx.status_code == 403
    assert "only the room's presenters can do that" in plain.text
    assert htmx.text == plain.text and htmx["HX-Reswap"] == "none"
    live.tick(0.0)
    assert (live.seq, live.timeline.steps, live.timeline.commands, live.question) == (
        first_seq,
        0,
        [],
        None,
    )
    assert not Question.objects.exists()


@pytest.mark.django_db(transaction=True)
async def test_an_attendees_forged_websocket_controls_are_refused() -> None:
    room = await sync_to_async(_workshop)()
    live = registry.rooms[room.id]
    first_seq = live.seq
    attendee = await sync_to_async(session_headers)([], "attendee-1")
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=attendee)
    await ws.connect()
    await ws.receive_from(timeout=5)

    for message in (
        {"action": "step"},
        {"action": "speed", "speed": "end"},
        {"action": "fault", "fault": "drop-response:p1"},
        {"action": "reset"},
        {"action": "seek", "position": 3},
    ):
        await ws.send_to(text_data=json.dumps(message))
        refusal = await ws.receive_from(timeout=5)
        assert "only the room&#x27;s presenters can do that" in refusal

    assert await ws.receive_nothing(timeout=0.3)
    assert (live.seq, live.timeline.steps, list(live.pending)) == (first_seq, 0, [])
    await ws.disconnect()


def _workshop() -> LabRoom:
    client = Client()
    return open_workshop(client)


@pytest.mark.django_db(transaction=True)
async def test_a_presenters_websocket_controls_work() -> None:
    room = await sync_to_async(_workshop)()
    headers = await sync_to_async(session_headers)([room.id])
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=headers)
    await ws.connect()
    snapshot = await ws.receive_from(timeout=5)

    await ws.send_to(text_data=json.dumps({"action": "step"}))
    frame = await ws.receive_from(timeout=5)

    first_seq = registry.rooms[room.id].seq - 1
    assert 'id="speaker-notes"' in snapshot
    assert f'data-seq="{first_seq}" data-kind="full"' in snapshot
    assert f'data-seq="{first_seq + 1}" data-kind="delta"' in frame
    assert registry.rooms[room.id].timeline.steps > 0
    await ws.disconnect()


def test_another_rooms_presenter_is_an_attendee_here(client: Client) -> None:
    mine = open_workshop(client)
    other_client = Client()
    other = open_workshop(other_client, "producer-idempotent")

    response = client.post(f"/rooms/{other.id}/control/", {"action": "step"})

    assert response.status_code == 403
    assert registry.rooms[other.id].timeline.steps == 0
    assert client.post(f"/rooms/{mine.id}/control/", {"action": "step"}).status_code == 302


@override_settings(LAB_RATE_CONTROL=(3, 60.0))
def test_controls_are_rate_limited(client: Client) -> None:
    room = open_workshop(client)

    codes = [
        client.post(f"/rooms/{room.id}/control/", {"action": "pause"}).status_code for _ in range(4)
    ]

    assert codes == [302, 302, 302, 429]
    assert (
        "Too many controls from this browser: try again in"
        in client.post(f"/rooms/{room.id}/control/", {"action": "pause"}).text
    )


@override_settings(LAB_RATE_ROOM_CREATE=(2, 60.0))
def test_room_creation_is_rate_limited_per_address(client: Client) -> None:
    open_workshop(client)
    open_workshop(Client())

    response = Client().post("/", {"scenario": "producer-idempotent"})

    assert response.status_code == 429
    assert "Too many room creations from your address: try again in" in response.text
    assert LabRoom.objects.count() == 2


# -- predict, then reveal --
def ask(client: Client, room: LabRoom, **data: object) -> Question:
    payload = {"prompt": "What happens next?", "presets": ["lost", "duplicated", "exactly once"]}
    response = client.post(f"/rooms/{room.id}/ask/", {**payload, **data})
    assert response.status_code == 302, response.content
    return Question.objects.filter(room=room).latest("id")


def test_asking_pauses_the_run_and_shows_the_question_to_everyone(client: Client) -> None:
    room = open_workshop(client)
    live = registry.rooms[room.id]
    live.submit(Control("play"))

    question = ask(client, room, custom="Something else\n")
    live.tick(0.0)

    assert not live.playing
    assert question.choices == ["lost", "duplicated", "exactly once", "Something else"]
    page = attendee_of(room).get(f"/rooms/{room.id}/").text
    assert "Predict: What happens next?" in page
    assert page.count('class="vote"') == 4


def test_each_attendee_votes_once_and_the_tally_counts_them(client: Client) -> None:
    room = open_workshop(client)
    question = ask(client, room)
    first, second = attendee_of(room), attendee_of(room)

    ok = first.post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 1}, **HTMX)
    again = first.post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 2}, **HTMX)
    other = second.post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 1})

    assert "Your vote: <strong>duplicated</strong>" in ok.text
    assert "You have already voted on this question: one vote per person." in again.text
    assert other.status_code == 302
    assert sorted(Vote.objects.values_list("choice", flat=True)) == [1, 1]
    live = registry.rooms[room.id]
    live.tick(0.0)
    assert live.question["tally"] == [0, 2, 0]
    # Everyone sees how many voted; only presenters see how, until the reveal.
    assert '<span id="vote-total">2</span> votes so far' in live.model.html["question"]
    assert 'class="count"' not in live.model.html["question"]
    assert '<span class="count" id="tally-1">2</span>' in live.model.html["question-tally"]
    assert "tally-1" not in live.full_frame(presenter=False)
    assert '<span class="count" id="tally-1">2</span>' in live.full_frame(presenter=True)


@pytest.mark.django_db(transaction=True)
async def test_a_vote_over_the_websocket_counts_once() -> None:
    room = await sync_to_async(_workshop)()
    question = await sync_to_async(_ask_default)(room)
    headers = await sync_to_async(session_headers)([], "attendee-ws")
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=headers)
    await ws.connect()
    await ws.receive_from(timeout=5)
    vote = {"action": "vote", "question": question.id, "choice": 0}

    await ws.send_to(text_data=json.dumps(vote))
    tally = await ws.receive_from(timeout=5)
    await ws.send_to(text_data=json.dumps(vote))
    refused = await ws.receive_from(timeout=5)

    assert '<span id="vote-total">1</span> vote so far' in tally
    assert "tally-0" not in tally  # an attendee's frame: how the room voted shows at the reveal
    assert "You have already voted on this question" in refused
    assert await sync_to_async(Vote.objects.count)() == 1
    await ws.disconnect()


def _ask_default(room: LabRoom) -> Question:
    presenter = Client()
    session = presenter.session
    rooms.grant_presenter(session, room.id)
    session.save()
    return ask(presenter, room)


def test_presenters_do_not_vote(client: Client) -> None:
    room = open_workshop(client)
    question = ask(client, room)

    response = client.post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 0})

    assert response.status_code == 403
    assert response.text == "Presenters do not vote: the tally is the attendees' prediction."
    assert not Vote.objects.exists()


@override_settings(LAB_RATE_VOTE=(2, 60.0))
def test_votes_are_rate_limited_per_browser(client: Client) -> None:
    room = open_workshop(client)
    question = ask(client, room)
    attendee = attendee_of(room)

    codes = [
        attendee.post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 0}).status_code
        for _ in range(3)
    ]

    assert codes == [302, 400, 429]  # counted, "already voted", then too many tries
    assert Vote.objects.count() == 1


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"choice": 9}, "That question has choices 0 to 2."),
        ({"choice": "x"}, "A vote needs a question and a choice (numbers)."),
        ({"question": 999999}, "That question is not open in this room."),
    ],
)
def test_a_bad_vote_is_refused(client: Client, data: dict, error: str) -> None:
    room = open_workshop(client)
    question = ask(client, room)

    response = attendee_of(room).post(
        f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 0, **data}
    )

    assert response.status_code == 400
    assert response.text == error
    assert not Vote.objects.exists()


def test_reveal_plays_on_and_closes_the_vote(client: Client) -> None:
    room = open_workshop(client)
    question = ask(client, room)
    live = registry.rooms[room.id]
    live.tick(0.0)

    client.post(f"/rooms/{room.id}/reveal/")
    live.tick(0.0)
    late = attendee_of(room).post(f"/rooms/{room.id}/vote/", {"question": question.id, "choice": 0})

    assert live.playing
    assert live.question["revealed"]
    assert "Revealed: What happens next?" in live.model.html["question"]
    assert late.text == "Voting is over: the run has moved on to the answer."


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"presets": ["lost"]}, "A question needs 2 to 6 different choices; this one has 1."),
        ({"prompt": ""}, "This field is required."),
        ({"custom": "x" * 61}, "A choice may be at most 60 characters"),
    ],
)
def test_a_bad_question_is_refused(client: Client, data: dict, error: str) -> None:
    room = open_workshop(client)
    payload = {"prompt": "Next?", "presets": ["lost", "duplicated"], **data}

    response = client.post(f"/rooms/{room.id}/ask/", payload)

    assert response.status_code == 400
    assert error in response.text
    assert not Question.objects.exists()


# -- forks: sandbox and detached view --
def advanced(client: Client) -> tuple[LabRoom, object]:
    room = open_workshop(client)
    live = registry.rooms[room.id]
    live.submit(Control("step"))
    live.submit(Control("fault", fault="drop-response:p1"))
    for _ in range(4):
        live.submit(Control("step"))
    live.tick(0.0)
    return room, live


def test_try_it_yourself_forks_the_run_at_the_same_state(client: Client) -> None:
    room, live = advanced(client)
    attendee = attendee_of(room)

    response = attendee.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})

    sandbox_id = response["Location"].strip("/").split("/")[-1]
    sandbox = registry.rooms[sandbox_id]
    assert sandbox.kind == "sandbox"
    assert sandbox.timeline.sim.snapshot() == live.timeline.sim.snapshot()
    assert sandbox.timeline.commands == live.timeline.commands
    assert sandbox.page().html["brokers"] == live.page().html["brokers"]
    record = LabRoom.objects.get(id=sandbox_id)
    assert (record.parent_id, record.code, record.run.origin) == (room.id, None, "sandbox")
    # Full controls in the sandbox, and the room itself does not move.
    assert attendee.post(f"/rooms/{sandbox_id}/control/", {"action": "step"}).status_code == 302
    sandbox.tick(0.0)
    assert sandbox.timeline.steps > live.timeline.steps
    page = attendee.get(f"/rooms/{sandbox_id}/").text
    assert "A sandbox." in page and f'href="/rooms/{room.id}/"' in page
    # The attendee finds the sandbox's saved run on the home page.
    assert f'href="/runs/{record.run_id}/"' in attendee.get("/").text


def test_a_sandbox_is_private(client: Client) -> None:
    room, _live = advanced(client)
    sandbox_id = (
        attendee_of(room)
        .post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})["Location"]
        .strip("/")
        .split("/")[-1]
    )

    other = attendee_of(room).post(f"/rooms/{sandbox_id}/control/", {"action": "step"})
    presenter = client.post(f"/rooms/{sandbox_id}/control/", {"action": "step"})

    assert other.status_code == presenter.status_code == 403


def test_a_detached_view_travels_in_time_but_takes_no_faults(client: Client) -> None:
    room, live = advanced(client)
    attendee = attendee_of(room)
    view_id = (
        attendee.post(f"/rooms/{room.id}/fork/", {"kind": "view"})["Location"]
        .strip("/")
        .split("/")[-1]
    )
    view = registry.rooms[view_id]
    head = live.timeline.steps

    back = attendee.post(f"/rooms/{view_id}/control/", {"action": "seek", "position": 0})
    fault = attendee.post(
        f"/rooms/{view_id}/control/", {"action": "fault", "fault": "drop-response:p1"}
    )
    view.tick(0.0)
    assert view.timeline.steps == 0
    view.submit(Control("speed", speed="end"))
    view.tick(0.0)
    while view.playing:
        view.tick(0.0)

    assert back.status_code == 302
    assert fault.status_code == 400 and "A view only travels in time" in fault.text
    # Played forward, it stops where the room was when the attendee detached.
    assert view.timeline.steps == head and view.timeline.commands == live.timeline.commands
    assert live.timeline.steps == head
    assert "A detached view." in attendee.get(f"/rooms/{view_id}/").text


@override_settings(LAB_RATE_FORK=(1, 60.0))
def test_forks_are_rate_limited(client: Client) -> None:
    room, _live = advanced(client)
    attendee = attendee_of(room)

    attendee.post(f"/rooms/{room.id}/fork/", {"kind": "view"})
    response = attendee.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})

    assert response.status_code == 429
    assert LabRoom.objects.filter(kind__in=["view", "sandbox"]).count() == 1


# -- saving and expiry --
def test_the_rooms_run_is_saved_with_each_commands_virtual_time(client: Client) -> None:
    room, live = advanced(client)

    async_to_sync(service.save_now)(live)

    run = SavedRun.objects.get(id=room.run_id)
    [command] = run.commands
    assert command["label"] == "Drop the next produce response"
    assert command["raw"] == live.timeline.commands[0].raw
    assert (command["step_index"], command["time_ms"]) == (
        live.timeline.commands[0].step_index,
        live.timeline.commands[0].time_ms,
    )
    assert run.verdict["semantics"] == "at-least-once"


def test_a_reset_room_saves_its_now_empty_list_of_commands(client: Client) -> None:
    # The reset run starts a new timeline: its commands differ from the saved ones although
    # neither list changed in place, so the save after the next tick must notice.
    room, live = advanced(client)
    async_to_sync(service.save_now)(live)

    live.submit(Control("reset"))
    live.tick(0.0)
    async_to_sync(service._after_tick)(live)

    assert SavedRun.objects.get(id=room.run_id).commands == []


@override_settings(LAB_ROOM_IDLE_EXPIRY_S=60)
def test_an_idle_room_expires_but_its_run_stays(client: Client) -> None:
    room = open_workshop(client)
    LabRoom.objects.filter(id=room.id).update(last_active=timezone.now() - timedelta(seconds=61))

    gone = async_to_sync(service.sweep)()

    assert gone == [room.id]
    assert room.id not in registry.rooms
    assert client.get(f"/rooms/{room.id}/").status_code == 404
    assert Client().get(f"/r/{room.code}/").status_code == 404
    assert SavedRun.objects.filter(id=room.run_id).exists()


def test_whoever_is_still_connected_is_told_the_room_expired(client: Client) -> None:
    room = open_workshop(client)
    viewer = _Viewer()
    registry.rooms[room.id].audience.add(viewer, presenter=False)
    # An expiry of 0 s: even a room being watched is past it at the next sweep.
    LabRoom.objects.filter(id=room.id).update(idle_expiry_s=0)

    assert async_to_sync(service.sweep)() == [room.id]

    assert room.id not in registry.rooms
    assert viewer.sent == [
        '<div id="ws-error" class="ws-error" role="alert">'
        "This room expired: nobody used it for a while.</div>"
    ]


@override_settings(LAB_ROOM_IDLE_EXPIRY_S=60)
def test_a_watched_room_does_not_expire(client: Client) -> None:
    room = open_workshop(client)
    live = registry.rooms[room.id]
    LabRoom.objects.filter(id=room.id).update(last_active=timezone.now() - timedelta(seconds=61))
    live.audience.add(_Viewer(), presenter=False)

    assert async_to_sync(service.sweep)() == []


class _Viewer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def base_send(self, message: dict) -> None:
        self.sent.append(message["text"])


# -- security --


@pytest.mark.parametrize("path", ["control/", "ask/", "reveal/", "vote/", "fork/"])
def test_every_room_post_needs_the_csrf_token(client: Client, path: str) -> None:
    room = open_workshop(client)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies  # the presenter's own session, without the token

    response = strict.post(f"/rooms/{room.id}/{path}", {"action": "step", "kind": "view"})

    assert response.status_code == 403
    assert "CSRF" in response.text


@pytest.mark.django_db(transaction=True)
@override_settings(LAB_MAX_CONNECTIONS_PER_ROOM=1)
async def test_a_full_room_refuses_one_more_connection() -> None:
    room = await sync_to_async(_workshop)()
    first = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=[ORIGIN])
    second = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=[ORIGIN])
    await first.connect()
    await first.receive_from(timeout=5)

    await second.connect()

    assert "This room is full (1 connections)." in await second.receive_from(timeout=5)
    assert (await second.receive_output(timeout=5))["code"] == 4429
    assert registry.rooms[room.id].viewers == 1
    await first.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_a_websocket_from_another_site_is_refused() -> None:
    room = await sync_to_async(_workshop)()
    ws = WebsocketCommunicator(
        application, f"/ws/rooms/{room.id}/", headers=[(b"origin", b"http://evil.example")]
    )

    connected, _ = await ws.connect()

    assert not connected


@pytest.mark.django_db(transaction=True)
@override_settings(LAB_RATE_CONTROL=(1, 60.0))
async def test_websocket_controls_are_rate_limited_too() -> None:
    room = await sync_to_async(_workshop)()
    headers = await sync_to_async(session_headers)([room.id])
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=headers)
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=json.dumps({"action": "step"}))
    await ws.receive_from(timeout=5)  # its frame
    await ws.send_to(text_data=json.dumps({"action": "step"}))

    assert "Too many controls from this browser: try again in" in await ws.receive_from(5)
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()

"""No single visitor can wear the lab down: join-code guessing, resync floods, vote stuffing.

Each limit is set low here (override_settings) so that a test reaches it in a few requests;
the defaults and why they are what they are: docs/workshops.md.
"""

import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.test.utils import override_settings

from dashboard.asgi import application
from dashboard.models import CODE_ALPHABET, CODE_LENGTH, LabRoom, Question, Vote
from tests.dashboard.conftest import ORIGIN, open_workshop, session_headers

pytestmark = pytest.mark.django_db
SEQ = re.compile(r'^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"')
TOO_MANY_CODES = re.compile(r"Too many wrong room codes from your address: try again in \d+ s\.")


def from_address(ip: str) -> Client:
    return Client(REMOTE_ADDR=ip)


def wrong_code() -> str:
    return "Q" * CODE_LENGTH


# -- join codes ----------------------------------------------------------------------------------
def test_join_codes_are_eight_symbols_of_the_unambiguous_alphabet(client: Client) -> None:
    codes = {open_workshop(Client(REMOTE_ADDR=f"10.0.0.{i}")).code for i in range(1, 6)}

    assert len(codes) == 5
    for code in codes:
        assert re.fullmatch(f"[{CODE_ALPHABET}]{{8}}", code), code
    assert not set(CODE_ALPHABET) & set("0O1IL5S2Z8B")


@override_settings(LAB_RATE_JOIN_FAIL=(3, 60.0))
def test_wrong_codes_are_refused_past_the_limit_on_both_paths(client: Client) -> None:
    room = open_workshop(client)
    guesser = from_address("10.1.1.1")

    misses = [guesser.get(f"/r/{wrong_code()}/").status_code for _ in range(2)]
    misses.append(guesser.get("/join/", {"code": wrong_code()}).status_code)
    by_form = guesser.get("/join/", {"code": wrong_code()})
    by_link = guesser.get(f"/r/{wrong_code()}/")

    assert misses == [404, 404, 404]
    for refused in (by_form, by_link):
        assert refused.status_code == 429
        assert TOO_MANY_CODES.fullmatch(refused.text), refused.text
        assert 1 <= int(refused["Retry-After"]) <= 60
    # Past the limit even the right code gets the same refusal: a lucky guess learns nothing.
    right = guesser.get(f"/r/{room.code}/")
    assert right.status_code == 429 and TOO_MANY_CODES.fullmatch(right.text)
    # Another address is not affected, and right codes never count.
    others = from_address("10.1.1.2")
    assert [others.get(f"/r/{room.code}/").status_code for _ in range(5)] == [302] * 5
    assert others.get(f"/r/{wrong_code()}/").status_code == 404


@override_settings(LAB_RATE_JOIN_FAIL=(3, 60.0))
def test_right_codes_from_a_classroom_behind_one_address_never_count(client: Client) -> None:
    room = open_workshop(client)
    classroom = [from_address("10.2.2.2") for _ in range(40)]

    joined = [c.get("/join/", {"code": room.code.lower()}) for c in classroom]

    assert {r["Location"] for r in joined} == {f"/rooms/{room.id}/"}


# -- resync --------------------------------------------------------------------------------------
def _workshop() -> LabRoom:
    return open_workshop(Client())


def socket_of(room: LabRoom, ip: str, headers: list | None = None) -> WebsocketCommunicator:
    forwarded = (b"x-forwarded-for", ip.encode())
    return WebsocketCommunicator(
        application, f"/ws/rooms/{room.id}/", headers=[*(headers or [ORIGIN]), forwarded]
    )


async def resyncs(ws: WebsocketCommunicator, times: int) -> list[str]:
    """Ask for a full frame ``times`` times; what came back for each (a kind or the error)."""
    answers = []
    for _ in range(times):
        await ws.send_to(text_data=json.dumps({"action": "resync"}))
        reply = await ws.receive_from(timeout=5)
        while (match := SEQ.match(reply)) and match.group(2) != "full":
            reply = await ws.receive_from(timeout=5)  # the room's own frames meanwhile
        answers.append(match.group(2) if match else re.sub(r"<[^>]+>", "", reply))
    return answers


@pytest.mark.django_db(transaction=True)
@override_settings(LAB_RATE_RESYNC=(2, 60.0), LAB_TRUST_X_FORWARDED_FOR=1)
async def test_resync_is_limited_per_connection() -> None:
    room = await sync_to_async(_workshop)()
    ws = socket_of(room, "10.3.3.3")
    await ws.connect()
    await ws.receive_from(timeout=5)  # the snapshot on connect

    answers = await resyncs(ws, 3)

    assert answers[:2] == ["full", "full"]
    assert re.fullmatch(
        r"Too many full-page refreshes from this connection: try again in \d+ s\.", answers[2]
    )
    # A refused request costs no full frame, and the refusal is not repeated on its own.
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()
    # A new connection has its own count.
    again = socket_of(room, "10.3.3.3")
    await again.connect()
    await again.receive_from(timeout=5)
    assert await resyncs(again, 1) == ["full"]
    await again.disconnect()


@pytest.mark.django_db(transaction=True)
@override_settings(LAB_RATE_RESYNC_IP=(3, 60.0), LAB_TRUST_X_FORWARDED_FOR=1)
async def test_resync_is_limited_per_address_across_connections() -> None:
    room = await sync_to_async(_workshop)()
    sockets = [socket_of(room, "10.4.4.4") for _ in range(4)]
    elsewhere = socket_of(room, "10.4.4.5")
    for ws in [*sockets, elsewhere]:
        await ws.connect()
        await ws.receive_from(timeout=5)

    answers = [(await resyncs(ws, 1))[0] for ws in sockets]

    assert answers[:3] == ["full"] * 3
    assert re.fullmatch(
        r"Too many full-page refreshes from your address: try again in \d+ s\.", answers[3]
    )
    assert await resyncs(elsewhere, 1) == ["full"]
    for ws in [*sockets, elsewhere]:
        await ws.disconnect()


# -- votes ---------------------------------------------------------------------------------------
def _ask(presenter: Client, room: LabRoom) -> Question:
    payload = {"prompt": "What happens next?", "presets": ["lost", "duplicated"]}
    assert presenter.post(f"/rooms/{room.id}/ask/", payload).status_code == 302
    return Question.objects.filter(room=room).latest("id")


def _vote(attendee: Client, room: LabRoom, question: Question) -> int:
    attendee.get(f"/r/{room.code}/", follow=True)
    data = {"question": question.id, "choice": 1}
    return attendee.post(f"/rooms/{room.id}/vote/", data).status_code


def _workshop_asking() -> tuple[LabRoom, Question]:
    presenter = Client()
    room = open_workshop(presenter)
    return room, _ask(presenter, room)


@override_settings(LAB_RATE_VOTE_IP=(3, 600.0))
def test_votes_are_limited_per_address_and_question(client: Client) -> None:
    room = open_workshop(client)
    first = _ask(client, room)
    jars = [from_address("10.5.5.5") for _ in range(5)]  # fresh cookie jars, one address

    codes = [_vote(jar, room, first) for jar in jars[:4]]
    refused = jars[4].post(f"/rooms/{room.id}/vote/", {"question": first.id, "choice": 0})

    assert codes == [302, 302, 302, 429]
    assert refused.status_code == 429
    assert re.fullmatch(
        r"Too many votes on this question from your address: try again in \d+ s\.",
        refused.text,
    )
    assert Vote.objects.filter(question=first).count() == 3
    # Another address votes on it, and the same address on the next question.
    assert _vote(from_address("10.5.5.6"), room, first) == 302
    assert client.post(f"/rooms/{room.id}/reveal/", {"close": "1"}).status_code == 302
    second = _ask(client, room)
    assert _vote(jars[4], room, second) == 302


@pytest.mark.django_db(transaction=True)
@override_settings(LAB_RATE_VOTE_IP=(1, 600.0), LAB_TRUST_X_FORWARDED_FOR=1)
async def test_websocket_votes_share_the_per_address_limit() -> None:
    room, question = await sync_to_async(_workshop_asking)()
    voters = []
    for n in range(2):
        headers = await sync_to_async(session_headers)([], f"voter-ws-{n}")
        ws = socket_of(room, "10.6.6.6", headers)
        await ws.connect()
        await ws.receive_from(timeout=5)
        voters.append(ws)
    vote = {"action": "vote", "question": question.id, "choice": 0}

    await voters[0].send_to(text_data=json.dumps(vote))
    counted = await voters[0].receive_from(timeout=5)
    while 'id="vote-total"' not in counted:
        counted = await voters[0].receive_from(timeout=5)
    await voters[1].send_to(text_data=json.dumps(vote))
    refused = await voters[1].receive_from(timeout=5)
    while "ws-error" not in refused:  # the first vote's tally frame reaches everyone
        refused = await voters[1].receive_from(timeout=5)

    assert '<span id="vote-total">1</span> vote so far' in counted
    assert "Too many votes on this question from your address: try again in" in refused
    assert await sync_to_async(Vote.objects.count)() == 1
    for ws in voters:
        await ws.disconnect()

"""Scale-out mode in one process: the runtime worker and the web side talk only through the
channel layer (in memory here; Redis in tests/scaleout), as they do across processes."""

import asyncio
import json
import re
from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client, override_settings

from dashboard.asgi import application
from dashboard.live import gateway, worker
from dashboard.live.runtime import registry
from dashboard.models import LabRoom
from tests.dashboard.conftest import ORIGIN, session_headers

SEQ = re.compile(r'^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"')
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture
async def runtime_worker() -> AsyncIterator[None]:
    with override_settings(LAB_RUNTIME="worker"):
        stop = asyncio.Event()
        task = asyncio.create_task(worker.serve(stop))
        yield
        stop.set()
        await asyncio.wait_for(task, 5)
        for relay in list(gateway.relays.values()):
            await gateway._close(relay)
        gateway.relays.clear()


def _new_room() -> LabRoom:
    client = Client()
    with override_settings(LAB_RUNTIME="embedded"):  # made by a web process: DB rows only
        response = client.post("/", {"scenario": "producer-retry-duplicate"})
    return LabRoom.objects.get(id=response["Location"].strip("/").split("/")[-1])


def seq_of(frame: str) -> tuple[int, str]:
    match = SEQ.match(frame)
    assert match, frame[:120]
    return int(match.group(1)), match.group(2)


async def test_a_control_reaches_every_viewer_through_the_worker_once(runtime_worker: None) -> None:
    room = await sync_to_async(_new_room)()
    presenter = WebsocketCommunicator(
        application,
        f"/ws/rooms/{room.id}/",
        headers=await sync_to_async(session_headers)([room.id]),
    )
    attendees = [
        WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=[ORIGIN])
        for _ in range(3)
    ]
    first = []
    for ws in (presenter, *attendees):
        assert (await ws.connect())[0]
        seq, kind = seq_of(await ws.receive_from(timeout=5))
        assert kind == "full"
        first.append(seq)
    assert len(set(first)) == 1  # everyone's snapshot is of the same moment
    # One relay in this "web process" for the room, whatever the number of browsers.
    assert len(gateway.relays) == 1 and len(gateway.relays[room.id].audience) == 4

    frames: dict[WebsocketCommunicator, list[tuple[int, str]]] = {ws: [] for ws in attendees}
    for _ in range(3):
        await presenter.send_to(text_data=json.dumps({"action": "step"}))
        await presenter.receive_from(timeout=5)
        for ws in attendees:
            frames[ws].append(seq_of(await ws.receive_from(timeout=5)))

    for seqs in frames.values():
        assert seqs == [(first[0] + n, "delta") for n in (1, 2, 3)]
    for ws in attendees:
        assert await ws.receive_nothing(timeout=0.3)
    # The room runs in the worker's registry (same process here), never in a relay.
    assert registry.rooms[room.id].timeline.steps > 0
    for ws in (presenter, *attendees):
        await ws.disconnect()
    assert not gateway.relays


async def test_an_attendees_control_never_reaches_the_worker(runtime_worker: None) -> None:
    room = await sync_to_async(_new_room)()
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=[ORIGIN])
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=json.dumps({"action": "speed", "speed": "end"}))

    assert "only the room&#x27;s presenters" in await ws.receive_from(timeout=5)
    assert await ws.receive_nothing(timeout=0.5)
    assert registry.rooms[room.id].timeline.steps == 0
    await ws.disconnect()


async def test_http_views_reach_the_worker(runtime_worker: None) -> None:
    room = await sync_to_async(_new_room)()

    def visit() -> tuple[int, str, int]:
        client = Client()
        session = client.session
        session["lab_presents"] = [room.id]
        session.save()
        page = client.get(f"/rooms/{room.id}/")
        control = client.post(f"/rooms/{room.id}/control/", {"action": "step"})
        return page.status_code, page.text, control.status_code

    status, text, control = await sync_to_async(visit, thread_sensitive=False)()

    assert status == 200 and 'id="speaker-notes"' in text
    assert control == 302
    await asyncio.sleep(0.2)
    assert registry.rooms[room.id].timeline.steps > 0


@override_settings(LAB_RUNTIME="worker", LAB_RUNTIME_TIMEOUT_S=0.2)
def test_without_a_worker_the_page_says_what_is_missing() -> None:
    room = _new_room()

    response = Client().get(f"/rooms/{room.id}/")

    assert response.status_code == 503
    assert "runtime worker did not answer within 0.2 s" in response.text
    assert "labworker" in response.text


@override_settings(LAB_RUNTIME="worker", LAB_RUNTIME_TIMEOUT_S=0.2)
async def test_without_a_worker_a_websocket_is_told_and_closed() -> None:
    room = await sync_to_async(_new_room)()
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=[ORIGIN])

    await ws.connect()

    assert "runtime worker did not answer within 0.2 s" in await ws.receive_from(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 1011
    assert not gateway.relays  # nothing left behind

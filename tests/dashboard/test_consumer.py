"""The room's WebSocket: a snapshot on connect, numbered frames, refusals that change nothing."""

import asyncio
import json
import re
from collections.abc import Awaitable, Callable

import pytest
from channels.testing import WebsocketCommunicator

from broker.scenario import load
from dashboard.asgi import application
from dashboard.live.runtime import Room, registry
from tests.dashboard.conftest import Headers

PresenterHeaders = Callable[..., Awaitable[Headers]]

ORIGIN = (b"origin", b"http://127.0.0.1:8000")
# Channels checks the database connections around every consumer message (closing stale ones),
# so these tests may touch the database even when the browser has no session.
pytestmark = pytest.mark.django_db(transaction=True)
SEQ = re.compile(r'^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"')


def connect(room: Room, headers: list[tuple[bytes, bytes]] | None = None) -> WebsocketCommunicator:
    return WebsocketCommunicator(
        application, f"/ws/rooms/{room.id}/", headers=[ORIGIN] if headers is None else headers
    )


def seq_of(frame: str) -> tuple[int, str]:
    match = SEQ.match(frame)
    assert match, frame[:200]
    return int(match.group(1)), match.group(2)


async def test_a_browser_gets_a_full_snapshot_on_connect() -> None:
    room = registry.create(load("producer-retry-duplicate"))
    ws = connect(room)

    connected, _ = await ws.connect()
    frame = await ws.receive_from(timeout=5)

    assert connected
    assert seq_of(frame) == (0, "full")
    assert '<section id="verdict"' in frame
    assert '<div id="lanes"' in frame
    assert "Drop the next produce response" in frame
    await ws.disconnect()


async def test_frames_are_numbered_one_by_one_until_the_run_ends(
    presenter_headers: PresenterHeaders,
) -> None:
    room = registry.create(load("producer-retry-duplicate"))
    as_presenter = await presenter_headers(room.id)
    ws = connect(room, as_presenter)
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=json.dumps({"action": "speed", "speed": "end"}))
    seqs = []
    while True:
        frame = await ws.receive_from(timeout=5)
        seqs.append(seq_of(frame))
        if "run over" in frame:
            break

    assert seqs == [(n, "delta") for n in range(1, len(seqs) + 1)]
    assert room.timeline.ended
    assert 'id="c-orders-0-1"' in frame
    await ws.disconnect()


async def test_two_browsers_get_the_same_frames(presenter_headers: PresenterHeaders) -> None:
    room = registry.create(load("producer-retry-duplicate"))
    as_presenter = await presenter_headers(room.id)
    first, second = connect(room, as_presenter), connect(room)
    await first.connect()
    await second.connect()
    await first.receive_from(timeout=5)
    await second.receive_from(timeout=5)

    await first.send_to(text_data=json.dumps({"action": "step"}))
    presenters, attendees = await first.receive_from(5), await second.receive_from(5)

    # The same frame, but only the presenter's has the speaker notes.
    assert presenters.startswith(attendees)
    assert 'id="speaker-notes"' in presenters and 'id="speaker-notes"' not in attendees
    await first.disconnect()
    await second.disconnect()


async def test_a_resync_request_gets_a_full_snapshot_at_the_current_sequence(
    presenter_headers: PresenterHeaders,
) -> None:
    room = registry.create(load("producer-retry-duplicate"))
    as_presenter = await presenter_headers(room.id)
    ws = connect(room, as_presenter)
    await ws.connect()
    await ws.receive_from(timeout=5)
    await ws.send_to(text_data=json.dumps({"action": "step"}))
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=json.dumps({"action": "resync"}))

    assert seq_of(await ws.receive_from(timeout=5)) == (1, "full")
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ("not json", "That message was refused: not valid JSON: Expecting value"),
        ("[1, 2]", "A message must be a JSON object."),
        ('{"action": "explode"}', "Select a valid choice. explode is not one of the"),
        ('{"action": "seek"}', "Seek needs a position: an event number from 0 to "),
        ('{"action": "play", "speed": true}', "Control fields must be text or numbers."),
        ('{"action": "fault", "fault": "crash-broker:9"}', "This scenario has no fault"),
        ('{"action": "fault", "fault": "restart-broker:1"}', "Not now: broker-1 is running."),
    ],
)
async def test_a_forged_or_malformed_message_gets_an_error_and_changes_nothing(
    message: str, error: str, presenter_headers: PresenterHeaders
) -> None:
    room = registry.create(load("producer-retry-duplicate"))
    ws = connect(room, await presenter_headers(room.id))
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=message)
    frame = await ws.receive_from(timeout=5)

    assert frame.startswith('<div id="ws-error" class="ws-error" role="alert">')
    assert error in frame.replace("&#x27;", "'")
    assert await ws.receive_nothing(timeout=0.3)
    assert (room.seq, room.timeline.steps, room.timeline.commands, list(room.pending)) == (
        0,
        0,
        [],
        [],
    )
    await ws.disconnect()


async def test_a_connection_from_another_origin_is_refused() -> None:
    room = registry.create(load("producer-retry-duplicate"))
    ws = connect(room, headers=[(b"origin", b"http://evil.example")])

    connected, _ = await ws.connect()

    assert not connected
    assert room.viewers == 0


async def test_an_unknown_room_says_so_and_is_closed() -> None:
    ws = WebsocketCommunicator(application, "/ws/rooms/nope/", headers=[ORIGIN])

    connected, _ = await ws.connect()

    assert connected
    assert "No such room: it may have expired." in await ws.receive_from(timeout=5)
    assert (await ws.receive_output(timeout=5))["code"] == 4404


async def test_every_local_browser_gets_the_same_frame_once(
    presenter_headers: PresenterHeaders,
) -> None:
    room = registry.create(load("producer-retry-duplicate"))
    as_presenter = await presenter_headers(room.id)
    first, second = connect(room, as_presenter), connect(room)
    await first.connect()
    await second.connect()
    assert seq_of(await first.receive_from(timeout=5)) == seq_of(await second.receive_from(5))
    assert room.viewers == 2 and room.audience.presenters() == 1

    await first.send_to(text_data=json.dumps({"action": "step"}))
    one = await first.receive_from(timeout=5)
    two = await second.receive_from(timeout=5)

    assert one.startswith(two) and seq_of(one) == seq_of(two) == (1, "delta")
    assert await first.receive_nothing(timeout=0.2)  # not a second copy via the group
    await first.disconnect()
    assert room.viewers == 1
    await second.disconnect()
    assert room.viewers == 0


async def test_in_embedded_mode_frames_skip_the_channel_layer() -> None:
    from channels.layers import get_channel_layer

    room = registry.create(load("producer-retry-duplicate"))
    ws = connect(room)
    await ws.connect()
    await ws.receive_from(timeout=5)
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(room.group, channel)

    await room.broadcast("<output id='frame-seq'>x</output>")

    assert await ws.receive_from(timeout=5) == "<output id='frame-seq'>x</output>"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.2)
    await ws.disconnect()


def test_the_full_frame_is_built_once_per_state() -> None:
    room = registry.create(load("producer-retry-duplicate"))

    assert room.full_frame() is room.full_frame()

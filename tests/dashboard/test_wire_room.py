"""A room's Kafka listeners (dashboard/live/wire.py): who may open them, on which ports, the
clock they drive, what they refuse, and that ending the room closes them. Real kafka-python
clients run in a thread while the room runs on the test's event loop."""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.test.utils import override_settings
from kafka.errors import KafkaTimeoutError

from dashboard.live import service
from dashboard.live.runtime import registry
from tests.dashboard.wire_rooms import (
    kafka_panel,
    listening_room,
    open_quiet_room,
    post,
    producer,
    send,
    until,
)
from tests.wire.room import accepts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


async def test_a_presenter_lets_a_real_producer_in_and_the_page_shows_where_and_who() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    host, port = bootstrap.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0

    page = (await sync_to_async(client.get)(f"/rooms/{room_id}/")).text
    assert f'type="text" readonly value="{bootstrap}"' in page
    assert "No client connected." in page

    p = await asyncio.to_thread(producer, bootstrap, "billing-app", acks="all")
    try:
        await until(lambda: "<code>billing-app</code>" in kafka_panel(room_id), "client shown")
        assert "1 client connected" in kafka_panel(room_id)
        offsets = await asyncio.to_thread(
            lambda: [p.send("orders", value=b"42 EUR").get(timeout=10).offset for _ in range(3)]
        )
    finally:
        await asyncio.to_thread(p.close, 5)
    assert offsets == [0, 1, 2]
    await until(lambda: "No client connected." in kafka_panel(room_id), "the client gone")
    room = registry.get(room_id)
    assert room is not None and room.playing and room.speed == "1"


async def test_an_attendee_cannot_open_the_listeners() -> None:
    room_id = await sync_to_async(open_quiet_room)(Client())

    status, text = await post(Client(), f"/rooms/{room_id}/kafka/", {"listen": "1"})

    assert status == 403
    assert "only the room's presenters can do that" in text
    room = registry.get(room_id)
    assert room is not None and room.wire is None


async def test_a_bad_listen_value_is_named() -> None:
    client = Client()
    room_id = await sync_to_async(open_quiet_room)(client)

    status, text = await post(client, f"/rooms/{room_id}/kafka/", {"listen": "yes"})

    assert (status, text) == (400, "listen must be 1 (open) or 0 (close), not 'yes'.")


@override_settings(LAB_KAFKA_LISTENERS=False)
async def test_with_listeners_off_the_button_is_gone_and_a_press_names_the_setting() -> None:
    client = Client()
    room_id = await sync_to_async(open_quiet_room)(client)
    page = (await sync_to_async(client.get)(f"/rooms/{room_id}/")).text
    assert "Let real Kafka clients in" not in page

    status, text = await post(client, f"/rooms/{room_id}/kafka/", {"listen": "1"})

    assert status == 400
    assert "Real Kafka clients are off in this lab (LAB_KAFKA_LISTENERS=0)" in text


def free_base(brokers: int = 3) -> int:
    """A port with the next ``brokers - 1`` free too (checked by binding them)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + brokers > 65_000:
            continue
        try:
            for port in range(base, base + brokers):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError("no three consecutive free ports")


async def test_a_fixed_port_lets_one_room_listen_and_the_second_is_told_why() -> None:
    base = free_base()
    with override_settings(LAB_KAFKA_PORT=base):
        _first, bootstrap = await listening_room(Client())
        assert bootstrap == f"127.0.0.1:{base}"
        client = Client()
        second = await sync_to_async(open_quiet_room)(client)

        status, text = await post(client, f"/rooms/{second}/kafka/", {"listen": "1"})

    assert status == 400
    assert f"Another room already listens on LAB_KAFKA_PORT={base}" in text
    assert "LAB_KAFKA_PORT=0" in text


async def test_while_listening_the_room_refuses_what_outside_clients_cannot_follow() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)

    # No client connected: the room may step and change speed, but not go back or reset.
    for fields in ({"action": "back"}, {"action": "seek", "position": "0"}, {"action": "reset"}):
        status, text = await post(client, f"/rooms/{room_id}/control/", fields)
        assert (status, fields) == (400, fields)
        assert "what they send cannot be replayed, so it cannot go back or reset" in text
    status, text = await post(
        client, f"/rooms/{room_id}/control/", {"action": "speed", "speed": "end"}
    )
    assert status == 400
    assert "its run has no end to play to while it listens" in text
    status, text = await post(client, f"/rooms/{room_id}/fork/", {"kind": "sandbox"})
    assert status == 400
    # No client has connected yet: the refusal does not say one took part.
    assert "let real Kafka clients in (its listeners are or were open)" in text
    assert "took part" not in text

    # A client connected: no step and no other speed either, for as long as it is. (A producer
    # that has sent holds a connection to the leader; before its first send it may hold none.)
    p = await asyncio.to_thread(producer, bootstrap, "billing-app", acks="all")
    try:
        await asyncio.to_thread(lambda: p.send("orders", b"a").get(timeout=10))
        room = registry.get(room_id)
        assert room is not None
        await until(lambda: room.wire.connected().get("billing-app"), "a connection open")
        for fields in ({"action": "step"}, {"action": "speed", "speed": "4"}):
            status, text = await post(client, f"/rooms/{room_id}/control/", fields)
            assert (status, fields) == (400, fields)
            assert "while they are, its clock follows wall time (1x)" in text
        status, _ = await post(client, f"/rooms/{room_id}/control/", {"action": "pause"})
        assert status == 302
    finally:
        await asyncio.to_thread(p.close, 5)


async def pause_and_step(client: Client, room_id: str) -> None:
    """Pause the room, then step it: the step is taken (the engine moved on)."""
    room = registry.get(room_id)
    assert room is not None
    await post(client, f"/rooms/{room_id}/control/", {"action": "pause"})
    await until(lambda: not room.playing, "the room paused")
    steps = room.timeline.steps
    status, text = await post(client, f"/rooms/{room_id}/control/", {"action": "step"})
    assert status == 302, text
    await until(lambda: room.timeline.steps > steps, "a step")


async def test_the_clock_follows_wall_time_only_while_a_client_is_connected() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    room = registry.get(room_id)
    assert room is not None
    driver = room.wire.listener.driver
    await until(lambda: driver.running is False, "the driver paused: no client connected")

    # Nobody connected: the room is the presenter's, a step moves it on.
    await pause_and_step(client, room_id)
    status, text = await post(
        client, f"/rooms/{room_id}/control/", {"action": "speed", "speed": "4"}
    )
    assert status == 302, text
    await post(client, f"/rooms/{room_id}/control/", {"action": "play"})
    await until(lambda: room.playing and room.speed == "4", "playing at 4x")
    assert not driver.running

    # A client connects: wall time at 1x, its requests answered.
    p = await asyncio.to_thread(producer, bootstrap, "billing-app", acks="all")
    try:
        offset = await asyncio.to_thread(lambda: p.send("orders", b"a").get(timeout=10).offset)
        assert offset == 0
        assert room.speed == "1" and driver.running
        started_ms, started = room.timeline.sim.now_ms, time.monotonic()
        await asyncio.sleep(1.0)
        virtual_s = (room.timeline.sim.now_ms - started_ms) / 1000
        assert 0.5 <= virtual_s <= (time.monotonic() - started) + 0.2, virtual_s
    finally:
        await asyncio.to_thread(p.close, 5)

    # Gone again: the room paces itself, and may step.
    await until(lambda: "No client connected." in kafka_panel(room_id), "the client gone")
    await until(lambda: driver.running is False, "the driver paused again")
    await pause_and_step(client, room_id)
    assert room.timeline.sim.ended is None  # listening: the run does not end


async def test_pause_stops_the_answers_and_play_brings_them() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    p = await asyncio.to_thread(producer, bootstrap, acks="all", request_timeout_ms=30_000)
    try:
        assert (await asyncio.to_thread(lambda: p.send("orders", b"a").get(10))).offset == 0
        await post(client, f"/rooms/{room_id}/control/", {"action": "pause"})
        room = registry.get(room_id)
        assert room is not None
        await until(lambda: room.wire.listener.driver.running is False, "the driver paused")
        assert "The room is paused" in kafka_panel(room_id)

        future = p.send("orders", b"b")
        with pytest.raises(KafkaTimeoutError):
            await asyncio.to_thread(future.get, 1.5)  # paused: no answer comes
        await post(client, f"/rooms/{room_id}/control/", {"action": "play"})
        assert (await asyncio.to_thread(future.get, 10)).offset == 1
    finally:
        await asyncio.to_thread(p.close, 5)


def refused(bootstrap: str) -> bool:
    return not accepts(bootstrap)


async def test_closing_or_ending_the_room_closes_its_ports() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    assert await asyncio.to_thread(send, bootstrap, [b"x"]) == [0]

    status, _ = await post(client, f"/rooms/{room_id}/kafka/", {"listen": "0"})
    assert status == 302
    assert await asyncio.to_thread(refused, bootstrap)
    status, text = await post(client, f"/rooms/{room_id}/control/", {"action": "back"})
    assert status == 400
    assert "let real Kafka clients in (its listeners were open): whatever they sent" in text

    status, _ = await post(client, f"/rooms/{room_id}/kafka/", {"listen": "1"})
    assert status == 302
    room = registry.get(room_id)
    assert room is not None and room.wire is not None
    again = room.wire.bootstrap
    await service.end(room_id)
    assert registry.get(room_id) is None
    assert await asyncio.to_thread(refused, again)


async def test_the_panels_link_serves_the_guide_to_connecting() -> None:
    client = Client()
    room_id, _ = await listening_room(client)
    link = re.search(r'href="([^"]+)">Connecting a client', kafka_panel(room_id))
    assert link is not None

    response = await sync_to_async(client.get)(link.group(1))

    assert response.status_code == 200
    assert "## Connecting to a room" in response.text


@override_settings(LAB_KAFKA_MAX_CONNECTIONS=2)
async def test_past_the_connection_limit_a_new_connection_is_closed_and_the_others_work() -> None:
    room_id, bootstrap = await listening_room(Client())
    host, port = bootstrap.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=5) for _ in range(2)]
    try:
        gateway = registry.get(room_id).wire.listener.gateway  # type: ignore[union-attr]
        await until(lambda: len(gateway.connections) == 2, "two connections held")
        extra = socket.create_connection((host, int(port)), timeout=5)
        with extra:
            assert await asyncio.to_thread(extra.recv, 1) == b""  # closed by the room
        assert any("refused: 2 open" in note for note in gateway.refused)
    finally:
        for s in idle:
            s.close()
    # The idle ones gone, a real client gets in (two connections: bootstrap, then the leader).
    assert await asyncio.to_thread(send, bootstrap, [b"x"]) == [0]

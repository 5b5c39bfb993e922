"""Real Kafka clients on the room page (dashboard/live/wire_actors.py): their records in the
lanes, their producer id, epoch and sequence numbers and their group member ids in the
producers panel, as for the simulated actors."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.test import Client

from dashboard.live.runtime import Room, registry
from tests.dashboard.wire_rooms import billing_consumer, listening_room, send, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def the_room(room_id: str) -> Room:
    room = registry.get(room_id)
    assert room is not None
    return room


def lane_offsets(room: Room) -> list[tuple[int, str]]:
    """(offset, message id) of orders-0's cells in the room's observation."""
    partitions = room.observe()["snapshot"]["partitions"]
    orders = next(p for p in partitions if p["name"] == "orders-0")
    return [(r["offset"], r["message_id"]) for r in orders["records"]]


async def test_an_idempotent_producers_records_fill_the_lane_and_it_shows_as_a_producer() -> None:
    room_id, bootstrap = await listening_room(Client())
    room = the_room(room_id)

    offsets = await asyncio.to_thread(
        send, bootstrap, [b"a", b"b", b"c"], "shop", enable_idempotence=True
    )

    assert offsets == [0, 1, 2]
    assert [offset for offset, _ in lane_offsets(room)] == [0, 1, 2]
    assert all(message.startswith("shop-") for _, message in lane_offsets(room))

    def drawn() -> str | None:
        html = room.page().lanes_html
        return html if 'id="c-orders-0-2"' in html else None

    lanes = await until(drawn, "three cells drawn in the lane")
    assert len(re.findall(r'<li id="c-orders-0-\d+"', lanes)) == 3
    producers = room.page().html["producers"]
    assert "shop" in producers and "real client" in producers
    pid = re.search(r"PID.*?<dd>(\d+)</dd>", producers, re.S)
    assert pid is not None, producers
    assert re.search(r"next seq orders-0</dt><dd>3</dd>", producers), producers
    assert "records sent</code>=3" in producers


def consume_in_group(bootstrap: str) -> list[bytes]:
    consumer = billing_consumer(bootstrap, consumer_timeout_ms=15_000)
    try:
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 2:
                break
        return values
    finally:
        consumer.close()


async def test_a_consumer_groups_member_id_shows_beside_its_client_id() -> None:
    room_id, bootstrap = await listening_room(Client())
    await asyncio.to_thread(send, bootstrap, [b"x", b"y"], "shop")

    assert await asyncio.to_thread(consume_in_group, bootstrap) == [b"x", b"y"]

    producers = the_room(room_id).page().html["producers"]
    member = re.search(r"member of billing-group</code>=(billing-[\w-]+)", producers)
    assert member is not None, producers

"""A room's verdict judges real Kafka clients' records (broker/wire/ledger.py): its counts
include them, and a non-idempotent client's retry after the room's "drop the next produce
response" button is listed as a duplicate of the same message."""

from __future__ import annotations

import asyncio
import re

import pytest
from django.test import Client

from dashboard.live.runtime import Room, registry
from tests.dashboard.wire_rooms import listening_room, post, send, until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def the_room(room_id: str) -> Room:
    room = registry.get(room_id)
    assert room is not None
    return room


def count(html: str, key: str) -> int | None:
    found = re.search(rf'count-{key}[" ][^>]*><dt>[^<]*</dt><dd>(\d+)</dd>', html)
    return int(found.group(1)) if found else None


async def test_the_verdict_counts_a_real_clients_records_and_shows_its_duplicate() -> None:
    client = Client()
    room_id, bootstrap = await listening_room(client)
    room = the_room(room_id)
    # The client.id is the scenario's producer's name (which sends nothing), so the room's
    # fault buttons for p1 reach this client's connections; its message ids are p1.wire-N.
    config = {"enable_idempotence": False, "retries": 5}
    assert await asyncio.to_thread(send, bootstrap, [b"one", b"two"], "p1", **config) == [0, 1]

    def counted(key: str, value: int) -> str | None:
        room._verdict_dirty = True
        html = room.page().html["verdict"]
        return html if count(html, key) == value else None

    html = await until(lambda: counted("in_log", 2), "two records in the verdict's counts")
    assert (count(html, "produced"), count(html, "acknowledged")) == (2, 2)
    assert "No anomaly so far." in html

    status, text = await post(
        client, f"/rooms/{room_id}/control/", {"action": "fault", "fault": "drop-response:p1"}
    )
    assert status in (200, 204, 302), text
    await until(lambda: room.timeline.sim.network.rules, "the fault armed")
    # The answer is lost; the client times out (3 s), reconnects and sends the batch again.
    assert await asyncio.to_thread(send, bootstrap, [b"three"], "p1", **config) == [3]

    html = await until(lambda: counted("duplicated_in_log", 1), "the duplicate judged")
    assert (count(html, "produced"), count(html, "in_log")) == (3, 3)
    assert "p1.wire-3 at orders-0@2, orders-0@3" in html
    assert "two copies in the log" in html

"""Helpers for the tests of rooms with Kafka listeners (dashboard/live/wire.py): a quiet room
(nothing simulated writes), a real kafka-python producer, and polling with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from kafka import KafkaConsumer, KafkaProducer

from dashboard.live.runtime import registry

T = TypeVar("T")

# Three brokers and one topic; the one simulated producer sends nothing, so every record in the
# lane came from a real client.
QUIET_SCENARIO = """
title = "Real clients only"
description = "Three brokers and one topic; nothing simulated writes to it."
semantics = "at-least-once"

[cluster]
brokers = 3

[[topics]]
name = "orders"
partitions = 1
"replication.factor" = 3

[[producers]]
name = "p1"
"""

# Short timeouts: a refused or paused room costs seconds, not minutes.
FAST = {"request_timeout_ms": 3000, "retry_backoff_ms": 50, "max_block_ms": 10_000}


def open_quiet_room(client: Client) -> str:
    """Upload the quiet scenario (the client presents the room), load its page; the room id."""
    upload = SimpleUploadedFile("quiet.toml", QUIET_SCENARIO.encode())
    response = client.post("/upload/", {"scenario": upload})
    assert response.status_code == 302, response.text
    assert client.get(response["Location"]).status_code == 200
    return str(response["Location"]).strip("/").split("/")[-1]


async def post(client: Client, path: str, data: dict[str, str]) -> tuple[int, str]:
    response = await sync_to_async(client.post)(path, data)
    return response.status_code, response.text


async def listening_room(client: Client) -> tuple[str, str]:
    """A quiet room with its listeners opened through the room's button: (id, bootstrap)."""
    room_id = await sync_to_async(open_quiet_room)(client)
    status, text = await post(client, f"/rooms/{room_id}/kafka/", {"listen": "1"})
    assert status == 302, text
    room = registry.get(room_id)
    assert room is not None and room.wire is not None
    return room_id, room.wire.bootstrap


def kafka_panel(room_id: str) -> str:
    room = registry.get(room_id)
    assert room is not None
    return room.page().html["kafka"]


def producer(bootstrap: str, client_id: str = "lab-test", **config: object) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, **{**FAST, **config})


def send(
    bootstrap: str, values: list[bytes], client_id: str = "lab-test", **config: object
) -> list[int]:
    """Send ``values`` to orders with acks=all; the offsets the broker acknowledged."""
    p = producer(bootstrap, client_id, acks="all", **config)
    try:
        futures = [p.send("orders", value=v) for v in values]
        p.flush(timeout=20)
        return [f.get(timeout=1).offset for f in futures]
    finally:
        p.close(timeout=5)


async def until(check: Callable[[], T | None], what: str, timeout_s: float = 15.0) -> T:
    """Poll ``check`` on the event loop (the room's ticks run between polls) until it returns
    something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:g} s: {what}")
        await asyncio.sleep(0.05)


def billing_consumer(bootstrap: str, **config: object) -> KafkaConsumer:
    """A kafka-python consumer of ``orders`` from its start, client.id ``billing`` in group
    ``billing-group`` (``config``: more of its settings)."""
    return KafkaConsumer(
        "orders",
        bootstrap_servers=bootstrap,
        client_id="billing",
        group_id="billing-group",
        auto_offset_reset="earliest",
        request_timeout_ms=20_000,
        **config,
    )

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache
from django.test import Client

from broker.scenario import load
from dashboard.live import gateway
from dashboard.live.runtime import registry
from dashboard.live.timeline import Timeline
from dashboard.models import LabRoom
from dashboard.panels.observe import observe, scenario_info, verdict_of
from dashboard.workshops import ratelimit

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


@pytest.fixture(autouse=True)
def fresh_rooms_and_layers() -> Iterator[None]:
    """Each test starts with no rooms, an empty in-memory channel layer and no rate counts."""
    registry.clear()
    gateway.relays.clear()
    channel_layers.backends.clear()
    cache.clear()
    ratelimit.reset()
    yield
    registry.clear()
    gateway.relays.clear()
    channel_layers.backends.clear()
    cache.clear()
    ratelimit.reset()


Headers = list[tuple[bytes, bytes]]


def session_headers(presents: list[str], voter: str = "") -> Headers:
    """WebSocket headers of a browser whose session presents ``presents`` (database work)."""
    session = SessionStore()
    session["lab_presents"] = list(presents)
    session["lab_voter"] = voter or f"voter-{len(presents)}-{id(session)}"
    session.create()
    return [ORIGIN, (b"cookie", f"sessionid={session.session_key}".encode())]


@pytest.fixture
def presenter_headers(transactional_db: None) -> Callable[..., Awaitable[Headers]]:
    """``await presenter_headers(room_id)``: headers of a browser presenting that room."""

    async def make(*room_ids: str) -> Headers:
        return await sync_to_async(session_headers)(list(room_ids))

    return make


def open_room(client: Client, name: str = "producer-retry-duplicate") -> str:
    """Open a built-in scenario as a workshop room (the client becomes its presenter), load its
    page (which loads the live room) and return the room's URL."""
    response = client.post("/", {"scenario": name})
    assert response.status_code == 302
    assert client.get(response["Location"]).status_code == 200
    return str(response["Location"])


def open_workshop(client: Client, name: str = "producer-retry-duplicate") -> LabRoom:
    """The same, returning the room's database record."""
    return LabRoom.objects.get(id=open_room(client, name).strip("/").split("/")[-1])


def status(**overrides: Any) -> dict[str, Any]:
    """A room's status beside an observation: room r1, paused at the start, plus ``overrides``."""
    base = {
        "room_id": "r1",
        "playing": False,
        "speed": "1",
        "clock_ms": 0,
        "ended": None,
        "position": 0,
        "length": 0,
        "in_past": False,
        "seeking": False,
    }
    return {**base, **overrides}


def step(timeline: Timeline, until_ms: int | None = None) -> Timeline:
    """Step ``timeline`` to the end of its run, or until ``until_ms``; return it."""
    while (until_ms is None or timeline.sim.now_ms < until_ms) and timeline.step_engine():
        pass
    return timeline


def run(name: str, until_ms: int | None = None) -> Timeline:
    """A built-in scenario's timeline, stepped to its end or until ``until_ms``."""
    return step(Timeline(load(name)), until_ms)


def observed(timeline: Timeline) -> dict[str, Any]:
    """What the room shows of ``timeline`` as it stands."""
    return observe(timeline, scenario_info(timeline.spec), status(), verdict_of(timeline.sim))


def finished(name: str) -> dict[str, Any]:
    """What the room shows of a built-in scenario run to its end."""
    return observed(run(name))

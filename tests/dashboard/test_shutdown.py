"""A real server full of busy rooms: it keeps answering HTTP, and it stops within seconds of a
SIGTERM (Daphne running the rooms itself, and the scale-out runtime worker)."""

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Iterator

import pytest

from dashboard.management.commands.bench_fanout import Client, bench_scenario, open_room
from dashboard.management.commands.scaleout import Lab, redis_server
from tests.conftest import NEEDS_REDIS

ROOMS = 20
# Issue 10 saw 18 s. Here it takes 2 to 4 s (the rooms stop and save in under 0.2 s; the rest
# is Daphne's and Python's own teardown), more on a machine busy with other work.
STOP_S = 8.0
# Let all twenty play (the default cap would refuse most of them) and keep them playing.
BUSY = {
    "LAB_MAX_PLAYING_ROOMS": str(ROOMS),
    "LAB_MAX_PLAYING_PRIVATE": str(ROOMS),
    "LAB_RATE_ROOM_CREATE": "1000/60",
    "LAB_MAX_ROOMS_PER_CLIENT": "100",
    "LAB_PAUSE_UNWATCHED_S": "600",
}


@pytest.fixture
def embedded() -> Iterator[Lab]:
    with Lab(redis=False, webs=1, debug=False, env=BUSY) as lab:
        yield lab


def get_seconds(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.status == 200
        response.read()
    return time.monotonic() - started


async def play_rooms(base: str, count: int) -> list[Client]:
    """Open ``count`` rooms and play each to the end from its presenter's WebSocket; the
    sockets are read in the background so that frames do not pile up."""
    opened = [await asyncio.to_thread(open_room, base, bench_scenario(0)) for _ in range(count)]
    presenters = []
    for room, cookie in opened:
        client = await Client.connect(base, f"/ws/rooms/{room}/", cookie=cookie)
        await client.receive()  # the snapshot
        await client.send(json.dumps({"action": "speed", "speed": "end"}))
        presenters.append(client)
    return presenters


async def drain(clients: list[Client], seconds: float) -> list[bytes]:
    """Read every socket for ``seconds``; the error frames any of them got."""
    errors: list[bytes] = []

    async def read(client: Client) -> None:
        try:
            async with asyncio.timeout(seconds):
                while True:
                    message = await client.receive()
                    if message.startswith(b'<div id="ws-error"'):
                        errors.append(message)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass

    await asyncio.gather(*(read(c) for c in clients))
    return errors


def stop_seconds(lab: Lab, name: str) -> float:
    """Send SIGTERM to one process of the set-up; seconds until it exited."""
    [process] = [p for n, p, _ in lab.processes if n == name]
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=30)
    except Exception:
        pytest.fail(f"{name} was still running 30 s after SIGTERM\n{lab.logs()}")
    # A worker that had to be cut short after its rooms were saved (worker.EXIT_GRACE_S)
    # exits with 1 and its threads' stacks in the log: that is a hang, not a stop.
    assert status in (0, -signal.SIGTERM), f"{name} exited with {status}\n{lab.logs()}"
    return time.monotonic() - started


def test_twenty_busy_rooms_leave_http_answering_and_sigterm_stops_daphne_fast(
    embedded: Lab,
) -> None:
    base = embedded.urls[0]

    async def scenario() -> list[float]:
        presenters = await play_rooms(base, ROOMS)
        errors = await drain(presenters, 2.0)
        assert not errors, errors[:3]
        waits = [await asyncio.to_thread(get_seconds, base + "/") for _ in range(5)]
        for client in presenters:
            client.close()
        return waits

    waits = asyncio.run(scenario())
    # Before the shared budget, a GET took 6 to 32 s here with twenty rooms playing (the
    # allowance is for a machine busy with other work: on a quiet one it takes well under 1 s).
    assert max(waits) < 3.0, f"GET / took {max(waits):.2f} s with {ROOMS} rooms playing"
    assert stop_seconds(embedded, "daphne-A") < STOP_S, embedded.logs()


@pytest.mark.skipif(redis_server() is None, reason=NEEDS_REDIS)
def test_the_runtime_worker_stops_fast_on_sigterm_with_twenty_busy_rooms() -> None:
    with Lab(redis=True, webs=1, debug=False, env=BUSY) as lab:
        base = lab.urls[0]

        async def scenario() -> None:
            presenters = await play_rooms(base, ROOMS)
            errors = await drain(presenters, 2.0)
            assert not errors, errors[:3]
            for client in presenters:
                client.close()

        asyncio.run(scenario())
        assert stop_seconds(lab, "labworker") < STOP_S, lab.logs()

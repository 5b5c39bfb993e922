"""Copies of a live room ("Try it yourself" sandboxes, detached views), made off the event loop,
and the limits on making them.

A copy of a big run is expensive: deep-copying the engine of a room with 100,000 records took
6 to 11 s and 45 MB. Done on the event loop, that froze every room and request of the process.
So the loop only takes a cheap copy of the room's history, between two of its ticks (the
commands, the moments, the checkpoints: lists and references, never the live engine), and a
worker thread rebuilds the engine from the nearest checkpoint by replaying the run to the same
step (``Timeline.rebuild``). The room plays on meanwhile; its checkpoints are never changed,
only cloned, so the thread and the room never touch the same mutable state.

The garbage collector is paused while copies are made: a copy allocates hundreds of thousands
of objects, and each full collection it would trigger walks every object of the process with
the GIL held, stalling the event loop (0.5 s and more) as surely as copying on it would.

Limits, each refusal a ``Busy`` (a LimitError that frees up) saying which and what to do:

- per process: ``LAB_MAX_FORKS_RUNNING`` copies made at once; up to ``LAB_MAX_FORKS_WAITING``
  more wait their turn (first come, first served), past that "busy, try again";
- per browser session (``client``): one copy at a time, ``LAB_RATE_FORK_SESSION`` copies a
  minute, and ``LAB_MAX_PRIVATE_ROOMS_PER_CLIENT`` private rooms in memory. Making one more
  unloads that browser's least recently used private room nobody watches (it is saved and
  comes back when opened); if all of them are in use, the copy is refused;
- per address, ``LAB_RATE_FORK`` (checked by the view, before any of this).

Saved runs are replayed (runs.replay) in the thread of the request that asks, never on the
event loop; ``replay_slot`` lets ``LAB_MAX_REPLAYS_RUNNING`` of them run at once per process
(a replay may take up to ``LAB_MAX_REPLAY_STEPS`` engine steps), and the others wait up to
``REPLAY_WAIT_S`` before being told the lab is busy.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dashboard.live import pacing
from dashboard.live.limits import Busy, setting
from dashboard.live.runtime import Room, registry
from dashboard.live.timeline import Timeline
from dashboard.workshops import ratelimit

logger = logging.getLogger(__name__)

MAX_FORKS_RUNNING = 2
MAX_FORKS_WAITING = 8
MAX_PRIVATE_ROOMS_PER_CLIENT = 3
MAX_REPLAYS_RUNNING = 2
REPLAY_WAIT_S = 15.0
RATE_FORK_SESSION = (4, 60.0)

# Private rooms made here, by room id: the browser session that asked for each.
owners: dict[str, str] = {}
_busy_clients: set[str] = set()
_pool: ThreadPoolExecutor | None = None
_gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
_waiting = 0
_running = 0


def _limit(name: str, default: int) -> int:
    return max(1, int(setting(name, default)))


def _executor() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(
            max_workers=_limit("LAB_MAX_FORKS_RUNNING", MAX_FORKS_RUNNING),
            thread_name_prefix="lab-fork",
        )
    return _pool


def _semaphore() -> asyncio.Semaphore:
    global _gate
    loop = asyncio.get_running_loop()
    if _gate is None or _gate[0] is not loop:
        _gate = (loop, asyncio.Semaphore(_limit("LAB_MAX_FORKS_RUNNING", MAX_FORKS_RUNNING)))
    return _gate[1]


def private_rooms_of(client: str) -> list[Room]:
    """The private rooms in memory that ``client`` made (forgetting rooms gone since)."""
    for room_id in [r for r in owners if r not in registry.rooms]:
        del owners[room_id]
    return [registry.rooms[r] for r, c in owners.items() if c == client]


def make_room_for(client: str) -> None:
    """Keep ``client`` within its private rooms: unload its least recently used idle one, or
    refuse when every one of them is in use."""
    limit = _limit("LAB_MAX_PRIVATE_ROOMS_PER_CLIENT", MAX_PRIVATE_ROOMS_PER_CLIENT)
    mine = private_rooms_of(client)
    if len(mine) < limit:
        return
    idle = [r for r in mine if not r.viewers and not r.playing]
    if not idle:
        raise Busy(
            f"You already have {len(mine)} private copies open (sandboxes and views), each "
            f"watched or playing: that is the most one browser may have "
            f"(LAB_MAX_PRIVATE_ROOMS_PER_CLIENT={limit}). Close the tab of one you are done "
            "with, then try again."
        )
    oldest = min(idle, key=lambda r: r.last_used)
    registry.drop(oldest.id)  # saved: it loads again if its tab comes back
    owners.pop(oldest.id, None)


async def copy_timeline(source: Room, limit: bool, client: str = "") -> tuple[Timeline, int]:
    """A copy of ``source``'s run at this moment and its clock, made off the event loop."""
    global _waiting, _running
    gate = _semaphore()
    waiting_limit = int(setting("LAB_MAX_FORKS_WAITING", MAX_FORKS_WAITING))
    if gate.locked() and _waiting >= waiting_limit:
        raise Busy(
            f"The lab is busy making {_running + _waiting} other copies of rooms: try again in a "
            "few seconds."
        )
    if client:
        if client in _busy_clients:
            raise Busy(
                "Your previous copy is still being made: wait for it to open before asking "
                "for another."
            )
        make_room_for(client)
        rate = setting("LAB_RATE_FORK_SESSION", RATE_FORK_SESSION)
        decision = await ratelimit.acheck("fork-session", client, rate)
        if not decision:
            raise Busy(
                f"Too many copies from this browser (LAB_RATE_FORK_SESSION): try again in "
                f"{decision.retry_after_s} s."
            )
    if client:
        _busy_clients.add(client)
    try:
        _waiting += 1
        try:
            await gate.acquire()
        finally:
            _waiting -= 1
        _running += 1
        try:
            # Between two ticks of the source room (it does not await inside a tick): a
            # consistent history, copied without its engine.
            plan = source.timeline.fork(limit=limit, engine=False)
            clock_ms = source.clock_ms
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(_executor(), rebuild, plan)
        finally:
            _running -= 1
            gate.release()
    except pacing.Stopping as exc:
        raise Busy(str(exc)) from None
    finally:
        _busy_clients.discard(client)
    return plan, clock_ms


_gc_lock = threading.Lock()
_gc_pausers = 0
_gc_state = {"enabled": True}  # whether the collector was on before the first copy began


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No garbage collection while any copy is being made (see the docstring)."""
    global _gc_pausers
    with _gc_lock:
        _gc_pausers += 1
        if _gc_pausers == 1:
            was_enabled = gc.isenabled()
            gc.disable()
            _gc_state["enabled"] = was_enabled
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and _gc_state["enabled"]:
                gc.enable()


def rebuild(plan: Timeline) -> None:
    """In a worker thread: the copy's engine (given up if the lab is stopping)."""
    with gc_paused():
        plan.rebuild(pacing.check_stopping)


_replays: tuple[int, threading.BoundedSemaphore] | None = None
_replays_lock = threading.Lock()


@contextlib.contextmanager
def replay_slot() -> Iterator[None]:
    """One of the few replays allowed at once in this process (any thread); Busy when
    none frees up within REPLAY_WAIT_S."""
    global _replays
    limit = _limit("LAB_MAX_REPLAYS_RUNNING", MAX_REPLAYS_RUNNING)
    with _replays_lock:
        if _replays is None or _replays[0] != limit:
            _replays = (limit, threading.BoundedSemaphore(limit))
        slots = _replays[1]
    if not slots.acquire(timeout=REPLAY_WAIT_S):
        raise Busy(
            f"The lab is busy replaying {limit} other saved runs (LAB_MAX_REPLAYS_RUNNING): "
            "try again in a minute."
        )
    try:
        yield
    finally:
        slots.release()


def remember(room_id: str, client: str) -> None:
    if client:
        owners[room_id] = client


def status() -> dict[str, Any]:
    """What the fork machinery is doing (for tests and benchmarks)."""
    gate = _gate[1] if _gate is not None else None
    return {
        "waiting": _waiting,
        "running": _running,
        "busy_clients": len(_busy_clients),
        "locked": bool(gate is not None and gate.locked()),
    }

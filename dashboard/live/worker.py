"""The runtime worker (scale-out): runs every room, answering the web processes' calls.

``manage.py labworker`` runs ``serve`` forever. Each call arrives on the channel
``gateway.RUNTIME_CHANNEL`` with a reply channel; the answer goes back there. The rooms' frames
go to their channel groups (``Room.broadcast``), where each web process's relay picks them up.
Run exactly one worker: two would each run their own copy of a room.

The worker has no viewers of its own, so to pause the rooms nobody watches (pacing.py) it
asks the channel layer every ``WATCH_CHECK_S`` which rooms' groups have members: a web process
keeps a relay in a room's group exactly while it has viewers of that room (gateway.py).

SIGTERM and SIGINT stop it promptly: it takes no more calls, stops the rooms and saves their
runs (pacing.shutdown, a few seconds at most), then returns. Should anything still hold the
process after that (``asyncio.run`` waits for its executor's threads), it gets
``EXIT_GRACE_S``; past that, every thread's stack is written to stderr and the process exits
with status 1: a stop never hangs, and the log says where it would have.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import time
from typing import Any

from channels.layers import get_channel_layer

from dashboard.compare import pair as _compare_ops  # noqa: F401 (the compare operations)
from dashboard.live import pacing, service
from dashboard.live.gateway import RUNTIME_CHANNEL
from dashboard.live.runtime import registry

WATCH_CHECK_S = 10.0
EXIT_GRACE_S = 5.0

logger = logging.getLogger(__name__)


async def serve(stop: asyncio.Event | None = None) -> None:
    """Answer calls until ``stop`` is set, or (without one) until SIGTERM or SIGINT."""
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("the runtime worker needs a channel layer (set REDIS_URL)")
    signals: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
            signals.append(signum)
    try:
        await _serve(layer, stop)
    finally:
        if signals:  # this process is stopping (a caller's own ``stop`` may mean less)
            for signum in signals:
                asyncio.get_running_loop().remove_signal_handler(signum)
            await pacing.shutdown()
            faulthandler.dump_traceback_later(EXIT_GRACE_S, exit=True)


async def group_members(layer: Any, group: str) -> int | None:
    """How many channels are in a channel-layer group, or None when the layer cannot say."""
    try:
        if hasattr(layer, "_group_key"):  # channels-redis: a sorted set per group
            connection = layer.connection(layer.consistent_hash(group))
            return int(await connection.zcard(layer._group_key(group)))
        return len(layer.groups.get(group, {}))  # the in-memory layer
    except Exception:
        logger.debug("could not count the members of %s", group, exc_info=True)
        return None


async def check_watched(layer: Any) -> None:
    """Mark the rooms some web process watches (or that the layer cannot tell about)."""
    pacing.remote_watching = True
    for room in list(registry.rooms.values()):
        members = await group_members(layer, room.group)
        if members is None or members > 0:
            room.watched_at = time.monotonic()


async def _mark_watched(layer: Any) -> None:
    while True:
        try:
            await check_watched(layer)
        except Exception:
            logger.exception("runtime worker: could not tell which rooms are watched")
        await asyncio.sleep(WATCH_CHECK_S)


async def _serve(layer: Any, stop: asyncio.Event) -> None:
    service.ensure_sweeper()
    watcher = asyncio.get_running_loop().create_task(_mark_watched(layer), name="lab-watched")
    pending: set[asyncio.Task[None]] = set()
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            receive = asyncio.ensure_future(layer.receive(RUNTIME_CHANNEL))
            waiting: set[asyncio.Future[Any]] = {receive, stopping}
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if receive not in done:
                receive.cancel()
                return
            if receive.exception() is not None:
                # Redis went away or timed out: keep serving once it is back.
                logger.error(
                    "runtime worker: receive failed (%s); retrying in 1 s", receive.exception()
                )
                await asyncio.sleep(1.0)
                continue
            # One task per call: a room that must load first does not hold up the others.
            # Calls for a loaded room start in arrival order and queue without waiting, so
            # one browser's controls apply in the order pressed.
            task = asyncio.get_running_loop().create_task(_answer(layer, receive.result()))
            pending.add(task)
            task.add_done_callback(pending.discard)
    finally:
        stopping.cancel()
        watcher.cancel()
        pacing.remote_watching = False
        for task in pending:
            task.cancel()


async def _answer(layer: Any, message: dict[str, Any]) -> None:
    reply = message.get("reply")
    op = message.get("op")
    args = message.get("args")
    if not isinstance(reply, str) or not isinstance(op, str) or not isinstance(args, dict):
        logger.warning("runtime worker: ignoring a malformed call %r", message)
        return
    try:
        result = await service.dispatch(op, args)
        answer: dict[str, Any] = {"type": "lab.reply", "result": result}
    except Exception as exc:
        logger.exception("runtime operation %s failed", op)
        answer = {"type": "lab.reply", "failed": f"{type(exc).__name__}: {exc}"}
    await layer.send(reply, answer)

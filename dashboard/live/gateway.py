"""How the web side reaches the rooms, wherever they run.

Embedded (the default): the rooms run in this process; ``call`` runs the operation directly and
a WebSocket consumer joins its room's audience, which sends it frames without any channel layer.

Worker (``LAB_RUNTIME=worker``, scale-out): one ``manage.py labworker`` process runs every room.
``call`` sends the operation over the channel layer to the worker's channel and waits for the
answer on a reply channel. Frames come back through the room's channel group, which has exactly
one member per web process: a *relay* that fans each frame out to this process's viewers (so a
frame crosses Redis once per process, not once per browser, and each browser gets it once).
A viewer joining holds frames back until its snapshot is sent, so it sees no gap and no repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer

from dashboard.live import background, fanout, service
from dashboard.live.limits import remote_viewers, setting

logger = logging.getLogger(__name__)

RUNTIME_CHANNEL = "lab-runtime"


class RuntimeUnavailable(Exception):
    """The runtime worker did not answer in time."""


async def call(op: str, **args: Any) -> dict[str, Any]:
    """Run a runtime operation (see ``service.OPS``) where the rooms live."""
    if not remote_viewers():
        return await service.dispatch(op, args)
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeUnavailable("LAB_RUNTIME=worker needs a channel layer (REDIS_URL).")
    # The default prefix: channels-redis runs one receive loop per layer, for one prefix.
    reply = await layer.new_channel()
    await layer.send(RUNTIME_CHANNEL, {"type": "lab.call", "op": op, "args": args, "reply": reply})
    timeout = float(setting("LAB_RUNTIME_TIMEOUT_S", 10))
    try:
        message = await asyncio.wait_for(layer.receive(reply), timeout)
    except TimeoutError:
        raise RuntimeUnavailable(
            f"The lab's runtime worker did not answer within {timeout:g} s. Is "
            "`manage.py labworker` running, with the same REDIS_URL?"
        ) from None
    if message.get("failed"):
        raise RuntimeError(f"runtime operation {op} failed in the worker: {message['failed']}")
    result: dict[str, Any] = message["result"]
    return result


# -- watching a room -----------------------------------------------------------------------------
@dataclass
class Relay:
    """This process's one member of a room's channel group (worker mode)."""

    room_id: str
    channel: str
    audience: fanout.Audience = field(default_factory=fanout.Audience)
    task: asyncio.Task[None] | None = None


relays: dict[str, Relay] = {}
_relay_locks: dict[str, asyncio.Lock] = {}
_toucher: asyncio.Task[None] | None = None
TOUCH_EVERY_S = 60.0


async def watch(room_id: str, viewer: Any, presenter: bool) -> str | None:
    """Start sending the room's frames to ``viewer``; returns the snapshot frame to send first,
    or None when there is no such room. Call ``ready`` once the snapshot is sent."""
    if not remote_viewers():
        room = await service.get(room_id)
        if room is None:
            return None
        service.ensure_sweeper()
        # No await between joining and building the snapshot: every later frame is newer.
        room.attach(viewer, presenter)
        room.ensure_running()
        return room.full_frame(presenter)
    relay = await _relay(room_id)
    relay.audience.add(viewer, presenter, pending=True)
    try:
        snap = await call("snapshot", room_id=room_id, presenter=presenter)
    except BaseException:
        await unwatch(room_id, viewer)
        raise
    if snap.get("error"):
        await unwatch(room_id, viewer)
        return None
    viewer.snapshot_seq = snap["seq"]
    frame: str = snap["frame"]
    return frame


async def ready(room_id: str, viewer: Any) -> None:
    relay = relays.get(room_id)
    if relay is not None:
        await relay.audience.ready(viewer, getattr(viewer, "snapshot_seq", -1))


async def unwatch(room_id: str, viewer: Any) -> None:
    if not remote_viewers():
        from dashboard.live.runtime import registry

        room = registry.get(room_id)
        if room is not None:
            room.detach(viewer)
        return
    relay = relays.get(room_id)
    if relay is None:
        return
    relay.audience.remove(viewer)
    if len(relay.audience) == 0:
        async with _lock(room_id):
            if relays.get(room_id) is relay and len(relay.audience) == 0:
                del relays[room_id]
                _relay_locks.pop(room_id, None)
                await _close(relay)


def local_viewers(room_id: str) -> int:
    if not remote_viewers():
        from dashboard.live.runtime import registry

        room = registry.get(room_id)
        return room.viewers if room is not None else 0
    relay = relays.get(room_id)
    return len(relay.audience) if relay is not None else 0


def _lock(room_id: str) -> asyncio.Lock:
    lock = _relay_locks.get(room_id)
    if lock is None:
        lock = _relay_locks[room_id] = asyncio.Lock()
    return lock


async def _relay(room_id: str) -> Relay:
    relay = relays.get(room_id)
    if relay is not None:
        return relay
    async with _lock(room_id):
        relay = relays.get(room_id)
        if relay is not None:
            return relay
        layer = get_channel_layer()
        assert layer is not None
        channel = await layer.new_channel()
        await layer.group_add(f"room-{room_id}", channel)
        relay = Relay(room_id, channel)
        relay.task = background.spawn(_forward(relay), name=f"relay-{room_id}")
        relays[room_id] = relay
        _ensure_toucher()
        return relay


def _ensure_toucher() -> None:
    """Watched rooms are in use: keep pushing their idle expiry back (the worker cannot see
    this process's viewers)."""
    global _toucher
    loop = asyncio.get_running_loop()
    if _toucher is None or _toucher.done() or _toucher.get_loop() is not loop:
        _toucher = background.spawn(_touch_watched(), name="lab-touch-watched")


async def _touch_watched() -> None:
    from asgiref.sync import sync_to_async

    from dashboard.workshops.rooms import touch_many

    while relays:
        try:
            await sync_to_async(touch_many)(list(relays))
        except Exception:
            logger.exception("could not mark the watched rooms as used")
        await asyncio.sleep(TOUCH_EVERY_S)


async def _forward(relay: Relay) -> None:
    layer = get_channel_layer()
    assert layer is not None
    while True:
        try:
            message = await layer.receive(relay.channel)
        except asyncio.CancelledError:
            raise
        except Exception:  # the channel layer (Redis) failed: wait and carry on
            logger.exception("relay %s: receiving failed; retrying in 1 s", relay.room_id)
            await asyncio.sleep(1.0)
            continue
        if message.get("type") != "room.frame":
            continue
        try:
            await relay.audience.send(
                int(message.get("seq", 0)), message["frame"], message.get("private")
            )
        except Exception:
            logger.exception("relay %s: could not forward a frame", relay.room_id)


async def _close(relay: Relay) -> None:
    task = relay.task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_discard(f"room-{relay.room_id}", relay.channel)

"""The runtime's operations: everything the web side asks of a live room.

They run where the rooms live: inside the web process (embedded set-up) or in the runtime
worker (``manage.py labworker``, scale-out); ``gateway.call`` gets them there. Arguments and
results are plain JSON-like values, so they can cross the channel layer.

Rooms load lazily from the database (models.LabRoom and its SavedRun): a room created by one
process, or dropped from memory, comes back at the engine step it was at. Each live room saves
its run (commands, verdict, position) at the tick after a command or a stop (pause, step, seek,
the end of the run), and every ``POSITION_EVERY_S`` while it plays: a crash (kill -9) loses at
most the last tick's command and, of a playing room, the last few seconds of its progress.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from broker.scenario import ScenarioError
from dashboard.live import background, forking, wire
from dashboard.live.limits import Busy, LimitError, check_limits, seq_base, setting
from dashboard.live.runtime import Room, registry
from dashboard.live.timeline import Timeline
from dashboard.models import LabRoom, SavedRun
from dashboard.panels import fragments
from dashboard.panels.presenters import LANE_WINDOW, slug, window_cells
from dashboard.panels.run import NEUTRAL_TITLE
from dashboard.workshops import questions, rooms
from dashboard.workshops.forms import ControlForm

logger = logging.getLogger(__name__)

POSITION_EVERY_S = 5.0  # where a playing room is (to resume there), every five seconds


def sweep_every_s() -> float:
    """How often the sweeper expires idle rooms and marks the watched ones as used."""
    return float(setting("LAB_SWEEP_EVERY_S", 60))


MAX_ANOMALIES_SAVED = 100


class ServiceError(Exception):
    """A refusal to show the user (the message says why)."""


# -- loading -------------------------------------------------------------------------------
_loading: dict[str, asyncio.Future[Room | None]] = {}


async def get(room_id: str) -> Room | None:
    """The live room, loading it from the database if it is not in memory."""
    room = registry.get(room_id)
    if room is not None:
        return room
    pending = _loading.get(room_id)
    if pending is not None and pending.get_loop() is asyncio.get_running_loop():
        return await asyncio.shield(pending)
    future: asyncio.Future[Room | None] = asyncio.get_running_loop().create_future()
    _loading[room_id] = future
    try:
        room = await sync_to_async(_build)(room_id)
        if room is not None:
            room = registry.get(room_id) or registry.add(room)
            _watch(room)
        future.set_result(room)
        return room
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # retrieved: no "never retrieved" warning when nobody else waited
        raise
    finally:
        _loading.pop(room_id, None)


def _build(room_id: str) -> Room | None:
    record = rooms.live_room(room_id)
    if record is None:
        return None
    run = record.run
    spec = rooms.spec_of(run)
    commands = rooms.commands_of(run)
    check_limits(spec, commands)  # produce commands count too (an imported run's)
    timeline = Timeline(spec, run.seed, commands)
    while timeline.steps < record.start_steps and timeline.step_engine():
        pass
    timeline.limit_steps = record.limit_steps
    room = Room(
        record.id,
        spec,
        run.seed,
        timeline=timeline,
        kind=record.kind,
        info=_info(record),
        seq_base=seq_base(),
    )
    questions.load(room)
    return room


def _info(record: LabRoom) -> dict[str, Any]:
    parent = record.parent
    return {
        "code": record.code,
        "run_id": record.run_id,
        "parent_id": parent.id if parent is not None else None,
        "parent_code": parent.code if parent is not None else None,
        "notes": record.notes,
        # "replay": the room plays a copy of a saved run, its recorded presses included.
        "origin": record.run.origin if record.run_id else "room",
    }


def _watch(room: Room) -> None:
    room.on_change = _after_tick
    room.saved_at = time.monotonic()
    room.saved_state = _state(room)


# -- saving --------------------------------------------------------------------------------
def _state(room: Room) -> tuple[Any, ...]:
    return (room.timeline.revision, room.timeline.steps, room.kind)


async def _after_tick(room: Room) -> None:
    await questions.after_tick(room)
    await _maybe_save(room)


async def _maybe_save(room: Room) -> None:
    """After a tick: save a new command at once, the position whenever the room stops (pause,
    step, the end of the run), and a playing room's position every few seconds."""
    saved = room.saved_state
    if saved is None or saved[0] != room.timeline.revision:
        await save_now(room)
    elif room.playing:
        if time.monotonic() - room.saved_at >= POSITION_EVERY_S:
            await save_now(room)
    elif not room.status()["seeking"] and saved[1] != room.timeline.steps:
        await save_now(room)


async def save_now(room: Room) -> None:
    """Save the room's run (commands, verdict) and where it is, if that changed."""
    if room.kind == "view" or "run_id" not in room.info:
        return  # a view records nothing: its parent's run is the record
    state = _state(room)
    now = time.monotonic()
    if state == room.saved_state:
        return
    room.saved_at, room.saved_state = now, state
    commands = rooms.commands_json(room.timeline.commands)
    verdict = _verdict_summary(room)
    try:
        await sync_to_async(_save)(room.id, room.info["run_id"], commands, verdict, state[1])
    except Exception:
        logger.exception("room %s: could not save its run", room.id)


def _verdict_summary(room: Room) -> dict[str, Any]:
    verdict = dict(room._verdict or {})
    if "anomalies" in verdict:
        verdict["anomaly_count"] = len(verdict["anomalies"])
        verdict["anomalies"] = verdict["anomalies"][:MAX_ANOMALIES_SAVED]
    return verdict


def _save(
    room_id: str, run_id: str, commands: list[Any], verdict: dict[str, Any], steps: int
) -> None:
    now = timezone.now()
    with transaction.atomic():
        SavedRun.objects.filter(id=run_id).update(
            commands=commands, verdict=verdict, updated_at=now
        )
        LabRoom.objects.filter(id=room_id).update(start_steps=steps, last_active=now)


# -- expiry --------------------------------------------------------------------------------
_sweeper: asyncio.Task[None] | None = None


def ensure_sweeper() -> None:
    """Expire idle rooms once a minute, on the loop where the rooms run."""
    global _sweeper
    loop = asyncio.get_running_loop()
    if _sweeper is not None and not _sweeper.done() and _sweeper.get_loop() is loop:
        return
    _sweeper = background.spawn(_sweep_forever(), name="lab-room-sweeper")


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(sweep_every_s())
        try:
            await sweep()
        except Exception:
            logger.exception("room expiry sweep failed")


async def sweep() -> list[str]:
    """Drop the rooms whose idle time ran out (their saved runs stay); the ids dropped."""
    watched = [room.id for room in registry.rooms.values() if room.viewers]
    if watched:
        await sync_to_async(rooms.touch_many)(watched)  # watched here: not idle
    gone = await sync_to_async(rooms.purge_expired)()
    for room_id in gone:
        await _close_room(room_id, "This room expired: nobody used it for a while.")
    return gone


async def _close_room(room_id: str, why: str) -> None:
    """Take a room out of memory and tell whoever still watches it (its saved run stays)."""
    room = registry.drop(room_id)
    if room is not None:
        await room.broadcast(fragments.error_frame(why))


# -- operations ------------------------------------------------------------------------------
async def _room(room_id: str) -> Room:
    room = await get(room_id)
    if room is None:
        raise ServiceError("No such room: it may have expired.")
    return room


async def page(room_id: str, presenter: bool = False) -> dict[str, Any]:
    room = await _room(room_id)
    model = room.page()
    skip = room.private_skip(presenter)
    return {
        "panels": {k: v for k, v in model.html.items() if k not in skip},
        "lanes_html": model.lanes_html,
        "seq": room.seq,
        "title": NEUTRAL_TITLE
        if (room.question is not None and not room.question["revealed"])
        or room.info.get("copied_mid_question")
        else room.scenario["title"],
        "transactional": bool(room.scenario.get("transactional")),
        "consumers": bool(room.scenario.get("consumers")),
    }


async def snapshot(room_id: str, presenter: bool = False) -> dict[str, Any]:
    room = await _room(room_id)
    room.ensure_running()
    return {"frame": room.full_frame(presenter), "seq": room.seq}


async def control(room_id: str, fields: dict[str, str], presenter: bool) -> dict[str, Any]:
    """Validate and queue a control; ``{"error": text}`` when refused (nothing changes)."""
    room = await _room(room_id)
    if not presenter:
        return {"error": "Only a presenter can control this room."}
    form = ControlForm(fields, room=room)
    if not form.is_valid():
        return {"error": form.error_text()}
    command = form.control()
    if command.action not in room.allowed_actions:
        return {
            "error": f"Not in a detached view: {command.action!r}. A view only travels in "
            "time; “Try it yourself” makes a sandbox where faults work."
        }
    refusal = wire.control_refusal(room, command.action, command.speed)
    if refusal:
        return {"error": refusal}
    starts = command.action == "play" or (command.action == "speed" and command.speed == "end")
    refusal = room.play_refusal() if starts else ""
    if refusal:
        return {"error": refusal, "busy": True}  # the cap on playing rooms (pacing.py): now
    room.submit(command)
    room.ensure_running()
    return {"error": None}


async def lane(room_id: str, partition: str, offset: int, page: bool) -> dict[str, Any]:
    room = await _room(room_id)
    # The scenario's partitions, and those of topics real Kafka clients created meanwhile.
    known = partition in room.scenario["partitions"] or any(
        str(tp) == partition for tp in room.timeline.sim.cluster.controller.partitions
    )
    if not known:
        return {"status": 404, "html": f"This run has no partition {partition!r}."}
    window = room.timeline.sim.read_records(partition, offset, LANE_WINDOW)
    context = {
        "partition": partition,
        "offset": offset,
        "last": offset + LANE_WINDOW - 1,
        "cells": window_cells(partition, window),
        "window": window,
        "slug": slug(partition),
        "room": {"id": room.id},
    }
    template = "dashboard/lane_page.html" if page else "dashboard/lane_window.html"
    return {"status": 200, "html": render_to_string(template, context)}


async def fork(
    room_id: str, kind: str, client: str = "", presenter: bool = False
) -> dict[str, Any]:
    """A private copy of the room at its current point: a sandbox or a detached view.

    The copy is made off the event loop, within the limits on copies (forking.py); ``client``
    is the asking browser's session token, for the limits per browser. ``presenter``: whether
    the asking browser presents the room; an attendee's copy never carries the speaker notes,
    and while a question is open it can neither run ahead (no sandbox) nor see past the
    question (a view stops where the room is).
    """
    if kind not in ("sandbox", "view"):
        raise ServiceError(f"Unknown fork {kind!r}.")
    source = await _room(room_id)
    refusal = wire.fork_refusal(source)
    if refusal:
        raise ServiceError(refusal)
    asking = source.question is not None and not source.question["revealed"]
    if asking and not presenter and kind == "sandbox":
        raise ServiceError(
            "“Try it yourself” opens after the reveal: a copy now could run ahead to the answer. "
            "Vote first; “Look around on my own” shows the history so far."
        )
    timeline, clock_ms = await forking.copy_timeline(source, kind == "view", client)
    if asking and not presenter:
        timeline.limit_steps = timeline.steps  # nothing past the question
    notes = presenter and source.notes
    record, key = await sync_to_async(_fork_records)(source, timeline, kind, notes)
    info = _info(record)
    if asking and not presenter:
        # Nor its title or description: they would answer the question (panels/run.py).
        info["copied_mid_question"] = True
    room = Room(
        record.id,
        source.spec,
        source.seed,
        timeline=timeline,
        kind=kind,
        info=info,
        seq_base=seq_base(),
    )
    room.clock_ms = clock_ms  # a paused room's clock may be past its last event
    registry.add(room)
    forking.remember(room.id, client)
    _watch(room)
    return {"room_id": record.id, "key": key, "run_id": record.run_id}


def _fork_records(source: Room, timeline: Timeline, kind: str, notes: bool) -> tuple[LabRoom, str]:
    parent = rooms.live_room(source.id)
    if parent is None:
        raise ServiceError("This room has expired.")
    run = parent.run
    if kind == "sandbox":
        run = rooms.create_run(
            source.spec, run.scenario_toml, source.seed, timeline.commands, origin="sandbox"
        )
    record, key = rooms.create_room(
        run,
        kind=kind,
        parent=parent,
        start_steps=timeline.steps,
        limit_steps=timeline.limit_steps,
        notes=notes,
    )
    return record, key


# -- predict, then reveal (questions.py) -----------------------------------------------------------
async def ask(
    room_id: str, prompt: str, choices: list[str], correct: int | None = None
) -> dict[str, Any]:
    return await questions.ask(await _room(room_id), prompt, choices, correct)


async def reveal(room_id: str, close: bool = False) -> dict[str, Any]:
    return await questions.reveal(await _room(room_id), close)


async def tally(room_id: str) -> dict[str, Any]:
    return await questions.tally(await _room(room_id))


async def kafka(room_id: str, listen: bool, presenter: bool = False) -> dict[str, Any]:
    """Open (``listen``) or close the room's Kafka listeners: its presenters only."""
    room = await _room(room_id)
    if not presenter:
        return {"error": "Only a presenter can let real Kafka clients into this room."}
    if listen:
        opened = await wire.open_listeners(room, registry.listening())
        room.ensure_running()
        return {"error": None, "bootstrap": opened.bootstrap}
    await wire.close_listeners(room)
    return {"error": None, "bootstrap": None}


async def end(room_id: str) -> dict[str, Any]:
    """The presenter ends the room: its run is saved, viewers are told, the room is gone."""
    room = await _room(room_id)
    await save_now(room)
    await sync_to_async(rooms.end_room)(room_id)
    await _close_room(room_id, "The presenter ended this room. Its run is saved.")
    return {"error": None, "run_id": room.info.get("run_id")}


OPS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "end": end,
    "page": page,
    "snapshot": snapshot,
    "control": control,
    "lane": lane,
    "fork": fork,
    "ask": ask,
    "reveal": reveal,
    "tally": tally,
    "kafka": kafka,
}


async def dispatch(op: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one operation; a refusal comes back as ``{"error": text}``."""
    ensure_sweeper()
    handler = OPS.get(op)
    if handler is None:
        return {"error": f"Unknown runtime operation {op!r}."}
    try:
        return await handler(**args)
    except (ServiceError, LimitError, ScenarioError) as exc:
        return {"error": str(exc), "busy": isinstance(exc, Busy)}

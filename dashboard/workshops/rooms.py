"""Rooms and runs in the database, and who may do what in a room (the session's roles).

Everything here is synchronous Django ORM code: call it from sync views, or through
``asgiref.sync.sync_to_async`` from async code. The live side (the engine) is in runtime.py.

Roles: whoever opens a room's presenter link (``/rooms/<id>/present/<key>/``) has the key
checked (hashed, constant-time) and gets the room's id in their session; from then on every
control (HTTP or WebSocket) from that session is a presenter's. Everyone else who opens the room
(the attendee link ``/r/<code>/``) is an attendee: they watch, vote, detach and fork, but their
controls are refused on the server.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from broker.scenario import BUILTIN_DIR, ScenarioSpec, builtin_names, load_text
from dashboard.live.limits import Busy, LimitError, setting
from dashboard.live.timeline import Command
from dashboard.models import (
    LabRoom,
    SavedRun,
    hash_key,
    key_matches,
    new_code,
    new_key,
    normalize_code,
)

SESSION_PRESENTS = "lab_presents"  # room ids this browser session may control
SESSION_VOTER = "lab_voter"  # this browser's anonymous attendee token (votes)
SESSION_RUNS = "lab_runs"  # saved runs made in this browser, newest first
SESSION_KEYS = "lab_keys"  # presenter keys of rooms this browser made, to show them to it
MAX_SESSION_ROOMS = 64
MAX_SESSION_RUNS = 50


# -- scenarios and runs ------------------------------------------------------------------------
def builtin_text(name: str) -> str:
    if name not in builtin_names():
        raise KeyError(name)
    return (BUILTIN_DIR / f"{name}.toml").read_text(encoding="utf-8")


def spec_of(run: SavedRun) -> ScenarioSpec:
    return load_text(run.scenario_toml, run.scenario_name, source=f"saved run {run.id}")


def commands_of(run: SavedRun) -> list[Command]:
    return [
        Command(int(c["step_index"]), int(c["time_ms"]), dict(c["raw"]), str(c["label"]))
        for c in run.commands
    ]


def commands_json(commands: Iterable[Command]) -> list[dict[str, Any]]:
    return [
        {"step_index": c.step_index, "time_ms": c.time_ms, "raw": dict(c.raw), "label": c.label}
        for c in commands
    ]


def create_run(
    spec: ScenarioSpec,
    toml: str,
    seed: int | None = None,
    commands: Sequence[Command] = (),
    origin: str = "room",
) -> SavedRun:
    run = SavedRun(
        id=SavedRun.new_id(),
        title=spec.title[:200],
        scenario_name=spec.name[:64],
        scenario_toml=toml,
        seed=spec.seed if seed is None else seed,
        commands=commands_json(commands),
        origin=origin,
    )
    run.save(force_insert=True)
    return run


# -- rooms -------------------------------------------------------------------------------------
def idle_expiry_s() -> int:
    return int(setting("LAB_ROOM_IDLE_EXPIRY_S", 4 * 3600))


def purge_expired(now: Any = None) -> list[str]:
    """Delete rooms idle past their expiry (their saved runs stay); the ids removed."""
    now = now or timezone.now()
    gone = []
    # Few rooms exist at once (a limit): checking each in Python keeps per-room expiry simple.
    for room in LabRoom.objects.only("id", "last_active", "idle_expiry_s"):
        if room.expired(now):
            gone.append(room.id)
    if gone:
        LabRoom.objects.filter(id__in=gone).delete()
    return gone


def watched_window() -> timedelta:
    """The sweeper marks watched rooms as used every LAB_SWEEP_EVERY_S: a room used within two
    of those may well be watched."""
    return timedelta(seconds=2 * float(setting("LAB_SWEEP_EVERY_S", 60)))


def hold_s() -> int:
    return int(setting("LAB_ROOM_HOLD_S", 600))


def creator_of(client_key: str) -> str:
    """What a room keeps of who opened it: a hash of the client's address, not the address."""
    return hashlib.sha256(f"delivery-lab/creator/{client_key}".encode()).hexdigest()


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _rooms(n: int) -> str:
    return f"{n} workshop room{'s' if n != 1 else ''}"


def _check_room_limits(kind: str, creator: str = "") -> None:
    """Make room for one more room of ``kind``, or raise LimitError saying why not.

    Workshop rooms count against ``LAB_MAX_ROOMS`` only while in use (watched, or used in the
    last ``LAB_ROOM_HOLD_S``); a parked room (in use by nobody) expires early when a new room
    needs its place, so rooms opened and left never lock the lab out. One client address may
    hold ``LAB_MAX_ROOMS_PER_CLIENT`` rooms in use: past that its own least recently used room
    is parked first, or, when all of them are in use, the new one is refused.
    """
    if kind == "workshop":
        now = timezone.now()
        hold = timedelta(seconds=hold_s())
        live = [
            r
            for r in LabRoom.objects.filter(kind="workshop").only(
                "id", "last_active", "idle_expiry_s", "creator"
            )
            if not r.expired(now)
        ]
        in_use = [r for r in live if now - r.last_active < hold]
        parked = sorted((r for r in live if now - r.last_active >= hold), key=_last_active)
        per_client = int(setting("LAB_MAX_ROOMS_PER_CLIENT", 6))
        mine = sorted((r for r in in_use if creator and r.creator == creator), key=_last_active)
        to_park: list[LabRoom] = []
        if len(mine) >= per_client:
            # An instructor trying scenario after scenario: their oldest room nobody is
            # watching (not touched by the sweeper lately) makes way.
            idle = [r for r in mine if now - r.last_active >= watched_window()]
            if not idle:
                raise Busy(
                    f"You already have {_rooms(len(mine))} in use, the most one address may hold "
                    f"(each is watched or was used in the last {_minutes(hold_s())}). End a "
                    "room you no longer need (“End this room” on its page), or close its tabs."
                )
            to_park.append(idle[0])
            in_use.remove(idle[0])
            parked.insert(0, idle[0])
        limit = int(setting("LAB_MAX_ROOMS", 32))
        if len(in_use) >= limit:
            raise Busy(
                f"The lab already runs {_rooms(len(in_use))} in use, the most it runs at "
                f"once. A room that nobody watches or uses for {_minutes(hold_s())} stops "
                "counting: try again then, or preview the scenario on your own instead."
            )
        excess = len(live) - len(to_park) + 1 - limit
        to_park.extend([r for r in parked if r not in to_park][: max(0, excess)])
        if to_park:
            # Parked rooms whose place is needed expire now (their saved runs stay).
            LabRoom.objects.filter(id__in=[r.id for r in to_park]).delete()
    else:
        _check_private_limits(creator)


def _check_private_limits(creator: str) -> None:
    """Private rooms are cheap to make again, so past a limit one goes (its saved run stays).

    A browser's previews (``creator``) make way among themselves first: past
    ``LAB_MAX_PRIVATE_ROOMS_PER_CLIENT`` its own oldest goes, so one visitor opening preview
    after preview ends only their own. Past ``LAB_MAX_PRIVATE_ROOMS`` in all, the oldest idle
    one goes, never one somebody may be watching: then the new one is refused instead.
    """
    private = LabRoom.objects.exclude(kind="workshop").order_by("last_active")
    if creator:
        mine = private.filter(creator=creator)
        oldest_mine = mine.first()
        if oldest_mine and mine.count() >= int(setting("LAB_MAX_PRIVATE_ROOMS_PER_CLIENT", 3)):
            oldest_mine.delete()
    limit = int(setting("LAB_MAX_PRIVATE_ROOMS", 400))
    if private.count() < limit:
        return
    oldest = private.filter(last_active__lt=timezone.now() - watched_window()).first()
    if oldest is None:
        raise Busy(
            f"The lab already holds {limit} private rooms, each watched or used in the last "
            "minutes, the most it keeps: try again in a few minutes."
        )
    oldest.delete()


def _last_active(room: LabRoom) -> Any:
    return room.last_active


def create_room(
    run: SavedRun,
    kind: str = "workshop",
    parent: LabRoom | None = None,
    start_steps: int = 0,
    limit_steps: int | None = None,
    creator: str = "",
    notes: bool = True,
) -> tuple[LabRoom, str]:
    """A new room showing ``run``; returns it and its presenter key (shown once, stored hashed).

    Workshop rooms get a join code; private rooms (sandbox, view) do not. ``creator``: see
    ``creator_of``. Expired rooms are left to the runtime's sweeper, which knows which rooms are
    watched (and tells their viewers); here they only stop counting.
    """
    if kind not in LabRoom.KINDS:
        raise ValueError(f"unknown room kind {kind!r}")
    _check_room_limits(kind, creator)
    key = new_key()
    for _attempt in range(50):
        room = LabRoom(
            id=SavedRun.new_id()[:8],
            code=new_code() if kind == "workshop" else None,
            presenter_key_hash=hash_key(key),
            kind=kind,
            parent=parent,
            run=run,
            start_steps=start_steps,
            limit_steps=limit_steps,
            idle_expiry_s=idle_expiry_s(),
            creator=creator,
            notes=notes,
        )
        try:
            with transaction.atomic():
                room.save(force_insert=True)
        except IntegrityError:
            continue  # a code or id already taken: draw again
        return room, key
    raise LimitError("Could not find a free join code; too many rooms are open.")


def end_room(room_id: str) -> None:
    """A presenter ended the room: it goes with its forks' links to it (its saved run stays)."""
    LabRoom.objects.filter(id=room_id).delete()


def find_by_code(code: str) -> LabRoom | None:
    code = normalize_code(code)
    if not code:
        return None
    room = LabRoom.objects.filter(code=code).first()
    if room is None or room.expired():
        return None
    return room


def live_room(room_id: str) -> LabRoom | None:
    room = LabRoom.objects.select_related("run", "parent").filter(id=room_id).first()
    if room is None or room.expired():
        return None
    return room


def touch(room_id: str) -> None:
    """The room was used now: push its idle expiry back."""
    LabRoom.objects.filter(id=room_id).update(last_active=timezone.now())


def touch_many(room_ids: list[str]) -> None:
    LabRoom.objects.filter(id__in=room_ids).update(last_active=timezone.now())


def touch_if_stale(room: LabRoom, every_s: float = 30.0) -> None:
    if timezone.now() - room.last_active > timedelta(seconds=every_s):
        touch(room.id)


# -- roles (the session) ---------------------------------------------------------------------
def grant_presenter(session: Any, room_id: str) -> None:
    rooms = [r for r in session.get(SESSION_PRESENTS, []) if r != room_id]
    rooms.insert(0, room_id)
    session[SESSION_PRESENTS] = rooms[:MAX_SESSION_ROOMS]


def is_presenter(session: Any, room_id: str) -> bool:
    if session is None:
        return False
    return room_id in session.get(SESSION_PRESENTS, [])


def check_key(room: LabRoom, key: str) -> bool:
    return key_matches(key, room.presenter_key_hash)


def voter_id(session: Any) -> str:
    """This browser's attendee token, made on first use."""
    voter = session.get(SESSION_VOTER)
    if not voter:
        voter = new_key()
        session[SESSION_VOTER] = voter
    return str(voter)


def remember_run(session: Any, run_id: str) -> None:
    runs = [r for r in session.get(SESSION_RUNS, []) if r != run_id]
    runs.insert(0, run_id)
    session[SESSION_RUNS] = runs[:MAX_SESSION_RUNS]


def take_presenter(session: Any, room: LabRoom, key: str) -> None:
    """The browser that made ``room`` presents it, sees its key, and lists its run."""
    grant_presenter(session, room.id)
    remember_run(session, room.run_id)
    keys = dict(session.get(SESSION_KEYS, {}))
    keys[room.id] = key
    session[SESSION_KEYS] = dict(list(keys.items())[-MAX_SESSION_ROOMS:])


def shown_key(session: Any, room_id: str) -> str | None:
    """The presenter key of a room this browser made (the only place it can be shown)."""
    key = session.get(SESSION_KEYS, {}).get(room_id)
    return str(key) if key else None

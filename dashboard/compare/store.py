"""A compare in the database: two rooms, each with its saved run, and nothing else.

Pane A is a room whose run has origin "compare"; pane B is a room whose parent is pane A and
whose run has origin "compare" too. Each run is the scenario, the shared seed and the pane's
settings as ``configure`` commands at engine step 0, so each replays on its own to the same
result (dashboard/runs). The compare's id is pane A's room id; its join code is pane A's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from broker.scenario import ScenarioSpec
from dashboard.compare import presets
from dashboard.live.limits import check_limits
from dashboard.live.timeline import Command
from dashboard.models import LabRoom
from dashboard.workshops import rooms

ORIGIN = "compare"


@dataclass(frozen=True, slots=True)
class Compare:
    a: LabRoom
    b: LabRoom

    @property
    def id(self) -> str:
        return str(self.a.id)

    @property
    def room_ids(self) -> tuple[str, str]:
        return self.a.id, self.b.id


def setting_commands(raws: Sequence[dict[str, Any]]) -> list[Command]:
    """A pane's settings as commands pressed before the first engine step."""
    return [Command(0, 0, dict(raw), f"setting: {presets.describe([raw])}") for raw in raws]


def create(
    spec: ScenarioSpec,
    toml: str,
    seed: int,
    settings: tuple[Sequence[dict[str, Any]], Sequence[dict[str, Any]]],
    *,
    workshop: bool,
    creator: str = "",
) -> tuple[Compare, str, str]:
    """Two rooms (workshop rooms, or private ones) and their runs; the presenter keys of both.
    Each room counts against the room limits, so a compare counts as two."""
    kind = "workshop" if workshop else "sandbox"
    commands = [setting_commands(s) for s in settings]
    for pane in commands:
        check_limits(spec, pane)
    with transaction.atomic():
        run_a = rooms.create_run(spec, toml, seed, commands[0], origin=ORIGIN)
        room_a, key_a = rooms.create_room(run_a, kind=kind, creator=creator)
        run_b = rooms.create_run(spec, toml, seed, commands[1], origin=ORIGIN)
        room_b, key_b = rooms.create_room(run_b, kind=kind, parent=room_a, creator=creator)
    return Compare(room_a, room_b), key_a, key_b


def find(compare_id: str) -> Compare | None:
    """The compare whose pane A is this room, if both its rooms are still there."""
    a = rooms.live_room(compare_id)
    if a is None or a.parent_id is not None or a.run.origin != ORIGIN:
        return None
    b = (
        LabRoom.objects.select_related("run")
        .filter(parent=a, run__origin=ORIGIN)
        .order_by("created_at")
        .first()
    )
    if b is None or b.expired():
        return None
    return Compare(a, b)


def of_room(room: LabRoom) -> str | None:
    """The id of the compare this room is a pane of (None: a room of its own)."""
    if room.run.origin != ORIGIN:
        return None
    compare_id = room.parent_id or room.id
    return compare_id if find(compare_id) is not None else None


def settings_of(room: LabRoom) -> list[dict[str, Any]]:
    """A pane's settings: the commands its run had at step 0 when it was made."""
    return [
        dict(c["raw"])
        for c in room.run.commands
        if int(c["step_index"]) == 0 and str(c["label"]).startswith("setting: ")
    ]


def end(compare: Compare) -> None:
    with transaction.atomic():
        rooms.end_room(compare.b.id)
        rooms.end_room(compare.a.id)

"""The lab's limits and settings as the live side reads them, and its two refusals: a limit
reached (LimitError, a 400) and a limit that frees up with time (Busy, a 429)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings

from broker.scenario import ScenarioSpec
from dashboard.live.timeline import Command


class LimitError(Exception):
    """A limit of the lab was reached; the message says which, for the user."""


class Busy(LimitError):
    """A limit that frees up with time (a room, a copy, a replay slot): asking again later can
    work, so HTTP answers 429 with a Retry-After, where a size limit is a 400."""

    retry_after_s = 30


def setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def seq_base() -> int:
    """A starting frame number past any earlier copy's: the wall clock in milliseconds (a room
    sends at most one frame per tick, far fewer than one a millisecond)."""
    return int(time.time() * 1000)


def remote_viewers() -> bool:
    """Scale-out: rooms run in a worker; browsers are connected to other processes."""
    return bool(setting("LAB_RUNTIME", "embedded") == "worker")


def max_records() -> int:
    return int(setting("LAB_MAX_RECORDS_PER_RUN", 200_000))


def records_of(raw: Mapping[str, Any]) -> int:
    """The records one command produces (its raw table, validated: a produce's count, 1 when
    not given, as for a scenario step)."""
    count = raw.get("count", 1) if raw.get("do") == "produce" else 0
    return count if type(count) is int and count > 0 else 0


def records_in(spec: ScenarioSpec, commands: Iterable[Command] = ()) -> int:
    """The records a run can produce: its scenario's produce steps and its produce commands."""
    steps = sum(int(s.params.get("count", 0)) for s in spec.steps if s.action == "produce")
    return steps + sum(records_of(c.raw) for c in commands)


def check_limits(spec: ScenarioSpec, commands: Sequence[Command] = ()) -> None:
    limit = max_records()
    records = records_in(spec, commands)
    if records > limit:
        raise LimitError(
            f"This {'run' if commands else 'scenario'} produces {records:,} records; the "
            f"dashboard runs at most {limit:,} per run. Lower the produce counts, or run it "
            f"from a terminal (python -m broker run)."
        )

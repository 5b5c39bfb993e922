"""What every panel module shares: names made safe for HTML ids, the lane window, speeds."""

from __future__ import annotations

import re
from typing import Any

LANE_WINDOW = 40
SPEEDS = ("0.25", "0.5", "1", "2", "4", "8", "16", "end")
# Event pacing: speed "beat" plays one moment (the next visible event) per beat, at one of
# these rates in beats per second, skipping empty virtual time (runtime.Room._advance).
BEAT = "beat"
BEATS = ("0.5", "1", "2")


def slug(name: str) -> str:
    """An HTML id fragment for a partition or actor name ("orders.v2-0" -> "orders_2e_v2-0")."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):x}_", name)


def speed_label(speed: str) -> str:
    if speed == BEAT:
        return "one moment a beat"
    return "to the end" if speed == "end" else f"{speed}\u00d7"


def beats_label(beats: str) -> str:
    """ "1 moment/s", "0.5 moments/s"."""
    return f"{beats} moment{'' if beats == '1' else 's'}/s"


def dash(value: Any) -> Any:
    """A missing value (None, "", -1) as an em dash."""
    return "\u2014" if value in (None, "", -1) else value


def ghost_id(partition: str, offset: int, message_id: str) -> str:
    """The HTML id of a truncated record's ghost cell: where it was, and which record it was
    (the live cell at that offset may hold another record by now)."""
    return f"g-{slug(partition)}-{offset}-{slug(message_id)}"


NOT_STARTED_ICON = "\u25cc"  # a dotted circle: not there yet


def not_started(obs: dict[str, Any], group: str, name: str) -> str:
    """ "not started (starts at 500 ms)": an application whose start time has not come."""
    for actor in obs["scenario"].get(group, []):
        if actor["name"] == name:
            return f"not started (starts at {actor.get('start_ms', 0)} ms)"
    return "not started"

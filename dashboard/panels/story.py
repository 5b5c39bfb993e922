"""The Story panel: what happened, told from the engine's events, and apart from it the
scenario's authored notes as "the script says", only those the run has reached.

A narrator per engine (``narrator_for``) reads each event once; a time-travel checkpoint or a
fork is another engine, whose narrator reads its own events from the start.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

from broker.simulation import Simulation
from dashboard.panels.common import BEAT
from dashboard.panels.narrator import Line, Narrator
from dashboard.panels.travel import Wire

STORY_SHOWN = 14


def _truncation_lookup(sim: Simulation) -> Any:
    # A weak reference: the narrator is the value of a weak-keyed map whose key is ``sim``, and
    # must not keep it alive.
    engine = weakref.ref(sim)

    def removed(time_ms: int, broker: str, partition: str, offset: int) -> list[str]:
        live = engine()
        if live is None:
            return []
        for truncation in reversed(live.ledger.truncations):
            if (
                truncation.time_ms == time_ms
                and f"broker-{truncation.broker}" == broker
                and truncation.partition == partition
                and truncation.offset == offset
            ):
                return [message_id for _o, message_id in truncation.removed]
        return []

    return removed


@dataclass(slots=True)
class Reader:
    """What reads one engine's events once: the narrator and the travel layer's wire."""

    narrator: Narrator
    wire: Wire


_readers: weakref.WeakKeyDictionary[Simulation, Reader] = weakref.WeakKeyDictionary()


def reader_for(sim: Simulation, scenario: dict[str, Any]) -> Reader:
    """This engine's reader, brought up to its latest event."""
    reader = _readers.get(sim)
    if reader is None or reader.narrator.seq > sim.events.next_seq:
        reader = Reader(Narrator(scenario, _truncation_lookup(sim)), Wire())
        _readers[sim] = reader
    if reader.narrator.seq < sim.events.next_seq:
        fresh = sim.events.since(reader.narrator.seq)
        reader.narrator.feed(fresh)
        reader.wire.feed(fresh)
    return reader


def narrator_for(sim: Simulation, scenario: dict[str, Any]) -> Narrator:
    """This engine's narrator, brought up to its latest event."""
    return reader_for(sim, scenario).narrator


def story_of(sim: Simulation, scenario: dict[str, Any]) -> dict[str, Any]:
    """The observation's part for the Story panel and the travel layer (plain data)."""
    reader = reader_for(sim, scenario)
    narrator = reader.narrator
    lines = narrator.lines[-STORY_SHOWN:]
    return {
        "lines": [_line(line) for line in lines],
        "earlier": narrator.told - len(lines),
        "beat": [_line(line) for line in narrator.beat],
        "beat_more": narrator.beat_more,
        "visible_events": narrator.visible,
        "dropped": sim.events.dropped,
        "wire": reader.wire.state(),
    }


def _line(line: Line) -> dict[str, Any]:
    return {"time_ms": line.time_ms, "actor": line.actor, "kind": line.kind, "text": line.text}


def narration_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    story = obs.get("story") or {}
    told = [{"at_ms": t, "text": text} for t, text in obs["snapshot"].get("narration", [])]
    lines = story.get("lines", [])
    status = obs.get("status") or {}
    # "This moment": the sentence of each event of the latest step or beat; not while playing
    # at a speed, where it would change faster than anyone reads.
    paced = not status.get("playing") or status.get("speed") == BEAT
    now = story.get("beat", []) if paced else []
    if not told and not lines and not now and not obs["scenario"].get("steps"):
        return None
    commands = obs.get("commands", [])
    departed = ""
    if commands:
        first = commands[0]
        departed = (
            f"The run left the script at {first['time_ms']} ms ({first['label']}): "
            "the notes were written for the run without it."
        )
    return {
        "lines": lines,
        "earlier": story.get("earlier", 0),
        "now": now,
        "now_more": story.get("beat_more", 0) if now else 0,
        "script": told,
        "departed": departed,
    }

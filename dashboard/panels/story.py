"""The Story panel: what happened, told from the engine's events, and apart from it the
scenario's authored notes as "the script says", only those the run has reached.

A narrator per engine (``narrator_for``) reads each event once; a time-travel checkpoint or a
fork is another engine, whose narrator reads its own events from the start.
"""

from __future__ import annotations

import weakref
from typing import Any

from broker.simulation import Simulation
from dashboard.panels.narrator import Narrator

STORY_SHOWN = 14
_narrators: weakref.WeakKeyDictionary[Simulation, Narrator] = weakref.WeakKeyDictionary()


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


def narrator_for(sim: Simulation, scenario: dict[str, Any]) -> Narrator:
    """This engine's narrator, brought up to its latest event."""
    narrator = _narrators.get(sim)
    if narrator is None or narrator.seq > sim.events.next_seq:
        narrator = Narrator(scenario, _truncation_lookup(sim))
        _narrators[sim] = narrator
    if narrator.seq < sim.events.next_seq:
        narrator.feed(sim.events.since(narrator.seq))
    return narrator


def story_of(sim: Simulation, scenario: dict[str, Any]) -> dict[str, Any]:
    """The observation's part for the Story panel (plain data)."""
    narrator = narrator_for(sim, scenario)
    lines = narrator.lines[-STORY_SHOWN:]
    return {
        "lines": [
            {"time_ms": line.time_ms, "actor": line.actor, "kind": line.kind, "text": line.text}
            for line in lines
        ],
        "earlier": narrator.told - len(lines),
        "visible_events": narrator.visible,
        "dropped": sim.events.dropped,
    }


def narration_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    story = obs.get("story") or {}
    told = [{"at_ms": t, "text": text} for t, text in obs["snapshot"].get("narration", [])]
    lines = story.get("lines", [])
    if not told and not lines and not obs["scenario"].get("steps"):
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
        "script": told,
        "departed": departed,
    }

"""What the dashboard knows about a run, as plain data: the one place that reads the engine.

``observe()`` turns a Timeline into a JSON-ready dict: the engine's snapshot, its verdict, the
recent events and the bits the snapshot does not carry yet (truncated records, message status,
a window of any partition's log). Presenters only ever see this dict, so new engine parts
(consumers, groups, a sink) reach the page by appearing in the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from broker.events import Event
from broker.scenario import ScenarioSpec
from broker.simulation import Simulation
from dashboard.live.timeline import Timeline
from dashboard.panels.story import story_of

RECENT_EVENTS = 12
DIAGRAM_EVENTS = 80
# Looking further back than this for diagram events costs more than it shows.
DIAGRAM_SCAN_LIMIT = 20_000
DIAGRAM_NOTE_KINDS = frozenset(
    {
        "produce.append",
        "replica.truncate",
        "broker.crash",
        "broker.restart",
        "app.crash",
        "app.restart",
        "leader.elected",
        "request.timeout",
    }
)


def scenario_info(spec: ScenarioSpec) -> dict[str, Any]:
    """The static facts about a scenario the page needs (actors, steps, semantics)."""
    return {
        "name": spec.name,
        "title": spec.title,
        "description": spec.description.strip(),
        "semantics": spec.semantics,
        "seed": spec.seed,
        "brokers": list(range(1, spec.cluster.brokers + 1)),
        "partitions": [
            f"{topic.name}-{p}" for topic in spec.topics for p in range(topic.partitions)
        ],
        "producers": [
            {
                "name": p.name,
                "idempotent": p.config.enable_idempotence,
                "acks": p.config.acks_name,
                "transactional_id": p.config.transactional_id,
                "start_ms": p.start_ms,
            }
            for p in spec.producers
        ],
        "processors": [
            {
                "name": p.name,
                "group": p.consumer.group_id,
                "inputs": list(p.inputs),
                "output": p.output,
                "transactional_id": p.producer.transactional_id,
                "session_timeout_ms": p.consumer.session_timeout_ms,
                "heartbeat_interval_ms": p.consumer.heartbeat_interval_ms,
                "start_ms": p.start_ms,
            }
            for p in spec.processors
        ],
        "transactional": bool(
            spec.processors or any(p.config.transactional_id for p in spec.producers)
        ),
        "consumers": [
            {
                "name": c.name,
                "group": c.config.group_id,
                "commit": c.commit,
                "sink": c.sink,
                "session_timeout_ms": c.config.session_timeout_ms,
                "heartbeat_interval_ms": c.config.heartbeat_interval_ms,
                "start_ms": c.start_ms,
            }
            for c in spec.consumers
        ],
        "sink": spec.sink,
        "steps": [
            {"at_ms": s.at_ms, "action": s.action, "narration": s.narration}
            for s in spec.steps
            if s.narration
        ],
        "expected": {k: str(v) for k, v in spec.expected.items()},
    }


def snapshot_of(sim: Simulation) -> dict[str, Any]:
    """The engine's snapshot, each application marked ``started``: one whose start time has not
    come yet is not running, but it has not crashed either (the snapshot alone cannot tell)."""
    snapshot = sim.snapshot()
    for key, apps in (("consumers", sim.consumers), ("processors", sim.processors)):
        snapshot[key] = [
            {**entry, "started": apps[entry["name"]].incarnation > 0}
            for entry in snapshot.get(key) or []
        ]
    snapshot["producers"] = [
        {**entry, "started": entry.get("incarnation", 1) > 0}
        for entry in snapshot.get("producers") or []
    ]
    return snapshot


def verdict_of(sim: Simulation) -> dict[str, Any]:
    """The checker's verdict; while the run goes on, messages still in flight are not "lost"."""
    verdict = sim.verdict().to_dict()
    provisional = sim.ended is None
    verdict["provisional"] = provisional
    messages = sim.ledger.messages
    for anomaly in verdict["anomalies"]:
        entry = messages.get(anomaly["message_id"])
        anomaly["in_flight"] = bool(
            provisional
            and anomaly["kind"] == "lost"
            and entry is not None
            and entry.status == "pending"
        )
    return verdict


def ghosts_of(sim: Simulation) -> dict[str, list[dict[str, Any]]]:
    """Records some replica truncated away, per partition, by offset: one ghost per record
    (offset and message id), at its latest truncation."""
    messages = sim.ledger.messages
    out: dict[str, dict[tuple[int, str], dict[str, Any]]] = {}
    for truncation in sim.ledger.truncations:
        lane = out.setdefault(truncation.partition, {})
        for offset, message_id in truncation.removed:
            entry = messages.get(message_id)
            lane[(offset, message_id)] = {
                "offset": offset,
                "message_id": message_id,
                "key": entry.key if entry else None,
                "broker": truncation.broker,
                "time_ms": truncation.time_ms,
            }
    return {p: [lane[k] for k in sorted(lane)] for p, lane in out.items()}


def _newest_first(sim: Simulation) -> Iterator[Event]:
    window = getattr(sim.events, "_events", None)  # the log's deque: no copy needed
    return reversed(window) if window is not None else reversed(list(sim.events))


def recent_events(sim: Simulation, limit: int) -> list[dict[str, Any]]:
    out = []
    for event in islice(_newest_first(sim), DIAGRAM_SCAN_LIMIT):
        if not event.quiet:
            out.append(event.to_dict())
            if len(out) >= limit:
                break
    out.reverse()
    return out


def diagram_events(sim: Simulation, limit: int = DIAGRAM_EVENTS) -> list[dict[str, Any]]:
    """The latest message arrows (events with both ends) and notes on actors' lifelines."""
    out = []
    for event in islice(_newest_first(sim), DIAGRAM_SCAN_LIMIT):
        if event.quiet:
            continue
        if (event.src and event.dst) or event.kind in DIAGRAM_NOTE_KINDS:
            out.append(event.to_dict())
            if len(out) >= limit:
                break
    out.reverse()
    return out


def observe(
    timeline: Timeline,
    scenario: dict[str, Any],
    status: dict[str, Any],
    verdict: dict[str, Any] | None,
    details: bool = True,
) -> dict[str, Any]:
    """Without ``details``, the event list and the diagram (refreshed less often) are left out."""
    sim = timeline.sim
    return {
        "scenario": scenario,
        "snapshot": snapshot_of(sim),
        "story": story_of(sim, scenario),
        "verdict": verdict,
        "ghosts": ghosts_of(sim),
        "events": recent_events(sim, RECENT_EVENTS) if details else [],
        "diagram": diagram_events(sim) if details else [],
        "status": status,
        "commands": [
            {"time_ms": c.time_ms, "label": c.label, "step_index": c.step_index}
            for c in timeline.commands
        ],
    }

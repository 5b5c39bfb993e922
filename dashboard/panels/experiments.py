"""The experiments panel ("Try it"): send more messages, start a consumer, change a client's
settings, while the run goes on. Each press becomes a command like a fault button's: a step
dict (``produce``, ``start-consumer``, ``configure``: docs/scenarios.md) validated against the
scenario and the run's state, recorded with the engine step it preceded, and replayed.

``experiments_panel`` is the presenter; ``experiment_command`` turns the posted form fields into
the step dict and its label, or refuses with the reason (ControlForm shows it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from broker.clients.consumer_app import COMMIT_STRATEGIES, SINK_MODES
from broker.experiment_steps import (
    CONSUMER_SETTINGS,
    ISOLATION_LEVELS,
    MIF,
    PROCESSOR_SETTINGS,
    PRODUCER_SETTINGS,
)
from broker.scenario import MAX_CONSUMERS, ScenarioError
from dashboard.live.limits import max_records, records_in, setting

if TYPE_CHECKING:
    from dashboard.live.timeline import Timeline

# The form fields an experiment may post (besides ``action``); ControlForm passes them on.
EXPERIMENT_FIELDS: tuple[str, ...] = (
    *("do", "producer", "consumer", "processor", "topic", "count", "group"),
    *PRODUCER_SETTINGS,
    *CONSUMER_SETTINGS,
)
EXPERIMENTS = ("produce", "start-consumer", "configure")
ACKS_CHOICES = ("all", "1", "0")
DEFAULT_SEND_MORE = 1000


class ExperimentError(ValueError):
    """A press the lab refuses; the message says why, for the user."""


def max_send_more() -> int:
    """The most messages one "send N more" may ask for (``LAB_MAX_SEND_MORE``)."""
    return int(setting("LAB_MAX_SEND_MORE", DEFAULT_SEND_MORE))


def topics_of(scenario: Mapping[str, Any]) -> list[str]:
    """The scenario's topics, in order (from its partitions' names)."""
    return list(dict.fromkeys(p.rsplit("-", 1)[0] for p in scenario.get("partitions", [])))


# -- the presenter --------------------------------------------------------------------------
def experiments_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    if (obs.get("room") or {}).get("kind") == "view":
        return None  # a view only travels in time
    snapshot = obs["snapshot"]
    scenario = obs["scenario"]
    processors = {p["name"] for p in scenario.get("processors", [])}
    producers = [
        {
            "name": p["name"],
            "up": p.get("alive", True) and p.get("started", True),
            "closing": bool(p.get("closing")),
            "transactional": bool(p.get("transactional_id")),
            "acks": str(p["config"]["acks"]),
            "idempotence": "true" if p["config"]["enable.idempotence"] else "false",
            "in_flight": p["config"]["max.in.flight.requests.per.connection"],
        }
        for p in snapshot.get("producers") or []
        if p["name"] not in processors
    ]
    consumers = [
        {
            "name": c["name"],
            "group": c["group"],
            "up": c.get("alive", True),
            "reconfiguring": bool(c.get("reconfiguring")),
            "isolation": c.get("isolation_level", "read_uncommitted"),
            "commit": c.get("commit", "auto"),
            "sink": c.get("sink", "none"),
        }
        for c in snapshot.get("consumers") or []
    ]
    groups = list(dict.fromkeys(c["group"] for c in consumers))
    processor_settings = [
        {
            "name": p["name"],
            "reconfiguring": bool(p.get("reconfiguring")),
            "isolation": p.get("isolation_level", "read_committed"),
            "in_flight": p.get("max_in_flight", 5),
        }
        for p in snapshot.get("processors") or []
    ]
    return {
        "room_id": obs["status"].get("room_id", ""),
        "in_past": bool(obs["status"].get("in_past")),
        "over": obs["status"].get("ended") == "duration",
        "topics": topics_of(scenario),
        "producers": producers,
        "consumers": consumers,
        "processors": processor_settings,
        "groups": groups,
        "can_start": len(consumers) < MAX_CONSUMERS,
        "max_send": max_send_more(),
        "acks_choices": ACKS_CHOICES,
        "isolation_choices": ISOLATION_LEVELS,
        "commit_choices": COMMIT_STRATEGIES,
        "sink_choices": SINK_MODES,
    }


# -- from the posted fields to a command ----------------------------------------------------
def experiment_command(fields: Mapping[str, Any], timeline: Timeline) -> tuple[dict[str, Any], str]:
    """The step dict and label of an experiment press, validated against the scenario and the
    run's state as the engine would take it now; ``ExperimentError`` names what is wrong."""
    from dashboard.runs.store import MAX_COMMANDS  # here: the saved runs import the panels

    if len(timeline.commands) >= MAX_COMMANDS:
        raise ExperimentError(
            f"This run has reached {MAX_COMMANDS:,} commands, the most a saved run may have."
        )
    do = str(fields.get("do") or "")
    if do not in EXPERIMENTS:
        raise ExperimentError(f"Which experiment? One of: {', '.join(EXPERIMENTS)} (got {do!r}).")
    if do == "produce":
        raw, label = _send_more(fields, timeline)
    elif do == "start-consumer":
        raw, label = _start_consumer(fields)
    else:
        raw, label = _configure(fields, timeline)
    try:
        timeline.sim.check(timeline.parse(raw, "command", timeline.sim.now_ms))
    except ScenarioError as exc:
        where = exc.path.removeprefix("command").lstrip(".")
        raise ExperimentError(f"{where}: {exc.problem}" if where else exc.problem) from None
    return raw, label


def _send_more(fields: Mapping[str, Any], timeline: Timeline) -> tuple[dict[str, Any], str]:
    producer = str(fields.get("producer") or "")
    topics = [t.name for t in timeline.spec.topics]
    topic = str(fields.get("topic") or (topics[0] if len(topics) == 1 else ""))
    limit = max_send_more()
    text = str(fields.get("count") or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= limit:
        raise ExperimentError(
            f"Send how many? A whole number from 1 to {limit:,} (LAB_MAX_SEND_MORE), got {text!r}."
        )
    count = int(text)
    records, most = records_in(timeline.spec, timeline.commands) + count, max_records()
    if records > most:
        raise ExperimentError(
            f"With {count:,} more this run would produce {records:,} records; the dashboard runs "
            f"at most {most:,} per run (LAB_MAX_RECORDS_PER_RUN)."
        )
    raw: dict[str, Any] = {"do": "produce", "producer": producer, "topic": topic, "count": count}
    # The script's own templates for this producer and topic, so the new messages look like
    # the others; {i} carries on from the producer's last message index.
    for step in timeline.spec.steps:
        params = step.params
        if step.action == "produce" and (params["producer"], params["topic"]) == (producer, topic):
            raw["value"] = params["value"]
            raw.pop("key", None)
            if "key" in params:
                raw["key"] = params["key"]
    return raw, f"Send {count} more from {producer} to {topic}"


def _start_consumer(fields: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    raw: dict[str, Any] = {"do": "start-consumer"}
    group, topic = fields.get("group"), fields.get("topic")
    if group:
        raw["group"] = str(group)
    if topic and not group:
        raw["topic"] = str(topic)
    where = f"group {group}" if group else f"a new group reading {topic}" if topic else "a group"
    return raw, f"Start a consumer in {where}"


def _configure(fields: Mapping[str, Any], timeline: Timeline) -> tuple[dict[str, Any], str]:
    """Only the settings that differ from the client's current ones."""
    sim = timeline.sim
    producer, consumer = fields.get("producer"), fields.get("consumer")
    processor = fields.get("processor")
    current: dict[str, Any]
    raw: dict[str, Any]
    keys: tuple[str, ...]
    if processor and processor in sim.processors:
        papp = sim.processors[processor]
        pspec = papp.reconfiguring or papp.spec
        current = {
            "isolation.level": pspec.consumer.isolation_level,
            MIF: str(pspec.producer.max_in_flight_requests_per_connection),
        }
        raw = {"do": "configure", "processor": processor}
        keys = PROCESSOR_SETTINGS
    elif producer and producer in sim.producers:
        app = sim.producers[producer]
        config = app.closing or app.config
        current = {
            "acks": config.acks_name,
            "enable.idempotence": "true" if config.enable_idempotence else "false",
            MIF: str(config.max_in_flight_requests_per_connection),
        }
        raw = {"do": "configure", "producer": producer}
        keys = PRODUCER_SETTINGS
    elif consumer and consumer in sim.consumers:
        capp = sim.consumers[consumer]
        spec = capp.reconfiguring or capp.spec
        current = {
            "isolation.level": spec.config.isolation_level,
            "commit": spec.commit,
            "sink": spec.sink,
        }
        raw = {"do": "configure", "consumer": consumer}
        keys = CONSUMER_SETTINGS
    else:
        who = processor or producer or consumer
        raise ExperimentError(f"Configure which application? There is no {who!r} in this run.")
    for key in keys:
        if key in fields and str(fields[key]) != current[key]:
            raw[key] = _typed(key, str(fields[key]))
    changes = {k: v for k, v in raw.items() if k in keys}
    name = processor or producer or consumer
    if not changes:
        now = ", ".join(f"{k}={v}" for k, v in current.items())
        raise ExperimentError(f"Nothing to change: {name} already has {now}.")
    text = ", ".join(f"{k}={str(v).lower()}" for k, v in changes.items())
    return raw, f"Configure {name}: {text}"


def _typed(key: str, value: str) -> Any:
    """A posted value as the step wants it (the engine checks it)."""
    if key == "acks":
        return int(value) if value in ("0", "1") else value
    if key == "enable.idempotence":
        return {"true": True, "false": False}.get(value, value)
    if key == MIF:
        return int(value) if value.isdigit() else value
    return value

"""Parsing the experiment steps, ``configure`` and ``start-consumer`` (docs/scenarios.md,
"Experiment steps"), against the scenario like any step.

What depends on the state of the run (the client's current settings, the consumers running)
is checked when the engine takes the command: broker/experiments.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from broker import scenario as sc
from broker.clients.consumer_app import COMMIT_STRATEGIES, SINK_MODES

MIF = "max.in.flight.requests.per.connection"
PRODUCER_SETTINGS = ("acks", "enable.idempotence", MIF)
CONSUMER_SETTINGS = ("isolation.level", "commit", "sink")
# A processor's consumer reads at an isolation level; its transactional producer has a limit
# on requests in flight (its acks and idempotence are fixed by transactions).
PROCESSOR_SETTINGS = ("isolation.level", MIF)
CLIENTS = ("producer", "consumer", "processor")
ISOLATION_LEVELS = ("read_uncommitted", "read_committed")
# The group a started consumer reads in when the scenario has no consumer group.
NEW_GROUP = "readers"
# Names the engine gives started consumers: c1, c2, ... (never a declared name).
AUTO_NAME = re.compile(r"c[1-9][0-9]{0,2}")
ACKS_NAMES = {-1: "all", 1: 1, 0: 0}
ACKS_VALUES: dict[object, int] = {"all": -1, 1: 1, 0: 0}


def parse_configure(table: Mapping[str, Any], path: str, ctx: sc.StepContext) -> dict[str, Any]:
    if sum(kind in table for kind in CLIENTS) != 1:
        raise sc.ScenarioError(
            path, "configure names one application: a producer, a consumer or a processor"
        )
    params: dict[str, Any]
    settings: tuple[str, ...]
    if "processor" in table:
        params = _parse_processor(table, path, ctx)
        settings = PROCESSOR_SETTINGS
    elif "producer" in table:
        name = sc.producer_ref(table, path, ctx)
        _not_for(table, path, CONSUMER_SETTINGS, f"producer {name}", PRODUCER_SETTINGS)
        params = {"producer": name}
        if "acks" in table:
            params["acks"] = ACKS_NAMES[sc.acks_of(table, path)]
        if "enable.idempotence" in table:
            params["enable.idempotence"] = sc.read_bool(table, "enable.idempotence", path, True)
        if MIF in table:
            params[MIF] = sc.read_int(table, MIF, path, None, 1, 100)
        # The conflicts within the command itself; those with the client's other settings
        # are checked when the engine takes it (new_producer_config).
        sc.resolve_idempotence(
            params.get("enable.idempotence"),
            sc.idempotence_conflicts(ACKS_VALUES[params.get("acks", "all")], 1, params.get(MIF, 1)),
            name in ctx.transactional,
            sc.join_path(path, "enable.idempotence"),
            sc.join_path(path, "producer"),
        )
        settings = PRODUCER_SETTINGS
    else:
        name = consumer_ref(table, path, ctx)
        _not_for(table, path, PRODUCER_SETTINGS, f"consumer {name}", CONSUMER_SETTINGS)
        params = {"consumer": name}
        if "isolation.level" in table:
            params["isolation.level"] = sc.read_str(
                table, "isolation.level", path, choices=ISOLATION_LEVELS
            )
        if "commit" in table:
            params["commit"] = sc.read_str(table, "commit", path, choices=COMMIT_STRATEGIES)
        if "sink" in table:
            params["sink"] = sc.read_str(table, "sink", path, choices=SINK_MODES)
        settings = CONSUMER_SETTINGS
    if len(params) == 1:
        raise sc.ScenarioError(
            path, f"nothing to configure: give at least one of {', '.join(settings)}"
        )
    return params


def _parse_processor(table: Mapping[str, Any], path: str, ctx: sc.StepContext) -> dict[str, Any]:
    name = sc.read_str(table, "processor", path)
    if name not in ctx.processors:
        declared = ", ".join(sorted(ctx.processors)) or "none"
        raise sc.ScenarioError(
            sc.join_path(path, "processor"), f"no processor {name!r} (declared: {declared})"
        )
    others = tuple(
        k for k in (*PRODUCER_SETTINGS, *CONSUMER_SETTINGS) if k not in PROCESSOR_SETTINGS
    )
    _not_for(table, path, others, f"processor {name}", PROCESSOR_SETTINGS)
    params: dict[str, Any] = {"processor": name}
    if "isolation.level" in table:
        params["isolation.level"] = sc.read_str(
            table, "isolation.level", path, choices=ISOLATION_LEVELS
        )
    if MIF in table:
        params[MIF] = sc.read_int(table, MIF, path, None, 1, 100)
        sc.resolve_idempotence(
            None,
            sc.idempotence_conflicts(-1, 1, params[MIF]),
            True,
            sc.join_path(path, MIF),
            sc.join_path(path, MIF),
        )
    return params


def _not_for(
    table: Mapping[str, Any], path: str, keys: tuple[str, ...], what: str, own: tuple[str, ...]
) -> None:
    for key in keys:
        if key in table:
            raise sc.ScenarioError(
                sc.join_path(path, key), f"not a setting of {what} (its settings: {', '.join(own)})"
            )


def consumer_ref(table: Mapping[str, Any], path: str, ctx: sc.StepContext) -> str:
    """A declared consumer, or a name the engine gives started consumers (``c2``): whether
    that one runs is the engine's to say."""
    name = sc.read_str(table, "consumer", path)
    if name not in ctx.consumers and not AUTO_NAME.fullmatch(name):
        declared = ", ".join(sorted(ctx.consumers)) or "none"
        raise sc.ScenarioError(
            sc.join_path(path, "consumer"), f"no consumer {name!r} (declared: {declared})"
        )
    return name


def parse_start_consumer(
    table: Mapping[str, Any], path: str, ctx: sc.StepContext
) -> dict[str, Any]:
    groups = ctx.consumer_groups
    default = next(iter(groups), NEW_GROUP)
    group = sc.valid_name(sc.read_str(table, "group", path, default), sc.join_path(path, "group"))
    if group in ctx.processor_groups:
        raise sc.ScenarioError(
            sc.join_path(path, "group"),
            f"{group!r} is a processor's group: start-consumer starts consumer applications",
        )
    params: dict[str, Any] = {"group": group}
    if group in groups:
        if "topic" in table:
            raise sc.ScenarioError(
                sc.join_path(path, "topic"),
                f"group {group!r} reads {', '.join(groups[group])}: a new member subscribes as "
                "its group does (topic is for a new group)",
            )
        return params
    topic = sc.read_str(
        table, "topic", path, next(iter(ctx.topics)) if len(ctx.topics) == 1 else None
    )
    if topic not in ctx.topics:
        raise sc.ScenarioError(sc.join_path(path, "topic"), f"no topic {topic!r}")
    params["topic"] = topic
    return params

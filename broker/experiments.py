"""Live experiments: the steps that change a running setup (docs/scenarios.md, "Experiment
steps").

- ``configure``: an application changes its client's settings. Kafka's clients take their
  config when they are constructed, so the application does what a real one must: it closes the
  client (a producer's ``close()`` completes its pending sends; a consumer leaves its group) and
  creates a new one with the new settings (a new producer id from ``InitProducerId`` when
  idempotent; the consumer rejoins and resumes from the committed offset).
- ``start-consumer``: one more consumer instance, in an existing group (a rebalance) or, where
  the scenario has none, reading a topic from the earliest offset in a new group.

Parsing here is static: against the scenario, like any step. What depends on the state of the
run (the client's current settings, the consumers running, the groups) is checked by the
functions below when the engine takes the command (``Simulation.check``), and refused with a
``ScenarioError`` that names the problem, before anything changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from broker import scenario as sc
from broker.clients.consumer_app import COMMIT_STRATEGIES, SINK_MODES, ConsumerSpec
from broker.clients.processor import ProcessorSpec
from broker.config import ConsumerConfig, ProducerConfig, TopicConfig
from broker.groups import OFFSETS_TOPIC

if TYPE_CHECKING:
    from broker.cluster import Cluster

MIF = "max.in.flight.requests.per.connection"
PRODUCER_SETTINGS = ("acks", "enable.idempotence", MIF)
CONSUMER_SETTINGS = ("isolation.level", "commit", "sink")
# A processor's consumer reads at an isolation level; its transactional producer has a limit
# on requests in flight (its acks and idempotence are fixed by transactions).
PROCESSOR_SETTINGS = ("isolation.level", MIF)
CLIENTS = ("producer", "consumer", "processor")
START_CONSUMER_KEYS = ("group", "topic")
ISOLATION_LEVELS = ("read_uncommitted", "read_committed")
# The group a started consumer reads in when the scenario has no consumer group.
NEW_GROUP = "readers"
# Names the engine gives started consumers: c1, c2, ... (never a declared name).
AUTO_NAME = re.compile(r"c[1-9][0-9]{0,2}")
ACKS_NAMES = {-1: "all", 1: 1, 0: 0}
ACKS_VALUES: dict[object, int] = {"all": -1, 1: 1, 0: 0}


# -- parsing (static, against the scenario) -------------------------------------------------
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


# -- the engine's side (against the state of the run) -----------------------------------------
def settings_text(config: ProducerConfig) -> str:
    return (
        f"acks={config.acks_name}, enable.idempotence={str(config.enable_idempotence).lower()}, "
        f"{MIF}={config.max_in_flight_requests_per_connection}"
    )


def consumer_settings_text(spec: ConsumerSpec) -> str:
    return f"isolation.level={spec.config.isolation_level}, commit={spec.commit}, sink={spec.sink}"


def new_producer_config(
    current: ProducerConfig, params: Mapping[str, Any], path: str = "command"
) -> ProducerConfig:
    """The client's settings after ``params`` (a parsed configure), or Kafka's ConfigException
    as a ``ScenarioError``. The application's properties are the old ones with the changes, so
    an ``enable.idempotence = true`` set earlier still holds."""
    acks = ACKS_VALUES[params["acks"]] if "acks" in params else current.acks
    in_flight = params.get(MIF, current.max_in_flight_requests_per_connection)
    conflicts = sc.idempotence_conflicts(acks, current.retries, in_flight)
    explicit = params.get("enable.idempotence")
    name = params["producer"]
    if explicit is None and current.idempotence_set:
        explicit = current.enable_idempotence
        if explicit and conflicts:
            key = "acks" if "acks" in params else MIF
            raise sc.ScenarioError(
                sc.join_path(path, key),
                f"{name} has enable.idempotence=true set, which Kafka refuses with this: "
                + "; ".join(conflicts)
                + " (set enable.idempotence to false in the same change)",
            )
    idempotent = sc.resolve_idempotence(
        explicit,
        conflicts,
        current.transactional_id is not None,
        sc.join_path(path, "enable.idempotence"),
        sc.join_path(path, "producer"),
    )
    return replace(
        current,
        acks=acks,
        max_in_flight_requests_per_connection=in_flight,
        enable_idempotence=idempotent,
        idempotence_set=explicit is not None,
    )


def new_consumer_spec(
    current: ConsumerSpec, params: Mapping[str, Any], path: str = "command"
) -> ConsumerSpec:
    """The application's settings after ``params`` (a parsed configure), or a refusal."""
    commit = params.get("commit", current.commit)
    if current.processing == "handoff" and commit not in ("auto", "none"):
        raise sc.ScenarioError(
            sc.join_path(path, "commit"),
            f"{current.name} hands its records to a worker: with commit = {commit!r} it would "
            "commit records its worker has not processed yet",
        )
    sink = params.get("sink", current.sink)
    config = replace(
        current.config,
        isolation_level=params.get("isolation.level", current.config.isolation_level),
        enable_auto_commit=commit == "auto",
    )
    return replace(
        current,
        config=config,
        commit=commit,
        sink=sink,
        restart_from=current.restart_from if sink == "offsets-with-output" else "stored",
    )


def new_processor_spec(
    current: ProcessorSpec, params: Mapping[str, Any], path: str = "command"
) -> ProcessorSpec:
    """A processor's settings after ``params`` (a parsed configure), or a refusal."""
    consumer = replace(
        current.consumer,
        isolation_level=params.get("isolation.level", current.consumer.isolation_level),
    )
    in_flight = {MIF: params[MIF]} if MIF in params else {}
    producer = new_producer_config(current.producer, {"producer": current.name, **in_flight}, path)
    return replace(current, consumer=consumer, producer=producer)


def processor_settings_text(spec: ProcessorSpec) -> str:
    return (
        f"isolation.level={spec.consumer.isolation_level}, "
        f"{MIF}={spec.producer.max_in_flight_requests_per_connection}"
    )


def next_consumer_name(taken: Iterable[str], consumers: int) -> str:
    """c1, c2, ...: the next free one, counting the consumers there are."""
    names = set(taken)
    n = consumers + 1
    while f"c{n}" in names:
        n += 1
    return f"c{n}"


def started_consumer_spec(
    name: str, params: Mapping[str, Any], running: Iterable[ConsumerSpec], now_ms: int
) -> ConsumerSpec:
    """A new instance: a copy of its group's first member's settings (commit mode, sink,
    config), or, for a new group, a consumer of ``topic`` from the earliest offset with Kafka's
    defaults (auto-commit)."""
    group = params["group"]
    member = next((c for c in running if c.config.group_id == group), None)
    topic = params.get("topic")
    if member is not None:
        if topic is not None and (topic,) != member.topics:
            raise sc.ScenarioError(
                "command.topic",
                f"group {group!r} reads {', '.join(member.topics)}: a new member subscribes "
                "as its group does",
            )
        return replace(member, name=name, start_ms=now_ms)
    if topic is None:
        raise sc.ScenarioError("command.topic", f"a new group {group!r} needs a topic to read")
    config = ConsumerConfig(group_id=group, auto_offset_reset="earliest")
    return ConsumerSpec(name=name, config=config, topics=(topic,), start_ms=now_ms)


def ensure_offsets_topic(cluster: Cluster) -> bool:
    """Create ``__consumer_offsets`` if the run has none yet, as Kafka does when the first
    group asks for its coordinator; its replicas are placed round robin on the brokers and led
    by the first live one. False when no broker is alive to lead it."""
    if any(tp.topic == OFFSETS_TOPIC for tp in cluster.controller.partitions):
        return True
    from broker.cluster import PartitionState
    from broker.protocol import TopicPartition

    brokers = cluster.config.brokers
    rf = min(cluster.config.offsets_topic_replication_factor, brokers)
    alive = [b for b, broker in sorted(cluster.brokers.items()) if broker.alive]
    if not alive:
        return False
    cluster.topics[OFFSETS_TOPIC] = TopicConfig(OFFSETS_TOPIC, cluster.offsets_partitions, rf, 1)
    for p in range(cluster.offsets_partitions):
        replicas = tuple((p + i) % brokers + 1 for i in range(rf))
        live = [b for b in replicas if b in alive] or [alive[0]]
        if live[0] not in replicas:
            replicas = (live[0], *replicas[:-1])
        state = PartitionState(TopicPartition(OFFSETS_TOPIC, p), replicas, 1, live[0], 0, live)
        cluster.controller.add_partition(state)
        for broker_id in replicas:
            cluster.brokers[broker_id].host(state.tp)
        cluster.brokers[live[0]].become_leader(state)
        for broker_id in live[1:]:
            cluster.brokers[broker_id].become_follower(state)
    cluster.events.emit(
        "controller",
        "topic.created",
        detail=f"{OFFSETS_TOPIC} created for the first consumer group ({rf} replica(s))",
    )
    return True

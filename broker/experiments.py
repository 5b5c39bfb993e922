"""Live experiments on a running engine: the ``configure`` and ``start-consumer`` commands
(docs/scenarios.md, "Experiment steps"; parsed in broker/experiment_steps.py).

- ``configure``: an application changes its client's settings. Kafka's clients take their
  config when they are constructed, so the application does what a real one must: it closes the
  client (a producer's ``close()`` completes its pending sends; a consumer leaves its group) and
  creates a new one with the new settings (a new producer id from ``InitProducerId`` when
  idempotent; the consumer rejoins and resumes from the committed offset).
- ``start-consumer``: one more consumer instance, in an existing group (a rebalance) or, where
  the scenario has none, reading a topic from the earliest offset in a new group.

What depends on the state of the run (the client's current settings, the consumers running,
the groups) is checked here when the engine takes a command (``Simulation.check``), and refused
with a ``ScenarioError`` that names the problem, before anything changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from broker import scenario as sc
from broker.clients.consumer_app import ConsumerApp, ConsumerSpec
from broker.clients.processor import ProcessorSpec
from broker.clients.transactional import TxnClientState
from broker.config import ConsumerConfig, ProducerConfig, TopicConfig
from broker.experiment_steps import ACKS_VALUES, MIF
from broker.groups import OFFSETS_TOPIC
from broker.sink import Sink

if TYPE_CHECKING:
    from broker.cluster import Cluster
    from broker.simulation import Simulation

Settings = ProducerConfig | ConsumerSpec | ProcessorSpec


# -- new settings ----------------------------------------------------------------------------
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


# -- on a running simulation ------------------------------------------------------------------
def configuration(sim: Simulation, params: Mapping[str, Any]) -> tuple[Settings, str]:
    """The new settings a configure gives its application, and the change in words; or a
    refusal (ScenarioError)."""
    if "producer" in params:
        app = sim.producers[params["producer"]]
        client = app.client
        if app.transactional and client is not None and client.txn is not None:
            state = client.txn.state
            ready = state in (TxnClientState.READY, TxnClientState.UNINITIALIZED)
            if app.busy_with_transaction or not ready:
                raise sc.ScenarioError(
                    "command.producer",
                    f"{app.name} is {state.value}: commit or abort its transaction (or let "
                    "initTransactions finish) before closing the producer",
                )
        config = new_producer_config(app.closing or app.config, params)
        return config, f"{settings_text(config)} (was {settings_text(app.config)})"
    if "processor" in params:
        processor = sim.processors[params["processor"]]
        new = new_processor_spec(processor.reconfiguring or processor.spec, params)
        before = processor_settings_text(processor.spec)
        return new, f"{processor_settings_text(new)} (was {before})"
    consumer = sim.consumers[params["consumer"]]
    spec = new_consumer_spec(consumer.reconfiguring or consumer.spec, params)
    before = consumer_settings_text(consumer.spec)
    return spec, f"{consumer_settings_text(spec)} (was {before})"


def new_consumer(sim: Simulation, params: Mapping[str, Any]) -> ConsumerSpec:
    """The settings of the consumer a start-consumer starts, or a refusal."""
    if len(sim.consumers) >= sc.MAX_CONSUMERS:
        raise sc.ScenarioError(
            "command", f"this run has {len(sim.consumers)} consumers, the most it may have"
        )
    if not any(b.alive for b in sim.cluster.brokers.values()):
        raise sc.ScenarioError("command", "no broker is alive to coordinate a group")
    taken = [*sim.producers, *sim.consumers, *sim.processors]
    name = next_consumer_name(taken, len(sim.consumers))
    running = [app.reconfiguring or app.spec for app in sim.consumers.values()]
    return started_consumer_spec(name, params, running, sim.now_ms)


def configure(sim: Simulation, params: Mapping[str, Any], at_start: bool = False) -> None:
    try:
        settings, change = configuration(sim, params)
    except sc.ScenarioError as exc:  # the state changed since the command was taken
        sim.events.emit("script", "command.refused", detail=exc.problem)
        return
    if isinstance(settings, ProducerConfig):
        sim.producers[params["producer"]].reconfigure(settings, change, at_start)
    elif isinstance(settings, ProcessorSpec):
        sim.processors[params["processor"]].reconfigure(settings, change, at_start)
    else:
        app = sim.consumers[params["consumer"]]
        _sink_for(sim, settings)
        app.reconfigure(settings, change, at_start)


def start_consumer(sim: Simulation, params: Mapping[str, Any]) -> None:
    try:
        spec = new_consumer(sim, params)
    except sc.ScenarioError as exc:
        sim.events.emit("script", "command.refused", detail=exc.problem)
        return
    ensure_offsets_topic(sim.cluster)
    _sink_for(sim, spec)
    app = ConsumerApp(spec, sim.cluster, sim.ledger, sim.sink)
    sim.consumers[spec.name] = app
    app.start()


def _sink_for(sim: Simulation, spec: ConsumerSpec) -> None:
    """A consumer that writes to the database needs one: created on first use."""
    if spec.sink != "none" and sim.sink is None:
        sim.sink = Sink("db")
        for app in sim.consumers.values():
            app.sink = sim.sink

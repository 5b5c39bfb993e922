"""Helpers for the consumer-side tests: small consumer scenarios as TOML, a bare client that
sends hand-made group requests, and look-ups in __consumer_offsets and the event stream."""

from __future__ import annotations

import json
from typing import Any

from broker.events import Event
from broker.groups import OFFSETS_TOPIC
from broker.network import Connection, Exchange
from broker.protocol import TopicPartition
from broker.scenario import load_text
from broker.simulation import Simulation

OFFSETS_0 = TopicPartition(OFFSETS_TOPIC, 0)

# One topic "orders", one producer "p1" (acks=all, no linger), a fixed 1 ms one-way latency and
# no initial rebalance delay, so that every time in a trace can be worked out by hand.
CONSUMER_TEMPLATE = """
semantics = "{semantics}"
duration_ms = {duration_ms}

[cluster]
brokers = {brokers}
latency_ms = {latency_ms}
"group.initial.rebalance.delay.ms" = 0
{cluster}

[[topics]]
name = "orders"
partitions = {partitions}
"replication.factor" = {rf}
{topic}
{extra_topics}

[[producers]]
name = "p1"
[producers.config]
acks = "all"
"linger.ms" = 0

{consumers}

{steps}
"""


def consumer(
    name: str,
    *,
    group: str = "billing",
    topics: tuple[str, ...] = ("orders",),
    commit: str = "auto",
    config: dict[str, Any] | None = None,
    **fields: Any,
) -> str:
    """One [[consumers]] table.  ``fields`` are its own keys (processing_ms, sink...);
    ``config`` its Kafka configs (session.timeout.ms defaults to 6000, heartbeats to 2000)."""
    settings: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 2000,
        **(config or {}),
    }
    lines = [
        "[[consumers]]",
        f'name = "{name}"',
        f'group = "{group}"',
        "topics = [" + ", ".join(f'"{t}"' for t in topics) + "]",
        f'commit = "{commit}"',
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    lines.append("[consumers.config]")
    lines += [f'"{key}" = {_toml(value)}' for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def step(at_ms: int, do: str, **params: Any) -> str:
    """One [[steps]] table."""
    lines = ["[[steps]]", f"at_ms = {at_ms}", f'do = "{do}"']
    lines += [f"{key} = {_toml(value)}" for key, value in params.items()]
    return "\n".join(lines) + "\n"


def produce(at_ms: int, count: int, interval_ms: int = 0, **params: Any) -> str:
    return step(
        at_ms,
        "produce",
        producer="p1",
        topic=params.pop("topic", "orders"),
        count=count,
        interval_ms=interval_ms,
        key="order-{i}",
        **params,
    )


def consumer_text(
    *consumers: str,
    steps: str = "",
    partitions: int = 1,
    brokers: int = 3,
    rf: int = 3,
    topic: str = "",
    extra_topics: str = "",
    cluster: str = "",
    latency_ms: int = 1,
    semantics: str = "at-least-once",
    duration_ms: int = 60_000,
    hold_ms: int | None = None,
) -> str:
    """``hold_ms`` adds a "note" step then, so the run cannot settle (and stop) before it."""
    if hold_ms is not None:
        steps += step(hold_ms, "note")
    return CONSUMER_TEMPLATE.format(
        semantics=semantics,
        duration_ms=duration_ms,
        brokers=brokers,
        latency_ms=latency_ms,
        cluster=cluster,
        partitions=partitions,
        rf=rf,
        topic=topic,
        extra_topics=extra_topics,
        consumers="\n".join(consumers),
        steps=steps,
    )


def consumer_sim(*consumers: str, seed: int | None = None, **kwargs: Any) -> Simulation:
    return Simulation(load_text(consumer_text(*consumers, **kwargs), "unit-test"), seed=seed)


def run_sim(*consumers: str, seed: int | None = None, **kwargs: Any) -> Simulation:
    sim = consumer_sim(*consumers, seed=seed, **kwargs)
    sim.run()
    return sim


def events_of(sim: Simulation, kind: str, actor: str | None = None) -> list[Event]:
    return [e for e in sim.events if e.kind == kind and (actor is None or e.actor == actor)]


def details(sim: Simulation, kind: str, actor: str | None = None) -> list[str]:
    return [e.detail for e in events_of(sim, kind, actor)]


def processed(sim: Simulation, message_id: str) -> list[tuple[str, str, int]]:
    """Who processed a message, in order: (consumer instance, partition, offset)."""
    return [(p.consumer, p.partition, p.offset) for p in sim.ledger.processing.get(message_id, [])]


def processed_offsets(sim: Simulation, consumer: str, partition: str = "orders-0") -> list[int]:
    """The offsets one consumer instance processed in ``partition``, in processing order."""
    done = [
        (p.time_ms, p.offset)
        for entries in sim.ledger.processing.values()
        for p in entries
        if p.consumer == consumer and p.partition == partition
    ]
    return [offset for _time, offset in sorted(done)]


def offsets_log(sim: Simulation, broker_id: int = 1) -> list[tuple[int, str, dict[str, Any]]]:
    """Every record of __consumer_offsets-0 on one broker: (offset, key, decoded value)."""
    log = sim.cluster.brokers[broker_id].replicas[OFFSETS_0].log
    out = []
    for offset, lb, i in log.records_below(log.log_end_offset):
        record = lb.batch.records[i]
        out.append((offset, record.key, json.loads(record.value)))
    return out


def group_state(sim: Simulation, group: str = "billing") -> dict[str, Any]:
    [state] = [g for g in sim.snapshot()["groups"] if g["group"] == group]
    return state


def consumer_state(sim: Simulation, name: str) -> dict[str, Any]:
    [state] = [c for c in sim.snapshot()["consumers"] if c["name"] == name]
    return state


class RawClient:
    """A bare client that sends hand-made requests into a simulation and keeps the answers."""

    def __init__(self, sim: Simulation, name: str = "tester") -> None:
        self.sim = sim
        self.name = name
        self.answers: list[Any] = []
        sim.network.register_client(name, self.on_response, self.on_disconnect)

    def on_response(self, exchange: Exchange, payload: Any) -> None:
        self.answers.append(payload)

    def on_disconnect(self, conn: Connection) -> None:
        self.answers.append("disconnected")

    def send(self, broker: int, request: Any, wait_ms: int = 20) -> None:
        self.sim.network.send_request(self.name, f"broker-{broker}", request)
        self.sim.run_until(self.sim.now_ms + wait_ms)

    def ask(self, broker: int, request: Any, wait_ms: int = 20) -> Any:
        """Send, wait, and return the one answer that came back."""
        before = len(self.answers)
        self.send(broker, request, wait_ms)
        [answer] = self.answers[before:]
        return answer

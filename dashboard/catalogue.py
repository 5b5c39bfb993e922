"""The home page's catalogue: the built-in scenarios grouped by the leg of a message's journey
they are about, in a suggested order.

The leg is read from what a scenario contains (a sink, processors, transactional producers,
consumers), never from a list of names, so a scenario file added to broker/scenarios/ lands in
its group without anyone editing this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# (key, heading, what the leg is about), in the order a message travels.
LEGS: tuple[tuple[str, str, str], ...] = (
    ("producer", "Producer \u2192 broker", "acks, retries, idempotence: what reaches the log"),
    ("topics", "Between topics", "transactions: writes that appear together, or not at all"),
    ("consumer", "Broker \u2192 consumer", "polls, commits, rebalances: what gets processed"),
    ("sink", "Consumer \u2192 external system", "a database beside Kafka: two commits, or one"),
)
SEMANTICS_ORDER = {"at-most-once": 0, "at-least-once": 1, "exactly-once": 2}
# Counts that show something going wrong when a scenario expects them above zero.
ANOMALIES = frozenset(
    {"lost", "duplicated", "reordered", "duplicated_in_sink", "aborted_reads", "unseen",
     "reprocessed"}
)  # fmt: skip


def leg_of(spec: Any) -> str:
    """Which leg a scenario is about: the furthest one its set-up reaches."""
    if spec.sink:
        return "sink"
    if spec.processors or any(p.config.transactional_id for p in spec.producers):
        return "topics"
    if spec.consumers:
        return "consumer"
    return "producer"


def shows_a_failure(spec: Any) -> bool:
    """The scenario expects an anomaly (a loss, a duplicate...) rather than its absence."""
    return any(key in ANOMALIES and not e.holds(0) for key, e in spec.expected.items())


def suggested_order(spec: Any) -> tuple[int, int, str]:
    """The weaker promise first, and within one the problem before its fix."""
    return (SEMANTICS_ORDER.get(spec.semantics, 3), 0 if shows_a_failure(spec) else 1, spec.name)


@dataclass
class Leg:
    key: str
    heading: str
    about: str
    scenarios: list[Any] = field(default_factory=list)


def grouped(scenarios: list[Any]) -> list[Leg]:
    """The legs that have scenarios, each sorted in the suggested order."""
    legs = {key: Leg(key, heading, about) for key, heading, about in LEGS}
    for spec in scenarios:
        legs[leg_of(spec)].scenarios.append(spec)
    for leg in legs.values():
        leg.scenarios.sort(key=suggested_order)
    return [leg for leg in legs.values() if leg.scenarios]

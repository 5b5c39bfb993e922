"""Helpers shared by the engine's unit tests: small simulations from TOML text,
hand-made records and batches, and event look-ups."""

from __future__ import annotations

from collections.abc import Iterable

from broker.events import Event
from broker.log import PartitionLog
from broker.protocol import TopicPartition
from broker.records import LogBatch, Record, RecordBatch
from broker.scenario import load_text, step_parser
from broker.simulation import Simulation

ORDERS_0 = TopicPartition("orders", 0)

# One topic "orders" and one producer "p1"; a fixed 1 ms one-way latency makes
# every time in a trace computable by hand.
SCENARIO_TEMPLATE = """
semantics = "{semantics}"
duration_ms = {duration_ms}

[cluster]
brokers = {brokers}
latency_ms = {latency_ms}
{cluster}

[[topics]]
name = "orders"
partitions = {partitions}
"replication.factor" = {rf}
"min.insync.replicas" = {min_isr}

[[producers]]
name = "p1"
{producer}
[producers.config]
{config}

{steps}
"""


def scenario_text(
    *,
    config: str = "",
    steps: str = "",
    cluster: str = "",
    producer: str = "",
    brokers: int = 3,
    rf: int = 3,
    min_isr: int = 1,
    partitions: int = 1,
    latency_ms: int = 1,
    semantics: str = "at-least-once",
    duration_ms: int = 600_000,
    hold_ms: int | None = None,
) -> str:
    """``hold_ms`` adds a "note" step then, so the run cannot end as settled
    before it (a settled run stops; tests that drive it by hand need it alive)."""
    if hold_ms is not None:
        steps += f'\n[[steps]]\nat_ms = {hold_ms}\ndo = "note"\n'
    return SCENARIO_TEMPLATE.format(
        semantics=semantics,
        duration_ms=duration_ms,
        brokers=brokers,
        latency_ms=latency_ms,
        cluster=cluster,
        partitions=partitions,
        rf=rf,
        min_isr=min_isr,
        producer=producer,
        config=config,
        steps=steps,
    )


def make_sim(text: str | None = None, seed: int | None = None, **kwargs: object) -> Simulation:
    """A Simulation from TOML text, or from ``scenario_text(**kwargs)``."""
    if text is None:
        text = scenario_text(**kwargs)  # type: ignore[arg-type]
    return Simulation(load_text(text, "unit-test"), seed=seed)


def events_of(sim: Simulation, kind: str, actor: str | None = None) -> list[Event]:
    return [e for e in sim.events if e.kind == kind and (actor is None or e.actor == actor)]


def kinds(sim: Simulation, wanted: Iterable[str]) -> list[str]:
    """The kinds of the events in ``wanted``, in the order they happened."""
    wanted = set(wanted)
    return [e.kind for e in sim.events if e.kind in wanted]


def log_of(sim: Simulation, broker_id: int, tp: TopicPartition = ORDERS_0) -> PartitionLog:
    return sim.cluster.brokers[broker_id].replicas[tp].log


def cursors(log: PartitionLog) -> tuple[int, int, int]:
    """(log start offset, high watermark, log end offset)."""
    return log.log_start_offset, log.high_watermark, log.log_end_offset


def message_ids(log: PartitionLog) -> list[tuple[int, str]]:
    return [(offset, lb.batch.records[i].message_id) for offset, lb, i in log.records_below(10**9)]


def records(*ids: str) -> tuple[Record, ...]:
    return tuple(Record(i, None, f"v-{i}") for i in ids)


def batch(
    *ids: str,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> RecordBatch:
    return RecordBatch(records(*ids), producer_id, producer_epoch, base_sequence)


def idem(producer_id: int, epoch: int, first_seq: int, count: int = 1) -> RecordBatch:
    """An idempotent batch of ``count`` records with sequences from ``first_seq``."""
    ids = [f"pid{producer_id}-e{epoch}-s{first_seq + i}" for i in range(count)]
    return batch(*ids, producer_id=producer_id, producer_epoch=epoch, base_sequence=first_seq)


def log_batch(base_offset: int, leader_epoch: int, *ids: str) -> LogBatch:
    return LogBatch(base_offset, leader_epoch, batch(*ids))


def submit(sim: Simulation, **raw: object) -> None:
    """Validate a command as the dashboard would, then apply it at the next event."""
    sim.submit(step_parser(sim.spec)(raw, "command", sim.now_ms))


def step(at_ms: int, do: str, **params: object) -> str:
    """One [[steps]] table of TOML."""
    lines = [f"at_ms = {at_ms}", f'do = "{do}"']
    for key, value in params.items():
        lines.append(f"{key} = {value!r}".replace("'", '"'))
    return "\n[[steps]]\n" + "\n".join(lines) + "\n"

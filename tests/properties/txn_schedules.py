"""Random transaction schedules as scenario TOML, and a runner that watches transactions.

Two shapes, both on a 3-broker cluster (replication factor 3, min.insync.replicas 2) whose
transaction coordinator is the leader of ``__transaction_state-0`` (one partition):

- ``pipeline_schedules``: p1 (idempotent, not transactional) writes N orders; one or two
  processors of group ``enricher`` read them (read_committed) and write ``enriched`` in
  transactions that carry their input offsets (exactly_once_v2); a read_committed
  ``downstream`` consumer (commit after processing) reads ``enriched``.  Faults in a window:
  crash-processor (now, or armed at after-produce / after-offsets / after-commit),
  restart-processor, stall-processor within or past session.timeout.ms, crash-broker and
  restart-broker.  The downstream consumer is never hurt.
- ``txn_producer_schedules``: p1 has a transactional.id and runs a script of transactions
  (begin, produce to 1-3 partitions, commit / abort / nothing); faults: crash-producer,
  restart-producer, crash-broker, restart-broker, disconnect.  A read_committed ``reader``
  (commit after processing) reads ``orders``.

Then the final heal: ``heal``, ``restart-broker`` for every broker and (pipelines)
``restart-processor`` for every processor, twice, because an armed crash can fire after the
first restart; (producers) crash-producer + restart-producer, so a fenced zombie is
replaced too, then one last transaction that must commit.

The scenario format refuses ``broker = "leader:__transaction_state-0"`` (a broker reference
names a partition of a declared topic only), so the broker faults pick a broker id; the
runner notes when the one crashed was the coordinator at the time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from consumer_schedules import CHECK_EVERY
from fault_schedules import check_invariants
from hypothesis import event
from hypothesis import strategies as st

from broker.clients.app import ProducerApp
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.scenario import ScenarioSpec, load_text
from broker.simulation import Simulation
from broker.transactions import TRANSACTION_STATE_TOPIC

INPUT = "orders"
OUTPUT = "enriched"
PRODUCER = "p1"
PROCESSORS = ("e1", "e2")
PROCESSOR_GROUP = "enricher"
DOWNSTREAM = "downstream"
READER = "reader"
BROKERS = (1, 2, 3)
COORDINATOR_TP = TopicPartition(TRANSACTION_STATE_TOPIC, 0)

FAULT_WINDOW_MS = 8_000
MAX_SESSION_MS = 6_000
MAX_STALL_PAST_SESSION_MS = 3_000
STALL_MARGIN_MS = 100
ARMED_POINTS = ("after-produce", "after-offsets", "after-commit")
# The final heal (see the module docstring): after everything in the window is over, and
# again once an armed crash that fired after the first restart has had time to do so.
FIRST_RESTART_MS = FAULT_WINDOW_MS + MAX_SESSION_MS + MAX_STALL_PAST_SESSION_MS + 2_000
SECOND_RESTART_MS = FIRST_RESTART_MS + 12_000
# ``run()`` stops as soon as the run has settled; this only costs time when something is stuck.
RECOVERY_MS = 60_000
TRACE_WINDOW = 40
SETTLE_GUARD_MS = 5_000
FINAL_KEY = "final-{i}"


# -- rendering -------------------------------------------------------------------------------
def _key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else f'"{key}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"cannot render {value!r}")


def _table(header: str, items: dict[str, Any]) -> list[str]:
    return ["", header, *(f"{_key(k)} = {_value(v)}" for k, v in items.items())]


def _topic(name: str, partitions: int) -> list[str]:
    return _table(
        "[[topics]]",
        {
            "name": name,
            "partitions": partitions,
            "replication.factor": 3,
            "min.insync.replicas": 2,
        },
    )


@dataclass(frozen=True)
class TxnSchedule:
    """One generated scenario: the parts of a scenario file that vary."""

    kind: str  # "pipeline" | "producer"
    seed: int
    cluster: dict[str, Any]
    input_partitions: int
    producer: dict[str, Any]  # p1's [producers.config]
    processors: tuple[dict[str, Any], ...]
    consumer: dict[str, Any]  # the downstream / reader consumer
    steps: tuple[dict[str, Any], ...]
    duration_ms: int
    heal_ms: int
    inputs: int = 0  # records p1 writes (pipelines)

    def toml(self) -> str:
        lines = [
            f'name = "txn-{self.kind}-property"',
            'semantics = "exactly-once"',
            f"seed = {self.seed}",
            f"duration_ms = {self.duration_ms}",
            *_table("[cluster]", self.cluster),
            *_topic(INPUT, self.input_partitions),
        ]
        if self.processors:
            lines += _topic(OUTPUT, 1)
        lines += _table("[[producers]]", {"name": PRODUCER})
        lines += _table("[producers.config]", self.producer)[1:]
        for processor in self.processors:
            plain = {k: v for k, v in processor.items() if k not in ("consumer", "producer")}
            lines += _table("[[processors]]", plain)
            lines += _table("[processors.consumer]", processor["consumer"])[1:]
            lines += _table("[processors.producer]", processor["producer"])[1:]
        plain = {k: v for k, v in self.consumer.items() if k != "config"}
        lines += _table("[[consumers]]", plain)
        lines += _table("[consumers.config]", self.consumer["config"])[1:]
        for step in self.steps:
            lines += _table("[[steps]]", step)
        return "\n".join(lines) + "\n"

    def spec(self) -> ScenarioSpec:
        return load_text(self.toml(), f"txn-{self.kind}-property")

    @property
    def actions(self) -> Counter[str]:
        return Counter(step["do"] for step in self.steps)


# -- strategies --------------------------------------------------------------------------------
def _cluster(draw: st.DrawFn) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "brokers": 3,
        "group.initial.rebalance.delay.ms": 0,
        "broker.session.timeout.ms": draw(st.integers(1_000, 3_000)),
        "replica.lag.time.max.ms": draw(st.sampled_from([1_000, 3_000, 10_000])),
        "replica.socket.timeout.ms": draw(st.sampled_from([1_000, 3_000])),
    }
    latency = draw(st.sampled_from([None, None, 1, 5, 20]))
    if latency is not None:
        cluster["latency_ms"] = latency
    return cluster


def _txn_producer_config(draw: st.DrawFn, short_timeouts: bool = True) -> dict[str, Any]:
    """A transactional producer's configs; transaction.timeout.ms a few seconds sometimes."""
    config: dict[str, Any] = {
        "linger.ms": draw(st.sampled_from([0, 0, 5])),
        "request.timeout.ms": draw(st.integers(1_000, 3_000)),
    }
    if short_timeouts and draw(st.integers(0, 3)) == 0:
        config["transaction.timeout.ms"] = draw(st.integers(2_000, 6_000))
    return config


@st.composite
def _broker_fault(draw: st.DrawFn, at: int) -> list[dict[str, Any]]:
    broker = draw(st.sampled_from(BROKERS))
    steps: list[dict[str, Any]] = [{"at_ms": at, "do": "crash-broker", "broker": broker}]
    if draw(st.booleans()):
        steps.append(
            {"at_ms": at + draw(st.integers(0, 5_000)), "do": "restart-broker", "broker": broker}
        )
    return steps


def _near(busy: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Anywhere in the window, or (more often) shortly after work starts."""
    near = st.tuples(st.sampled_from(busy), st.integers(0, 800)).map(sum)
    near = near.map(lambda t: min(t, FAULT_WINDOW_MS))
    return st.one_of(st.integers(0, FAULT_WINDOW_MS), near, near)


@st.composite
def _processor(draw: st.DrawFn, name: str, short_timeouts: bool) -> dict[str, Any]:
    session = draw(st.integers(2_000, MAX_SESSION_MS))
    return {
        "name": name,
        "group": PROCESSOR_GROUP,
        "input": INPUT,
        "output": OUTPUT,
        "processing_ms": draw(st.sampled_from([0, 10, 20, 50])),
        "start_ms": 0 if name == PROCESSORS[0] else draw(st.sampled_from([0, 0, 500, 2_000])),
        "consumer": {
            "auto.offset.reset": "earliest",
            "session.timeout.ms": session,
            "heartbeat.interval.ms": draw(st.integers(100, session // 3)),
            "max.poll.records": draw(st.integers(1, 5)),
        },
        "producer": _txn_producer_config(draw, short_timeouts),
    }


@st.composite
def _processor_fault(
    draw: st.DrawFn, processor: dict[str, Any], busy: tuple[int, ...]
) -> list[dict[str, Any]]:
    name = processor["name"]
    session = processor["consumer"]["session.timeout.ms"]
    heartbeat = processor["consumer"]["heartbeat.interval.ms"]
    at = draw(_near(busy))
    kind = draw(
        st.sampled_from(["now", "armed", "armed", "armed", "stall-within", "stall-past", "restart"])
    )
    if kind == "restart":
        return [{"at_ms": at, "do": "restart-processor", "processor": name}]
    if kind.startswith("stall"):
        if kind == "stall-within":
            duration = draw(st.integers(1, max(1, session - heartbeat - STALL_MARGIN_MS)))
        else:
            duration = session + draw(st.integers(500, MAX_STALL_PAST_SESSION_MS))
        return [{"at_ms": at, "do": "stall-processor", "processor": name, "duration_ms": duration}]
    point = "now"
    if kind == "armed":
        # Armed before the work it waits for, or it may never fire.
        at = draw(st.one_of(st.just(0), st.sampled_from(busy), st.just(at)))
        point = draw(st.sampled_from(ARMED_POINTS))
    steps: list[dict[str, Any]] = [
        {"at_ms": at, "do": "crash-processor", "processor": name, "at": point}
    ]
    if draw(st.booleans()):
        steps.append(
            {
                "at_ms": at + draw(st.integers(0, 6_000)),
                "do": "restart-processor",
                "processor": name,
            }
        )
    return steps


@st.composite
def _input_produces(draw: st.DrawFn, partitions: int, total: int) -> list[dict[str, Any]]:
    """``total`` orders: one to each partition first, the rest in 1-2 produce steps."""
    steps: list[dict[str, Any]] = [
        {
            "at_ms": draw(st.integers(0, FAULT_WINDOW_MS // 2)),
            "do": "produce",
            "producer": PRODUCER,
            "topic": INPUT,
            "count": 1,
            "partition": p,
            "key": f"first{p}-{{i}}",
        }
        for p in range(partitions)
    ]
    rest = total - partitions
    parts = draw(st.integers(1, 2))
    counts = [rest // parts + (1 if i < rest % parts else 0) for i in range(parts)]
    for count in (c for c in counts if c > 0):
        step: dict[str, Any] = {
            "at_ms": draw(st.integers(0, FAULT_WINDOW_MS // 2)),
            "do": "produce",
            "producer": PRODUCER,
            "topic": INPUT,
            "count": count,
            "interval_ms": draw(st.sampled_from([0, 5, 20, 100])),
        }
        if draw(st.booleans()):
            step["key"] = "order-{i}"
        else:
            step["partition"] = draw(st.integers(0, partitions - 1))
        steps.append(step)
    return steps


@st.composite
def pipeline_schedules(draw: st.DrawFn, *, short_txn_timeouts: bool = False) -> TxnSchedule:
    """Read-process-write with processor and broker faults, then the final heal.

    ``short_txn_timeouts`` gives some processors a transaction.timeout.ms of a few seconds,
    so the coordinator aborts their transactions; it is off by default because of two
    engine bugs in test_txn_regressions.py (the processor's sendOffsetsToTransaction in
    FATAL_ERROR, and offsets left pending forever when the abort marker overtakes them).
    """
    partitions = draw(st.integers(1, 2))
    total = draw(st.integers(3, 20))
    processors = tuple(
        draw(_processor(name, short_txn_timeouts))
        for name in PROCESSORS[: draw(st.sampled_from([1, 2, 2]))]
    )
    produces = draw(_input_produces(partitions, total))
    busy = tuple(sorted({step["at_ms"] for step in produces}))
    groups = draw(
        st.lists(
            st.one_of(
                st.sampled_from(processors).flatmap(lambda p: _processor_fault(p, busy)),
                st.sampled_from(processors).flatmap(lambda p: _processor_fault(p, busy)),
                _near(busy).flatmap(_broker_fault),
            ),
            min_size=1,
            max_size=5,
        )
    )
    faults = [step for group in groups for step in group]
    final: list[dict[str, Any]] = [{"at_ms": FIRST_RESTART_MS, "do": "heal"}]
    final += [{"at_ms": FIRST_RESTART_MS, "do": "restart-broker", "broker": b} for b in BROKERS]
    for at in (FIRST_RESTART_MS, SECOND_RESTART_MS):
        final += [
            {"at_ms": at, "do": "restart-processor", "processor": p["name"]} for p in processors
        ]
    final.append(_settle_guard(SECOND_RESTART_MS))
    steps = sorted(produces + faults, key=lambda s: s["at_ms"]) + final
    return TxnSchedule(
        kind="pipeline",
        seed=draw(st.integers(0, 2**32 - 1)),
        cluster=_cluster(draw),
        input_partitions=partitions,
        producer={
            "acks": "all",
            "linger.ms": draw(st.sampled_from([0, 5])),
            "request.timeout.ms": draw(st.integers(1_000, 3_000)),
        },
        processors=processors,
        consumer={
            "name": DOWNSTREAM,
            "group": DOWNSTREAM,
            "topics": [OUTPUT],
            "commit": "after-processing",
            "processing_ms": 0,
            "config": {
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 6_000,
                "heartbeat.interval.ms": 2_000,
            },
        },
        steps=tuple(steps),
        duration_ms=SECOND_RESTART_MS + SETTLE_GUARD_MS + RECOVERY_MS,
        heal_ms=FIRST_RESTART_MS,
        inputs=total,
    )


def _settle_guard(last_ms: int) -> dict[str, Any]:
    """A ``note`` step some seconds after the last real one: a run cannot settle while a step
    is due, and Simulation.settled() does not wait for the coordinator's markers (the engine
    bug in test_txn_regressions.py), so without it a run could be judged in the moment
    between a commit's EndTxn response and its COMMIT markers."""
    return {"at_ms": last_ms + SETTLE_GUARD_MS, "do": "note"}


@st.composite
def _transaction(draw: st.DrawFn, at: int, partitions: int, n: int) -> list[dict[str, Any]]:
    """begin, 1-3 produce steps, then commit, abort, or (rarely) nothing."""
    steps: list[dict[str, Any]] = [{"at_ms": at, "do": "begin-transaction", "producer": PRODUCER}]
    t = at
    for _ in range(draw(st.integers(1, 3))):
        t += draw(st.sampled_from([0, 0, 10, 100, 400]))
        step: dict[str, Any] = {
            "at_ms": t,
            "do": "produce",
            "producer": PRODUCER,
            "topic": INPUT,
            "count": draw(st.integers(1, 4)),
            "key": f"t{n}-{{i}}",
        }
        if draw(st.booleans()):
            step["partition"] = draw(st.integers(0, partitions - 1))
        steps.append(step)
    t += draw(st.integers(0, 1_500))
    end = draw(st.sampled_from(["commit"] * 6 + ["abort"] * 3 + ["none"]))
    if end != "none":
        steps.append({"at_ms": t, "do": f"{end}-transaction", "producer": PRODUCER})
    return steps


@st.composite
def txn_producer_schedules(draw: st.DrawFn) -> TxnSchedule:
    """A transactional producer's script with producer and broker faults, then the final
    heal and one last transaction that must commit."""
    partitions = draw(st.integers(1, 3))
    txns: list[dict[str, Any]] = []
    at = draw(st.integers(0, 500))
    for n in range(draw(st.integers(2, 6))):
        steps = draw(_transaction(at, partitions, n))
        txns += steps
        at = steps[-1]["at_ms"] + draw(st.integers(0, 1_500))
        if at > FAULT_WINDOW_MS:
            break
    busy = tuple(sorted({s["at_ms"] for s in txns}))
    faults: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(
            st.sampled_from(["crash", "crash", "restart", "broker", "broker", "disconnect"])
        )
        t = draw(_near(busy))
        if kind == "crash":
            faults.append({"at_ms": t, "do": "crash-producer", "producer": PRODUCER})
            if draw(st.booleans()):
                restart = t + draw(st.integers(0, 3_000))
                faults.append({"at_ms": restart, "do": "restart-producer", "producer": PRODUCER})
        elif kind == "restart":
            faults.append({"at_ms": t, "do": "restart-producer", "producer": PRODUCER})
        elif kind == "broker":
            faults += draw(_broker_fault(t))
        else:
            faults.append({"at_ms": t, "do": "disconnect", "client": PRODUCER})
    heal = FAULT_WINDOW_MS + 8_000 + draw(st.integers(0, 2_000))
    final: list[dict[str, Any]] = [{"at_ms": heal, "do": "heal"}]
    final += [{"at_ms": heal, "do": "restart-broker", "broker": b} for b in BROKERS]
    final += [
        {"at_ms": heal, "do": "crash-producer", "producer": PRODUCER},
        {"at_ms": heal, "do": "restart-producer", "producer": PRODUCER},
        {"at_ms": heal + 1_000, "do": "begin-transaction", "producer": PRODUCER},
    ]
    # One record to every partition: a partition the reader never gets a record from keeps
    # it from being idle (the engine bug in test_consumer_regressions.py).
    final += [
        {
            "at_ms": heal + 1_000,
            "do": "produce",
            "producer": PRODUCER,
            "topic": INPUT,
            "count": 1,
            "partition": p,
            "key": FINAL_KEY,
        }
        for p in range(partitions)
    ]
    final.append({"at_ms": heal + 1_500, "do": "commit-transaction", "producer": PRODUCER})
    final.append(_settle_guard(heal + 1_500))
    steps = sorted(txns + faults, key=lambda s: s["at_ms"]) + final
    producer = {"acks": "all", "transactional.id": "p1-tx", **_txn_producer_config(draw)}
    return TxnSchedule(
        kind="producer",
        seed=draw(st.integers(0, 2**32 - 1)),
        cluster=_cluster(draw),
        input_partitions=partitions,
        producer=producer,
        processors=(),
        consumer={
            "name": READER,
            "group": "billing",
            "topics": [INPUT],
            "commit": "after-processing",
            "processing_ms": 0,
            "config": {
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "session.timeout.ms": 6_000,
                "heartbeat.interval.ms": 2_000,
            },
        },
        steps=tuple(steps),
        duration_ms=heal + SETTLE_GUARD_MS + RECOVERY_MS,
        heal_ms=heal,
    )


# -- watching transactions -------------------------------------------------------------------
@dataclass
class TxnWatch:
    """The transactions of a transactional ProducerApp, as the application knows them.

    ``committed`` and ``aborted`` hold the message ids of each transaction the application
    was told ended (a fenced application's open transaction counts as aborted, as it marks
    it in the ledger); ``in_doubt`` those of each transaction open when it crashed (the
    coordinator aborts it, or commits it when EndTxn(commit) had already gone out)."""

    committed: list[frozenset[str]] = field(default_factory=list)
    aborted: list[frozenset[str]] = field(default_factory=list)
    in_doubt: list[frozenset[str]] = field(default_factory=list)
    coordinator_crashes: int = 0

    def attach(self, app: ProducerApp) -> None:
        # Instance attributes shadow the methods: ``partial(self._ended, ...)`` and
        # ``self.crash()`` look them up at call time.
        ended, crash, fenced = app._ended, app.crash, app._fenced

        @wraps(ended)
        def _ended(client: Any, commit: bool, error: ErrorCode) -> None:
            ids = frozenset(app._txn_ids)
            current = client is app.client
            ended(client, commit, error)
            if current and error is ErrorCode.NONE and ids:
                (self.committed if commit else self.aborted).append(ids)

        @wraps(crash)
        def _crash() -> None:
            if app.client is not None and app._txn_ids:
                self.in_doubt.append(frozenset(app._txn_ids))
            crash()

        @wraps(fenced)
        def _fenced(error: ErrorCode) -> None:
            if app._txn_ids:
                self.aborted.append(frozenset(app._txn_ids))
            fenced(error)

        app._ended = _ended  # type: ignore[method-assign]
        app.crash = _crash  # type: ignore[method-assign]
        app._fenced = _fenced  # type: ignore[method-assign]

    @property
    def groups(self) -> Iterable[tuple[str, frozenset[str]]]:
        for outcome, groups in (
            ("committed", self.committed),
            ("aborted", self.aborted),
            ("in doubt", self.in_doubt),
        ):
            for ids in groups:
                yield outcome, ids


def _coordinator(sim: Simulation) -> int | None:
    return sim.cluster.controller.partitions[COORDINATOR_TP].leader


def run_watched(
    spec: ScenarioSpec, *, every_step: bool = False, seed: int | None = None
) -> tuple[Simulation, TxnWatch]:
    """Run to the end with the engine invariants checked after each step that emitted an
    event (every state change does) and every CHECK_EVERY-th step, or after literally
    every step with ``every_step``; count crashes of the transaction coordinator."""
    sim = Simulation(spec, seed)
    watch = TxnWatch()
    for app in sim.producers.values():
        if app.transactional:
            watch.attach(app)
    check_invariants(sim)
    checked_seq = sim.events.next_seq
    steps = 0
    coordinator = _coordinator(sim)
    while True:
        if coordinator is not None and sim.cluster.brokers[coordinator].alive:
            before = coordinator
        else:
            before = None
        if not sim.step():
            break
        steps += 1
        if before is not None and not sim.cluster.brokers[before].alive:
            watch.coordinator_crashes += 1
        coordinator = _coordinator(sim)
        if every_step or sim.events.next_seq != checked_seq or steps % CHECK_EVERY == 0:
            checked_seq = sim.events.next_seq
            check_invariants(sim)
    check_invariants(sim)
    return sim, watch


def trace_tail(sim: Simulation, n: int = TRACE_WINDOW) -> str:
    return "\n".join(sim.trace(include_quiet=True)[-n:])


@dataclass
class TxnStats:
    """What the schedules did, summed over the examples of one property; a property whose
    schedules never crashed or aborted anything proves nothing (``assert_faults_bit``)."""

    examples: int = 0
    counts: Counter[str] = field(default_factory=Counter)  # examples with each effect

    def add(self, sim: Simulation, watch: TxnWatch) -> None:
        self.examples += 1
        events = list(sim.events)
        kinds = Counter(e.kind for e in events)
        states = [e.detail for e in events if e.kind == "txn.state"]
        crash_details = [e.detail for e in events if e.kind == "app.crash"]
        flags = {
            "app crashed": kinds["app.crash"] > 0,
            "armed crash fired": any(d.startswith("crashed after") for d in crash_details),
            "PrepareAbort": any("-> PrepareAbort" in (d or "") for d in states),
            "PrepareCommit": any("-> PrepareCommit" in (d or "") for d in states),
            "epoch fence": any("-> PrepareEpochFence" in (d or "") for d in states),
            "txn timeout": kinds["txn.timeout"] > 0,
            "fenced": kinds["app.fenced"] > 0,
            "stalled": kinds["app.stall"] > 0,
            "member expired": kinds["group.member-expired"] > 0,
            "broker crashed": kinds["broker.crash"] > 0,
            "coordinator crashed": watch.coordinator_crashes > 0,
            "coordinator moved": kinds["txn.loaded"] > 0,
            "aborted data in log": any(sim.aborted_data().values()),
            "in-doubt transaction": bool(watch.in_doubt),
            "app aborted": bool(watch.aborted) or kinds["processor.abort"] > 0,
        }
        for name, hit in flags.items():
            if hit:
                self.counts[name] += 1
                event(f"txn effect: {name}")

    def at_least(self, name: str, share: float) -> None:
        assert self.counts[name] >= max(1, int(self.examples * share)), (name, self)

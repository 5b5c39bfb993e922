"""Random fault schedules as scenario TOML, and a runner that checks invariants at every event.

A schedule is a whole scenario file: a 3-broker cluster, one topic (replication factor 3,
min.insync.replicas 2), one producer, a timed script of produces and faults inside a fault
window, then a final heal: a ``heal`` step and ``restart-broker`` for every broker (and
``restart-producer``) late enough that everything can recover (Jepsen's "final heal").
Schedules are rendered to TOML and parsed by ``broker.scenario.load_text``, so a shrunk
counterexample is a file one can paste into a regression test or run with
``python -m broker run FILE --trace``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hypothesis import event, target
from hypothesis import strategies as st

from broker.invariants import violations
from broker.scenario import ScenarioSpec, load_text
from broker.simulation import Simulation

TOPIC = "orders"
PRODUCER = "p1"
BROKERS = (1, 2, 3)
FAULT_WINDOW_MS = 12_000
MAX_DELAY_MS = 4_000
MAX_MESSAGES = 60
# After the final heal: enough for the longest timeouts (request, session, replica socket,
# retry back-off) to run out and for everything to replicate; ``run()`` stops as soon as the
# run has settled, so this only costs time when something is stuck.
RECOVERY_MS = 150_000

TRACE_WINDOW = 40


@dataclass(frozen=True)
class Schedule:
    """One generated scenario: the parts of a scenario file that vary."""

    seed: int
    semantics: str
    cluster: dict[str, Any]
    partitions: int
    producer_config: dict[str, Any]
    steps: tuple[dict[str, Any], ...]
    duration_ms: int
    notes: tuple[str, ...] = field(default=())

    def toml(self) -> str:
        lines = [
            'name = "property"',
            f"semantics = {_value(self.semantics)}",
            f"seed = {self.seed}",
            f"duration_ms = {self.duration_ms}",
            "",
            "[cluster]",
            *(f"{_key(k)} = {_value(v)}" for k, v in self.cluster.items()),
            "",
            "[[topics]]",
            f'name = "{TOPIC}"',
            f"partitions = {self.partitions}",
            '"replication.factor" = 3',
            '"min.insync.replicas" = 2',
            "",
            "[[producers]]",
            f'name = "{PRODUCER}"',
            "[producers.config]",
            *(f"{_key(k)} = {_value(v)}" for k, v in self.producer_config.items()),
        ]
        for step in self.steps:
            lines += ["", "[[steps]]", *(f"{_key(k)} = {_value(v)}" for k, v in step.items())]
        return "\n".join(lines) + "\n"

    def spec(self) -> ScenarioSpec:
        return load_text(self.toml(), "property")

    @property
    def actions(self) -> Counter[str]:
        return Counter(step["do"] for step in self.steps)


def _key(key: str) -> str:
    return key if key.replace("_", "").isalnum() else f'"{key}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise TypeError(f"cannot render {value!r}")


# -- strategies ----------------------------------------------------------------------------
times = st.integers(0, FAULT_WINDOW_MS)
PROBABILITIES = (0.05, 0.1, 0.2, 0.3, 0.5)
probabilities = st.sampled_from(PROBABILITIES)


def _broker_refs(partitions: int) -> st.SearchStrategy[int | str]:
    return st.one_of(
        st.sampled_from(BROKERS),
        st.integers(0, partitions - 1).map(lambda p: f"leader:{TOPIC}-{p}"),
    )


@st.composite
def _produce(draw: st.DrawFn, partitions: int) -> dict[str, Any]:
    step: dict[str, Any] = {
        "at_ms": draw(times),
        "do": "produce",
        "producer": PRODUCER,
        "topic": TOPIC,
        "count": draw(st.integers(1, 20)),
        "interval_ms": draw(st.sampled_from([0, 1, 5, 20, 100])),
    }
    routing = draw(st.sampled_from(["key", "partition", "sticky"]))
    if routing == "key":
        step["key"] = "k{i}"
    elif routing == "partition":
        step["partition"] = draw(st.integers(0, partitions - 1))
    return step


@st.composite
def _network_fault(draw: st.DrawFn, partitions: int) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "drop-request",
                "drop-response",
                "delay-request",
                "delay-response",
                "error-response",
                "disconnect-request",  # the connection drops with the request (issue 12)
                "disconnect-response",  # ... or as the broker answers
            ]
        )
    )
    step: dict[str, Any] = {"at_ms": draw(times), "do": kind}
    api = draw(st.sampled_from(["Produce", "Produce", "Fetch", "InitProducerId", None]))
    if api is not None:
        step["api"] = api
    if api in ("Produce", "Fetch") and draw(st.booleans()):
        step["partition"] = f"{TOPIC}-{draw(st.integers(0, partitions - 1))}"
    if draw(st.booleans()):
        step["broker"] = draw(_broker_refs(partitions))
    if kind == "error-response":
        # Brokers honour an injected error only on Produce (the format refuses others).
        if step.get("api") not in (None, "Produce"):
            step["api"] = "Produce"
            step.pop("partition", None)
        step["error"] = draw(
            st.sampled_from(
                [
                    "NOT_LEADER_OR_FOLLOWER",
                    "REQUEST_TIMED_OUT",
                    "NOT_ENOUGH_REPLICAS",
                    "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
                    "KAFKA_STORAGE_ERROR",
                ]
            )
        )
    if kind.startswith("delay-"):
        step["delay_ms"] = draw(st.integers(1, MAX_DELAY_MS))
    how = draw(st.sampled_from(["nth", "nth", "every", "random"]))
    if how == "nth":
        step["nth"] = draw(st.integers(1, 8))
        step["count"] = draw(st.integers(1, 3))
    elif how == "every":
        step["count"] = "all"
        step["until_ms"] = step["at_ms"] + draw(st.integers(100, 5_000))
    else:
        step["count"] = "all"
        step["probability"] = draw(probabilities)
        if draw(st.booleans()):
            step["until_ms"] = step["at_ms"] + draw(st.integers(100, 8_000))
    return step


@st.composite
def _random_faults(draw: st.DrawFn, partitions: int) -> dict[str, Any]:
    at = draw(times)
    step: dict[str, Any] = {
        "at_ms": at,
        "do": "random-faults",
        "drop_request_probability": draw(st.sampled_from([0.0, *PROBABILITIES])),
        "drop_response_probability": draw(probabilities),
        "until_ms": at + draw(st.integers(500, 8_000)),
    }
    if draw(st.booleans()):
        step["api"] = draw(st.sampled_from(["Produce", "Fetch"]))
    return step


@st.composite
def _broker_fault(draw: st.DrawFn, partitions: int) -> list[dict[str, Any]]:
    """A crash, an isolation (a live broker cut off from its peers and the controller,
    fenced after broker.session.timeout.ms), or a failover, optionally ended before the
    final heal."""
    at = draw(times)
    ref = draw(_broker_refs(partitions))
    shape = draw(st.sampled_from(["crash", "isolate", "failover", "partition"]))
    if shape == "partition":
        # producer-acks1-partition's shape: the leader is cut off but stays alive and
        # reachable by the producer, long enough to be fenced, then the partition heals.
        leader = f"leader:{TOPIC}-{draw(st.integers(0, partitions - 1))}"
        return [
            {"at_ms": at, "do": "isolate-broker", "broker": leader, "from": "brokers"},
            {"at_ms": at + draw(st.integers(3_100, 8_000)), "do": "heal"},
        ]
    if shape == "failover":
        # acks-all-failover's shape: the leader appends what its followers never fetch, then
        # dies; a follower takes over and the old leader truncates when it returns.
        leader = f"leader:{TOPIC}-{draw(st.integers(0, partitions - 1))}"
        return [
            {"at_ms": at, "do": "isolate-broker", "broker": leader, "from": "brokers"},
            {"at_ms": at + draw(st.integers(50, 3_000)), "do": "crash-broker", "broker": leader},
        ]
    if shape == "crash":
        steps: list[dict[str, Any]] = [{"at_ms": at, "do": "crash-broker", "broker": ref}]
        if isinstance(ref, int) and draw(st.booleans()):
            end = at + draw(st.integers(0, 6_000))
            steps.append({"at_ms": end, "do": "restart-broker", "broker": ref})
        return steps
    steps = [
        {
            "at_ms": at,
            "do": "isolate-broker",
            "broker": ref,
            "from": draw(st.sampled_from(["brokers", "all"])),
        }
    ]
    if draw(st.booleans()):
        steps.append({"at_ms": at + draw(st.integers(100, 6_000)), "do": "heal"})
    return steps


@st.composite
def _producer_fault(draw: st.DrawFn) -> list[dict[str, Any]]:
    at = draw(times)
    if draw(st.booleans()):
        return [{"at_ms": at, "do": "disconnect", "client": PRODUCER}]
    steps: list[dict[str, Any]] = [{"at_ms": at, "do": "crash-producer", "producer": PRODUCER}]
    if draw(st.booleans()):
        end = at + draw(st.integers(0, 5_000))
        steps.append({"at_ms": end, "do": "restart-producer", "producer": PRODUCER})
    return steps


@st.composite
def schedules(
    draw: st.DrawFn,
    *,
    idempotent: bool = True,
    producer_crashes: bool = False,
    acks: str = "all",
    unclean: bool = False,
) -> Schedule:
    """A scenario with produces and faults, then a final heal.

    ``producer_crashes`` adds crash-producer / restart-producer: a restarted application
    resends its unacknowledged messages under a new producer id, so duplicates are then
    expected even with idempotence.
    """
    partitions = draw(st.integers(1, 3))
    request_timeout = draw(st.integers(1_000, 3_000))
    session_timeout = draw(st.integers(1_000, 3_000))
    cluster: dict[str, Any] = {
        "brokers": 3,
        "broker.session.timeout.ms": session_timeout,
        "replica.lag.time.max.ms": draw(st.sampled_from([1_000, 3_000, 10_000])),
        "replica.socket.timeout.ms": draw(st.sampled_from([1_000, 3_000])),
        "replica.fetch.backoff.ms": draw(st.sampled_from([100, 500, 1_000])),
    }
    if draw(st.booleans()):
        cluster["latency_ms"] = draw(st.sampled_from([1, 5, 20]))
    if unclean and draw(st.booleans()):
        cluster["unclean.leader.election.enable"] = True
    producer_config: dict[str, Any] = {
        "acks": acks,
        "enable.idempotence": idempotent,
        "request.timeout.ms": request_timeout,
        "max.in.flight.requests.per.connection": draw(st.integers(1, 5)),
        "linger.ms": draw(st.sampled_from([0, 5, 20])),
        "batch.size": draw(st.sampled_from([64, 16_384])),  # 64 bytes: about one record
    }
    produces = draw(st.lists(_produce(partitions), min_size=1, max_size=4))
    budget = MAX_MESSAGES
    for step in produces:
        step["count"] = min(step["count"], budget)
        budget -= step["count"]
    produces = [s for s in produces if s["count"] > 0]

    kinds = [_network_fault(partitions).map(lambda s: [s]), _broker_fault(partitions)]
    kinds.append(_random_faults(partitions).map(lambda s: [s]))
    if producer_crashes:
        kinds.append(_producer_fault())
    fault_groups = draw(st.lists(st.one_of(kinds), min_size=1, max_size=8))
    faults = [step for group in fault_groups for step in group]

    heal_at = FAULT_WINDOW_MS + MAX_DELAY_MS + 6_000 + draw(st.integers(0, 4_000))
    final: list[dict[str, Any]] = [{"at_ms": heal_at, "do": "heal"}]
    final += [{"at_ms": heal_at, "do": "restart-broker", "broker": b} for b in BROKERS]
    if producer_crashes:
        final.append({"at_ms": heal_at, "do": "restart-producer", "producer": PRODUCER})
    steps = sorted(produces + faults, key=lambda s: s["at_ms"]) + final
    return Schedule(
        seed=draw(st.integers(0, 2**32 - 1)),
        semantics=_semantics(acks, idempotent, producer_crashes),
        cluster=cluster,
        partitions=partitions,
        producer_config=producer_config,
        steps=tuple(steps),
        duration_ms=heal_at + RECOVERY_MS,
    )


def _semantics(acks: str, idempotent: bool, producer_crashes: bool) -> str:
    if acks != "all":
        return "at-most-once"
    return "exactly-once" if idempotent and not producer_crashes else "at-least-once"


# -- running ---------------------------------------------------------------------------------
class InvariantViolation(AssertionError):
    pass


def check_invariants(sim: Simulation) -> None:
    problems = violations(sim)
    if problems:
        tail = "\n".join(sim.trace(include_quiet=True)[-TRACE_WINDOW:])
        raise InvariantViolation(
            f"at {sim.now_ms} ms after event {sim.events.next_seq - 1}:\n  "
            + "\n  ".join(problems)
            + f"\nlast events:\n{tail}"
        )


def run_checked(spec: ScenarioSpec, seed: int | None = None) -> Simulation:
    """Run to the end, checking the invariants after every event."""
    sim = Simulation(spec, seed)
    check_invariants(sim)
    while sim.step():
        check_invariants(sim)
    return sim


@dataclass
class FaultStats:
    """How hard the generated schedules hit, summed over the examples of one property.

    A property that passes because its schedules never hurt anything proves nothing;
    ``assert_faults_bit`` fails such a run.
    """

    examples: int = 0
    dropped: int = 0  # examples in which the network lost at least one message
    retried: int = 0  # ... in which the producer retried a batch
    leader_changes: int = 0  # ... in which a partition got a new leader
    truncations: int = 0  # ... in which a replica truncated its log
    isr_shrinks: int = 0

    def add(self, sim: Simulation) -> None:
        kinds = Counter(e.kind for e in sim.events)
        self.examples += 1
        flags = {
            "dropped": sim.network.stats["dropped"] > 0,
            "retried": kinds["produce.retry"] > 0,
            "leader_changes": kinds["leader.elected"] > 0,
            "truncations": kinds["replica.truncate"] > 0,
            "isr_shrinks": kinds["isr.shrink"] > 0,
        }
        for name, hit in flags.items():
            if hit:
                setattr(self, name, getattr(self, name) + 1)
                event(f"fault effect: {name}")
        target(float(sim.network.stats["dropped"]), label="messages dropped")
        target(float(kinds["produce.retry"]), label="produce retries")

    def assert_faults_bit(self) -> None:
        assert self.examples >= 10, self
        assert self.dropped >= self.examples // 3, self
        assert self.retried >= self.examples // 8, self
        assert self.leader_changes >= self.examples // 10, self
        assert self.isr_shrinks >= self.examples // 10, self

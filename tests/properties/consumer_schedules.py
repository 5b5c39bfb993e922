"""Random consumer-side schedules as scenario TOML, and a runner that checks the group at
every event.

A schedule is a whole scenario file: a healthy 3-broker cluster, one topic (1-3 partitions,
replication factor 3), one producer writing 5-40 records, one or two consumers of group
``g`` (one assignor for the group, cooperative-sticky included), and a timed script of
consumer faults inside a fault window: crashes now, crashes armed at a point of the poll
loop (``crash-consumer at=...``), stalls shorter or longer than ``session.timeout.ms``,
restarts, and (for sinks) failed database writes.  Then the final
heal: ``restart-consumer`` for every consumer, twice (an armed crash may still fire after the
first restart, and fires at most once).  Schedules render to TOML and are parsed by
``broker.scenario.load_text``, so a shrunk counterexample is a file to paste into a
regression test or run with ``python -m broker run FILE --trace``.

The producer side is kept healthy on purpose (``fault_schedules`` covers it): every record
is acknowledged, so what the checker reports is the consumers' doing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fault_schedules import PRODUCER, TOPIC, check_invariants
from hypothesis import event
from hypothesis import strategies as st

from broker.assignors import STRATEGIES
from broker.groups import OFFSETS_TOPIC, Group, partition_for_group
from broker.protocol import TopicPartition
from broker.scenario import ScenarioSpec, load_text
from broker.simulation import Simulation

GROUP = "g"
CONSUMERS = ("c1", "c2")
FAULT_WINDOW_MS = 8_000
MIN_RECORDS, MAX_RECORDS = 5, 40
MAX_SESSION_MS = 6_000
MAX_STALL_PAST_SESSION_MS = 4_000
PROCESSING_MS = (0, 10, 50, 100, 100)
# A stall "within" the session ends this long before the session could expire.
STALL_MARGIN_MS = 100
# The final heal: every consumer restarted once everything in the window is over (a stall
# started at the end of the window lasts at most session + MAX_STALL_PAST_SESSION_MS), and
# again later in case an armed crash fired after the first restart: by then a dead member's
# session has expired and the others have processed everything (40 records x 100 ms).
FIRST_RESTART_MS = FAULT_WINDOW_MS + MAX_SESSION_MS + MAX_STALL_PAST_SESSION_MS + 2_000
SECOND_RESTART_MS = FIRST_RESTART_MS + 15_000
# ``run()`` stops as soon as the run has settled; this only costs time when something is stuck.
RECOVERY_MS = 60_000
TRACE_WINDOW = 40
# The engine invariants rescan every log, so they are checked after each step that emitted an
# event (every change to a log, HW, ISR or leader does, except a follower's HW, which is
# clamped to its LEO), and after every CHECK_EVERY-th step regardless.
CHECK_EVERY = 16

# Where an armed crash can fire, by commit strategy and sink (a point the loop never passes
# is harmless but wasted: an armed crash that never fires).
_POINTS_ALWAYS = ("after-poll", "after-record", "after-record", "after-processing")


def crash_points(commit: str, sink: str) -> tuple[str, ...]:
    points = list(_POINTS_ALWAYS)
    if commit != "none":
        points.append("after-commit")
    if commit == "before-processing":
        points.append("after-commit")  # the at-most-once loss: committed, never processed
    if sink != "none":
        points.append("after-sink-write")
    if sink == "offsets-with-output":
        points.append("before-sink-commit")
    return tuple(points)


@dataclass(frozen=True)
class ConsumerSchedule:
    """One generated scenario: the parts of a scenario file that vary."""

    seed: int
    semantics: str
    partitions: int
    consumers: tuple[dict[str, Any], ...]
    steps: tuple[dict[str, Any], ...]
    duration_ms: int
    latency_ms: int | None = None

    @property
    def strategy(self) -> str:
        return str(self.consumers[0]["config"]["partition.assignment.strategy"])

    @property
    def zombie_free(self) -> bool:
        """No stall can outlive a session, so no consumer can carry on after being expelled.

        Stalls of one consumer that overlap count as one; a stall "within" the session ends
        at least a heartbeat interval and STALL_MARGIN_MS before the session could expire."""
        configs = {c["name"]: c["config"] for c in self.consumers}
        stalls: dict[str, list[tuple[int, int]]] = {}
        for step in self.steps:
            if step["do"] == "stall-consumer":
                stalls.setdefault(step["consumer"], []).append(
                    (step["at_ms"], step["at_ms"] + step["duration_ms"])
                )
        for name, windows in stalls.items():
            config = configs[name]
            budget = (
                config["session.timeout.ms"] - config["heartbeat.interval.ms"] - STALL_MARGIN_MS
            )
            windows.sort()
            start, end = windows[0]
            for s, e in [*windows[1:], (10**12, 10**12)]:
                if s <= end:
                    end = max(end, e)
                    continue
                if end - start > budget:
                    return False
                start, end = s, e
        return True

    def toml(self) -> str:
        lines = [
            'name = "consumer-property"',
            f"semantics = {_value(self.semantics)}",
            f"seed = {self.seed}",
            f"duration_ms = {self.duration_ms}",
            "",
            "[cluster]",
            "brokers = 3",
            '"group.initial.rebalance.delay.ms" = 0',
        ]
        if self.latency_ms is not None:
            lines.append(f"latency_ms = {self.latency_ms}")
        lines += [
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
            'acks = "all"',
            '"linger.ms" = 0',
        ]
        for consumer in self.consumers:
            lines += ["", "[[consumers]]"]
            lines += [f"{_key(k)} = {_value(v)}" for k, v in consumer.items() if k != "config"]
            lines.append("[consumers.config]")
            lines += [f"{_key(k)} = {_value(v)}" for k, v in consumer["config"].items()]
        for step in self.steps:
            lines += ["", "[[steps]]", *(f"{_key(k)} = {_value(v)}" for k, v in step.items())]
        return "\n".join(lines) + "\n"

    def spec(self) -> ScenarioSpec:
        return load_text(self.toml(), "consumer-property")

    @property
    def actions(self) -> Counter[str]:
        return Counter(step["do"] for step in self.steps)


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


# -- strategies ----------------------------------------------------------------------------
times = st.integers(0, FAULT_WINDOW_MS)


def fault_times(busy: tuple[int, ...]) -> st.SearchStrategy[int]:
    """Anywhere in the window, or (more often) shortly after a produce starts, when the
    consumers are likely in the middle of a batch."""
    near = st.tuples(st.sampled_from(busy), st.integers(0, 600)).map(sum)
    near = near.map(lambda t: min(t, FAULT_WINDOW_MS))
    return st.one_of(times, near, near)


@st.composite
def _consumer(
    draw: st.DrawFn,
    name: str,
    commit: str,
    sink: str,
    processing: str,
    strategy: str,
    session: tuple[int, int],
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "auto.offset.reset": "earliest",
        "session.timeout.ms": session[0],
        "heartbeat.interval.ms": session[1],
        "max.poll.records": draw(st.integers(1, 10)),
        "partition.assignment.strategy": strategy,
    }
    if commit == "auto":
        config["auto.commit.interval.ms"] = draw(st.sampled_from([100, 500, 1_000, 5_000]))
    consumer: dict[str, Any] = {
        "name": name,
        "group": GROUP,
        "topics": [TOPIC],
        "commit": commit,
        "processing_ms": draw(st.sampled_from(PROCESSING_MS)),
        "processing": processing,
        "sink": sink,
        "start_ms": 0 if name == CONSUMERS[0] else draw(st.sampled_from([0, 0, 500, 3_000])),
        "config": config,
    }
    if commit == "after-processing":
        consumer["commit_every"] = draw(st.sampled_from(["batch", "record"]))
    return consumer


@st.composite
def _produces(draw: st.DrawFn, partitions: int, cover: bool) -> list[dict[str, Any]]:
    """5-40 records in 1-3 produce steps, with ``cover`` including one to each partition.

    Every partition gets a record because an owned partition that never holds one keeps a
    consumer that commits itself from ever being idle, so the run never settles (see
    test_consumer_regressions.py)."""
    total = draw(st.integers(MIN_RECORDS, MAX_RECORDS)) - (partitions if cover else 0)
    parts = draw(st.integers(1, 3))
    counts = [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
    counts = [count for count in counts if count > 0]
    steps: list[dict[str, Any]] = [
        {
            "at_ms": draw(st.integers(0, FAULT_WINDOW_MS // 2)),
            "do": "produce",
            "producer": PRODUCER,
            "topic": TOPIC,
            "count": 1,
            "partition": p,
        }
        for p in range(partitions if cover else 0)
    ]
    for count in counts:
        step: dict[str, Any] = {
            "at_ms": draw(st.integers(0, FAULT_WINDOW_MS // 2)),
            "do": "produce",
            "producer": PRODUCER,
            "topic": TOPIC,
            "count": count,
            "interval_ms": draw(st.sampled_from([0, 5, 20, 100])),
        }
        routing = draw(st.sampled_from(["key", "partition", "sticky"]))
        if routing == "key":
            step["key"] = "k{i}"
        elif routing == "partition":
            step["partition"] = draw(st.integers(0, partitions - 1))
        steps.append(step)
    return steps


@st.composite
def _consumer_fault(
    draw: st.DrawFn,
    consumer: dict[str, Any],
    busy: tuple[int, ...],
    stops: bool,
) -> list[dict[str, Any]]:
    name = consumer["name"]
    session = consumer["config"]["session.timeout.ms"]
    heartbeat = consumer["config"]["heartbeat.interval.ms"]
    at = draw(fault_times(busy))
    kinds = ["crash", "armed-crash", "armed-crash", "stall-within", "stall-past", "restart"]
    if stops:
        kinds.append("stop")
    kind = draw(st.sampled_from(kinds))
    steps: list[dict[str, Any]]
    if kind == "crash":
        steps = [{"at_ms": at, "do": "crash-consumer", "consumer": name, "at": "now"}]
    elif kind == "armed-crash":
        # Armed before the work it is waiting for, or it may never fire.
        at = draw(st.one_of(st.just(0), st.sampled_from(busy), st.just(at)))
        point = draw(st.sampled_from(crash_points(consumer["commit"], consumer["sink"])))
        step = {"at_ms": at, "do": "crash-consumer", "consumer": name, "at": point}
        if point == "after-record":
            step["after_records"] = draw(st.integers(1, 10))
        steps = [step]
    elif kind == "stop":
        steps = [{"at_ms": at, "do": "stop-consumer", "consumer": name}]
    elif kind == "restart":
        return [{"at_ms": at, "do": "restart-consumer", "consumer": name}]
    else:
        if kind == "stall-within":
            # The last heartbeat was at most one interval ago: the session survives.
            duration = draw(st.integers(1, max(1, session - heartbeat - STALL_MARGIN_MS)))
        else:
            duration = session + draw(st.integers(500, MAX_STALL_PAST_SESSION_MS))
        return [{"at_ms": at, "do": "stall-consumer", "consumer": name, "duration_ms": duration}]
    if draw(st.booleans()):
        restart = at + draw(st.integers(0, 8_000))
        steps.append({"at_ms": restart, "do": "restart-consumer", "consumer": name})
    return steps


@st.composite
def consumer_schedules(
    draw: st.DrawFn,
    *,
    commits: tuple[str, ...] = ("after-processing",),
    sinks: tuple[str, ...] = ("none",),
    handoff: bool = False,
    stops: bool = False,
    sink_failures: bool = False,
    cover_partitions: bool = True,
    semantics: str = "at-least-once",
) -> ConsumerSchedule:
    """A scenario with produces and consumer faults in a window, then the final restarts.

    Every consumer of one schedule shares the commit strategy and sink (drawn from
    ``commits`` and ``sinks``).  ``handoff`` lets auto-committing consumers hand records to
    a worker; ``stops`` adds graceful ``stop-consumer`` steps; ``sink_failures`` adds
    ``fail-sink`` steps (only when a sink is used); ``cover_partitions`` writes a record
    to every partition.  The defaults keep out what the properties cannot pass because of
    the engine bugs in test_consumer_regressions.py.
    """
    partitions = draw(st.integers(1, 3))
    commit = draw(st.sampled_from(commits))
    sink = draw(st.sampled_from(sinks))
    processing = "inline"
    if handoff and commit == "auto" and draw(st.booleans()):
        processing = "handoff"
    count = draw(st.sampled_from([1, 2, 2]))  # two make zombies, takeovers, rebalances
    strategy = draw(st.sampled_from(STRATEGIES))  # one protocol for the whole group
    # One session.timeout.ms and heartbeat.interval.ms for the whole group too: a member that
    # waits in JoinGroup longer than its own session (for a dead member with a longer one)
    # is expelled, an engine bug (test_consumer_regressions.py) that keeps runs from settling.
    timeout = draw(st.integers(2_000, MAX_SESSION_MS))
    session = (timeout, draw(st.integers(100, timeout // 2)))
    consumers = tuple(
        draw(_consumer(name, commit, sink, processing, strategy, session))
        for name in CONSUMERS[:count]
    )
    produces = draw(_produces(partitions, cover_partitions))
    busy = tuple(sorted({step["at_ms"] for step in produces}))
    fault_groups = draw(
        st.lists(
            st.sampled_from(consumers).flatmap(lambda c: _consumer_fault(c, busy, stops)),
            min_size=1,
            max_size=5,
        )
    )
    faults = [step for group in fault_groups for step in group]
    if sink_failures and sink != "none":
        for _ in range(draw(st.integers(1, 2))):
            at = draw(fault_times(busy))
            faults.append({"at_ms": at, "do": "fail-sink", "count": draw(st.integers(1, 3))})
    final: list[dict[str, Any]] = []
    for at in (FIRST_RESTART_MS, SECOND_RESTART_MS):
        final += [{"at_ms": at, "do": "restart-consumer", "consumer": c["name"]} for c in consumers]
    steps = sorted(produces + faults, key=lambda s: s["at_ms"]) + final
    latency = draw(st.sampled_from([None, None, 1, 20]))
    return ConsumerSchedule(
        seed=draw(st.integers(0, 2**32 - 1)),
        semantics=semantics,
        partitions=partitions,
        consumers=consumers,
        steps=tuple(steps),
        duration_ms=SECOND_RESTART_MS + RECOVERY_MS,
        latency_ms=latency,
    )


# -- running ---------------------------------------------------------------------------------
class GroupInvariantViolation(AssertionError):
    pass


@dataclass
class GroupWatch:
    """What the group check remembers between events."""

    generations: dict[str, int] = field(default_factory=dict)  # the last one seen, per group
    generations_seen: int = 0  # distinct generations of all groups, for the statistics

    def check(self, sim: Simulation) -> None:
        problems = group_violations(sim, self)
        if problems:
            tail = "\n".join(sim.trace(include_quiet=True)[-TRACE_WINDOW:])
            raise GroupInvariantViolation(
                f"at {sim.now_ms} ms after event {sim.events.next_seq - 1}:\n  "
                + "\n  ".join(problems)
                + f"\nlast events:\n{tail}"
            )


def coordinator_group(sim: Simulation, group_id: str = GROUP) -> Group | None:
    """The group as its live coordinator (the leader of its offsets partition) holds it."""
    tp = TopicPartition(
        OFFSETS_TOPIC, partition_for_group(group_id, sim.cluster.offsets_partitions)
    )
    leader = sim.cluster.leader_of(tp)
    if leader is None or not sim.cluster.brokers[leader].alive:
        return None
    return sim.cluster.brokers[leader].groups.groups.get(group_id)


def group_violations(sim: Simulation, watch: GroupWatch) -> list[str]:
    out: list[str] = []
    for group_id, topics in sim.spec.groups.items():
        group = coordinator_group(sim, group_id)
        if group is not None:
            out += _group_violations(sim, watch, group, topics)
    return out


def _group_violations(
    sim: Simulation, watch: GroupWatch, group: Group, topics: tuple[str, ...]
) -> list[str]:
    out: list[str] = []
    name = group.group_id
    last = watch.generations.get(name, -1)
    if group.generation < last:
        out.append(f"group {name}: generation went back from {last} to {group.generation}")
    elif group.generation > last:
        watch.generations[name] = group.generation
        watch.generations_seen += 1
    wanted = {tp for topic in topics for tp in sim.cluster.partitions_of(topic)}
    # The coordinator's view: every partition assigned to at most one member.
    owner: dict[TopicPartition, str] = {}
    for member in group.members.values():
        for tp in member.assignment:
            if tp not in wanted:
                out.append(f"coordinator: {member.member_id} assigned {tp}, not subscribed")
            if tp in owner:
                out.append(
                    f"coordinator generation {group.generation}: {tp} assigned to both "
                    f"{owner[tp]} and {member.member_id}"
                )
            owner[tp] = member.member_id
    # The clients' view: those that think they are stable in the group's current generation.
    held: dict[TopicPartition, str] = {}
    for app in sim.consumers.values():
        client = app.client
        if (
            app.group != name
            or client is None
            or client.state != "stable"
            or client.generation != group.generation
        ):
            continue
        for tp in client.assignment:
            if tp in held:
                out.append(
                    f"clients in generation {group.generation}: {tp} owned by both "
                    f"{held[tp]} and {client.name}"
                )
            held[tp] = client.name
        member = group.members.get(client.member_id)
        if member is not None and set(member.assignment) != set(client.assignment):
            out.append(
                f"{client.name} ({client.member_id}) holds {sorted(map(str, client.assignment))} "
                f"in generation {group.generation}, the coordinator says "
                f"{sorted(map(str, member.assignment))}"
            )
    return out


def run_checked(spec: ScenarioSpec, seed: int | None = None) -> tuple[Simulation, GroupWatch]:
    """Run to the end, checking the engine and group invariants after every event."""
    sim = Simulation(spec, seed)
    watch = GroupWatch()
    check_invariants(sim)
    watch.check(sim)
    checked_seq = sim.events.next_seq
    steps = 0
    while sim.step():
        steps += 1
        if sim.events.next_seq != checked_seq or steps % CHECK_EVERY == 0:
            checked_seq = sim.events.next_seq
            check_invariants(sim)
        watch.check(sim)
    check_invariants(sim)
    return sim, watch


@dataclass
class ConsumerStats:
    """How hard the generated schedules hit the consumers, summed over the examples of one
    property.  A property that passes because its schedules never hurt anything proves
    nothing; ``assert_faults_bit`` fails such a run."""

    examples: int = 0
    crashed: int = 0  # examples in which a consumer crashed (now or at an armed point)
    armed_fired: int = 0  # ... in which an armed crash fired
    stalled: int = 0  # ... in which a live consumer stalled
    expired: int = 0  # ... in which the coordinator expired a member's session
    commit_failed: int = 0  # ... in which a (zombie's) commit was rejected
    two_consumers: int = 0  # ... with two consumers in the group
    rebalanced: int = 0  # ... with more than two generations
    rolled_back: int = 0  # ... in which the sink rolled back a transaction
    reprocessed: int = 0  # ... in which a record was processed twice
    lost: int = 0  # ... in which a record was lost (polled, never processed)
    sink_failed: int = 0  # ... in which a sink write failed
    crash_points: Counter[str] = field(default_factory=Counter)

    def add(self, sim: Simulation, watch: GroupWatch) -> None:
        events = list(sim.events)
        kinds = Counter(e.kind for e in events)
        outcome = sim.verdict().outcome
        self.examples += 1
        points = [e.detail for e in events if e.kind == "app.crash"]
        self.crash_points.update(points)
        flags = {
            "crashed": kinds["app.crash"] > 0,
            "armed_fired": any(p.startswith("crashed ") for p in points),
            "stalled": kinds["app.stall"] > 0,
            "expired": kinds["group.member-expired"] > 0,
            "commit_failed": kinds["consumer.commit-failed"] > 0,
            "two_consumers": len(sim.consumers) > 1,
            "rebalanced": watch.generations_seen > 2,
            "reprocessed": outcome["reprocessed"] > 0,
            "lost": outcome["lost"] > 0,
            "sink_failed": kinds["sink.write-failed"] > 0,
            "rolled_back": sim.sink is not None and sim.sink.rollbacks > 0,
        }
        for name, hit in flags.items():
            if hit:
                setattr(self, name, getattr(self, name) + 1)
                event(f"consumer effect: {name}")
        for point in set(points):
            event(f"crash: {point}")

    def assert_faults_bit(self) -> None:
        assert self.examples >= 10, self
        assert self.crashed >= self.examples // 3, self
        assert self.armed_fired >= self.examples // 6, self
        assert self.stalled >= self.examples // 10, self  # stalls of dead consumers do nothing
        assert self.expired >= self.examples // 6, self
        assert self.two_consumers >= self.examples // 4, self
        assert self.rebalanced >= self.examples // 4, self

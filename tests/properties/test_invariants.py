"""Engine invariants after every event, and a stateful test of the engine beside a model.

``broker.invariants.violations`` checks HW <= LEO, log start <= HW, dense offsets, an epoch
cache that only grows, ISR within the replicas, the leader in the ISR, and that in-sync
replicas agree with the leader below the high watermark.
"""

from __future__ import annotations

from typing import Any

from fault_schedules import (
    PRODUCER,
    TOPIC,
    FaultStats,
    Schedule,
    check_invariants,
    run_checked,
    schedules,
)
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)
from hypothesis_profiles import coverage_checked

from broker.cluster import broker_name
from broker.protocol import TopicPartition
from broker.scenario import ScenarioSpec, StepParser, load_text, step_parser
from broker.simulation import Simulation

# Any acks, idempotence on or off, application crashes, and unclean leader election: the
# guarantees differ, the invariants do not.
any_schedule = st.one_of(
    schedules(idempotent=True, producer_crashes=True),
    schedules(idempotent=False, producer_crashes=True, unclean=True),
    schedules(idempotent=False, acks="1", producer_crashes=True, unclean=True),
    schedules(idempotent=False, acks="0"),
)


def test_invariants_hold_after_every_event() -> None:
    stats = FaultStats()

    @given(any_schedule)
    def prop(schedule: Schedule) -> None:
        note(schedule.toml())
        sim = run_checked(schedule.spec())  # raises at the first event that breaks one
        stats.add(sim)

    prop()
    if not coverage_checked():
        return  # too few examples to check that the faults bit (hypothesis_profiles.py)
    stats.assert_faults_bit()


def test_the_invariant_checker_reports_a_broken_log() -> None:
    """check_invariants is not vacuous: corrupt a follower's high watermark and it says so."""
    sim = Simulation(_probe_spec(), seed=1)
    sim.run_until(500)
    check_invariants(sim)
    log = sim.cluster.brokers[2].replicas[TopicPartition(TOPIC, 0)].log
    log.high_watermark = log.log_end_offset + 1
    try:
        check_invariants(sim)
    except AssertionError as exc:
        assert "broker-2 orders-0: cursors out of order" in str(exc)
    else:
        raise AssertionError("a high watermark above the log end offset went unnoticed")


def _probe_spec() -> ScenarioSpec:
    return load_text(_BASE.format(steps=_PRODUCE_TEN, keepalive=1_000, duration=5_000), "probe")


_PRODUCE_TEN = """
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
count = 10
key = "k{i}"
"""

# The stateful machine's cluster.  The "note" step keeps the run open: a run ends for good
# as soon as it has settled (``Simulation.step`` returns False from then on), and the machine
# must be able to submit commands at any time.  Commands are kept well before it.
_BASE = """
name = "stateful"
semantics = "exactly-once"
seed = 1
duration_ms = {duration}

[cluster]
brokers = 3
"broker.session.timeout.ms" = 1500
"replica.lag.time.max.ms" = 3000
"replica.socket.timeout.ms" = 2000
"replica.fetch.backoff.ms" = 200
latency_ms = [1, 10]

[[topics]]
name = "orders"
partitions = 2
"replication.factor" = 3
"min.insync.replicas" = 2

[[producers]]
name = "p1"
[producers.config]
acks = "all"
"enable.idempotence" = true
"request.timeout.ms" = 1500
"linger.ms" = 5
{steps}
[[steps]]
at_ms = {keepalive}
do = "note"
narration = "keep-alive: commands may come until here"
"""
MAX_ADVANCE_MS = 3_000
STEP_COUNT = 30
KEEPALIVE_MS = STEP_COUNT * (MAX_ADVANCE_MS + 1_000)
DURATION_MS = KEEPALIVE_MS + 150_000
brokers = st.sampled_from([1, 2, 3])
partition_refs = st.sampled_from([f"{TOPIC}-0", f"{TOPIC}-1"])


class ProducerBesideModel(RuleBasedStateMachine):
    """The real engine, driven by commands, beside a model of what the application was told.

    The model is a dict: message id -> the (partition, offset) of its first acknowledgement,
    or None while unacknowledged.  After every rule: the ledger holds exactly the messages
    the model expects, an acknowledgement never changes or disappears, and every acknowledged
    record sits at its offset in the current leader's log (acks=all, min.insync.replicas=2,
    clean elections: an acknowledged write survives any single crash).
    """

    def __init__(self) -> None:
        super().__init__()
        self.sim: Simulation | None = None
        self.parse: StepParser | None = None
        self.told: dict[str, tuple[str, int] | None] = {}
        self.next_index = 0
        self.producer_up = True
        self.producer_restarted = False
        self.faults = 0

    @initialize(seed=st.integers(0, 2**32 - 1))
    def start(self, seed: int) -> None:
        spec = load_text(
            _BASE.format(steps="", keepalive=KEEPALIVE_MS, duration=DURATION_MS), "stateful"
        )
        self.sim = Simulation(spec, seed=seed)
        self.parse = step_parser(spec)

    # -- driving the engine --------------------------------------------------------------
    @property
    def engine(self) -> Simulation:
        assert self.sim is not None
        return self.sim

    def _advance(self, ms: int) -> None:
        sim = self.engine
        until = sim.now_ms + ms
        while sim.ended is None:
            due = sim.scheduler.next_due_ms()
            if due is None or due > until:
                break
            sim.step()
            check_invariants(sim)

    def _command(self, raw: dict[str, Any]) -> None:
        sim = self.engine
        assert self.parse is not None
        sim.submit(self.parse(raw, "command", sim.now_ms))
        self._advance(0)  # a command applies at the next event

    # -- rules ------------------------------------------------------------------------------
    @rule(count=st.integers(1, 6), keyed=st.booleans())
    def produce(self, count: int, keyed: bool) -> None:
        raw: dict[str, Any] = {"do": "produce", "producer": PRODUCER, "topic": TOPIC}
        raw["count"] = count
        if keyed:
            raw["key"] = "k{i}"
        self._command(raw)
        if self.producer_up:
            for _ in range(count):
                self.told[f"{PRODUCER}-{self.next_index}"] = None
                self.next_index += 1

    @rule(ms=st.integers(1, MAX_ADVANCE_MS))
    def advance_time(self, ms: int) -> None:
        self._advance(ms)

    @rule(broker=brokers)
    def crash_broker(self, broker: int) -> None:
        self.faults += 1
        self._command({"do": "crash-broker", "broker": broker})

    @rule(broker=brokers)
    def restart_broker(self, broker: int) -> None:
        self._command({"do": "restart-broker", "broker": broker})

    @rule(
        kind=st.sampled_from(["drop-response", "drop-request", "delay-response"]),
        api=st.sampled_from(["Produce", "Fetch"]),
        partition=partition_refs,
    )
    def fault_next(self, kind: str, api: str, partition: str) -> None:
        self.faults += 1
        raw: dict[str, Any] = {"do": kind, "api": api, "partition": partition}
        if kind == "delay-response":
            raw["delay_ms"] = 2_000
        self._command(raw)

    @rule(broker=brokers, whom=st.sampled_from(["brokers", "all"]))
    def isolate_broker(self, broker: int, whom: str) -> None:
        self.faults += 1
        self._command({"do": "isolate-broker", "broker": broker, "from": whom})

    @rule()
    def heal(self) -> None:
        self._command({"do": "heal"})

    @rule()
    def crash_or_restart_producer(self) -> None:
        if self.producer_up:
            self._command({"do": "crash-producer", "producer": PRODUCER})
        else:
            self._command({"do": "restart-producer", "producer": PRODUCER})
            self.producer_restarted = True
        self.producer_up = not self.producer_up

    # -- checks after every rule ---------------------------------------------------------
    @invariant()
    def ledger_matches_model(self) -> None:
        if self.sim is None:
            return
        assert set(self.engine.ledger.messages) == set(self.told)

    @invariant()
    def acknowledgements_are_stable_and_durable(self) -> None:
        if self.sim is None:
            return
        sim = self.engine
        for message_id, entry in sim.ledger.messages.items():
            if entry.status != "acked":
                assert self.told[message_id] is None, f"{message_id} was acked, now {entry}"
                continue
            first = entry.acks[0]
            known = self.told[message_id]
            assert known is None or known == first, f"{message_id} acked at {known}, now {first}"
            self.told[message_id] = first
            if not self.producer_restarted:
                # Retries of one producer session are answered with the original offset.
                assert set(entry.acks) == {first}, f"{message_id}: {entry.acks}"
            partition, offset = first
            tp = TopicPartition.parse(partition)
            leader = sim.cluster.leader_of(tp)
            if leader is None:
                continue
            log = sim.cluster.brokers[leader].replicas[tp].log
            held = {o: lb.batch.records[i].message_id for o, lb, i in log.records_below(offset + 1)}
            assert held.get(offset) == message_id, (
                f"{message_id} acknowledged at {partition}@{offset}, but the leader "
                f"{broker_name(leader)} holds {held.get(offset)} there"
            )

    def teardown(self) -> None:
        if self.sim is None:
            return
        sim = self.engine
        # Final heal, then run to the end: everything must settle with nothing lost.
        self._command({"do": "heal"})
        for broker in (1, 2, 3):
            self._command({"do": "restart-broker", "broker": broker})
        if not self.producer_up:
            # The new instance resends what was never acknowledged under a new producer id.
            self._command({"do": "restart-producer", "producer": PRODUCER})
            self.producer_restarted = True
        self._advance(DURATION_MS)
        verdict = sim.verdict()
        note(f"ended {sim.ended} at {sim.now_ms} ms: {verdict.outcome}; {self.faults} faults")
        assert sim.ended == "settled", f"ended {sim.ended} at {sim.now_ms} ms"
        assert verdict.outcome["lost"] == 0, verdict.anomalies
        if not self.producer_restarted:
            assert verdict.outcome["duplicated"] == 0, verdict.anomalies


ProducerBesideModel.TestCase.settings = settings(settings.default, stateful_step_count=STEP_COUNT)
TestProducerBesideModel = ProducerBesideModel.TestCase

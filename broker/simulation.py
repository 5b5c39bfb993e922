"""The facade: one object that runs a scenario and answers questions about it.

    sim = Simulation.from_scenario(spec, seed=7)
    sim.submit(step)          # a fault, a crash, a produce: applied at the next event
    sim.run()                 # until everything settled, or duration_ms
    sim.step(); sim.run_until(t_ms)
    sim.snapshot()            # plain data, JSON-ready
    sim.events.since(seq)     # the event stream
    sim.verdict()             # the checker's judgement

Same scenario + same seed + same submitted commands = the same event trace.
"""

from __future__ import annotations

import copy
import gc
from operator import itemgetter
from typing import Any

from broker import experiments
from broker.checker import Ledger, Verdict, judge
from broker.clients.app import ProducerApp, render
from broker.clients.consumer_app import ConsumerApp
from broker.clients.processor import ProcessorApp
from broker.clients.transactional import TransactionManager, TxnClientState
from broker.cluster import Cluster, broker_name
from broker.events import EventLog
from broker.faults import FAULT_KINDS, FaultRule
from broker.log import PartitionLog
from broker.network import Network
from broker.protocol import TopicPartition
from broker.records import LogBatch, control_type
from broker.scenario import MAX_RECORDS, ScenarioError, ScenarioSpec, Step
from broker.scheduler import PRIORITY_COMMAND, Scheduler
from broker.sink import Sink

SETTLE_CHECK_INTERVAL_MS = 100
SNAPSHOT_RECORD_WINDOW = 64


class Simulation:
    def __init__(
        self,
        spec: ScenarioSpec,
        seed: int | None = None,
        record_events: bool = True,
        event_limit: int = 200_000,
    ) -> None:
        self.spec = spec
        self.seed = spec.seed if seed is None else seed
        self.scheduler = Scheduler(self.seed)
        self.events = EventLog(limit=event_limit, enabled=record_events)
        self.events.bind_clock(self.scheduler.clock)
        self.ledger = Ledger()
        self.ledger.bind_clock(self.scheduler.clock)
        self.network = Network(self.scheduler, self.events, spec.cluster.latency_ms)
        self.cluster = Cluster(
            spec.cluster,
            list(spec.topics),
            self.scheduler,
            self.network,
            self.events,
            self.ledger,
            with_groups=bool(spec.consumers or spec.processors),
            with_transactions=bool(spec.processors)
            or any(p.config.transactional_id for p in spec.producers),
        )
        self.sink = Sink(spec.sink) if spec.sink else None
        self.processors: dict[str, ProcessorApp] = {
            p.name: ProcessorApp(p, self.cluster, self.ledger) for p in spec.processors
        }
        self.consumers: dict[str, ConsumerApp] = {
            c.name: ConsumerApp(c, self.cluster, self.ledger, self.sink) for c in spec.consumers
        }
        self.producers: dict[str, ProducerApp] = {
            p.name: ProducerApp(
                p.name,
                p.config,
                self.cluster,
                p.resend_unacked_on_restart,
                p.resend_on_failure,
                start=p.start_ms == 0,
            )
            for p in spec.producers
        }
        self.commands: list[tuple[int, Step]] = []
        self.narration: list[tuple[int, str]] = []
        self.records_requested = 0
        # Message ids handed out to external clients' records (broker.wire.gateway): a room's
        # listeners closed and opened again go on from here, so no id is given twice.
        self.wire_ids_issued = 0
        self._producing = 0
        self._steps_left = 0
        self._next_settle_check = 0
        self._stepped = False  # whether the run has begun (a command before it changes the start)
        self.ended: str | None = None
        for step in spec.steps:
            self._schedule_step(step)
        self._starting = len(self.consumers)
        for processor in spec.processors:
            self._starting += 1
            self.scheduler.at(
                processor.start_ms, self._start_processor, processor.name, priority=PRIORITY_COMMAND
            )
        for producer in spec.producers:
            if producer.start_ms > 0:
                self._starting += 1
                self.scheduler.at(
                    producer.start_ms,
                    self._start_producer,
                    producer.name,
                    priority=PRIORITY_COMMAND,
                )
        for consumer in spec.consumers:
            self.scheduler.at(
                consumer.start_ms, self._start_consumer, consumer.name, priority=PRIORITY_COMMAND
            )

    @classmethod
    def from_scenario(
        cls, spec: ScenarioSpec, seed: int | None = None, record_events: bool = True
    ) -> Simulation:
        return cls(spec, seed, record_events)

    @property
    def now_ms(self) -> int:
        return self.scheduler.now_ms

    # -- commands ------------------------------------------------------------
    def _schedule_step(self, step: Step) -> None:
        if step.action == "produce":
            self.records_requested += int(step.params["count"])
            if self.records_requested > MAX_RECORDS:
                raise ScenarioError(
                    "count", f"this run would produce more than {MAX_RECORDS} records"
                )
        self._steps_left += 1
        self.scheduler.at(
            max(step.at_ms, self.now_ms), self._apply, step, priority=PRIORITY_COMMAND
        )

    def submit(self, step: Step) -> None:
        """Apply a command (validated by ``scenario.step_parser``) at the next event.

        A run that had settled wakes up again; one past its duration does not. A command the
        run's state refuses (see ``check``) raises ``ScenarioError`` and changes nothing. A
        ``configure`` before the run has begun applies at once: the run starts with it."""
        self.check(step)
        self.ended = None
        step = Step(self.now_ms, step.action, step.params, step.narration)
        self.commands.append((self.now_ms, step))
        if step.action == "start-consumer" or (step.action == "configure" and not self._stepped):
            # At once: later commands can name the new consumer, and the run starts with
            # a configure pressed before it (the new client's own requests wait as usual).
            self._steps_left += 1
            self._apply(step)
            return
        self._schedule_step(step)

    def check(self, step: Step) -> None:
        """Refuse, naming the problem, a command this run cannot take now (a parsed step: what
        the parser could not know depends on the run's state). Changes nothing."""
        if self.ended == "duration":
            raise ScenarioError("", f"the run is over (duration_ms={self.spec.duration_ms})")
        params = step.params
        if step.action == "produce" and (
            self.records_requested + int(params["count"]) > MAX_RECORDS
        ):
            raise ScenarioError(
                "command.count", f"this run would produce more than {MAX_RECORDS} records"
            )
        name = params.get("consumer")
        if name is not None and name not in self.consumers:
            running = ", ".join(self.consumers) or "none"
            raise ScenarioError(
                "command.consumer", f"no consumer {name!r} in this run (consumers: {running})"
            )
        if step.action == "configure":
            experiments.configuration(self, params)
        elif step.action == "start-consumer":
            experiments.new_consumer(self, params)

    def _apply(self, step: Step) -> None:
        self._steps_left -= 1
        self.events.emit("script", f"step.{step.action}", detail=step.describe())
        if step.narration:
            self.narration.append((self.now_ms, step.narration))
        params = step.params
        action = step.action
        consumer = params.get("consumer")
        if consumer is not None and consumer not in self.consumers:
            # A file's step naming a consumer its start-consumer steps have not started.
            self.events.emit("script", "command.refused", detail=f"no consumer {consumer!r}")
            return
        if action == "produce":
            self._producing += 1
            self._produce_next(step, 0)
        elif action in FAULT_KINDS:
            broker = params.get("broker")
            rule = FaultRule(
                kind=action,
                api=params.get("api"),
                src=params.get("client"),
                dst=broker_name(self._resolve_broker(broker)) if broker is not None else None,
                partition=params.get("partition"),
                nth=params.get("nth", 1),
                count=None if params.get("count") == "all" else params.get("count", 1),
                delay_ms=params.get("delay_ms", 0),
                error=params.get("error"),
                probability=params.get("probability", 1.0),
                until_ms=params.get("until_ms"),
            )
            self.network.arm(rule)
            self.events.emit("network", "fault.armed", rule.partition, detail=rule.describe())
        elif action == "random-faults":
            for kind, key in (
                ("drop-request", "drop_request_probability"),
                ("drop-response", "drop_response_probability"),
            ):
                probability = params[key]
                if probability > 0:
                    rule = FaultRule(
                        kind=kind,
                        api=params.get("api"),
                        src=params.get("client"),
                        partition=params.get("partition"),
                        count=None,
                        probability=probability,
                        until_ms=params["until_ms"],
                    )
                    self.network.arm(rule)
                    self.events.emit(
                        "network", "fault.armed", rule.partition, detail=rule.describe()
                    )
        elif action == "heal":
            self.network.heal()
            self.events.emit("network", "fault.healed", detail="all network faults removed")
        elif action == "isolate-broker":
            broker_id = self._resolve_broker(params["broker"])
            peers = [broker_name(b) for b in self.cluster.brokers if b != broker_id]
            if params.get("from") == "all":
                peers += sorted(self.producers)
            self.network.isolate(broker_name(broker_id), peers)
            self.events.emit(
                "network",
                "fault.isolate",
                detail=(f"{broker_name(broker_id)} cut off from {', '.join(peers)}"),
            )
        elif action == "crash-broker":
            self.cluster.crash_broker(self._resolve_broker(params["broker"]))
        elif action == "restart-broker":
            self.cluster.restart_broker(self._resolve_broker(params["broker"]))
        elif action == "random-broker-crashes":
            self._plan_broker_crashes(params["every_ms"], params["down_ms"], params["until_ms"])
        elif action == "crash-producer":
            self.producers[params["producer"]].crash()
        elif action == "restart-producer":
            self.producers[params["producer"]].restart()
        elif action == "disconnect":
            self.network.disconnect_client(params["client"])
        elif action == "crash-consumer":
            self.consumers[params["consumer"]].arm_crash(params["at"], params["after_records"])
        elif action == "restart-consumer":
            self.consumers[params["consumer"]].restart()
        elif action == "stop-consumer":
            self.consumers[params["consumer"]].stop()
        elif action == "stall-consumer":
            self.consumers[params["consumer"]].stall(params["duration_ms"])
        elif action == "crash-processor":
            self.processors[params["processor"]].arm_crash(params["at"])
        elif action == "restart-processor":
            self.processors[params["processor"]].start()
        elif action == "stall-processor":
            self.processors[params["processor"]].stall(params["duration_ms"])
        elif action == "begin-transaction":
            self.producers[params["producer"]].begin_transaction()
        elif action == "commit-transaction":
            self.producers[params["producer"]].commit_transaction()
        elif action == "abort-transaction":
            self.producers[params["producer"]].abort_transaction()
        elif action == "configure":
            experiments.configure(self, params, at_start=not self._stepped)
        elif action == "start-consumer":
            experiments.start_consumer(self, params)
        elif action == "fail-sink":
            if self.sink is not None:
                self.sink.fail_next += params["count"]
                self.events.emit(
                    self.sink.name,
                    "sink.fault",
                    detail=f"the next {params['count']} write(s) will fail",
                )
        elif action != "note":
            raise AssertionError(f"unhandled step {action}")

    def _resolve_broker(self, ref: int | str) -> int:
        if isinstance(ref, int):
            return ref
        tp = TopicPartition.parse(ref.removeprefix("leader:"))
        leader = self.cluster.leader_of(tp)
        if leader is None:
            # No leader right now: the last one, so the step still means something.
            leader = self.cluster.partition(tp).isr[0]
        return leader

    def _produce_next(self, step: Step, i: int) -> None:
        """Send the step's messages: all at once, or one every ``interval_ms``."""
        params = step.params
        app = self.producers[params["producer"]]
        count = int(params["count"])
        interval = int(params["interval_ms"])
        n = count - i if interval == 0 else 1
        indexes = range(app.next_index, app.next_index + n)
        key_template = params.get("key")
        keys: list[str | None] = (
            list(render(key_template, app.name, indexes)) if key_template else [None] * n
        )
        values = render(params["value"], app.name, indexes)
        app.produce_many(params["topic"], keys, values, params.get("partition"))
        i += n
        if i < count:
            self.scheduler.after(interval, self._produce_next, step, i)
            return
        self._producing -= 1

    def _plan_broker_crashes(self, every_ms: int, down_ms: int, until_ms: int) -> None:
        rng = self.scheduler.rng("faults/brokers")
        at = self.now_ms
        ids = sorted(self.cluster.brokers)
        while True:
            at += rng.randint(max(1, every_ms // 2), every_ms + every_ms // 2)
            if at > until_ms:
                break
            broker = rng.choice(ids)
            self._schedule_step(Step(at, "crash-broker", {"broker": broker}))
            self._schedule_step(Step(at + down_ms, "restart-broker", {"broker": broker}))

    # -- running -------------------------------------------------------------
    def step(self) -> bool:
        """Run one event.  False when the run is over."""
        if self.ended is not None:
            return False
        self._stepped = True
        due = self.scheduler.next_due_ms()
        if due is None or due > self.spec.duration_ms:
            self.ended = "duration"
            return False
        self.scheduler.step()
        if self.now_ms >= self._next_settle_check:
            self._next_settle_check = self.now_ms + SETTLE_CHECK_INTERVAL_MS
            if self.settled():
                self.ended = "settled"
        return True

    def run_until(self, until_ms: int) -> None:
        """Run every event due by ``until_ms``; the clock then reads ``until_ms``
        (capped at the duration), unless the run ended first."""
        while self.ended is None:
            due = self.scheduler.next_due_ms()
            if due is None or due > until_ms:
                break
            self.step()
        if self.ended is None:
            self.scheduler.now_ms = max(self.now_ms, min(until_ms, self.spec.duration_ms))

    def run(self) -> Verdict:
        # The run allocates many long-lived objects and frees almost none:
        # the cycle collector would only rescan them, so it waits until the end.
        collecting = gc.isenabled()
        gc.disable()
        try:
            while self.step():
                pass
            return self.verdict()
        finally:
            if collecting:
                gc.enable()

    def settled(self) -> bool:
        """Nothing left to happen that could change the verdict."""
        if self._steps_left or self._producing:
            return False
        if not all(app.idle for app in self.producers.values()):
            return False
        for tp, state in self.cluster.controller.partitions.items():
            if state.leader is None:
                continue
            leader_log = self.cluster.brokers[state.leader].replicas[tp].log
            if leader_log.high_watermark != leader_log.log_end_offset:
                return False
            for broker_id in state.replicas:
                broker = self.cluster.brokers[broker_id]
                if broker.alive and broker.replicas[tp].log.log_end_offset != (
                    leader_log.log_end_offset
                ):
                    return False
        return self._transactions_settled() and self._consumers_settled()

    def _transactions_settled(self) -> bool:
        """No live coordinator has a transaction still to end: none is between deciding and
        writing its markers, and none is Ongoing. An Ongoing transaction holds the last stable
        offset of its partitions; it ends by EndTxn or, if its producer is gone, when the
        coordinator aborts it at transaction.timeout.ms. Judging before that would count as
        lost what read_committed readers are about to read."""
        for broker in self.cluster.brokers.values():
            if not broker.alive:
                continue
            for entry in broker.txns.entries.values():
                if entry.pending is not None or entry.meta.state.value.startswith(
                    ("Prepare", "Ongoing")
                ):
                    return False
        return True

    def _consumers_settled(self) -> bool:
        if self._starting:
            return False
        if not all(app.idle for app in self.consumers.values()):
            return False
        if not all(app.idle for app in self.processors.values()):
            return False
        for group, topics in self.groups().items():
            live = [
                app.client
                for app in self.consumers.values()
                if app.group == group and app.client is not None
            ] + [
                app.consumer
                for app in self.processors.values()
                if app.group == group and app.consumer is not None and not app.fenced
            ]
            if not live:
                continue
            owned = {tp for client in live for tp in client.assignment}
            wanted = {tp for topic in topics for tp in self.cluster.partitions_of(topic)}
            if owned != wanted:
                return False
        return True

    def groups(self) -> dict[str, tuple[str, ...]]:
        """Each consumer group and the topics it reads: the scenario's, and those of consumers
        started during the run."""
        out = self.spec.groups
        for app in self.consumers.values():
            out[app.group] = tuple(dict.fromkeys(out.get(app.group, ()) + app.spec.topics))
        return out

    def _start_processor(self, name: str) -> None:
        self._starting -= 1
        self.processors[name].start()

    def _start_producer(self, name: str) -> None:
        self._starting -= 1
        self.producers[name].start()

    def _start_consumer(self, name: str) -> None:
        self._starting -= 1
        self.consumers[name].start()

    # -- answers ---------------------------------------------------------------
    def committed_logs(self) -> dict[str, list[tuple[int, str]]]:
        """What a read_committed reader sees at the end: each partition below its
        leader's last stable offset (the HW when no transaction is open), without
        transaction markers or the data of aborted transactions."""
        out: dict[str, list[tuple[int, str]]] = {}
        for tp in sorted(self.cluster.controller.partitions, key=lambda t: (t.topic, t.partition)):
            if tp.topic.startswith("__"):
                continue  # internal topics hold the brokers' records, not messages
            log, hw = self.cluster.committed(tp)
            if log is None:
                out[str(tp)] = []
                continue
            entries: list[tuple[int, str]] = []
            bound = log.last_stable_offset
            aborted: dict[int, list[tuple[int, int]]] = {}
            for txn in log.aborted:
                aborted.setdefault(txn.producer_id, []).append((txn.first_offset, txn.last_offset))
            for lb in log.batches:
                base = lb.base_offset
                if base >= bound:
                    break
                batch = lb.batch
                if batch.is_control or (
                    batch.is_transactional
                    and any(f <= base < last for f, last in aborted.get(batch.producer_id, ()))
                ):
                    continue
                records = batch.records
                if base + len(records) > hw:
                    records = records[: hw - base]
                offsets = range(base, base + len(records))
                # (the ids by a C-level map: no Python code per record)
                entries.extend(zip(offsets, map(itemgetter(0), records), strict=True))
            out[str(tp)] = entries
        return out

    def verdict(self) -> Verdict:
        return judge(
            self.ledger,
            self.committed_logs(),
            self.spec.semantics,
            self.spec.expected,
            self.spec.ordered,
            # A processor's effect is its committed output, judged as a pipeline.
            {
                group: topics
                for group, topics in self.groups().items()
                if group not in {p.consumer.group_id for p in self.spec.processors}
            },
            self.sink.message_counts() if self.sink is not None else None,
            self.aborted_data(),
            {p.name: (p.inputs, p.output) for p in self.spec.processors},
        )

    def aborted_data(self) -> dict[str, set[int]]:
        """Per partition, the offsets holding data of aborted transactions."""
        out: dict[str, set[int]] = {}
        for tp in self.cluster.controller.partitions:
            log, _hw = self.cluster.committed(tp)
            if log is None or not log.aborted:
                continue
            offsets: set[int] = set()
            for txn in log.aborted:
                for lb in log.batches:
                    batch = lb.batch
                    if (
                        batch.is_transactional
                        and not batch.is_control
                        and batch.producer_id == txn.producer_id
                        and txn.first_offset <= lb.base_offset < txn.last_offset
                    ):
                        offsets.update(range(lb.base_offset, lb.next_offset))
            out[str(tp)] = offsets
        return out

    def clone(self) -> Simulation:
        """An independent copy of this run at this moment (for time-travel
        checkpoints): the engine keeps no closures, so a deep copy is exact."""
        return copy.deepcopy(self)

    def trace(self, include_quiet: bool = False) -> list[str]:
        return [e.trace_line() for e in self.events if include_quiet or not e.quiet]

    def read_records(self, partition: str, start: int, count: int) -> dict[str, Any]:
        """A window of ``count`` offsets from ``start`` in a partition's leader log, at
        any offset (the snapshot holds only the newest): the snapshot's record dicts,
        plus the leader's cursors.  An unknown or leaderless partition reads as empty."""
        try:
            tp = TopicPartition.parse(partition)
        except ValueError:
            tp = None
        state = self.cluster.controller.partitions.get(tp) if tp is not None else None
        if tp is None or state is None or state.leader is None:
            return {
                "records": [],
                "high_watermark": 0,
                "last_stable_offset": 0,
                "log_end_offset": 0,
                "log_start_offset": 0,
                "leader": None,
            }
        log = self.cluster.brokers[state.leader].replicas[tp].log
        return {
            "records": _record_views(log, max(0, start), max(0, start) + max(0, count)),
            "high_watermark": log.high_watermark,
            "last_stable_offset": log.last_stable_offset,
            "log_end_offset": log.log_end_offset,
            "log_start_offset": log.log_start_offset,
            "leader": state.leader,
        }

    def snapshot(self) -> dict[str, Any]:
        cluster = self.cluster
        controller = cluster.controller
        partitions = []
        for tp in sorted(controller.partitions, key=lambda t: (t.topic, t.partition)):
            state = controller.partitions[tp]
            replicas = []
            for broker_id in state.replicas:
                replica = cluster.brokers[broker_id].replicas[tp]
                replicas.append(
                    {"broker": broker_id, "role": replica.role, **replica.log.snapshot()}
                )
            records: list[dict[str, Any]] = []
            if state.leader is not None:
                log = cluster.brokers[state.leader].replicas[tp].log
                start = max(0, log.log_end_offset - SNAPSHOT_RECORD_WINDOW)
                records = _record_views(log, start, log.log_end_offset)
            partitions.append(
                {
                    "name": str(tp),
                    "leader": state.leader,
                    "leader_epoch": state.leader_epoch,
                    "isr": list(state.isr),
                    "replicas": replicas,
                    "records": records,
                }
            )
        producers = []
        for name, app in self.producers.items():
            client = app.client
            producers.append(
                {
                    "name": name,
                    "alive": client is not None,
                    "incarnation": app.incarnation,
                    "producer_id": client.producer_id if client else None,
                    "producer_epoch": client.producer_epoch if client else None,
                    "next_sequence": client.next_sequences() if client else {},
                    "in_flight": [
                        {
                            "partition": str(b.tp),
                            "records": [r.message_id for r in b.records],
                            "attempts": b.attempts,
                            "last_error": b.last_error.name if b.last_error else None,
                        }
                        for b in (client.in_flight_batches() if client else [])
                    ],
                    "queued": len(client.queued_batches()) if client else 0,
                    "closing": app.closing is not None,
                    "transactional_id": app.config.transactional_id,
                    "transaction_state": client.txn.state.value
                    if client is not None and client.txn is not None
                    else None,
                    "transaction_error": _txn_error(client.txn if client is not None else None),
                    "config": {
                        "acks": app.config.acks_name,
                        "enable.idempotence": app.config.enable_idempotence,
                        "max.in.flight.requests.per.connection": (
                            app.config.max_in_flight_requests_per_connection
                        ),
                        "retries": app.config.retries,
                    },
                }
            )
        return {
            "scenario": self.spec.name,
            "seed": self.seed,
            "time_ms": self.now_ms,
            "ended": self.ended,
            "event_seq": self.events.next_seq,
            "brokers": [
                {
                    "id": b.broker_id,
                    "alive": b.alive,
                    "fenced": bool(controller.fenced.get(b.broker_id, False)),
                }
                for b in cluster.brokers.values()
            ],
            "partitions": partitions,
            "producers": producers,
            "faults": [rule.describe() for rule in self.network.rules if not rule.exhausted],
            "narration": [[t, text] for t, text in self.narration],
            "consumers": [self._consumer_snapshot(app) for app in self.consumers.values()],
            "groups": [
                group
                for broker in cluster.brokers.values()
                if broker.alive
                for group in broker.groups.snapshot()
            ],
            "sink": self.sink.snapshot() if self.sink is not None else None,
            "transactions": [
                txn
                for broker in cluster.brokers.values()
                if broker.alive
                for txn in broker.txns.snapshot()
            ],
            "processors": [
                {
                    "name": app.name,
                    "instance": app.instance,
                    "alive": app.alive,
                    "fenced": app.fenced,
                    "group": app.group,
                    "inputs": list(app.spec.inputs),
                    "output": app.spec.output,
                    "transactional_id": app.spec.producer.transactional_id,
                    "transaction_state": app.producer.txn.state.value
                    if app.producer is not None and app.producer.txn is not None
                    else None,
                    "transaction_error": _txn_error(
                        app.producer.txn if app.producer is not None else None
                    ),
                    "in_transaction": len(app.batch) if app.busy else 0,
                    "isolation_level": app.spec.consumer.isolation_level,
                    "max_in_flight": app.spec.producer.max_in_flight_requests_per_connection,
                    "reconfiguring": app.reconfiguring is not None,
                }
                for app in self.processors.values()
            ],
        }

    def _consumer_snapshot(self, app: ConsumerApp) -> dict[str, Any]:
        client = app.client
        partitions = []
        if client is not None:
            for tp in client.assignment:
                partitions.append(
                    {
                        "partition": str(tp),
                        "position": client.positions.get(tp),
                        "committed": client.committed.get(tp),
                        "high_watermark": client.high_watermarks.get(tp),
                    }
                )
        return {
            "name": app.name,
            "instance": app.instance,
            "group": app.group,
            "alive": client is not None,
            "stalled": self.now_ms < app.stalled_until_ms,
            "state": client.state if client else "down",
            "member_id": client.member_id if client else None,
            "generation": client.generation if client else None,
            "strategy": app.strategy,
            "isolation_level": app.spec.config.isolation_level,
            "commit": app.spec.commit,
            "sink": app.spec.sink,
            "topics": list(app.spec.topics),
            "reconfiguring": app.reconfiguring is not None,
            "session_timeout_ms": app.spec.config.session_timeout_ms,
            "heartbeat_interval_ms": app.spec.config.heartbeat_interval_ms,
            "partitions": partitions,
            "processing": len(app.batch) - app.index if app.busy else len(app.worker),
        }


def _txn_error(txn: TransactionManager | None) -> str | None:
    """The error that put a transaction manager in ABORTABLE_ERROR or FATAL_ERROR, if it is in
    one (INVALID_PRODUCER_EPOCH, then PRODUCER_FENCED, for a zombie)."""
    if txn is None or txn.last_error is None:
        return None
    if txn.state not in (TxnClientState.ABORTABLE_ERROR, TxnClientState.FATAL_ERROR):
        return None
    return txn.last_error.name


def _record_views(log: PartitionLog, start: int, end: int) -> list[dict[str, Any]]:
    """The records at offsets [start, end) of a log, one dict each, markers included."""
    records: list[dict[str, Any]] = []
    for lb in log.batches:
        if lb.last_offset < start:
            continue
        if lb.base_offset >= end:
            break
        batch = lb.batch
        fate = _txn_status(log, lb) if batch.is_transactional and not batch.is_control else None
        control = control_type(batch)
        for i, record in enumerate(batch.records):
            offset = lb.base_offset + i
            if not start <= offset < end:
                continue
            records.append(
                {
                    "offset": offset,
                    "message_id": record.message_id,
                    "key": record.key,
                    "value": record.value,
                    "producer_id": batch.producer_id,
                    "producer_epoch": batch.producer_epoch,
                    "sequence": batch.base_sequence + i if batch.base_sequence >= 0 else -1,
                    "leader_epoch": lb.leader_epoch,
                    "transactional": batch.is_transactional,
                    # COMMIT / ABORT for a transaction marker, else None
                    "control": control,
                    # open | committed | aborted for transactional data
                    "txn": fate,
                }
            )
    return records


def _txn_status(log: PartitionLog, lb: LogBatch) -> str:
    """open, committed or aborted: the fate of a transactional data batch."""
    producer_id = lb.batch.producer_id
    first = log.ongoing.get(producer_id)
    if first is not None and lb.base_offset >= first:
        return "open"
    for txn in log.aborted:
        if txn.producer_id == producer_id and txn.first_offset <= lb.base_offset < txn.last_offset:
            return "aborted"
    return "committed"

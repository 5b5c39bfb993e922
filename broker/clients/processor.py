"""A consume-transform-produce processor with exactly-once semantics.

The loop Kafka Streams runs with processing.guarantee=exactly_once_v2:
poll (read_committed) -> beginTransaction -> produce one output record per
input record -> sendOffsetsToTransaction(positions, group metadata) ->
commitTransaction.  The input offsets are committed inside the output
transaction, so either both the outputs and the offsets become visible, or
neither.  A crash at any step leaves an open transaction; the restarted
instance's initTransactions (same transactional.id) fences the old one and
aborts it, and the work is redone from the committed offsets.  A zombie
whose group generation is stale has its offsets refused (KIP-447) and must
abort.

``offsets = "after-commit"`` is the classic mistake instead: the offsets are
not part of the transaction; the application calls commitSync() after
commitTransaction() returns. A crash between the two leaves the outputs
committed and the offsets not, so the next owner redoes the batch and its
outputs are committed a second time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from broker.clients.consumer import Consumer, PolledRecord
from broker.clients.producer import Producer
from broker.clients.transactional import TxnClientState
from broker.config import ConsumerConfig, ProducerConfig
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.checker import Ledger
    from broker.cluster import Cluster

PROCESSOR_CRASH_POINTS = ("now", "after-produce", "after-offsets", "after-commit")
# Where the input offsets are committed: with the outputs, in the transaction (Kafka Streams'
# exactly_once_v2), or by commitSync() once the transaction has committed.
PROCESSOR_OFFSETS = ("in-transaction", "after-commit")
IDLE_POLL_MS = 100
FLUSH_CHECK_MS = 5


def output_id(message_id: str, topic: str) -> str:
    """The id of the record a processor writes for an input message."""
    return f"{message_id}>{topic}"


@dataclass(frozen=True, slots=True)
class ProcessorSpec:
    name: str
    consumer: ConsumerConfig
    producer: ProducerConfig
    inputs: tuple[str, ...]
    output: str
    processing_ms: int = 10
    start_ms: int = 0
    offsets: str = "in-transaction"  # one of PROCESSOR_OFFSETS


class ProcessorApp:
    def __init__(self, spec: ProcessorSpec, cluster: Cluster, ledger: Ledger) -> None:
        self.spec = spec
        self.name = spec.name
        self.group = spec.consumer.group_id
        self.cluster = cluster
        self.scheduler = cluster.scheduler
        self.events = cluster.events
        self.ledger = ledger
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.incarnation = 0
        self.generation = 0  # bumps on crash: stale callbacks do nothing
        self.ready = False
        self.busy = False
        self.fenced = False
        self.batch: list[PolledRecord] = []
        self.outputs: list[str] = []
        self.trap: str | None = None
        self.stalled_until_ms = 0
        self.group_metadata: tuple[str, int] = ("", -1)
        self._loop_timer: Timer | None = None
        # A settings change (configure) waiting for the loop to be between transactions.
        self.reconfiguring: ProcessorSpec | None = None

    @property
    def instance(self) -> str:
        return self.name if self.incarnation <= 1 else f"{self.name}#{self.incarnation}"

    @property
    def alive(self) -> bool:
        return self.consumer is not None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        if self.consumer is not None:
            return
        self.incarnation += 1
        self.generation += 1
        self.ready = self.busy = self.fenced = False
        self.consumer = Consumer(
            self.instance,
            self.spec.consumer,
            self.spec.inputs,
            self.cluster,
            self._assigned,
            self._revoked,
            self._wake,
            self._fatal,
        )
        self.producer = Producer(
            f"{self.instance}.producer",
            self.spec.producer,
            self.cluster,
            self._produced,
            actor=f"{self.instance}.producer",
        )
        assert self.producer.txn is not None
        self.producer.txn.init_transactions(partial(self._initialized, self.generation))
        self.events.emit(
            self.name,
            "app.start",
            detail=f"incarnation {self.incarnation}: reads {', '.join(self.spec.inputs)} "
            f"(read_committed), writes {self.spec.output} in transactions as "
            f"{self.spec.producer.transactional_id}",
        )

    def crash(self, why: str = "crashed") -> None:
        if self.consumer is None:
            return
        self.consumer.kill()
        assert self.producer is not None and self.producer.txn is not None
        left_open = self.producer.txn.state not in (
            TxnClientState.UNINITIALIZED,
            TxnClientState.INITIALIZING,
            TxnClientState.READY,
            TxnClientState.FATAL_ERROR,
        )
        self.producer.close()
        self._gone()
        if self.reconfiguring is not None:  # the next incarnation starts with the new settings
            self.spec, self.reconfiguring = self.reconfiguring, None
        self.events.emit(
            self.name,
            "app.crash",
            detail=why + ("; its transaction is left open" if left_open else ""),
        )

    def _gone(self) -> None:
        self.consumer = None
        self.producer = None
        self.generation += 1
        self.busy = False
        self.trap = None
        if self._loop_timer:
            self._loop_timer.cancel()

    # -- a settings change (the configure step) -----------------------------------------
    def reconfigure(self, spec: ProcessorSpec, change: str, at_start: bool = False) -> None:
        """New settings, as a Kafka Streams application gets them: between two transactions
        it closes (its consumer leaves the group, its producer closes), then starts again with
        ``spec``: initTransactions with the same transactional.id, and a rejoin that resumes
        from the committed offsets. ``at_start``, or while it is down, it simply starts with
        them."""
        if self.consumer is None or at_start:
            self.spec = spec
            when = "the run starts" if at_start else "it starts again"
            self.events.emit(self.name, "app.configure", detail=f"{change}: from when {when}")
            return
        self.reconfiguring = spec
        self.events.emit(
            self.name,
            "app.configure",
            detail=f"{change}: after the transaction in hand, close() and start again",
        )
        self._wake()

    def _reopen(self) -> None:
        consumer, producer, spec = self.consumer, self.producer, self.reconfiguring
        if consumer is None or producer is None or spec is None:
            return
        consumer.leave()
        producer.close()
        self._gone()
        self.spec, self.reconfiguring = spec, None
        self.events.emit(self.name, "app.reconfigured", detail="closed; starting again")
        self.start()

    def arm_crash(self, point: str) -> None:
        if point == "now":
            self.crash()
        else:
            self.trap = point

    def _hook(self, point: str) -> bool:
        if self.trap == point:
            self.crash(f"crashed {point.replace('-', ' ')}")
            return True
        return False

    def stall(self, duration_ms: int) -> None:
        if self.consumer is None:
            return
        self.stalled_until_ms = self.scheduler.now_ms + duration_ms
        self.consumer.stall(self.stalled_until_ms)
        self.events.emit(
            self.name, "app.stall", detail=f"paused for {duration_ms} ms: no polls, no heartbeats"
        )
        self.scheduler.at(self.stalled_until_ms, self._resume, self.generation)

    def _resume(self, generation: int) -> None:
        if generation == self.generation:
            self.events.emit(self.name, "app.resume", detail="wakes up and carries on")
            self._wake()

    def _paused(self, fn: Callable[..., None], *args: object) -> bool:
        """While stalled, run ``fn(*args)`` when the stall ends instead of now:
        the whole process is frozen, its transaction included."""
        if self.scheduler.now_ms < self.stalled_until_ms:
            self.scheduler.at(self.stalled_until_ms, fn, *args)
            return True
        return False

    def _initialized(self, generation: int, error: ErrorCode) -> None:
        if generation != self.generation:
            return
        if error is not ErrorCode.NONE:
            self._fatal(f"initTransactions failed with {error.name}")
            return
        self.ready = True
        self._wake()

    def _fatal(self, why: str) -> None:
        self.events.emit(self.name, "app.error", detail=why)
        self.crash("stopped")

    # -- the loop ------------------------------------------------------------------------
    def _wake(self) -> None:
        if self.consumer is None or self.busy or not self.ready or self.fenced:
            return
        if self._loop_timer is not None and not self._loop_timer.cancelled:
            if self._loop_timer.due_ms <= self.scheduler.now_ms:
                return
            self._loop_timer.cancel()
        self._loop_timer = self.scheduler.after(0, self._loop, self.generation)

    def _loop(self, generation: int) -> None:
        self._loop_timer = None
        consumer, producer = self.consumer, self.producer
        if generation != self.generation or consumer is None or producer is None or self.busy:
            return
        if self._paused(self._loop, generation):
            return
        if self.reconfiguring is not None:
            self._reopen()
            return
        records = consumer.poll()
        if not records:
            self._loop_timer = self.scheduler.after(IDLE_POLL_MS, self._loop, generation)
            return
        assert producer.txn is not None
        self.ledger.polled(self.group, self.instance, consumer.assignment_epoch, records)
        self.busy = True
        self.batch = records
        # The group metadata the records were fetched under (KIP-447 checks it).
        self.group_metadata = (consumer.member_id, consumer.generation)
        producer.txn.begin()
        self.events.emit(
            self.instance,
            "processor.begin",
            str(records[0][0]),
            records[0][1],
            None,
            f"transaction for {len(records)} input record(s)",
        )
        self.scheduler.after(self.spec.processing_ms * len(records), self._produce, generation)

    def _produce(self, generation: int) -> None:
        if generation != self.generation or self._paused(self._produce, generation):
            return
        producer = self.producer
        assert producer is not None
        out = self.spec.output
        records = [
            Record(output_id(r.message_id, out), r.key, f"{r.value}'") for _tp, _o, r in self.batch
        ]
        self.outputs = [r.message_id for r in records]
        self.ledger.sent_many(records, self.name, -1, out)
        producer.send_many(records, out)
        self._await_outputs(generation)

    def _await_outputs(self, generation: int) -> None:
        """flush(): the outputs are written (not yet committed) before the offsets go."""
        producer = self.producer
        if generation != self.generation or producer is None:
            return
        if self._paused(self._await_outputs, generation):
            return
        txn = producer.txn
        assert txn is not None
        if txn.state is not TxnClientState.IN_TRANSACTION:
            # An output could not be written (or the producer was fenced).
            self._abort(generation, f"writing the outputs failed ({txn.state.value})")
            return
        if not producer.idle:
            self.scheduler.after(FLUSH_CHECK_MS, self._await_outputs, generation)
            return
        if self._hook("after-produce"):
            return
        if self.spec.offsets == "after-commit":
            # The mistake: commit the outputs alone; the offsets follow with commitSync().
            txn.commit(partial(self._committed, generation))
            return
        offsets = self._batch_offsets()
        member_id, group_generation = self.group_metadata
        txn.send_offsets(
            offsets,
            self.group,
            member_id,
            group_generation,
            partial(self._offsets_sent, generation),
        )

    def _batch_offsets(self) -> dict[TopicPartition, int]:
        """The next offset to read after the batch, per partition: the consumer's positions."""
        consumer = self.consumer
        assert consumer is not None
        return {
            tp: consumer.positions[tp]
            for tp in {tp for tp, _o, _r in self.batch}
            if tp in consumer.positions
        }

    def _offsets_sent(self, generation: int, error: ErrorCode) -> None:
        if generation != self.generation or self._paused(self._offsets_sent, generation, error):
            return
        if error is not ErrorCode.NONE:
            self._abort(generation, f"sendOffsetsToTransaction failed with {error.name}")
            return
        if self._hook("after-offsets"):
            return
        producer = self.producer
        assert producer is not None and producer.txn is not None
        producer.txn.commit(partial(self._committed, generation))

    def _committed(self, generation: int, error: ErrorCode) -> None:
        if generation != self.generation or self._paused(self._committed, generation, error):
            return
        if error is not ErrorCode.NONE:
            self._abort(generation, f"commit failed with {error.name}")
            return
        self.ledger.committed(self.outputs)
        after = self.spec.offsets == "after-commit"
        self.events.emit(
            self.instance,
            "processor.commit",
            None,
            None,
            None,
            f"{len(self.outputs)} output record(s) committed"
            + (
                "; the input offsets are not committed yet (commitSync comes next)"
                if after
                else " and the input offsets committed together"
            ),
        )
        if after:
            if self._hook("after-commit"):
                return
            consumer = self.consumer
            assert consumer is not None
            offsets = self._batch_offsets()
            consumer.commit(offsets, partial(self._offsets_committed, generation, offsets))
            return
        self.busy = False
        self.batch = []
        if self._hook("after-commit"):
            return
        self._wake()

    def _offsets_committed(
        self, generation: int, offsets: dict[TopicPartition, int], error: ErrorCode
    ) -> None:
        """commitSync() after the transaction (offsets = "after-commit") answered. A failure
        (the group moved on) cannot undo the committed outputs: the next owner redoes them."""
        if generation != self.generation or self._paused(
            self._offsets_committed, generation, offsets, error
        ):
            return
        self.events.emit(
            self.instance,
            "processor.offsets-committed",
            None,
            None,
            None if error is ErrorCode.NONE else error.name,
            "commitSync "
            + ", ".join(f"{tp}={o}" for tp, o in sorted(offsets.items()))
            + (" done" if error is ErrorCode.NONE else " failed"),
        )
        self.busy = False
        self.batch = []
        if self._hook("after-offsets"):
            return
        self._wake()

    def _abort(self, generation: int, why: str) -> None:
        producer = self.producer
        assert producer is not None and producer.txn is not None
        if producer.txn.state is TxnClientState.FATAL_ERROR:
            self._stop_fenced(why)
            return
        self.events.emit(
            self.instance,
            "processor.abort",
            None,
            None,
            producer.txn.last_error.name if producer.txn.last_error else None,
            f"{why}: aborting the transaction",
        )
        producer.txn.abort(partial(self._aborted, generation))

    def _stop_fenced(self, why: str) -> None:
        """The transaction manager is in FATAL_ERROR: a newer instance (or the coordinator's
        timeout) took the epoch. This instance stops; its open transaction is aborted."""
        producer = self.producer
        assert producer is not None and producer.txn is not None
        error = producer.txn.last_error or ErrorCode.PRODUCER_FENCED
        self.fenced = True
        self.ledger.aborted(self.outputs)
        detail = f"{why}: fenced, this instance stops"
        self.events.emit(self.instance, "app.fenced", None, None, error.name, detail)
        self.crash("stopped: fenced by a newer instance")

    def _aborted(self, generation: int, error: ErrorCode) -> None:
        if generation != self.generation:
            return
        txn = self.producer.txn if self.producer is not None else None
        if txn is not None and txn.state is TxnClientState.FATAL_ERROR:
            # The abort's EndTxn was answered PRODUCER_FENCED: a zombie (Kafka >= 2.7).
            self._stop_fenced(f"abortTransaction failed with {error.name}")
            return
        self.ledger.aborted(self.outputs)
        consumer = self.consumer
        if consumer is not None:
            # Redo the work: back to where the batch started (its offsets never committed).
            starts: dict[TopicPartition, int] = {}
            for tp, offset, _r in self.batch:
                starts.setdefault(tp, offset)
            for tp, offset in starts.items():
                if tp in consumer.assignment:
                    consumer.seek(tp, offset)
        self.busy = False
        self.batch = []
        self._wake()

    def _produced(
        self, records: Sequence[Record], tp: TopicPartition, offset: int, error: ErrorCode
    ) -> None:
        if error is ErrorCode.NONE:
            self.ledger.in_transaction(records, tp, offset)
        else:
            self.ledger.told_many(records, tp, offset, error)

    def _assigned(self, _partitions: tuple[TopicPartition, ...]) -> dict[TopicPartition, int]:
        return {}

    def _revoked(self, _partitions: tuple[TopicPartition, ...]) -> None:
        return None

    @property
    def idle(self) -> bool:
        consumer = self.consumer
        if consumer is None or self.fenced:
            return True
        if (
            self.busy
            or not self.ready
            or self.reconfiguring is not None
            or self.scheduler.now_ms < self.stalled_until_ms
        ):
            return False
        return consumer.state == "stable" and not consumer.rejoin_needed and consumer.caught_up()

"""The application around a consumer: poll, process, commit, write to a sink.

The commit strategy decides the delivery guarantee on the consumer leg:

- ``auto``: ``enable.auto.commit``; positions are committed inside poll()
  every ``auto.commit.interval.ms`` (and before a rebalance).
- ``before-processing``: commitSync the batch's end offsets, then process
  (at most once: a crash after the commit loses the rest of the batch).
- ``after-processing``: process, then commitSync per batch or per record
  (at least once: a crash before the commit reprocesses).
- ``none``: never commit to Kafka (the sink stores the offsets).

``processing = "handoff"`` hands records to a worker and polls on at once,
so auto-commit can commit records nobody has processed yet.

Each processed record is a visible side effect noted in the ledger.  With a
sink, processing writes to the external database: ``dual-write`` (insert the
row, then commit the offset to Kafka), ``offsets-with-output`` (rows and the
next offset in ONE database transaction per batch, and on assignment seek to
the stored offset), or ``idempotent-upsert`` (upsert by message key, then
commit to Kafka).  ``restart_from = "committed"`` is the mistake that undoes
offsets-with-output: the offsets are stored with the rows, but on assignment
the application does not seek to them, so it starts from Kafka's committed
offset (or auto.offset.reset) like any consumer.

Crashes can be armed at a point in this loop (after-poll, after-commit,
after-record with a count, after-processing, after-sink-write,
before-sink-commit), so they land exactly where a lesson needs them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from broker.clients.consumer import Consumer, PolledRecord
from broker.config import ConsumerConfig
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record
from broker.scheduler import Timer
from broker.sink import Sink, SinkWriteFailed, Transaction

if TYPE_CHECKING:
    from broker.checker import Ledger
    from broker.cluster import Cluster

CRASH_POINTS = (
    "now",
    "after-poll",
    "after-commit",
    "after-record",
    "after-processing",
    "after-sink-write",
    "before-sink-commit",
)
COMMIT_STRATEGIES = ("auto", "before-processing", "after-processing", "none")
SINK_MODES = ("none", "dual-write", "offsets-with-output", "idempotent-upsert")
# Where an offsets-with-output application resumes on assignment.
RESTART_FROM = ("stored", "committed")
IDLE_POLL_MS = 100
Continuation = Callable[[int], None]  # what to do next, given the app's generation


@dataclass(frozen=True, slots=True)
class ConsumerSpec:
    name: str
    config: ConsumerConfig
    topics: tuple[str, ...]
    commit: str = "auto"
    commit_every: str = "batch"  # batch | record
    processing: str = "inline"  # inline | handoff
    processing_ms: int = 10
    sink: str = "none"
    start_ms: int = 0
    restart_from: str = "stored"  # one of RESTART_FROM (offsets-with-output only)


class ConsumerApp:
    def __init__(
        self, spec: ConsumerSpec, cluster: Cluster, ledger: Ledger, sink: Sink | None
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.group = spec.config.group_id
        self.cluster = cluster
        self.scheduler = cluster.scheduler
        self.events = cluster.events
        self.ledger = ledger
        self.sink = sink
        self.client: Consumer | None = None
        self.incarnation = 0
        self.stalled_until_ms = 0
        self.busy = False
        self.batch: list[PolledRecord] = []
        self.index = 0
        self.worker: deque[PolledRecord] = deque()
        self.worker_busy = False
        self.tx: Transaction | None = None
        self.trap: tuple[str, int] | None = None
        self._records_since_trap = 0
        self._loop_timer: Timer | None = None
        self._names: dict[TopicPartition, str] = {}
        self._generation = 0  # bumps on crash so stale timers do nothing
        # A settings change (configure) waiting for the loop to close the client, and
        # whether the close (commit, LeaveGroup) is under way.
        self.reconfiguring: ConsumerSpec | None = None
        self._leaving = False

    # -- lifecycle -------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return self.client is not None

    def start(self) -> None:
        if self.client is not None:
            return
        self.incarnation += 1
        self._generation += 1
        self.client = Consumer(
            self.instance,
            self.spec.config,
            self.spec.topics,
            self.cluster,
            self._assigned,
            self._revoked,
            self._wake,
            self._fatal,
        )
        self.events.emit(
            self.name,
            "app.start",
            detail=f"incarnation {self.incarnation}: consumer {self.instance} of group "
            f"{self.group} ({self.strategy})",
        )
        self._wake()

    @property
    def instance(self) -> str:
        return self.name if self.incarnation <= 1 else f"{self.name}#{self.incarnation}"

    @property
    def strategy(self) -> str:
        spec = self.spec
        text = f"commit={spec.commit}"
        if spec.commit == "after-processing":
            text += f" per {spec.commit_every}"
        if spec.processing == "handoff":
            text += ", processing handed off"
        if spec.sink != "none":
            text += f", sink={spec.sink}"
        return text

    def crash(self, why: str = "crashed") -> None:
        if self.client is None:
            return
        self.client.kill()
        self.client = None
        self._generation += 1
        self._drop_work()
        if self.reconfiguring is not None:  # the next incarnation starts with the new settings
            self.spec, self.reconfiguring, self._leaving = self.reconfiguring, None, False
        self.events.emit(self.name, "app.crash", detail=why)

    def restart(self) -> None:
        self.start()

    def stop(self, then: Callable[[], None] | None = None) -> None:
        """A graceful shutdown: commit (with auto-commit), leave the group; then ``then``."""
        client = self.client
        if client is None:
            return
        leave = partial(self._leave, client, self._generation, then)
        owned = {tp: o for tp, o in client.positions.items() if tp in client.assignment}
        if self.spec.config.enable_auto_commit and owned:
            client.commit(owned, leave)
        else:
            leave(ErrorCode.NONE)

    def _leave(
        self,
        client: Consumer,
        generation: int,
        then: Callable[[], None] | None,
        _error: ErrorCode,
    ) -> None:
        if self._generation == generation and self.client is client:
            client.leave()
            self.client = None
            self._generation += 1
            self._drop_work()
            if then is not None:
                then()

    # -- a settings change (the configure step) -----------------------------------------
    def reconfigure(self, spec: ConsumerSpec, change: str, at_start: bool = False) -> None:
        """New settings, the way an application gets them: once the batch in hand is done,
        ``close()`` (commit with auto-commit, LeaveGroup), then a new consumer with ``spec``
        joins the group and resumes from the committed offset. ``at_start``, or while the
        application is down, it simply starts with them."""
        if self.client is None or at_start:
            self.spec = spec
            when = "the run starts" if at_start else "it starts again"
            self.events.emit(self.name, "app.configure", detail=f"{change}: from when {when}")
            return
        self.reconfiguring = spec
        self.events.emit(
            self.name,
            "app.configure",
            detail=f"{change}: after the batch in hand, close() leaves the group; a new "
            "consumer joins and resumes from the committed offset",
        )
        self._wake()

    def _reopen(self) -> None:
        spec, self.reconfiguring, self._leaving = self.reconfiguring, None, False
        if spec is not None:
            self.spec = spec
            self.start()

    def _drop_work(self) -> None:
        """Whatever was in progress is gone with the process."""
        if self.tx is not None and self.sink is not None:
            self.sink.rollback(self.tx)
        self.tx = None
        self.busy = False
        self.batch = []
        self.worker.clear()
        self.worker_busy = False
        self.trap = None
        if self._loop_timer:
            self._loop_timer.cancel()

    def stall(self, duration_ms: int) -> None:
        if self.client is None:
            return
        self.stalled_until_ms = self.scheduler.now_ms + duration_ms
        self.client.stall(self.stalled_until_ms)
        self.events.emit(
            self.name,
            "app.stall",
            detail=f"paused for {duration_ms} ms (a long GC pause): no polls, no heartbeats",
        )
        self.scheduler.at(self.stalled_until_ms, self._stall_over, self._generation)

    def _stall_over(self, generation: int) -> None:
        if generation == self._generation and self.client is not None:
            self.events.emit(self.name, "app.resume", detail="wakes up and carries on")
            self._wake()

    def arm_crash(self, point: str, after_records: int = 1) -> None:
        if point == "now":
            self.crash("crashed")
            return
        self.trap = (point, after_records)
        self._records_since_trap = 0

    def _hook(self, point: str) -> bool:
        """True when an armed crash fires here (the caller must stop)."""
        if self.trap is None:
            return False
        wanted, count = self.trap
        if point == "after-record":
            self._records_since_trap += 1
            if wanted != point or self._records_since_trap < count:
                return False
        elif wanted != point:
            return False
        self.crash(f"crashed {point.replace('-', ' ')}")
        return True

    def _fatal(self, why: str) -> None:
        self.events.emit(self.name, "app.error", None, None, None, why)
        self.crash("stopped by an unrecoverable consumer error")

    # -- the poll loop -----------------------------------------------------------
    def _wake(self) -> None:
        if self.client is None or self.busy:
            return
        if self._loop_timer is not None and not self._loop_timer.cancelled:
            if self._loop_timer.due_ms <= self.scheduler.now_ms:
                return
            self._loop_timer.cancel()
        self._loop_timer = self.scheduler.after(0, self._loop, self._generation)

    def _paused(self, fn: Continuation, generation: int) -> bool:
        """While stalled, run ``fn`` when the stall ends instead of now."""
        if self.scheduler.now_ms < self.stalled_until_ms:
            self.scheduler.at(self.stalled_until_ms, fn, generation)
            return True
        return False

    def _loop(self, generation: int) -> None:
        self._loop_timer = None
        if generation != self._generation or self.client is None or self.busy:
            return
        if self._paused(self._loop, generation):
            return
        if self.reconfiguring is not None:
            if not self._leaving:
                self._leaving = True
                self.stop(self._reopen)
            return
        records = self.client.poll()
        if not records:
            self._commit_skipped()
            self._loop_timer = self.scheduler.after(IDLE_POLL_MS, self._loop, generation)
            return
        self.ledger.polled(self.group, self.instance, self.client.assignment_epoch, records)
        first, last = records[0], records[-1]
        self.events.emit(
            self.instance,
            "consumer.poll",
            str(first[0]),
            first[1],
            None,
            f"poll() returned {len(records)} record(s): "
            + ", ".join(f"{tp}@{o}" for tp, o, _r in records[:4])
            + ("" if len(records) <= 4 else f" ... {last[0]}@{last[1]}"),
        )
        if self._hook("after-poll"):
            return
        if self.spec.processing == "handoff":
            self.worker.extend(records)
            self._work(generation)
            self._wake()
            return
        self.busy = True
        self.batch = records
        self.index = 0
        if self.spec.commit == "before-processing":
            self._commit_then(self._end_offsets(records), self._process_next, generation)
        else:
            self._process_next(generation)

    def _commit_skipped(self) -> None:
        """The position moved with nothing to process (transaction markers, aborted
        data): commit it, as an application calling commitSync() after each poll
        would, so the committed offset does not lag behind forever."""
        client = self.client
        if client is None or self.spec.commit not in ("before-processing", "after-processing"):
            return
        if self.spec.processing != "inline" or self.worker or self.worker_busy:
            return  # a worker may still hold records below the position
        if client.commits_in_flight or client.state != "stable":
            return
        moved = {
            tp: position
            for tp, position in client.positions.items()
            if tp in client.assignment and client.committed.get(tp, 0) < position
        }
        if moved:
            client.commit(moved, _ignore_error)

    def _end_offsets(self, records: list[PolledRecord]) -> dict[TopicPartition, int]:
        """The next offset to read after ``records``, per partition: what
        commitSync() commits, the consumer's position, which may already be past
        transaction markers that followed the last record."""
        ends: dict[TopicPartition, int] = {}
        for tp, offset, _record in records:
            ends[tp] = max(ends.get(tp, 0), offset + 1)
        if self.client is not None:
            for tp in ends:
                ends[tp] = max(ends[tp], self.client.positions.get(tp, 0))
        return ends

    def _commit_then(
        self, offsets: dict[TopicPartition, int], then: Continuation, generation: int
    ) -> None:
        client = self.client
        assert client is not None

        client.commit(offsets, partial(self._committed, then, generation))

    def _committed(self, then: Continuation, generation: int, error: ErrorCode) -> None:
        if generation != self._generation:
            return
        if error is not ErrorCode.NONE:
            # CommitFailedException: this batch now belongs to someone else.
            self._abandon_batch(generation)
            return
        if self._hook("after-commit"):
            return
        then(generation)

    def _abandon_batch(self, generation: int) -> None:
        if self.tx is not None and self.sink is not None:
            self.sink.rollback(self.tx)
            self.tx = None
        self.busy = False
        self.batch = []
        if generation == self._generation:
            self._wake()

    def _process_next(self, generation: int) -> None:
        if generation != self._generation:
            return
        if self.spec.processing_ms == 0:
            # Processing takes no virtual time: the records go one after the
            # other within this step (same order, same hooks, fewer events).
            start = self.index
            finished = True
            if (
                self.trap is None
                and self.spec.sink == "none"
                and self.spec.commit_every != "record"
            ):
                # Nothing can interrupt a plain side effect: note the batch at once.
                name = self._name
                self.ledger.processed_many(
                    self.group,
                    self.instance,
                    [
                        (name(tp), offset, record.message_id)
                        for tp, offset, record in self.batch[start:]
                    ],
                )
                self.index = len(self.batch)
            while self.index < len(self.batch):
                if not self._process_record(generation):
                    finished = False  # a commit, a crash or a failure carries on from here
                    break
            self._report_processed(start)
            if finished:
                self._batch_processed(generation)
            return
        if self.index >= len(self.batch):
            self._batch_processed(generation)
            return
        self.scheduler.after(self.spec.processing_ms, self._process_one, generation)

    def _report_processed(self, start: int) -> None:
        done = self.batch[start : self.index]
        if not done:
            return
        tp, offset, _record = done[0]
        ids = [r.message_id for _tp, _o, r in done[:4]]
        more = "" if len(done) <= 4 else f" +{len(done) - 4}"
        self.events.emit(
            self.instance,
            "consumer.process",
            self._name(tp),
            offset,
            None,
            f"processed {len(done)} record(s) [{', '.join(ids)}{more}]",
        )

    def _process_one(self, generation: int) -> None:
        if generation != self._generation or self._paused(self._process_one, generation):
            return
        if self._process_record(generation):
            self._process_next(generation)

    def _process_record(self, generation: int) -> bool:
        """Process the next record of the batch; True to go straight on to the
        next one, False when something else continues (a commit, a crash)."""
        tp, offset, record = self.batch[self.index]
        if not self._effect(tp, offset, record):
            self._abandon_batch(generation)
            return False
        self.index += 1
        if self._hook("after-record"):
            return False
        if self.spec.sink in ("dual-write", "idempotent-upsert") and self._hook("after-sink-write"):
            return False
        if self.spec.commit == "after-processing" and self.spec.commit_every == "record":
            self._commit_then({tp: offset + 1}, self._process_next, generation)
            return False
        return True

    def _effect(self, tp: TopicPartition, offset: int, record: Record) -> bool:
        """Process one record: its visible side effect, or its sink write.

        The ledger notes a record as processed once its effect is durable: at
        once for a plain side effect, when the row is committed for the
        per-record sinks, and when the batch's transaction commits for
        offsets-with-output (a rolled-back transaction undid the work)."""
        mode = self.spec.sink
        sink = self.sink
        what = f"processed {record.message_id}"
        durable = True
        try:
            if mode == "dual-write" and sink is not None:
                tx = sink.begin(self.instance)
                sink.insert(tx, record.message_id, record.value)
                sink.commit(tx, self.scheduler.now_ms)
                what += f"; row inserted into {sink.name}"
            elif mode == "idempotent-upsert" and sink is not None:
                tx = sink.begin(self.instance)
                sink.upsert(tx, record.key or record.message_id, record.message_id, record.value)
                sink.commit(tx, self.scheduler.now_ms)
                what += f"; row upserted into {sink.name} by key {record.key}"
            elif mode == "offsets-with-output" and sink is not None:
                if self.tx is None:
                    self.tx = sink.begin(self.instance)
                sink.insert(self.tx, record.message_id, record.value)
                what += " (in the open database transaction)"
                durable = False
        except SinkWriteFailed as exc:
            self.events.emit(
                self.instance,
                "sink.write-failed",
                str(tp),
                offset,
                None,
                f"{exc}; reading again from "
                + ("the start of the batch" if self.tx is not None else "this record"),
            )
            self._rewind(tp, offset)
            return False
        if durable:
            self.ledger.processed(
                self.group, self.instance, self._name(tp), offset, record.message_id
            )
        if self.spec.processing_ms > 0:
            # (Zero-time processing is reported once per batch, in _process_next.)
            self.events.emit(self.instance, "consumer.process", self._name(tp), offset, None, what)
        return True

    def _name(self, tp: TopicPartition) -> str:
        name = self._names.get(tp)
        if name is None:
            name = self._names[tp] = str(tp)
        return name

    def _rewind(self, failed_tp: TopicPartition, failed_offset: int) -> None:
        """After a refused write, read again what is not in the database: the
        whole batch if its transaction was rolled back, else the failed record."""
        client = self.client
        if client is None:
            return
        if self.tx is not None:
            self.tx = None  # the database rolled it back
            starts: dict[TopicPartition, int] = {}
            for tp, offset, _record in self.batch:
                starts.setdefault(tp, offset)
        else:
            starts = {failed_tp: failed_offset}
            for tp, offset, _record in self.batch[self.index :]:
                starts.setdefault(tp, offset)
        for tp, offset in starts.items():
            client.seek(tp, offset)

    def _batch_processed(self, generation: int) -> None:
        if self.spec.sink == "offsets-with-output" and self.sink is not None:
            tx = self.tx or self.sink.begin(self.instance)
            for tp, offset in self._end_offsets(self.batch).items():
                self.sink.store_offset(tx, self.group, tp, offset)
            if self._hook("before-sink-commit"):
                return
            try:
                self.sink.commit(tx, self.scheduler.now_ms)
            except SinkWriteFailed as exc:
                self.events.emit(self.instance, "sink.write-failed", None, None, None, str(exc))
                first_tp, first_offset, _record = self.batch[0]
                self._rewind(first_tp, first_offset)  # the transaction is gone: whole batch
                self._abandon_batch(generation)
                return
            self.tx = None
            for tp, offset, record in self.batch:
                self.ledger.processed(
                    self.group, self.instance, self._name(tp), offset, record.message_id
                )
            self.events.emit(
                self.instance,
                "sink.commit",
                None,
                None,
                None,
                f"{self.sink.name}: {len(self.batch)} row(s) and offsets "
                + ", ".join(f"{tp}={o}" for tp, o in self._end_offsets(self.batch).items())
                + " committed in one transaction",
            )
            if self._hook("after-sink-write"):
                return
        if self._hook("after-processing"):
            return
        if self.spec.commit == "after-processing" and self.spec.commit_every == "batch":
            self._commit_then(self._end_offsets(self.batch), self._batch_done, generation)
        else:
            self._batch_done(generation)

    def _batch_done(self, generation: int) -> None:
        if generation != self._generation:
            return
        self.busy = False
        self.batch = []
        self._wake()

    # -- the handoff worker --------------------------------------------------------
    def _work(self, generation: int) -> None:
        if self.worker_busy or not self.worker:
            return
        self.worker_busy = True
        self.scheduler.after(self.spec.processing_ms, self._work_one, generation)

    def _work_one(self, generation: int) -> None:
        if generation != self._generation or self._paused(self._work_one, generation):
            return
        self.worker_busy = False
        if not self.worker:
            return
        tp, offset, record = self.worker.popleft()
        self._effect(tp, offset, record)
        if self._hook("after-record"):
            return
        self._work(generation)

    # -- rebalance callbacks ---------------------------------------------------------
    def _assigned(self, partitions: tuple[TopicPartition, ...]) -> dict[TopicPartition, int]:
        if self.spec.sink != "offsets-with-output" or self.sink is None:
            return {}
        seeks = {}
        for tp in partitions:
            stored = self.sink.stored_offset(self.group, tp)
            if stored is not None and self.spec.restart_from == "committed":
                self.events.emit(
                    self.instance,
                    "consumer.stored-offset-ignored",
                    str(tp),
                    stored,
                    None,
                    f"{self.sink.name} holds the next offset {stored} with the output, but the "
                    "application does not seek to it: Kafka's committed offset decides",
                )
            elif stored is not None:
                seeks[tp] = stored
                self.events.emit(
                    self.instance,
                    "consumer.seek",
                    str(tp),
                    stored,
                    None,
                    f"seek to the offset stored in {self.sink.name} with the output",
                )
        return seeks

    def _revoked(self, _partitions: tuple[TopicPartition, ...]) -> None:
        pass

    @property
    def idle(self) -> bool:
        """Nothing in progress and everything owned read and settled."""
        client = self.client
        if client is None:
            return True
        if self.reconfiguring is not None:
            return False
        if self.busy or self.worker or self.worker_busy or client.commits_in_flight:
            return False
        if self.scheduler.now_ms < self.stalled_until_ms:
            return False
        if client.state != "stable" or client.rejoin_needed:
            return False
        if not client.caught_up():
            return False
        if self.spec.commit in ("auto", "before-processing", "after-processing"):
            return all(
                client.committed.get(tp, client.first_positions.get(tp)) == client.positions.get(tp)
                for tp in client.assignment
            )
        return True


def _ignore_error(_error: ErrorCode) -> None:
    """A failed commit of skipped offsets is retried by the next idle poll."""

"""The producer client (Kafka's ``KafkaProducer``: accumulator + sender) and
the application around it.

The client batches records per partition (``batch.size``, ``linger.ms``),
sends at most ``max.in.flight.requests.per.connection`` requests per broker,
retries retriable errors (re-queued at the FRONT of the partition queue, which
reorders without idempotence), gives up after ``retries`` or
``delivery.timeout.ms``, and with ``enable.idempotence`` stamps each batch with
its producer id, epoch and a base sequence assigned once, on first send.

Simplifications (also in docs/architecture.md): one batch per Produce
request; metadata look-ups are instant reads of the controller's state; with
``acks=0`` a send counts as done the moment it is written to the network.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING

from broker.clients.metadata import MetadataRefresh
from broker.clients.transactional import TransactionManager
from broker.config import ProducerConfig
from broker.errors import ErrorCode
from broker.network import Connection, Exchange
from broker.partitioner import partition_for_key
from broker.protocol import (
    InitProducerIdRequest,
    InitProducerIdResponse,
    MetadataResponse,
    ProduceRequest,
    ProduceResponse,
    TopicPartition,
)
from broker.records import (
    BATCH_OVERHEAD_BYTES,
    NO_SEQUENCE,
    Record,
    RecordBatch,
    ids_label,
    sizes_bytes,
)
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.cluster import Cluster

# (records, partition, base offset or -1, error): one call per batch.
ResultCallback = Callable[[Sequence[Record], TopicPartition, int, ErrorCode], None]


@dataclass(slots=True, eq=False)
class ProducerBatch:
    tp: TopicPartition
    created_ms: int
    records: list[Record] = field(default_factory=list)
    size_bytes: int = BATCH_OVERHEAD_BYTES
    closed: bool = False
    attempts: int = 0
    retries: int = 0
    base_sequence: int = NO_SEQUENCE
    producer_id: int = -1
    producer_epoch: int = -1
    retry_at_ms: int = 0
    done: bool = False
    last_error: ErrorCode | None = None
    delivery_timer: Timer | None = None

    @property
    def last_sequence(self) -> int:
        return self.base_sequence + len(self.records) - 1

    def describe(self) -> str:
        text = ids_label(self.records)
        if self.base_sequence != NO_SEQUENCE:
            text += (
                f" PID {self.producer_id} epoch {self.producer_epoch} "
                f"seq {self.base_sequence}..{self.last_sequence}"
            )
        return text


@dataclass(slots=True)
class InFlight:
    batch: ProducerBatch
    exchange: Exchange
    broker: str
    timer: Timer


class Producer:
    """One ``KafkaProducer`` instance.  ``close()`` drops it without a trace,
    as a crashed process would."""

    def __init__(
        self,
        name: str,
        config: ProducerConfig,
        cluster: Cluster,
        on_result: ResultCallback,
        actor: str | None = None,
    ) -> None:
        self.name = name
        self.actor = actor or name
        self.config = config
        self.cluster = cluster
        self.scheduler = cluster.scheduler
        self.network = cluster.network
        self.events = cluster.events
        self.ledger = cluster.ledger
        self.on_result = on_result
        self.closed = False
        self.idempotent = config.enable_idempotence
        self.producer_id = -1
        self.producer_epoch = -1
        self._queues: dict[TopicPartition, deque[ProducerBatch]] = {}
        self._in_flight: dict[int, InFlight] = {}
        self._per_broker: dict[str, int] = {}
        self._next_seq: dict[TopicPartition, int] = {}
        self._last_acked_seq: dict[TopicPartition, int] = {}
        self._metadata: dict[TopicPartition, int] = {}
        self._wake_timer: Timer | None = None
        self._init_exchange: Exchange | None = None
        self._init_timer: Timer | None = None
        self._init_attempt = 0
        self._sticky: dict[str, int] = {}
        self._tps: dict[str, list[TopicPartition]] = {}
        self._rng = self.scheduler.rng(f"partitioner/{name}")
        self.network.register_client(self.actor, self._on_response, self._on_disconnect)
        self._metadata_refresh = MetadataRefresh(self)
        self.txn: TransactionManager | None = None
        if config.transactional_id is not None:
            # The application calls init_transactions(); no plain InitProducerId.
            self.txn = TransactionManager(
                self, config.transactional_id, config.transaction_timeout_ms
            )
        elif self.idempotent:
            self.scheduler.after(0, self._init_producer_id)

    # -- the application's side --------------------------------------------
    def send(self, record: Record, topic: str, partition: int | None = None) -> TopicPartition:
        return self.send_many((record,), topic, partition)

    def send_many(
        self, records: Sequence[Record], topic: str, partition: int | None = None
    ) -> TopicPartition:
        """Hand records to the accumulator, in order, as ``send()`` would one by
        one.  Records in a row bound for the same partition are appended as one
        run (``_append_run``): this is the per-record hot path of a big produce."""
        if self.closed:
            raise RuntimeError(f"{self.name}: send on a closed producer")
        tps = self._tps.get(topic)
        if tps is None:
            count = self.cluster.topics[topic].partitions
            tps = self._tps[topic] = [TopicPartition(topic, p) for p in range(count)]
        if partition is not None:
            self._append_run(tps[partition], records)
            return tps[partition]
        count = len(tps)
        tp = tps[0]
        start = 0
        for i, record in enumerate(records):
            key = record.key
            if key is not None:
                next_tp = tps[partition_for_key(key, count)]
            else:
                # The sticky partition moves on when its batch closes, so the
                # records before this one must be in their batches first.
                self._append_run(tp, records[start:i])
                start = i
                next_tp = tps[self._choose_partition(topic, None, None)]
            if next_tp is not tp:
                self._append_run(tp, records[start:i])
                tp, start = next_tp, i
        self._append_run(tp, records[start:])
        return tp

    def _append_run(self, tp: TopicPartition, records: Sequence[Record]) -> None:
        """Append records bound for ``tp`` to its open batch, opening and closing
        batches exactly as appending them one at a time would: a record joins the
        open batch if it fits (or the batch is empty: an oversized record gets a
        batch of its own), and a batch that reaches ``batch.size`` closes.

        Rather than test each record, the running total of the records' sizes
        (built in one pass) tells by bisection how many fit in the batch; the
        Python-level work is then per batch, not per record."""
        if not records:
            return
        batch_size = self.config.batch_size
        totals = list(accumulate(sizes_bytes(records)))
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = deque()
        batch = queue[-1] if queue else None
        start, before = 0, 0  # the first record not yet appended; the total before it
        while start < len(totals):
            if (
                batch is None
                or batch.closed
                or batch.attempts > 0
                or (batch.records and batch.size_bytes + totals[start] - before > batch_size)
            ):
                if batch is not None:
                    self._close_batch(batch)
                batch = self._new_batch(tp, queue)
            room = before + batch_size - batch.size_bytes
            end = max(bisect_right(totals, room, start), start + 1)
            batch.records.extend(records[start:end])
            batch.size_bytes += totals[end - 1] - before
            start, before = end, totals[end - 1]
            if batch.size_bytes >= batch_size:
                self._close_batch(batch)

    def _new_batch(self, tp: TopicPartition, queue: deque[ProducerBatch]) -> ProducerBatch:
        now = self.scheduler.now_ms
        batch = ProducerBatch(tp, now)
        batch.delivery_timer = self.scheduler.after(
            self.config.delivery_timeout_ms, self._expire, batch
        )
        queue.append(batch)
        self._wake_at(now + self.config.linger_ms)
        return batch

    def _close_batch(self, batch: ProducerBatch) -> None:
        if not batch.closed:
            batch.closed = True
            if self._sticky.get(batch.tp.topic) == batch.tp.partition:
                self._sticky.pop(batch.tp.topic, None)
            self._wake()

    def _choose_partition(self, topic: str, key: str | None, partition: int | None) -> int:
        count = self.cluster.topics[topic].partitions
        if partition is not None:
            return partition
        if key is not None:
            return partition_for_key(key, count)
        sticky = self._sticky.get(topic)
        if sticky is None:
            sticky = self._rng.randrange(count)
            self._sticky[topic] = sticky
        return sticky

    def close(self) -> None:
        """The process is gone: no more sends, no callbacks, late answers ignored."""
        self.closed = True
        for entry in self._in_flight.values():
            entry.timer.cancel()
        self._in_flight.clear()
        for queue in self._queues.values():
            for batch in queue:
                if batch.delivery_timer:
                    batch.delivery_timer.cancel()
        self._queues.clear()
        if self._wake_timer:
            self._wake_timer.cancel()
        if self._init_timer:
            self._init_timer.cancel()
        self._metadata_refresh.close()
        self.network.unregister_client(self.actor)

    @property
    def idle(self) -> bool:
        """No batch waits for an outcome (a request still in flight for a batch
        that already expired does not count: the application was told)."""
        if any(self._queues.values()):
            return False
        return all(entry.batch.done for entry in self._in_flight.values())

    def in_flight_batches(self) -> list[ProducerBatch]:
        return [entry.batch for entry in self._in_flight.values() if not entry.batch.done]

    def queued_batches(self) -> list[ProducerBatch]:
        return [b for queue in self._queues.values() for b in queue]

    def next_sequences(self) -> dict[str, int]:
        return {str(tp): seq for tp, seq in self._next_seq.items()}

    # -- InitProducerId ------------------------------------------------------
    def _init_producer_id(self) -> None:
        if self.closed or self._init_exchange is not None or self.producer_id >= 0:
            return
        brokers = sorted(self.cluster.brokers)
        target = brokers[self._init_attempt % len(brokers)]
        self._init_attempt += 1
        self.events.emit(
            self.actor,
            "init-producer-id",
            detail="asking for a producer id",
            src=self.actor,
            dst=f"broker-{target}",
        )
        exchange = self.network.send_request(
            self.actor, f"broker-{target}", InitProducerIdRequest()
        )
        self._init_exchange = exchange
        self._init_timer = self.scheduler.after(
            self.config.request_timeout_ms, self._init_failed, exchange
        )

    def _init_failed(self, exchange: Exchange) -> None:
        if self._init_exchange is not exchange:
            return
        self._init_exchange = None
        # No answer in time: the connection is suspect, as after a Produce timeout.
        self.network.close(exchange.conn, notify_client=False)
        if self._init_timer:
            self._init_timer.cancel()
        self.scheduler.after(self.config.retry_backoff_ms, self._init_producer_id)

    # -- the sender ----------------------------------------------------------
    def _wake(self) -> None:
        self._wake_at(self.scheduler.now_ms)

    def _wake_at(self, due_ms: int) -> None:
        due_ms = max(due_ms, self.scheduler.now_ms)
        timer = self._wake_timer
        if timer is not None and not timer.cancelled:
            if timer.due_ms <= due_ms:
                return
            timer.cancel()
        self._wake_timer = self.scheduler.at(due_ms, self._run_sender)

    def _run_sender(self) -> None:
        self._wake_timer = None
        if self.closed:
            return
        if self.idempotent and self.producer_id < 0:
            return  # sending starts once InitProducerId answers
        now = self.scheduler.now_ms
        next_due: int | None = None
        max_in_flight = self.config.max_in_flight_requests_per_connection
        for tp, queue in self._queues.items():
            while queue:
                batch = queue[0]
                due = self._ready_at(batch)
                if due > now:
                    next_due = due if next_due is None else min(next_due, due)
                    break
                leader = self._leader(tp)
                if leader is None:
                    retry = now + self.config.retry_backoff_ms
                    next_due = retry if next_due is None else min(next_due, retry)
                    break
                broker = f"broker-{leader}"
                if self._per_broker.get(broker, 0) >= max_in_flight:
                    break
                if max_in_flight == 1 and self._partition_in_flight(tp):
                    break  # guaranteeMessageOrder: the partition is muted
                if self.idempotent and self._must_wait_for_earlier(batch):
                    break
                if self.txn is not None and not self.txn.may_send(tp):
                    break  # waiting for AddPartitionsToTxn
                queue.popleft()
                self._send_batch(batch, broker)
        if next_due is not None:
            self._wake_at(next_due)

    def _ready_at(self, batch: ProducerBatch) -> int:
        if batch.retries > 0:
            return batch.retry_at_ms
        if batch.closed:
            return 0
        return batch.created_ms + self.config.linger_ms

    def _partition_in_flight(self, tp: TopicPartition) -> bool:
        return any(entry.batch.tp == tp for entry in self._in_flight.values())

    def _must_wait_for_earlier(self, batch: ProducerBatch) -> bool:
        """An idempotent retry goes only once no earlier sequence is in flight."""
        if batch.base_sequence == NO_SEQUENCE or batch.producer_epoch != self.producer_epoch:
            return False
        return any(
            entry.batch.tp == batch.tp
            and entry.batch.producer_epoch == self.producer_epoch
            and entry.batch.base_sequence < batch.base_sequence
            for entry in self._in_flight.values()
        )

    def _leader(self, tp: TopicPartition) -> int | None:
        leader = self._metadata.get(tp)
        if leader is None:
            fresh = self.cluster.leader_of(tp)
            if fresh is None:
                return None
            self._metadata[tp] = fresh
            leader = fresh
        return leader

    def _send_batch(self, batch: ProducerBatch, broker: str) -> None:
        tp = batch.tp
        batch.closed = True
        if self._sticky.get(tp.topic) == tp.partition:
            self._sticky.pop(tp.topic, None)
        if self.idempotent and (
            batch.base_sequence == NO_SEQUENCE or batch.producer_epoch != self.producer_epoch
        ):
            batch.base_sequence = self._next_seq.get(tp, 0)
            self._next_seq[tp] = batch.base_sequence + len(batch.records)
            batch.producer_id = self.producer_id
            batch.producer_epoch = self.producer_epoch
        record_batch = RecordBatch(
            tuple(batch.records),
            batch.producer_id,
            batch.producer_epoch,
            batch.base_sequence,
            is_transactional=self.txn is not None,
            size_bytes=batch.size_bytes,
        )
        request = ProduceRequest(
            tp,
            record_batch,
            self.config.acks,
            self.config.request_timeout_ms,
            self.config.transactional_id,
        )
        batch.attempts += 1
        self.ledger.attempted(batch.records)
        self.events.emit(
            self.actor,
            "produce.send",
            str(tp),
            None,
            None,
            f"{batch.describe()} attempt {batch.attempts} acks={self.config.acks_name}",
            src=self.actor,
            dst=broker,
        )
        exchange = self.network.send_request(self.actor, broker, request, str(tp))
        if self.config.acks == 0:
            self._complete(batch, -1)
            return
        self._per_broker[broker] = self._per_broker.get(broker, 0) + 1
        timer = self.scheduler.after(
            self.config.request_timeout_ms, self._request_timed_out, exchange.correlation_id
        )
        self._in_flight[exchange.correlation_id] = InFlight(batch, exchange, broker, timer)

    # -- answers ---------------------------------------------------------------
    def _take(self, correlation_id: int) -> InFlight | None:
        entry = self._in_flight.pop(correlation_id, None)
        if entry is not None:
            entry.timer.cancel()
            self._per_broker[entry.broker] -= 1
        return entry

    def _on_response(self, exchange: Exchange, response: object) -> None:
        if self.closed:
            return
        if isinstance(response, MetadataResponse):
            self._metadata_refresh.on_response(exchange, response)
            return
        if self.txn is not None and self.txn.owns(exchange.correlation_id):
            self.txn.on_response(exchange, response)
            return
        if isinstance(response, InitProducerIdResponse):
            self._on_init_response(exchange, response)
            return
        if not isinstance(response, ProduceResponse):
            return
        conn = exchange.conn
        if any(
            e.exchange.conn is conn and cid < exchange.correlation_id
            for cid, e in self._in_flight.items()
        ):
            # Kafka reads responses strictly in request order on a connection; an
            # answer overtaking an unanswered request means the stream is broken
            # (a lost response), so the connection is torn down.
            self.events.emit(
                self.actor,
                "response.out-of-order",
                str(response.tp),
                None,
                ErrorCode.NETWORK_EXCEPTION.name,
                f"answer #{exchange.correlation_id} arrived before an earlier request's answer; "
                f"connection to {conn.server} closed",
                src=conn.server,
                dst=self.actor,
            )
            self.network.close(conn, notify_client=False)
            self._fail_connection(conn)
            self._wake()
            return
        entry = self._take(exchange.correlation_id)
        if entry is None or entry.batch.done:
            self._wake()  # an expired batch's late answer still frees its slot
            return
        batch = entry.batch
        error = response.error
        if error is ErrorCode.NONE:
            self._complete(batch, response.base_offset, entry.broker)
        elif error is ErrorCode.DUPLICATE_SEQUENCE_NUMBER:
            self._complete(batch, -1, entry.broker)  # old brokers: success without an offset
        else:
            self._handle_error(batch, error, "from the broker")
        self._wake()

    def _on_init_response(self, exchange: Exchange, response: InitProducerIdResponse) -> None:
        if self._init_exchange is not exchange:
            return
        self._init_exchange = None
        if self._init_timer:
            self._init_timer.cancel()
        if response.error is not ErrorCode.NONE:
            self.scheduler.after(self.config.retry_backoff_ms, self._init_producer_id)
            return
        self.producer_id = response.producer_id
        self.producer_epoch = response.producer_epoch
        self.events.emit(
            self.actor,
            "producer-id.received",
            detail=f"PID {self.producer_id} epoch {self.producer_epoch}",
            src=exchange.conn.server,
            dst=self.actor,
        )
        self._wake()

    def _request_timed_out(self, correlation_id: int) -> None:
        entry = self._take(correlation_id)
        if entry is None:
            return
        conn = entry.exchange.conn
        self.events.emit(
            self.actor,
            "request.timeout",
            str(entry.batch.tp),
            None,
            ErrorCode.REQUEST_TIMED_OUT.name,
            f"no answer within request.timeout.ms={self.config.request_timeout_ms}; "
            "connection closed, outcome unknown",
        )
        self.network.close(conn, notify_client=False)
        if not entry.batch.done:
            self._handle_error(entry.batch, ErrorCode.REQUEST_TIMED_OUT, "request timed out")
        self._fail_connection(conn)
        self._wake()

    def _on_disconnect(self, conn: Connection) -> None:
        if self.closed:
            return
        if self._init_exchange is not None and self._init_exchange.conn is conn:
            self._init_failed(self._init_exchange)
        self._metadata_refresh.on_disconnect(conn)
        if self.txn is not None:
            self.txn.fail_connection(conn)
        # Kafka's NetworkClient asks for a metadata update on any disconnect: the
        # leaders it knew on that broker may have moved.
        for tp in [
            tp for tp, leader in self._metadata.items() if f"broker-{leader}" == conn.server
        ]:
            del self._metadata[tp]
        if self.config.acks == 0 and conn.lane == "":
            self._emit_disconnected(
                conn, "acks=0 sends cannot tell what it carried, the next one reconnects"
            )
        elif any(e.exchange.conn is conn for e in self._in_flight.values()):
            self._emit_disconnected(conn, "its requests' outcome is unknown")
            self._fail_connection(conn)
        self._wake()

    def _emit_disconnected(self, conn: Connection, consequence: str) -> None:
        self.events.emit(
            self.actor,
            "disconnected",
            None,
            None,
            ErrorCode.NETWORK_EXCEPTION.name,
            f"connection to {conn.server} lost; {consequence}",
            src=conn.server,
            dst=self.actor,
        )

    def _fail_connection(self, conn: Connection) -> None:
        failed = [cid for cid, e in self._in_flight.items() if e.exchange.conn is conn]
        for correlation_id in failed:
            entry = self._take(correlation_id)
            if entry is not None and not entry.batch.done:
                self._handle_error(entry.batch, ErrorCode.NETWORK_EXCEPTION, "connection lost")

    def _handle_error(self, batch: ProducerBatch, error: ErrorCode, why: str) -> None:
        batch.last_error = error
        tp = batch.tp
        if error in (
            ErrorCode.NOT_LEADER_OR_FOLLOWER,
            ErrorCode.NETWORK_EXCEPTION,
            ErrorCode.REQUEST_TIMED_OUT,
        ):
            self._metadata.pop(tp, None)
        if self.txn is not None:
            self._handle_transactional_error(batch, error)
            return
        stale_epoch = self.idempotent and batch.producer_epoch < self.producer_epoch
        if self.idempotent and error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER and not stale_epoch:
            if batch.base_sequence == self._last_acked_seq.get(tp, -1) + 1:
                # The broker lost track of a sequence we never saw fail: start over
                # under a new epoch (a local bump, KIP-360) and retry.
                self._bump_epoch(f"{error.name} for the next expected batch on {tp}")
            if self._can_retry(batch):
                self._reenqueue(batch, error)
            else:
                self._fail(batch, error)
            return
        if stale_epoch and error in (
            ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
            ErrorCode.INVALID_PRODUCER_EPOCH,
        ):
            # Sent under an epoch we have since bumped: resend under the new one.
            if self._can_retry(batch):
                self._reenqueue(batch, error)
            else:
                self._fail(batch, error)
            return
        if error.retriable and self._can_retry(batch):
            self._reenqueue(batch, error)
        else:
            self._fail(batch, error)

    def _handle_transactional_error(self, batch: ProducerBatch, error: ErrorCode) -> None:
        """In a transaction there is no local epoch bump: the transaction manager decides
        (PRODUCER_FENCED is fatal; anything else, INVALID_PRODUCER_EPOCH too, abortable)."""
        assert self.txn is not None
        if error.retriable and self._can_retry(batch):
            self._reenqueue(batch, error)
            return
        self.txn.produce_failed(error, f"Produce to {batch.tp}")
        self._fail(batch, error)

    # -- hooks for the metadata refresh ------------------------------------------
    def requests_in_flight(self, broker: str) -> int:
        return self._per_broker.get(broker, 0)

    def topics_in_use(self) -> list[str]:
        return sorted(self._tps)

    def metadata_updated(self, leaders: Sequence[tuple[TopicPartition, int | None]]) -> None:
        for tp, leader in leaders:
            if leader is None:
                self._metadata.pop(tp, None)
            else:
                self._metadata[tp] = leader
        self._wake()

    def connection_lost(self, conn: Connection) -> None:
        """A connection this client closed itself (a timed-out Metadata request):
        what was in flight on it fails as after a disconnect."""
        self._on_disconnect(conn)

    # -- hooks for the transaction manager ---------------------------------------
    def wake(self) -> None:
        self._wake()

    def adopt_producer_id(self, producer_id: int, producer_epoch: int) -> None:
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self._next_seq.clear()
        self._last_acked_seq.clear()
        self._wake()

    def idle_for_transaction(self) -> bool:
        return self.idle

    def drop_unsent(self) -> None:
        """abortTransaction: batches not yet sent are failed, never sent."""
        for queue in self._queues.values():
            while queue and queue[0].attempts == 0:
                batch = queue.popleft()
                self._fail(batch, ErrorCode.TRANSACTION_ABORTABLE, "the transaction was aborted")
            for batch in [b for b in queue if b.attempts == 0]:
                queue.remove(batch)
                self._fail(batch, ErrorCode.TRANSACTION_ABORTABLE, "the transaction was aborted")

    def fail_waiting(self, error: ErrorCode) -> None:
        """Batches waiting for their partition to join the transaction can never go."""
        assert self.txn is not None
        for tp, queue in self._queues.items():
            if tp in self.txn.added:
                continue
            while queue:
                self._fail(queue.popleft(), error, "its partition could not join the transaction")

    def _can_retry(self, batch: ProducerBatch) -> bool:
        expired = self.scheduler.now_ms >= batch.created_ms + self.config.delivery_timeout_ms
        return batch.retries < self.config.retries and not expired

    def _reenqueue(self, batch: ProducerBatch, error: ErrorCode) -> None:
        batch.retries += 1
        batch.retry_at_ms = self.scheduler.now_ms + self._backoff_ms(batch.retries)
        queue = self._queues.setdefault(batch.tp, deque())
        if self.idempotent and batch.base_sequence != NO_SEQUENCE:
            # Keep retries in sequence order, as Kafka's insertInSequenceOrder does.
            index = 0
            while (
                index < len(queue)
                and queue[index].base_sequence != NO_SEQUENCE
                and queue[index].base_sequence < batch.base_sequence
            ):
                index += 1
            queue.insert(index, batch)
        else:
            queue.appendleft(batch)
        self.events.emit(
            self.actor,
            "produce.retry",
            str(batch.tp),
            None,
            error.name,
            f"{batch.describe()} re-queued at the front, retry {batch.retries}",
        )

    def _backoff_ms(self, retries: int) -> int:
        """KIP-580: retry.backoff.ms doubling per retry up to retry.backoff.max.ms,
        with 20% jitter (drawn from the seeded stream)."""
        base = self.config.retry_backoff_ms
        cap = max(base, self.config.retry_backoff_max_ms)
        backoff = min(cap, base * (2 ** min(retries - 1, 30)))
        jitter = self._rng.uniform(0.8, 1.2) if backoff > 0 else 1.0
        return int(min(cap, backoff * jitter))

    def _bump_epoch(self, why: str) -> None:
        self.producer_epoch += 1
        for tp in list(self._next_seq):
            self._next_seq[tp] = 0
        self._last_acked_seq.clear()
        self.events.emit(
            self.actor,
            "producer.epoch-bump",
            None,
            None,
            None,
            f"PID {self.producer_id} now epoch {self.producer_epoch}, sequences restart at 0 "
            f"({why})",
        )

    def _expire(self, batch: ProducerBatch) -> None:
        if batch.done or self.closed:
            return
        queue = self._queues.get(batch.tp)
        if queue is not None and batch in queue:
            queue.remove(batch)
        # A batch whose request is in flight fails now (Kafka's Sender fails
        # expired in-flight batches), but the request stays in flight, with its
        # request.timeout.ms timer: if no answer comes, NetworkClient closes the
        # connection then, and the next batches go on a fresh one.  A late
        # answer for the failed batch is ignored.
        self._fail(batch, ErrorCode.REQUEST_TIMED_OUT, "delivery.timeout.ms expired")
        self._wake()

    def _complete(self, batch: ProducerBatch, base_offset: int, broker: str | None = None) -> None:
        batch.done = True
        if batch.delivery_timer:
            batch.delivery_timer.cancel()
        tp = batch.tp
        if self.idempotent and batch.producer_epoch == self.producer_epoch:
            self._last_acked_seq[tp] = max(self._last_acked_seq.get(tp, -1), batch.last_sequence)
        if base_offset >= 0:
            last = base_offset + len(batch.records) - 1
            span = (
                f"offsets {base_offset}..{last}"
                if last > base_offset
                else (f"offset {base_offset}")
            )
        else:
            span = "no offset (acks=0)" if self.config.acks == 0 else "no offset"
        self.events.emit(
            self.actor,
            "produce.ack",
            str(tp),
            base_offset if base_offset >= 0 else None,
            None,
            f"{batch.describe()} acknowledged: {span}",
            src=broker,
            dst=self.actor if broker else None,
        )
        self.on_result(batch.records, tp, base_offset, ErrorCode.NONE)
        if self.txn is not None:
            self.txn.check_end()

    def _fail(self, batch: ProducerBatch, error: ErrorCode, why: str = "") -> None:
        batch.done = True
        if batch.delivery_timer:
            batch.delivery_timer.cancel()
        self.events.emit(
            self.actor,
            "produce.failed",
            str(batch.tp),
            None,
            error.name,
            f"{batch.describe()} the application is told it failed" + (f" ({why})" if why else ""),
        )
        if (
            self.idempotent
            and self.txn is None
            and batch.base_sequence != NO_SEQUENCE
            and batch.attempts > 0
            and (batch.producer_epoch == self.producer_epoch)
        ):
            # The outcome of this sequence is unknown: later batches would be
            # out of order forever, so start a new epoch (KIP-360).
            self._bump_epoch(f"batch {batch.describe()} failed with {error.name}")
        if self.txn is not None and error is not ErrorCode.TRANSACTION_ABORTABLE:
            # A write of the transaction failed: it can only be aborted now.
            self.txn.abortable(error, f"a batch to {batch.tp} failed")
        self.on_result(batch.records, batch.tp, -1, error)
        if self.txn is not None:
            self.txn.check_end()

"""The transaction coordinator.

Each ``transactional.id`` lives on the broker that leads its
``__transaction_state`` partition (``abs(hash(id)) % partitions``, as for
groups).  Its metadata moves through one state table, Kafka's:

    Empty             <- Empty, CompleteCommit, CompleteAbort
    Ongoing           <- Ongoing, Empty, CompleteCommit, CompleteAbort
    PrepareCommit     <- Ongoing
    PrepareAbort      <- Ongoing, PrepareEpochFence
    CompleteCommit    <- PrepareCommit
    CompleteAbort     <- PrepareAbort
    PrepareEpochFence <- Ongoing
    Dead              <- Empty, CompleteCommit, CompleteAbort

Every transition is written to ``__transaction_state`` and takes effect only
once that record is committed; an illegal one is refused with Kafka's error
and changes nothing.  EndTxn moves to Prepare*, answers, then sends a
WriteTxnMarkers request to the leader of every partition in the transaction;
when all have written their marker the transaction is Complete*.
InitProducerId bumps the epoch (fencing older instances); if a transaction
is open it is aborted first and the caller hears CONCURRENT_TRANSACTIONS
until that is done.  A transaction open longer than transaction.timeout.ms
is fenced and aborted by the coordinator.  A broker that becomes leader of a
``__transaction_state`` partition rebuilds the metadata from it and finishes
whatever was prepared, with a higher coordinator epoch that fences markers
from the old coordinator.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from enum import Enum
from functools import partial
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode
from broker.groups import OFFSETS_TOPIC, partition_for_group
from broker.network import Connection, Exchange
from broker.protocol import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    TopicPartition,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)
from broker.records import CONTROL_ABORT, CONTROL_COMMIT, Record
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.cluster import Broker

TRANSACTION_STATE_TOPIC = "__transaction_state"
MARKER_RETRY_BACKOFF_MS = 100
MARKER_REQUEST_TIMEOUT_MS = 30000


class TxnState(Enum):
    EMPTY = "Empty"
    ONGOING = "Ongoing"
    PREPARE_COMMIT = "PrepareCommit"
    PREPARE_ABORT = "PrepareAbort"
    COMPLETE_COMMIT = "CompleteCommit"
    COMPLETE_ABORT = "CompleteAbort"
    PREPARE_EPOCH_FENCE = "PrepareEpochFence"
    DEAD = "Dead"


_COMPLETE_OR_EMPTY = frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT})

# The one table of allowed transitions: target state -> states it may come from.
ALLOWED_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: _COMPLETE_OR_EMPTY,
    TxnState.ONGOING: _COMPLETE_OR_EMPTY | {TxnState.ONGOING},
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.ONGOING}),
    TxnState.DEAD: _COMPLETE_OR_EMPTY,
}


def transition_allowed(current: TxnState, target: TxnState) -> bool:
    return current in ALLOWED_PREVIOUS[target]


@dataclass(frozen=True, slots=True)
class TxnMetadata:
    """One transactional.id's state; replaced (never mutated) by a transition."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    timeout_ms: int
    state: TxnState = TxnState.EMPTY
    partitions: tuple[TopicPartition, ...] = ()
    start_ms: int = -1

    def to_json(self) -> str:
        return json.dumps(
            {
                "transactional_id": self.transactional_id,
                "producer_id": self.producer_id,
                "producer_epoch": self.producer_epoch,
                "timeout_ms": self.timeout_ms,
                "state": self.state.value,
                "partitions": [str(tp) for tp in self.partitions],
                "start_ms": self.start_ms,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> TxnMetadata:
        data = json.loads(text)
        return cls(
            data["transactional_id"],
            data["producer_id"],
            data["producer_epoch"],
            data["timeout_ms"],
            TxnState(data["state"]),
            tuple(TopicPartition.parse(p) for p in data["partitions"]),
            data["start_ms"],
        )


@dataclass(slots=True)
class TxnEntry:
    """The coordinator's working record for one transactional.id."""

    meta: TxnMetadata
    pending: TxnState | None = None  # a transition being written to the log
    markers_left: set[TopicPartition] = field(default_factory=set)
    timeout_timer: Timer | None = None


def partition_for_transactional_id(transactional_id: str, partitions: int) -> int:
    return partition_for_group(transactional_id, partitions)


class TransactionCoordinator:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.scheduler = broker.scheduler
        self.network = broker.network
        self.events = broker.events
        self.entries: dict[str, TxnEntry] = {}
        self.coordinator_epochs: dict[TopicPartition, int] = {}
        self._markers: dict[int, tuple[str, TopicPartition]] = {}  # correlation -> (id, tp)

    # -- placement and loading -----------------------------------------------
    def _partition(self, transactional_id: str) -> TopicPartition:
        partitions = self.broker.cluster.transaction_state_partitions
        return TopicPartition(
            TRANSACTION_STATE_TOPIC, partition_for_transactional_id(transactional_id, partitions)
        )

    def _owns(self, tp: TopicPartition) -> bool:
        replica = self.broker.replicas.get(tp)
        return replica is not None and replica.role == "leader"

    def load(self, tp: TopicPartition) -> None:
        """Become coordinator for the ids in ``tp``: rebuild from its log and
        finish what was prepared (with a new coordinator epoch)."""
        replica = self.broker.replicas[tp]
        self.coordinator_epochs[tp] = replica.leader_epoch
        log = replica.log
        latest: dict[str, TxnMetadata] = {}
        for _offset, lb, i in log.records_below(log.log_end_offset):
            record = lb.batch.records[i]
            meta = TxnMetadata.from_json(record.value)
            latest[meta.transactional_id] = meta
        for transactional_id, meta in latest.items():
            entry = TxnEntry(meta)
            self.entries[transactional_id] = entry
            if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
                self._send_markers(entry)
            elif meta.state is TxnState.PREPARE_EPOCH_FENCE:
                self._abort_fenced(entry)
            elif meta.state is TxnState.ONGOING:
                self._arm_timeout(entry)
        if latest:
            self._emit(
                None,
                "txn.loaded",
                f"coordinator for {', '.join(sorted(latest))} "
                f"at coordinator epoch {replica.leader_epoch}: state rebuilt from the log",
            )

    def unload(self, tp: TopicPartition) -> None:
        for transactional_id in [t for t in self.entries if self._partition(t) == tp]:
            entry = self.entries.pop(transactional_id)
            if entry.timeout_timer:
                entry.timeout_timer.cancel()
        self.coordinator_epochs.pop(tp, None)

    def unload_all(self) -> None:
        for entry in self.entries.values():
            if entry.timeout_timer:
                entry.timeout_timer.cancel()
        self.entries.clear()
        self.coordinator_epochs.clear()
        self._markers.clear()

    def metadata(self, transactional_id: str) -> TxnMetadata | None:
        entry = self.entries.get(transactional_id)
        return entry.meta if entry else None

    # -- transitions (the one place state changes) ----------------------------------
    def _emit(
        self, transactional_id: str | None, kind: str, detail: str, error: str | None = None
    ) -> None:
        prefix = f"{transactional_id}: " if transactional_id else ""
        self.events.emit(self.broker.name, kind, None, None, error, prefix + detail)

    def _transition(
        self, entry: TxnEntry, target: TxnState, then: Any, **changes: Any
    ) -> ErrorCode:
        """Write the new state to __transaction_state; apply it once committed, then
        call ``then(error)``.  An illegal transition is refused, changing nothing."""
        current = entry.meta.state
        if entry.pending is not None:
            return ErrorCode.CONCURRENT_TRANSACTIONS
        if not transition_allowed(current, target):
            self._emit(
                entry.meta.transactional_id,
                "txn.illegal-transition",
                f"{current.value} -> {target.value} refused",
                ErrorCode.INVALID_TXN_STATE.name,
            )
            return ErrorCode.INVALID_TXN_STATE
        new = replace(entry.meta, state=target, **changes)
        entry.pending = target
        record = Record(
            f"{TRANSACTION_STATE_TOPIC}#{self.broker.cluster.next_internal_record()}",
            f"txn/{new.transactional_id}",
            new.to_json(),
        )
        self.broker.append_internal(
            self._partition(new.transactional_id),
            (record,),
            5000,
            partial(self._transition_logged, entry, new, then),
        )
        return ErrorCode.NONE

    def _transition_logged(
        self, entry: TxnEntry, new: TxnMetadata, then: Any, error: ErrorCode, _offset: int
    ) -> None:
        entry.pending = None
        if self.entries.get(new.transactional_id) is not entry:
            return  # no longer coordinator
        if error is not ErrorCode.NONE:
            then(ErrorCode.COORDINATOR_NOT_AVAILABLE)
            return
        old = entry.meta
        entry.meta = new
        self._emit(
            new.transactional_id,
            "txn.state",
            f"{old.state.value} -> {new.state.value} (PID {new.producer_id} epoch "
            f"{new.producer_epoch}"
            + (
                f", partitions {', '.join(str(tp) for tp in new.partitions)}"
                if new.partitions
                else ""
            )
            + ")",
        )
        then(ErrorCode.NONE)

    # -- requests ---------------------------------------------------------------
    def handle(self, exchange: Exchange, request: Any) -> None:
        tp = self._partition(request.transactional_id)
        if not self._owns(tp):
            self._answer(exchange, request, ErrorCode.NOT_COORDINATOR)
            return
        if isinstance(request, InitProducerIdRequest):
            self._init_producer_id(exchange, request)
            return
        entry = self.entries.get(request.transactional_id)
        if entry is None or entry.meta.producer_id != request.producer_id:
            self._answer(exchange, request, ErrorCode.INVALID_PRODUCER_ID_MAPPING)
            return
        if request.producer_epoch < entry.meta.producer_epoch:
            self._emit(
                request.transactional_id,
                "txn.fenced",
                f"epoch {request.producer_epoch} < {entry.meta.producer_epoch}",
                ErrorCode.PRODUCER_FENCED.name,
            )
            self._answer(exchange, request, ErrorCode.PRODUCER_FENCED)
            return
        if isinstance(request, (AddPartitionsToTxnRequest, AddOffsetsToTxnRequest)):
            self._add_partitions(entry, exchange, request)
        elif isinstance(request, EndTxnRequest):
            self._end_txn(entry, exchange, request)

    def _answer(self, exchange: Exchange, request: Any, error: ErrorCode) -> None:
        response: Any
        if isinstance(request, InitProducerIdRequest):
            response = InitProducerIdResponse(error)
        elif isinstance(request, AddPartitionsToTxnRequest):
            response = AddPartitionsToTxnResponse(error)
        elif isinstance(request, AddOffsetsToTxnRequest):
            response = AddOffsetsToTxnResponse(error)
        else:
            response = EndTxnResponse(error)
        self.network.send_response(exchange, response)

    def _init_producer_id(self, exchange: Exchange, request: InitProducerIdRequest) -> None:
        assert request.transactional_id is not None
        entry = self.entries.get(request.transactional_id)
        if entry is None:
            producer_id = self.broker.cluster.allocate_producer_id()
            entry = TxnEntry(
                TxnMetadata(
                    request.transactional_id, producer_id, -1, request.transaction_timeout_ms
                )
            )
            self.entries[request.transactional_id] = entry
        if entry.pending is not None or entry.meta.state in (
            TxnState.PREPARE_COMMIT,
            TxnState.PREPARE_ABORT,
            TxnState.PREPARE_EPOCH_FENCE,
        ):
            self._answer(exchange, request, ErrorCode.CONCURRENT_TRANSACTIONS)
            return
        if entry.meta.state is TxnState.ONGOING:
            # A new instance while a transaction is open: fence the old one and
            # abort its transaction; the caller retries until that is done.
            self._emit(
                request.transactional_id,
                "txn.fence",
                "a new instance called initTransactions: fencing the old one and "
                "aborting its open transaction",
            )
            self._fence_and_abort(entry)
            self._answer(exchange, request, ErrorCode.CONCURRENT_TRANSACTIONS)
            return
        error = self._transition(
            entry,
            TxnState.EMPTY,
            partial(self._initialized, entry, exchange),
            producer_epoch=entry.meta.producer_epoch + 1,
            timeout_ms=request.transaction_timeout_ms,
            partitions=(),
            start_ms=-1,
        )
        if error is not ErrorCode.NONE:
            self._answer(exchange, request, error)

    def _initialized(self, entry: TxnEntry, exchange: Exchange, error: ErrorCode) -> None:
        meta = entry.meta
        if error is ErrorCode.NONE:
            response = InitProducerIdResponse(error, meta.producer_id, meta.producer_epoch)
        else:
            response = InitProducerIdResponse(error)
        self.network.send_response(exchange, response)

    def _add_partitions(self, entry: TxnEntry, exchange: Exchange, request: Any) -> None:
        if isinstance(request, AddOffsetsToTxnRequest):
            partitions: tuple[TopicPartition, ...] = (
                TopicPartition(
                    OFFSETS_TOPIC,
                    partition_for_group(request.group_id, self.broker.cluster.offsets_partitions),
                ),
            )
        else:
            partitions = request.partitions
        meta = entry.meta
        if entry.pending is not None or meta.state not in ALLOWED_PREVIOUS[TxnState.ONGOING]:
            error = (
                ErrorCode.CONCURRENT_TRANSACTIONS
                if entry.pending is not None or meta.state.value.startswith("Prepare")
                else ErrorCode.INVALID_TXN_STATE
            )
            self._answer(exchange, request, error)
            return
        if meta.state is TxnState.ONGOING and set(partitions) <= set(meta.partitions):
            self._answer(exchange, request, ErrorCode.NONE)
            return
        merged = tuple(sorted(set(meta.partitions) | set(partitions)))
        start = meta.start_ms if meta.state is TxnState.ONGOING else self.scheduler.now_ms
        error = self._transition(
            entry,
            TxnState.ONGOING,
            partial(self._added, entry, exchange, request),
            partitions=merged,
            start_ms=start,
        )
        if error is not ErrorCode.NONE:
            self._answer(exchange, request, error)

    def _added(self, entry: TxnEntry, exchange: Exchange, request: Any, error: ErrorCode) -> None:
        if error is ErrorCode.NONE:
            self._arm_timeout(entry)
        self._answer(exchange, request, error)

    def _end_txn(self, entry: TxnEntry, exchange: Exchange, request: EndTxnRequest) -> None:
        meta = entry.meta
        state = meta.state
        wanted = TxnState.COMPLETE_COMMIT if request.commit else TxnState.COMPLETE_ABORT
        if entry.pending is not None or state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            self._answer(exchange, request, ErrorCode.CONCURRENT_TRANSACTIONS)
            return
        if state in (TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
            # A retried EndTxn after completion succeeds; the other outcome cannot.
            self._answer(
                exchange,
                request,
                ErrorCode.NONE if state is wanted else ErrorCode.INVALID_TXN_STATE,
            )
            return
        if state is not TxnState.ONGOING:
            self._emit(
                meta.transactional_id,
                "txn.illegal-transition",
                f"EndTxn in state {state.value}",
                ErrorCode.INVALID_TXN_STATE.name,
            )
            self._answer(exchange, request, ErrorCode.INVALID_TXN_STATE)
            return
        target = TxnState.PREPARE_COMMIT if request.commit else TxnState.PREPARE_ABORT
        self._transition(entry, target, partial(self._prepared, entry, exchange, request))

    def _prepared(
        self, entry: TxnEntry, exchange: Exchange, request: EndTxnRequest, error: ErrorCode
    ) -> None:
        self._answer(exchange, request, error)
        if error is ErrorCode.NONE:
            self._send_markers(entry)

    # -- fencing, timeouts, markers ---------------------------------------------
    def _fence_and_abort(self, entry: TxnEntry) -> None:
        self._transition(
            entry,
            TxnState.PREPARE_EPOCH_FENCE,
            partial(self._fenced, entry),
            producer_epoch=entry.meta.producer_epoch + 1,
        )

    def _fenced(self, entry: TxnEntry, error: ErrorCode) -> None:
        if error is ErrorCode.NONE:
            self._abort_fenced(entry)
        else:
            self._retry(self._fence_and_abort, entry)

    def _abort_fenced(self, entry: TxnEntry) -> None:
        self._transition(entry, TxnState.PREPARE_ABORT, partial(self._abort_prepared, entry))

    def _abort_prepared(self, entry: TxnEntry, error: ErrorCode) -> None:
        if error is ErrorCode.NONE:
            self._send_markers(entry)
        else:
            self._retry(self._abort_fenced, entry)

    def _retry(self, step: Any, entry: TxnEntry) -> None:
        """The coordinator's own transition could not be logged (its log lost the
        ISR it needs): try again shortly, while it is still the coordinator."""
        self.scheduler.after(MARKER_RETRY_BACKOFF_MS, self._retry_now, step, entry)

    def _retry_now(self, step: Any, entry: TxnEntry) -> None:
        if self.entries.get(entry.meta.transactional_id) is entry and entry.pending is None:
            step(entry)

    def _arm_timeout(self, entry: TxnEntry) -> None:
        if entry.timeout_timer:
            entry.timeout_timer.cancel()
        meta = entry.meta
        due = max(self.scheduler.now_ms, meta.start_ms + meta.timeout_ms)
        entry.timeout_timer = self.scheduler.at(due, self._timed_out, entry, meta.start_ms)

    def _timed_out(self, entry: TxnEntry, start_ms: int) -> None:
        entry.timeout_timer = None
        meta = entry.meta
        if meta.state is not TxnState.ONGOING or meta.start_ms != start_ms:
            return
        if self.entries.get(meta.transactional_id) is not entry:
            return
        self._emit(
            meta.transactional_id,
            "txn.timeout",
            f"open longer than transaction.timeout.ms={meta.timeout_ms}: the coordinator "
            "fences the producer (epoch + 1) and aborts",
        )
        self._fence_and_abort(entry)

    def _send_markers(self, entry: TxnEntry) -> None:
        meta = entry.meta
        entry.markers_left = set(meta.partitions)
        if not entry.markers_left:
            self._complete(entry)
            return
        for tp in sorted(entry.markers_left):
            self._send_marker(meta.transactional_id, tp)

    def _send_marker(self, transactional_id: str, tp: TopicPartition) -> None:
        entry = self.entries.get(transactional_id)
        if entry is None or tp not in entry.markers_left or not self.broker.alive:
            return
        meta = entry.meta
        leader = self.broker.cluster.leader_of(tp)
        if leader is None:
            self.scheduler.after(MARKER_RETRY_BACKOFF_MS, self._send_marker, transactional_id, tp)
            return
        coordinator_tp = self._partition(transactional_id)
        request = WriteTxnMarkersRequest(
            tp,
            meta.producer_id,
            meta.producer_epoch,
            self.coordinator_epochs.get(coordinator_tp, 0),
            meta.state is TxnState.PREPARE_COMMIT,
        )
        exchange = self.network.send_request(self.broker.name, f"broker-{leader}", request, str(tp))
        self.events.emit(
            self.broker.name,
            "txn.marker-request",
            str(tp),
            None,
            None,
            f"WriteTxnMarkers {CONTROL_COMMIT if request.commit else CONTROL_ABORT} for "
            f"{transactional_id} (PID {meta.producer_id} epoch {meta.producer_epoch})",
            src=self.broker.name,
            dst=f"broker-{leader}",
        )
        self._markers[exchange.correlation_id] = (transactional_id, tp)
        self.scheduler.after(MARKER_REQUEST_TIMEOUT_MS, self._marker_timed_out, exchange)

    def _marker_timed_out(self, exchange: Exchange) -> None:
        target = self._markers.pop(exchange.correlation_id, None)
        if target is not None:
            self.network.close(exchange.conn, notify_client=False)
            self._send_marker(*target)

    def on_response(self, exchange: Exchange, response: WriteTxnMarkersResponse) -> None:
        target = self._markers.pop(exchange.correlation_id, None)
        if target is None:
            return
        transactional_id, tp = target
        self.events.emit(
            self.broker.name,
            "txn.marker-response",
            str(tp),
            None,
            None if response.error is ErrorCode.NONE else response.error.name,
            f"WriteTxnMarkers for {transactional_id}",
            src=exchange.conn.server,
            dst=self.broker.name,
        )
        entry = self.entries.get(transactional_id)
        if entry is None:
            return
        if response.error is ErrorCode.TRANSACTION_COORDINATOR_FENCED:
            return  # a newer coordinator owns this transaction now
        if response.error is not ErrorCode.NONE:
            self.scheduler.after(MARKER_RETRY_BACKOFF_MS, self._send_marker, transactional_id, tp)
            return
        entry.markers_left.discard(tp)
        if not entry.markers_left:
            self._complete(entry)

    def on_disconnect(self, conn: Connection) -> None:
        for correlation_id, target in list(self._markers.items()):
            if self.broker.cluster.leader_of(target[1]) is not None and (
                conn.server == f"broker-{self.broker.cluster.leader_of(target[1])}"
            ):
                del self._markers[correlation_id]
                self.scheduler.after(MARKER_RETRY_BACKOFF_MS, self._send_marker, *target)

    def _complete(self, entry: TxnEntry) -> None:
        target = (
            TxnState.COMPLETE_COMMIT
            if entry.meta.state is TxnState.PREPARE_COMMIT
            else TxnState.COMPLETE_ABORT
        )
        self._transition(entry, target, partial(self._completed, entry), partitions=(), start_ms=-1)

    def _completed(self, entry: TxnEntry, error: ErrorCode) -> None:
        if error is not ErrorCode.NONE:
            self._retry(self._complete, entry)

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "transactional_id": e.meta.transactional_id,
                "coordinator": self.broker.broker_id,
                "producer_id": e.meta.producer_id,
                "producer_epoch": e.meta.producer_epoch,
                "state": e.meta.state.value,
                "pending": e.pending.value if e.pending else None,
                "partitions": [str(tp) for tp in e.meta.partitions],
                "timeout_ms": e.meta.timeout_ms,
            }
            for e in self.entries.values()
        ]

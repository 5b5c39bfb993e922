"""The producer's transaction manager (Kafka's client ``TransactionManager``).

States and the moves between them, as Kafka's client allows them:

    UNINITIALIZED -> INITIALIZING -> READY -> IN_TRANSACTION
    IN_TRANSACTION -> COMMITTING_TRANSACTION -> READY
    IN_TRANSACTION | ABORTABLE_ERROR -> ABORTING_TRANSACTION -> READY
    IN_TRANSACTION | COMMITTING_TRANSACTION -> ABORTABLE_ERROR (only abort is allowed then)
    any -> FATAL_ERROR (fenced: PRODUCER_FENCED from a coordinator)

A Produce refused with INVALID_PRODUCER_EPOCH is abortable, not fatal (Kafka >= 2.7, KIP-588:
``TransactionManager.maybeTransitionToErrorState`` makes only PRODUCER_FENCED and the
authorization errors fatal). A partition leader cannot tell a zombie from a producer whose
transaction the coordinator timed out, so the application is let to abort; the coordinator,
which can tell, answers that abort's EndTxn with PRODUCER_FENCED, and that is fatal.

``initTransactions`` asks the coordinator for the producer id and epoch of
the ``transactional.id`` (fencing older instances); before the first write to
a partition the manager sends AddPartitionsToTxn and the sender holds that
partition's batches until it is added; ``sendOffsetsToTransaction`` sends
AddOffsetsToTxn then TxnOffsetCommit to the group coordinator with the
consumer's member id and generation (KIP-447); commit waits for every batch,
then EndTxn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode
from broker.groups import OFFSETS_TOPIC, partition_for_group
from broker.network import Exchange
from broker.protocol import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    InitProducerIdResponse,
    TopicPartition,
    TxnOffsetCommitRequest,
)
from broker.scheduler import Timer
from broker.transactions import TRANSACTION_STATE_TOPIC, partition_for_transactional_id

if TYPE_CHECKING:
    from broker.clients.producer import Producer

Done = Callable[[ErrorCode], None]


class TxnClientState(Enum):
    UNINITIALIZED = "UNINITIALIZED"
    INITIALIZING = "INITIALIZING"
    READY = "READY"
    IN_TRANSACTION = "IN_TRANSACTION"
    COMMITTING_TRANSACTION = "COMMITTING_TRANSACTION"
    ABORTING_TRANSACTION = "ABORTING_TRANSACTION"
    ABORTABLE_ERROR = "ABORTABLE_ERROR"
    FATAL_ERROR = "FATAL_ERROR"


S = TxnClientState
CLIENT_ALLOWED_PREVIOUS: dict[TxnClientState, frozenset[TxnClientState]] = {
    S.UNINITIALIZED: frozenset({S.READY, S.ABORTABLE_ERROR}),
    S.INITIALIZING: frozenset({S.UNINITIALIZED, S.ABORTING_TRANSACTION}),
    S.READY: frozenset({S.INITIALIZING, S.COMMITTING_TRANSACTION, S.ABORTING_TRANSACTION}),
    S.IN_TRANSACTION: frozenset({S.READY}),
    S.COMMITTING_TRANSACTION: frozenset({S.IN_TRANSACTION}),
    S.ABORTING_TRANSACTION: frozenset({S.IN_TRANSACTION, S.ABORTABLE_ERROR}),
    S.ABORTABLE_ERROR: frozenset(
        {S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.ABORTABLE_ERROR, S.INITIALIZING}
    ),
    S.FATAL_ERROR: frozenset(TxnClientState),
}
_RETRY = (
    ErrorCode.CONCURRENT_TRANSACTIONS,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.REQUEST_TIMED_OUT,
    ErrorCode.NETWORK_EXCEPTION,
)
# From a coordinator (old coordinators answer INVALID_PRODUCER_EPOCH where new ones say
# PRODUCER_FENCED; Kafka's client treats both as fenced).
_FATAL = (
    ErrorCode.PRODUCER_FENCED,
    ErrorCode.INVALID_PRODUCER_EPOCH,
    ErrorCode.INVALID_PRODUCER_ID_MAPPING,
)
# From a partition leader: only these end the producer; anything else there is abortable.
_FATAL_ON_PRODUCE = (ErrorCode.PRODUCER_FENCED,)


class IllegalTxnState(Exception):
    """An API call the current transaction state does not allow (a programming
    error of the application, as Kafka's IllegalStateException)."""


@dataclass(slots=True)
class _Call:
    kind: str
    request: Any
    done: Done | None
    exchange: Exchange
    timer: Timer


class TransactionManager:
    def __init__(self, producer: Producer, transactional_id: str, timeout_ms: int) -> None:
        self.producer = producer
        self.transactional_id = transactional_id
        self.timeout_ms = timeout_ms
        self.state = TxnClientState.UNINITIALIZED
        self.added: set[TopicPartition] = set()
        self.adding: set[TopicPartition] = set()
        self.wanted: set[TopicPartition] = set()
        self.failed_in_txn: ErrorCode | None = None
        self.last_error: ErrorCode | None = None
        self._calls: dict[int, _Call] = {}
        self._ending: tuple[bool, Done] | None = None  # (commit?, done) waiting for batches
        self._offsets_in_flight = 0
        self._pending_offsets: TxnOffsetCommitRequest | None = None

    # -- state ------------------------------------------------------------------
    def _to(self, target: TxnClientState, why: str = "") -> None:
        if self.state not in CLIENT_ALLOWED_PREVIOUS[target]:
            raise IllegalTxnState(
                f"{self.producer.actor}: cannot go from {self.state.value} to {target.value}"
            )
        if target is not self.state:
            self.producer.events.emit(
                self.producer.actor,
                "txn.client-state",
                None,
                None,
                self.last_error.name
                if target in (S.ABORTABLE_ERROR, S.FATAL_ERROR) and self.last_error
                else None,
                f"{self.state.value} -> {target.value}" + (f" ({why})" if why else ""),
            )
        self.state = target

    def abortable(self, error: ErrorCode, why: str) -> None:
        if self.state in (S.IN_TRANSACTION, S.COMMITTING_TRANSACTION, S.ABORTABLE_ERROR):
            self.last_error = error
            self.failed_in_txn = error
            self._to(S.ABORTABLE_ERROR, why)

    def produce_failed(self, error: ErrorCode, why: str) -> None:
        """A batch of the transaction failed for good at its partition leader."""
        if error in _FATAL_ON_PRODUCE:
            self.fatal(error, why)
        else:
            self.abortable(error, why)

    def fatal(self, error: ErrorCode, why: str) -> None:
        if self.state is not S.FATAL_ERROR:
            self.last_error = error
            self._to(S.FATAL_ERROR, why)

    # -- talking to coordinators ---------------------------------------------------
    def _coordinator(self) -> int | None:
        tp = TopicPartition(
            TRANSACTION_STATE_TOPIC,
            partition_for_transactional_id(
                self.transactional_id, self.producer.cluster.transaction_state_partitions
            ),
        )
        return self.producer.cluster.leader_of(tp)

    def _send(self, kind: str, request: Any, done: Done | None, broker: int | None = None) -> None:
        producer = self.producer
        if producer.closed:
            return  # the process is gone: a closed producer sends nothing, retries included
        target = self._coordinator() if broker is None else broker
        if target is None:
            producer.scheduler.after(
                producer.config.retry_backoff_ms, self._send, kind, request, done, broker
            )
            return
        exchange = producer.network.send_request(producer.actor, f"broker-{target}", request)
        producer.events.emit(
            producer.actor,
            "txn.request",
            detail=f"{request.api} #{exchange.correlation_id} for {self.transactional_id}",
            src=producer.actor,
            dst=f"broker-{target}",
        )
        timer = producer.scheduler.after(
            producer.config.request_timeout_ms, self._timed_out, exchange.correlation_id
        )
        self._calls[exchange.correlation_id] = _Call(kind, request, done, exchange, timer)

    @property
    def busy(self) -> bool:
        """Requests to a coordinator are still waiting for an answer."""
        return bool(self._calls)

    def owns(self, correlation_id: int) -> bool:
        return correlation_id in self._calls

    def _timed_out(self, correlation_id: int) -> None:
        call = self._calls.pop(correlation_id, None)
        if call is not None and not self.producer.closed:
            self.producer.network.close(call.exchange.conn, notify_client=False)
            self._answered(call, ErrorCode.REQUEST_TIMED_OUT, None)

    def fail_connection(self, conn: Any) -> None:
        for cid in [c for c, call in self._calls.items() if call.exchange.conn is conn]:
            call = self._calls.pop(cid)
            call.timer.cancel()
            self._answered(call, ErrorCode.NETWORK_EXCEPTION, None)

    def on_response(self, exchange: Exchange, response: Any) -> None:
        call = self._calls.pop(exchange.correlation_id, None)
        if call is None:
            return
        call.timer.cancel()
        error = response.error
        self.producer.events.emit(
            self.producer.actor,
            "txn.response",
            error=None if error is ErrorCode.NONE else error.name,
            detail=f"{call.request.api} #{exchange.correlation_id}",
            src=exchange.conn.server,
            dst=self.producer.actor,
        )
        self._answered(call, error, response)

    def _answered(self, call: _Call, error: ErrorCode, response: Any) -> None:
        retry_ms = self.producer.config.retry_backoff_ms
        if error in _RETRY:
            self.producer.scheduler.after(retry_ms, self._resend, call)
            return
        getattr(self, f"_after_{call.kind.replace('-', '_')}")(call, error, response)

    def _resend(self, call: _Call) -> None:
        if not self.producer.closed:
            broker = None
            if call.kind == "txn-offset-commit":
                broker = self._group_coordinator(call.request.group_id)
            self._send(call.kind, call.request, call.done, broker)

    # -- initTransactions ---------------------------------------------------------------
    def init_transactions(self, done: Done) -> None:
        self._to(S.INITIALIZING)
        self._send(
            "init",
            InitProducerIdRequest(self.transactional_id, transaction_timeout_ms=self.timeout_ms),
            done,
        )

    def _after_init(self, call: _Call, error: ErrorCode, response: Any) -> None:
        done = call.done
        assert done is not None
        if error is not ErrorCode.NONE:
            self.fatal(error, "initTransactions failed")
            done(error)
            return
        assert isinstance(response, InitProducerIdResponse)
        self.producer.adopt_producer_id(response.producer_id, response.producer_epoch)
        self._to(S.READY, f"PID {response.producer_id} epoch {response.producer_epoch}")
        done(ErrorCode.NONE)

    # -- the transaction ----------------------------------------------------------------
    def begin(self) -> None:
        self._to(S.IN_TRANSACTION)
        self.added.clear()
        self.adding.clear()
        self.wanted.clear()
        self.failed_in_txn = None

    def may_send(self, tp: TopicPartition) -> bool:
        """Batches for ``tp`` go only once the coordinator has it in the transaction."""
        if tp in self.added:
            return True
        if self.state in (S.IN_TRANSACTION, S.COMMITTING_TRANSACTION):
            self.wanted.add(tp)
            self._add_wanted()
        return False

    def _add_wanted(self) -> None:
        if self.adding:
            return
        todo = tuple(sorted(self.wanted - self.added))
        if not todo:
            return
        self.adding = set(todo)
        producer = self.producer
        self._send(
            "add-partitions",
            AddPartitionsToTxnRequest(
                self.transactional_id, producer.producer_id, producer.producer_epoch, todo
            ),
            None,
        )

    def _after_add_partitions(self, call: _Call, error: ErrorCode, _response: Any) -> None:
        partitions = call.request.partitions
        self.adding.clear()
        if error is ErrorCode.NONE:
            self.added.update(partitions)
            self.producer.events.emit(
                self.producer.actor,
                "txn.partitions-added",
                None,
                None,
                None,
                ", ".join(str(tp) for tp in partitions),
            )
            self.producer.wake()
            self._add_wanted()
            self.check_end()
            return
        if error in _FATAL:
            self.fatal(error, "AddPartitionsToTxn")
        else:
            self.abortable(error, "AddPartitionsToTxn")
        self.producer.fail_waiting(error)
        self.check_end()

    def send_offsets(
        self,
        offsets: dict[TopicPartition, int],
        group_id: str,
        member_id: str,
        generation: int,
        done: Done,
    ) -> None:
        if self.state is not S.IN_TRANSACTION:
            raise IllegalTxnState(f"sendOffsetsToTransaction in {self.state.value}")
        producer = self.producer
        self._offsets_in_flight += 1
        request = AddOffsetsToTxnRequest(
            self.transactional_id, producer.producer_id, producer.producer_epoch, group_id
        )
        self._send("add-offsets", request, done)
        self._pending_offsets = TxnOffsetCommitRequest(
            self.transactional_id,
            group_id,
            producer.producer_id,
            producer.producer_epoch,
            member_id,
            generation,
            tuple(sorted(offsets.items())),
        )

    def _group_coordinator(self, group_id: str) -> int | None:
        cluster = self.producer.cluster
        tp = TopicPartition(
            OFFSETS_TOPIC, partition_for_group(group_id, cluster.offsets_partitions)
        )
        return cluster.leader_of(tp)

    def _after_add_offsets(self, call: _Call, error: ErrorCode, _response: Any) -> None:
        if error is not ErrorCode.NONE:
            self._offsets_done(call.done, error, "AddOffsetsToTxn")
            return
        request = self._pending_offsets
        assert request is not None
        self._send(
            "txn-offset-commit", request, call.done, self._group_coordinator(request.group_id)
        )

    def _after_txn_offset_commit(self, call: _Call, error: ErrorCode, _response: Any) -> None:
        self._offsets_done(call.done, error, "TxnOffsetCommit")

    def _offsets_done(self, done: Done | None, error: ErrorCode, what: str) -> None:
        self._offsets_in_flight -= 1
        if error in _FATAL:
            self.fatal(error, what)
        elif error is not ErrorCode.NONE:
            # KIP-447: a commit from an old generation means the group moved on.
            self.abortable(error, what)
        if done is not None:
            done(error)
        self.check_end()

    def commit(self, done: Done) -> None:
        self._to(S.COMMITTING_TRANSACTION)
        self._ending = (True, done)
        self.check_end()

    def abort(self, done: Done) -> None:
        self._to(S.ABORTING_TRANSACTION)
        self.producer.drop_unsent()
        self._ending = (False, done)
        self.check_end()

    def check_end(self) -> None:
        """EndTxn once every batch of the transaction has its answer."""
        if self._ending is None:
            return
        if not self.producer.idle_for_transaction() or self._offsets_in_flight or self.adding:
            return
        commit, done = self._ending
        if commit and self.failed_in_txn is not None:
            self._ending = None
            if self.state is S.COMMITTING_TRANSACTION:
                self._to(S.ABORTABLE_ERROR, "a write of the transaction failed")
            done(self.failed_in_txn)
            return
        if self.state is S.FATAL_ERROR:
            self._ending = None
            done(self.last_error or ErrorCode.PRODUCER_FENCED)
            return
        if not self.added:
            self._ending = None  # nothing was written: nothing to end at the coordinator
            self._to(S.READY, "empty transaction")
            done(ErrorCode.NONE)
            return
        producer = self.producer
        self._ending = None
        self._send(
            "end",
            EndTxnRequest(
                self.transactional_id, producer.producer_id, producer.producer_epoch, commit
            ),
            done,
        )

    def _after_end(self, call: _Call, error: ErrorCode, _response: Any) -> None:
        done = call.done
        assert done is not None
        if error is ErrorCode.NONE:
            self.added.clear()
            self._to(S.READY, "committed" if call.request.commit else "aborted")
        elif error in _FATAL:
            self.fatal(error, "EndTxn")
        else:
            self.abortable(error, "EndTxn")
        done(error)

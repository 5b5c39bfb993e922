"""Brokers, replication and the controller.

A ``Broker`` handles requests (Produce, Fetch, InitProducerId) as plain data
and answers through the network it was given; it never touches a socket.
For each partition it hosts it keeps a ``Replica``: the log plus, as leader,
the followers' progress, the ISR, waiting ``acks=all`` produces and parked
follower fetches; as follower, its fetch loop towards the leader.

The ``Controller`` holds the authoritative partition state (leader, leader
epoch, ISR), fences a broker once its session times out, elects leaders from
the ISR (or any live replica with ``unclean.leader.election.enable``) and
applies ISR changes a leader asks for.  Simplification, said on screen too:
controller decisions reach brokers and client metadata instantly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from broker.config import ClusterConfig, TopicConfig
from broker.errors import ErrorCode
from broker.groups import OFFSETS_TOPIC, GroupCoordinator
from broker.log import UNDEFINED_EPOCH, PartitionLog
from broker.network import Connection, Exchange, Network
from broker.protocol import (
    EARLIEST_TIMESTAMP,
    GROUP_APIS,
    READ_COMMITTED,
    TXN_APIS,
    ConsumerFetchRequest,
    DivergingEpoch,
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    MetadataRequest,
    MetadataResponse,
    ProduceRequest,
    ProduceResponse,
    TopicPartition,
    WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
)
from broker.records import (
    CONTROL_ABORT,
    CONTROL_COMMIT,
    AbortedTxn,
    LogBatch,
    Record,
    RecordBatch,
    marker_batch,
)
from broker.scheduler import Scheduler, Timer
from broker.transactions import (
    TRANSACTION_STATE_TOPIC,
    TransactionCoordinator,
    TxnMetadata,
    partition_for_transactional_id,
)

if TYPE_CHECKING:
    from broker.checker import Ledger
    from broker.events import EventLog


@dataclass(slots=True)
class FollowerProgress:
    """What a leader knows of one follower (Kafka's ``Replica`` state)."""

    log_end_offset: int = -1  # unknown until it fetches
    last_caught_up_ms: int = 0
    last_fetch_leader_leo: int = 0
    last_fetch_ms: int = 0


@dataclass(slots=True)
class PendingProduce:
    """An append waiting for the high watermark (acks=all, offset commits)."""

    reply: Callable[[ErrorCode, int], None]  # (error, base offset)
    tp: TopicPartition
    base_offset: int
    required_offset: int
    timer: Timer | None = None


@dataclass(slots=True)
class ParkedFetch:
    exchange: Exchange
    request: FetchRequest
    timer: Timer | None = None


@dataclass(slots=True)
class ParkedConsumerFetch:
    exchange: Exchange
    request: ConsumerFetchRequest
    timer: Timer | None = None


@dataclass(slots=True)
class Replica:
    tp: TopicPartition
    log: PartitionLog
    role: str = "offline"  # leader | follower | offline
    leader_id: int | None = None
    leader_epoch: int = -1
    isr: list[int] = field(default_factory=list)
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    pending: list[PendingProduce] = field(default_factory=list)
    parked: list[ParkedFetch] = field(default_factory=list)
    consumer_parked: list[ParkedConsumerFetch] = field(default_factory=list)
    # follower side
    fetch_generation: int = 0
    fetch_in_flight: bool = False
    fetch_timer: Timer | None = None


@dataclass(slots=True)
class PartitionState:
    """The controller's record for one partition."""

    tp: TopicPartition
    replicas: tuple[int, ...]
    min_insync_replicas: int
    leader: int | None
    leader_epoch: int
    isr: list[int]


def broker_name(broker_id: int) -> str:
    return f"broker-{broker_id}"


class Broker:
    def __init__(self, broker_id: int, cluster: Cluster) -> None:
        self.broker_id = broker_id
        self.name = broker_name(broker_id)
        self.cluster = cluster
        self.scheduler: Scheduler = cluster.scheduler
        self.network: Network = cluster.network
        self.events: EventLog = cluster.events
        self.ledger: Ledger = cluster.ledger
        self.config: ClusterConfig = cluster.config
        self._alive = True
        self.incarnation = 0
        self.replicas: dict[TopicPartition, Replica] = {}
        self.groups = GroupCoordinator(self)
        self.txns = TransactionCoordinator(self)
        self._isr_timer: Timer | None = None
        self.network.register_server(self, self.handle)
        self.network.register_client(self.name, self._on_response, self._on_disconnect)
        # correlation id -> (partition, fetch generation, connection)
        self._fetches: dict[int, tuple[TopicPartition, int, Connection]] = {}
        self._schedule_isr_check()

    @property
    def alive(self) -> bool:
        return self._alive

    def host(self, tp: TopicPartition) -> Replica:
        replica = Replica(tp, PartitionLog(tp))
        self.replicas[tp] = replica
        return replica

    # -- lifecycle -------------------------------------------------------
    def crash(self) -> None:
        """The process dies.  The log survives on disk; everything else is lost."""
        self._alive = False
        self.incarnation += 1
        for replica in self.replicas.values():
            for pending in replica.pending:
                if pending.timer:
                    pending.timer.cancel()
            for parked in replica.parked:
                if parked.timer:
                    parked.timer.cancel()
            if replica.fetch_timer:
                replica.fetch_timer.cancel()
            replica.pending.clear()
            replica.parked.clear()
            self._drop_consumer_fetches(replica, answer=False)
            replica.role = "offline"
            replica.followers.clear()
            replica.fetch_in_flight = False
            replica.fetch_generation += 1
        self._fetches.clear()
        if self._isr_timer:
            self._isr_timer.cancel()
        self.groups.unload_all()
        self.txns.unload_all()
        self.network.close_server(self.name)
        self.network.unregister_client(self.name)
        self.events.emit(self.name, "broker.crash", detail="process stopped; log kept on disk")

    def restart(self) -> None:
        self._alive = True
        self.network.register_client(self.name, self._on_response, self._on_disconnect)
        self._schedule_isr_check()
        self.events.emit(self.name, "broker.restart")

    # -- role changes (from the controller) --------------------------------
    def become_leader(self, state: PartitionState) -> None:
        replica = self.replicas[state.tp]
        self._fail_pending(replica, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        replica.role = "leader"
        replica.leader_id = self.broker_id
        replica.leader_epoch = state.leader_epoch
        replica.isr = list(state.isr)
        replica.fetch_generation += 1
        replica.fetch_in_flight = False
        if replica.fetch_timer:
            replica.fetch_timer.cancel()
        now = self.scheduler.now_ms
        replica.followers = {
            b: FollowerProgress(last_caught_up_ms=now if b in state.isr else 0)
            for b in state.replicas
            if b != self.broker_id
        }
        replica.log.assign_epoch_start(state.leader_epoch)
        self._maybe_increment_hw(replica)
        if state.tp.topic == OFFSETS_TOPIC:
            self.groups.load(state.tp)
        elif state.tp.topic == TRANSACTION_STATE_TOPIC:
            self.txns.load(state.tp)

    def become_follower(self, state: PartitionState) -> None:
        replica = self.replicas[state.tp]
        self._fail_pending(replica, ErrorCode.NOT_LEADER_OR_FOLLOWER)
        for parked in replica.parked:
            if parked.timer:
                parked.timer.cancel()
        replica.parked.clear()
        self._drop_consumer_fetches(replica, answer=True)
        if replica.role == "leader":
            self.groups.unload(state.tp)
            self.txns.unload(state.tp)
        replica.role = "follower" if state.leader is not None else "offline"
        replica.leader_id = state.leader
        replica.leader_epoch = state.leader_epoch
        replica.isr = list(state.isr)
        replica.followers.clear()
        replica.fetch_generation += 1
        replica.fetch_in_flight = False
        if replica.fetch_timer:
            replica.fetch_timer.cancel()
            replica.fetch_timer = None
        if replica.role == "follower":
            self._send_fetch(replica)

    def update_isr(self, state: PartitionState) -> None:
        replica = self.replicas[state.tp]
        replica.isr = list(state.isr)
        if replica.role == "leader":
            self._maybe_increment_hw(replica)

    def _fail_pending(self, replica: Replica, error: ErrorCode) -> None:
        for pending in replica.pending:
            if pending.timer:
                pending.timer.cancel()
            pending.reply(error, -1)
        replica.pending.clear()

    # -- request handling (sans-IO: plain data in, plain data out) ---------
    def handle(self, exchange: Exchange, request: object) -> None:
        if isinstance(request, ProduceRequest):
            self.handle_produce(exchange, request)
        elif isinstance(request, FetchRequest):
            self.handle_fetch(exchange, request)
        elif isinstance(request, ConsumerFetchRequest):
            self.handle_consumer_fetch(exchange, request)
        elif isinstance(request, ListOffsetsRequest):
            self.handle_list_offsets(exchange, request)
        elif isinstance(request, InitProducerIdRequest):
            self.handle_init_producer_id(exchange, request)
        elif isinstance(request, WriteTxnMarkersRequest):
            self.handle_write_txn_markers(exchange, request)
        elif isinstance(request, MetadataRequest):
            self.handle_metadata(exchange, request)
        elif getattr(request, "api", None) in GROUP_APIS:
            self.groups.handle(exchange, request)
        elif getattr(request, "api", None) in TXN_APIS:
            self.txns.handle(exchange, request)
        else:
            raise TypeError(f"{self.name}: unknown request {request!r}")

    def handle_metadata(self, exchange: Exchange, request: MetadataRequest) -> None:
        """The leaders of the topics asked for.  Brokers answer from the controller's
        state (see the module doc); one cut off from the controller answers from its
        own, possibly stale, view of the partitions it hosts."""
        cut_off = self.broker_id in self.cluster.controller.cut_off
        leaders: list[tuple[TopicPartition, int | None]] = []
        for topic in request.topics:
            for tp in self.cluster.partitions_of(topic):
                replica = self.replicas.get(tp)
                if cut_off and replica is not None and replica.role != "offline":
                    leaders.append((tp, replica.leader_id))
                else:
                    leaders.append((tp, self.cluster.leader_of(tp)))
        self.network.send_response(exchange, MetadataResponse(tuple(leaders)))

    def handle_init_producer_id(self, exchange: Exchange, request: InitProducerIdRequest) -> None:
        if request.transactional_id is not None:
            self.txns.handle(exchange, request)
            return
        producer_id = self.cluster.allocate_producer_id()
        self.events.emit(
            self.name,
            "producer-id.assigned",
            detail=f"PID {producer_id} epoch 0",
            src=self.name,
            dst=exchange.conn.client,
        )
        self.network.send_response(exchange, InitProducerIdResponse(ErrorCode.NONE, producer_id, 0))

    def handle_produce(self, exchange: Exchange, request: ProduceRequest) -> None:
        tp = request.tp
        replica = self.replicas.get(tp)
        batch = request.batch
        name = str(tp)
        injected = ErrorCode[exchange.injected_error] if exchange.injected_error else None
        if injected is not None and injected is not ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND:
            self._produce_error(exchange, request, injected, "injected fault")
            return
        if replica is None or replica.role != "leader":
            self._produce_error(
                exchange, request, ErrorCode.NOT_LEADER_OR_FOLLOWER, "not the leader"
            )
            return
        if batch.is_transactional and not self._verified(exchange, request):
            return
        state = self.cluster.partition(tp)
        if request.acks == -1 and len(replica.isr) < state.min_insync_replicas:
            self._produce_error(
                exchange,
                request,
                ErrorCode.NOT_ENOUGH_REPLICAS,
                f"ISR {replica.isr} smaller than min.insync.replicas={state.min_insync_replicas}",
            )
            return
        log = replica.log
        check = log.producer_state.check(batch)
        if check.error is not ErrorCode.NONE:
            self._produce_error(exchange, request, check.error, check.detail)
            return
        if check.duplicate_of is not None:
            original = check.duplicate_of
            base_offset = original.first_offset
            required = original.last_offset + 1
            self.events.emit(
                self.name,
                "produce.duplicate",
                name,
                base_offset,
                None,
                f"PID {batch.producer_id} seq {batch.base_sequence}..{batch.last_sequence} "
                f"already at offsets {original.first_offset}..{original.last_offset}: "
                "not appended, answered with the original offset",
            )
        else:
            log_batch = log.append_as_leader(batch, replica.leader_epoch, self.scheduler.now_ms)
            base_offset = log_batch.base_offset
            required = log_batch.next_offset
            self.ledger.appended(self.broker_id, tp, log_batch)
            self.events.emit(
                self.name,
                "produce.append",
                name,
                base_offset,
                None,
                _batch_detail(log_batch),
            )
            self._on_leader_append(replica)
        if request.acks == 0:
            self.network.done(exchange)  # no response: the channel is unmuted now
            return

        reply = partial(self._reply_produce, exchange, tp, injected)
        if request.acks == 1:
            reply(ErrorCode.NONE, base_offset)
            return
        self._await_high_watermark(
            replica, PendingProduce(reply, tp, base_offset, required), request.timeout_ms
        )

    def _reply_produce(
        self,
        exchange: Exchange,
        tp: TopicPartition,
        injected: ErrorCode | None,
        error: ErrorCode,
        offset: int,
    ) -> None:
        if injected is not None and error is ErrorCode.NONE:
            # Injected: the data is in the log, but the answer says the ISR
            # shrank meanwhile (Kafka's NOT_ENOUGH_REPLICAS_AFTER_APPEND).
            error, offset = injected, -1
            self.events.emit(
                self.name,
                "produce.reject",
                str(tp),
                None,
                error.name,
                "injected fault: appended, then answered with an error",
            )
        self.network.send_response(exchange, ProduceResponse(tp, error, offset))

    def _await_high_watermark(
        self, replica: Replica, pending: PendingProduce, timeout_ms: int
    ) -> None:
        if replica.log.high_watermark >= pending.required_offset:
            self._complete_pending(pending, replica)
            return
        pending.timer = self.scheduler.after(timeout_ms, self._expire_produce, replica, pending)
        replica.pending.append(pending)

    def append_internal(
        self,
        tp: TopicPartition,
        records: tuple[Record, ...],
        timeout_ms: int,
        reply: Callable[[ErrorCode, int], None],
        producer: tuple[int, int] | None = None,
    ) -> None:
        """Append the broker's own records (offset commits, group metadata) as leader
        and call ``reply`` once they are committed (HW past them), as acks=all.
        ``producer`` (id, epoch) makes it a transactional batch of that producer."""
        replica = self.replicas.get(tp)
        if replica is None or replica.role != "leader":
            reply(ErrorCode.NOT_COORDINATOR, -1)
            return
        if len(replica.isr) < self.cluster.partition(tp).min_insync_replicas:
            reply(ErrorCode.NOT_ENOUGH_REPLICAS, -1)
            return
        batch = (
            RecordBatch(records, producer[0], producer[1], is_transactional=True)
            if producer
            else RecordBatch(records)
        )
        log_batch = replica.log.append_as_leader(batch, replica.leader_epoch, self.scheduler.now_ms)
        self.ledger.appended(self.broker_id, tp, log_batch)
        self.events.emit(
            self.name,
            "internal.append",
            str(tp),
            log_batch.base_offset,
            None,
            "; ".join(f"{r.key}={r.value}" for r in records[:3])
            + (f" +{len(records) - 3}" if len(records) > 3 else ""),
            quiet=True,
        )
        self._on_leader_append(replica)
        self._await_high_watermark(
            replica,
            PendingProduce(reply, tp, log_batch.base_offset, log_batch.next_offset),
            timeout_ms,
        )

    def _verified(self, exchange: Exchange, request: ProduceRequest) -> bool:
        """KIP-890: a transactional write is accepted only if the coordinator has
        the partition in that producer's open transaction.  (Kafka asks with an
        AddPartitionsToTxn request; the lab looks it up directly.)"""
        if not self.cluster.config.transaction_partition_verification_enable:
            return True
        batch = request.batch
        meta = self.cluster.transaction_metadata(request.transactional_id or "")
        why = None
        if meta is None or meta.producer_id != batch.producer_id:
            why = "no transaction for this producer"
        elif meta.producer_epoch != batch.producer_epoch:
            why = f"producer epoch {batch.producer_epoch} is not the current {meta.producer_epoch}"
        elif meta.state.value != "Ongoing" or request.tp not in meta.partitions:
            why = f"{request.tp} is not part of an open transaction of this producer"
        if why is None:
            return True
        error = (
            ErrorCode.INVALID_PRODUCER_EPOCH
            if meta is not None and batch.producer_epoch < meta.producer_epoch
            else ErrorCode.INVALID_TXN_STATE
        )
        self._produce_error(exchange, request, error, f"KIP-890 verification: {why}")
        return False

    def handle_write_txn_markers(self, exchange: Exchange, request: WriteTxnMarkersRequest) -> None:
        tp = request.tp
        replica = self.replicas.get(tp)
        if replica is None or replica.role != "leader":
            self.network.send_response(
                exchange, WriteTxnMarkersResponse(tp, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            )
            return
        seen = replica.log.coordinator_epochs.get(request.producer_id, -1)
        if request.coordinator_epoch < seen:
            self.events.emit(
                self.name,
                "txn.marker-fenced",
                str(tp),
                None,
                ErrorCode.TRANSACTION_COORDINATOR_FENCED.name,
                f"marker from coordinator epoch {request.coordinator_epoch} < {seen}",
            )
            self.network.send_response(
                exchange, WriteTxnMarkersResponse(tp, ErrorCode.TRANSACTION_COORDINATOR_FENCED)
            )
            return
        kind = CONTROL_COMMIT if request.commit else CONTROL_ABORT
        log_batch = replica.log.append_as_leader(
            marker_batch(
                kind, request.producer_id, request.producer_epoch, request.coordinator_epoch
            ),
            replica.leader_epoch,
            self.scheduler.now_ms,
        )
        self.ledger.appended(self.broker_id, tp, log_batch)
        self.events.emit(
            self.name,
            "txn.marker",
            str(tp),
            log_batch.base_offset,
            None,
            f"{kind} marker for PID {request.producer_id} epoch {request.producer_epoch} "
            f"(coordinator epoch {request.coordinator_epoch}) takes offset "
            f"{log_batch.base_offset}",
        )
        if tp.topic == OFFSETS_TOPIC:
            self.groups.on_marker(tp, request.producer_id, request.commit)
        self._on_leader_append(replica)
        self._await_high_watermark(
            replica,
            PendingProduce(
                partial(self._reply_marker, exchange, tp),
                tp,
                log_batch.base_offset,
                log_batch.next_offset,
            ),
            30000,
        )

    def _reply_marker(
        self, exchange: Exchange, tp: TopicPartition, error: ErrorCode, _offset: int
    ) -> None:
        self.network.send_response(exchange, WriteTxnMarkersResponse(tp, error))

    def _produce_error(
        self, exchange: Exchange, request: ProduceRequest, error: ErrorCode, why: str
    ) -> None:
        self.events.emit(self.name, "produce.reject", str(request.tp), None, error.name, why)
        if request.acks != 0:
            self.network.send_response(exchange, ProduceResponse(request.tp, error))
        else:
            # No answer to carry the error: Kafka's broker closes the connection,
            # so that the client notices and refreshes its metadata.
            self.network.close_by_server(exchange, f"{error.name} on an acks=0 Produce")

    def _complete_pending(self, pending: PendingProduce, replica: Replica) -> None:
        if len(replica.isr) < self.cluster.partition(pending.tp).min_insync_replicas:
            pending.reply(ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND, -1)
        else:
            pending.reply(ErrorCode.NONE, pending.base_offset)

    def _expire_produce(self, replica: Replica, pending: PendingProduce) -> None:
        if pending in replica.pending:
            replica.pending.remove(pending)
            self.events.emit(
                self.name,
                "produce.timeout",
                str(pending.tp),
                pending.base_offset,
                ErrorCode.REQUEST_TIMED_OUT.name,
                f"high watermark {replica.log.high_watermark} never reached "
                f"{pending.required_offset}",
            )
            pending.reply(ErrorCode.REQUEST_TIMED_OUT, -1)

    def _on_leader_append(self, replica: Replica) -> None:
        self._maybe_increment_hw(replica)
        self._wake_parked(replica)

    # -- leader: follower fetches, ISR, high watermark ---------------------
    def handle_fetch(self, exchange: Exchange, request: FetchRequest) -> None:
        replica = self.replicas.get(request.tp)
        if replica is None or replica.role != "leader":
            self.network.send_response(
                exchange, FetchResponse(request.tp, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            )
            return
        log = replica.log
        if request.last_fetched_epoch != UNDEFINED_EPOCH:
            epoch, end_offset = log.end_offset_for_epoch(request.last_fetched_epoch)
            if epoch < request.last_fetched_epoch or end_offset < request.fetch_offset:
                self.network.send_response(
                    exchange,
                    FetchResponse(
                        request.tp,
                        ErrorCode.NONE,
                        log.high_watermark,
                        log.log_start_offset,
                        diverging_epoch=DivergingEpoch(epoch, end_offset),
                    ),
                )
                return
        self._update_follower(replica, request.replica_id, request.fetch_offset)
        batches = log.read(request.fetch_offset, request.max_bytes, log.log_end_offset)
        if batches or request.max_wait_ms <= 0:
            self._answer_fetch(replica, exchange, request, batches)
            return
        parked = ParkedFetch(exchange, request)
        parked.timer = self.scheduler.after(
            request.max_wait_ms, self._expire_parked, replica, parked
        )
        replica.parked.append(parked)

    def _answer_fetch(
        self,
        replica: Replica,
        exchange: Exchange,
        request: FetchRequest,
        batches: tuple[LogBatch, ...],
    ) -> None:
        log = replica.log
        self.network.send_response(
            exchange,
            FetchResponse(
                request.tp, ErrorCode.NONE, log.high_watermark, log.log_start_offset, batches
            ),
        )

    def _wake_parked(self, replica: Replica) -> None:
        if not replica.parked:
            return
        parked_list, replica.parked = replica.parked, []
        log = replica.log
        for parked in parked_list:
            if parked.timer:
                parked.timer.cancel()
            request = parked.request
            batches = log.read(request.fetch_offset, request.max_bytes, log.log_end_offset)
            self._answer_fetch(replica, parked.exchange, request, batches)

    def _expire_parked(self, replica: Replica, parked: ParkedFetch) -> None:
        if parked in replica.parked:
            replica.parked.remove(parked)
            self._answer_fetch(replica, parked.exchange, parked.request, ())

    def _update_follower(self, replica: Replica, follower_id: int, fetch_offset: int) -> None:
        progress = replica.followers.get(follower_id)
        if progress is None:
            return
        now = self.scheduler.now_ms
        leader_leo = replica.log.log_end_offset
        progress.log_end_offset = fetch_offset
        if fetch_offset >= leader_leo:
            progress.last_caught_up_ms = now
        elif fetch_offset >= progress.last_fetch_leader_leo:
            progress.last_caught_up_ms = max(progress.last_caught_up_ms, progress.last_fetch_ms)
        progress.last_fetch_leader_leo = leader_leo
        progress.last_fetch_ms = now
        if follower_id not in replica.isr:
            epoch_start = next(
                (
                    e.start_offset
                    for e in replica.log.epoch_cache
                    if e.epoch == replica.leader_epoch
                ),
                0,
            )
            if fetch_offset >= replica.log.high_watermark and fetch_offset >= epoch_start:
                self.cluster.controller.alter_isr(
                    self.broker_id,
                    replica.tp,
                    replica.leader_epoch,
                    [*replica.isr, follower_id],
                    f"broker-{follower_id} caught up to offset {fetch_offset}",
                )
        self._maybe_increment_hw(replica)

    def _maybe_increment_hw(self, replica: Replica) -> None:
        log = replica.log
        state = self.cluster.partition(replica.tp)
        if len(replica.isr) < state.min_insync_replicas:
            return  # Kafka >= 3.7: no HW progress while the ISR is below min.insync.replicas
        new_hw = log.log_end_offset
        for broker_id in replica.isr:
            if broker_id == self.broker_id:
                continue
            progress = replica.followers.get(broker_id)
            follower_leo = progress.log_end_offset if progress else -1
            if follower_leo < 0:
                return
            new_hw = min(new_hw, follower_leo)
        if new_hw <= log.high_watermark:
            return
        log.update_high_watermark(new_hw)
        self.events.emit(
            self.name, "hw.advance", str(replica.tp), new_hw, detail="high watermark", quiet=True
        )
        if replica.pending:
            # Take the satisfied ones off the list before answering them: an
            # answer may append again (a coordinator's next transition) and
            # re-enter here, and must not find them still waiting.
            done = [p for p in replica.pending if new_hw >= p.required_offset]
            replica.pending = [p for p in replica.pending if new_hw < p.required_offset]
            for pending in done:
                if pending.timer:
                    pending.timer.cancel()
                self._complete_pending(pending, replica)
        self._wake_parked(replica)
        if replica.consumer_parked:
            self._wake_consumers(replica)

    def _schedule_isr_check(self) -> None:
        interval = max(1, self.config.replica_lag_time_max_ms // 2)
        self._isr_timer = self.scheduler.after(interval, self._isr_check)

    def _isr_check(self) -> None:
        if not self._alive:
            return
        now = self.scheduler.now_ms
        lag_max = self.config.replica_lag_time_max_ms
        for tp in sorted(self.replicas, key=str):
            replica = self.replicas[tp]
            if replica.role != "leader":
                continue
            out_of_sync = [
                b
                for b in replica.isr
                if b != self.broker_id
                and replica.followers.get(b) is not None
                and replica.followers[b].log_end_offset < replica.log.log_end_offset
                and now - replica.followers[b].last_caught_up_ms > lag_max
            ]
            if out_of_sync:
                self.cluster.controller.alter_isr(
                    self.broker_id,
                    tp,
                    replica.leader_epoch,
                    [b for b in replica.isr if b not in out_of_sync],
                    f"{', '.join(broker_name(b) for b in out_of_sync)} not caught up "
                    f"within replica.lag.time.max.ms={lag_max}",
                )
        self._schedule_isr_check()

    # -- consumers ---------------------------------------------------------------
    def _consumer_bound(self, log: PartitionLog, isolation_level: int) -> int:
        """Consumers never read past the HW, nor past the LSO for read_committed."""
        if isolation_level == READ_COMMITTED:
            return log.last_stable_offset
        return log.high_watermark

    def handle_consumer_fetch(self, exchange: Exchange, request: ConsumerFetchRequest) -> None:
        replica = self.replicas.get(request.tp)
        if replica is None or replica.role != "leader":
            self.network.send_response(
                exchange, FetchResponse(request.tp, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            )
            return
        log = replica.log
        if not log.log_start_offset <= request.fetch_offset <= log.log_end_offset:
            self.network.send_response(
                exchange,
                FetchResponse(
                    request.tp,
                    ErrorCode.OFFSET_OUT_OF_RANGE,
                    log.high_watermark,
                    log.log_start_offset,
                ),
            )
            return
        batches = log.read(
            request.fetch_offset,
            request.max_bytes,
            self._consumer_bound(log, request.isolation_level),
        )
        if batches or request.max_wait_ms <= 0:
            self._answer_consumer(replica, exchange, request, batches)
            return
        parked = ParkedConsumerFetch(exchange, request)
        parked.timer = self.scheduler.after(
            request.max_wait_ms, self._expire_consumer_fetch, replica, parked
        )
        replica.consumer_parked.append(parked)

    def _answer_consumer(
        self,
        replica: Replica,
        exchange: Exchange,
        request: ConsumerFetchRequest,
        batches: tuple[LogBatch, ...],
    ) -> None:
        log = replica.log
        aborted: tuple[AbortedTxn, ...] = ()
        if request.isolation_level == READ_COMMITTED and batches:
            aborted = log.aborted_between(request.fetch_offset, batches[-1].next_offset)
        self.network.send_response(
            exchange,
            FetchResponse(
                request.tp,
                ErrorCode.NONE,
                log.high_watermark,
                log.log_start_offset,
                batches,
                aborted_transactions=aborted,
                last_stable_offset=log.last_stable_offset,
            ),
        )

    def _expire_consumer_fetch(self, replica: Replica, parked: ParkedConsumerFetch) -> None:
        if parked in replica.consumer_parked:
            replica.consumer_parked.remove(parked)
            self._answer_consumer(replica, parked.exchange, parked.request, ())

    def _wake_consumers(self, replica: Replica) -> None:
        still = []
        log = replica.log
        for parked in replica.consumer_parked:
            request = parked.request
            bound = self._consumer_bound(log, request.isolation_level)
            batches = log.read(request.fetch_offset, request.max_bytes, bound)
            if not batches:
                still.append(parked)
                continue
            if parked.timer:
                parked.timer.cancel()
            self._answer_consumer(replica, parked.exchange, request, batches)
        replica.consumer_parked = still

    def _drop_consumer_fetches(self, replica: Replica, answer: bool) -> None:
        for parked in replica.consumer_parked:
            if parked.timer:
                parked.timer.cancel()
            if answer:
                self.network.send_response(
                    parked.exchange,
                    FetchResponse(parked.request.tp, ErrorCode.NOT_LEADER_OR_FOLLOWER),
                )
        replica.consumer_parked.clear()

    def handle_list_offsets(self, exchange: Exchange, request: ListOffsetsRequest) -> None:
        replica = self.replicas.get(request.tp)
        if replica is None or replica.role != "leader":
            self.network.send_response(
                exchange, ListOffsetsResponse(request.tp, ErrorCode.NOT_LEADER_OR_FOLLOWER)
            )
            return
        log = replica.log
        if request.timestamp == EARLIEST_TIMESTAMP:
            offset = log.log_start_offset
        else:
            offset = self._consumer_bound(log, request.isolation_level)
        self.network.send_response(
            exchange, ListOffsetsResponse(request.tp, ErrorCode.NONE, offset)
        )

    # -- follower: the fetch loop ------------------------------------------
    def _send_fetch(self, replica: Replica) -> None:
        if not self._alive or replica.role != "follower" or replica.fetch_in_flight:
            return
        leader = replica.leader_id
        if leader is None:
            return
        replica.fetch_in_flight = True
        replica.fetch_timer = None
        log = replica.log
        request = FetchRequest(
            replica.tp,
            self.broker_id,
            log.log_end_offset,
            log.latest_epoch,
            replica.leader_epoch,
            self.config.replica_fetch_wait_max_ms,
            self.config.replica_fetch_max_bytes,
        )
        exchange = self.network.send_request(
            self.name, broker_name(leader), request, str(replica.tp)
        )
        self._fetches[exchange.correlation_id] = (
            replica.tp,
            replica.fetch_generation,
            exchange.conn,
        )
        replica.fetch_timer = self.scheduler.after(
            self.config.replica_fetch_wait_max_ms + self.config.replica_socket_timeout_ms,
            self._fetch_timed_out,
            replica,
            exchange,
        )

    def _fetch_timed_out(self, replica: Replica, exchange: Exchange) -> None:
        if self._fetches.pop(exchange.correlation_id, None) is None:
            return
        self.network.close(exchange.conn, notify_client=False)
        replica.fetch_in_flight = False
        self._retry_fetch_later(replica)

    def _retry_fetch_later(self, replica: Replica) -> None:
        generation = replica.fetch_generation
        replica.fetch_timer = self.scheduler.after(
            self.config.replica_fetch_backoff_ms, self._fetch_again, replica, generation
        )

    def _fetch_again(self, replica: Replica, generation: int) -> None:
        if replica.fetch_generation == generation:
            self._send_fetch(replica)

    def _on_disconnect(self, conn: Connection) -> None:
        self.txns.on_disconnect(conn)
        for correlation_id, (tp, generation, fetch_conn) in list(self._fetches.items()):
            replica = self.replicas[tp]
            if fetch_conn is conn:
                del self._fetches[correlation_id]
                if replica.fetch_generation == generation:
                    if replica.fetch_timer:
                        replica.fetch_timer.cancel()
                    replica.fetch_in_flight = False
                    self._retry_fetch_later(replica)

    def _on_response(self, exchange: Exchange, response: object) -> None:
        if isinstance(response, WriteTxnMarkersResponse):
            self.txns.on_response(exchange, response)
            return
        entry = self._fetches.pop(exchange.correlation_id, None)
        if entry is None or not isinstance(response, FetchResponse):
            return
        tp, generation, _conn = entry
        replica = self.replicas[tp]
        if replica.fetch_generation != generation or not self._alive:
            return
        if replica.fetch_timer:
            replica.fetch_timer.cancel()
        replica.fetch_in_flight = False
        if response.error is not ErrorCode.NONE:
            self._retry_fetch_later(replica)
            return
        log = replica.log
        name = str(tp)
        if response.diverging_epoch is not None:
            diverging = response.diverging_epoch
            _local_epoch, local_end = log.end_offset_for_epoch(diverging.epoch)
            if local_end < 0:
                target = min(diverging.end_offset, log.log_end_offset)
            else:
                target = min(diverging.end_offset, local_end, log.log_end_offset)
            target = max(target, 0)
            removed = log.truncate_to(target)
            if removed:
                self.ledger.truncated(self.broker_id, tp, target, removed)
                self.events.emit(
                    self.name,
                    "replica.truncate",
                    name,
                    target,
                    None,
                    f"log diverged from the leader after epoch {diverging.epoch}: "
                    f"offsets {target}..{removed[-1].last_offset} removed",
                )
            self._send_fetch(replica)
            return
        appended = log.append_as_follower(response.batches)
        for log_batch in appended:
            self.ledger.appended(self.broker_id, tp, log_batch)
            self.events.emit(
                self.name,
                "replica.append",
                name,
                log_batch.base_offset,
                None,
                f"replicated {len(log_batch.batch.records)} record(s) from "
                f"{broker_name(replica.leader_id or 0)}",
                quiet=True,
            )
        log.update_high_watermark(min(response.high_watermark, log.log_end_offset))
        self._send_fetch(replica)

    def snapshot(self) -> dict[str, object]:
        return {
            "id": self.broker_id,
            "name": self.name,
            "alive": self._alive,
        }


def _batch_detail(log_batch: LogBatch) -> str:
    batch = log_batch.batch
    last = log_batch.last_offset
    span = (
        f"offsets {log_batch.base_offset}..{last}"
        if last > log_batch.base_offset
        else (f"offset {last}")
    )
    text = f"{span} epoch {log_batch.leader_epoch}"
    if batch.has_producer_id:
        text += (
            f" PID {batch.producer_id} epoch {batch.producer_epoch} "
            f"seq {batch.base_sequence}..{batch.last_sequence}"
        )
    ids = [r.message_id for r in batch.records[:4]]
    more = "" if len(batch.records) <= 4 else f" +{len(batch.records) - 4}"
    return f"{text} [{', '.join(ids)}{more}]"


class Controller:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.partitions: dict[TopicPartition, PartitionState] = {}
        self.fenced: dict[int, bool] = {}
        self._fence_timers: dict[int, Timer] = {}
        # Brokers whose heartbeats cannot reach the controller (a partition).
        self.cut_off: set[int] = set()
        cluster.network.on_links_changed(self.links_changed)

    def add_partition(self, state: PartitionState) -> None:
        self.partitions[state.tp] = state

    def _emit(
        self, kind: str, tp: TopicPartition | None, detail: str, error: str | None = None
    ) -> None:
        self.cluster.events.emit("controller", kind, str(tp) if tp else None, None, error, detail)

    def broker_crashed(self, broker_id: int) -> None:
        self._expect_fencing(broker_id)

    def _expect_fencing(self, broker_id: int) -> None:
        """Its heartbeats stopped: fenced after broker.session.timeout.ms, counted
        from the first of a crash or a cut (the last heartbeat heard)."""
        timer = self._fence_timers.get(broker_id)
        if (timer is not None and not timer.cancelled) or self.fenced.get(broker_id):
            return
        timeout = self.cluster.config.broker_session_timeout_ms
        self._fence_timers[broker_id] = self.cluster.scheduler.after(timeout, self.fence, broker_id)

    def links_changed(self) -> None:
        """A partition started or healed: brokers cut off from the controller stop
        heartbeating (KRaft fences them after broker.session.timeout.ms); brokers
        heard again register and catch up with what the controller decided."""
        network = self.cluster.network
        for broker_id in sorted(self.cluster.brokers):
            broker = self.cluster.brokers[broker_id]
            reaches = network.reaches_controller(broker.name)
            if not reaches and broker_id not in self.cut_off:
                self.cut_off.add(broker_id)
                if broker.alive:
                    self._emit(
                        "broker.unreachable",
                        None,
                        f"{broker.name} cut off: no heartbeats reach the controller "
                        f"(fenced after broker.session.timeout.ms="
                        f"{self.cluster.config.broker_session_timeout_ms} unless they resume)",
                    )
                    self._expect_fencing(broker_id)
            elif reaches and broker_id in self.cut_off:
                self.cut_off.discard(broker_id)
                if broker.alive:
                    self._rejoin(broker_id)

    def _rejoin(self, broker_id: int) -> None:
        timer = self._fence_timers.pop(broker_id, None)
        if timer:
            timer.cancel()
        if self.fenced.get(broker_id):
            self._register(broker_id)
            return
        self._emit("broker.reachable", None, f"{broker_name(broker_id)} heartbeats again")
        self._catch_up(broker_id)

    def fence(self, broker_id: int) -> None:
        timer = self._fence_timers.pop(broker_id, None)
        if timer:
            timer.cancel()
        if self.fenced.get(broker_id):
            return
        self.fenced[broker_id] = True
        self._emit("broker.fenced", None, f"{broker_name(broker_id)} session expired: fenced")
        for tp in self._sorted(self.partitions):
            state = self.partitions[tp]
            if broker_id not in state.replicas:
                continue
            if state.leader == broker_id:
                self._elect(state, f"leader {broker_name(broker_id)} fenced")
            elif broker_id in state.isr and len(state.isr) > 1:
                state.isr = [b for b in state.isr if b != broker_id]
                self._emit("isr.shrink", tp, f"ISR {state.isr}: {broker_name(broker_id)} fenced")
                self._push(state)

    def broker_restarted(self, broker_id: int) -> None:
        if not self.fenced.get(broker_id):
            self.fence(broker_id)  # a new incarnation replaces the old one at once
        if broker_id in self.cut_off:
            return  # it registers once the partition heals (links_changed)
        self._register(broker_id)

    def _register(self, broker_id: int) -> None:
        self.fenced[broker_id] = False
        self._emit("broker.unfenced", None, f"{broker_name(broker_id)} registered")
        self._catch_up(broker_id)

    def _catch_up(self, broker_id: int) -> None:
        """Bring a (re)joining broker to the controller's current partition states."""
        broker = self.cluster.brokers[broker_id]
        for tp in self._sorted(self.partitions):
            state = self.partitions[tp]
            if broker_id not in state.replicas:
                continue
            if state.leader is None:
                self._elect(state, f"{broker_name(broker_id)} is back")
            replica = broker.replicas[tp]
            if (
                state.leader is not None
                and state.leader != broker_id
                and (replica.role != "follower" or replica.leader_epoch != state.leader_epoch)
            ):
                broker.become_follower(state)
            elif replica.role != "offline" and replica.leader_epoch == state.leader_epoch:
                broker.update_isr(state)  # ISR changes it missed while cut off

    def alter_isr(
        self, leader_id: int, tp: TopicPartition, leader_epoch: int, new_isr: list[int], why: str
    ) -> None:
        state = self.partitions[tp]
        if state.leader != leader_id or state.leader_epoch != leader_epoch:
            return
        if leader_id in self.cut_off:
            return  # the AlterPartition request cannot reach the controller
        ordered = [b for b in state.replicas if b in new_isr]
        if ordered == state.isr:
            return
        kind = "isr.expand" if len(ordered) > len(state.isr) else "isr.shrink"
        state.isr = ordered
        self._emit(kind, tp, f"ISR {ordered}: {why}")
        self._push(state)

    def _eligible(self, broker_id: int) -> bool:
        broker = self.cluster.brokers[broker_id]
        return broker.alive and not self.fenced.get(broker_id, False)

    def _elect(self, state: PartitionState, why: str) -> None:
        candidates = [b for b in state.replicas if b in state.isr and self._eligible(b)]
        unclean = False
        if not candidates and self.cluster.config.unclean_leader_election_enable:
            candidates = [b for b in state.replicas if self._eligible(b)]
            unclean = True
        old_leader = state.leader
        if not candidates:
            state.leader = None
            # Like KRaft, keep the last ISR member so it can lead again cleanly.
            state.isr = [b for b in state.isr if b != old_leader] or state.isr
            self._emit("partition.offline", state.tp, f"no eligible leader ({why})")
            self._push(state)
            return
        leader = candidates[0]
        state.leader = leader
        state.leader_epoch += 1
        if unclean:
            state.isr = [leader]
        else:
            state.isr = [b for b in state.isr if self._eligible(b)]
        self._emit(
            "leader.elected",
            state.tp,
            f"{broker_name(leader)} leads at epoch {state.leader_epoch}, ISR {state.isr} ({why})"
            + (" UNCLEAN: an out-of-sync replica was chosen" if unclean else ""),
        )
        self._push(state)

    def _push(self, state: PartitionState) -> None:
        """Send the partition state to every live replica (instant, see module doc)."""
        for broker_id in state.replicas:
            broker = self.cluster.brokers[broker_id]
            if not broker.alive or self.fenced.get(broker_id, False) or broker_id in self.cut_off:
                continue  # a cut-off broker catches up when it is heard again
            replica = broker.replicas[state.tp]
            if state.leader == broker_id:
                if replica.role == "leader" and replica.leader_epoch == state.leader_epoch:
                    broker.update_isr(state)
                else:
                    broker.become_leader(state)
            elif replica.role == "follower" and replica.leader_epoch == state.leader_epoch:
                broker.update_isr(state)
            else:
                broker.become_follower(state)

    @staticmethod
    def _sorted(partitions: dict[TopicPartition, PartitionState]) -> list[TopicPartition]:
        return sorted(partitions, key=lambda tp: (tp.topic, tp.partition))


class Cluster:
    def __init__(
        self,
        config: ClusterConfig,
        topics: list[TopicConfig],
        scheduler: Scheduler,
        network: Network,
        events: EventLog,
        ledger: Ledger,
        with_groups: bool = False,
        with_transactions: bool = False,
    ) -> None:
        self.config = config
        self.scheduler = scheduler
        self.network = network
        self.events = events
        self.ledger = ledger
        self.topics = {t.name: t for t in topics}
        self.controller = Controller(self)
        self.brokers: dict[int, Broker] = {}
        self._next_producer_id = 0
        self._next_member = 0
        self._next_internal = 0
        self.offsets_partitions = config.offsets_topic_num_partitions
        self.transaction_state_partitions = config.transaction_state_log_num_partitions
        for broker_id in range(1, config.brokers + 1):
            self.brokers[broker_id] = Broker(broker_id, self)
        topics = list(topics)
        if with_groups:
            # __consumer_offsets exists only where groups are used, so producer-only
            # scenarios keep their traces short.
            rf = min(config.offsets_topic_replication_factor, config.brokers)
            topics.append(TopicConfig(OFFSETS_TOPIC, self.offsets_partitions, rf, 1))
        if with_transactions:
            rf = min(config.offsets_topic_replication_factor, config.brokers)
            topics.append(
                TopicConfig(TRANSACTION_STATE_TOPIC, self.transaction_state_partitions, rf, 1)
            )
        for topic in topics:
            for p in range(topic.partitions):
                tp = TopicPartition(topic.name, p)
                if topic.assignment is not None:
                    replicas = topic.assignment[p]
                else:
                    replicas = tuple(
                        (p + i) % config.brokers + 1 for i in range(topic.replication_factor)
                    )
                state = PartitionState(
                    tp, replicas, topic.min_insync_replicas, replicas[0], 0, list(replicas)
                )
                self.controller.add_partition(state)
                for broker_id in replicas:
                    self.brokers[broker_id].host(tp)
        for tp in Controller._sorted(self.controller.partitions):
            state = self.controller.partitions[tp]
            for broker_id in state.replicas:
                if broker_id == state.leader:
                    self.brokers[broker_id].become_leader(state)
            for broker_id in state.replicas:
                if broker_id != state.leader:
                    self.brokers[broker_id].become_follower(state)

    def partition(self, tp: TopicPartition) -> PartitionState:
        return self.controller.partitions[tp]

    def partitions_of(self, topic: str) -> list[TopicPartition]:
        return [tp for tp in self.controller.partitions if tp.topic == topic]

    def transaction_metadata(self, transactional_id: str) -> TxnMetadata | None:
        """The current coordinator's view of a transactional.id (instant lookup)."""
        tp = TopicPartition(
            TRANSACTION_STATE_TOPIC,
            partition_for_transactional_id(transactional_id, self.transaction_state_partitions),
        )
        leader = self.leader_of(tp) if tp in self.controller.partitions else None
        if leader is None:
            return None
        return self.brokers[leader].txns.metadata(transactional_id)

    def leader_of(self, tp: TopicPartition) -> int | None:
        return self.controller.partitions[tp].leader

    def next_member_number(self) -> int:
        self._next_member += 1
        return self._next_member

    def next_internal_record(self) -> int:
        self._next_internal += 1
        return self._next_internal

    def allocate_producer_id(self) -> int:
        producer_id = self._next_producer_id
        self._next_producer_id += 1
        return producer_id

    def crash_broker(self, broker_id: int) -> None:
        broker = self.brokers[broker_id]
        if not broker.alive:
            return
        broker.crash()
        self.controller.broker_crashed(broker_id)

    def restart_broker(self, broker_id: int) -> None:
        broker = self.brokers[broker_id]
        if broker.alive:
            return
        broker.restart()
        self.controller.broker_restarted(broker_id)

    def committed(self, tp: TopicPartition) -> tuple[PartitionLog | None, int]:
        """The leader's log and high watermark, or (None, 0) while offline."""
        state = self.controller.partitions[tp]
        if state.leader is None:
            return None, 0
        log = self.brokers[state.leader].replicas[tp].log
        return log, log.high_watermark

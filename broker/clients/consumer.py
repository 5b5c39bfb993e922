"""The consumer client (Kafka's ``KafkaConsumer`` with the classic group
protocol and eager rebalancing).

``poll()`` drives everything as in Kafka: it (re)joins the group when needed
(committing first when auto-commit is on, then revoking every partition),
auto-commits the positions reached by EARLIER polls once
``auto.commit.interval.ms`` has passed, finds positions for new partitions
(the committed offset, else ``auto.offset.reset``), returns at most
``max.poll.records`` buffered records, advancing the position past them, and
sends fetches.  A separate heartbeat loop keeps the session alive and learns
of rebalances.  A stalled process (a long GC pause) runs nothing and answers
nothing until the stall ends: its timers and incoming answers wait.

Simplifications: one Fetch per partition; the coordinator and partition
leaders are looked up instantly (FindCoordinator and Metadata are not
simulated).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from broker.assignors import COOPERATIVE, assign
from broker.config import ConsumerConfig
from broker.errors import ErrorCode
from broker.groups import OFFSETS_TOPIC, partition_for_group
from broker.network import Connection, Exchange
from broker.protocol import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    READ_COMMITTED,
    READ_UNCOMMITTED,
    ConsumerFetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
    TopicPartition,
)
from broker.records import CONTROL_ABORT, LogBatch, Record, control_type
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.cluster import Cluster

CommitCallback = Callable[[ErrorCode], None]
PolledRecord = tuple[TopicPartition, int, Record]

_COORDINATOR_ERRORS = (
    ErrorCode.NOT_COORDINATOR,
    ErrorCode.COORDINATOR_NOT_AVAILABLE,
    ErrorCode.REQUEST_TIMED_OUT,
    ErrorCode.NETWORK_EXCEPTION,
)
_COMMIT_FAILED = (
    ErrorCode.ILLEGAL_GENERATION,
    ErrorCode.UNKNOWN_MEMBER_ID,
    ErrorCode.REBALANCE_IN_PROGRESS,
)


def _ignore(_error: ErrorCode) -> None:
    """Auto-commit failures are only logged, as in Kafka."""


@dataclass(slots=True)
class _Pending:
    kind: str
    context: Any
    exchange: Exchange
    timer: Timer


class Consumer:
    def __init__(
        self,
        name: str,
        config: ConsumerConfig,
        topics: tuple[str, ...],
        cluster: Cluster,
        on_assigned: Callable[[tuple[TopicPartition, ...]], dict[TopicPartition, int]],
        on_revoked: Callable[[tuple[TopicPartition, ...]], None],
        on_data: Callable[[], None],
        on_fatal: Callable[[str], None],
    ) -> None:
        self.name = name
        self.config = config
        self.topics = topics
        self.cluster = cluster
        self.scheduler = cluster.scheduler
        self.network = cluster.network
        self.events = cluster.events
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._on_data = on_data
        self._on_fatal = on_fatal
        self.isolation = (
            READ_COMMITTED if config.isolation_level == "read_committed" else READ_UNCOMMITTED
        )
        self.cooperative = config.partition_assignment_strategy == COOPERATIVE
        self.state = "unjoined"  # unjoined | preparing | joining | syncing | stable
        self.member_id = ""
        self.generation = -1
        self.assignment: tuple[TopicPartition, ...] = ()
        self.assignment_epoch = 0
        self.positions: dict[TopicPartition, int] = {}
        self.committed: dict[TopicPartition, int] = {}
        self.high_watermarks: dict[TopicPartition, int] = {}
        self.buffers: dict[TopicPartition, deque[tuple[int, Record]]] = {}
        self._fetch_end: dict[TopicPartition, int] = {}  # next offset after the last fetch
        # Where reading began on each owned partition (nothing to commit before it).
        self.first_positions: dict[TopicPartition, int] = {}
        self.rejoin_needed = True
        self.closed = False
        self.closing = False  # LeaveGroup sent: nothing else happens
        self._owned_stale = False
        self.stalled_until_ms = 0
        self.last_poll_ms = 0
        self._pending: dict[int, _Pending] = {}
        self._fetching: set[TopicPartition] = set()
        self._resolving: set[TopicPartition] = set()
        self._hb_timer: Timer | None = None
        self._retry_timer: Timer | None = None
        self._next_auto_commit_ms = self.scheduler.now_ms + config.auto_commit_interval_ms
        self.commits_in_flight = 0
        self.network.register_client(name, self._on_response, self._on_disconnect)

    # -- lifecycle -------------------------------------------------------------
    def kill(self) -> None:
        """The process died: nothing more is sent, answers are ignored."""
        self.closed = True
        for pending in self._pending.values():
            pending.timer.cancel()
        self._pending.clear()
        for timer in (self._hb_timer, self._retry_timer):
            if timer:
                timer.cancel()
        self.network.unregister_client(self.name)

    def leave(self) -> None:
        """A graceful close: LeaveGroup, and gone once it is answered (or times out)."""
        coordinator = self._coordinator()
        self.events.emit(self.name, "consumer.leave", detail=f"{self.member_id} leaves the group")
        if not self.member_id or coordinator is None:
            self.kill()
            return
        self.closing = True
        for timer in (self._hb_timer, self._retry_timer):
            if timer:
                timer.cancel()
        self._send(coordinator, LeaveGroupRequest(self.config.group_id, self.member_id), "leave")

    def _got_leave(self, _context: Any, _response: Any) -> None:
        self.kill()

    def stall(self, until_ms: int) -> None:
        self.stalled_until_ms = max(self.stalled_until_ms, until_ms)

    def _deferred(self, fn: Callable[..., None], *args: Any) -> bool:
        """While stalled, run ``fn`` when the stall ends instead of now."""
        if self.scheduler.now_ms < self.stalled_until_ms:
            self.scheduler.at(self.stalled_until_ms, fn, *args)
            return True
        return False

    # -- plumbing --------------------------------------------------------------
    def _coordinator(self) -> int | None:
        tp = TopicPartition(
            OFFSETS_TOPIC,
            partition_for_group(self.config.group_id, self.cluster.offsets_partitions),
        )
        return self.cluster.leader_of(tp)

    def _send(
        self,
        broker_id: int,
        request: Any,
        kind: str,
        context: Any = None,
        partition: str | None = None,
    ) -> None:
        exchange = self.network.send_request(self.name, f"broker-{broker_id}", request, partition)
        timer = self.scheduler.after(
            self.config.request_timeout_ms, self._timed_out, exchange.correlation_id
        )
        self._pending[exchange.correlation_id] = _Pending(kind, context, exchange, timer)

    def _timed_out(self, correlation_id: int) -> None:
        pending = self._pending.pop(correlation_id, None)
        if pending is None or self.closed:
            return
        self.network.close(pending.exchange.conn, notify_client=False)
        self._fail(pending, ErrorCode.REQUEST_TIMED_OUT)
        for cid in [
            c for c, p in self._pending.items() if p.exchange.conn is pending.exchange.conn
        ]:
            self._fail(self._pending.pop(cid), ErrorCode.NETWORK_EXCEPTION)

    def _on_disconnect(self, conn: Connection) -> None:
        if self.closed or self._deferred(self._on_disconnect, conn):
            return
        for cid in [c for c, p in self._pending.items() if p.exchange.conn is conn]:
            pending = self._pending.pop(cid)
            pending.timer.cancel()
            self._fail(pending, ErrorCode.NETWORK_EXCEPTION)

    def _on_response(self, exchange: Exchange, response: Any) -> None:
        if self.closed or self._deferred(self._on_response, exchange, response):
            return
        pending = self._pending.pop(exchange.correlation_id, None)
        if pending is None:
            return
        pending.timer.cancel()
        if self.closing and pending.kind != "leave":
            return
        handler = getattr(self, f"_got_{pending.kind.replace('-', '_')}")
        handler(pending.context, response)

    def _fail(self, pending: _Pending, error: ErrorCode) -> None:
        """A request that got no answer: treat it as that error from the broker."""
        kind, context = pending.kind, pending.context
        if kind == "leave":
            self.kill()
            return
        if self.closing:
            return
        if kind == "fetch":
            self._fetching.discard(context[0])
        elif kind == "commit":
            self._got_commit(context, OffsetCommitResponse(error))
            return
        elif kind in ("offset-fetch", "list-offsets"):
            for tp in context if kind == "offset-fetch" else (context,):
                self._resolving.discard(tp)
        elif kind in ("join", "sync"):
            self.state = "unjoined"
            self.rejoin_needed = True
        self._retry_later()

    def _retry_later(self) -> None:
        if self._retry_timer is None or self._retry_timer.cancelled:
            self._retry_timer = self.scheduler.after(self.config.retry_backoff_ms, self._retry)

    def _retry(self) -> None:
        self._retry_timer = None
        if not self.closed and not self._deferred(self._retry):
            self._on_data()

    # -- group membership --------------------------------------------------------
    def _ensure_active(self) -> None:
        if self.state in ("preparing", "joining", "syncing"):
            return
        if self.state == "stable" and not self.rejoin_needed:
            return
        coordinator = self._coordinator()
        if coordinator is None:
            self._retry_later()
            return
        if self.assignment:
            if self.config.enable_auto_commit and self.positions:
                # onJoinPrepare: commit what was consumed before the rebalance.
                self.state = "preparing"
                self.commit(dict(self.positions), self._prepared_after_commit)
                return
            if not self.cooperative:
                self._revoke()
        self._join(coordinator)

    def _prepared_after_commit(self, _error: ErrorCode) -> None:
        if self.closed:
            return
        if not self.cooperative:
            self._revoke()
        coordinator = self._coordinator()
        if coordinator is None:
            self.state = "unjoined"
            self._retry_later()
            return
        self._join(coordinator)

    def _revoke(self, partitions: tuple[TopicPartition, ...] | None = None) -> None:
        """Give up ``partitions`` (all of them in the eager protocol)."""
        revoked = self.assignment if partitions is None else partitions
        self.assignment = tuple(tp for tp in self.assignment if tp not in revoked)
        for tp in revoked:
            self.positions.pop(tp, None)
            self.first_positions.pop(tp, None)
            self.buffers.pop(tp, None)
            self._fetch_end.pop(tp, None)
            self._fetching.discard(tp)
            self._resolving.discard(tp)
        if revoked:
            how = "only what moves" if self.cooperative else "eager rebalance"
            self.events.emit(
                self.name,
                "consumer.revoked",
                None,
                None,
                None,
                f"gives up {', '.join(str(tp) for tp in revoked)} ({how})",
            )
            self._on_revoked(revoked)

    def _lose_partitions(self) -> None:
        """The membership is gone (expired or fenced): in the cooperative protocol
        the partitions it held are lost, not kept; reading resumes from the
        committed offsets after the rejoin (Kafka's onPartitionsLost)."""
        if self.cooperative and self.assignment:
            self.events.emit(
                self.name,
                "consumer.lost",
                None,
                None,
                None,
                f"{', '.join(str(tp) for tp in self.assignment)} lost with the membership",
            )
            self._revoke()
            # A JoinGroup already sent named them as owned: join once more after
            # this round so the withheld partitions find their owner.
            self._owned_stale = True

    def _join(self, coordinator: int) -> None:
        self.state = "joining"
        self.events.emit(
            self.name,
            "consumer.join",
            None,
            None,
            None,
            f"JoinGroup {self.config.group_id} as {self.member_id or 'a new member'}",
            src=self.name,
            dst=f"broker-{coordinator}",
        )
        self._send(
            coordinator,
            JoinGroupRequest(
                self.config.group_id,
                self.member_id,
                self.name,
                self.config.session_timeout_ms,
                self.config.max_poll_interval_ms,
                self.config.partition_assignment_strategy,
                self.topics,
                self.assignment if self.cooperative else (),
            ),
            "join",
        )

    def _got_join(self, _context: Any, response: JoinGroupResponse) -> None:
        error = response.error
        if error is not ErrorCode.NONE:
            if error is ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.state = "unjoined"
            self._retry_later()
            return
        self.member_id = response.member_id
        self.generation = response.generation_id
        assignments: tuple[tuple[str, tuple[TopicPartition, ...]], ...] = ()
        if response.leader == self.member_id:
            subscriptions = {m: topics for m, topics, _owned in response.members}
            owned = {m: owned for m, _topics, owned in response.members}
            wanted = sorted({t for topics in subscriptions.values() for t in topics})
            counts = {t: self.cluster.topics[t].partitions for t in wanted}
            plan = assign(response.protocol, subscriptions, counts, owned)
            assignments = tuple((m, tuple(tps)) for m, tps in plan.items())
        coordinator = self._coordinator()
        if coordinator is None:
            self.state = "unjoined"
            self._retry_later()
            return
        self.state = "syncing"
        self._send(
            coordinator,
            SyncGroupRequest(self.config.group_id, self.generation, self.member_id, assignments),
            "sync",
        )
        self._schedule_heartbeat()

    def _got_sync(self, _context: Any, response: SyncGroupResponse) -> None:
        error = response.error
        if error is not ErrorCode.NONE:
            if error is ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            self.state = "unjoined"
            self.rejoin_needed = True
            self._retry_later()
            return
        self.state = "stable"
        self.rejoin_needed = False
        if self.cooperative:
            lost = tuple(tp for tp in self.assignment if tp not in response.assignment)
            kept = tuple(tp for tp in self.assignment if tp in response.assignment)
            self._revoke(lost)
            if lost or self._owned_stale:
                # KIP-429: what was given up goes to its new owner in one more round.
                self.rejoin_needed = True
                self._owned_stale = False
            added = tuple(tp for tp in response.assignment if tp not in kept)
        else:
            added = response.assignment
        self.assignment = response.assignment
        self.assignment_epoch += 1
        self.events.emit(
            self.name,
            "consumer.assigned",
            None,
            None,
            None,
            f"generation {self.generation}, member {self.member_id}: "
            f"{', '.join(str(tp) for tp in self.assignment) or 'no partitions'}",
        )
        seeks = self._on_assigned(added)
        for tp, offset in seeks.items():
            self.positions[tp] = offset
            self.first_positions[tp] = offset
        self._resolve_positions()
        self._on_data()

    def _schedule_heartbeat(self) -> None:
        if self._hb_timer:
            self._hb_timer.cancel()
        self._hb_timer = self.scheduler.after(self.config.heartbeat_interval_ms, self._heartbeat)

    def _heartbeat(self) -> None:
        self._hb_timer = None
        if self.closed or self._deferred(self._heartbeat):
            return
        if self.state not in ("syncing", "stable"):
            return
        if self.scheduler.now_ms - self.last_poll_ms > self.config.max_poll_interval_ms:
            self.events.emit(
                self.name,
                "consumer.poll-timeout",
                None,
                None,
                None,
                f"no poll() for max.poll.interval.ms={self.config.max_poll_interval_ms}: "
                "leaving the group",
            )
            coordinator = self._coordinator()
            if coordinator is not None:
                self.network.send_request(
                    self.name,
                    f"broker-{coordinator}",
                    LeaveGroupRequest(self.config.group_id, self.member_id),
                )
            self.member_id = ""
            self.rejoin_needed = True
            self.state = "unjoined"
            return
        coordinator = self._coordinator()
        if coordinator is not None:
            self._send(
                coordinator,
                HeartbeatRequest(self.config.group_id, self.generation, self.member_id),
                "heartbeat",
            )
        self._schedule_heartbeat()

    def _got_heartbeat(self, _context: Any, response: HeartbeatResponse) -> None:
        error = response.error
        if error is ErrorCode.NONE or self.state not in ("syncing", "stable"):
            return
        if error is ErrorCode.UNKNOWN_MEMBER_ID:
            self.member_id = ""
            self.generation = -1
        if error is ErrorCode.UNKNOWN_MEMBER_ID:
            self._lose_partitions()
        if error in (
            ErrorCode.REBALANCE_IN_PROGRESS,
            ErrorCode.ILLEGAL_GENERATION,
            ErrorCode.UNKNOWN_MEMBER_ID,
        ):
            if not self.rejoin_needed:
                self.events.emit(
                    self.name,
                    "consumer.rejoin-needed",
                    None,
                    None,
                    error.name,
                    "the heartbeat says the group is rebalancing",
                )
            self.rejoin_needed = True
            self._on_data()

    # -- positions ---------------------------------------------------------------
    def _resolve_positions(self) -> None:
        missing = tuple(
            tp for tp in self.assignment if tp not in self.positions and tp not in self._resolving
        )
        if not missing:
            return
        coordinator = self._coordinator()
        if coordinator is None:
            self._retry_later()
            return
        self._resolving.update(missing)
        self._send(
            coordinator, OffsetFetchRequest(self.config.group_id, missing), "offset-fetch", missing
        )

    def _got_offset_fetch(
        self, context: tuple[TopicPartition, ...], response: OffsetFetchResponse
    ) -> None:
        for tp in context:
            self._resolving.discard(tp)
        if response.error is not ErrorCode.NONE:
            self._retry_later()
            return
        for tp, offset in response.offsets:
            if tp not in self.assignment or tp in self.positions:
                continue
            if offset >= 0:
                self.positions[tp] = offset
                self.first_positions[tp] = offset
                self.committed[tp] = offset
                self.events.emit(
                    self.name,
                    "consumer.position",
                    str(tp),
                    offset,
                    None,
                    "starts at the committed offset",
                )
            else:
                self._reset(tp)
        self._on_data()

    def _reset(self, tp: TopicPartition) -> None:
        policy = self.config.auto_offset_reset
        if policy == "none":
            self._on_fatal(
                f"NoOffsetForPartitionException: no committed offset for {tp} "
                "and auto.offset.reset=none"
            )
            return
        leader = self.cluster.leader_of(tp)
        if leader is None:
            self._retry_later()
            return
        self._resolving.add(tp)
        timestamp = EARLIEST_TIMESTAMP if policy == "earliest" else LATEST_TIMESTAMP
        self._send(
            leader, ListOffsetsRequest(tp, timestamp, self.isolation), "list-offsets", tp, str(tp)
        )

    def _got_list_offsets(self, tp: TopicPartition, response: ListOffsetsResponse) -> None:
        self._resolving.discard(tp)
        if response.error is not ErrorCode.NONE:
            self._retry_later()
            return
        if tp in self.assignment and tp not in self.positions:
            self.positions[tp] = response.offset
            self.first_positions[tp] = response.offset
            self.events.emit(
                self.name,
                "consumer.position",
                str(tp),
                response.offset,
                None,
                f"no committed offset: auto.offset.reset={self.config.auto_offset_reset}",
            )
        self._on_data()

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Move the position; data fetched for the old position is dropped, and
        the checker sees a new reading sequence (a seek is not a skip)."""
        self.positions[tp] = offset
        self.buffers.pop(tp, None)
        self._fetch_end.pop(tp, None)
        self._fetching.discard(tp)
        self.assignment_epoch += 1

    # -- poll and fetch ------------------------------------------------------------
    def poll(self) -> list[PolledRecord]:
        if self.closed or self.closing or self.scheduler.now_ms < self.stalled_until_ms:
            return []
        self.last_poll_ms = self.scheduler.now_ms
        self._ensure_active()
        if self.state != "stable" and not (self.cooperative and self.assignment):
            return []  # eager: nothing is owned while the group rebalances
        self._resolve_positions()
        if self.config.enable_auto_commit and self.scheduler.now_ms >= self._next_auto_commit_ms:
            self._next_auto_commit_ms = self.scheduler.now_ms + self.config.auto_commit_interval_ms
            owned = {tp: o for tp, o in self.positions.items() if tp in self.assignment}
            if owned and any(self.committed.get(tp) != o for tp, o in owned.items()):
                self.events.emit(
                    self.name,
                    "consumer.auto-commit",
                    None,
                    None,
                    None,
                    "auto.commit.interval.ms elapsed: committing positions "
                    + ", ".join(f"{tp}={o}" for tp, o in owned.items()),
                )
                self.commit(owned, _ignore)
        out: list[PolledRecord] = []
        limit = self.config.max_poll_records
        for tp in self.assignment:
            buffer = self.buffers.get(tp)
            while buffer and len(out) < limit:
                offset, record = buffer.popleft()
                if offset < self.positions.get(tp, offset):
                    continue
                out.append((tp, offset, record))
                self.positions[tp] = offset + 1
            if not buffer and tp in self.positions:
                # Drained: the position moves past whatever the fetch skipped too.
                end = self._fetch_end.get(tp, 0)
                if end > self.positions[tp]:
                    self.positions[tp] = end
        self._send_fetches()
        return out

    def _send_fetches(self) -> None:
        for tp in self.assignment:
            if tp in self._fetching or tp not in self.positions or self.buffers.get(tp):
                continue
            leader = self.cluster.leader_of(tp)
            if leader is None:
                self._retry_later()
                continue
            self._fetching.add(tp)
            position = self.positions[tp]
            self._send(
                leader,
                ConsumerFetchRequest(
                    tp,
                    position,
                    self.config.fetch_max_wait_ms,
                    self.config.max_partition_fetch_bytes,
                    self.isolation,
                ),
                "fetch",
                (tp, position, self.assignment_epoch),
                str(tp),
            )

    def _got_fetch(self, context: tuple[TopicPartition, int, int], response: FetchResponse) -> None:
        tp, fetch_offset, epoch = context
        self._fetching.discard(tp)
        if epoch != self.assignment_epoch or tp not in self.assignment:
            return
        if response.error is ErrorCode.OFFSET_OUT_OF_RANGE:
            self.positions.pop(tp, None)
            self.events.emit(
                self.name,
                "consumer.out-of-range",
                str(tp),
                fetch_offset,
                response.error.name,
                "resetting the position",
            )
            self._reset(tp)
            return
        if response.error is not ErrorCode.NONE:
            self._retry_later()
            return
        self.high_watermarks[tp] = response.high_watermark
        if self.positions.get(tp) != fetch_offset:
            self._on_data()
            return
        buffer = self.buffers.setdefault(tp, deque())
        end = fetch_offset
        for lb in self._visible_batches(response):
            for i, record in enumerate(lb.batch.records):
                offset = lb.base_offset + i
                if offset >= fetch_offset:
                    buffer.append((offset, record))
        if response.batches:
            end = max(end, response.batches[-1].next_offset)
        self._fetch_end[tp] = end
        if not buffer and end > fetch_offset:
            self.positions[tp] = end  # only markers or aborted data: step over them
        self._on_data()

    def _visible_batches(self, response: FetchResponse) -> list[LogBatch]:
        """The batches the application may see, as Kafka's fetcher decides: never
        control batches (transaction markers); with read_committed, never the
        batches of a transaction the response lists as aborted, from its first
        offset until that producer's ABORT marker."""
        read_committed = self.isolation == READ_COMMITTED
        pending = deque(sorted(response.aborted_transactions, key=lambda t: t.first_offset))
        aborted_producers: set[int] = set()
        out = []
        for lb in response.batches:
            batch = lb.batch
            if read_committed and batch.has_producer_id:
                while pending and pending[0].first_offset <= lb.last_offset:
                    aborted_producers.add(pending.popleft().producer_id)
            if batch.is_control:
                if control_type(batch) == CONTROL_ABORT:
                    aborted_producers.discard(batch.producer_id)
                continue
            if (
                read_committed
                and batch.is_transactional
                and (batch.producer_id in aborted_producers)
            ):
                continue
            out.append(lb)
        return out

    # -- commits -------------------------------------------------------------------
    def commit(self, offsets: dict[TopicPartition, int], callback: CommitCallback) -> None:
        """commitSync: retries retriable errors; CommitFailedException -> callback."""
        if self.generation < 0 or not self.member_id:
            # Like Kafka: not part of an active generation, so the commit fails
            # here, before any request, and the next poll() rejoins.
            self.events.emit(
                self.name,
                "consumer.commit-failed",
                None,
                None,
                ErrorCode.UNKNOWN_MEMBER_ID.name,
                "CommitFailedException: not part of an active group any more",
            )
            self.rejoin_needed = True
            callback(ErrorCode.UNKNOWN_MEMBER_ID)
            return
        coordinator = self._coordinator()
        if coordinator is None:
            self.scheduler.after(self.config.retry_backoff_ms, self.commit, offsets, callback)
            return
        self.commits_in_flight += 1
        request = OffsetCommitRequest(
            self.config.group_id, self.generation, self.member_id, tuple(offsets.items())
        )
        self.events.emit(
            self.name,
            "consumer.commit",
            None,
            None,
            None,
            f"OffsetCommit generation {self.generation}: "
            + ", ".join(f"{tp}={o}" for tp, o in offsets.items()),
            src=self.name,
            dst=f"broker-{coordinator}",
        )
        self._send(coordinator, request, "commit", (offsets, callback))

    def _got_commit(
        self,
        context: tuple[dict[TopicPartition, int], CommitCallback],
        response: OffsetCommitResponse,
    ) -> None:
        offsets, callback = context
        self.commits_in_flight -= 1
        error = response.error
        if error is ErrorCode.NONE:
            self.committed.update(offsets)
            callback(error)
            return
        retriable = error in _COORDINATOR_ERRORS or (
            self.cooperative and error is ErrorCode.REBALANCE_IN_PROGRESS
        )
        if retriable:
            # Cooperative members keep their partitions through a rebalance, so a
            # commit refused meanwhile is retried, as RebalanceInProgressException asks.
            self.scheduler.after(self.config.retry_backoff_ms, self.commit, offsets, callback)
            return
        if error in _COMMIT_FAILED:
            self.events.emit(
                self.name,
                "consumer.commit-failed",
                None,
                None,
                error.name,
                "CommitFailedException: the group has moved on without this member",
            )
            if error is ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
                self.generation = -1
            if error is ErrorCode.UNKNOWN_MEMBER_ID:
                self._lose_partitions()
            self.rejoin_needed = True
        callback(error)

    def caught_up(self) -> bool:
        """Every owned partition read up to its last known high watermark."""
        for tp in self.assignment:
            position = self.positions.get(tp)
            if position is None or self.buffers.get(tp):
                return False
            leader = self.cluster.leader_of(tp)
            if leader is None:
                continue
            log = self.cluster.brokers[leader].replicas[tp].log
            bound = (
                log.last_stable_offset if self.isolation == READ_COMMITTED else (log.high_watermark)
            )
            if position < bound:
                return False
        return True

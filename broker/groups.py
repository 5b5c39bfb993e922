"""The group coordinator (Kafka's classic group protocol, eager rebalancing).

Each group lives on the broker that leads its ``__consumer_offsets``
partition (``abs(hash(group_id)) % partitions``, with Java's String hash).
Members join, the coordinator waits until every known member has rejoined (or
the rebalance timeout passes), bumps the generation, names a leader, and the
leader's SyncGroup carries the assignment computed on the client.  Heartbeats
keep a member's session alive; a member silent for ``session.timeout.ms`` is
removed and the group rebalances.

Committed offsets and group metadata are records in the real
``__consumer_offsets`` log, replicated like any partition.  A commit is
answered once its record is committed (high watermark past it); a broker that
becomes leader of an offsets partition rebuilds its groups from that log.

Commit validation follows Kafka: an unknown member gets UNKNOWN_MEMBER_ID, a
stale generation ILLEGAL_GENERATION, a group completing a rebalance
REBALANCE_IN_PROGRESS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from broker.errors import ErrorCode
from broker.network import Exchange
from broker.protocol import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
    TopicPartition,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)
from broker.records import CONTROL_COMMIT, Record, control_type
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.cluster import Broker

OFFSETS_TOPIC = "__consumer_offsets"
OFFSETS_COMMIT_TIMEOUT_MS = 5000  # offsets.commit.timeout.ms


def java_string_hash(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for_group(group_id: str, partitions: int) -> int:
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


@dataclass(slots=True)
class Member:
    member_id: str
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol: str
    topics: tuple[str, ...]
    join: Exchange | None = None
    sync: Exchange | None = None
    assignment: tuple[TopicPartition, ...] = ()
    owned: tuple[TopicPartition, ...] = ()
    session_timer: Timer | None = None


@dataclass(slots=True)
class Group:
    group_id: str
    tp: TopicPartition
    state: str = "Empty"  # Empty | PreparingRebalance | CompletingRebalance | Stable
    generation: int = 0
    protocol: str = ""
    leader: str = ""
    members: dict[str, Member] = field(default_factory=dict)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    rebalance_timer: Timer | None = None
    join_deadline_ms: int = 0
    initial_join: bool = False
    # Offsets committed inside transactions, per producer id, until its marker.
    pending_txn: dict[int, dict[TopicPartition, int]] = field(default_factory=dict)


class GroupCoordinator:
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.scheduler = broker.scheduler
        self.network = broker.network
        self.events = broker.events
        self.groups: dict[str, Group] = {}

    # -- placement and loading -----------------------------------------------
    def _partition(self, group_id: str) -> TopicPartition:
        partitions = self.broker.cluster.offsets_partitions
        return TopicPartition(OFFSETS_TOPIC, partition_for_group(group_id, partitions))

    def _owns(self, tp: TopicPartition) -> bool:
        replica = self.broker.replicas.get(tp)
        return replica is not None and replica.role == "leader"

    def load(self, tp: TopicPartition) -> None:
        """Become coordinator for the groups in ``tp``: rebuild them from its log."""
        log = self.broker.replicas[tp].log
        loaded: dict[str, Group] = {}
        for lb in log.batches:
            batch = lb.batch
            marker = control_type(batch)
            if marker is not None:
                for group in loaded.values():
                    self._settle_txn(group, batch.producer_id, marker == CONTROL_COMMIT, False)
                continue
            for record in batch.records:
                if record.key is None:
                    continue
                data = json.loads(record.value)
                group = loaded.setdefault(data["group"], Group(data["group"], tp))
                if record.key.startswith("offset/"):
                    partition = TopicPartition.parse(data["partition"])
                    if batch.is_transactional:
                        pending = group.pending_txn.setdefault(batch.producer_id, {})
                        pending[partition] = int(data["offset"])
                    else:
                        group.offsets[partition] = int(data["offset"])
                elif record.key.startswith("group/"):
                    self._load_metadata(group, data)
        for group_id, group in loaded.items():
            self.groups[group_id] = group
            for member in group.members.values():
                self._touch(group, member)
        if loaded:
            self.events.emit(
                self.broker.name,
                "group.loaded",
                str(tp),
                None,
                None,
                f"coordinator for {', '.join(sorted(loaded))}: state rebuilt from the log",
            )

    @staticmethod
    def _load_metadata(group: Group, data: dict[str, Any]) -> None:
        group.generation = int(data["generation"])
        group.protocol = data["protocol"]
        group.leader = data["leader"]
        group.members = {
            m["member_id"]: Member(
                m["member_id"],
                m["client_id"],
                m["session_timeout_ms"],
                m["rebalance_timeout_ms"],
                group.protocol,
                tuple(m["topics"]),
                assignment=tuple(TopicPartition.parse(p) for p in m["assignment"]),
            )
            for m in data["members"]
        }
        group.state = "Stable" if group.members else "Empty"

    def unload(self, tp: TopicPartition) -> None:
        for group_id in [g for g, group in self.groups.items() if group.tp == tp]:
            group = self.groups.pop(group_id)
            self._cancel_timers(group)
            for member in group.members.values():
                if member.join is not None:
                    self.network.send_response(
                        member.join, JoinGroupResponse(ErrorCode.NOT_COORDINATOR)
                    )
                if member.sync is not None:
                    self.network.send_response(
                        member.sync, SyncGroupResponse(ErrorCode.NOT_COORDINATOR)
                    )

    def unload_all(self) -> None:
        for group in self.groups.values():
            self._cancel_timers(group)
        self.groups.clear()

    @staticmethod
    def _cancel_timers(group: Group) -> None:
        if group.rebalance_timer:
            group.rebalance_timer.cancel()
        for member in group.members.values():
            if member.session_timer:
                member.session_timer.cancel()

    # -- requests ------------------------------------------------------------
    def handle(self, exchange: Exchange, request: Any) -> None:
        tp = self._partition(request.group_id)
        if not self._owns(tp):
            self.network.send_response(
                exchange, _error_response(request, ErrorCode.NOT_COORDINATOR)
            )
            return
        group = self.groups.get(request.group_id)
        if group is None:
            group = self.groups[request.group_id] = Group(request.group_id, tp)
        if isinstance(request, JoinGroupRequest):
            self._join(group, exchange, request)
        elif isinstance(request, SyncGroupRequest):
            self._sync(group, exchange, request)
        elif isinstance(request, HeartbeatRequest):
            self._heartbeat(group, exchange, request)
        elif isinstance(request, LeaveGroupRequest):
            self._leave(group, exchange, request)
        elif isinstance(request, OffsetCommitRequest):
            self._commit(group, exchange, request)
        elif isinstance(request, TxnOffsetCommitRequest):
            self._txn_commit(group, exchange, request)
        elif isinstance(request, OffsetFetchRequest):
            unstable = [
                tp_
                for pending in group.pending_txn.values()
                for tp_ in pending
                if tp_ in request.partitions
            ]
            if unstable:
                # A transaction holds offsets for these partitions: the new owner
                # must wait for its marker (require_stable, KIP-447).
                self.network.send_response(
                    exchange, OffsetFetchResponse(ErrorCode.UNSTABLE_OFFSET_COMMIT)
                )
                return
            offsets = tuple((tp_, group.offsets.get(tp_, -1)) for tp_ in request.partitions)
            self.network.send_response(exchange, OffsetFetchResponse(ErrorCode.NONE, offsets))

    def _emit(self, group: Group, kind: str, detail: str, error: str | None = None) -> None:
        self.events.emit(
            self.broker.name, kind, None, None, error, f"group {group.group_id}: " + detail
        )

    def _join(self, group: Group, exchange: Exchange, request: JoinGroupRequest) -> None:
        member_id = request.member_id
        if member_id and member_id not in group.members:
            self.network.send_response(exchange, JoinGroupResponse(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        if not member_id:
            member_id = f"{request.client_id}-{self.broker.cluster.next_member_number()}"
            member = Member(
                member_id,
                request.client_id,
                request.session_timeout_ms,
                request.rebalance_timeout_ms,
                request.protocol,
                request.topics,
            )
            group.members[member_id] = member
            self._emit(group, "group.member-joined", f"new member {member_id}")
        member = group.members[member_id]
        member.join = exchange
        member.topics = request.topics
        member.owned = request.owned
        member.protocol = request.protocol
        self._touch(group, member)
        if group.state != "PreparingRebalance":
            self._prepare_rebalance(group, f"{member_id} (re)joined")
        self._maybe_complete_join(group)

    def _prepare_rebalance(self, group: Group, why: str) -> None:
        was_empty = group.state == "Empty"
        for member in group.members.values():
            if member.sync is not None:
                self.network.send_response(
                    member.sync, SyncGroupResponse(ErrorCode.REBALANCE_IN_PROGRESS)
                )
                member.sync = None
        group.state = "PreparingRebalance"
        timeout = max((m.rebalance_timeout_ms for m in group.members.values()), default=0)
        delay = self.broker.cluster.config.group_initial_rebalance_delay_ms
        group.initial_join = was_empty
        group.join_deadline_ms = self.scheduler.now_ms + (
            min(delay, timeout) if was_empty else timeout
        )
        if group.rebalance_timer:
            group.rebalance_timer.cancel()
        group.rebalance_timer = self.scheduler.at(
            group.join_deadline_ms, self._rebalance_deadline, group
        )
        self._emit(group, "group.rebalance", f"preparing rebalance ({why})")

    def _maybe_complete_join(self, group: Group) -> None:
        """Complete the join once every known member has rejoined (an empty group
        first waits group.initial.rebalance.delay.ms for more members)."""
        if group.state != "PreparingRebalance":
            return
        if any(m.join is None for m in group.members.values()):
            return
        if group.initial_join and self.scheduler.now_ms < group.join_deadline_ms:
            return
        self._complete_join(group)

    def _rebalance_deadline(self, group: Group) -> None:
        group.rebalance_timer = None
        if group.state != "PreparingRebalance":
            return
        for member_id in [m for m, member in group.members.items() if member.join is None]:
            self._remove(group, member_id, "did not rejoin within the rebalance timeout")
        self._complete_join(group)

    def _complete_join(self, group: Group) -> None:
        if group.rebalance_timer:
            group.rebalance_timer.cancel()
            group.rebalance_timer = None
        group.generation += 1
        if not group.members:
            group.state = "Empty"
            group.leader = ""
            self._emit(group, "group.empty", f"generation {group.generation}, no members")
            return
        group.state = "CompletingRebalance"
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        group.protocol = group.members[group.leader].protocol
        members = tuple((m.member_id, m.topics, m.owned) for m in group.members.values())
        self._emit(
            group,
            "group.generation",
            f"generation {group.generation}, leader {group.leader}, members "
            f"{', '.join(group.members)}",
        )
        for member in group.members.values():
            exchange, member.join = member.join, None
            if exchange is None:
                continue
            self.network.send_response(
                exchange,
                JoinGroupResponse(
                    ErrorCode.NONE,
                    group.generation,
                    member.member_id,
                    group.leader,
                    members if member.member_id == group.leader else (),
                    group.protocol,
                ),
            )

    def _check_member(self, group: Group, member_id: str, generation: int) -> ErrorCode:
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    def _sync(self, group: Group, exchange: Exchange, request: SyncGroupRequest) -> None:
        error = self._check_member(group, request.member_id, request.generation_id)
        if error is ErrorCode.NONE and group.state == "PreparingRebalance":
            error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            self.network.send_response(exchange, SyncGroupResponse(error))
            return
        member = group.members[request.member_id]
        self._touch(group, member)
        if group.state == "Stable":
            self.network.send_response(
                exchange, SyncGroupResponse(ErrorCode.NONE, member.assignment)
            )
            return
        member.sync = exchange
        if request.member_id != group.leader:
            return
        assignments = dict(request.assignments)
        for member_id, m in group.members.items():
            m.assignment = tuple(assignments.get(member_id, ()))
        generation = group.generation
        self.broker.append_internal(
            group.tp,
            (self._metadata_record(group),),
            OFFSETS_COMMIT_TIMEOUT_MS,
            partial(self._metadata_stored, group, generation),
        )

    def _metadata_stored(
        self, group: Group, generation: int, error: ErrorCode, _offset: int
    ) -> None:
        if group.generation != generation or group.state != "CompletingRebalance":
            return
        if error is not ErrorCode.NONE:
            for member in group.members.values():
                if member.sync is not None:
                    self.network.send_response(
                        member.sync, SyncGroupResponse(ErrorCode.COORDINATOR_NOT_AVAILABLE)
                    )
                    member.sync = None
            self._prepare_rebalance(group, f"storing the group failed with {error.name}")
            return
        group.state = "Stable"
        self._emit(
            group,
            "group.stable",
            f"generation {generation}: "
            + "; ".join(
                f"{m.member_id} <- {', '.join(str(tp) for tp in m.assignment) or 'nothing'}"
                for m in group.members.values()
            ),
        )
        for member in group.members.values():
            if member.sync is not None:
                self.network.send_response(
                    member.sync, SyncGroupResponse(ErrorCode.NONE, member.assignment)
                )
                member.sync = None

    def _heartbeat(self, group: Group, exchange: Exchange, request: HeartbeatRequest) -> None:
        error = self._check_member(group, request.member_id, request.generation_id)
        if error is ErrorCode.NONE:
            self._touch(group, group.members[request.member_id])
            if group.state == "PreparingRebalance":
                error = ErrorCode.REBALANCE_IN_PROGRESS
        self.network.send_response(exchange, HeartbeatResponse(error))

    def _leave(self, group: Group, exchange: Exchange, request: LeaveGroupRequest) -> None:
        if request.member_id not in group.members:
            self.network.send_response(exchange, LeaveGroupResponse(ErrorCode.UNKNOWN_MEMBER_ID))
            return
        self._remove(group, request.member_id, "left the group")
        self.network.send_response(exchange, LeaveGroupResponse(ErrorCode.NONE))
        self._after_removal(group)

    def _touch(self, group: Group, member: Member) -> None:
        if member.session_timer:
            member.session_timer.cancel()
        member.session_timer = self.scheduler.after(
            member.session_timeout_ms, self._session_expired, group, member.member_id
        )

    def _session_expired(self, group: Group, member_id: str) -> None:
        if self.groups.get(group.group_id) is not group or member_id not in group.members:
            return
        member = group.members[member_id]
        if member.join is not None or member.sync is not None:
            # Kafka keeps a member alive while it waits for its JoinGroup or
            # SyncGroup answer (shouldKeepAlive).
            self._touch(group, member)
            return
        self._remove(
            group,
            member_id,
            f"no heartbeat within session.timeout.ms={member.session_timeout_ms}",
            kind="group.member-expired",
        )
        self._after_removal(group)

    def _remove(
        self, group: Group, member_id: str, why: str, kind: str = "group.member-left"
    ) -> None:
        member = group.members.pop(member_id)
        if member.session_timer:
            member.session_timer.cancel()
        self._emit(group, kind, f"{member_id} removed: {why}")

    def _after_removal(self, group: Group) -> None:
        if group.state in ("Stable", "CompletingRebalance"):
            self._prepare_rebalance(group, "a member is gone")
            self._maybe_complete_join(group)
        elif group.state == "PreparingRebalance":
            self._maybe_complete_join(group)

    # -- offsets ---------------------------------------------------------------
    def _commit(self, group: Group, exchange: Exchange, request: OffsetCommitRequest) -> None:
        simple = request.generation_id < 0 and not request.member_id
        if simple and group.state != "Empty":
            error = ErrorCode.UNKNOWN_MEMBER_ID
        elif simple:
            error = ErrorCode.NONE
        else:
            error = self._check_member(group, request.member_id, request.generation_id)
            if error is ErrorCode.NONE and group.state == "CompletingRebalance":
                error = ErrorCode.REBALANCE_IN_PROGRESS
        if error is not ErrorCode.NONE:
            who = request.member_id or "a standalone consumer"
            self._reject_commit(group, exchange, error, who, request.generation_id, request.offsets)
            self.network.send_response(exchange, OffsetCommitResponse(error))
            return
        if request.member_id in group.members:
            self._touch(group, group.members[request.member_id])
        records = tuple(
            self._offset_record(group, tp, offset, request.member_id, request.generation_id)
            for tp, offset in request.offsets
        )

        self.broker.append_internal(
            group.tp,
            records,
            OFFSETS_COMMIT_TIMEOUT_MS,
            partial(
                self._offsets_stored,
                group,
                exchange,
                request.offsets,
                _offsets_text(request.offsets),
            ),
        )

    def _offsets_stored(
        self,
        group: Group,
        exchange: Exchange,
        offsets: tuple[tuple[TopicPartition, int], ...],
        detail: str,
        err: ErrorCode,
        _offset: int,
    ) -> None:
        if err is ErrorCode.NONE:
            for tp, offset in offsets:
                group.offsets[tp] = offset
            self.events.emit(
                self.broker.name,
                "offset.committed",
                str(group.tp),
                None,
                None,
                f"group {group.group_id}: {detail}",
                src=self.broker.name,
                dst=exchange.conn.client,
            )
        elif err in (ErrorCode.NOT_ENOUGH_REPLICAS, ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND):
            err = ErrorCode.COORDINATOR_NOT_AVAILABLE
        elif err is ErrorCode.NOT_LEADER_OR_FOLLOWER:
            err = ErrorCode.NOT_COORDINATOR
        self.network.send_response(exchange, OffsetCommitResponse(err))

    def _reject_commit(
        self,
        group: Group,
        exchange: Exchange,
        error: ErrorCode,
        who: str,
        generation_id: int,
        offsets: tuple[tuple[TopicPartition, int], ...],
    ) -> None:
        self.events.emit(
            self.broker.name,
            "offset.commit-rejected",
            None,
            None,
            error.name,
            f"group {group.group_id}: {who} generation {generation_id} "
            f"(group is at {group.generation}): {_offsets_text(offsets)}",
            src=self.broker.name,
            dst=exchange.conn.client,
        )

    def _txn_commit(
        self, group: Group, exchange: Exchange, request: TxnOffsetCommitRequest
    ) -> None:
        """Offsets sent inside a transaction (sendOffsetsToTransaction): written as
        that producer's transactional records, visible only once its COMMIT
        marker reaches this partition.  KIP-447: the member id and generation
        are checked as for a plain commit."""
        error = ErrorCode.NONE
        if request.member_id:
            error = self._check_member(group, request.member_id, request.generation_id)
        if error is not ErrorCode.NONE:
            who = f"transactional commit by {request.member_id}"
            self._reject_commit(group, exchange, error, who, request.generation_id, request.offsets)
            self.network.send_response(exchange, TxnOffsetCommitResponse(error))
            return
        records = tuple(
            self._offset_record(group, tp, offset, request.member_id, request.generation_id)
            for tp, offset in request.offsets
        )
        # Pending from the moment the records are appended, as in Kafka: a marker
        # written any time after this settles them.
        added = dict(request.offsets)
        group.pending_txn.setdefault(request.producer_id, {}).update(added)
        self.broker.append_internal(
            group.tp,
            records,
            OFFSETS_COMMIT_TIMEOUT_MS,
            partial(
                self._txn_offsets_stored, group, exchange, request, _offsets_text(request.offsets)
            ),
            producer=(request.producer_id, request.producer_epoch),
        )

    def _txn_offsets_stored(
        self,
        group: Group,
        exchange: Exchange,
        request: TxnOffsetCommitRequest,
        detail: str,
        error: ErrorCode,
        _offset: int,
    ) -> None:
        if error is ErrorCode.NONE:
            self.events.emit(
                self.broker.name,
                "offset.pending",
                str(group.tp),
                None,
                None,
                f"group {group.group_id}: {detail} pending in the transaction of PID "
                f"{request.producer_id}",
                src=self.broker.name,
                dst=exchange.conn.client,
            )
        else:
            if error in (ErrorCode.NOT_COORDINATOR, ErrorCode.NOT_ENOUGH_REPLICAS):
                # Refused before any append: nothing is pending after all.
                pending = group.pending_txn.get(request.producer_id, {})
                for tp, _offset in request.offsets:
                    pending.pop(tp, None)
                if not pending:
                    group.pending_txn.pop(request.producer_id, None)
            if error is ErrorCode.NOT_LEADER_OR_FOLLOWER:
                error = ErrorCode.NOT_COORDINATOR
        self.network.send_response(exchange, TxnOffsetCommitResponse(error))

    def on_marker(self, tp: TopicPartition, producer_id: int, commit: bool) -> None:
        """A transaction marker reached this offsets partition."""
        for group in self.groups.values():
            if group.tp == tp:
                self._settle_txn(group, producer_id, commit, True)

    def _settle_txn(self, group: Group, producer_id: int, commit: bool, announce: bool) -> None:
        pending = group.pending_txn.pop(producer_id, None)
        if pending is None:
            return
        if commit:
            group.offsets.update(pending)
        if announce:
            detail = _offsets_text(tuple(pending.items()))
            self.events.emit(
                self.broker.name,
                "offset.committed" if commit else "offset.dropped",
                str(group.tp),
                None,
                None,
                f"group {group.group_id}: {detail} "
                + (
                    "visible: the transaction committed"
                    if commit
                    else "dropped: the transaction aborted"
                ),
            )

    def _next_id(self) -> str:
        return f"{OFFSETS_TOPIC}#{self.broker.cluster.next_internal_record()}"

    def _offset_record(
        self, group: Group, tp: TopicPartition, offset: int, member_id: str, generation: int
    ) -> Record:
        value = json.dumps(
            {
                "group": group.group_id,
                "partition": str(tp),
                "offset": offset,
                "member_id": member_id,
                "generation": generation,
            },
            sort_keys=True,
        )
        return Record(self._next_id(), f"offset/{group.group_id}/{tp}", value)

    def _metadata_record(self, group: Group) -> Record:
        value = json.dumps(
            {
                "group": group.group_id,
                "generation": group.generation,
                "protocol": group.protocol,
                "leader": group.leader,
                "members": [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "session_timeout_ms": m.session_timeout_ms,
                        "rebalance_timeout_ms": m.rebalance_timeout_ms,
                        "topics": list(m.topics),
                        "assignment": [str(tp) for tp in m.assignment],
                    }
                    for m in group.members.values()
                ],
            },
            sort_keys=True,
        )
        return Record(self._next_id(), f"group/{group.group_id}", value)

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "group": g.group_id,
                "coordinator": self.broker.broker_id,
                "partition": str(g.tp),
                "state": g.state,
                "generation": g.generation,
                "protocol": g.protocol,
                "leader": g.leader,
                "members": [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "assignment": [str(tp) for tp in m.assignment],
                    }
                    for m in g.members.values()
                ],
                "offsets": {
                    str(tp): o
                    for tp, o in sorted(
                        g.offsets.items(), key=lambda kv: (kv[0].topic, kv[0].partition)
                    )
                },
            }
            for g in self.groups.values()
        ]


def _error_response(request: Any, error: ErrorCode) -> Any:
    return {
        "JoinGroup": JoinGroupResponse,
        "SyncGroup": SyncGroupResponse,
        "Heartbeat": HeartbeatResponse,
        "LeaveGroup": LeaveGroupResponse,
        "OffsetCommit": OffsetCommitResponse,
        "OffsetFetch": OffsetFetchResponse,
        "TxnOffsetCommit": TxnOffsetCommitResponse,
    }[request.api](error)


def _offsets_text(offsets: tuple[tuple[TopicPartition, int], ...]) -> str:
    return ", ".join(f"{tp}={offset}" for tp, offset in offsets)

"""Groups over the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
LeaveGroup, OffsetCommit and OffsetFetch (transactions are in ``broker.wire.txn``).

The engine's group coordinator plays the consumer protocol with plain data (the
assignor's name, the topics, the partitions owned); a real client's JoinGroup
carries them as ``ConsumerProtocolSubscription`` bytes and its SyncGroup as
``ConsumerProtocolAssignment`` bytes, which are decoded here and encoded again for
the answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.protocol.api_message import ApiMessage
from kafka.protocol.consumer import (
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kafka.protocol.consumer.metadata import (
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)
from kafka.protocol.metadata import FindCoordinatorResponse

from broker import protocol as p
from broker.groups import OFFSETS_TOPIC, partition_for_group
from broker.protocol import TopicPartition
from broker.transactions import TRANSACTION_STATE_TOPIC, partition_for_transactional_id
from broker.wire import codec
from broker.wire.gateway import Call, Gateway, Handler

ASSIGNORS = ("range", "roundrobin", "cooperative-sticky")


def engine_error(call: Call, key: str = "x") -> int:
    answer = call.answers.get(key)
    return codec.COORDINATOR_NOT_AVAILABLE if answer is None else int(answer.error.code)


def one_request(gw: Gateway, call: Call, payload: Any, build: Callable[[Call], ApiMessage]) -> None:
    """The common case: one engine request, one answer."""
    gw.send(call, "x", payload)
    call.finish = build


# -- FindCoordinator ---------------------------------------------------------
def find_coordinator(gw: Gateway, call: Call) -> None:
    body = call.body
    key_type = int(body.key_type or 0)
    keys = list(body.coordinator_keys or []) if call.version >= 4 else [body.key]
    found = [(key, *_coordinator(gw, key, key_type)) for key in keys]
    if call.version >= 4:
        coordinators = [
            FindCoordinatorResponse.Coordinator(
                key=key,
                node_id=node,
                host=gw.host,
                port=port,
                error_code=error,
                error_message=None,
            )
            for key, node, port, error in found
        ]
        response = FindCoordinatorResponse(throttle_time_ms=0, coordinators=coordinators)
    else:
        _key, node, port, error = found[0]
        response = FindCoordinatorResponse(
            throttle_time_ms=0,
            error_code=error,
            error_message=None,
            node_id=node,
            host=gw.host,
            port=port,
        )
    call.finish = lambda _c: response


def _coordinator(gw: Gateway, key: str, key_type: int) -> tuple[int, int, int]:
    """(node id, port, error) of the coordinator of a group (0) or transactional id (1)."""
    if key_type == 0:
        gw.topics.ensure_internal(OFFSETS_TOPIC)
        tp = TopicPartition(OFFSETS_TOPIC, partition_for_group(key, gw.cluster.offsets_partitions))
    elif key_type == 1:
        gw.topics.ensure_internal(TRANSACTION_STATE_TOPIC)
        tp = TopicPartition(
            TRANSACTION_STATE_TOPIC,
            partition_for_transactional_id(key, gw.cluster.transaction_state_partitions),
        )
    else:
        return -1, -1, codec.INVALID_REQUEST
    leader = gw.cluster.leader_of(tp)
    if leader is None or not gw.cluster.brokers[leader].alive:
        return -1, -1, codec.COORDINATOR_NOT_AVAILABLE
    return leader, gw.ports[leader], 0


# -- groups ------------------------------------------------------------------
def join_group(gw: Gateway, call: Call) -> None:
    body = call.body
    if body.protocol_type != "consumer" or not body.protocols:
        raise codec.FrameError(f"JoinGroup with protocol type {body.protocol_type!r}")
    chosen = next((x for x in body.protocols if x.name in ASSIGNORS), body.protocols[0])
    try:
        sub = ConsumerProtocolSubscription.decode(bytes(chosen.metadata))
    except Exception as exc:
        raise codec.FrameError(f"JoinGroup: undecodable subscription: {exc!r}") from None
    owned = tuple(
        TopicPartition(o.topic, n) for o in (sub.owned_partitions or []) for n in o.partitions
    )
    request = p.JoinGroupRequest(
        body.group_id,
        body.member_id or "",
        call.conn.client_id,
        body.session_timeout_ms,
        body.rebalance_timeout_ms if call.version >= 1 else body.session_timeout_ms,
        chosen.name,
        tuple(sub.topics or ()),
        owned,
    )
    one_request(gw, call, request, _join_response)


def _join_response(call: Call) -> ApiMessage:
    answer = call.answers.get("x")
    if answer is None:
        return JoinGroupResponse(
            error_code=codec.COORDINATOR_NOT_AVAILABLE,
            generation_id=-1,
            protocol_name="",
            leader="",
            member_id="",
            members=[],
        )
    members = []
    for member_id, topics, owned in answer.members:
        owned_by_topic: dict[str, list[int]] = {}
        for tp in owned:
            owned_by_topic.setdefault(tp.topic, []).append(tp.partition)
        subscription = ConsumerProtocolSubscription(
            version=1,
            topics=list(topics),
            user_data=None,
            owned_partitions=[
                ConsumerProtocolSubscription.TopicPartition(topic=t, partitions=ns)
                for t, ns in owned_by_topic.items()
            ],
        )
        members.append(
            JoinGroupResponse.JoinGroupResponseMember(
                member_id=member_id, group_instance_id=None, metadata=subscription.encode()
            )
        )
    return JoinGroupResponse(
        throttle_time_ms=0,
        error_code=answer.error.code,
        generation_id=answer.generation_id,
        protocol_type="consumer",
        protocol_name=answer.protocol or None,
        leader=answer.leader,
        member_id=answer.member_id or call.body.member_id or "",
        members=members,
    )


def sync_group(gw: Gateway, call: Call) -> None:
    body = call.body
    assignments = []
    for item in body.assignments or []:
        try:
            decoded = ConsumerProtocolAssignment.decode(bytes(item.assignment))
        except Exception as exc:
            raise codec.FrameError(f"SyncGroup: undecodable assignment: {exc!r}") from None
        tps = tuple(
            TopicPartition(t.topic, n) for t in decoded.assigned_partitions for n in t.partitions
        )
        assignments.append((item.member_id, tps))
    request = p.SyncGroupRequest(
        body.group_id, body.generation_id, body.member_id, tuple(assignments)
    )

    def finish(c: Call) -> ApiMessage:
        answer = c.answers.get("x")
        by_topic: dict[str, list[int]] = {}
        for tp in answer.assignment if answer is not None else ():
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        assignment = ConsumerProtocolAssignment(
            version=0,
            assigned_partitions=[
                ConsumerProtocolAssignment.TopicPartition(topic=t, partitions=ns)
                for t, ns in by_topic.items()
            ],
            user_data=None,
        )
        return SyncGroupResponse(
            throttle_time_ms=0,
            error_code=engine_error(c),
            protocol_type="consumer",
            protocol_name=body.protocol_name,
            assignment=assignment.encode() if answer is not None else b"",
        )

    one_request(gw, call, request, finish)


def heartbeat(gw: Gateway, call: Call) -> None:
    body = call.body
    request = p.HeartbeatRequest(body.group_id, body.generation_id, body.member_id)
    one_request(
        gw,
        call,
        request,
        lambda c: HeartbeatResponse(throttle_time_ms=0, error_code=engine_error(c)),
    )


def leave_group(gw: Gateway, call: Call) -> None:
    body = call.body
    if call.version >= 3:
        member_ids = [m.member_id for m in body.members or []]
    else:
        member_ids = [body.member_id]
    for i, member_id in enumerate(member_ids):
        gw.send(call, i, p.LeaveGroupRequest(body.group_id, member_id))

    def finish(c: Call) -> ApiMessage:
        errors = [engine_error(c, i) for i in range(len(member_ids))]  # type: ignore[arg-type]
        members = [
            LeaveGroupResponse.MemberResponse(member_id=m, group_instance_id=None, error_code=e)
            for m, e in zip(member_ids, errors, strict=True)
        ]
        top = next((e for e in errors if e), 0) if call.version < 3 else 0
        return LeaveGroupResponse(throttle_time_ms=0, error_code=top, members=members)

    call.finish = finish


def partition_offsets(topics: Any, offset_field: str) -> list[tuple[TopicPartition, int]]:
    """(partition, offset) pairs from a commit request's topics."""
    return [
        (TopicPartition(t.name, x.partition_index), getattr(x, offset_field))
        for t in topics or []
        for x in t.partitions
    ]


def per_partition(
    topic_cls: Any, part_cls: Any, tps: list[TopicPartition], error: int
) -> list[Any]:
    """A commit response's topics: every partition answered with the engine's one error."""
    by_topic: dict[str, list[Any]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(
            part_cls(partition_index=tp.partition, error_code=error)
        )
    return [topic_cls(name=n, partitions=ps) for n, ps in by_topic.items()]


def offset_commit(gw: Gateway, call: Call) -> None:
    body = call.body
    offsets = partition_offsets(body.topics, "committed_offset")
    generation = body.generation_id_or_member_epoch
    request = p.OffsetCommitRequest(body.group_id, generation, body.member_id, tuple(offsets))
    tps = [tp for tp, _ in offsets]
    topic_cls = OffsetCommitResponse.OffsetCommitResponseTopic

    def finish(c: Call) -> ApiMessage:
        topics = per_partition(
            topic_cls,
            topic_cls.OffsetCommitResponsePartition,
            tps,
            engine_error(c),
        )
        return OffsetCommitResponse(throttle_time_ms=0, topics=topics)

    one_request(gw, call, request, finish)


def offset_fetch(gw: Gateway, call: Call) -> None:
    body = call.body
    if body.topics is None:  # v2+: every partition the group has committed
        tps = _committed_partitions(gw, call.conn.broker_id, body.group_id)
    else:
        tps = [TopicPartition(t.name, n) for t in body.topics for n in t.partition_indexes]
    one_request(gw, call, p.OffsetFetchRequest(body.group_id, tuple(tps)), _offset_fetch_response)


def _committed_partitions(gw: Gateway, broker_id: int, group_id: str) -> list[TopicPartition]:
    """What the group has committed, as the coordinator on ``broker_id`` knows it (none
    if it is not the coordinator: the engine then answers NOT_COORDINATOR)."""
    group = gw.cluster.brokers[broker_id].groups.groups.get(group_id)
    return sorted(group.offsets) if group is not None else []


def _offset_fetch_response(call: Call) -> ApiMessage:
    answer = call.answers.get("x")
    error = engine_error(call)
    offsets = dict(answer.offsets) if answer is not None else {}
    topic_cls = OffsetFetchResponse.OffsetFetchResponseTopic
    part_cls = topic_cls.OffsetFetchResponsePartition
    by_topic: dict[str, list[Any]] = {}
    for tp, offset in offsets.items():
        by_topic.setdefault(tp.topic, []).append(
            part_cls(
                partition_index=tp.partition,
                committed_offset=offset,
                committed_leader_epoch=-1,
                metadata="",
                error_code=error if call.version < 2 else 0,
            )
        )
    return OffsetFetchResponse(
        throttle_time_ms=0,
        topics=[topic_cls(name=n, partitions=ps) for n, ps in by_topic.items()],
        error_code=error,
    )


HANDLERS: dict[int, Handler] = {
    10: find_coordinator,
    11: join_group,
    14: sync_group,
    12: heartbeat,
    13: leave_group,
    8: offset_commit,
    9: offset_fetch,
}

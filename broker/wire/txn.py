"""Transactions over the wire: InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn,
EndTxn and TxnOffsetCommit, each one engine request."""

from __future__ import annotations

from typing import Any

from kafka.protocol.api_message import ApiMessage
from kafka.protocol.producer import (
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnResponse,
    EndTxnResponse,
    InitProducerIdResponse,
    TxnOffsetCommitResponse,
)

from broker import protocol as p
from broker.groups import OFFSETS_TOPIC
from broker.protocol import TopicPartition
from broker.transactions import TRANSACTION_STATE_TOPIC
from broker.wire.coordination import engine_error, one_request, partition_offsets, per_partition
from broker.wire.gateway import Call, Gateway, Handler


def init_producer_id(gw: Gateway, call: Call) -> None:
    body = call.body
    if body.transactional_id is not None:
        gw.topics.ensure_internal(TRANSACTION_STATE_TOPIC)
    request = p.InitProducerIdRequest(
        body.transactional_id,
        body.producer_id if call.version >= 3 else -1,
        body.producer_epoch if call.version >= 3 else -1,
        body.transaction_timeout_ms,
    )

    def finish(c: Call) -> ApiMessage:
        answer = c.answers.get("x")
        return InitProducerIdResponse(
            throttle_time_ms=0,
            error_code=engine_error(c),
            producer_id=answer.producer_id if answer is not None else -1,
            producer_epoch=answer.producer_epoch if answer is not None else -1,
        )

    one_request(gw, call, request, finish)


def add_partitions_to_txn(gw: Gateway, call: Call) -> None:
    body = call.body
    tps = [TopicPartition(t.name, n) for t in body.v3_and_below_topics or [] for n in t.partitions]
    request = p.AddPartitionsToTxnRequest(
        body.v3_and_below_transactional_id,
        body.v3_and_below_producer_id,
        body.v3_and_below_producer_epoch,
        tuple(tps),
    )
    result_cls = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult
    part_cls = result_cls.AddPartitionsToTxnPartitionResult

    def finish(c: Call) -> ApiMessage:
        error = engine_error(c)
        by_topic: dict[str, list[Any]] = {}
        for tp in tps:
            by_topic.setdefault(tp.topic, []).append(
                part_cls(partition_index=tp.partition, partition_error_code=error)
            )
        return AddPartitionsToTxnResponse(
            throttle_time_ms=0,
            results_by_topic_v3_and_below=[
                result_cls(name=n, results_by_partition=ps) for n, ps in by_topic.items()
            ],
        )

    one_request(gw, call, request, finish)


def add_offsets_to_txn(gw: Gateway, call: Call) -> None:
    body = call.body
    gw.topics.ensure_internal(OFFSETS_TOPIC)
    request = p.AddOffsetsToTxnRequest(
        body.transactional_id, body.producer_id, body.producer_epoch, body.group_id
    )
    one_request(
        gw,
        call,
        request,
        lambda c: AddOffsetsToTxnResponse(throttle_time_ms=0, error_code=engine_error(c)),
    )


def end_txn(gw: Gateway, call: Call) -> None:
    body = call.body
    request = p.EndTxnRequest(
        body.transactional_id, body.producer_id, body.producer_epoch, bool(body.committed)
    )

    def finish(c: Call) -> ApiMessage:
        error = engine_error(c)
        if error == 0:  # the client hears its transaction is over: the verdict learns it too
            gw.told.ended(body.producer_id, bool(body.committed))
        return EndTxnResponse(throttle_time_ms=0, error_code=error)

    one_request(gw, call, request, finish)


def txn_offset_commit(gw: Gateway, call: Call) -> None:
    body = call.body
    offsets = partition_offsets(body.topics, "committed_offset")
    request = p.TxnOffsetCommitRequest(
        body.transactional_id,
        body.group_id,
        body.producer_id,
        body.producer_epoch,
        body.member_id if call.version >= 3 else "",
        body.generation_id if call.version >= 3 else -1,
        tuple(offsets),
    )
    tps = [tp for tp, _ in offsets]
    topic_cls = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic

    def finish(c: Call) -> ApiMessage:
        topics = per_partition(
            topic_cls,
            topic_cls.TxnOffsetCommitResponsePartition,
            tps,
            engine_error(c),
        )
        return TxnOffsetCommitResponse(throttle_time_ms=0, topics=topics)

    one_request(gw, call, request, finish)


HANDLERS: dict[int, Handler] = {
    22: init_producer_id,
    24: add_partitions_to_txn,
    25: add_offsets_to_txn,
    26: end_txn,
    28: txn_offset_commit,
}

"""The data path over the wire: ApiVersions, Metadata, Produce, Fetch, ListOffsets,
CreateTopics and DescribeConfigs.

Each handler turns one Kafka request into engine requests (one per partition, as
the engine's dataclasses are) and sets how the answers become the response.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from kafka.protocol.admin.configs import DescribeConfigsResponse
from kafka.protocol.admin.topics import CreateTopicsResponse
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.consumer import FetchResponse, ListOffsetsResponse
from kafka.protocol.metadata import ApiVersionsResponse, MetadataResponse
from kafka.protocol.producer import ProduceResponse

from broker.errors import ErrorCode
from broker.protocol import (
    EARLIEST_TIMESTAMP,
    LATEST_TIMESTAMP,
    ConsumerFetchRequest,
    ListOffsetsRequest,
    MetadataRequest,
    ProduceRequest,
    TopicPartition,
)
from broker.protocol import FetchResponse as EngineFetch
from broker.records import RecordBatch
from broker.wire import codec
from broker.wire.gateway import Call, Gateway, Handler
from broker.wire.records import BadRecords, decode_batches, encode_batches

CLUSTER_ID = "delivery-lab-cluster"


def _known(gw: Gateway, tp: TopicPartition) -> bool:
    return tp in gw.cluster.controller.partitions


# -- ApiVersions -------------------------------------------------------------
def api_versions(gw: Gateway, call: Call) -> None:
    keys = [
        ApiVersionsResponse.ApiVersion(api_key=k, min_version=low, max_version=high)
        for k, (_cls, low, high) in sorted(codec.SUPPORTED.items())
    ]
    error = call.request.error
    call.finish = lambda _c: ApiVersionsResponse(
        error_code=error, api_keys=keys, throttle_time_ms=0
    )


# -- Metadata ----------------------------------------------------------------
def metadata(gw: Gateway, call: Call) -> None:
    body = call.body
    errors: dict[str, int] = {}
    if body.topics is None:
        names = sorted(gw.cluster.topics)
    else:
        names = []
        auto = call.version < 4 or bool(body.allow_auto_topic_creation)
        for topic in body.topics:
            name = topic.name
            if name is None or name in names or name in errors:
                continue
            error = gw.topics.auto_create(name) if auto else 0
            if not gw.topics.exists(name):
                errors[name] = error or codec.UNKNOWN_TOPIC_OR_PARTITION
                continue
            names.append(name)
    gw.send(call, "metadata", MetadataRequest(tuple(names)))
    call.finish = lambda c: _metadata_response(gw, c, names, errors)


def _metadata_response(
    gw: Gateway, call: Call, names: list[str], errors: dict[str, int]
) -> ApiMessage:
    answer = call.answers.get("metadata")
    leaders: dict[TopicPartition, int | None] = dict(answer.leaders) if answer else {}
    alive = [b for b, broker in sorted(gw.cluster.brokers.items()) if broker.alive]
    # As in KRaft, a broker stays registered until the controller fences it (a crashed one
    # for broker.session.timeout.ms): clients find its port closed meanwhile.
    fenced = gw.cluster.controller.fenced
    listed = sorted({b for b in gw.cluster.brokers if not fenced.get(b)} | set(alive))
    brokers = [
        MetadataResponse.MetadataResponseBroker(
            node_id=b, host=gw.host, port=gw.ports[b], rack=None
        )
        for b in listed
    ]
    topics = []
    for name in names:
        partitions = []
        for tp in sorted(gw.cluster.partitions_of(name)):
            state = gw.cluster.partition(tp)
            leader = leaders.get(tp, state.leader)
            partitions.append(
                MetadataResponse.MetadataResponseTopic.MetadataResponsePartition(
                    error_code=0 if leader is not None else codec.LEADER_NOT_AVAILABLE,
                    partition_index=tp.partition,
                    leader_id=leader if leader is not None else -1,
                    leader_epoch=state.leader_epoch,
                    replica_nodes=list(state.replicas),
                    isr_nodes=list(state.isr),
                    offline_replicas=[b for b in state.replicas if b not in alive],
                )
            )
        topics.append(
            MetadataResponse.MetadataResponseTopic(
                error_code=0, name=name, is_internal=name.startswith("__"), partitions=partitions
            )
        )
    for name, error in errors.items():
        topics.append(
            MetadataResponse.MetadataResponseTopic(
                error_code=error, name=name, is_internal=False, partitions=[]
            )
        )
    return MetadataResponse(
        throttle_time_ms=0,
        brokers=brokers,
        cluster_id=CLUSTER_ID,
        controller_id=alive[0] if alive else -1,
        topics=topics,
    )


# -- Produce -----------------------------------------------------------------
def produce(gw: Gateway, call: Call) -> None:
    body = call.body
    acks = body.acks
    if acks not in (0, 1, -1):
        raise codec.FrameError(f"Produce with acks={acks}")
    results: dict[TopicPartition, tuple[int, int]] = {}  # tp -> (error, base offset)
    parts: dict[TopicPartition, list[RecordBatch]] = {}  # tp -> the batches sent
    client = call.conn.client_id
    told = gw.told
    for topic in body.topic_data:
        for pd in topic.partition_data:
            tp = TopicPartition(topic.name, pd.index)
            if not _known(gw, tp):
                results[tp] = (codec.UNKNOWN_TOPIC_OR_PARTITION, -1)
                continue
            try:
                batches = decode_batches(
                    pd.records,
                    lambda n: gw.message_ids(client, n),
                    gw.extras,
                    gw.limits.max_records_per_request,
                    partial(told.ids_for, client, tp, answered=acks != 0),
                )
            except BadRecords as exc:
                gw._note(f"{call.conn.actor}: Produce to {tp}: {exc}")
                results[tp] = (codec.CORRUPT_MESSAGE, -1)
                continue
            count = sum(b.record_count for b in batches)
            if gw.records_written + count > gw.limits.max_records:
                gw._note(f"{call.conn.actor}: Produce to {tp}: the room's record limit")
                results[tp] = (codec.POLICY_VIOLATION, -1)
                continue
            gw.records_written += count
            parts[tp] = batches
            for i, batch in enumerate(batches):
                told.sent(client, tp.topic, batch.records)
                if batch.is_transactional:
                    told.in_transaction(batch.producer_id, batch.records)
                if acks == 0:  # the client counts it as sent once it is on the wire
                    told.told(tp, batch.records, -1, ErrorCode.NONE, batch.is_transactional)
                request = ProduceRequest(tp, batch, acks, body.timeout_ms, body.transactional_id)
                gw.send(call, (tp, i), request, str(tp), answered=acks != 0)
    if acks == 0:
        return  # Kafka sends nothing back; the connection goes on at once
    call.finish = lambda c: _produce_response(gw, c, parts, results)
    call.on_close = lambda _c: _unanswered(gw, parts)


def _unanswered(gw: Gateway, parts: dict[TopicPartition, list[RecordBatch]]) -> None:
    for batches in parts.values():
        for batch in batches:
            gw.told.unanswered(batch.records)


def _produce_response(
    gw: Gateway,
    call: Call,
    parts: dict[TopicPartition, list[RecordBatch]],
    results: dict[TopicPartition, tuple[int, int]],
) -> ApiMessage:
    for tp, batches in parts.items():
        answers = [call.answers.get((tp, i)) for i in range(len(batches))]
        failure: ErrorCode | None = None
        for answer in answers:
            code = ErrorCode.REQUEST_TIMED_OUT if answer is None else answer.error
            if code is not ErrorCode.NONE and failure is None:
                failure = code
        base = -1
        if answers and answers[0] is not None and failure is None:
            base = answers[0].base_offset
        results[tp] = (failure.code if failure is not None else 0, base)
        # What the client is told, for the verdict: one answer per partition, so an error
        # in any of its batches fails them all.
        for batch, answer in zip(batches, answers, strict=True):
            if failure is None and answer is not None:
                gw.told.told(
                    tp, batch.records, answer.base_offset, ErrorCode.NONE, batch.is_transactional
                )
            else:
                gw.told.told(tp, batch.records, -1, failure or ErrorCode.REQUEST_TIMED_OUT, False)
    by_topic: dict[str, list[Any]] = {}
    for tp, (error, base) in sorted(results.items()):
        by_topic.setdefault(tp.topic, []).append(
            ProduceResponse.TopicProduceResponse.PartitionProduceResponse(
                index=tp.partition,
                error_code=error,
                base_offset=base,
                log_append_time_ms=-1,
                log_start_offset=gw.leader_log_bounds(tp)[2],
            )
        )
    return ProduceResponse(
        responses=[
            ProduceResponse.TopicProduceResponse(name=name, partition_responses=parts_)
            for name, parts_ in by_topic.items()
        ],
        throttle_time_ms=0,
    )


# -- Fetch (a long poll) -------------------------------------------------------
def fetch(gw: Gateway, call: Call) -> None:
    """One engine fetch per partition.  With one partition the engine parks it for
    max.wait.ms itself.  With several, a first round asks without waiting; if none
    has data, a second round parks them all and the first to answer with data (or
    an error) answers the request: the others are let go and reported empty."""
    body = call.body
    if body.replica_id not in (-1, None) and body.replica_id >= 0:
        raise codec.FrameError("Fetch from a replica: the lab's followers are simulated")
    wanted: list[tuple[TopicPartition, int, int]] = []
    unknown: list[TopicPartition] = []
    for topic in body.topics:
        for p in topic.partitions:
            tp = TopicPartition(topic.topic, p.partition)
            if _known(gw, tp):
                wanted.append((tp, p.fetch_offset, max(1, p.partition_max_bytes)))
            else:
                unknown.append(tp)
    isolation = int(body.isolation_level or 0)
    max_wait = max(0, int(body.max_wait_ms))
    call.state.update(wanted=wanted, unknown=unknown, first={}, round=1)

    def send_round(wait_ms: int) -> None:
        for tp, offset, max_bytes in wanted:
            request = ConsumerFetchRequest(tp, offset, wait_ms, max_bytes, isolation)
            gw.send(call, (call.state["round"], tp), request, str(tp))

    def on_answer(c: Call, key: Any, answer: EngineFetch) -> bool:
        if c.state["round"] == 1 and len(wanted) > 1:
            c.state["first"][key[1]] = answer
            if c.pending == 0 and max_wait > 0 and not any(_useful(a) for a in c.answers.values()):
                c.state["round"] = 2
                send_round(max_wait)
            return False
        return _useful(answer)

    call.on_answer = on_answer
    if wanted:
        send_round(max_wait if len(wanted) == 1 else 0)
    call.finish = lambda c: _fetch_response(gw, c)


def _useful(answer: EngineFetch) -> bool:
    return bool(answer.batches) or answer.error is not ErrorCode.NONE


def _fetch_response(gw: Gateway, call: Call) -> ApiMessage:
    state = call.state
    by_topic: dict[str, list[Any]] = {}
    part_cls = FetchResponse.FetchableTopicResponse.PartitionData
    for tp, _offset, _max in state["wanted"]:
        answer = call.answers.get((state["round"], tp)) or state["first"].get(tp)
        if answer is None:
            hw, lso, start = gw.leader_log_bounds(tp)
            answer = EngineFetch(tp, ErrorCode.NONE, hw, start, last_stable_offset=lso)
        aborted = [
            part_cls.AbortedTransaction(producer_id=a.producer_id, first_offset=a.first_offset)
            for a in answer.aborted_transactions
        ]
        records = encode_batches(answer.batches, gw.extras, gw.wall_ms)
        by_topic.setdefault(tp.topic, []).append(
            part_cls(
                partition_index=tp.partition,
                error_code=answer.error.code,
                high_watermark=answer.high_watermark,
                last_stable_offset=answer.last_stable_offset,
                log_start_offset=answer.log_start_offset,
                aborted_transactions=aborted if call.body.isolation_level else None,
                preferred_read_replica=-1,
                records=records,
            )
        )
    for tp in state["unknown"]:
        by_topic.setdefault(tp.topic, []).append(
            part_cls(
                partition_index=tp.partition,
                error_code=codec.UNKNOWN_TOPIC_OR_PARTITION,
                high_watermark=-1,
                last_stable_offset=-1,
                log_start_offset=-1,
                preferred_read_replica=-1,
                records=b"",
            )
        )
    return FetchResponse(
        throttle_time_ms=0,
        error_code=0,
        session_id=0,
        responses=[
            FetchResponse.FetchableTopicResponse(topic=name, partitions=parts)
            for name, parts in by_topic.items()
        ],
    )


# -- ListOffsets -------------------------------------------------------------
def list_offsets(gw: Gateway, call: Call) -> None:
    body = call.body
    isolation = int(body.isolation_level or 0)
    asked: list[TopicPartition] = []
    for topic in body.topics:
        for p in topic.partitions:
            tp = TopicPartition(topic.name, p.partition_index)
            asked.append(tp)
            if _known(gw, tp):
                # Only the two special timestamps exist in the lab: a time is read as
                # earliest (see docs/kafka-clients.md).
                when = LATEST_TIMESTAMP if p.timestamp in (-1, -3) else EARLIEST_TIMESTAMP
                gw.send(call, tp, ListOffsetsRequest(tp, when, isolation), str(tp))

    def finish(c: Call) -> ApiMessage:
        by_topic: dict[str, list[Any]] = {}
        part_cls = ListOffsetsResponse.ListOffsetsTopicResponse.ListOffsetsPartitionResponse
        for tp in asked:
            answer = c.answers.get(tp)
            error = codec.UNKNOWN_TOPIC_OR_PARTITION if answer is None else answer.error.code
            offset = -1 if answer is None else answer.offset
            epoch = gw.cluster.partition(tp).leader_epoch if _known(gw, tp) else -1
            by_topic.setdefault(tp.topic, []).append(
                part_cls(
                    partition_index=tp.partition,
                    error_code=error,
                    timestamp=-1,
                    offset=offset,
                    leader_epoch=epoch,
                )
            )
        return ListOffsetsResponse(
            throttle_time_ms=0,
            topics=[
                ListOffsetsResponse.ListOffsetsTopicResponse(name=n, partitions=p)
                for n, p in by_topic.items()
            ],
        )

    call.finish = finish


# -- admin tools that probe ----------------------------------------------------
def create_topics(gw: Gateway, call: Call) -> None:
    body = call.body
    results = []
    for topic in body.topics:
        partitions = gw.topics.defaults.num_partitions
        if topic.num_partitions != -1:
            partitions = topic.num_partitions
        rf = min(gw.topics.defaults.replication_factor, gw.cluster.config.brokers)
        if topic.replication_factor != -1:
            rf = topic.replication_factor
        error = gw.topics.check(topic.name, partitions, rf)
        if topic.assignments:
            error = error or codec.INVALID_REQUEST  # explicit assignments: not in the lab
        if error == 0 and not body.validate_only:
            gw.topics.create(topic.name, partitions, rf, gw.topics.defaults.min_insync_replicas)
        results.append(
            CreateTopicsResponse.CreatableTopicResult(
                name=topic.name,
                error_code=error,
                error_message=None,
                num_partitions=partitions,
                replication_factor=rf,
                configs=[],
            )
        )
    call.finish = lambda _c: CreateTopicsResponse(throttle_time_ms=0, topics=results)


def describe_configs(gw: Gateway, call: Call) -> None:
    """Every resource answered with no entries: enough for tools that probe."""
    results = [
        DescribeConfigsResponse.DescribeConfigsResult(
            error_code=0,
            error_message=None,
            resource_type=r.resource_type,
            resource_name=r.resource_name,
            configs=[],
        )
        for r in call.body.resources
    ]
    call.finish = lambda _c: DescribeConfigsResponse(throttle_time_ms=0, results=results)


HANDLERS: dict[int, Handler] = {
    18: api_versions,
    3: metadata,
    0: produce,
    1: fetch,
    2: list_offsets,
    19: create_topics,
    32: describe_configs,
}

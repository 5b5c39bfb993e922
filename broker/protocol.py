"""Requests and responses: plain data, whoever sends them.

The broker model handles these without knowing whether a simulated client or
(later) a wire-protocol listener sent them.  Names follow Kafka's APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from broker.errors import ErrorCode
from broker.records import AbortedTxn, LogBatch, RecordBatch


class TopicPartition(NamedTuple):
    # A named tuple: hashed and compared in C, it is a dictionary key on every
    # record's path, and it sorts by (topic, partition).
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"

    @classmethod
    def parse(cls, text: str) -> TopicPartition:
        topic, sep, number = text.rpartition("-")
        if not sep or not topic or not number.isdigit():
            raise ValueError(f"not a partition name (expected TOPIC-N): {text!r}")
        return cls(topic, int(number))


@dataclass(frozen=True, slots=True)
class ProduceRequest:
    tp: TopicPartition
    batch: RecordBatch
    acks: int  # 0, 1 or -1 (all)
    timeout_ms: int
    transactional_id: str | None = None
    api: ClassVar[str] = "Produce"


@dataclass(frozen=True, slots=True)
class ProduceResponse:
    tp: TopicPartition
    error: ErrorCode
    base_offset: int = -1
    api: ClassVar[str] = "Produce"


@dataclass(frozen=True, slots=True)
class FetchRequest:
    """A follower's (``replica_id`` >= 0) fetch from a partition leader."""

    tp: TopicPartition
    replica_id: int
    fetch_offset: int
    last_fetched_epoch: int
    current_leader_epoch: int
    max_wait_ms: int
    max_bytes: int
    api: ClassVar[str] = "Fetch"


@dataclass(frozen=True, slots=True)
class DivergingEpoch:
    epoch: int
    end_offset: int


@dataclass(frozen=True, slots=True)
class FetchResponse:
    tp: TopicPartition
    error: ErrorCode
    high_watermark: int = -1
    log_start_offset: int = -1
    batches: tuple[LogBatch, ...] = ()
    diverging_epoch: DivergingEpoch | None = None
    # read_committed: the aborted transactions among the returned data.
    aborted_transactions: tuple[AbortedTxn, ...] = ()
    last_stable_offset: int = -1
    api: ClassVar[str] = "Fetch"


@dataclass(frozen=True, slots=True)
class InitProducerIdRequest:
    transactional_id: str | None = None
    producer_id: int = -1
    producer_epoch: int = -1
    transaction_timeout_ms: int = 60000
    api: ClassVar[str] = "InitProducerId"


@dataclass(frozen=True, slots=True)
class InitProducerIdResponse:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1
    api: ClassVar[str] = "InitProducerId"


Request = ProduceRequest | FetchRequest | InitProducerIdRequest
Response = ProduceResponse | FetchResponse | InitProducerIdResponse


# -- consumers ---------------------------------------------------------------
READ_UNCOMMITTED = 0
READ_COMMITTED = 1
CONSUMER_REPLICA_ID = -1
EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1


@dataclass(frozen=True, slots=True)
class ConsumerFetchRequest:
    """A consumer's fetch: never past the HW (or the LSO for read_committed)."""

    tp: TopicPartition
    fetch_offset: int
    max_wait_ms: int
    max_bytes: int
    isolation_level: int = READ_UNCOMMITTED
    api: ClassVar[str] = "Fetch"


@dataclass(frozen=True, slots=True)
class ListOffsetsRequest:
    tp: TopicPartition
    timestamp: int  # EARLIEST_TIMESTAMP or LATEST_TIMESTAMP
    isolation_level: int = READ_UNCOMMITTED
    api: ClassVar[str] = "ListOffsets"


@dataclass(frozen=True, slots=True)
class ListOffsetsResponse:
    tp: TopicPartition
    error: ErrorCode
    offset: int = -1
    api: ClassVar[str] = "ListOffsets"


@dataclass(frozen=True, slots=True)
class JoinGroupRequest:
    group_id: str
    member_id: str  # "" for a new member
    client_id: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol: str  # the assignor: range | roundrobin
    topics: tuple[str, ...]
    # What the member owns now (the cooperative protocol keeps it through a rebalance).
    owned: tuple[TopicPartition, ...] = ()
    api: ClassVar[str] = "JoinGroup"


@dataclass(frozen=True, slots=True)
class JoinGroupResponse:
    error: ErrorCode
    generation_id: int = -1
    member_id: str = ""
    leader: str = ""
    # Only the leader gets the members, their subscriptions and what they own.
    members: tuple[tuple[str, tuple[str, ...], tuple[TopicPartition, ...]], ...] = ()
    protocol: str = ""
    api: ClassVar[str] = "JoinGroup"


@dataclass(frozen=True, slots=True)
class SyncGroupRequest:
    group_id: str
    generation_id: int
    member_id: str
    assignments: tuple[tuple[str, tuple[TopicPartition, ...]], ...] = ()
    api: ClassVar[str] = "SyncGroup"


@dataclass(frozen=True, slots=True)
class SyncGroupResponse:
    error: ErrorCode
    assignment: tuple[TopicPartition, ...] = ()
    api: ClassVar[str] = "SyncGroup"


@dataclass(frozen=True, slots=True)
class HeartbeatRequest:
    group_id: str
    generation_id: int
    member_id: str
    api: ClassVar[str] = "Heartbeat"


@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    error: ErrorCode
    api: ClassVar[str] = "Heartbeat"


@dataclass(frozen=True, slots=True)
class LeaveGroupRequest:
    group_id: str
    member_id: str
    api: ClassVar[str] = "LeaveGroup"


@dataclass(frozen=True, slots=True)
class LeaveGroupResponse:
    error: ErrorCode
    api: ClassVar[str] = "LeaveGroup"


@dataclass(frozen=True, slots=True)
class OffsetCommitRequest:
    group_id: str
    generation_id: int
    member_id: str
    offsets: tuple[tuple[TopicPartition, int], ...]
    api: ClassVar[str] = "OffsetCommit"


@dataclass(frozen=True, slots=True)
class OffsetCommitResponse:
    error: ErrorCode
    api: ClassVar[str] = "OffsetCommit"


@dataclass(frozen=True, slots=True)
class OffsetFetchRequest:
    group_id: str
    partitions: tuple[TopicPartition, ...]
    api: ClassVar[str] = "OffsetFetch"


@dataclass(frozen=True, slots=True)
class OffsetFetchResponse:
    error: ErrorCode
    offsets: tuple[tuple[TopicPartition, int], ...] = ()  # -1: nothing committed
    api: ClassVar[str] = "OffsetFetch"


GROUP_APIS = (
    "JoinGroup",
    "SyncGroup",
    "Heartbeat",
    "LeaveGroup",
    "OffsetCommit",
    "OffsetFetch",
    "TxnOffsetCommit",
)


# -- transactions ------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AddPartitionsToTxnRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    partitions: tuple[TopicPartition, ...]
    api: ClassVar[str] = "AddPartitionsToTxn"


@dataclass(frozen=True, slots=True)
class AddPartitionsToTxnResponse:
    error: ErrorCode
    api: ClassVar[str] = "AddPartitionsToTxn"


@dataclass(frozen=True, slots=True)
class AddOffsetsToTxnRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    group_id: str
    api: ClassVar[str] = "AddOffsetsToTxn"


@dataclass(frozen=True, slots=True)
class AddOffsetsToTxnResponse:
    error: ErrorCode
    api: ClassVar[str] = "AddOffsetsToTxn"


@dataclass(frozen=True, slots=True)
class EndTxnRequest:
    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    api: ClassVar[str] = "EndTxn"


@dataclass(frozen=True, slots=True)
class EndTxnResponse:
    error: ErrorCode
    api: ClassVar[str] = "EndTxn"


@dataclass(frozen=True, slots=True)
class WriteTxnMarkersRequest:
    """From a transaction coordinator to a partition leader (one partition each)."""

    tp: TopicPartition
    producer_id: int
    producer_epoch: int
    coordinator_epoch: int
    commit: bool
    api: ClassVar[str] = "WriteTxnMarkers"


@dataclass(frozen=True, slots=True)
class WriteTxnMarkersResponse:
    tp: TopicPartition
    error: ErrorCode
    api: ClassVar[str] = "WriteTxnMarkers"


@dataclass(frozen=True, slots=True)
class TxnOffsetCommitRequest:
    transactional_id: str
    group_id: str
    producer_id: int
    producer_epoch: int
    member_id: str  # KIP-447: the consumer's group metadata
    generation_id: int
    offsets: tuple[tuple[TopicPartition, int], ...]
    api: ClassVar[str] = "TxnOffsetCommit"


@dataclass(frozen=True, slots=True)
class TxnOffsetCommitResponse:
    error: ErrorCode
    api: ClassVar[str] = "TxnOffsetCommit"


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    topics: tuple[str, ...]
    api: ClassVar[str] = "Metadata"


@dataclass(frozen=True, slots=True)
class MetadataResponse:
    leaders: tuple[tuple[TopicPartition, int | None], ...]  # None: no leader now
    api: ClassVar[str] = "Metadata"


TXN_APIS = ("AddPartitionsToTxn", "AddOffsetsToTxn", "EndTxn")

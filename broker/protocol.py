"""Requests and responses: plain data, whoever sends them.

The broker model handles these without knowing whether a simulated client or
(later) a wire-protocol listener sent them.  Names follow Kafka's APIs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from broker.errors import ErrorCode
from broker.records import LogBatch, RecordBatch


@dataclass(frozen=True, slots=True)
class TopicPartition:
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
    api: ClassVar[str] = "Fetch"


@dataclass(frozen=True, slots=True)
class InitProducerIdRequest:
    transactional_id: str | None = None
    producer_id: int = -1
    producer_epoch: int = -1
    api: ClassVar[str] = "InitProducerId"


@dataclass(frozen=True, slots=True)
class InitProducerIdResponse:
    error: ErrorCode
    producer_id: int = -1
    producer_epoch: int = -1
    api: ClassVar[str] = "InitProducerId"


Request = ProduceRequest | FetchRequest | InitProducerIdRequest
Response = ProduceResponse | FetchResponse | InitProducerIdResponse

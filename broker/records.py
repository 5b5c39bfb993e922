"""Records and record batches, as Kafka lays them out (v2 batch format).

A ``RecordBatch`` is what a producer sends; a ``LogBatch`` is a batch once a
leader has given it offsets and its leader epoch.  Replicas share the same
immutable ``LogBatch`` objects, which is what copying bytes would give.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import add
from typing import Any, NamedTuple

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1

# Sizes used for batch.size / max.request.size accounting (v2 format, roughly).
BATCH_OVERHEAD_BYTES = 61
RECORD_OVERHEAD_BYTES = 10


def ids_label(records: Sequence[Record], shown: int = 4) -> str:
    """The message ids of ``records`` as events show them: ``[a, b, c, d +N]`` (the first
    ``shown``, then how many more), without touching the others."""
    ids = ", ".join(r.message_id for r in records[:shown])
    more = f" +{len(records) - shown}" if len(records) > shown else ""
    return f"[{ids}{more}]"


class Record(NamedTuple):
    # A named tuple rather than a dataclass: records are the one object made per
    # message, and tuples are the cheapest immutable object Python builds.
    message_id: str  # the lab's unique id, carried as a record header
    key: str | None
    value: str

    @property
    def size_bytes(self) -> int:
        key_len = len(self.key) if self.key is not None else 0
        return RECORD_OVERHEAD_BYTES + key_len + len(self.value) + len(self.message_id)

    def __deepcopy__(self, memo: dict[int, Any]) -> Record:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


def sizes_bytes(records: Sequence[Record]) -> Iterator[int]:
    """Each record's ``size_bytes``, in bulk: map and zip do the work, with no
    Python code run per record (the producer sizes every record it batches)."""
    if not records:
        return iter(())
    ids, keys, values = zip(*records, strict=True)
    key_lengths: Iterable[int] = (
        map(len, keys) if None not in keys else [len(k) if k is not None else 0 for k in keys]
    )
    lengths = map(add, map(len, ids), map(len, values))
    return map(add, map(add, lengths, key_lengths), repeat(RECORD_OVERHEAD_BYTES))


@dataclass(frozen=True, slots=True)
class RecordBatch:
    records: tuple[Record, ...]
    producer_id: int = NO_PRODUCER_ID
    producer_epoch: int = NO_PRODUCER_EPOCH
    base_sequence: int = NO_SEQUENCE
    is_transactional: bool = False
    is_control: bool = False
    size_bytes: int = 0  # known when the producer built it; 0 means work it out

    @property
    def record_count(self) -> int:
        return len(self.records)

    @property
    def bytes(self) -> int:
        return self.size_bytes or BATCH_OVERHEAD_BYTES + sum(r.size_bytes for r in self.records)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return self.base_sequence + len(self.records) - 1

    @property
    def has_producer_id(self) -> bool:
        return self.producer_id != NO_PRODUCER_ID

    def __deepcopy__(self, memo: dict[int, Any]) -> RecordBatch:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


@dataclass(frozen=True, slots=True)
class LogBatch:
    base_offset: int
    leader_epoch: int
    batch: RecordBatch
    append_time_ms: int = 0

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.batch.records) - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + len(self.batch.records)

    def sliced_before(self, end_offset: int) -> LogBatch:
        """The part of this batch below ``end_offset`` (used by truncation)."""
        keep = end_offset - self.base_offset
        batch = self.batch
        return LogBatch(
            self.base_offset,
            self.leader_epoch,
            RecordBatch(
                batch.records[:keep],
                batch.producer_id,
                batch.producer_epoch,
                batch.base_sequence,
                batch.is_transactional,
                batch.is_control,
            ),
            self.append_time_ms,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> LogBatch:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


# Transaction markers: a control batch holding one record whose key names the
# marker type (Kafka encodes version + type; ABORT is 0, COMMIT is 1) and whose
# value carries the coordinator epoch.
CONTROL_ABORT = "ABORT"
CONTROL_COMMIT = "COMMIT"


@dataclass(frozen=True, slots=True)
class AbortedTxn:
    """An entry of a partition's aborted-transaction index."""

    producer_id: int
    first_offset: int
    last_offset: int  # the offset of its ABORT marker

    def __deepcopy__(self, memo: dict[int, Any]) -> AbortedTxn:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


def marker_batch(
    control_type: str, producer_id: int, producer_epoch: int, coordinator_epoch: int
) -> RecordBatch:
    record = Record(
        f"marker:{control_type}:{producer_id}:{producer_epoch}",
        control_type,
        f"coordinator epoch {coordinator_epoch}",
    )
    return RecordBatch(
        (record,),
        producer_id,
        producer_epoch,
        NO_SEQUENCE,
        is_transactional=True,
        is_control=True,
    )


def control_type(batch: RecordBatch) -> str | None:
    """COMMIT or ABORT for a marker, None for a data batch."""
    if not batch.is_control or not batch.records:
        return None
    return batch.records[0].key


def marker_coordinator_epoch(batch: RecordBatch) -> int:
    """The coordinator epoch a marker carries (in its value)."""
    value = batch.records[0].value if batch.records else ""
    number = value.rpartition(" ")[2]
    return int(number) if number.isdigit() else -1

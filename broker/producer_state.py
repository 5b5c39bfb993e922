"""Per-partition idempotence state: for each producer id, its epoch and the
metadata of its last five batches (Kafka's ``ProducerStateEntry``).

``check()`` only reads; ``record()`` changes state after the append, so a
rejected batch leaves nothing behind (validate against a copy, then commit).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from broker.errors import ErrorCode
from broker.records import LogBatch, RecordBatch

# Kafka keeps the metadata of this many recent batches per producer id.
NUM_BATCHES_TO_RETAIN = 5


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int


@dataclass(slots=True)
class ProducerStateEntry:
    producer_id: int
    producer_epoch: int
    batches: deque[BatchMetadata] = field(
        default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN)
    )

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else -1

    def find_duplicate(self, first_seq: int, last_seq: int) -> BatchMetadata | None:
        for meta in self.batches:
            if meta.first_seq == first_seq and meta.last_seq == last_seq:
                return meta
        return None


@dataclass(frozen=True, slots=True)
class SequenceCheck:
    """The outcome of checking one batch: accept, duplicate, or an error."""

    error: ErrorCode = ErrorCode.NONE
    duplicate_of: BatchMetadata | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.error is ErrorCode.NONE and self.duplicate_of is None


ACCEPT = SequenceCheck()


class ProducerStateManager:
    def __init__(self) -> None:
        self.entries: dict[int, ProducerStateEntry] = {}

    def check(self, batch: RecordBatch) -> SequenceCheck:
        """Kafka's ordered checks for an idempotent batch (leader side)."""
        if not batch.has_producer_id:
            return ACCEPT
        entry = self.entries.get(batch.producer_id)
        if entry is None:
            # No state for this producer id on this partition: any sequence goes.
            return ACCEPT
        first, last, epoch = batch.base_sequence, batch.last_sequence, batch.producer_epoch
        if epoch == entry.producer_epoch:
            duplicate = entry.find_duplicate(first, last)
            if duplicate is not None:
                return SequenceCheck(duplicate_of=duplicate, detail=f"seq {first}..{last}")
        if epoch < entry.producer_epoch:
            return SequenceCheck(
                ErrorCode.INVALID_PRODUCER_EPOCH,
                detail=f"producer {batch.producer_id} epoch {epoch} < current "
                f"{entry.producer_epoch}",
            )
        if epoch > entry.producer_epoch:
            if first != 0:
                return SequenceCheck(
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    detail=f"new epoch {epoch} must start at sequence 0, got {first}",
                )
            return ACCEPT
        expected = entry.last_seq + 1
        if first != expected:
            return SequenceCheck(
                ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                detail=f"producer {batch.producer_id} expected sequence {expected}, got {first}",
            )
        return ACCEPT

    def record(self, log_batch: LogBatch) -> None:
        batch = log_batch.batch
        if not batch.has_producer_id:
            return
        if batch.is_control:
            # A transaction marker carries the coordinator's epoch for the producer:
            # a newer one fences every older write (Kafka's appendEndTxnMarker).
            entry = self.entries.get(batch.producer_id)
            if entry is None:
                self.entries[batch.producer_id] = ProducerStateEntry(
                    batch.producer_id, batch.producer_epoch
                )
            elif batch.producer_epoch > entry.producer_epoch:
                entry.producer_epoch = batch.producer_epoch
                entry.batches.clear()
            return
        entry = self.entries.get(batch.producer_id)
        if entry is None or batch.producer_epoch > entry.producer_epoch:
            entry = ProducerStateEntry(batch.producer_id, batch.producer_epoch)
            self.entries[batch.producer_id] = entry
        entry.batches.append(
            BatchMetadata(
                batch.base_sequence,
                batch.last_sequence,
                log_batch.base_offset,
                log_batch.last_offset,
            )
        )

    def rebuild(self, batches: Iterable[LogBatch]) -> None:
        """Recompute from the log (after truncation), as Kafka does from the log."""
        self.entries = {}
        for log_batch in batches:
            self.record(log_batch)

    def snapshot(self) -> dict[int, dict[str, object]]:
        return {
            pid: {
                "epoch": entry.producer_epoch,
                "last_sequence": entry.last_seq,
                "batches": [
                    [m.first_seq, m.last_seq, m.first_offset, m.last_offset] for m in entry.batches
                ],
            }
            for pid, entry in sorted(self.entries.items())
        }

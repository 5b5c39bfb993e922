"""One replica's copy of a partition: an append-only log of batches.

Cursors use Kafka's names: ``log_start_offset``, ``high_watermark``,
``last_stable_offset`` and ``log_end_offset``.  Offsets are dense: every batch,
control batches included, takes as many offsets as it has records.  The leader
epoch cache maps each leader epoch to the first offset written in it, which is
what a returning replica uses to find where its log diverged.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from broker.producer_state import ProducerStateManager
from broker.protocol import TopicPartition
from broker.records import (
    CONTROL_ABORT,
    AbortedTxn,
    LogBatch,
    RecordBatch,
    control_type,
    marker_coordinator_epoch,
)

UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1


@dataclass(frozen=True, slots=True)
class EpochEntry:
    epoch: int
    start_offset: int

    def __deepcopy__(self, memo: dict[int, Any]) -> EpochEntry:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


class PartitionLog:
    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.batches: list[LogBatch] = []
        self._base_offsets: list[int] = []
        self.log_start_offset = 0
        self.log_end_offset = 0
        self.high_watermark = 0
        self.epoch_cache: list[EpochEntry] = []
        self.producer_state = ProducerStateManager()
        # Transactions: the first offset of each producer's open transaction,
        # and the index of aborted ones (what read_committed readers skip).
        self.ongoing: dict[int, int] = {}
        self.aborted: list[AbortedTxn] = []
        # The latest transaction coordinator epoch seen in a marker, per producer:
        # every replica rebuilds it from the markers it holds, so a new leader
        # still refuses a marker from an older coordinator.
        self.coordinator_epochs: dict[int, int] = {}

    # -- cursors ---------------------------------------------------------
    @property
    def first_unstable_offset(self) -> int | None:
        """Where the earliest open transaction starts (None: none open)."""
        return min(self.ongoing.values()) if self.ongoing else None

    @property
    def last_stable_offset(self) -> int:
        """LSO = min(first offset of any open transaction, HW): read_committed
        readers stop here."""
        first = self.first_unstable_offset
        return self.high_watermark if first is None else min(first, self.high_watermark)

    def aborted_between(self, start: int, end: int) -> tuple[AbortedTxn, ...]:
        """Aborted transactions with data in [start, end), for a read_committed fetch."""
        return tuple(t for t in self.aborted if t.last_offset >= start and t.first_offset < end)

    @property
    def latest_epoch(self) -> int:
        return self.epoch_cache[-1].epoch if self.epoch_cache else UNDEFINED_EPOCH

    def update_high_watermark(self, offset: int) -> bool:
        """Set the HW (clamped to the LEO); True when it moved."""
        offset = min(offset, self.log_end_offset)
        if offset == self.high_watermark:
            return False
        self.high_watermark = offset
        return True

    # -- writes ----------------------------------------------------------
    def append_as_leader(self, batch: RecordBatch, leader_epoch: int, now_ms: int) -> LogBatch:
        log_batch = LogBatch(self.log_end_offset, leader_epoch, batch, now_ms)
        self._append(log_batch)
        return log_batch

    def append_as_follower(self, log_batches: tuple[LogBatch, ...]) -> list[LogBatch]:
        """Append what the leader sent, skipping anything already held."""
        appended = []
        for log_batch in log_batches:
            if log_batch.base_offset < self.log_end_offset:
                continue
            if log_batch.base_offset != self.log_end_offset:
                raise AssertionError(
                    f"{self.tp}: gap in replication, LEO {self.log_end_offset} but batch "
                    f"starts at {log_batch.base_offset}"
                )
            self._append(log_batch)
            appended.append(log_batch)
        return appended

    def _append(self, log_batch: LogBatch) -> None:
        if log_batch.leader_epoch > self.latest_epoch:
            self.epoch_cache.append(EpochEntry(log_batch.leader_epoch, log_batch.base_offset))
        self.batches.append(log_batch)
        self._base_offsets.append(log_batch.base_offset)
        self.log_end_offset = log_batch.next_offset
        self.producer_state.record(log_batch)
        batch = log_batch.batch
        if batch.is_transactional:
            self._track_transaction(log_batch)

    def _track_transaction(self, log_batch: LogBatch) -> None:
        batch = log_batch.batch
        producer_id = batch.producer_id
        marker = control_type(batch)
        if marker is None:
            self.ongoing.setdefault(producer_id, log_batch.base_offset)
            return
        epoch = marker_coordinator_epoch(batch)
        if epoch > self.coordinator_epochs.get(producer_id, -1):
            self.coordinator_epochs[producer_id] = epoch
        first = self.ongoing.pop(producer_id, None)
        if first is not None and marker == CONTROL_ABORT:
            self.aborted.append(AbortedTxn(producer_id, first, log_batch.base_offset))

    def assign_epoch_start(self, epoch: int) -> None:
        """A new leader records where its epoch starts (its LEO at election)."""
        if epoch > self.latest_epoch:
            self.epoch_cache.append(EpochEntry(epoch, self.log_end_offset))

    def truncate_to(self, offset: int) -> list[LogBatch]:
        """Drop everything at or above ``offset``; returns what was removed."""
        if offset > self.log_end_offset:
            return []
        offset = max(offset, self.log_start_offset)
        # Epochs that start at or after the truncation point are forgotten too,
        # even ones with no data (a leader records its epoch on election).
        while self.epoch_cache and self.epoch_cache[-1].start_offset >= offset:
            self.epoch_cache.pop()
        if offset == self.log_end_offset:
            return []
        index = bisect_right(self._base_offsets, offset) - 1
        removed: list[LogBatch] = []
        if index >= 0 and self.batches[index].base_offset < offset:
            straddling = self.batches[index]
            removed.append(straddling)
            self.batches[index] = straddling.sliced_before(offset)
            index += 1
        else:
            index = max(index, 0)
        removed.extend(self.batches[index:])
        del self.batches[index:]
        del self._base_offsets[index:]
        self.log_end_offset = offset
        self.high_watermark = min(self.high_watermark, offset)
        self.producer_state.rebuild(self.batches)
        self.ongoing = {}
        self.aborted = []
        self.coordinator_epochs = {}
        for kept in self.batches:
            if kept.batch.is_transactional:
                self._track_transaction(kept)
        return removed

    # -- reads -----------------------------------------------------------
    def read(self, fetch_offset: int, max_bytes: int, upper_bound: int) -> tuple[LogBatch, ...]:
        """Whole batches holding offsets from ``fetch_offset`` below ``upper_bound``.

        As in Kafka, at least one batch is returned when there is data, even if
        it is larger than ``max_bytes``.
        """
        if fetch_offset >= upper_bound or fetch_offset >= self.log_end_offset:
            return ()
        index = max(0, bisect_right(self._base_offsets, fetch_offset) - 1)
        out: list[LogBatch] = []
        size = 0
        batches = self.batches
        while index < len(batches):
            log_batch = batches[index]
            if log_batch.base_offset >= upper_bound:
                break
            if log_batch.last_offset >= upper_bound:
                break  # only whole batches below the bound are visible
            batch_size = log_batch.batch.bytes
            if out and size + batch_size > max_bytes:
                break
            out.append(log_batch)
            size += batch_size
            index += 1
        return tuple(out)

    def records_below(self, end_offset: int) -> list[tuple[int, LogBatch, int]]:
        """(offset, batch, index in batch) for every record below ``end_offset``."""
        out = []
        for log_batch in self.batches:
            if log_batch.base_offset >= end_offset:
                break
            for i in range(len(log_batch.batch.records)):
                offset = log_batch.base_offset + i
                if offset >= end_offset:
                    break
                out.append((offset, log_batch, i))
        return out

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """Kafka's ``endOffsetFor``: (largest epoch <= ``epoch``, its end offset)."""
        cache = self.epoch_cache
        if not cache or epoch == UNDEFINED_EPOCH or epoch > cache[-1].epoch:
            return UNDEFINED_EPOCH, UNDEFINED_OFFSET
        if epoch == cache[-1].epoch:
            return epoch, self.log_end_offset
        if epoch < cache[0].epoch:
            return epoch, cache[0].start_offset
        for i, entry in enumerate(cache):
            if entry.epoch > epoch:
                return cache[i - 1].epoch, entry.start_offset
        raise AssertionError("unreachable: the latest epoch is the largest")

    def snapshot(self) -> dict[str, object]:
        return {
            "log_start_offset": self.log_start_offset,
            "high_watermark": self.high_watermark,
            "last_stable_offset": self.last_stable_offset,
            "first_unstable_offset": self.first_unstable_offset,
            "open_transactions": {str(pid): first for pid, first in sorted(self.ongoing.items())},
            "aborted_transactions": [
                [t.producer_id, t.first_offset, t.last_offset] for t in self.aborted
            ],
            "log_end_offset": self.log_end_offset,
            "leader_epoch": self.latest_epoch,
            "epoch_cache": [[e.epoch, e.start_offset] for e in self.epoch_cache],
        }

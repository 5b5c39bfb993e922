"""Record batches (v2, CRC32C) between the wire and the engine.

The engine's ``Record`` holds a message id, a key and a value as text.  A client's
bytes become text with ``surrogateescape``, which gives the very same bytes back
on the way out, so a consumer reads exactly what a producer wrote.  What the
engine has no field for, each record's timestamp and headers, is kept beside it
in ``RecordExtras``, keyed by the message id of the batch's first record.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from collections.abc import Callable

from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

from broker.records import (
    CONTROL_ABORT,
    LogBatch,
    Record,
    RecordBatch,
    control_type,
    marker_coordinator_epoch,
)

ENCODING = "utf-8"
ERRORS = "surrogateescape"
CONTROL_MASK = 0x20
ATTRIBUTES_OFFSET = 21
CRC_OFFSET = 17
LEADER_EPOCH_OFFSET = 12
ENCODED_CACHE = 4096  # encoded batches kept for the next consumer of the same offsets

Headers = tuple[tuple[str, bytes], ...]


class BadRecords(Exception):
    """Records that are not v2 batches with a valid CRC (answered CORRUPT_MESSAGE)."""


def _text(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode(ENCODING, ERRORS)


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode(ENCODING, ERRORS)


class RecordExtras:
    """Timestamps and headers of the records that came over the wire, per batch."""

    def __init__(self, limit_batches: int) -> None:
        self.limit = limit_batches
        self._by_first_id: OrderedDict[str, tuple[tuple[int, ...], tuple[Headers, ...]]] = (
            OrderedDict()
        )
        self._encoded: OrderedDict[tuple[str, int, int, int], bytes] = OrderedDict()

    def remember(
        self, first_id: str, timestamps: tuple[int, ...], headers: tuple[Headers, ...]
    ) -> None:
        self._by_first_id[first_id] = (timestamps, headers)
        while len(self._by_first_id) > self.limit:
            self._by_first_id.popitem(last=False)

    def lookup(self, first_id: str) -> tuple[tuple[int, ...], tuple[Headers, ...]] | None:
        return self._by_first_id.get(first_id)

    def cached(self, key: tuple[str, int, int, int]) -> bytes | None:
        return self._encoded.get(key)

    def cache(self, key: tuple[str, int, int, int], data: bytes) -> None:
        self._encoded[key] = data
        while len(self._encoded) > ENCODED_CACHE:
            self._encoded.popitem(last=False)


def decode_batches(
    data: bytes | None,
    next_id: Callable[[], str],
    extras: RecordExtras,
    max_records: int,
) -> list[RecordBatch]:
    """A Produce request's records for one partition, as engine batches."""
    if not data:
        raise BadRecords("no records")
    records = MemoryRecords(bytes(data))
    out: list[RecordBatch] = []
    count = 0
    while records.has_next():
        batch = records.next_batch()
        if batch is None:
            break
        if not isinstance(batch, DefaultRecordBatch):
            raise BadRecords(f"record batch magic {batch.magic}: only v2 batches are accepted")
        if not batch.validate_crc():
            raise BadRecords("record batch CRC32C mismatch")
        if batch.is_control_batch:
            raise BadRecords("a client may not write control batches")
        engine_records: list[Record] = []
        timestamps: list[int] = []
        headers: list[Headers] = []
        try:
            for record in batch:
                count += 1
                if count > max_records:
                    raise BadRecords(f"more than {max_records} records in one request")
                engine_records.append(
                    Record(next_id(), _text(record.key), _text(record.value) or "")
                )
                timestamps.append(record.timestamp)
                headers.append(tuple((k, bytes(v or b"")) for k, v in record.headers))
        except BadRecords:
            raise
        except Exception as exc:
            raise BadRecords(f"undecodable records: {exc!r}") from None
        if not engine_records:
            raise BadRecords("an empty record batch")
        extras.remember(engine_records[0].message_id, tuple(timestamps), tuple(headers))
        out.append(
            RecordBatch(
                tuple(engine_records),
                batch.producer_id,
                batch.producer_epoch,
                batch.base_sequence,
                is_transactional=batch.is_transactional,
                size_bytes=batch.size_in_bytes,
            )
        )
    if records.size_in_bytes() and not out:
        raise BadRecords("no complete record batch")
    return out


def encode_batches(
    tp_name: str,
    batches: tuple[LogBatch, ...],
    extras: RecordExtras,
    wall_ms: Callable[[int], int],
) -> bytes:
    """Log batches as the bytes of a Fetch response's records field."""
    parts: list[bytes] = []
    for lb in batches:
        key = (tp_name, lb.base_offset, lb.leader_epoch, len(lb.batch.records))
        data = extras.cached(key)
        if data is None:
            data = _encode_one(lb, extras, wall_ms)
            extras.cache(key, data)
        parts.append(data)
    return b"".join(parts)


def _encode_one(lb: LogBatch, extras: RecordExtras, wall_ms: Callable[[int], int]) -> bytes:
    batch = lb.batch
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=batch.is_transactional,
        producer_id=batch.producer_id,
        producer_epoch=batch.producer_epoch,
        base_sequence=batch.base_sequence,
        batch_size=2**31 - 1,
    )
    marker = control_type(batch)
    appended = wall_ms(lb.append_time_ms)
    if marker is not None:
        kind = 0 if marker == CONTROL_ABORT else 1
        builder.append(
            0,
            appended,
            struct.pack(">hh", 0, kind),
            struct.pack(">hi", 0, marker_coordinator_epoch(batch)),
            [],
        )
    else:
        known = extras.lookup(batch.records[0].message_id) if batch.records else None
        for i, record in enumerate(batch.records):
            timestamp = appended
            headers: list[tuple[str, bytes]] = []
            if known is not None and i < len(known[0]):
                timestamp = known[0][i]
                headers = list(known[1][i])
            builder.append(i, timestamp, _bytes(record.key), _bytes(record.value), headers)
    data = builder.build()
    struct.pack_into(">q", data, 0, lb.base_offset)
    struct.pack_into(">i", data, LEADER_EPOCH_OFFSET, lb.leader_epoch)
    if marker is not None:
        (attributes,) = struct.unpack_from(">h", data, ATTRIBUTES_OFFSET)
        struct.pack_into(">h", data, ATTRIBUTES_OFFSET, attributes | CONTROL_MASK)
        crc = calc_crc32c(memoryview(data)[ATTRIBUTES_OFFSET:])
        struct.pack_into(">I", data, CRC_OFFSET, crc)
    return bytes(data)

"""Record batches (v2, CRC32C) between the wire and the engine.

The engine's ``Record`` holds a message id, a key and a value as text.  A client's
bytes become text with ``surrogateescape``, which gives the very same bytes back
on the way out, so a consumer reads exactly what a producer wrote.  What the
engine has no field for, each record's timestamp and headers and whether its value
was null, is kept beside it in ``RecordExtras``, keyed by the message id of the
batch's first record.
"""

from __future__ import annotations

import contextlib
import struct
from array import array
from collections import OrderedDict
from collections.abc import Callable
from functools import cache, partial
from itertools import repeat
from operator import and_, attrgetter, lshift, methodcaller, or_
from typing import Any, NamedTuple

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

_new_record = partial(tuple.__new__, Record)  # Record(*fields), in C

# What identifies a resent batch: (producer id, epoch, base sequence, None), or, for a batch
# without a producer id, (-1, -1, -1, a hash of its records' keys and values).
BatchKey = tuple[int, int, int, int | None]

ENCODING = "utf-8"
ERRORS = "surrogateescape"
CONTROL_MASK = 0x20
ATTRIBUTES_OFFSET = 21
CRC_OFFSET = 17
LEADER_EPOCH_OFFSET = 12
ENCODED_BUDGET = 64 * 1024 * 1024  # bytes of encoded batches kept per room

Headers = tuple[tuple[str, bytes | None], ...]


class BadRecords(Exception):
    """Records that are not v2 batches with a valid CRC (answered CORRUPT_MESSAGE)."""


def _text(data: bytes | None) -> str | None:
    return None if data is None else bytes(data).decode(ENCODING, ERRORS)


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode(ENCODING, ERRORS)


class WireExtras(NamedTuple):
    """What a batch's records carried that the engine's ``Record`` has no field for."""

    timestamps: array[int]  # each record's, as 64-bit integers (no object per record)
    headers: tuple[Headers, ...]
    null_values: frozenset[int]  # the records whose value was null (tombstones)


class RecordExtras:
    """Timestamps, headers and null values of the records that came over the wire, per
    batch, and the encoded form of recently fetched batches."""

    def __init__(self, limit_batches: int) -> None:
        self.limit = limit_batches
        self._by_first_id: OrderedDict[str, WireExtras] = OrderedDict()
        # (first message id, record count) -> the batch's bytes, base offset not yet set
        self._encoded: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._encoded_bytes = 0

    def remember(self, first_id: str, extras: WireExtras) -> None:
        self._by_first_id[first_id] = extras
        while len(self._by_first_id) > self.limit:
            self._by_first_id.popitem(last=False)

    def lookup(self, first_id: str) -> WireExtras | None:
        return self._by_first_id.get(first_id)

    def cached(self, key: tuple[str, int]) -> bytes | None:
        data = self._encoded.get(key)
        if data is not None:
            self._encoded.move_to_end(key)
        return data

    def cache(self, key: tuple[str, int], data: bytes) -> None:
        """Keep a batch's bytes (as a client sent it, or as the lab encoded it) for the
        next Fetch of it, within ``ENCODED_BUDGET`` bytes (least recently used go first)."""
        old = self._encoded.pop(key, None)
        if old is not None:
            self._encoded_bytes -= len(old)
        self._encoded[key] = data
        self._encoded_bytes += len(data)
        while self._encoded_bytes > ENCODED_BUDGET and self._encoded:
            _key, dropped = self._encoded.popitem(last=False)
            self._encoded_bytes -= len(dropped)


def decode_batches(
    data: bytes | None,
    reserve_ids: Callable[[int], list[str]],
    extras: RecordExtras,
    max_records: int,
    batch_ids: Callable[[BatchKey, int], list[str]] | None = None,
) -> list[RecordBatch]:
    """A Produce request's records for one partition, as engine batches.

    ``batch_ids``, when given, picks each batch's message ids instead of ``reserve_ids``,
    from what identifies a resent batch (``broker.wire.ledger``): its producer id, epoch
    and base sequence, or, without a producer id, a hash of its keys and values.

    kafka-python reads the batches (framing, header, CRC32C, decompression); the records
    of an uncompressed batch are read by ``_plain_records``, about ten times faster than
    kafka-python's per-record iterator, which is kept for compressed batches."""
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
        raw = bytes(batch._buffer)  # before reading: a compressed batch is then replaced
        count += batch.records_count
        if count > max_records:
            raise BadRecords(f"more than {max_records} records in one request")
        try:
            if batch.compression_type == 0 and batch.timestamp_type == 0:
                plain = _read_plain(raw, batch.records_count, batch.first_timestamp)
            else:
                plain = _read_records(batch)
        except BadRecords:
            raise
        except Exception as exc:
            raise BadRecords(f"undecodable records: {exc!r}") from None
        if not plain.values or len(plain.values) != batch.records_count:
            raise BadRecords("a record batch whose record count does not match its records")
        if batch_ids is None:
            ids = reserve_ids(len(plain.values))
        else:
            pid = batch.producer_id
            if pid >= 0:
                key: BatchKey = (pid, batch.producer_epoch, batch.base_sequence, None)
            else:
                content = (tuple(zip(plain.keys, plain.values, strict=True)), plain.nulls)
                key = (-1, -1, -1, hash(content))
            ids = batch_ids(key, len(plain.values))
        engine_records = tuple(map(_new_record, zip(ids, plain.keys, plain.values, strict=True)))
        extras.remember(ids[0], WireExtras(plain.timestamps, plain.headers, plain.nulls))
        extras.cache((ids[0], len(ids)), raw)  # a Fetch sends these very bytes back
        out.append(
            RecordBatch(
                engine_records,
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


RECORDS_START = 61  # the v2 batch header's size


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A zigzag varint (Kafka's ByteUtils.readVarint/readVarlong) at ``pos``."""
    b = buf[pos]
    if b < 0x80:
        return (b >> 1) ^ -(b & 1), pos + 1
    result = b & 0x7F
    shift = 7
    while True:
        pos += 1
        b = buf[pos]
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos + 1
        shift += 7
        if shift > 63:
            raise BadRecords("a varint longer than 10 bytes")


class Plain(NamedTuple):
    """A batch's records as columns: what the engine's ``Record`` needs (key and value as
    text, a null value as "") and what ``WireExtras`` keeps."""

    timestamps: array[int]  # each record's, as 64-bit integers (no object per record)
    keys: list[str | None]
    values: list[str]
    headers: tuple[Headers, ...]
    nulls: frozenset[int]  # the records whose value was null (tombstones)


def _read_records(batch: DefaultRecordBatch) -> Plain:
    """Any batch (a compressed one too), through kafka-python's per-record iterator."""
    read = [(r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch]
    return Plain(
        array("q", [r[0] for r in read]),
        [_text(r[1]) for r in read],
        [_text(r[2]) or "" for r in read],
        tuple(r[3] for r in read),
        frozenset(i for i, r in enumerate(read) if r[2] is None),
    )


def _read_plain(buf: bytes, count: int, first_timestamp: int) -> Plain:
    """The records of an uncompressed v2 batch (``buf`` from its first byte, CRC checked):
    through aiokafka's reader, compiled, when it is installed, else ``_plain_records``.

    A batch aiokafka's reader refuses is read again by ``_plain_records``, whose answer
    stands: aiokafka reads a record's attributes as a varint where Kafka reads one byte, so
    it refuses records Kafka takes (an attributes byte from 0x80 up, which Kafka ignores)."""
    if count >= EVEN_MIN_RECORDS:
        plain = _even_records(buf, count, first_timestamp)
        if plain is not None:
            return plain
    reader = compiled_reader()
    if reader is not None:
        with contextlib.suppress(Exception):  # the Python reader gives the verdict and why
            return _compiled_records(reader, buf, count)
    return _plain_records(buf, count, first_timestamp)


# -- evenly laid-out batches ---------------------------------------------------------------
# A client that sends messages of one size (a load test, a counter, fixed-width records) writes
# batches whose records all have the same length and the same fields at the same places, but
# for where an offset delta or a timestamp delta takes one more byte.  Such a run of records is
# checked and read a column at a time: every record's byte at one place is a strided slice of
# the batch, compared with what it must be in C, and the values are sliced out at a fixed
# stride.  Any other batch is read record by record as before.
EVEN_MIN_RECORDS = 16  # smaller batches are not worth it
EVEN_MAX_RUNS = 8  # more: records of varied layouts, quicker read record by record
_ZIGZAG_1 = tuple((b >> 1) ^ -(b & 1) for b in range(0x80))
_ZIGZAG_2 = tuple((v >> 1) ^ -(v & 1) for v in range(0x4000))
_DELTA_WIDTH_ENDS = (0, 64, 8_192, 1 << 20)  # offset deltas below [w] take w bytes
_delta_columns: list[bytes] = [b"", b"", b""]


def _delta_bytes(n: int) -> list[bytes]:
    """Byte k (0 to 2) of the varint of every offset delta 0 to ``n`` - 1: a run of records
    from index i checks its offset deltas' k-th bytes against ``[k][i : i + run]``."""
    if len(_delta_columns[0]) < n:
        size = max(n, 2 * len(_delta_columns[0]), 1024)
        columns: tuple[list[int], ...] = ([], [], [])
        for delta in range(size):
            zigzag = delta << 1
            for k, column in enumerate(columns):
                part = (zigzag >> 7 * k) & 0x7F
                column.append(part | 0x80 if zigzag >> 7 * (k + 1) else part)
        _delta_columns[:] = [bytes(column) for column in columns]
    return _delta_columns


class _Layout(NamedTuple):
    """Where a record's fields lie, from its first byte (a key or value size below zero: null,
    no bytes)."""

    size: int  # the whole record, its length varint included
    length_width: int
    timestamp_at: int
    timestamp_width: int
    offset_at: int
    offset_width: int
    key_size_at: int
    key_size_width: int
    key_size: int
    value_size_at: int
    value_size_width: int
    value_size: int
    headers_at: int


def _layout(buf: bytes, start: int, index: int) -> _Layout | None:
    """The layout of the record at ``start``, or None if it is not one an even run can hold:
    headers, a timestamp delta of more than two bytes, an offset delta that is not ``index``
    in the fewest bytes, a record that runs past the batch."""
    length, pos = _varint(buf, start)
    length_width = pos - start
    ts_at = pos + 1  # after the attributes byte
    _ts, pos = _varint(buf, ts_at)
    ts_width = pos - ts_at
    offset_at = pos
    delta, pos = _varint(buf, offset_at)
    offset_width = pos - offset_at
    key_at = pos
    key_size, pos = _varint(buf, key_at)
    key_width = pos - key_at
    value_at = pos + max(key_size, 0)
    value_size, pos = _varint(buf, value_at)
    value_width = pos - value_at
    headers_at = pos + max(value_size, 0)
    if (
        delta != index
        or offset_width > 3
        or not _DELTA_WIDTH_ENDS[offset_width - 1] <= index < _DELTA_WIDTH_ENDS[offset_width]
        or ts_width > 2
        or headers_at + 1 != start + length_width + length
        or headers_at >= len(buf)
        or buf[headers_at] != 0
    ):
        return None
    return _Layout(
        length_width + length,
        length_width,
        ts_at - start,
        ts_width,
        offset_at - start,
        offset_width,
        key_at - start,
        key_width,
        key_size,
        value_at - start,
        value_width,
        value_size,
        headers_at - start,
    )


_HIGH_BIT = bytes(b >> 7 for b in range(256))  # translate: 1 for a byte from 0x80 up, else 0


def _run_length(buf: bytes, start: int, lay: _Layout, index: int, most: int) -> int:
    """How many of the (at most ``most``) records from ``start`` (index ``index``) have
    ``lay``'s layout, which the first has: the same bytes as the first for the record's length
    and the key and value sizes, a timestamp delta as wide, offset deltas ``index`` onwards,
    and no headers.  Each check reads one column (every record's byte at one place, a strided
    slice) and finds its first record that breaks it in C."""
    step = lay.size
    stop = start + most * step
    run = most

    def column(at: int) -> bytes:
        return buf[start + at : stop : step]

    def same(at: int, width: int) -> None:
        nonlocal run
        for k in range(width):
            found = column(at + k)
            # the first record whose byte differs from the first record's
            run = min(run, most - len(found.lstrip(found[:1])))

    same(0, lay.length_width)
    same(lay.key_size_at, lay.key_size_width)
    same(lay.value_size_at, lay.value_size_width)
    same(lay.headers_at, 1)  # the first's is 0: checked by _layout
    deltas = _delta_bytes(index + most)
    for k in range(lay.offset_width):
        found, expected = column(lay.offset_at + k), deltas[k][index : index + most]
        if found != expected:  # only in a malformed batch: the first that differs
            low, high = 1, most  # found[:low] == expected[:low]; found[:high] differs
            while high - low > 1:
                middle = (low + high) // 2
                if found[:middle] == expected[:middle]:
                    low = middle
                else:
                    high = middle
            run = min(run, low)
    # A timestamp delta of one byte: below 0x80; of two: from 0x80 up, then below.
    high_bits = column(lay.timestamp_at).translate(_HIGH_BIT)
    if lay.timestamp_width == 1:
        ends = high_bits.find(1)
    else:
        ends = high_bits.find(0)
        ends_second = column(lay.timestamp_at + 1).translate(_HIGH_BIT).find(1)
        if ends_second >= 0:
            ends = ends_second if ends < 0 else min(ends, ends_second)
    if ends >= 0:
        run = min(run, ends)
    return run


def _even_records(buf: bytes, count: int, first_timestamp: int) -> Plain | None:
    """The records of an uncompressed v2 batch read in runs of evenly laid-out records (see
    above), or None when the batch is not made of a few such runs; then ``_read_plain`` reads
    it record by record, and refuses it if it is malformed.  What this reads is what
    ``_plain_records`` reads (a property test checks it on even batches, mangled ones too)."""
    text = ""  # the batch as latin-1, once a run is found to read
    deltas: list[int] = []
    keys: list[str | None] = []
    values: list[str] = []
    nulls: list[int] = []
    pos = RECORDS_START
    index = 0
    for _run in range(EVEN_MAX_RUNS):
        try:
            lay = _layout(buf, pos, index)
        except (IndexError, BadRecords):
            return None
        if lay is None:
            return None
        step = lay.size
        most = min(
            count - index,
            _DELTA_WIDTH_ENDS[lay.offset_width] - index,
            (len(buf) - pos) // step,
        )
        run = _run_length(buf, pos, lay, index, most)
        stop = pos + run * step
        if not text:
            text = buf.decode("latin-1")
        if lay.key_size < 0:
            keys.extend(repeat(None, run))
        else:
            at = pos + lay.key_size_at + lay.key_size_width
            size = lay.key_size
            keys += [text[q : q + size] for q in range(at, stop, step)]
        if lay.value_size < 0:
            values.extend(repeat("", run))
            nulls.extend(range(index, index + run))
        else:
            at = pos + lay.value_size_at + lay.value_size_width
            size = lay.value_size
            values += [text[q : q + size] for q in range(at, stop, step)]
        ts_at = pos + lay.timestamp_at
        if lay.timestamp_width == 1:
            deltas.extend(map(_ZIGZAG_1.__getitem__, buf[ts_at:stop:step]))
        else:
            low_bytes = map(and_, buf[ts_at:stop:step], repeat(0x7F))
            high_bytes = map(lshift, buf[ts_at + 1 : stop : step], repeat(7))
            deltas.extend(map(_ZIGZAG_2.__getitem__, map(or_, low_bytes, high_bytes)))
        pos = stop
        index += run
        if index == count:
            break
    if index != count or pos != len(buf):
        return None
    return _from_latin(first_timestamp, deltas, keys, values, ((),) * count, nulls)


@cache
def compiled_reader() -> Any:
    """aiokafka's record-batch reader in C (Cython), or None where only its pure-Python
    fallback is installed.  Importing it takes a tenth of a second or more (its package brings
    its client along): a gateway does it when it starts, not in a client's first Produce."""
    try:
        from aiokafka.record._crecords import DefaultRecordBatch
    except ImportError:
        return None
    return DefaultRecordBatch


_ZEROS = bytes(16)
_offset, _timestamp, _key, _value, _headers_of = map(
    attrgetter, ("offset", "timestamp", "key", "value", "headers")
)
_decode = methodcaller("decode", ENCODING, ERRORS)


def _compiled_records(reader: Any, buf: bytes, count: int) -> Plain:
    """aiokafka's reader checks what ours does (each record's length against its fields,
    no bytes left after the last record) but for the offset deltas, checked here.  It reads a
    varint's next byte without looking for the buffer's end, so it reads a copy of the batch
    followed by zero bytes, on which any varint ends; what it reads there fails its checks.
    Any refusal raises; ``_read_plain`` then lets ``_plain_records`` decide, and say why."""
    batch = reader(memoryview(buf + _ZEROS)[: len(buf)])
    read = list(batch)
    base = batch.base_offset
    if len(read) != count or list(map(_offset, read)) != list(range(base, base + count)):
        raise BadRecords("the record count or an offset delta does not add up")
    raw_values = list(map(_value, read))
    nulls: frozenset[int] = frozenset()
    if None in raw_values:
        nulls = frozenset(i for i, v in enumerate(raw_values) if v is None)
        raw_values = [b"" if v is None else v for v in raw_values]
    raw_keys = list(map(_key, read))
    if raw_keys.count(None) == count:
        keys: list[str | None] = raw_keys  # all null: nothing to decode
    else:
        keys = [None if k is None else _decode(k) for k in raw_keys]
    headers = list(map(_headers_of, read))
    return Plain(
        array("q", map(_timestamp, read)),
        keys,
        list(map(_decode, raw_values)),
        tuple(map(tuple, headers)) if any(headers) else ((),) * count,
        nulls,
    )


def _plain_records(buf: bytes, count: int, first_timestamp: int) -> Plain:
    """The records of an uncompressed v2 batch, read in one pass, in Python: what the lab
    reads with when aiokafka's reader in C is not there (see ``_read_plain``).

    The common varints (one or two bytes) are read inline, and keys and values are sliced out of
    the batch decoded once as latin-1 (one character per byte, so byte offsets hold):
    an ASCII slice is already the engine's text; the others are decoded again as UTF-8
    with surrogateescape, as ``_text`` does."""
    text = buf.decode("latin-1")
    varint = _varint
    ts_deltas: list[int] = []
    keys: list[str | None] = []
    values: list[str] = []
    nulls: list[int] = []
    headers: dict[int, Headers] = {}
    ts_append, key_append, value_append = ts_deltas.append, keys.append, values.append
    pos = RECORDS_START
    for index in range(count):
        # Each varint: one byte inline, two bytes inline (a record or value of 64 to 8,191
        # bytes, an offset delta of 64 to 8,191), longer ones through _varint.
        b = buf[pos]
        if b < 0x80:
            length = (b >> 1) ^ -(b & 1)
            pos += 1
        elif (c := buf[pos + 1]) < 0x80:
            b = (b & 0x7F) | (c << 7)
            length = (b >> 1) ^ -(b & 1)
            pos += 2
        else:
            length, pos = varint(buf, pos)
        end = pos + length
        b = buf[pos + 1]  # after the attributes byte, unused in v2
        if b < 0x80:
            ts_append((b >> 1) ^ -(b & 1))
            pos += 2
        else:
            ts_delta, pos = varint(buf, pos + 1)
            ts_append(ts_delta)
        b = buf[pos]
        if b < 0x80:
            offset_delta = (b >> 1) ^ -(b & 1)
            pos += 1
        elif (c := buf[pos + 1]) < 0x80:
            b = (b & 0x7F) | (c << 7)
            offset_delta = (b >> 1) ^ -(b & 1)
            pos += 2
        else:
            offset_delta, pos = varint(buf, pos)
        if offset_delta != index:
            raise BadRecords(f"record {index} of a batch has offset delta {offset_delta}")
        if buf[pos] == 1:  # -1: a null key, the usual case
            key_append(None)
            pos += 1
        else:
            size, pos = varint(buf, pos)
            if size < 0:
                key_append(None)
            else:
                key_append(text[pos : pos + size])
                pos += size
        b = buf[pos]
        if b < 0x80:
            size = (b >> 1) ^ -(b & 1)
            pos += 1
        elif (c := buf[pos + 1]) < 0x80:
            b = (b & 0x7F) | (c << 7)
            size = (b >> 1) ^ -(b & 1)
            pos += 2
        else:
            size, pos = varint(buf, pos)
        if size < 0:
            value_append("")
            nulls.append(index)
        else:
            value_append(text[pos : pos + size])
            pos += size
        if buf[pos]:
            header_count, pos = varint(buf, pos)
            headers[index], pos = _headers(buf, pos, header_count)
        else:
            pos += 1
        if pos != end:
            raise BadRecords("a record whose length does not match its fields")
    if pos != len(buf):
        raise BadRecords("bytes after the last record of a batch")
    return _from_latin(
        first_timestamp,
        ts_deltas,
        keys,
        values,
        tuple(headers.get(i, ()) for i in range(count)) if headers else ((),) * count,
        nulls,
    )


def _from_latin(
    first_timestamp: int,
    deltas: list[int],
    keys: list[str | None],
    values: list[str],
    headers: tuple[Headers, ...],
    nulls: list[int],
) -> Plain:
    """The columns of a batch read by slicing its latin-1 text, as the engine's text: an ASCII
    slice already is; the others are decoded again as UTF-8 with surrogateescape."""
    if not all(map(str.isascii, values)):
        values = [v if v.isascii() else _relatin(v) for v in values]
    if not all(k is None or k.isascii() for k in keys):
        keys = [k if k is None or k.isascii() else _relatin(k) for k in keys]
    return Plain(
        array("q", map(first_timestamp.__add__, deltas)), keys, values, headers, frozenset(nulls)
    )


def _relatin(text: str) -> str:
    """A latin-1 slice of the batch as the engine's text of those bytes (see ``_text``)."""
    return text.encode("latin-1").decode(ENCODING, ERRORS)


def _headers(buf: bytes, pos: int, count: int) -> tuple[Headers, int]:
    if count < 0:
        raise BadRecords(f"a record with {count} headers")
    found = []
    for _h in range(count):
        size, pos = _varint(buf, pos)
        name = buf[pos : pos + size].decode(ENCODING)
        pos += size
        size, pos = _varint(buf, pos)
        found.append((name, None if size < 0 else buf[pos : pos + size]))
        pos += max(size, 0)
    return tuple(found), pos


def encode_batches(
    batches: tuple[LogBatch, ...],
    extras: RecordExtras,
    wall_ms: Callable[[int], int],
) -> bytes:
    """Log batches as the bytes of a Fetch response's records field.  A batch a client
    wrote goes back as the bytes it sent (only the base offset and the leader epoch,
    which the CRC does not cover, are set); others are encoded once and kept."""
    parts: list[bytes] = []
    for lb in batches:
        records = lb.batch.records
        key = None if lb.batch.is_control or not records else (records[0].message_id, len(records))
        data = extras.cached(key) if key is not None else None
        if data is None:
            data = _encode_one(lb, extras, wall_ms)
            if key is not None:
                extras.cache(key, data)
        out = bytearray(data)
        struct.pack_into(">q", out, 0, lb.base_offset)
        struct.pack_into(">i", out, LEADER_EPOCH_OFFSET, lb.leader_epoch)
        parts.append(bytes(out))
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
            headers: list[tuple[str, bytes | None]] = []
            value = _bytes(record.value)
            if known is not None and i < len(known.timestamps):
                timestamp = known.timestamps[i]
                headers = list(known.headers[i])
                if i in known.null_values:
                    value = None
            builder.append(i, timestamp, _bytes(record.key), value, headers)
    data = builder.build()
    if marker is not None:
        (attributes,) = struct.unpack_from(">h", data, ATTRIBUTES_OFFSET)
        struct.pack_into(">h", data, ATTRIBUTES_OFFSET, attributes | CONTROL_MASK)
        crc = calc_crc32c(memoryview(data)[ATTRIBUTES_OFFSET:])
        struct.pack_into(">I", data, CRC_OFFSET, crc)
    return bytes(data)

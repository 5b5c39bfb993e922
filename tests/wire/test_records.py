"""The record codec: the lab's reader of uncompressed batches agrees with kafka-python's,
and what the lab encodes for a Fetch reads back (offsets, epochs, markers) in kafka-python."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from broker.records import LogBatch, marker_batch
from broker.wire import records as wire_records
from broker.wire.records import (
    RECORDS_START,
    BadRecords,
    RecordExtras,
    decode_batches,
    encode_batches,
)

blobs = st.one_of(st.none(), st.binary(max_size=300))
records = st.lists(
    st.tuples(
        blobs,
        blobs,
        st.lists(st.tuples(st.text(max_size=8), blobs), max_size=3),
        st.integers(min_value=0, max_value=2**40),
    ),
    min_size=1,
    max_size=40,
)


def build(items: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]], int]]) -> bytes:
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 22)
    builder.set_producer_state(7, 0, 0, False)
    for key, value, headers, timestamp in items:
        builder.append(timestamp=timestamp, key=key, value=value, headers=headers)
    builder.close()
    return bytes(builder.buffer())


def ids(count: int) -> list[str]:
    return [f"c-{n}" for n in range(count)]


@settings(max_examples=60, deadline=None)
@given(records)
def test_the_lab_reads_uncompressed_batches_as_kafka_python_does(items: list[Any]) -> None:
    data = build(items)
    expected = [(r.key, r.value, r.headers, r.timestamp) for batch in _batches(data) for r in batch]
    # The lab's two readers (aiokafka's compiled one, and its own in Python where that is not
    # installed) read the same.
    [read] = _batches(data)
    reader = wire_records.compiled_reader()
    assert reader is not None, "aiokafka's compiled record reader is not installed"
    assert wire_records._compiled_records(reader, data, len(items)) == wire_records._plain_records(
        data, len(items), read.first_timestamp
    )
    extras = RecordExtras(10)
    [batch] = decode_batches(data, ids, extras, 1000)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (7, 0, 0)
    known = extras.lookup("c-0")
    assert known is not None
    got = [
        (
            None if r.key is None else r.key.encode("utf-8", "surrogateescape"),
            None if i in known.null_values else r.value.encode("utf-8", "surrogateescape"),
            list(known.headers[i]),
            known.timestamps[i],
        )
        for i, r in enumerate(batch.records)
    ]
    assert got == [(k, v, list(h), t) for k, v, h, t in expected]
    # And back out: the same records, null values (tombstones) included; as the bytes the
    # client sent, and as the lab encodes them when it no longer has those bytes.
    rebuilt = RecordExtras(10)
    rebuilt.remember("c-0", known)
    for source in (extras, rebuilt):
        data = encode_batches((LogBatch(5, 2, batch),), source, lambda v: v)
        [fetched] = _batches(data)
        assert fetched.validate_crc()
        assert (fetched.base_offset, fetched.leader_epoch) == (5, 2)
        assert [(r.key, r.value, r.headers, r.timestamp) for r in fetched] == expected


def test_varints_of_one_two_and_three_bytes_are_read_as_kafka_python_reads_them() -> None:
    """The reader takes one- and two-byte varints inline and longer ones through a call: record
    lengths, value sizes and offset deltas on either side of 64 and 8,192 (one, two and three
    bytes), and timestamp deltas far apart."""
    sizes = [0, 1, 62, 63, 64, 65, 8_190, 8_191, 8_192, 20_000]
    items = [
        (None if n % 3 else b"k%d" % n, b"v" * sizes[n % len(sizes)], [], 1_000 + n * 70_000)
        for n in range(300)  # offset deltas 0 to 299: one and two bytes
    ]
    data = build(items)
    expected = [(r.key, r.value, r.timestamp) for batch in _batches(data) for r in batch]
    extras = RecordExtras(10)
    [batch] = decode_batches(data, ids, extras, 1000)
    known = extras.lookup("c-0")
    assert known is not None
    got = [
        (
            None if r.key is None else r.key.encode("utf-8", "surrogateescape"),
            r.value.encode("utf-8", "surrogateescape"),
            known.timestamps[i],
        )
        for i, r in enumerate(batch.records)
    ]
    assert len(got) == 300
    assert got == expected


def _batches(data: bytes) -> list[DefaultRecordBatch]:
    found = MemoryRecords(data)
    out = []
    while found.has_next():
        out.append(found.next_batch())
    return out


def test_a_flipped_byte_or_a_cut_batch_is_refused() -> None:
    data = bytearray(build([(b"k", b"value", [], 1)]))
    data[-2] ^= 0x01
    for bad in (bytes(data), build([(b"k", b"value", [], 1)])[:-3]):
        try:
            decode_batches(bad, ids, RecordExtras(10), 1000)
        except BadRecords:
            continue
        raise AssertionError("accepted")


def test_the_lab_encodes_fetched_batches_and_markers_that_kafka_python_reads() -> None:
    extras = RecordExtras(10)
    [batch] = decode_batches(
        build([(b"k", b"v1", [("h", b"x")], 5), (None, None, [], 6)]), ids, extras, 1000
    )
    data = encode_batches(
        (LogBatch(40, 3, batch, 100), LogBatch(42, 3, marker_batch("COMMIT", 7, 0, 9), 101)),
        extras,
        lambda virtual: 1_000_000 + virtual,
    )
    first, marker = _batches(data)
    assert first.validate_crc() and marker.validate_crc()
    assert (first.base_offset, first.leader_epoch, first.is_control_batch) == (40, 3, False)
    assert [(r.offset, r.key, r.value, r.headers, r.timestamp) for r in first] == [
        (40, b"k", b"v1", [("h", b"x")], 5),
        (41, None, None, [], 6),  # a tombstone stays one
    ]
    assert (marker.base_offset, marker.is_control_batch, marker.producer_id) == (42, True, 7)
    [control] = list(marker)
    assert struct.unpack(">hh", control.key) == (0, 1)  # version 0, COMMIT
    assert struct.unpack(">hi", control.value) == (0, 9)  # the coordinator epoch


# -- batches whose CRC is right but whose records are not -------------------------------------
def _varint(value: int) -> bytes:
    """Kafka's zigzag varint, written by hand so the tests can write wrong ones too."""
    n = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _record(
    offset_delta: int,
    value: bytes,
    *,
    length_off: int = 0,
    tail: bytes = b"",
    attributes: bytes = b"\x00",
) -> bytes:
    body = (
        attributes  # one byte, unused in v2 (Kafka reads and ignores it)
        + _varint(0)  # timestamp delta
        + _varint(offset_delta)
        + _varint(-1)  # a null key
        + _varint(len(value))
        + value
        + (tail or _varint(0))  # no headers
    )
    return _varint(len(body) + length_off) + body


def _batch(records: bytes, count: int) -> bytes:
    """A v2 batch around these record bytes, its length and CRC32C right."""
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, 5, 5, 7, 0, 0, count) + records
    crc = wire_records.calc_crc32c(after_crc)
    length = 4 + 1 + 4 + len(after_crc)  # leader epoch, magic, CRC, then the rest
    return struct.pack(">qiibI", 0, length, 0, 2, crc) + after_crc


GOOD = _record(0, b"one") + _record(1, b"two")
MALFORMED = {
    "a record longer than its fields": (_record(0, b"one", length_off=1) + _record(1, b"two"), 2),
    "a record shorter than its fields": (_record(0, b"one", length_off=-1) + _record(1, b"two"), 2),
    "an offset delta out of order": (_record(0, b"one") + _record(5, b"two"), 2),
    "more records counted than written": (GOOD, 3),
    "fewer records counted than written": (GOOD, 1),
    "no records counted": (GOOD, 0),
    "bytes after the last record": (GOOD + b"\x00\x00", 2),
    "a value running past the batch": (GOOD + _record(2, b"three")[:-3], 3),
    "a varint cut at the batch's end": (GOOD + _record(2, b"x", tail=b"\xff\xff\xff"), 3),
    "a varint of eleven bytes": (GOOD + _record(2, b"x", tail=b"\xff" * 10 + b"\x01"), 3),
    "a negative header count": (GOOD + _record(2, b"x", tail=_varint(-3)), 3),
    "a header key past the batch's end": (
        GOOD + _record(2, b"x", tail=_varint(1) + _varint(90)),
        3,
    ),
}


@pytest.fixture(params=["compiled", "python"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test below runs with aiokafka's compiled reader and with the lab's own."""
    if request.param == "python":
        monkeypatch.setattr(wire_records, "compiled_reader", lambda: None)
    else:
        assert wire_records.compiled_reader() is not None
    return str(request.param)


def test_a_well_formed_hand_written_batch_is_read(reader: str) -> None:
    [batch] = decode_batches(_batch(GOOD, 2), ids, RecordExtras(10), 1000)
    assert [r.value for r in batch.records] == ["one", "two"]


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_records_that_do_not_add_up_are_refused_though_the_crc_is_right(
    reader: str, case: str
) -> None:
    """A client can compute a right CRC over wrong records: each reader refuses them (the
    partition is answered CORRUPT_MESSAGE)."""
    records, count = MALFORMED[case]
    data = _batch(records, count)
    [parsed] = _batches(data)
    assert parsed.validate_crc()  # the CRC is right: only the records are wrong
    with pytest.raises(BadRecords):
        decode_batches(data, ids, RecordExtras(10), 1000)


def test_an_attributes_byte_kafka_ignores_is_ignored(reader: str) -> None:
    """A record's attributes are one byte, unused in v2: Kafka takes a record whatever that byte
    holds. aiokafka's compiled reader reads it as a varint and refuses 0x80 and up; the lab then
    reads the batch with its own reader, and takes it as Kafka does."""
    records = _record(0, b"one", attributes=b"\x80") + _record(1, b"two", attributes=b"\xff")
    [batch] = decode_batches(_batch(records, 2), ids, RecordExtras(10), 1000)
    assert [r.value for r in batch.records] == ["one", "two"]


@settings(max_examples=150, deadline=None)
@given(
    records,
    st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4),
    st.one_of(st.none(), st.integers(min_value=-2, max_value=50)),
)
def test_a_mangled_batch_is_read_or_refused_alike_by_both_readers(
    items: list[Any], flips: list[tuple[int, int]], count: int | None
) -> None:
    """Any bytes after the batch header, the CRC made right again: the compiled reader (with the
    Python one behind it when it refuses) reads what the Python reader reads, or both refuse."""
    data = bytearray(build(items))
    for position, value in flips:
        data[RECORDS_START + position % max(1, len(data) - RECORDS_START)] = value
    if count is not None:
        struct.pack_into(">i", data, 57, count)
    struct.pack_into(">I", data, 17, wire_records.calc_crc32c(bytes(data[21:])))
    raw = bytes(data)
    first_timestamp = struct.unpack_from(">q", raw, 27)[0]
    records_count = struct.unpack_from(">i", raw, 57)[0]
    outcomes = []
    for read in (wire_records._read_plain, wire_records._plain_records):
        try:
            outcomes.append(read(raw, records_count, first_timestamp))
        except Exception as exc:  # what each refused with does not matter, only that it did
            outcomes.append(type(exc))
    compiled, python = outcomes
    assert (compiled == python) if isinstance(python, tuple) else not isinstance(compiled, tuple)


# -- evenly laid-out batches, read a column at a time ---------------------------------------
def _even_batch(
    count: int, key: bytes | None, value: bytes | None, jump_at: int, jump: int
) -> bytes:
    """``count`` records of one key and one value size (the value's bytes vary), their timestamps
    ``jump`` ms apart from record ``jump_at`` on: what a client sending messages of one size
    writes."""
    items = []
    for n in range(count):
        body = None if value is None else bytes((b + n) % 256 for b in value)
        items.append((key, body, [], 1_000 + (jump if n >= jump_at else 0)))
    return build(items)


def _read_both(raw: bytes) -> tuple[Any, Any]:
    count = struct.unpack_from(">i", raw, 57)[0]
    first_timestamp = struct.unpack_from(">q", raw, 27)[0]
    try:
        python: Any = wire_records._plain_records(raw, count, first_timestamp)
    except Exception as exc:
        python = type(exc)
    return wire_records._even_records(raw, count, first_timestamp), python


@settings(max_examples=80, deadline=None)
@given(
    st.integers(min_value=16, max_value=200),
    st.one_of(st.none(), st.binary(max_size=20)),
    st.one_of(st.none(), st.binary(max_size=200)),
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=8_000),
)
def test_an_even_batch_is_read_in_columns_as_record_by_record(
    count: int, key: bytes | None, value: bytes | None, jump_at: int, jump: int
) -> None:
    """Records of one size (timestamp deltas of one byte, then maybe two; offset deltas of one
    byte, then two from 64) are read a column at a time, into what the record-by-record reader
    reads."""
    even, python = _read_both(_even_batch(count, key, value, jump_at, jump))
    assert even is not None
    assert even == python


def test_the_three_widths_of_offset_deltas_are_three_runs() -> None:
    raw = _even_batch(9_000, None, b"x" * 100, 4_000, 70)
    even, python = _read_both(raw)
    assert even is not None and even == python
    # record n's value is "x" moved on by n: "w" * 100 for 8,191, "x" * 100 for 8,192
    assert even.values[8_191:8_193] == ["w" * 100, "x" * 100]
    assert (even.timestamps[3_999], even.timestamps[4_000]) == (1_000, 1_070)
    # and through decode_batches: the engine's records, in order
    [batch] = decode_batches(raw, ids, RecordExtras(10), 10_000)
    assert [r.message_id for r in batch.records[8_190:8_193]] == ["c-8190", "c-8191", "c-8192"]


@pytest.mark.parametrize(
    "items",
    [
        [(None, b"v" * (n % 5), [], 1) for n in range(40)],  # values of varied sizes
        [(None, b"v", [("h", b"x")], 1)] * 40,  # headers
        [(None, b"v", [], 1 + (n % 2) * 100) for n in range(40)],  # timestamps back and forth
    ],
    ids=["varied sizes", "headers", "timestamps back and forth"],
)
def test_other_batches_are_left_to_the_record_by_record_readers(items: list[Any]) -> None:
    raw = build(items)
    even, python = _read_both(raw)
    assert even is None
    assert wire_records._read_plain(raw, len(items), 1) == python


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=16, max_value=120),
    st.one_of(st.none(), st.binary(min_size=1, max_size=10)),
    st.lists(
        st.tuples(st.integers(0, 1_000), st.integers(0, 40), st.integers(0, 255)),
        min_size=1,
        max_size=4,
    ),
    st.one_of(st.none(), st.integers(min_value=14, max_value=130)),
)
def test_a_mangled_even_batch_is_read_as_record_by_record_or_left_to_it(
    count: int, key: bytes | None, flips: list[tuple[int, int, int]], claimed: int | None
) -> None:
    """Any byte of an even batch's records changed (in any record, not only the first), or its
    record count: the column reader reads what the record-by-record reader reads, or leaves the
    batch to it (None); it never reads a batch the other refuses, nor reads one differently."""
    data = bytearray(_even_batch(count, key, b"value-of-one-size", count // 2, 65))
    size = (len(data) - RECORDS_START) // count  # about one record's
    for record, at, value in flips:
        position = RECORDS_START + (record % count) * size + at % size
        data[min(position, len(data) - 1)] = value
    if claimed is not None:
        struct.pack_into(">i", data, 57, claimed)
    even, python = _read_both(bytes(data))
    assert even is None or even == python

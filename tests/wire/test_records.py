"""The record codec: the lab's reader of uncompressed batches agrees with kafka-python's,
and what the lab encodes for a Fetch reads back (offsets, epochs, markers) in kafka-python."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder

from broker.records import LogBatch, marker_batch
from broker.wire.records import BadRecords, RecordExtras, decode_batches, encode_batches

blobs = st.one_of(st.none(), st.binary(max_size=300))
records = st.lists(
    st.tuples(
        blobs,
        blobs,
        st.lists(st.tuples(st.text(max_size=8), st.binary(max_size=20)), max_size=3),
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

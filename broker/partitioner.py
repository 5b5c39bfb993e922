"""Kafka's default partitioning: murmur2 of the key bytes, positive, modulo
the partition count (``Utils.murmur2`` / ``BuiltInPartitioner``)."""

from __future__ import annotations

import struct
from collections.abc import Callable

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (seed 0x9747b28c), as a signed int like Java's."""
    length = len(data)
    h = (0x9747B28C ^ length) & _MASK
    words = length >> 2
    if words:
        for k in _unpack(words)(data):
            k = (k * _M) & _MASK
            k ^= k >> 24
            h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    rest = length & 3
    tail = length & ~3
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


_UNPACKERS: dict[int, Callable[[bytes], tuple[int, ...]]] = {}


def _unpack(words: int) -> Callable[[bytes], tuple[int, ...]]:
    """A little-endian reader of the first ``words`` 32-bit words of a key."""
    unpacker = _UNPACKERS.get(words)
    if unpacker is None:
        unpacker = _UNPACKERS[words] = struct.Struct(f"<{words}I").unpack_from
    return unpacker


def partition_for_key(key: str, num_partitions: int) -> int:
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % num_partitions

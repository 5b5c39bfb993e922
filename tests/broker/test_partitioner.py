import pytest

from broker.partitioner import murmur2, partition_for_key

# Kafka's own test vectors (clients UtilsTest.testMurmur2).
KAFKA_MURMUR2_VECTORS = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_MURMUR2_VECTORS)
def test_murmur2_matches_kafkas_test_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


def test_murmur2_returns_a_signed_32_bit_int_like_java() -> None:
    values = [murmur2(f"key-{i}".encode()) for i in range(200)]

    assert all(-(2**31) <= v < 2**31 for v in values)
    assert any(v < 0 for v in values)


def test_partition_for_key_is_positive_murmur2_modulo_the_partition_count() -> None:
    # murmur2("21") = -973932308; & 0x7fffffff = 1173551340
    assert partition_for_key("21", 3) == 1173551340 % 3 == 0
    assert partition_for_key("21", 7) == 1173551340 % 7 == 3
    # murmur2("abc") = 479470107 (already positive)
    assert partition_for_key("abc", 10) == 7


def test_partition_for_key_hashes_the_utf8_bytes() -> None:
    assert partition_for_key("é", 1000) == (murmur2("é".encode()) & 0x7FFFFFFF) % 1000
    assert murmur2("é".encode()) != murmur2("é".encode("latin-1"))


def test_partition_for_key_with_one_partition_is_zero() -> None:
    assert {partition_for_key(f"k{i}", 1) for i in range(50)} == {0}

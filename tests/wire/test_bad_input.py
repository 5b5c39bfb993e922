"""Bad input and limits at the listener: raw frames on a socket, the room in-process."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest
from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse, MetadataRequest
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.memory_records import MemoryRecordsBuilder

from broker.simulation import Simulation
from broker.wire.control import default_spec
from broker.wire.gateway import Limits
from broker.wire.listener import ListenConfig, RoomListener

pytestmark = pytest.mark.timeout(30)
LIMITS = Limits(max_connections=4, max_frame_bytes=64 * 1024)


@pytest.fixture
async def room() -> AsyncIterator[RoomListener]:
    listener = RoomListener(Simulation(default_spec()), ListenConfig(port=0, limits=LIMITS))
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


async def connect(room: RoomListener) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", room.ports[1])


def framed(request: object, version: int, correlation_id: int = 1) -> bytes:
    request.API_VERSION = version  # type: ignore[attr-defined]
    request.with_header(correlation_id=correlation_id, client_id="raw")  # type: ignore[attr-defined]
    return bytes(request.encode(header=True, framed=True))  # type: ignore[attr-defined]


async def answer(reader: asyncio.StreamReader) -> bytes:
    (size,) = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), 5))
    return await asyncio.wait_for(reader.readexactly(size), 5)


async def closed_by_broker(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(), 5) == b""


async def api_versions_work(room: RoomListener) -> None:
    reader, writer = await connect(room)
    writer.write(
        framed(ApiVersionsRequest(client_software_name="t", client_software_version="1"), 3)
    )
    data = await answer(reader)
    response = ApiVersionsResponse.decode(data, version=3, header=True)
    assert response.error_code == 0
    assert {k.api_key for k in response.api_keys} >= {0, 1, 2, 3, 18}
    writer.close()


async def test_a_frame_above_the_limit_closes_the_connection_and_only_it(
    room: RoomListener,
) -> None:
    reader, writer = await connect(room)
    writer.write(struct.pack(">i", LIMITS.max_frame_bytes + 1) + b"\0" * 16)
    assert await closed_by_broker(reader)
    assert any("socket.request.max.bytes" in r for r in room.gateway.refused)  # type: ignore[union-attr]
    await api_versions_work(room)


@pytest.mark.parametrize(
    "frame",
    [
        b"\0\0\0\x05garbage-after-a-produce-header",  # Produce v5, body not a request
        struct.pack(">hhi", 999, 0, 7) + b"\0\0",  # an API that does not exist
        struct.pack(">hhi", 3, 99, 7) + b"\0\0",  # Metadata at a version nobody has
        b"\0\x01",  # shorter than a header
    ],
    ids=["garbage", "unknown-api", "unsupported-version", "short"],
)
async def test_a_malformed_or_unsupported_request_closes_that_connection(
    room: RoomListener, frame: bytes
) -> None:
    reader, writer = await connect(room)
    writer.write(struct.pack(">i", len(frame)) + frame)
    assert await closed_by_broker(reader)
    await api_versions_work(room)


async def test_api_versions_at_an_unknown_version_is_answered_at_version_0(
    room: RoomListener,
) -> None:
    reader, writer = await connect(room)
    frame = struct.pack(">hhi", 18, 99, 42) + struct.pack(">h", 3) + b"raw" + b"\0\0\0\0"
    writer.write(struct.pack(">i", len(frame)) + frame)
    data = await answer(reader)
    response = ApiVersionsResponse.decode(data, version=0, header=True)
    assert response.header.correlation_id == 42
    assert response.error_code == 35  # UNSUPPORTED_VERSION
    assert any(k.api_key == 18 and k.max_version == 3 for k in response.api_keys)
    writer.close()


async def test_records_with_a_bad_crc_are_answered_corrupt_message(room: RoomListener) -> None:
    reader, writer = await connect(room)
    writer.write(
        framed(
            MetadataRequest(
                topics=[MetadataRequest.MetadataRequestTopic(name="t")],
                allow_auto_topic_creation=True,
            ),
            4,
        )
    )
    await answer(reader)
    builder = MemoryRecordsBuilder(magic=2, compression_type=0, batch_size=1 << 20)
    builder.append(timestamp=None, key=b"k", value=b"v", headers=[])
    builder.close()
    records = bytearray(builder.buffer())
    records[-1] ^= 0xFF  # one bit of the value flipped: the CRC32C no longer matches
    topic = ProduceRequest.TopicProduceData(
        name="t",
        partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=0, records=bytes(records))
        ],
    )
    writer.write(
        framed(
            ProduceRequest(transactional_id=None, acks=-1, timeout_ms=1000, topic_data=[topic]),
            7,
            correlation_id=2,
        )
    )
    response = ProduceResponse.decode(await answer(reader), version=7, header=True)
    partition = response.responses[0].partition_responses[0]
    assert partition.error_code == 2  # CORRUPT_MESSAGE
    assert room.sim.cluster.brokers[1].replicas[("t", 0)].log.log_end_offset == 0
    writer.close()


async def test_connections_above_the_room_s_limit_are_refused(room: RoomListener) -> None:
    held = [await connect(room) for _ in range(LIMITS.max_connections)]
    for reader, writer in held:
        writer.write(framed(ApiVersionsRequest(), 0))
        await answer(reader)
    reader, _writer = await connect(room)
    assert await closed_by_broker(reader)
    held[0][1].close()
    await held[0][1].wait_closed()
    await asyncio.sleep(0)  # not a wait for time: lets the listener see the close

    async def refused_until_freed() -> None:
        while True:
            try:
                await api_versions_work(room)
                return
            except (AssertionError, asyncio.IncompleteReadError, ConnectionError):
                await asyncio.sleep(0.01)

    await asyncio.wait_for(refused_until_freed(), 5)

"""Frames in, frames out: Kafka's request and response encodings, sans-IO.

kafka-python's generated classes (from Kafka's own JSON message schemas) do the
byte work; this module only picks the class and version for a frame, refuses
what the lab does not serve, and frames the answer.  Nothing here touches the
engine.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

from kafka.protocol.admin.configs import DescribeConfigsRequest
from kafka.protocol.admin.topics import CreateTopicsRequest
from kafka.protocol.api_header import RequestHeader
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.consumer import (
    FetchRequest,
    HeartbeatRequest,
    JoinGroupRequest,
    LeaveGroupRequest,
    ListOffsetsRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    SyncGroupRequest,
)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest,
    AddPartitionsToTxnRequest,
    EndTxnRequest,
    InitProducerIdRequest,
    ProduceRequest,
    TxnOffsetCommitRequest,
)

# Kafka's error codes the wire layer itself answers with (the engine's are in broker.errors).
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_TOPIC_EXCEPTION = 17
TOPIC_ALREADY_EXISTS = 36
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
POLICY_VIOLATION = 44
COORDINATOR_NOT_AVAILABLE = 15
LEADER_NOT_AVAILABLE = 5
MESSAGE_TOO_LARGE = 10
INVALID_TXN_STATE = 48
UNSUPPORTED_FOR_MESSAGE_FORMAT = 43

# What the lab serves: request class and the versions it answers (Kafka's ApiVersions
# ranges).  The upper ends stop before topic ids (Produce and Fetch 13) and the KIP-890
# part 2 versions; Metadata 4 or more is what kafka-python needs before it uses
# idempotence.
SUPPORTED: dict[int, tuple[type[ApiMessage], int, int]] = {
    0: (ProduceRequest, 3, 9),
    1: (FetchRequest, 4, 12),
    2: (ListOffsetsRequest, 1, 6),
    3: (MetadataRequest, 0, 12),
    8: (OffsetCommitRequest, 2, 8),
    9: (OffsetFetchRequest, 1, 7),
    10: (FindCoordinatorRequest, 0, 4),
    11: (JoinGroupRequest, 0, 7),
    12: (HeartbeatRequest, 0, 4),
    13: (LeaveGroupRequest, 0, 4),
    14: (SyncGroupRequest, 0, 5),
    18: (ApiVersionsRequest, 0, 3),
    19: (CreateTopicsRequest, 2, 5),
    22: (InitProducerIdRequest, 0, 4),
    24: (AddPartitionsToTxnRequest, 0, 3),
    25: (AddOffsetsToTxnRequest, 0, 3),
    26: (EndTxnRequest, 0, 3),
    28: (TxnOffsetCommitRequest, 0, 3),
    32: (DescribeConfigsRequest, 0, 4),
}
API_VERSIONS = 18


class FrameError(Exception):
    """A frame that cannot be answered at all: the connection is closed (with ``reason``)."""


@dataclass(slots=True)
class WireRequest:
    api_key: int
    version: int
    correlation_id: int
    client_id: str
    body: Any  # the kafka-python request object; None when refused
    error: int = 0  # non-zero: answer with this error and do nothing else


def peek_header(frame: bytes) -> tuple[int, int, int]:
    """api key, version and correlation id: the fixed start of every request header."""
    if len(frame) < 8:
        raise FrameError(f"a request of {len(frame)} bytes is shorter than its header")
    api_key, version, correlation_id = struct.unpack_from(">hhi", frame, 0)
    return api_key, version, correlation_id


def decode_request(frame: bytes) -> WireRequest:
    """One request frame (without its length prefix) into a ``WireRequest``.

    An ApiVersions request at a version the lab does not know comes back with ``error``
    set: it is answered at version 0 with UNSUPPORTED_VERSION and the list, as KIP-511
    asks.  Any other API or version the lab does not serve, and a body that does not
    decode, raise ``FrameError``: Kafka's broker closes the connection for those.
    """
    api_key, version, correlation_id = peek_header(frame)
    entry = SUPPORTED.get(api_key)
    if entry is None or not entry[1] <= version <= entry[2]:
        if api_key != API_VERSIONS or version < 0:
            raise FrameError(f"unsupported API {api_key} version {version}")
        client_id = _client_id_only(frame)
        return WireRequest(api_key, version, correlation_id, client_id, None, UNSUPPORTED_VERSION)
    cls, _low, _high = entry
    try:
        request = cls.decode(frame, version=version, header=True)
    except Exception as exc:  # the generated decoders raise anything on garbage
        raise FrameError(f"undecodable {cls.__name__} v{version}: {exc!r}") from None
    header = request.header
    client_id = header.client_id if header is not None and header.client_id else ""
    return WireRequest(api_key, version, correlation_id, client_id, request)


def _client_id_only(frame: bytes) -> str:
    try:
        header = RequestHeader.decode(io.BytesIO(frame), flexible=False)
    except Exception:
        return ""
    client_id = header.client_id
    return client_id if isinstance(client_id, str) else ""


def encode_response(request: WireRequest, response: ApiMessage) -> bytes:
    """The framed response (length prefix, header, body) at the request's version."""
    version = 0 if request.error and request.api_key == API_VERSIONS else request.version
    response.API_VERSION = version
    response.with_header(correlation_id=request.correlation_id)
    data: bytes = bytes(response.encode(header=True, framed=True))
    return data

"""Browsers that stop reading cannot make the server buffer without end (dashboard/fanout.py).

A real Daphne (the embedded set-up, started like the browser tests' live server) and real
sockets: a WebSocket client with a 4 KiB receive buffer asks for hundreds of full frames (15 KB
each) and reads nothing. Without a bound the server would hold every one of them for it; with
``LAB_WS_SEND_BUFFER_BYTES`` it holds at most that much, drops the rest, and sends one full
frame once the client has read what was queued, or closes it with code 4008 when it never does.
"""

from __future__ import annotations

import base64
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.management.commands.bench_fanout import open_room
from dashboard.management.commands.scaleout import Lab

LIMIT = 64 * 1024
STALL_S = 4
RESYNCS = 300
SEQ = re.compile(rb'^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"')
SCENARIO = Path(__file__).resolve().parents[2] / "broker/scenarios/producer-retry-duplicate.toml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    env = {
        "LAB_WS_SEND_BUFFER_BYTES": str(LIMIT),
        "LAB_WS_STALL_CLOSE_S": str(STALL_S),
        # This test floods on purpose: the rate limits have tests of their own.
        "LAB_RATE_RESYNC": "100000/60",
        "LAB_RATE_RESYNC_IP": "100000/60",
    }
    with Lab(tmp_path_factory.mktemp("slow"), webs=1, redis=False, env=env) as running:
        yield running


class SlowSocket:
    """A WebSocket client on a plain socket that reads only when told to."""

    def __init__(self, base: str, room: str, cookie: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        # A small receive window: the client's kernel holds little, the server must hold the rest.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/rooms/{room}/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {base}\r\nCookie: {cookie}\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self.sock.recv(4096)
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.closed_with: int | None = None
        self.ended = False

    def send_text(self, text: str) -> None:
        payload, mask = text.encode(), os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def read_all(self, quiet_s: float = 1.5, limit_s: float = 30.0) -> list[bytes]:
        """Read (answering pings) until nothing comes for ``quiet_s`` or the server ends the
        connection; returns the text messages."""
        messages: list[bytes] = []
        self.sock.settimeout(quiet_s)
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline and not self.ended:
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                self.ended = True
                break
            if not chunk:
                self.ended = True
            self.buffer += chunk
            messages.extend(self._frames())
        return messages

    def _frames(self) -> Iterator[bytes]:
        while len(self.buffer) >= 2:
            opcode, length, start = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, start = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, start = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if len(self.buffer) < start + length:
                return
            payload = self.buffer[start : start + length]
            self.buffer = self.buffer[start + length :]
            if opcode == 0x8:
                self.closed_with = struct.unpack("!H", payload[:2])[0] if payload else None
            elif opcode == 0x9:
                self.sock.sendall(bytes([0x8A, 0x80]) + b"\0\0\0\0")
            elif opcode == 0x1:
                yield payload

    def close(self) -> None:
        self.sock.close()


def frames_of(messages: list[bytes]) -> list[tuple[int, str]]:
    """(sequence number, kind) of each frame; error frames left out."""
    return [(int(m.group(1)), m.group(2).decode()) for m in map(SEQ.match, messages) if m]


def flood(lab: Lab) -> SlowSocket:
    """A presenter's connection that asks for RESYNCS full frames, then steps the run once
    (a frame it should miss), and reads nothing."""
    room, cookie = open_room(lab.urls[0], SCENARIO.read_text(encoding="utf-8"))
    client = SlowSocket(lab.urls[0], room, cookie)
    for _ in range(RESYNCS):
        client.send_text('{"action": "resync"}')
    client.send_text('{"action": "step"}')
    return client


def server_log(lab: Lab) -> str:
    return "".join(path.read_text(errors="replace") for _name, _proc, path in lab.processes)


def test_a_client_that_stops_reading_is_skipped_then_caught_up_with_one_full_frame(
    lab: Lab,
) -> None:
    client = flood(lab)
    time.sleep(2.0)  # the server answers every request meanwhile (or drops the answers)

    messages = client.read_all()
    client.close()

    frames = frames_of(messages)
    before = frames[0][0]
    # Unbounded, the snapshot and all RESYNCS answers would arrive (4.7 MB), then the step's
    # delta frame. Bounded: what fit in the server's LIMIT and the kernels' buffers (set to the
    # same size), no delta, and the one full frame sent on catching up, after the step.
    assert frames[:-1] == [(before, "full")] * (len(frames) - 1)
    assert frames[-1] == (before + 1, "full")
    assert len(frames) < RESYNCS // 10, len(frames)
    held = sum(len(m) for m in messages[:-1])
    assert held < 4 * LIMIT + len(messages[-1]), held
    queued = [int(n) for n in re.findall(r"fell behind with (\d+) bytes queued", server_log(lab))]
    assert queued and max(queued) <= LIMIT + len(messages[-1]), queued


def test_a_client_that_never_reads_is_closed_with_4008(lab: Lab) -> None:
    client = flood(lab)
    time.sleep(STALL_S + 3.0)  # past LAB_WS_STALL_CLOSE_S, and the 1 s close handshake

    messages = client.read_all(quiet_s=3.0)
    client.close()

    assert client.ended or client.closed_with == 4008
    assert len(frames_of(messages)) < RESYNCS // 10
    assert "closing a WebSocket that read nothing for 4" in server_log(lab)

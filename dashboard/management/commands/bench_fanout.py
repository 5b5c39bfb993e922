"""``manage.py bench_fanout --clients 200``: how well one room's frames fan out to many browsers.

Opens a room on a running lab (``--url``; without it, a Daphne subprocess on a free port),
connects N WebSocket clients, presses play, and measures for each frame the delay from the
runtime's send (``data-sent`` on ``#frame-seq``) to its receipt, plus frames per second delivered.
Clients are minimal asyncio WebSocket readers, so that the benchmark measures the server.
"""

from __future__ import annotations

import asyncio
import base64
import http.cookiejar
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

SEQ = re.compile(rb'<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)" data-sent="(\d+)"')

# One order every 20 ms for a minute of virtual time: a frame on (almost) every tick at 1x.
BENCH_SCENARIO = """
title = "Fan-out benchmark: a steady stream of orders"
semantics = "at-least-once"
duration_ms = 120000
[cluster]
brokers = 3
[[topics]]
name = "orders"
partitions = 2
"replication.factor" = 3
"min.insync.replicas" = 2
[[producers]]
name = "p1"
[producers.config]
acks = "all"
"linger.ms" = 0
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
count = 3000
interval_ms = 20
key = "order-{i}"
narration = "p1 sends an order every 20 ms."
"""

# With --backlog N: N more records, written at once to orders-0 before the stream starts, so
# that every frame is rendered while one partition holds more than N records.
BACKLOG_STEP = """
[[steps]]
at_ms = 0
do = "produce"
producer = "p1"
topic = "orders"
partition = 0
count = {count}
value = "backlog-{{i}}"
narration = "p1 writes a backlog of {count} records to orders-0 at once."
"""


def bench_scenario(backlog: int) -> str:
    if backlog <= 0:
        return BENCH_SCENARIO
    # The backlog's step comes first: steps are listed in time order.
    head, sep, tail = BENCH_SCENARIO.partition("[[steps]]")
    return head + BACKLOG_STEP.format(count=backlog).lstrip() + "\n" + sep + tail


class Client:
    """A bare WebSocket reader: the handshake, then whole text messages."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, host: str, port: int, path: str, origin: str) -> Client:
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
            ).encode()
        )
        status = await reader.readline()
        if b" 101 " not in status:
            raise CommandError(f"WebSocket refused: {status.decode().strip()}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        return cls(reader, writer)

    async def receive(self) -> bytes:
        message = b""
        while True:
            head = await self.reader.readexactly(2)
            final, opcode = head[0] & 0x80, head[0] & 0x0F
            length = head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            payload = await self.reader.readexactly(length)
            if opcode == 0x8:
                raise ConnectionError("closed by the server")
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if final:
                    return message

    async def send(self, text: str) -> None:
        payload = text.encode()
        mask = os.urandom(4)
        head = bytes([0x81])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        else:
            head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _open_room(base: str, scenario: str) -> str:
    """Upload the benchmark scenario like a browser would; returns the room id."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/").read()
    token = next((c.value for c in jar if c.name == "csrftoken"), "")
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="scenario"; '
        f'filename="fanout-bench.toml"\r\nContent-Type: text/plain\r\n\r\n'
        f"{scenario}\r\n--{boundary}--\r\n"
    ).encode()
    request = urllib.request.Request(
        base + "/upload/",
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "X-CSRFToken": token,
            "Referer": base + "/",
        },
    )
    response = opener.open(request)
    match = re.search(r"/rooms/([^/]+)/", response.geturl())
    if not match:
        raise CommandError(f"could not open a room: ended at {response.geturl()}")
    return match.group(1)


class Command(BaseCommand):
    help = "Connect N WebSocket clients to one playing room; print frames/s and delays."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=200)
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument("--speed", default="1", help="playback speed (default 1)")
        parser.add_argument(
            "--backlog",
            type=int,
            default=0,
            help="records written to orders-0 at once before the stream (e.g. 100000), to "
            "measure a room whose partition is large; then also times a late joiner's full "
            "snapshot and a 'jump to offset' in the middle of the backlog",
        )
        parser.add_argument(
            "--url",
            default="",
            help="a running lab, e.g. http://127.0.0.1:8000 (default: start one)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backlog = options["backlog"]
        if not 0 <= backlog <= 150_000:
            raise CommandError("--backlog must be between 0 and 150000 (the run's record limit)")
        server = None
        base = options["url"].rstrip("/")
        if not base:
            port = _free_port()
            env = {**os.environ, "LAB_SERVE_STATIC": "0", "DJANGO_DEBUG": "0"}
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "dashboard.asgi:application",
                ],
                cwd=Path(__file__).resolve().parents[3],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            base = f"http://127.0.0.1:{port}"
            self._wait_for(port, server)
        try:
            room = _open_room(base, bench_scenario(backlog))
            result = asyncio.run(
                self._bench(base, room, options["clients"], options["seconds"], options["speed"])
            )
            if backlog:
                result += asyncio.run(self._late_joiner(base, room, backlog))
        finally:
            if server is not None:
                server.terminate()
                server.wait(timeout=10)
        self.stdout.write(result)

    def _wait_for(self, port: int, server: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if server.poll() is not None:
                raise CommandError("daphne exited at start")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise CommandError("daphne did not start within 20 s")

    async def _bench(self, base: str, room: str, clients: int, seconds: float, speed: str) -> str:
        url = urllib.parse.urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        connected = []
        for _ in range(clients):
            connected.append(await Client.connect(host, port, f"/ws/rooms/{room}/", base))
        for client in connected:
            await client.receive()  # the full snapshot
        delays: list[float] = []
        received = [0] * clients
        seqs: set[int] = set()
        stop_at = time.monotonic() + seconds

        async def read(i: int, client: Client) -> None:
            while time.monotonic() < stop_at:
                try:
                    message = await asyncio.wait_for(client.receive(), stop_at - time.monotonic())
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return
                match = SEQ.match(message)
                if match and match.group(2) == b"delta":
                    delays.append(time.time() * 1000 - int(match.group(3)))
                    received[i] += 1
                    seqs.add(int(match.group(1)))

        await connected[0].send(json.dumps({"action": "speed", "speed": speed}))
        await connected[0].send(json.dumps({"action": "play"}))
        started = time.monotonic()
        await asyncio.gather(*(read(i, c) for i, c in enumerate(connected)))
        elapsed = time.monotonic() - started
        for client in connected:
            client.close()
        if not delays:
            raise CommandError("no frame arrived")
        delays.sort()
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        frames = len(seqs)
        return (
            f"clients: {clients}, seconds: {elapsed:.1f}, speed: {speed}x\n"
            f"frames sent by the room: {frames} ({frames / elapsed:.1f}/s)\n"
            f"frames delivered: {sum(received)} ({sum(received) / elapsed:.0f}/s in all, "
            f"{min(received)}..{max(received)} per client)\n"
            f"delay send -> receipt: p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {delays[-1]:.1f} ms\n"
        )

    async def _late_joiner(self, base: str, room: str, backlog: int) -> str:
        """After the stream: what a browser that arrives now waits for."""
        url = urllib.parse.urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        started = time.monotonic()
        client = await Client.connect(host, port, f"/ws/rooms/{room}/", base)
        snapshot = await client.receive()
        joined = (time.monotonic() - started) * 1000
        client.close()
        middle = backlog // 2
        lane = f"{base}/rooms/{room}/lanes/orders-0/?offset={middle}"
        started = time.monotonic()
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(lane).read())
        jumped = (time.monotonic() - started) * 1000
        if f'data-offset="{middle}"'.encode() not in body:
            raise CommandError(f"the jump to offset {middle} did not show that offset")
        return (
            f"late joiner: full snapshot of {len(snapshot) / 1024:.0f} KiB in {joined:.0f} ms "
            f"(connect included)\n"
            f"jump to offset {middle} of orders-0: {len(body) / 1024:.0f} KiB in {jumped:.0f} ms\n"
        )

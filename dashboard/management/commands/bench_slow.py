"""``manage.py bench_slow --clients 100 --seconds 40``: what browsers that stop reading cost.

Starts the embedded lab (one Daphne, as ``manage.py scaleout`` starts it), opens the fan-out
benchmark room, connects ``--clients`` WebSocket clients with a 4 KiB receive window that never
read a byte, and a presenter that reads everything; presses play at ``--speed`` and prints, every
``--every`` seconds, the server's RSS and the frames the presenter got. At the end it prints how
many slow clients the server said fell behind and how many it closed (from its log).
``--backlog N`` writes N records up front (bigger frames, as bench_fanout's option).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand

from dashboard.management.commands.bench_fanout import Client, bench_scenario, open_room
from dashboard.management.commands.bench_load import rss_mb
from dashboard.management.commands.scaleout import Lab


class SlowSocket:
    """A WebSocket client on a plain socket that reads only when told to."""

    def __init__(self, base: str, room: str, cookie: str = "", window: int = 4096) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.socket()
        # A small receive window: the client's kernel holds little, the server the rest.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
        self.sock.connect((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET /ws/rooms/{room}/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: {base}\r\n" + (f"Cookie: {cookie}\r\n" if cookie else "") + "\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("the server closed the connection during the handshake")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError(f"WebSocket refused: {head.splitlines()[0]!r}")
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
            if length >= 126:
                size = 2 if length == 126 else 8
                if len(self.buffer) < 2 + size:
                    return
                length = int.from_bytes(self.buffer[2 : 2 + size], "big")
                start = 2 + size
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


def server_log(lab: Lab) -> str:
    return "".join(path.read_text(errors="replace") for _name, _proc, path in lab.processes)


class Command(BaseCommand):
    help = "What browsers that stop reading their WebSocket cost the server (RSS over time)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=100, help="non-reading clients")
        parser.add_argument("--seconds", type=float, default=40.0)
        parser.add_argument("--every", type=float, default=5.0, help="print every N seconds")
        parser.add_argument("--speed", default="1", help="playback speed (1, 4, 16, end)")
        parser.add_argument("--backlog", type=int, default=0, help="records written up front")

    def handle(self, *args: Any, **options: Any) -> None:
        env = {"LAB_RATE_ROOM_CREATE": "1000/60"}
        with Lab(webs=1, redis=False, debug=False, env=env) as lab:
            base = lab.urls[0]
            pid = lab.processes[0][1].pid
            room, cookie = open_room(base, bench_scenario(options["backlog"]))
            slow = [SlowSocket(base, room) for _ in range(options["clients"])]
            try:
                asyncio.run(self._play(base, room, cookie, pid, options))
            finally:
                for client in slow:
                    client.close()
            log = server_log(lab)
        self.stdout.write(
            f"slow clients: {options['clients']}, fell behind: {log.count('fell behind with')}, "
            f"closed as stalled: {log.count('closing a WebSocket that read nothing')}"
        )

    async def _play(self, base: str, room: str, cookie: str, pid: int, options: Any) -> None:
        presenter = await Client.connect(base, f"/ws/rooms/{room}/", cookie)
        await presenter.send(json.dumps({"action": "speed", "speed": options["speed"]}))
        await presenter.send(json.dumps({"action": "play"}))
        frames, started = 0, time.monotonic()
        self.stdout.write(f"   0 s  RSS {rss_mb(pid):6.1f} MB  (clients connected, play)")
        next_print = options["every"]
        while (elapsed := time.monotonic() - started) < options["seconds"]:
            try:
                await asyncio.wait_for(presenter.receive(), timeout=0.5)
                frames += 1
            except TimeoutError:
                pass
            if elapsed >= next_print:
                next_print += options["every"]
                self.stdout.write(
                    f"{elapsed:4.0f} s  RSS {rss_mb(pid):6.1f} MB  presenter frames {frames}"
                )
        self.stdout.write(f"{elapsed:4.0f} s  RSS {rss_mb(pid):6.1f} MB  presenter frames {frames}")
        presenter.close()

"""A browser-less visitor for tests against a live server: HTTP with cookies and the CSRF token,
and a small WebSocket client (RFC 6455, text frames only) over a plain socket."""

from __future__ import annotations

import base64
import contextlib
import http.cookiejar
import json
import os
import re
import socket
import struct
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


class Visitor:
    """One browser: a cookie jar shared by its HTTP requests and its WebSockets."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def request(
        self, path: str, data: dict[str, str] | None = None, timeout: float = 30
    ) -> tuple[int, str, str]:
        """(status, final URL, body); POSTs carry the CSRF token. Redirects are followed."""
        body = None
        if data is not None:
            self.ensure_csrf()
            fields = {**data, "csrfmiddlewaretoken": self.cookie("csrftoken") or ""}
            body = urllib.parse.urlencode(fields).encode()
        try:
            with self.opener.open(self.base + path, data=body, timeout=timeout) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode()

    def get(self, path: str) -> tuple[int, str, str]:
        return self.request(path)

    def post(self, path: str, data: dict[str, str]) -> tuple[int, str, str]:
        return self.request(path, data)

    def ensure_csrf(self) -> None:
        if self.cookie("csrftoken") is None:
            self.get("/")

    def cookie(self, name: str) -> str | None:
        return next((c.value for c in self.jar if c.name == name), None)

    def open_room(self, scenario: str) -> str:
        """Open a built-in scenario in a workshop room; its id."""
        status, url, body = self.post("/", {"scenario": scenario})
        match = re.search(r"/rooms/([^/]+)/$", url)
        assert status == 200 and match, (status, url, body[:500])
        return match.group(1)

    def websocket(self, path: str) -> WebSocket:
        return WebSocket(self, path)


class WebSocket:
    """A blocking WebSocket client: enough to watch a room and send it messages."""

    def __init__(self, visitor: Visitor, path: str, timeout: float = 10) -> None:
        parts = urllib.parse.urlsplit(visitor.base)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        cookies = "; ".join(f"{c.name}={c.value}" for c in visitor.jar)
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {visitor.base}\r\nCookie: {cookies}\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("the server closed the connection during the handshake")
            head += chunk
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(f"handshake refused: {head.decode(errors='replace')}")
        self.closed = False

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data

    def receive(self) -> str:
        """The next text message (a close frame raises ConnectionError)."""
        while True:
            first, second = self._read(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._read(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._read(8))
            payload = self._read(length)
            if opcode == 0x8:
                self.closed = True
                reason = payload[2:].decode(errors="replace")
                raise ConnectionError(f"closed by the server: {reason}")
            if opcode == 0x9:  # ping: answer it
                self._frame(0xA, payload)
                continue
            if opcode == 0x1:
                return payload.decode()

    def send(self, message: dict[str, Any]) -> None:
        self._frame(0x1, json.dumps(message).encode())

    def _frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._frame(0x8, struct.pack("!H", 1000))
        self.sock.close()

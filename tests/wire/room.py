"""A headless room for real Kafka clients: ``python -m broker listen --port 0 --commands``
in a subprocess, its brokers' addresses read from its first lines, faults sent as JSON
lines on its standard input.  Its standard error is read all along (a pipe nobody reads
fills up, and the room would freeze writing its log)."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20
LOG_LINES_KEPT = 2000
T = TypeVar("T")


@dataclass
class Room:
    process: subprocess.Popen[str]
    brokers: dict[int, str] = field(default_factory=dict)
    bootstrap: str = ""

    lines: queue.Queue[str] = field(default_factory=queue.Queue)
    log: deque[str] = field(default_factory=lambda: deque(maxlen=LOG_LINES_KEPT))
    _log_done: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
        self._log_done.set()

    def _line(self, deadline: float) -> str:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError("the room did not answer in time") from None
        if not line:
            raise AssertionError(f"the room stopped: {self.stderr()}")
        return line.strip()

    def command(self, **raw: Any) -> dict[str, Any]:
        """Apply a command (a fault, a crash) now; its JSON answer."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(raw) + "\n")
        self.process.stdin.flush()
        answer: dict[str, Any] = json.loads(self._line(time.monotonic() + 10))
        return answer

    def stderr(self) -> str:
        """The last lines the room logged (all of them once it has stopped)."""
        if self.process.poll() is not None:
            self._log_done.wait(timeout=5)
        return "".join(self.log)


def start_room(*args: str) -> Room:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "listen", *args, "--port", "0", "--commands"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    room = Room(process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not room.bootstrap:
        line = room._line(deadline)
        name, _, addr = line.partition(" ")
        if name == "bootstrap":
            room.bootstrap = addr
        else:
            room.brokers[int(name.removeprefix("broker-"))] = addr
    return room


def stop_room(room: Room) -> str:
    """Close its stdin (it stops), wait; what it logged."""
    if room.process.stdin is not None:
        room.process.stdin.close()
    try:
        room.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        room.process.kill()
        room.process.wait(timeout=10)
    return room.stderr()


def eventually(check: Callable[[], T | None], timeout_s: float = 20, what: str = "") -> T:
    """Poll ``check`` until it returns something other than None or False."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


def accepts(addr: str) -> bool:
    """Whether something listens at ``addr`` (HOST:PORT): a TCP connection is accepted."""
    host, port = addr.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
    except OSError:
        return False
    return True

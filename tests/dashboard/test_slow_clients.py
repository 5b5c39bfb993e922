"""Browsers that stop reading cannot make the server buffer without end (dashboard/live/fanout.py).

A real Daphne (the embedded set-up, started like the browser tests' live server) and real
sockets: a WebSocket client with a 4 KiB receive buffer asks for hundreds of full frames (15 KB
each) and reads nothing. Without a bound the server would hold every one of them for it; with
``LAB_WS_SEND_BUFFER_BYTES`` it holds at most that much, drops the rest, and sends one full
frame once the client has read what was queued, or closes it with code 4008 when it never does.
"""

from __future__ import annotations

import asyncio
import re
import runpy
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import settings as settings_module
from dashboard.live.fanout import Audience
from dashboard.management.commands.bench_fanout import open_room
from dashboard.management.commands.bench_slow import SlowSocket, server_log
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


# -- the same rules in one process, without sockets ----------------------------------------------
class Viewer:
    """A consumer as the audience sees it: frames it got, and a full frame on catching up."""

    def __init__(self, snapshot_seq: int) -> None:
        self.got: list[str] = []
        self.snapshot_seq = snapshot_seq
        self.send_paused = False

    async def base_send(self, message: dict[str, str]) -> None:
        self.got.append(message["text"])

    async def catch_up(self) -> int:
        self.got.append(f"full@{self.snapshot_seq}")
        return self.snapshot_seq


async def test_frames_skip_a_viewer_behind_and_resume_after_one_full_frame() -> None:
    audience, slow, fast = Audience(), Viewer(snapshot_seq=12), Viewer(snapshot_seq=0)
    audience.add(slow, presenter=False)
    audience.add(fast, presenter=False)
    await audience.send(10, "f10")
    audience.fell_behind(audience.members[id(slow)])
    await audience.send(11, "f11")  # skips the slow viewer

    assert slow.send_paused
    audience.caught_up(audience.members[id(slow)])
    await audience.send(12, "f12")  # raced the full frame, which has it
    await asyncio.sleep(0.01)  # the catch-up task runs
    await audience.send(13, "f13")

    assert slow.got == ["f10", "full@12", "f13"]
    assert fast.got == ["f10", "f11", "f12", "f13"]
    assert not slow.send_paused


def test_the_bound_and_the_stall_timeout_are_settings_with_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LAB_WS_SEND_BUFFER_BYTES", "LAB_WS_STALL_CLOSE_S"):
        monkeypatch.delenv(name, raising=False)
    defaults = runpy.run_path(settings_module.__file__)
    monkeypatch.setenv("LAB_WS_SEND_BUFFER_BYTES", "1048576")
    monkeypatch.setenv("LAB_WS_STALL_CLOSE_S", "2.5")
    chosen = runpy.run_path(settings_module.__file__)
    monkeypatch.setenv("LAB_WS_SEND_BUFFER_BYTES", "1000")

    assert (defaults["LAB_WS_SEND_BUFFER_BYTES"], defaults["LAB_WS_STALL_CLOSE_S"]) == (
        256 * 1024,
        30.0,
    )
    assert (chosen["LAB_WS_SEND_BUFFER_BYTES"], chosen["LAB_WS_STALL_CLOSE_S"]) == (2**20, 2.5)
    with pytest.raises(ImproperlyConfigured, match="LAB_WS_SEND_BUFFER_BYTES='1000'"):
        runpy.run_path(settings_module.__file__)

"""Browsers that stop reading cannot make the server buffer without end (dashboard/fanout.py).

A real Daphne (the embedded set-up, started like the browser tests' live server) and real
sockets: a WebSocket client with a 4 KiB receive buffer asks for hundreds of full frames (15 KB
each) and reads nothing. Without a bound the server would hold every one of them for it; with
``LAB_WS_SEND_BUFFER_BYTES`` it holds at most that much, drops the rest, and sends one full
frame once the client has read what was queued, or closes it with code 4008 when it never does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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

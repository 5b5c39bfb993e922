"""Per-message deflate on the room's WebSockets (dashboard/live/deflate.py).

Against a real Daphne (the embedded set-up): a client that offers deflate, as browsers do, gets
the same frames as one that does not, compressed, and several such clients share one compressed
frame, so the fan-out still frames each message once.
"""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.live.deflate import SharedFrame, accept, compress
from dashboard.management.commands.bench_fanout import Client, open_room
from dashboard.management.commands.scaleout import Lab

SEQ = re.compile(rb'^<output id="frame-seq" data-seq="(\d+)" data-kind="(\w+)"')
SCENARIO = Path(__file__).resolve().parents[2] / "broker/scenarios/consumer-auto-commit-crash.toml"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with Lab(tmp_path_factory.mktemp("deflate"), webs=1, redis=False) as running:
        yield running


class Recorder(Client):
    """A client that keeps every whole message with the bytes its frames took on the wire."""

    async def messages(self, count: int) -> list[tuple[bytes, int]]:
        out = []
        for _ in range(count):
            before = self.wire_bytes
            message = await asyncio.wait_for(self.receive(), 10)
            out.append((message, self.wire_bytes - before))
        return out


async def watch(base: str, room: str, cookie: str) -> dict[str, list[tuple[bytes, int]]]:
    """Two attendees offering deflate and one not, while the presenter steps the run."""
    path = f"/ws/rooms/{room}/"
    presenter = await Recorder.connect(base, path, cookie=cookie)
    viewers = {
        "deflate-1": await Recorder.connect(base, path),
        "deflate-2": await Recorder.connect(base, path),
        "plain": await Recorder.connect(base, path, deflate=False),
    }
    assert presenter.inflater is not None
    assert viewers["deflate-1"].inflater is not None and viewers["plain"].inflater is None
    await presenter.receive()  # its snapshot
    steps = 8
    for _ in range(steps):  # one step per frame: wait for each step's frame
        await presenter.send(json.dumps({"action": "step"}))
        while not (match := SEQ.match(await presenter.receive())) or match.group(2) != b"delta":
            pass
    got = {}
    for name, viewer in viewers.items():
        got[name] = await viewer.messages(1 + steps)  # the snapshot, then one delta per step
        viewer.close()
    presenter.close()
    return got


def test_browsers_offering_deflate_get_the_same_frames_compressed(lab: Lab) -> None:
    room, cookie = open_room(lab.urls[0], SCENARIO.read_text(encoding="utf-8"))

    got = asyncio.run(watch(lab.urls[0], room, cookie))

    plain = [message for message, _wire in got["plain"]]
    kinds = [m.group(2) for m in map(SEQ.match, plain) if m]
    assert kinds == [b"full"] + [b"delta"] * 8
    for name in ("deflate-1", "deflate-2"):
        assert [message for message, _wire in got[name]] == plain
    # The deltas (the shared frames) and the snapshot (compressed by its own connection) alike
    # take a fraction of their size on the wire.
    wire = sum(w for _m, w in got["deflate-1"])
    assert wire * 3 < sum(len(m) for m in plain), (wire, sum(len(m) for m in plain))
    assert [w for _m, w in got["deflate-1"]] == [w for _m, w in got["deflate-2"]]


def test_a_shared_frame_inflates_for_a_fresh_reader_and_for_one_that_keeps_its_context() -> None:
    frames = [SharedFrame(f"<p>frame {i}</p>" * (50 + i)) for i in range(3)]
    keeping = zlib.decompressobj(-15)  # a browser keeps one inflater for the connection
    for shared in frames:
        data = shared.for_window(15)
        assert data[0] == 0x80 | 0x40 | 0x1  # FIN, RSV1 (compressed), text
        body = data[4:] if data[1] == 126 else data[2:]
        fresh = zlib.decompressobj(-15).decompress(body + b"\x00\x00\xff\xff")
        assert fresh == shared.payload
        assert keeping.decompress(body + b"\x00\x00\xff\xff") == shared.payload
        assert shared.for_window(15) is data  # made once, whoever asks
        assert shared.for_window(0)[2 + 2 :] == shared.payload  # plain, for the others


def test_a_smaller_window_asked_by_a_client_is_respected() -> None:
    payload = b"<li>an event</li>" * 2000
    body = compress(payload, 9)
    assert zlib.decompressobj(-9).decompress(body + b"\x00\x00\xff\xff") == payload


def test_only_deflate_offers_are_accepted_and_without_server_context() -> None:
    from autobahn.websocket.compress import PerMessageDeflateOffer

    assert accept([]) is None
    taken = accept([PerMessageDeflateOffer()])
    assert taken.no_context_takeover is True

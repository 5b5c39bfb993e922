"""``manage.py bench_fanout --clients 300``: how well one room's frames fan out to many browsers.

The workshop case: one presenter drives a room (play, at ``--speed``; a playing room sends a
frame per 50 ms tick, 20 a second) and N attendees watch it. The command opens a room like a
person would (uploads the benchmark scenario; that browser session is the room's presenter),
connects N attendee WebSocket clients and the presenter's, presses play on the presenter's
socket, and for ``--seconds`` times every delta frame an attendee gets, from the runtime's send
(``data-sent`` on ``#frame-seq``, epoch ms) to its receipt. It prints frames/s sent and
delivered, p50/p99/max delay, and checks that each attendee got each frame once, in order.

Where it runs:

- ``--setup embedded`` (the default without ``--url``): one Daphne that runs the rooms itself.
- ``--setup scaleout``: Redis, one ``manage.py labworker`` and ``--webs`` Daphne processes.
- ``--url URL`` (repeatable): a running lab; clients are spread over the URLs round robin.

A set-up it starts gets a fresh SQLite file, DJANGO_DEBUG=0, and its processes' CPU use is
reported. Clients are minimal asyncio WebSocket readers in this process, so that the benchmark
measures the server; they still share the machine's cores with it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.cookiejar
import json
import os
import re
import statistics
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands.scaleout import Lab, LabError

# A room that sent nothing for this long has ended its run (or was paused): stop measuring.
QUIET_S = 3.0
# How much longer than asked a reader waits for the frames a test needs (min_frames).
MAX_WAIT_S = 120.0
BEAT = "beat"  # event pacing: one moment per beat (dashboard/live/playback.py)
SPEEDS = ("0.25", "0.5", "1", "2", "4", "8", "16", "end")
# A set-up started for many runs opens a room per run from one address: lift the per-client
# limits on opening rooms (a real audience opens rooms from many addresses).
BENCH_ENV = {
    "LAB_RATE_ROOM_CREATE": "100000/60",
    "LAB_MAX_ROOMS_PER_CLIENT": "100000",
    "LAB_MAX_ROOMS": "100000",
}

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


def bench_scenario(backlog: int, orders: int = 3000) -> str:
    """The benchmark's stream of ``orders`` (one per 20 ms), after ``backlog`` records."""
    stream = BENCH_SCENARIO.replace("count = 3000\n", f"count = {orders}\n")
    if backlog <= 0:
        return stream
    # The backlog's step comes first: steps are listed in time order.
    head, sep, tail = stream.partition("[[steps]]")
    return head + BACKLOG_STEP.format(count=backlog).lstrip() + "\n" + sep + tail


# What Chromium offers: per-message deflate, any window the server likes.
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"


class Client:
    """A bare WebSocket client: the handshake, then whole text messages (pings answered).

    Like a browser it offers per-message deflate (unless ``deflate`` is False) and inflates
    what comes compressed; ``wire_bytes`` counts every byte of every frame it read (headers
    included, compressed as sent), ``payload_bytes`` the messages once inflated."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, deflate: bool = False
    ) -> None:
        self.reader = reader
        self.writer = writer
        # One inflater for the connection: it reads messages compressed with or without the
        # server's context takeover alike.
        self.inflater = zlib.decompressobj(-15) if deflate else None
        self.wire_bytes = 0
        self.payload_bytes = 0

    @classmethod
    async def connect(
        cls,
        base: str,
        path: str,
        cookie: str = "",
        origin: str | None = None,
        deflate: bool = True,
    ) -> Client:
        url = urllib.parse.urlsplit(base)
        host, port = url.hostname or "127.0.0.1", url.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=2**22)
        key = base64.b64encode(os.urandom(16)).decode()
        # The Origin must name one of ALLOWED_HOSTS (no cross-site WebSockets).
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {origin or base}",
        ]
        if cookie:
            lines.append(f"Cookie: {cookie}")
        if deflate:
            lines.append(f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        status = await reader.readline()
        if b" 101 " not in status:
            writer.close()
            raise CommandError(f"WebSocket refused by {base}: {status.decode().strip()!r}")
        deflated = False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                deflated = deflated or "permessage-deflate" in value
        return cls(reader, writer, deflated)

    async def receive(self) -> bytes:
        message = b""
        compressed = False
        while True:
            head = await self.reader.readexactly(2)
            final, opcode = head[0] & 0x80, head[0] & 0x0F
            length = head[1] & 0x7F
            wire = 2
            if length == 126:
                length = struct.unpack("!H", await self.reader.readexactly(2))[0]
                wire += 2
            elif length == 127:
                length = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                wire += 8
            payload = await self.reader.readexactly(length)
            self.wire_bytes += wire + length
            if opcode == 0x8:
                raise ConnectionError("closed by the server")
            if opcode == 0x9:  # ping: Daphne closes connections that never answer
                self._write(0xA, payload)
                continue
            if opcode in (0x1, 0x2):
                compressed = bool(head[0] & 0x40)  # RSV1: a per-message deflated message
            if opcode in (0x1, 0x2, 0x0):
                message += payload
                if final:
                    if compressed:
                        if self.inflater is None:
                            raise ConnectionError("a compressed message on a plain connection")
                        message = self.inflater.decompress(message + b"\x00\x00\xff\xff")
                    self.payload_bytes += len(message)
                    return message

    def _write(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        head = bytes([0x80 | opcode])
        if len(payload) < 126:
            head += bytes([0x80 | len(payload)])
        else:
            head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.writer.write(head + mask + masked)

    async def send(self, text: str) -> None:
        self._write(0x1, text.encode())
        await self.writer.drain()

    def close(self) -> None:
        self.writer.close()


def open_room(base: str, scenario: str = "", builtin: str = "") -> tuple[str, str]:
    """Open a room like a browser would, uploading ``scenario`` or, with ``builtin``, picking
    that built-in scenario on the home page: returns the room id and the Cookie header of that
    browser's session, which presents the room."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(base + "/").read()
    token = next((c.value or "" for c in jar if c.name == "csrftoken"), "")
    if builtin:
        body = urllib.parse.urlencode({"scenario": builtin}).encode()
        kind, url = "application/x-www-form-urlencoded", base + "/"
    else:
        boundary = uuid.uuid4().hex
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="scenario"; '
            f'filename="fanout-bench.toml"\r\nContent-Type: text/plain\r\n\r\n'
            f"{scenario}\r\n--{boundary}--\r\n"
        ).encode()
        kind, url = f"multipart/form-data; boundary={boundary}", base + "/upload/"
    request = urllib.request.Request(
        url,
        data=body,
        headers={"Content-Type": kind, "X-CSRFToken": token, "Referer": base + "/"},
    )
    try:
        response = opener.open(request)
    except urllib.error.HTTPError as exc:
        said = re.sub(r"<[^>]+>|\s+", " ", exc.read().decode(errors="replace"))
        raise CommandError(f"could not open a room ({exc.code}): {said[:300].strip()}") from None
    match = re.search(r"/rooms/([^/]+)/$", urllib.parse.urlsplit(response.geturl()).path)
    if not match:
        raise CommandError(f"could not open a room: ended at {response.geturl()}")
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar if c.name == "sessionid")
    if not cookie:
        raise CommandError("opening the room gave no session cookie")
    return match.group(1), cookie


def scenario_names(asked: list[str]) -> list[str]:
    """The built-in scenarios named (``all``: every one), checked against the engine's list."""
    from broker.scenario import builtin_names

    known = list(builtin_names())
    names: list[str] = []
    for name in asked:
        for one in known if name == "all" else [name]:
            if one not in known:
                raise CommandError(f"--scenario: there is no built-in scenario {one!r}")
            if one not in names:
                names.append(one)
    return names


def bytes_table(results: list[tuple[str, Result]], beats: str) -> str:
    """One row per scenario, one column pair per speed: KiB/s per attendee on the wire (and
    frames/s), then the worst scenario per speed."""
    speeds = list(dict.fromkeys(r.speed for _n, r in results))
    label = {s: f"beat ({beats}/s)" if s == BEAT else f"{s}x" for s in speeds}
    rows: dict[str, dict[str, Result]] = {}
    for name, result in results:
        rows.setdefault(name, {})[result.speed] = result
    head = "| scenario | " + " | ".join(f"{label[s]} KiB/s (frames/s)" for s in speeds) + " |"
    lines = [head, "|---|" + "--:|" * len(speeds)]
    for name, by_speed in rows.items():
        cells = [
            f"{r.wire_rate / 1024:.1f} ({r.frame_rate:.1f})" if (r := by_speed.get(s)) else "-"
            for s in speeds
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    worst = []
    for s in speeds:
        rates = [by_speed[s].wire_rate for by_speed in rows.values() if s in by_speed]
        worst.append(f"{max(rates) / 1024:.1f}")
    lines.append("| **highest** | " + " | ".join(worst) + " |")
    deflate = {r.deflate for _n, r in results}
    said = "on" if deflate == {True} else "off" if deflate == {False} else "mixed"
    return (
        "bytes per attendee per second of play, on the wire (per-message deflate "
        f"{said}):\n" + "\n".join(lines) + "\n"
    )


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(len(ordered) * fraction)))]


def sequence_faults(seqs: list[int], start: int) -> tuple[int, int]:
    """(gaps, repeats) in the delta sequence numbers a client got after its snapshot ``start``:
    each delta must be exactly the previous one plus one."""
    gaps = repeats = 0
    last = start
    for seq in seqs:
        if seq <= last:
            repeats += 1
            continue
        if seq != last + 1:
            gaps += 1
        last = seq
    return gaps, repeats


@dataclass
class Viewer:
    client: Client
    base: str
    snapshot_seq: int = -1
    seqs: list[int] = field(default_factory=list)
    # Bytes read after the snapshot, on the wire and inflated, up to its last delta frame.
    wire_bytes: int = 0
    payload_bytes: int = 0
    last_at: float = 0.0  # when its last delta frame arrived (monotonic)


@dataclass
class Result:
    clients: int
    urls: list[str]
    speed: str
    elapsed: float
    connect_s: float
    frames_sent: int
    delivered: list[int]
    delays: list[float]
    gaps: int
    repeats: int
    cpu: dict[str, float] = field(default_factory=dict)
    late_joiners: int = 0
    late_faulty: int = 0  # late joiners that saw a gap or a repeat
    late_gaps: int = 0
    late_repeats: int = 0
    late_snapshot_ms: list[float] = field(default_factory=list)
    # Seconds from the press on play to the last frame (a run that ended before --seconds).
    play_s: float = 0.0
    wire_bytes: list[int] = field(default_factory=list)  # per attendee, after its snapshot
    payload_bytes: list[int] = field(default_factory=list)
    deflate: bool = False  # the attendees' connections negotiated per-message deflate

    @property
    def wire_rate(self) -> float:
        """Bytes per attendee per second of play, as read from the socket."""
        return statistics.mean(self.wire_bytes) / self.play_s if self.wire_bytes else 0.0

    @property
    def payload_rate(self) -> float:
        """The same, inflated: the frames' own size."""
        return statistics.mean(self.payload_bytes) / self.play_s if self.payload_bytes else 0.0

    @property
    def frame_rate(self) -> float:
        """Frames per attendee per second of play."""
        return statistics.mean(self.delivered) / self.play_s if self.delivered else 0.0

    def bytes_line(self) -> str:
        return (
            f"bytes per attendee: {self.wire_rate / 1024:.1f} KiB/s on the wire "
            f"({self.payload_rate / 1024:.1f} KiB/s inflated; per-message deflate "
            f"{'on' if self.deflate else 'off'}), {self.frame_rate:.1f} frames/s, over "
            f"{self.play_s:.1f} s of play"
        )

    def text(self) -> str:
        delays = sorted(self.delays)
        p50 = statistics.median(delays) if delays else float("nan")
        total = sum(self.delivered)
        per_url = len(self.urls)
        lines = [
            f"clients: {self.clients} attendees + 1 presenter over {per_url} "
            f"URL{'s' if per_url > 1 else ''} ({', '.join(self.urls)}); "
            f"connected in {self.connect_s:.2f} s",
            f"seconds: {self.elapsed:.1f}, speed: {self.speed}"
            f"{'' if self.speed == 'beat' else 'x'}",
            f"frames sent by the room: {self.frames_sent} "
            f"({self.frames_sent / (self.play_s or self.elapsed):.1f}/s)",
            f"frames delivered: {total} ({total / self.elapsed:.0f}/s in all, "
            f"{min(self.delivered)}..{max(self.delivered)} per client)",
            f"delay send -> receipt: p50 {p50:.1f} ms, p99 {percentile(delays, 0.99):.1f} ms, "
            f"max {delays[-1]:.1f} ms",
            f"sequence: {self.gaps} gaps, {self.repeats} repeats (each client: one snapshot, "
            f"then every delta once)",
        ]
        if self.wire_bytes:
            lines.append(self.bytes_line())
        if self.late_joiners:
            waits = sorted(self.late_snapshot_ms)
            lines.append(
                f"late joiners: {self.late_joiners} connected while the room played (snapshot "
                f"p50 {statistics.median(waits):.0f} ms, max {waits[-1]:.0f} ms); "
                f"{self.late_faulty} saw a gap or a repeat ({self.late_gaps} gaps, "
                f"{self.late_repeats} repeats)"
            )
        if self.cpu:
            lines.append(
                "CPU during the run (100% = one core): "
                + ", ".join(f"{name} {share:.0f}%" for name, share in self.cpu.items())
            )
        return "\n".join(lines) + "\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0 when unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


class CpuMeter:
    """CPU shares of this process and of the set-up's processes between start and stop."""

    def __init__(self, lab: Lab | None) -> None:
        self.pids = {"clients (this process)": os.getpid()}
        if lab is not None:
            self.pids.update({name: p.pid for name, p, _ in lab.processes})
        self.before: dict[str, float] = {}
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        wall = max(1e-9, time.monotonic() - self.started)
        return {
            name: 100 * (cpu_seconds(pid) - self.before[name]) / wall
            for name, pid in self.pids.items()
        }


async def run_bench(
    urls: list[str],
    room: str,
    cookie: str,
    clients: int,
    seconds: float,
    speed: str = "1",
    *,
    concurrency: int = 25,
    late_joiners: int = 0,
    meter: CpuMeter | None = None,
    deflate: bool = True,
    beats: str = "1",
    min_frames: int = 0,
) -> Result:
    """Connect the presenter (``cookie``) and ``clients`` attendees, spread over ``urls``; press
    play (at ``speed``, or with event pacing at ``beats`` moments a second for "beat"); read
    for ``seconds``, or until the room has sent nothing for QUIET_S (its run ended).
    ``late_joiners`` more attendees connect while the room plays (spread over the first half
    of the run): they check the join, not the delays. With ``min_frames``, each attendee
    connected from the start reads on past ``seconds`` until it has that many frames (for at
    most MAX_WAIT_S more): a test counts frames, whatever the machine's load, not seconds."""
    path = f"/ws/rooms/{room}/"
    gate = asyncio.Semaphore(max(1, concurrency))

    async def join(base: str) -> Viewer:
        async with gate:
            viewer = Viewer(await Client.connect(base, path, deflate=deflate), base)
            snapshot = await viewer.client.receive()
        match = SEQ.match(snapshot)
        if not match or match.group(2) != b"full":
            said = re.sub(rb"<[^>]+>", b"", snapshot[:300]).decode(errors="replace").strip()
            raise CommandError(f"the first frame from {base} is not a full snapshot: {said!r}")
        viewer.snapshot_seq = int(match.group(1))
        return viewer

    started = time.monotonic()
    presenter = await Client.connect(urls[0], path, cookie=cookie, deflate=deflate)
    await presenter.receive()  # its snapshot
    viewers = await asyncio.gather(*(join(urls[i % len(urls)]) for i in range(clients)))
    connect_s = time.monotonic() - started
    delays: list[float] = []
    stop_at = 0.0

    async def read(viewer: Viewer, timed: bool = True) -> None:
        client = viewer.client
        wire, payload = client.wire_bytes, client.payload_bytes  # the snapshot's, left out
        viewer.last_at = time.monotonic()
        while True:
            left = stop_at - time.monotonic()
            if left <= 0:
                if not timed or len(viewer.seqs) >= min_frames or left <= -MAX_WAIT_S:
                    return
                left = MAX_WAIT_S + left
            try:
                message = await asyncio.wait_for(client.receive(), min(left, QUIET_S))
            except TimeoutError:
                quiet = time.monotonic() - viewer.last_at >= QUIET_S
                if viewer.seqs and quiet and (not timed or len(viewer.seqs) >= min_frames):
                    return  # the run is over (or paused): nothing more to measure
                continue
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            match = SEQ.match(message)
            if match and match.group(2) == b"delta":
                if timed:
                    delays.append(time.time() * 1000 - int(match.group(3)))
                viewer.seqs.append(int(match.group(1)))
                viewer.last_at = time.monotonic()
                viewer.wire_bytes = client.wire_bytes - wire
                viewer.payload_bytes = client.payload_bytes - payload

    async def drain(client: Client) -> None:
        try:
            async with asyncio.timeout(max(0.0, stop_at - time.monotonic())):
                while True:
                    message = await client.receive()
                    if message.startswith(b'<div id="ws-error"'):
                        raise CommandError(f"the presenter's control was refused: {message!r}")
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return

    late: list[Viewer] = []
    late_waits: list[float] = []

    async def join_late(index: int) -> None:
        await asyncio.sleep(seconds / 2 * index / max(1, late_joiners))
        asked = time.monotonic()
        viewer = await join(urls[index % len(urls)])
        late_waits.append((time.monotonic() - asked) * 1000)
        late.append(viewer)
        await read(viewer, timed=False)

    pressed: dict[str, str] = {"action": "speed", "speed": speed}
    if speed == BEAT:
        pressed["beats"] = beats
    await presenter.send(json.dumps(pressed))
    await presenter.send(json.dumps({"action": "play"}))
    if meter is not None:
        meter.start()
    begun = time.monotonic()
    stop_at = begun + seconds
    draining = asyncio.ensure_future(drain(presenter))
    await asyncio.gather(
        *(read(v) for v in viewers),
        *(join_late(i) for i in range(late_joiners)),
    )
    draining.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await draining
    elapsed = time.monotonic() - begun
    last = max(v.last_at for v in viewers)
    # A run that ended early is measured up to its last frame, not over the silence after it.
    play_s = (
        max(1e-3, min(elapsed, last - begun)) if elapsed - (last - begun) >= QUIET_S else elapsed
    )
    cpu = meter.stop() if meter is not None else {}
    for client in (presenter, *(v.client for v in viewers), *(v.client for v in late)):
        client.close()
    if not delays:
        raise CommandError("no frame arrived")
    gaps = repeats = 0
    for viewer in viewers:
        g, r = sequence_faults(viewer.seqs, viewer.snapshot_seq)
        gaps, repeats = gaps + g, repeats + r
    late_gaps = late_repeats = late_faulty = 0
    for viewer in late:
        g, r = sequence_faults(viewer.seqs, viewer.snapshot_seq)
        late_gaps, late_repeats = late_gaps + g, late_repeats + r
        late_faulty += 1 if g or r else 0
    return Result(
        clients=clients,
        urls=urls,
        speed=speed,
        elapsed=elapsed,
        connect_s=connect_s,
        frames_sent=len({s for v in viewers for s in v.seqs}),
        delivered=[len(v.seqs) for v in viewers],
        delays=delays,
        gaps=gaps,
        repeats=repeats,
        cpu=cpu if len(cpu) > 1 else {},
        late_joiners=len(late),
        late_faulty=late_faulty,
        late_gaps=late_gaps,
        late_repeats=late_repeats,
        late_snapshot_ms=late_waits,
        play_s=play_s,
        wire_bytes=[v.wire_bytes for v in viewers],
        payload_bytes=[v.payload_bytes for v in viewers],
        deflate=all(v.client.inflater is not None for v in viewers),
    )


class Command(BaseCommand):
    help = (
        "Connect N attendee WebSocket clients to one room a presenter plays; print frames/s, "
        "p50/p99 delays and sequence checks (embedded, scale-out, or a running lab)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=200, help="attendees (default 200)")
        parser.add_argument("--seconds", type=float, default=10.0)
        parser.add_argument(
            "--speed",
            default="1",
            help="playback speed (default 1), or 'beat' (event pacing, --beats moments a "
            "second); several, comma-separated (1,16,beat), make one run each",
        )
        parser.add_argument("--beats", default="1", choices=("0.5", "1", "2"))
        parser.add_argument(
            "--scenario",
            action="append",
            default=[],
            help="play this built-in scenario (opened from the home page, like a presenter) "
            "instead of the benchmark's stream; 'all' for every built-in; repeatable. Each "
            "run lasts --seconds or until the scenario ends",
        )
        parser.add_argument(
            "--no-deflate",
            action="store_true",
            help="clients do not offer per-message deflate (browsers do), to compare",
        )
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
            action="append",
            default=[],
            help="a running lab, e.g. http://127.0.0.1:8000; repeat it to spread the clients "
            "over several web processes (the room is opened on the first)",
        )
        parser.add_argument(
            "--setup",
            choices=("embedded", "scaleout"),
            default="",
            help="without --url, start this set-up: embedded (one Daphne running the rooms, "
            "the default) or scaleout (Redis + labworker + --webs Daphne processes)",
        )
        parser.add_argument("--webs", type=int, default=2, help="Daphne processes for scaleout")
        parser.add_argument(
            "--connect-concurrency",
            type=int,
            default=25,
            help="WebSocket handshakes in flight at once while connecting (default 25)",
        )
        parser.add_argument(
            "--late-joiners",
            type=int,
            default=0,
            help="attendees who connect while the room plays (spread over the first half of "
            "the run); each must get its snapshot, then every later frame once",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        backlog = options["backlog"]
        if not 0 <= backlog <= 150_000:
            raise CommandError("--backlog must be between 0 and 150000 (the run's record limit)")
        if options["clients"] < 1 or options["seconds"] <= 0:
            raise CommandError("--clients must be at least 1 and --seconds above 0")
        speeds = [s.strip() for s in options["speed"].split(",") if s.strip()]
        bad = [s for s in speeds if s not in SPEEDS and s != BEAT]
        if bad or not speeds:
            raise CommandError(
                f"--speed: {', '.join(bad) or 'none'}; one of {', '.join(SPEEDS)}, beat"
            )
        scenarios = scenario_names(options["scenario"])
        if scenarios and backlog:
            raise CommandError("--backlog goes with the benchmark's own stream, not --scenario")
        urls = [u.rstrip("/") for u in options["url"]]
        if urls and options["setup"]:
            raise CommandError("--setup starts a lab; --url uses a running one: not both")
        lab = None
        if not urls:
            scaleout = options["setup"] == "scaleout"
            if options["webs"] < 1:
                raise CommandError("--webs must be at least 1")
            lab = Lab(
                webs=options["webs"] if scaleout else 1,
                redis=scaleout,
                debug=False,
                env=BENCH_ENV if len(scenarios) * len(speeds) > 1 else {},
            )
            try:
                lab.start()
            except LabError as exc:
                lab.cleanup()
                raise CommandError(str(exc)) from None
            urls = lab.urls
        runs = [(name, speed) for name in scenarios or [""] for speed in speeds]
        results: list[tuple[str, Result]] = []
        try:
            for name, speed in runs:
                if name:
                    room, cookie = open_room(urls[0], builtin=name)
                else:
                    room, cookie = open_room(urls[0], bench_scenario(backlog))
                result = asyncio.run(
                    run_bench(
                        urls,
                        room,
                        cookie,
                        options["clients"],
                        options["seconds"],
                        speed,
                        concurrency=options["connect_concurrency"],
                        late_joiners=options["late_joiners"],
                        meter=CpuMeter(lab),
                        deflate=not options["no_deflate"],
                        beats=options["beats"],
                    )
                )
                results.append((name or "fan-out benchmark", result))
                if len(runs) > 1:
                    self.stdout.write(
                        f"{name or 'fan-out benchmark'} at {speed}: {result.bytes_line()}"
                    )
            many = len(runs) > 1
            text = bytes_table(results, options["beats"]) if many else results[0][1].text()
            if backlog:
                text += asyncio.run(self._late_joiner(urls[-1], room, backlog))
        finally:
            if lab is not None:
                lab.cleanup()
        self.stdout.write(text)

    async def _late_joiner(self, base: str, room: str, backlog: int) -> str:
        """After the stream: what a browser that arrives now waits for."""
        started = time.monotonic()
        client = await Client.connect(base, f"/ws/rooms/{room}/")
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

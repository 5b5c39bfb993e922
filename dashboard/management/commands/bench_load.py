"""``manage.py bench_load --rooms 20 --viewers 15``: many rooms at once on one lab.

Where ``bench_fanout`` measures one room and many browsers, this measures how the rooms share
the server: it opens ``--rooms`` rooms like presenters would (each browser session uploads the
benchmark scenario), connects each room's presenter and ``--viewers`` attendees, presses play
at ``--speed`` in every room, and for ``--seconds``:

- times every delta frame each attendee gets (``data-sent`` on ``#frame-seq`` to receipt);
- presses pause, then play, in each playing room every ``--press-every`` seconds and times each
  press until its presenter sees the new state (``run-state`` in the header);
- GETs a room page over HTTP again and again, one request at a time, and times each.

It prints frames/s per playing room, frame delay p50/p99, press latency p50/p99, HTTP latency
p50/p99, how many rooms the lab refused to play (and what it said), and the server's RSS and
CPU. ``--max-playing N`` starts the lab with ``LAB_MAX_PLAYING_ROOMS=N`` and
``--loop-budget-ms N`` with ``LAB_LOOP_BUDGET_MS=N`` (0: the lab's defaults).
Clients run in this process and share the machine's cores with the server.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from dashboard.management.commands.bench_fanout import (
    SEQ,
    Client,
    CpuMeter,
    bench_scenario,
    open_room,
    percentile,
)
from dashboard.management.commands.scaleout import Lab, LabError

ERROR = b'<div id="ws-error"'
PLAYING = b'class="run-state is-playing"'
PAUSED = b'class="run-state "'
# The started lab lets one address open every room of the benchmark.
LAB_ENV = {
    "LAB_RATE_ROOM_CREATE": "10000/60",
    "LAB_MAX_ROOMS_PER_CLIENT": "1000",
    "LAB_MAX_ROOMS": "1000",
    "LAB_RATE_CONTROL": "1000/1",
}


@dataclass
class RoomRun:
    room: str
    presenter: Client
    attendees: list[Client]
    refusal: str = ""
    seqs: set[int] = field(default_factory=set)


@dataclass
class Figures:
    rooms: int
    viewers: int
    speed: str
    elapsed: float = 0.0
    frames_per_s: list[float] = field(default_factory=list)  # one per playing room
    delays: list[float] = field(default_factory=list)
    presses: list[float] = field(default_factory=list)
    http: list[float] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    rss_mb: tuple[float, float] | None = None
    cpu: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        def spread(values: list[float], unit: str) -> str:
            if not values:
                return "none"
            ordered = sorted(values)
            return (
                f"p50 {statistics.median(ordered):.0f} {unit}, p99 "
                f"{percentile(ordered, 0.99):.0f} {unit}, max {ordered[-1]:.0f} {unit} "
                f"({len(ordered)})"
            )

        playing = len(self.frames_per_s)
        lines = [
            f"rooms: {self.rooms} x {self.viewers} attendees (+1 presenter each), speed "
            f"{self.speed}x, {self.elapsed:.1f} s",
            f"playing: {playing} rooms; refused play: {len(self.refusals)}",
        ]
        if self.refusals:
            lines.append(f"  the lab said: {self.refusals[0]}")
        if playing:
            rates = sorted(self.frames_per_s)
            lines.append(
                f"frames/s per playing room: min {rates[0]:.1f}, median "
                f"{statistics.median(rates):.1f}, max {rates[-1]:.1f}"
            )
        lines += [
            f"frame delay send -> receipt: {spread(self.delays, 'ms')}",
            f"control press -> seen by its presenter: {spread(self.presses, 'ms')}",
            f"HTTP GET of a room page under load: {spread(self.http, 'ms')}",
        ]
        if self.rss_mb is not None:
            before, after = self.rss_mb
            lines.append(f"server RSS: {before:.0f} MB before, {after:.0f} MB after")
        if self.cpu:
            lines.append(
                "CPU (100% = one core): "
                + ", ".join(f"{name} {share:.0f}%" for name, share in self.cpu.items())
            )
        return "\n".join(lines) + "\n"


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def http_get_ms(url: str) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(url, timeout=60) as response:
        response.read()
    return (time.monotonic() - started) * 1000


async def open_rooms(base: str, rooms: int, viewers: int) -> list[RoomRun]:
    runs = []
    for _ in range(rooms):
        room, cookie = await asyncio.to_thread(open_room, base, bench_scenario(0))
        path = f"/ws/rooms/{room}/"
        presenter = await Client.connect(base, path, cookie=cookie)
        await presenter.receive()  # the snapshot
        attendees = []
        for _ in range(viewers):
            attendee = await Client.connect(base, path)
            await attendee.receive()
            attendees.append(attendee)
        runs.append(RoomRun(room, presenter, attendees))
    return runs


async def drive(
    runs: list[RoomRun], base: str, seconds: float, speed: str, press_every: float
) -> Figures:
    figures = Figures(rooms=len(runs), viewers=len(runs[0].attendees), speed=speed)
    stop_at = 0.0

    async def attend(run: RoomRun, client: Client) -> None:
        while (left := stop_at - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(client.receive(), left)
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                return
            match = SEQ.match(message)
            if match and match.group(2) == b"delta":
                figures.delays.append(time.time() * 1000 - int(match.group(3)))
                run.seqs.add(int(match.group(1)))

    async def present(run: RoomRun) -> None:
        """Read the presenter's frames; press pause then play every ``press_every`` s."""
        want: bytes | None = None
        pressed = 0.0
        next_press = time.monotonic() + press_every * (0.5 + len(run.seqs) % 7 / 14)
        while (left := stop_at - time.monotonic()) > 0:
            if want is None and not run.refusal and time.monotonic() >= next_press:
                want, pressed = PAUSED, time.monotonic()
                await run.presenter.send(json.dumps({"action": "pause"}))
            try:
                timeout = min(left, 0.05 if want is None else left)
                message = await asyncio.wait_for(run.presenter.receive(), timeout)
            except TimeoutError:
                continue
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            if message.startswith(ERROR):
                run.refusal = run.refusal or _text(message)
                want = None
            elif want is not None and want in message:
                figures.presses.append((time.monotonic() - pressed) * 1000)
                if want == PAUSED:
                    want, pressed = PLAYING, time.monotonic()
                    await run.presenter.send(json.dumps({"action": "play"}))
                else:
                    want, next_press = None, time.monotonic() + press_every

    async def browse() -> None:
        url = f"{base}/rooms/{runs[0].room}/"
        while time.monotonic() < stop_at:
            figures.http.append(await asyncio.to_thread(http_get_ms, url))

    for run in runs:
        await run.presenter.send(json.dumps({"action": "speed", "speed": speed}))
        await run.presenter.send(json.dumps({"action": "play"}))
    begun = time.monotonic()
    stop_at = begun + seconds
    await asyncio.gather(
        browse(),
        *(present(run) for run in runs),
        *(attend(run, client) for run in runs for client in run.attendees),
    )
    figures.elapsed = time.monotonic() - begun
    for run in runs:
        if run.refusal:
            figures.refusals.append(run.refusal)
        else:
            figures.frames_per_s.append(len(run.seqs) / figures.elapsed)
    return figures


def _text(frame: bytes) -> str:
    text = frame.split(b">", 1)[-1].rsplit(b"<", 1)[0].decode(errors="replace")
    return text.replace("&#x27;", "'").replace("&quot;", '"').replace("&amp;", "&")


class Command(BaseCommand):
    help = (
        "Open N rooms with M attendees each, play them all, and print frames/s per room, "
        "frame delay and control-press p50/p99, HTTP p99 under load, refusals, RSS and CPU."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--rooms", type=int, default=20)
        parser.add_argument("--viewers", type=int, default=15, help="attendees per room")
        parser.add_argument("--seconds", type=float, default=15.0)
        parser.add_argument("--speed", default="1")
        parser.add_argument("--press-every", type=float, default=5.0)
        parser.add_argument(
            "--max-playing",
            type=int,
            default=0,
            help="LAB_MAX_PLAYING_ROOMS for the lab this starts (default: the lab's own)",
        )
        parser.add_argument(
            "--loop-budget-ms",
            type=int,
            default=0,
            help="LAB_LOOP_BUDGET_MS for the lab this starts (default: the lab's own; a large "
            "value such as 100000 turns the shared budget off, for comparison)",
        )
        parser.add_argument("--url", default="", help="a running lab instead of starting one")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["rooms"] < 1 or options["viewers"] < 1 or options["seconds"] <= 0:
            raise CommandError("--rooms and --viewers must be at least 1, --seconds above 0")
        lab = None
        base = options["url"].rstrip("/")
        if not base:
            env = dict(LAB_ENV)
            if options["max_playing"] > 0:
                env["LAB_MAX_PLAYING_ROOMS"] = str(options["max_playing"])
            if options["loop_budget_ms"] > 0:
                env["LAB_LOOP_BUDGET_MS"] = str(options["loop_budget_ms"])
            lab = Lab(webs=1, redis=False, debug=False, env=env)
            try:
                lab.start()
            except LabError as exc:
                lab.cleanup()
                raise CommandError(str(exc)) from None
            base = lab.urls[0]
        try:
            figures = asyncio.run(self._run(base, lab, options))
        finally:
            if lab is not None:
                lab.cleanup()
        self.stdout.write(figures.text())

    async def _run(self, base: str, lab: Lab | None, options: dict[str, Any]) -> Figures:
        pid = next((p.pid for name, p, _ in lab.processes if name == "daphne-A"), 0) if lab else 0
        before = rss_mb(pid) if pid else float("nan")
        runs = await open_rooms(base, options["rooms"], options["viewers"])
        meter = CpuMeter(lab)
        meter.start()
        try:
            figures = await drive(
                runs, base, options["seconds"], options["speed"], options["press_every"]
            )
        finally:
            for run in runs:
                for client in (run.presenter, *run.attendees):
                    client.close()
        cpu = meter.stop()
        figures.cpu = cpu if len(cpu) > 1 else {}
        if pid:
            figures.rss_mb = (before, rss_mb(pid))
        return figures

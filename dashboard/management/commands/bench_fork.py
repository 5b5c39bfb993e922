"""``manage.py bench_fork --backlog 100000``: what "Try it yourself" costs on a big room.

Builds a room whose partition holds ``--backlog`` records (the fan-out benchmark's scenario),
steps it ``--steps`` engine steps, then copies it the two ways the lab has known:

- **on the loop** (as before): a deep copy of the live engine, timed; the event loop is frozen
  for all of it;
- **off the loop** (``forking.copy_timeline``): the history copied on the loop (timed), the
  engine rebuilt in a worker thread from the nearest checkpoint, while a probe on the loop
  measures how late a 10 ms timer fires.

It prints the times, the probe's worst lateness, and the process's RSS before and after.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from broker.scenario import load_text
from dashboard.live import forking
from dashboard.live.runtime import Room, registry
from dashboard.live.timeline import Timeline
from dashboard.management.commands.bench_fanout import bench_scenario
from dashboard.management.commands.bench_load import rss_mb


async def probe_while(work: Any) -> tuple[Any, float, float]:
    """Run the coroutine ``work`` while timing a 10 ms timer: (result, seconds, worst delay)."""
    worst = 0.0
    running = True

    async def probe() -> None:
        nonlocal worst
        while running:
            asked = time.monotonic()
            await asyncio.sleep(0.01)
            worst = max(worst, time.monotonic() - asked - 0.01)

    prober = asyncio.ensure_future(probe())
    await asyncio.sleep(0.02)
    started = time.monotonic()
    result = await work
    took = time.monotonic() - started
    running = False
    await prober
    return result, took, worst


class Command(BaseCommand):
    help = "Time a copy of a big room on the event loop and off it; print the loop's stalls."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--backlog", type=int, default=100_000, help="records at once")
        parser.add_argument("--steps", type=int, default=2000, help="engine steps run first")

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["backlog"] <= 150_000 or options["steps"] < 1:
            raise CommandError("--backlog must be 0 to 150000 and --steps at least 1")
        self.stdout.write(asyncio.run(self._run(options["backlog"], options["steps"])))

    async def _run(self, backlog: int, steps: int) -> str:
        pid = os.getpid()
        timeline = Timeline(load_text(bench_scenario(backlog), "bench-fork"))
        started = time.monotonic()
        while timeline.steps < steps and timeline.step_engine():
            pass
        built = time.monotonic() - started
        room = registry.add(Room("bench-fork", timeline.spec, timeline=timeline))
        before = rss_mb(pid)

        async def on_loop() -> Timeline:
            return room.timeline.fork()

        _, on_loop_s, on_loop_worst = await probe_while(on_loop())
        planned = time.perf_counter()
        room.timeline.fork(engine=False)
        plan_ms = (time.perf_counter() - planned) * 1000
        (copy, _clock), off_s, off_worst = await probe_while(
            forking.copy_timeline(room, limit=False)
        )
        same = copy.sim.snapshot() == room.timeline.sim.snapshot()
        after = rss_mb(pid)
        registry.drop(room.id)
        return (
            f"room: {backlog:,} records at once, {timeline.steps:,} engine steps (built in "
            f"{built:.1f} s), checkpoints at steps {sorted(timeline._checkpoints)[-3:]}\n"
            f"copy on the loop: {on_loop_s * 1000:.0f} ms, the loop stalled "
            f"{on_loop_worst * 1000:.0f} ms\n"
            f"copy off the loop: {plan_ms:.2f} ms on the loop, {off_s * 1000:.0f} ms in all; "
            f"the loop stalled at most {off_worst * 1000:.0f} ms; same state: {same}\n"
            f"RSS: {before:.0f} MB before the copies, {after:.0f} MB after (holding the copy "
            f"made off the loop)\n"
        )

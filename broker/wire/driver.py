"""The room's clock follows wall time while external clients talk to it.

The engine stays a discrete-event simulation: nothing in it reads a clock.  The
driver maps the asyncio loop's monotonic time onto the virtual clock
(``virtual = base + elapsed``), runs every action due by now, and sets one
asyncio timer for the next due action.  Whoever changes the engine from outside
(a frame arriving) calls ``pump()`` afterwards, so answers go out at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

MAX_EVENTS_PER_PUMP = 200_000  # a pump yields to the loop after this many actions

log = logging.getLogger("broker.wire")


class Clock(Protocol):
    """What the driver steps: the engine's ``Scheduler``, or a room's timeline in front of it
    (``dashboard.live.wire``), which counts the steps for its scrubber."""

    now_ms: int

    def next_due_ms(self) -> int | None: ...

    def step(self) -> bool: ...


class Driver:
    def __init__(
        self,
        scheduler: Clock,
        loop: asyncio.AbstractEventLoop,
        after_pump: Callable[[], None] | None = None,
    ) -> None:
        self.scheduler = scheduler
        self.loop = loop
        self.after_pump = after_pump
        self._base_virtual = scheduler.now_ms
        self._base_loop = loop.time()
        # Record timestamps: the wall clock (ms since the epoch) at virtual time 0.
        self.epoch_ms = int(time.time() * 1000) - scheduler.now_ms
        self._timer: asyncio.TimerHandle | None = None
        self._pumping = False
        self.running = True

    def virtual_now(self) -> int:
        return self._base_virtual + int((self.loop.time() - self._base_loop) * 1000)

    def wall_ms(self, virtual_ms: int) -> int:
        return self.epoch_ms + virtual_ms

    def pump(self) -> None:
        """Run everything due by now, then sleep until the next due action."""
        if self._pumping or not self.running:
            return
        self._pumping = True
        try:
            now = self.virtual_now()
            scheduler = self.scheduler
            ran = 0
            while ran < MAX_EVENTS_PER_PUMP:
                due = scheduler.next_due_ms()
                if due is None or due > now:
                    break
                try:
                    scheduler.step()
                except Exception:  # an engine bug: logged, and the room goes on
                    log.exception("an engine action failed at %d ms", scheduler.now_ms)
                ran += 1
            if ran < MAX_EVENTS_PER_PUMP:
                scheduler.now_ms = max(scheduler.now_ms, now)
            if self.after_pump is not None:
                self.after_pump()
        finally:
            self._pumping = False
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.running:
            return
        due = self.scheduler.next_due_ms()
        if due is None:
            return
        delay_s = max(0.0, (due - self.virtual_now()) / 1000)
        self._timer = self.loop.call_later(delay_s, self.pump)

    def pause(self) -> None:
        """Stop answering: nothing runs until ``resume`` (the room's pause button)."""
        self.stop()

    def resume(self) -> None:
        """Go on from where the clock stopped: the pause is not made up for."""
        if self.running:
            return
        self._base_virtual = self.scheduler.now_ms
        self._base_loop = self.loop.time()
        self.running = True
        self.pump()

    def stop(self) -> None:
        self.running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

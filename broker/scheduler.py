"""Deterministic discrete-event core: a virtual clock and a heap of actions.

Every action runs at a virtual time in milliseconds.  Ties are broken first by
priority, then by the order in which actions were scheduled, so the same
inputs always run in the same order.  All randomness comes from named
sub-streams of one seed; a sub-stream is derived from a string, which
``random.Random`` hashes with SHA-512, so it does not depend on
``PYTHONHASHSEED``.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Lower runs first among actions due at the same millisecond.
PRIORITY_COMMAND = 0  # scripted steps and buttons pressed
PRIORITY_NETWORK = 1  # a message arriving
PRIORITY_TIMER = 2  # timeouts, lingers, periodic checks


@dataclass(slots=True)
class Timer:
    """A handle on a scheduled action; ``cancel()`` makes it a no-op."""

    due_ms: int
    action: Callable[..., Any] | None
    args: tuple[Any, ...] = field(default=())

    def cancel(self) -> None:
        self.action = None
        self.args = ()

    @property
    def cancelled(self) -> bool:
        return self.action is None


class Scheduler:
    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.now_ms = 0
        self._heap: list[tuple[int, int, int, Timer]] = []
        self._counter = 0
        self._streams: dict[str, random.Random] = {}
        self.executed = 0

    def clock(self) -> int:
        """The current virtual time (a bound method, so copies follow their own clock)."""
        return self.now_ms

    def rng(self, name: str) -> random.Random:
        """The random sub-stream ``name`` (created on first use)."""
        stream = self._streams.get(name)
        if stream is None:
            stream = random.Random(f"delivery-lab/{self.seed}/{name}")
            self._streams[name] = stream
        return stream

    def at(
        self, due_ms: int, action: Callable[..., Any], *args: Any, priority: int = PRIORITY_TIMER
    ) -> Timer:
        if due_ms < self.now_ms:
            raise ValueError(f"cannot schedule in the past: {due_ms} < {self.now_ms}")
        timer = Timer(due_ms, action, args)
        self._counter += 1
        heapq.heappush(self._heap, (due_ms, priority, self._counter, timer))
        return timer

    def after(
        self, delay_ms: int, action: Callable[..., Any], *args: Any, priority: int = PRIORITY_TIMER
    ) -> Timer:
        return self.at(self.now_ms + max(0, delay_ms), action, *args, priority=priority)

    def next_due_ms(self) -> int | None:
        """When the next live action is due, or None when nothing is left."""
        heap = self._heap
        while heap and heap[0][3].action is None:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def step(self) -> bool:
        """Run the next live action.  False when nothing is scheduled."""
        heap = self._heap
        while heap:
            due_ms, _prio, _n, timer = heapq.heappop(heap)
            action = timer.action
            if action is None:
                continue
            self.now_ms = due_ms
            timer.action = None
            self.executed += 1
            action(*timer.args)
            return True
        return False

    def run_until(self, until_ms: int) -> None:
        """Run every action due at or before ``until_ms``; the clock ends there."""
        while True:
            due = self.next_due_ms()
            if due is None or due > until_ms:
                break
            self.step()
        self.now_ms = max(self.now_ms, until_ms)

    def pending(self) -> int:
        return sum(1 for entry in self._heap if entry[3].action is not None)

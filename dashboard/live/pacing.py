"""Sharing one event loop between many rooms: a CPU budget per tick, a cap on playing rooms,
pausing rooms nobody watches, and stopping promptly.

Every room has its own pacing task (runtime.Room._run), and every tick of a playing room costs
real CPU on the event loop (engine steps, then building and rendering its frame: some 10 to
20 ms on a 2-core machine). Left alone, 20 playing rooms want several seconds of work a second
from one loop: frames come late for everyone, HTTP requests wait for seconds and a SIGTERM
waits behind them. So:

- **Turns** (``turns``): every tick takes a turn. Per tick period (``LAB_TICK_MS``) the rooms
  together may spend ``LAB_LOOP_BUDGET_MS`` of the loop's time; once that is spent, the rooms
  wait in line (first come, first served) for the next period, each woken by the one before it
  so that the loop polls its sockets between two rooms. The rest of the period answers HTTP
  and WebSockets, however many rooms play. An overloaded loop shows as fewer frames a second
  for every playing room, evenly, never as a frozen server.
- **A cap on playing rooms** (``playing_refusal``): at most ``LAB_MAX_PLAYING_ROOMS`` rooms play
  at once per process, and detached views and sandboxes at most ``LAB_MAX_PLAYING_PRIVATE`` of
  them, so attendees' private copies can never take the last slots from a workshop room. A
  "play" over the cap is refused at once with a message saying so; it is not queued, because a
  run that starts by itself minutes later surprises a presenter more than a clear "not now".
  Stepping, seeking and going back still work: they cost one bounded tick per press.
- **Unwatched rooms pause** after ``LAB_PAUSE_UNWATCHED_S`` without a viewer, keeping their
  position (``Room.pause_if_unwatched``; in the scale-out worker, ``worker.check_watched``).
- **Stopping** (``shutdown``): on SIGTERM the rooms stop taking turns, their tasks are
  cancelled and their runs saved (for at most ``SHUTDOWN_SAVE_S``); work running in threads
  (forks, replays) checks ``stopping`` and gives up, so the process exits within seconds.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

SHUTDOWN_SAVE_S = 3.0
# Defaults of the settings of the same names (settings.py reads them from the environment).
MAX_PLAYING_ROOMS = 4
LOOP_BUDGET_MS = 30
PAUSE_UNWATCHED_S = 60.0

# Set once the process is stopping: threads doing long work (forks, replays) give up.
stopping = threading.Event()
# Set by the scale-out worker once it tracks which rooms other processes watch.
remote_watching = False


def setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


class Stopping(Exception):
    """The process is shutting down: long work in a thread gave up."""


def check_stopping() -> None:
    if stopping.is_set():
        raise Stopping("The lab is shutting down; try again when it is back.")


# -- turns ---------------------------------------------------------------------------------------
class Turns:
    """A CPU budget per tick period, shared by every room of this process (see the docstring).

    ``await turns.take()`` before a tick's work, ``turns.spent(seconds)`` after it. Not a lock:
    a tick never awaits while it works, so two never overlap; the budget only decides when
    each may start.
    """

    def __init__(self) -> None:
        self._period_end = 0.0
        self._spent = 0.0
        self._queue: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @staticmethod
    def period_s() -> float:
        return float(setting("LAB_TICK_MS", 50)) / 1000

    @staticmethod
    def budget_s() -> float:
        return float(setting("LAB_LOOP_BUDGET_MS", LOOP_BUDGET_MS)) / 1000

    def left_s(self) -> float:
        """What is left of this period's budget (0 when spent)."""
        self._roll(time.monotonic())
        return max(0.0, self.budget_s() - self._spent)

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._queue if not f.done())

    def _roll(self, now: float) -> None:
        if now >= self._period_end:
            period = self.period_s()
            self._period_end = (now // period + 1) * period
            self._spent = 0.0

    async def take(self) -> None:
        """Wait until this room may tick: budget is left and nobody queued before it."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new loop (tests): forget the old one's waiters
            self._loop, self._queue, self._timer = loop, deque(), None
        self._roll(time.monotonic())
        if not self.waiting and self._spent < self.budget_s():
            return
        future: asyncio.Future[None] = loop.create_future()
        self._queue.append(future)
        self._arm()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._wake()  # this room was given the turn but is going away: pass it on
            raise

    def spent(self, seconds: float) -> None:
        """A tick's work is done: count it, and let the next room in line go if budget is left."""
        self._roll(time.monotonic())
        self._spent += max(0.0, seconds)
        self._wake()

    def _wake(self) -> None:
        while self._queue and self._queue[0].done():
            self._queue.popleft()
        if not self._queue:
            return
        self._roll(time.monotonic())
        if self._spent < self.budget_s():
            self._queue.popleft().set_result(None)  # one at a time: it wakes the next
        else:
            self._arm()

    def _arm(self) -> None:
        """Wake the line at the end of this period (the loop's clock is time.monotonic)."""
        loop = self._loop
        if loop is None:
            return
        timer = self._timer
        if timer is not None and not timer.cancelled() and timer.when() == self._period_end:
            return
        if timer is not None:
            timer.cancel()
        self._timer = loop.call_at(self._period_end, self._on_period)

    def _on_period(self) -> None:
        self._timer = None
        self._roll(max(time.monotonic(), self._period_end))  # timers may fire a hair early
        self._wake()


turns = Turns()


# -- the cap on playing rooms ----------------------------------------------------------------------
PRIVATE_KINDS = frozenset({"sandbox", "view"})


def max_playing() -> int:
    return max(1, int(setting("LAB_MAX_PLAYING_ROOMS", MAX_PLAYING_ROOMS)))


def max_playing_private() -> int:
    default = max(1, max_playing() // 2)
    return max(1, min(max_playing(), int(setting("LAB_MAX_PLAYING_PRIVATE", default))))


def playing_refusal(room: Any, rooms: Iterable[Any]) -> str:
    """Why ``room`` may not start playing now ("" when it may). ``rooms``: this process's."""
    others = [r for r in rooms if r is not room and r.playing]
    limit = max_playing()
    if len(others) >= limit:
        return (
            f"This run cannot play now: the lab is already playing {len(others)} runs at once "
            f"(LAB_MAX_PLAYING_ROOMS={limit}), the most this server keeps smooth. Pause a run "
            "you are not watching, or step through this one (step and seek still work)."
        )
    if room.kind in PRIVATE_KINDS:
        private = sum(1 for r in others if r.kind in PRIVATE_KINDS)
        cap = max_playing_private()
        if private >= cap:
            return (
                f"Your copy cannot play now: {private} private runs (sandboxes and views) are "
                f"already playing on this server, the most at once (LAB_MAX_PLAYING_PRIVATE="
                f"{cap}), so that the workshop rooms stay smooth. Step through it instead, or "
                "try play again in a minute."
            )
    return ""


def pause_unwatched_s() -> float:
    return float(setting("LAB_PAUSE_UNWATCHED_S", PAUSE_UNWATCHED_S))


# -- stopping ------------------------------------------------------------------------------------
_hooked = False


def hook_shutdown() -> None:
    """Under Daphne (Twisted), stop the rooms before the server shuts down. Called when a
    room's task starts; does nothing elsewhere (tests, the worker: see worker.py)."""
    global _hooked
    if _hooked:
        return
    import sys

    if "twisted.internet.reactor" not in sys.modules:
        return
    from twisted.internet import defer, reactor

    if not getattr(reactor, "running", False):
        return
    _hooked = True

    def before_shutdown() -> Any:
        return defer.Deferred.fromFuture(asyncio.ensure_future(shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", before_shutdown)


async def shutdown(save_s: float = SHUTDOWN_SAVE_S) -> None:
    """Stop every room: no more turns, tasks cancelled, runs saved (bounded by ``save_s``)."""
    from dashboard.live import service
    from dashboard.live.runtime import registry

    stopping.set()
    rooms = list(registry.rooms.values())
    logger.info("stopping %d rooms", len(rooms))
    tasks = [r._task for r in rooms if r._task is not None and not r._task.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks, timeout=1.0)
    started = time.monotonic()
    saves = [asyncio.ensure_future(service.save_now(r)) for r in rooms]
    if saves:
        _done, late = await asyncio.wait(saves, timeout=save_s)
        for future in late:
            future.cancel()
        if late:
            logger.warning("stopping: %d rooms could not save in %.0f s", len(late), save_s)
    logger.info("stopped %d rooms; saving took %.2f s", len(rooms), time.monotonic() - started)

"""Real Kafka clients in a room: Kafka listeners (``broker.wire``) fed by the room's own engine.

One port per simulated broker, on ``LAB_KAFKA_ADDR`` (127.0.0.1 by default); broker-1's port is
the bootstrap address, and Metadata advertises each broker's own port. ``LAB_KAFKA_PORT`` is
broker-1's port (broker-N's is PORT+N-1); 0, the default, takes any free ports, so every room can
listen at once, where a fixed port lets one room at a time.

While real clients are connected to a room, ``broker.wire``'s driver moves the room's clock at
wall-clock speed (1x) through the room's timeline (``Timeline.step_live``, which counts the steps
for the scrubber): their timeouts and linger are real seconds. The room's pacing task only draws
what happened and pauses or resumes the driver with the room: paused, the listeners still accept
connections but nothing is answered. While the listeners are open but no client is connected,
the room paces itself as usual (its speed, event pacing, steps), never ending its run. What
outside clients sent is in no command, so a room that opened its listeners cannot be replayed:
going back, reset and copies are refused (a reset starts the run afresh, without them, once the
listeners are closed).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from broker.wire.control import apply_command
from broker.wire.gateway import Limits
from broker.wire.listener import ListenConfig, RoomListener
from dashboard.live.limits import Busy, LimitError, setting
from dashboard.live.timeline import Timeline
from dashboard.live.wire_actors import Actors

logger = logging.getLogger(__name__)

DOC = "docs/kafka-clients.md"


class WireRefused(LimitError):
    """Listeners this room may not open now; the message says why."""


class TimelineClock:
    """What the driver steps (``broker.wire.driver.Clock``): the room's timeline."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    @property
    def now_ms(self) -> int:
        return self.timeline.sim.scheduler.now_ms

    @now_ms.setter
    def now_ms(self, value: int) -> None:
        self.timeline.sim.scheduler.now_ms = value

    def next_due_ms(self) -> int | None:
        return self.timeline.sim.scheduler.next_due_ms()

    def step(self) -> bool:
        return self.timeline.step_live()


class RoomWire:
    """A room's open listeners."""

    def __init__(self, listener: RoomListener, timeline: Timeline) -> None:
        self.listener = listener
        self.timeline = timeline
        self.actors = Actors()
        if listener.gateway is not None:
            listener.gateway.on_send = self.actors.saw
        self._shown: tuple[int, int] = (-1, -1)  # the steps and connections last drawn
        # The fault buttons pressed on real clients (in no command: shown beside the others).
        self.pressed: deque[dict[str, Any]] = deque(maxlen=6)

    @property
    def bootstrap(self) -> str:
        return self.listener.bootstrap

    def connections(self) -> int:
        gateway = self.listener.gateway
        return 0 if gateway is None else len(gateway.connections)

    def connected(self) -> dict[str, int]:
        """client.id -> its open connections (a client opens one per broker it talks to)."""
        gateway = self.listener.gateway
        counts: dict[str, int] = {}
        for conn in gateway.connections.values() if gateway is not None else ():
            if conn.client_id:
                counts[conn.client_id] = counts.get(conn.client_id, 0) + 1
        return counts

    def clients(self) -> list[dict[str, Any]]:
        """Every client.id seen, with its open connections (what the fault buttons offer)."""
        return self.actors.producers(self.connected())

    def apply_fault(self, command: dict[str, Any], label: str) -> str:
        """A fault button on a real Kafka client (panels/faults.py ``CLIENT_FAULTS``), applied
        now as the headless room applies its commands; what was done. It is in no command of
        the timeline: like what the clients sent, it cannot be replayed. Raises ScenarioError."""
        done = apply_command(self.timeline.sim, command, self.listener.gateway)
        self.pressed.append({"time_ms": self.timeline.sim.now_ms, "label": label})
        if self.listener.driver is not None:
            self.listener.driver.pump()  # a broken connection or an armed rule acts at once
        return str(done)

    def summary(self) -> dict[str, Any]:
        """What the room page shows (panels/workshop_panels.py: kafka_panel)."""
        addr, ports = self.listener.config.addr, self.listener.ports
        connected = self.connected()
        return {
            "bootstrap": self.bootstrap,
            "brokers": [f"{addr}:{ports[b]}" for b in sorted(ports)],
            "clients": sorted(connected),
            "connections": self.connections(),
            "producers": self.actors.producers(connected),
            "limit": self.listener.config.limits.max_connections,
            "pressed": list(self.pressed),
        }

    def advance(self, room: Any, now: float, pace: Callable[[float], bool]) -> bool:
        """The room's tick while it listens. While real clients are connected the driver runs
        the engine at wall time (1x) as long as the room plays; while none is, the room paces
        itself (``pace``: its speed, event pacing, steps). True when there is something new
        to draw."""
        driver = self.listener.driver
        connections = self.connections()
        if connections:
            room.watched_at = now  # clients at work: not an unwatched room to pause
            if room.speed != "1":
                room.speed = "1"  # their timeouts are real seconds
                room._seek_target = None
            if driver is not None:
                if room.playing and not driver.running:
                    driver.resume()
                elif not room.playing and driver.running:
                    driver.pause()
            room.clock_ms = self.timeline.sim.now_ms
            drew = False
        else:
            if driver is not None and driver.running:
                driver.pause()
                room.reanchor(now)  # its own pacing goes on from where the driver left it
            drew = pace(now)
            self.listener.follow_engine()  # a broker the room crashed or restarted
        shown = (self.timeline.steps, connections)
        if shown == self._shown:
            return drew
        self._shown = shown
        room._verdict_dirty = True
        return True

    def close(self) -> None:
        self.listener.close()


def config() -> ListenConfig:
    """Where rooms listen, from the settings (LAB_KAFKA_ADDR, LAB_KAFKA_PORT)."""
    limits = Limits(max_connections=int(setting("LAB_KAFKA_MAX_CONNECTIONS", 64)))
    return ListenConfig(
        addr=str(setting("LAB_KAFKA_ADDR", "127.0.0.1")),
        port=int(setting("LAB_KAFKA_PORT", 0)),
        limits=limits,
    )


def enabled() -> bool:
    return bool(setting("LAB_KAFKA_LISTENERS", True))


def _check(room: Any, listening: list[Any]) -> None:
    if not enabled():
        raise WireRefused(
            "Real Kafka clients are off in this lab (LAB_KAFKA_LISTENERS=0): whoever runs it "
            f"can turn them on ({DOC})."
        )
    if room.kind == "view":
        raise WireRefused(
            "A detached view only replays history: real Kafka clients need a live run. "
            "“Try it yourself” makes a sandbox that can let them in."
        )
    if room.timeline.in_past:
        raise WireRefused(
            "The room is looking at the past: real Kafka clients join the run's present. "
            "Go to the end of the run (the scrubber's right end) first."
        )
    if setting("LAB_KAFKA_PORT", 0) and listening:
        raise WireRefused(
            f"Another room already listens on LAB_KAFKA_PORT={setting('LAB_KAFKA_PORT', 0)}: "
            "with a fixed port only one room at a time can let real Kafka clients in. Close that "
            "room's listeners, or run the lab with LAB_KAFKA_PORT=0 (any free ports per room)."
        )
    most = int(setting("LAB_KAFKA_MAX_ROOMS", 8))
    if len(listening) >= most:
        raise Busy(
            f"{len(listening)} rooms already let real Kafka clients in: that is the lab's "
            f"maximum (LAB_KAFKA_MAX_ROOMS={most}). Try again once one has closed its listeners."
        )


async def open_listeners(room: Any, listening: list[Any]) -> RoomWire:
    """Open ``room``'s listeners (``listening``: the rooms that already have theirs), and
    play it at 1x: the clock follows wall time from now. Raises ``WireRefused`` or ``Busy``."""
    if room.wire is not None:
        return room.wire  # type: ignore[no-any-return]
    _check(room, listening)
    timeline: Timeline = room.timeline
    listener = RoomListener(timeline.sim, config(), clock=TimelineClock(timeline))
    try:
        await listener.start()
    except OSError as exc:
        await listener.stop()
        cfg = listener.config
        raise WireRefused(
            f"Could not listen on {cfg.addr} (LAB_KAFKA_ADDR), port {cfg.port or 'any'} "
            f"(LAB_KAFKA_PORT): {exc.strerror or exc}. Another program may hold the port."
        ) from None
    timeline.outside = True
    timeline.listening = True
    timeline._checkpoints_on = False  # the engine now holds live connections: no deep copies
    timeline.sim.ended = None
    room.wire = RoomWire(listener, timeline)
    room.speed = "1"
    room._seek_target = None
    room._play(time.monotonic())  # the cap on playing rooms may refuse: then it opens paused
    room.poke()
    logger.info("room %s: Kafka listeners open, bootstrap %s", room.id, listener.bootstrap)
    return room.wire  # type: ignore[no-any-return]


async def close_listeners(room: Any) -> None:
    wire, room.wire = room.wire, None
    if wire is not None:
        await wire.listener.stop()
        timeline: Timeline = room.timeline
        timeline.listening = False  # the run may end at its duration again
        room.reanchor(time.monotonic())
        room.poke()
        logger.info("room %s: Kafka listeners closed", room.id)


# What a room refuses while real clients are connected, while it listens (none connected:
# it steps and changes speed as usual), or once it has listened (clients may have sent).
LIVE_REFUSED = {"step", "back", "seek", "reset"}
LISTENING_REFUSED = {"back", "seek", "reset"}
HISTORY_REFUSED = {"back", "seek"}


def control_refusal(room: Any, action: str, speed: str | None) -> str:
    """Why ``room`` refuses this control because of real Kafka clients; "" when it does not."""
    wire = room.wire
    live = action in LIVE_REFUSED or (action == "speed" and speed != "1")
    if live and wire is not None and wire.connections():
        return (
            "Real Kafka clients are connected to this room: while they are, its clock "
            "follows wall time (1x), so it cannot step, change speed, go back or reset: "
            "their requests cannot be replayed. Pause stops answering them."
        )
    if wire is not None and action == "speed" and speed == "end":
        return (
            "This room lets real Kafka clients in: its run has no end to play to while it "
            "listens. Close the listeners first."
        )
    if wire is not None and action in LISTENING_REFUSED:
        return (
            "This room lets real Kafka clients in: what they send cannot be replayed, so it "
            "cannot go back or reset. Close the listeners first to reset it."
        )
    if room.timeline.outside and action in HISTORY_REFUSED:
        return (
            "This run let real Kafka clients in (its listeners were open): whatever they sent "
            "cannot be replayed, so it cannot go back. Reset starts it afresh without them."
        )
    return ""


def fork_refusal(room: Any) -> str:
    if room.timeline.outside:
        return (
            "This run let real Kafka clients in (its listeners are or were open): whatever they "
            "sent cannot be replayed, so it cannot be copied."
        )
    return ""

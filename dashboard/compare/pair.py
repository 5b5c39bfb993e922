"""Two rooms that step together: the runtime side of a compare.

Each pane is an ordinary ``runtime.Room`` (its own engine, frames, viewers and saved run); a
``Pair`` replaces their two pacing tasks with one that ticks both with the same wall-clock
``now`` (``Room.tick_and_send``), so while playing both panes reach the same virtual time at
every tick. A press goes to both:

- play, pause, speed, pause on anomaly, every fault or consumer button and every experiment
  (send more, start a consumer, change a setting) are submitted to both rooms before the same
  tick, so each applies it at the same virtual time;
- step, back and seek move both panes through *shared* virtual time, not each pane's own
  moments (the two runs have different events): step runs both to the next moment of either
  pane, back to just before the latest, and the scrubber of one pane seeks it and takes the
  other to the same virtual time;
- reset restarts both runs with their settings.

A room that paused itself on an anomaly pauses the other. Event pacing (one moment a beat) is
refused: it moves each pane by its own moments, which would pull the clocks apart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any

from broker.scenario import ScenarioError
from dashboard.live import background, pacing, service
from dashboard.live.limits import setting
from dashboard.live.runtime import Control, Room, registry
from dashboard.live.timeline import MAX_STEPS_PER_EVENT, Command, Timeline
from dashboard.panels.common import BEAT
from dashboard.workshops.forms import ControlForm

logger = logging.getLogger(__name__)

SIDES = ("a", "b")
ROOM_ACTIONS = frozenset({"play", "pause", "speed", "fault", "anomaly-pause", "experiment"})


def apply_due(timeline: Timeline) -> None:
    """Apply the commands recorded for the engine's current step now (a pane's settings, at
    step 0): a press made before the next step then follows them instead of replacing them."""
    timeline._apply_due_commands()


def advance_to(timeline: Timeline, target_ms: int) -> None:
    """Run the engine through every action due at or before ``target_ms``."""
    for _ in range(MAX_STEPS_PER_EVENT):
        due = timeline.next_due_ms()
        if due is None:
            timeline.step_engine()  # lets the engine notice that the run is over
            return
        if due > target_ms or not timeline.step_engine():
            return


def seek_time(timeline: Timeline, target_ms: int) -> None:
    """Put the run where it is at virtual time ``target_ms`` (replaying from the start if
    that is earlier than where it is)."""
    if timeline.sim.now_ms > target_ms:
        timeline.seek(0)
    advance_to(timeline, target_ms)
    apply_due(timeline)


class Pair:
    """A compare's two live rooms, ticked together (``rooms[0]`` is pane A)."""

    def __init__(self, compare_id: str, rooms: tuple[Room, Room]) -> None:
        self.id = compare_id
        self.rooms = rooms
        self.settings = tuple(self._settings_of(room) for room in rooms)
        self.pending: deque[tuple[int, Control]] = deque(maxlen=256)
        self._task: asyncio.Task[None] | None = None

    @staticmethod
    def _settings_of(room: Room) -> list[Command]:
        return [
            c
            for c in room.timeline.commands
            if c.step_index == 0 and c.label.startswith("setting: ")
        ]

    async def bind(self) -> None:
        """Take over the rooms' pacing: their own tasks stop, and whatever would start them
        again (a viewer's snapshot, a press) starts the pair's instead."""
        for room in self.rooms:
            await room.stop()
            room.ensure_running = self.ensure_running  # type: ignore[method-assign]
            room.info["compare"] = self.id
            if room.timeline.steps == 0:
                apply_due(room.timeline)

    def bound(self) -> bool:
        return all(registry.get(room.id) is room for room in self.rooms)

    # -- the shared pacing task ------------------------------------------------------------
    def ensure_running(self) -> None:
        if not pacing.stopping.is_set():  # as Room.ensure_running
            self._task = background.ensure(self._task, self._run, f"compare-{self.id}")

    async def _run(self) -> None:
        pacing.hook_shutdown()
        tick_s = setting("LAB_TICK_MS", 50) / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not pacing.stopping.is_set():
            if not self.bound():  # a pane ended, expired or was dropped from memory
                if pairs.get(self.id) is self:
                    del pairs[self.id]
                return
            next_at = max(next_at + tick_s, loop.time())
            now = time.monotonic()
            self.apply_pending()
            for room in self.rooms:
                await room.tick_and_send(now)  # the same now: the same virtual time
            self.keep_together(now)
            if not self.pending and all(room.can_stop() for room in self.rooms):
                return
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def stop(self) -> None:
        task, self._task = self._task, None
        await background.cancel(task)

    # -- presses ---------------------------------------------------------------------------
    def submit(self, side: int, control: Control) -> None:
        self.pending.append((side, control))
        for room in self.rooms:
            room.last_used = room.watched_at = time.monotonic()

    def apply_pending(self) -> None:
        while self.pending:
            side, control = self.pending.popleft()
            try:
                self.apply(side, control)
            except ScenarioError as exc:
                logger.info("compare %s: %s refused: %s", self.id, control, exc)

    def apply(self, side: int, control: Control) -> None:
        action = control.action
        if action in ROOM_ACTIONS:
            for room in self.rooms:
                room.submit(control)  # applied by both at the next tick, with the same now
            return
        timelines = [room.timeline for room in self.rooms]
        if action == "step":
            self._step(timelines)
        elif action == "back":
            latest = max(t.sim.now_ms for t in timelines)
            if latest > 0:
                for timeline in timelines:
                    seek_time(timeline, latest - 1)
        elif action == "seek" and control.position is not None:
            lead = timelines[side]
            lead.seek(max(0, min(control.position, lead.length)))
            apply_due(lead)
            for timeline in timelines:
                if timeline is not lead:
                    seek_time(timeline, lead.sim.now_ms)
        elif action == "reset":
            for room, settings in zip(self.rooms, self.settings, strict=True):
                room.timeline = Timeline(room.spec, room.seed, settings)
                apply_due(room.timeline)
        else:
            return
        self._moved(max(t.sim.now_ms for t in (room.timeline for room in self.rooms)))

    @staticmethod
    def _step(timelines: list[Timeline]) -> None:
        """Both panes to the next moment of either, in shared virtual time."""
        start = [t.position for t in timelines]
        for _ in range(MAX_STEPS_PER_EVENT):
            dues = [d for d in (t.next_due_ms() for t in timelines) if d is not None]
            if not dues:
                for timeline in timelines:
                    timeline.step_engine()  # the engines notice the run is over
                return
            for timeline in timelines:
                advance_to(timeline, min(dues))
            if any(t.position > p for t, p in zip(timelines, start, strict=True)):
                return

    def _moved(self, clock_ms: int) -> None:
        for room in self.rooms:
            room.playing = False
            room.paused_for = None
            room._seek_target = None
            room._anomalies_seen = None
            room.clock_ms = clock_ms
            room._verdict_dirty = True
            room.poke()

    def keep_together(self, now: float) -> None:
        """A pane that paused itself on an anomaly pauses the other. A pane whose engine could
        not keep up slowed its clock down (playback.py): the other waits for it, both going on
        from the slower clock, so the two clocks part for a tick at most."""
        a, b = self.rooms
        for one, other in ((a, b), (b, a)):
            if one.paused_for is not None and other.playing:
                other.playing = False
                other.poke()
        virtual = all(r.playing and r.speed not in ("end", BEAT) for r in self.rooms)
        if virtual and a.clock_ms != b.clock_ms:
            clock = min(a.clock_ms, b.clock_ms)
            for room in self.rooms:
                room._anchor_wall, room._anchor_virtual = now, clock
                room.clock_ms = max(clock, room.timeline.sim.now_ms)

    def status(self) -> dict[str, Any]:
        return {"id": self.id, "panes": [room.status() for room in self.rooms]}


pairs: dict[str, Pair] = {}


async def get_pair(compare_id: str, room_ids: list[str]) -> Pair:
    """The live pair, loading and binding its rooms if need be."""
    pair = pairs.get(compare_id)
    if pair is not None and pair.bound():
        return pair
    loaded = [await service.get(room_id) for room_id in room_ids]
    if len(loaded) != 2 or loaded[0] is None or loaded[1] is None:
        raise service.ServiceError("This compare has expired: one of its panes is gone.")
    if pair is not None:
        await pair.stop()
    pair = Pair(compare_id, (loaded[0], loaded[1]))
    await pair.bind()
    pairs[compare_id] = pair
    return pair


# -- operations (gateway.call) ----------------------------------------------------------------
async def bind(compare_id: str, room_ids: list[str]) -> dict[str, Any]:
    pair = await get_pair(compare_id, room_ids)
    pair.ensure_running()
    return {"error": None, **pair.status()}


def _refusal(pair: Pair, side: int, control: Control) -> str:
    """Why this press cannot go to both panes ("" when it can)."""
    if control.action == "speed" and control.speed == BEAT:
        return (
            "Event pacing moves each pane by its own moments, which would pull the two runs "
            "apart: in a compare, pick a speed (both panes share the virtual clock)."
        )
    if control.action == "fault":
        for index, room in enumerate(pair.rooms):
            option = next((o for o in room.fault_options() if o.id == control.fault), None)
            if option is None or not option.available:
                why = f" ({option.why_not})" if option is not None and option.why_not else ""
                return (
                    f"Not now in pane {SIDES[index].upper()}: {control.fault}{why}. A press goes "
                    "to both panes or to neither."
                )
    starts = control.action == "play" or (control.action == "speed" and control.speed == "end")
    if starts and not any(room.playing for room in pair.rooms):
        refusal = pair.rooms[0].play_refusal() or pair.rooms[1].play_refusal()
        if refusal:
            return refusal
        others = [r for r in registry.rooms.values() if r.playing and r not in pair.rooms]
        limit = pacing.max_playing()
        if len(others) + 2 > limit:
            return (
                f"This compare cannot play now: it plays two runs, and the lab already plays "
                f"{len(others)} of at most {limit} (LAB_MAX_PLAYING_ROOMS). Step through it "
                "instead, or pause another run."
            )
        private = sum(1 for r in others if r.kind in pacing.PRIVATE_KINDS)
        cap = pacing.max_playing_private()
        if pair.rooms[0].kind in pacing.PRIVATE_KINDS and private + 2 > cap:
            return (
                f"This compare cannot play now: it plays two private runs, and {private} are "
                f"already playing, of at most {cap} (LAB_MAX_PLAYING_PRIVATE). Step through "
                "it instead, or try play again in a minute."
            )
    return ""


async def control(
    compare_id: str, room_ids: list[str], side: str, fields: dict[str, str], presenter: bool
) -> dict[str, Any]:
    """Validate one press (against the pane it was made in) and queue it for both panes."""
    if not presenter:
        return {"error": "Only a presenter can control this compare."}
    if side not in SIDES:
        return {"error": f"side must be a or b, not {side!r}."}
    pair = await get_pair(compare_id, room_ids)
    index = SIDES.index(side)
    form = ControlForm(fields, room=pair.rooms[index])
    if not form.is_valid():
        return {"error": form.error_text()}
    command = form.control()
    if command.action == "experiment":  # checked against each pane's own state
        for other, room in enumerate(pair.rooms):
            check = ControlForm(fields, room=room)
            if other != index and not check.is_valid():
                return {
                    "error": f"Not now in pane {SIDES[other].upper()}: {check.error_text()} "
                    "A press goes to both panes or to neither."
                }
    refusal = _refusal(pair, index, command)
    if refusal:
        return {"error": refusal, "busy": "LAB_MAX_PLAYING" in refusal}
    pair.submit(index, command)
    pair.ensure_running()
    return {"error": None}


service.OPS.update({"compare_bind": bind, "compare_control": control})

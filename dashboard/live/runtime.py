"""One runtime per room: paces the engine against wall time and sends frames to the room.

Daphne runs no ASGI lifespan events, so a room's pacing task starts when first needed (a browser
connects, a control is pressed) on the running event loop, and the registry keeps a strong
reference to it. Each tick (``LAB_TICK_MS``) applies the controls pressed since the last one,
advances the engine for at most ``LAB_TICK_BUDGET_MS`` of CPU, and sends at most one frame (the
changed fragments, with a sequence number) to the room's viewers.

Fan-out: the frame is rendered and encoded once per tick (in two variants with the same
number: presenters' with the speaker notes, attendees' without), then the same bytes go to every
WebSocket consumer of this process watching the room (``Room.audience``, filled through
``gateway.watch``): no per-client rendering and no trip through the channel layer per browser.
In the scale-out set-up (``LAB_RUNTIME=worker``) rooms run in the runtime worker, which has no
viewers of its own: the frame goes to the room's channel group instead, where each web process's
relay fans it out (gateway.py).

The registry is a cache: rooms live in the database (models.py) and load on first use
(service.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

from channels.layers import get_channel_layer

from broker.scenario import ScenarioError, ScenarioSpec
from dashboard.live import background, fanout, pacing
from dashboard.live.limits import LimitError, check_limits, remote_viewers, setting
from dashboard.live.playback import Playback
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments, workshop_panels
from dashboard.panels.common import BEAT, BEATS
from dashboard.panels.faults import CLIENT_GROUP
from dashboard.panels.observe import observe, scenario_info, snapshot_of, verdict_of
from dashboard.panels.presenters import SPEEDS, FaultOption, fault_options

logger = logging.getLogger(__name__)

# Past this cost, the verdict is recomputed only while paused (it reads every record).
VERDICT_LIVE_COST_S = 0.02
# While playing, the verdict (and its aria-live region) refreshes at most this often.
VERDICT_LIVE_INTERVAL_S = 0.25
IDLE_STOP_S = 120.0
DETAILS_INTERVAL_S = 0.5
# While playing faster than this factor, a frame every other tick or fewer (Room.frame_every).
FRAME_EVERY_TICK_UP_TO = 8.0
# Speeds as factors of the virtual clock ("end": as fast as it goes; beats: one moment a beat).
SPEED_FACTORS = {"end": 16.0, BEAT: 1.0} | {s: float(s) for s in SPEEDS if s != "end"}
COUNT_DELAY_S = 1.0  # the attendee count waits this long after someone joins or leaves


class Viewer(Protocol):
    """A local WebSocket connection watching a room (a RoomConsumer)."""

    async def base_send(self, message: dict[str, Any]) -> None: ...


ALL_ACTIONS = frozenset(
    {"play", "pause", "step", "back", "seek", "speed", "reset", "fault", "anomaly-pause"}
    | {"experiment"}
)
HISTORY_ACTIONS = frozenset({"play", "pause", "step", "back", "seek", "speed", "anomaly-pause"})


@dataclass(frozen=True, slots=True)
class Control:
    """A validated control (see forms.ControlForm)."""

    action: str  # play pause step back seek speed reset fault anomaly-pause
    speed: str | None = None
    position: int | None = None
    fault: str | None = None
    beats: str | None = None  # with speed "beat": moments per second (BEATS)
    on: bool | None = None  # anomaly-pause: pause on the next anomaly, or not
    command: dict[str, Any] | None = None  # experiment: the step dict (panels/experiments.py)
    label: str = ""  # experiment: what the press did, in words


class Room(Playback):
    """A live run. ``kind`` (see models.LabRoom): workshop, sandbox or view.

    ``info`` holds what the page shows about the room itself: its join code, the room it was
    forked from, its saved run's id.
    """

    def __init__(
        self,
        room_id: str,
        spec: ScenarioSpec,
        seed: int | None = None,
        *,
        timeline: Timeline | None = None,
        kind: str = "workshop",
        info: dict[str, Any] | None = None,
        seq_base: int = 0,
    ) -> None:
        self.id = room_id
        self.group = f"room-{room_id}"
        self.spec = spec
        self.seed = seed
        self.kind = kind
        self.info = dict(info or {})
        self.scenario = scenario_info(spec)
        self.timeline = timeline if timeline is not None else Timeline(spec, seed)
        self.playing = False
        self.speed = "1"
        # Event pacing (speed "beat"): moments per second, and when the next beat is due.
        self.beats = "1"
        self._next_beat = 0.0
        # Pause on anomaly: the judged anomalies seen so far (None: to be read before the next
        # step), and why the room last paused itself (cleared by the next move).
        self.pause_on_anomaly = False
        self._anomalies_seen: frozenset[tuple[str, str, str]] | None = None
        self.paused_for: dict[str, Any] | None = None
        self.clock_ms = self.timeline.sim.now_ms
        self._anchor_wall = 0.0
        self._anchor_virtual = 0
        self._seek_target: int | None = None
        self.pending: deque[Control] = deque(maxlen=256)
        # Frame numbers. A room that loads again (a new worker, a reload after eviction) must
        # number its frames past anything browsers saw from the earlier copy: see seq_base().
        self.seq = seq_base
        self.model: fragments.PageModel | None = None
        self._verdict: dict[str, Any] | None = None
        self._verdict_cost = 0.0
        self._verdict_dirty = True
        self._verdict_at = 0.0
        self.last_used = time.monotonic()
        # When someone last watched or drove the room (pacing.py pauses it after a while).
        self.watched_at = self.last_used
        # A refusal to tell the room after the tick that refused it (a play over the cap).
        self.notice: str | None = None
        self._task: asyncio.Task[None] | None = None
        self.frames_sent = 0
        self._details_at = 0.0
        self._ticks_unsent = 0  # ticks whose changes wait for the next frame (frame_every)
        # This process's viewers (embedded mode); frames reach other processes via the layer.
        self.audience = fanout.Audience()
        self._full: dict[bool, tuple[int, fragments.PageModel, str]] = {}
        self.presenter_frame: str | None = None  # the presenter variant of the last frame
        # Predict-then-reveal: the open question (see workshop.py), shown to everyone.
        self.question: dict[str, Any] | None = None
        # When the run was last saved, and what it was then (service.py saves it).
        self.saved_at = 0.0
        self.saved_state: tuple[Any, ...] | None = None
        self.on_change: Any = None  # awaited after every tick (saving the run: service.py)
        self._poked = False
        self._count_changed_at: float | None = None  # when the attendee count last changed
        self.wire: Any = None  # its Kafka listeners while open (wire.RoomWire)

    def poke(self) -> None:
        """Something outside the engine changed (a question, a vote): rebuild on the next tick."""
        self._poked = True
        self.last_used = time.monotonic()

    @property
    def notes(self) -> bool:
        """Whether this room's presenters get the presenter-only panels (speaker notes, the live
        tally): not in an attendee's copy of a workshop room, where they would spoil it."""
        return bool(self.info.get("notes", True))

    def private_skip(self, presenter: bool) -> frozenset[str]:
        """The panels a viewer of this role must not be sent."""
        return frozenset() if presenter and self.notes else fragments.PRIVATE_PANELS

    def room_info(self) -> dict[str, Any]:
        return {
            **self.info,
            "id": self.id,
            "kind": self.kind,
            "question": self.question,
            "limited": self.timeline.limit_steps is not None,
            "kafka": self.wire.summary() if self.wire is not None else None,
        }

    @property
    def viewers(self) -> int:
        return len(self.audience)

    def attendees_watching(self) -> int | None:
        """How many attendees have the room open: None in the scale-out set-up, where the
        browsers are connected to the web processes, not to this worker."""
        if remote_viewers():
            return None
        return len(self.audience) - self.audience.presenters()

    @property
    def allowed_actions(self) -> frozenset[str]:
        """What this kind of room lets its presenters do (a view only travels in time)."""
        if self.kind == "view":
            return HISTORY_ACTIONS
        return ALL_ACTIONS

    # -- input ---------------------------------------------------------------------
    def fault_options(self) -> list[FaultOption]:
        clients = self.wire.clients() if self.wire is not None else None
        return fault_options(self.scenario, snapshot_of(self.timeline.sim), clients)

    def submit(self, control: Control) -> None:
        """Queue a control; the next tick applies it."""
        self.pending.append(control)
        self.last_used = self.watched_at = time.monotonic()

    # -- the tick ----------------------------------------------------------------------
    def tick(self, now: float | None = None) -> str | None:
        """Apply controls, advance the engine, and return a frame when something changed."""
        now = time.monotonic() if now is None else now
        pressed = self._apply_controls(now)
        changed = pressed or self._poked
        self._poked = False
        changed = self._advance(now) or changed
        if self.model is None:
            self.model = self._build()
            return None
        if not changed:
            return None
        self._ticks_unsent += 1
        if self.playing and not pressed and self._ticks_unsent < self.frame_every():
            self._poked = True  # what changed goes out with the next frame
            return None
        self._ticks_unsent = 0
        # While playing, the event list and the diagram refresh a few times a second only.
        details = not self.playing or now - self._details_at >= self.details_interval()
        if details:
            self._details_at = now
        model = self._build(details)
        parts = fragments.diff_fragments(self.model, model, skip=fragments.PRIVATE_PANELS)
        private = fragments.private_changes(self.model, model)
        self.model = model
        if not parts and not private:
            return None
        self.seq += 1
        self.frames_sent += 1
        sent_at = time.time()  # one time for both variants: the same frame, to the millisecond
        public = fragments.frame(self.seq, "delta", parts, sent_at)
        self.presenter_frame = (
            fragments.frame(self.seq, "delta", parts + private, sent_at) if self.notes else public
        )
        return public

    def frame_every(self) -> int:
        """While playing, a frame every this many ticks: every tick (20 a second) up to 8x, every
        other one at 16x and "to the end". Nobody follows 20 frames a second of a run at 16x,
        and a browser handling each (a lane of 40 cells replaced whole, most panels changed) got
        behind and was caught up with full frames (manage.py bench_browser). A press (play,
        pause, a fault), the run's end and a pause on an anomaly are sent at once."""
        return max(1, int(SPEED_FACTORS.get(self.speed, 1.0) // FRAME_EVERY_TICK_UP_TO))

    def details_interval(self) -> float:
        """How often the event list and the diagram refresh while playing: twice a second up
        to 4x; past that they change faster than anyone reads them, so every 1 s at 8x and
        2 s at 16x or "to the end" (the bytes and the browser's work of a frame that carries
        them: docs/performance.md)."""
        factor = SPEED_FACTORS.get(self.speed, 1.0)
        return DETAILS_INTERVAL_S * max(1.0, factor / 4)

    def page(self) -> fragments.PageModel:
        self.watched_at = time.monotonic()  # a page or a snapshot: someone is looking
        if self.model is None:
            self.model = self._build()
        return self.model

    def full_frame(self, presenter: bool = False) -> str:
        """The whole page as one frame; built once per state and role, however many ask."""
        model = self.page()
        cached = self._full.get(presenter)
        if cached is not None and cached[0] == self.seq and cached[1] is model:
            return cached[2]
        skip = self.private_skip(presenter)
        text = fragments.frame(self.seq, "full", fragments.full_fragments(model, skip))
        self._full[presenter] = (self.seq, model, text)
        return text

    # -- fan-out -------------------------------------------------------------------------
    def attach(self, viewer: Viewer, presenter: bool = False) -> None:
        self.audience.add(viewer, presenter)
        self._audience_changed()

    def detach(self, viewer: Viewer) -> None:
        self.audience.remove(viewer)
        self._audience_changed()

    def _audience_changed(self) -> None:
        self.last_used = time.monotonic()
        if self._count_changed_at is None:
            self._count_changed_at = self.last_used

    async def send_count(self, now: float) -> None:
        """The attendee count to the presenters, a second after someone joined or left (at
        most once a second in a rush): a fragment of its own, not a numbered frame, so the
        attendees get nothing and nobody's frame sequence moves."""
        if self._count_changed_at is None or now - self._count_changed_at < COUNT_DELAY_S:
            return
        self._count_changed_at = None
        attendees = self.attendees_watching()
        if attendees is not None and self.kind == "workshop":
            await self.audience.send_presenters(workshop_panels.audience_fragment(attendees))

    async def broadcast(self, frame: str, private: str | None = None) -> None:
        """Send one frame to every viewer: local ones directly, other processes' through the
        channel layer (scale-out: the runtime worker has no viewers of its own)."""
        await self.audience.send(self.seq, frame, private)
        if remote_viewers():
            layer = get_channel_layer()
            if layer is not None:
                await layer.group_send(
                    self.group,
                    {"type": "room.frame", "seq": self.seq, "frame": frame, "private": private},
                )

    def status(self) -> dict[str, Any]:
        timeline = self.timeline
        return {
            "room_id": self.id,
            "playing": self.playing,
            "speed": self.speed,
            "clock_ms": self.clock_ms,
            "ended": timeline.sim.ended if not timeline.in_past else None,
            "position": timeline.position,
            "length": timeline.length,
            "in_past": timeline.in_past,
            "seeking": self._seek_target is not None,
            "beats": self.beats,
            "pause_on_anomaly": self.pause_on_anomaly,
            "paused_for": self.paused_for,
        }

    def _build(self, details: bool = True) -> fragments.PageModel:
        if self.model is None:
            details = True
        return fragments.build_model(self.observe(details), self.model, details)

    def observe(self, details: bool = True) -> dict[str, Any]:
        obs = observe(self.timeline, self.scenario, self.status(), self._current_verdict(), details)
        obs["room"] = self.room_info()
        return obs

    def _current_verdict(self) -> dict[str, Any] | None:
        if not self._verdict_dirty and self._verdict is not None:
            return self._verdict
        if self._verdict is not None and self.playing and self._verdict_cost > VERDICT_LIVE_COST_S:
            return {**self._verdict, "stale": True}
        started = time.perf_counter()
        if self._verdict is not None and self.playing and started < self._verdict_at:
            return self._verdict
        self._verdict = verdict_of(self.timeline.sim)
        self._verdict_at = started + VERDICT_LIVE_INTERVAL_S
        self._verdict_cost = time.perf_counter() - started
        self._verdict_dirty = False
        return self._verdict

    # -- controls ------------------------------------------------------------------------
    def _apply_controls(self, now: float) -> bool:
        changed = False
        while self.pending:
            control = self.pending.popleft()
            try:
                self._apply(control, now)
            except ScenarioError as exc:
                logger.info("room %s: control %s refused: %s", self.id, control, exc)
            changed = True
        return changed

    def _apply(self, control: Control, now: float) -> None:
        action = control.action
        if action not in self.allowed_actions:
            return  # refused before it was queued (service.py); never applied here either
        timeline = self.timeline
        if action not in ("pause", "anomaly-pause", "fault", "experiment"):
            self.paused_for = None  # a move: the reason for the last pause is history
            self._anomalies_seen = None
        if action == "play":
            if timeline.ended and not timeline.in_past:
                return
            self._play(now)
        elif action == "pause":
            self.playing = False
        elif action == "speed" and (control.speed in SPEEDS or control.speed == BEAT):
            self.speed = control.speed
            if control.speed == BEAT and control.beats in BEATS:
                self.beats = control.beats
            if control.speed == "end" or self.playing:
                self._play(now)
        elif action == "step":
            self.playing = False
            self._seek_target = None
            timeline.step_event()
            self._moved()
        elif action == "back":
            self.playing = False
            self._seek_target = max(0, timeline.position - 1)
        elif action == "seek" and control.position is not None:
            self.playing = False
            self._seek_target = max(0, min(control.position, timeline.length))
        elif action == "reset":
            self.timeline = Timeline(self.spec, self.seed)
            self.playing = False
            self._seek_target = None
            self._moved()
        elif action == "fault" and control.fault:
            self._seek_target = None
            option = next((o for o in self.fault_options() if o.id == control.fault), None)
            if option is None or not option.available:
                return
            if option.group == CLIENT_GROUP and self.wire is not None:
                done = self.wire.apply_fault(option.command, option.label)  # a real client's
                logger.info("room %s: %s: %s", self.id, option.label, done)
            else:
                timeline.submit(option.command, option.label)
            self._verdict_dirty = True
        elif action == "experiment" and control.command is not None:
            self._seek_target = None
            timeline.submit(control.command, control.label)
            self._verdict_dirty = True
        elif action == "anomaly-pause" and control.on is not None:
            self.pause_on_anomaly = control.on
            self._anomalies_seen = None  # what is there now is not news
            if not control.on:
                self.paused_for = None

    def play_refusal(self) -> str:
        """Why this room may not start playing now: the cap on playing rooms (pacing.py)."""
        if self.playing:
            return ""
        return pacing.playing_refusal(self, registry.rooms.values())

    # -- the pacing task -------------------------------------------------------------------
    def ensure_running(self) -> None:
        """Start the pacing task on the running loop, unless it already runs there, or the
        process is stopping (pacing.shutdown: a press or a save must not restart a room)."""
        if not pacing.stopping.is_set():
            self._task = background.ensure(self._task, self._run, f"room-{self.id}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await background.cancel(task)

    def pause_if_unwatched(self, now: float) -> None:
        """Pause (keeping the position) once nobody has watched for LAB_PAUSE_UNWATCHED_S.

        In the scale-out worker the viewers are in other processes: the worker marks watched
        rooms itself (worker.check_watched); until it does, every room counts as watched.
        """
        if self.viewers or (remote_viewers() and not pacing.remote_watching):
            self.watched_at = now
        elif self.playing and now - self.watched_at > pacing.pause_unwatched_s():
            logger.info("room %s: nobody watches; pausing at %d", self.id, self.timeline.position)
            self.playing = False
            self._poked = True

    async def _run(self) -> None:
        pacing.hook_shutdown()
        tick_s = setting("LAB_TICK_MS", 50) / 1000
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not pacing.stopping.is_set():
            # A fixed cadence (not "tick, then sleep a tick"): 20 frames a second means 20.
            next_at += tick_s
            if next_at < loop.time():
                next_at = loop.time()  # too far behind (a long slice): do not rush to catch up
            await self.tick_and_send()
            if self.can_stop():
                return
            await asyncio.sleep(max(0.0, next_at - loop.time()))

    async def tick_and_send(self, now: float | None = None) -> None:
        """One tick and what follows it: the frame, a refusal to tell, the attendee count, the
        after-tick hook. A compare ticks its two panes with the same ``now`` (compare/pair.py)."""
        # Every room's ticks share one CPU budget per period (pacing.py): wait for a turn.
        await pacing.turns.take()
        started = time.perf_counter()
        self.pause_if_unwatched(time.monotonic())
        try:
            frame = self.tick(now)
        except Exception:
            logger.exception("room %s: tick failed; pausing the run", self.id)
            self.playing = False
            frame = None
        pacing.turns.spent(time.perf_counter() - started)
        started = time.perf_counter()
        if frame is not None:
            await self.broadcast(frame, self.presenter_frame)
        if self.notice is not None:
            notice, self.notice = self.notice, None
            await self.broadcast(fragments.error_frame(notice))
        await self.send_count(time.monotonic())
        pacing.turns.spent(time.perf_counter() - started)
        if self.on_change is not None:
            await self.on_change(self)

    def can_stop(self) -> bool:
        """Whether the pacing task may end: nobody watches, nothing plays or waits, idle."""
        idle = time.monotonic() - self.last_used
        return not self.viewers and not self.playing and not self.pending and idle > IDLE_STOP_S


class Registry:
    """The rooms live in this process, by id (strong references to their tasks).

    A cache: the database has every room (models.LabRoom) and its run, so a room dropped from
    memory (idle, past the limit) loads again, at the step it was at, when next needed.
    """

    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}

    def capacity(self) -> int:
        return int(setting("LAB_MAX_ROOMS", 32)) + int(setting("LAB_MAX_PRIVATE_ROOMS", 400))

    def add(self, room: Room) -> Room:
        if len(self.rooms) >= self.capacity():
            self._evict_one()
        self.rooms[room.id] = room
        return room

    def create(self, spec: ScenarioSpec, seed: int | None = None) -> Room:
        """A room in memory only (benchmarks and engine-side tests; no roles, no saved run)."""
        check_limits(spec)
        room_id = secrets.token_hex(4)
        while room_id in self.rooms:
            room_id = secrets.token_hex(4)
        return self.add(Room(room_id, spec, seed))

    def _evict_one(self) -> None:
        idle = [r for r in self.rooms.values() if not r.viewers and not r.playing]
        if not idle:
            raise LimitError(
                f"The lab already runs {len(self.rooms)} rooms, each watched or playing: that "
                "is the maximum. Close a tab on another run, or wait for one to finish."
            )
        self.drop(min(idle, key=lambda r: r.last_used).id)

    def drop(self, room_id: str) -> Room | None:
        room = self.rooms.pop(room_id, None)
        if room is not None:
            _halt(room)
        return room

    def get(self, room_id: str) -> Room | None:
        return self.rooms.get(room_id)

    def clear(self) -> None:
        for room in self.rooms.values():
            _halt(room)
        self.rooms.clear()

    def listening(self) -> list[Room]:
        """The rooms with Kafka listeners open (wire.py)."""
        return [room for room in self.rooms.values() if room.wire is not None]


def _halt(room: Room) -> None:
    """A room leaves memory: its pacing task and its Kafka listeners stop."""
    task = room._task
    if task is not None and not task.done():
        task.cancel()
    wire, room.wire = room.wire, None
    if wire is not None:
        wire.close()


registry = Registry()

"""How a room moves through its run while it plays: virtual time at a speed, one moment per
beat (event pacing), or to the end, each within the room's share of the tick budget; and pause
on anomaly. A mixin of ``runtime.Room``, which holds the state these methods read and set."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from dashboard.live import pacing
from dashboard.live.limits import setting
from dashboard.panels.common import BEAT
from dashboard.panels.observe import verdict_of

logger = logging.getLogger("dashboard.live.runtime")


def anomaly_key(anomaly: Mapping[str, Any]) -> tuple[str, str, str]:
    return (anomaly["kind"], anomaly["message_id"], anomaly.get("where", "log"))


def judged_anomalies(verdict: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The verdict's anomalies, without messages still in flight (travelling, not lost)."""
    return [a for a in verdict.get("anomalies", []) if not a.get("in_flight")]


def anomaly_cause(anomaly: Mapping[str, Any]) -> dict[str, Any]:
    """Why a room paused itself on an anomaly, for the page (header and verdict card)."""
    kind = anomaly["kind"].replace("-", " ")
    explanation = anomaly.get("explanation", "")
    text = f"Paused: {kind} of {anomaly['message_id']}"
    if explanation:
        text += f" ({explanation})"
    return {"text": text, "kind": anomaly["kind"], "message_id": anomaly["message_id"]}


class Playback:
    """The playing half of a Room (see runtime.Room for its attributes)."""

    def _play(self, now: float) -> None:
        refusal = self.play_refusal()
        if refusal:
            self.notice = refusal
            return
        self.playing = True
        self._seek_target = None
        self._next_beat = now  # event pacing: the first moment at once
        self._anchor_wall = now
        self._anchor_virtual = self.clock_ms

    def reanchor(self, now: float) -> None:
        """Pace on from the engine's clock as it is now (after something else moved it)."""
        self.clock_ms = self.timeline.sim.now_ms
        self._anchor_wall, self._anchor_virtual = now, self.clock_ms

    def _moved(self) -> None:
        self.clock_ms = self.timeline.sim.now_ms
        self._verdict_dirty = True

    # -- pacing --------------------------------------------------------------------------
    def _advance(self, now: float) -> bool:
        if self.wire is not None:
            # Kafka listeners open: while real clients are connected their driver moves the
            # clock at wall time; while none is, the room paces itself (wire.py).
            return bool(self.wire.advance(self, now, self._pace))
        return self._pace(now)

    def _pace(self, now: float) -> bool:
        # A room's own slice, within what is left of every room's budget for this period.
        budget = min(setting("LAB_TICK_BUDGET_MS", 8) / 1000, pacing.turns.left_s())
        deadline = time.perf_counter() + max(0.001, budget)
        timeline = self.timeline
        if self._seek_target is not None:
            if timeline.seek(self._seek_target, deadline):
                self._seek_target = None
            self._moved()
            return True
        if not self.playing:
            return False
        before = timeline.steps
        if self.speed == "end":
            while time.perf_counter() < deadline and self._step():
                pass
            self.clock_ms = timeline.sim.now_ms
        elif self.speed == BEAT:
            # Event pacing: one moment per beat, however much virtual time lies between two.
            if now >= self._next_beat:
                self._step(moment=True)
                interval = 1 / float(self.beats)
                self._next_beat += interval
                if self._next_beat <= now:  # a late tick: no burst of beats to catch up
                    self._next_beat = now + interval
            self.clock_ms = timeline.sim.now_ms
        else:
            factor = float(self.speed)
            target = self._anchor_virtual + int((now - self._anchor_wall) * 1000 * factor)
            while True:
                due = timeline.next_due_ms()
                if due is None:
                    timeline.step_engine()  # lets the engine notice that the run is over
                    break
                if due > target:
                    break
                if not self._step():
                    target = timeline.sim.now_ms  # paused on an anomaly: the clock stops here
                    break
                if time.perf_counter() > deadline:
                    # The engine cannot keep up: slow the virtual clock down to it.
                    target = timeline.sim.now_ms
                    self._anchor_wall, self._anchor_virtual = now, target
                    break
            due = timeline.next_due_ms()
            self.clock_ms = max(timeline.sim.now_ms, target if due is None else min(target, due))
        if (timeline.ended and not timeline.in_past) or self.paused_for is not None:
            self.playing = False
            self.clock_ms = timeline.sim.now_ms
        if timeline.steps != before:
            self._verdict_dirty = True
        return True

    def _step(self, moment: bool = False) -> bool:
        """One engine step (or, ``moment``, up to the next visible event) while playing. With
        pause on anomaly, a step that reached a new moment compares the checker's judged
        anomalies with those before it, and pauses the room on the first new one. False when
        the run is over or the room paused itself."""
        timeline = self.timeline
        watch = self.pause_on_anomaly
        if watch and self._anomalies_seen is None:
            seen = judged_anomalies(verdict_of(timeline.sim))
            self._anomalies_seen = frozenset(anomaly_key(a) for a in seen)
        position = timeline.position
        moved = timeline.step_event() if moment else timeline.step_engine()
        if not moved or not watch or timeline.position == position:
            return moved
        verdict = verdict_of(timeline.sim)
        judged = judged_anomalies(verdict)
        new = [a for a in judged if anomaly_key(a) not in (self._anomalies_seen or ())]
        self._anomalies_seen = frozenset(anomaly_key(a) for a in judged)
        if not new:
            return True
        self.playing = False
        self.paused_for = anomaly_cause(new[0])
        self._verdict_dirty = True
        logger.info("room %s: paused on an anomaly at %d", self.id, timeline.position)
        return False

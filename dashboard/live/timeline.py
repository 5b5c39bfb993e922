"""One run's history: the engine, the commands pressed, and time travel over both.

The engine is deterministic: the same scenario, seed and commands give the same events. So the
history of a run is just (seed, [commands, each with the number of engine steps done when it was
pressed]). Going back replays that from the nearest checkpoint; going forward steps the engine on,
re-applying the recorded commands at the same step counts. Pressing a new command while looking
at the past drops the recorded future from there (a fork).

A command is keyed by the engine step count, not by its virtual time: several engine steps happen
in the same millisecond, and ``Simulation.submit`` orders a command after whatever ran before it.
"""

from __future__ import annotations

import itertools
import time
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broker.events import Event
from broker.scenario import ScenarioSpec, step_parser
from broker.simulation import Simulation

CHECKPOINT_EVERY_STEPS = 200
# A checkpoint costs a deep copy of the engine; past this, replaying from the last one is cheaper.
CHECKPOINT_MAX_COST_S = 0.05
# "Step one event" runs engine steps until a visible event; a bound keeps a tick short.
MAX_STEPS_PER_EVENT = 100_000
# Every timeline and every change to its commands takes the next number: two timelines with the
# same revision hold the same commands (a fork copies its parent's), so saving compares a number,
# not the whole list, on every tick.
_revisions = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Command:
    step_index: int  # engine steps done when it was pressed; applied before the next one
    time_ms: int
    raw: dict[str, Any]
    label: str


def events_since(sim: Simulation, seq: int) -> list[Event]:
    """The events from ``seq`` on, newest last."""
    return sim.events.since(seq)


def clone_simulation(sim: Simulation) -> Simulation:
    """A deep copy of a running engine (a time-travel checkpoint)."""
    return sim.clone()


class Timeline:
    """The engine plus everything needed to revisit any earlier moment of the run.

    A *moment* is an engine step count after which a visible (non-quiet) event happened; the
    scrubber's positions are 0 (the start) and one per moment.
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        seed: int | None = None,
        commands: Sequence[Command] = (),
    ) -> None:
        """``commands``: a recorded run to replay; they apply as the engine reaches their steps."""
        self.spec = spec
        self.seed = spec.seed if seed is None else seed
        self.parse = step_parser(spec)
        self.commands: list[Command] = list(commands)
        self.revision = next(_revisions)
        self.moments: list[int] = []
        self.head_steps = 0  # the furthest this branch of the run has been
        # A view of someone else's history stops where that history stopped (None: no limit).
        self.limit_steps: int | None = None
        self._checkpoints: dict[int, Simulation] = {}
        self._checkpoints_on = True
        # Kafka listeners were opened (dashboard.live.wire): what real clients sent is in no
        # command, so this run cannot be replayed, copied or travelled in.
        self.outside = False
        # Kafka listeners are open (dashboard.live.wire): the run must not end at its duration
        # or settle, since clients may connect at any time; every step is ``step_live``.
        self.listening = False
        self._start(0)

    def fork(self, limit: bool = False, engine: bool = True) -> Timeline:
        """An independent copy at the same point, sharing the checkpoints' immutable engines.

        With ``limit``, the copy cannot run past this timeline's furthest step (a view of
        recorded history, not a new future). With ``engine=False`` the copy is cheap (lists
        only) and has no engine yet: ``rebuild()`` makes it, in a thread if need be.
        """
        other = Timeline.__new__(Timeline)
        other.spec, other.seed, other.parse = self.spec, self.seed, self.parse
        other.commands = list(self.commands)
        other.revision = self.revision
        other.moments = list(self.moments)
        other.head_steps = self.head_steps
        other.limit_steps = self.head_steps if limit else self.limit_steps
        # Checkpoints are only ever cloned from, never stepped: sharing them is safe.
        other._checkpoints = dict(self._checkpoints)
        other._checkpoints_on = self._checkpoints_on
        other.outside = self.outside
        other.listening = False  # a copy has no listeners of its own
        other.steps = self.steps
        other._applied = self._applied
        if engine:
            other.sim = clone_simulation(self.sim)
        return other

    def rebuild(self, check: Callable[[], None] | None = None) -> None:
        """The engine of a copy forked with ``engine=False``: the nearest checkpoint, replayed
        to the same step with the same commands applied, so (the engine being deterministic)
        the state the original had. It reads only checkpoints, which nobody changes, so it may
        run in a thread while the original plays on. ``check`` is called every few hundred
        steps and may raise to give up.
        """
        target, applied = self.steps, self._applied
        self._start(target)
        while self.steps < target:
            if check is not None and self.steps % 256 == 0:
                check()
            if not self.step_engine():
                break
        while self._applied < applied:  # pressed at this very step, before the next one
            self._submit(self.commands[self._applied].raw)
            self._applied += 1

    @property
    def at_limit(self) -> bool:
        return self.limit_steps is not None and self.steps >= self.limit_steps

    # -- state -----------------------------------------------------------------
    def _start(self, steps: int) -> None:
        """Put the engine at the latest checkpoint at or before ``steps``."""
        best = max((s for s in self._checkpoints if s <= steps), default=None)
        if best is None:
            self.sim = Simulation(self.spec, self.seed)
            self.steps = 0
        else:
            self.sim = clone_simulation(self._checkpoints[best])
            self.steps = best
        self._applied = sum(1 for c in self.commands if c.step_index < self.steps)

    @property
    def position(self) -> int:
        """The scrubber position of the engine's current state."""
        return bisect_right(self.moments, self.steps)

    @property
    def length(self) -> int:
        """The number of moments known so far (the scrubber's maximum)."""
        return len(self.moments)

    @property
    def in_past(self) -> bool:
        return self.steps < self.head_steps or self._applied < len(self.commands)

    @property
    def ended(self) -> bool:
        return self.sim.ended is not None or self.at_limit

    # -- running -----------------------------------------------------------------
    def _apply_due_commands(self) -> None:
        while self._applied < len(self.commands):
            command = self.commands[self._applied]
            if command.step_index != self.steps:
                break
            self._submit(command.raw)
            self._applied += 1

    def _submit(self, raw: dict[str, Any]) -> None:
        sim = self.sim
        sim.submit(self.parse(raw, "command", sim.now_ms))
        # The engine stops stepping once the run settled; a new command reopens it.
        sim.ended = None

    def step_engine(self) -> bool:
        """One engine step (recorded commands applied first). False when the run is over."""
        if self.at_limit:
            return False
        if self.listening:
            return self.step_live()
        self._apply_due_commands()
        sim = self.sim
        before = sim.events.next_seq
        if not sim.step():
            return False
        self._stepped(before)
        return True

    def step_live(self) -> bool:
        """One engine step while real Kafka clients drive the clock (dashboard.live.wire): the
        scheduler's next action, so the run neither ends at its duration nor settles while
        they may still talk to it. False when nothing is due."""
        self._apply_due_commands()
        before = self.sim.events.next_seq
        self.sim.ended = None
        if not self.sim.scheduler.step():
            return False
        self._stepped(before)
        return True

    def _stepped(self, before: int) -> None:
        """Count a step done: the scrubber's moments and the checkpoints."""
        self.steps += 1
        self.head_steps = max(self.head_steps, self.steps)
        if self._emitted_visible(before) and (not self.moments or self.steps > self.moments[-1]):
            self.moments.append(self.steps)
        if self._checkpoints_on and self.steps % CHECKPOINT_EVERY_STEPS == 0:
            self._checkpoint()

    def _emitted_visible(self, before: int) -> bool:
        return any(not e.quiet for e in events_since(self.sim, before))

    def _checkpoint(self) -> None:
        if self.steps in self._checkpoints:
            return
        started = time.perf_counter()
        self._checkpoints[self.steps] = clone_simulation(self.sim)
        if time.perf_counter() - started > CHECKPOINT_MAX_COST_S:
            self._checkpoints_on = False

    def step_event(self) -> bool:
        """Run until the next visible event (the next moment). False when nothing happened."""
        target = self.position + 1
        for _ in range(MAX_STEPS_PER_EVENT):
            if not self.step_engine():
                return False
            if self.position >= target:
                return True
        return True

    def next_due_ms(self) -> int | None:
        if self.at_limit:
            return None
        if self._applied < len(self.commands) and self.commands[self._applied].step_index == (
            self.steps
        ):
            return self.sim.now_ms
        if self.listening:
            return self.sim.scheduler.next_due_ms()
        if self.sim.ended is not None:
            return None
        due = self.sim.scheduler.next_due_ms()
        if due is None or due > self.spec.duration_ms:
            return None
        return due

    # -- commands ------------------------------------------------------------------
    def submit(self, raw: dict[str, Any], label: str) -> Command:
        """Press a command now; at a past moment this forks the run from here.

        Raises ``ScenarioError`` (changing nothing) when the engine refuses the command.
        """
        # Validate (against the scenario, then the run's state) before changing anything.
        self.sim.check(self.parse(raw, "command", self.sim.now_ms))
        if self.in_past:
            self._fork()
        command = Command(self.steps, self.sim.now_ms, dict(raw), label)
        self.commands.append(command)
        self.revision = next(_revisions)
        self._submit(command.raw)
        self._applied += 1
        return command

    def _fork(self) -> None:
        del self.commands[self._applied :]
        self.revision = next(_revisions)
        del self.moments[self.position :]
        self.head_steps = self.steps
        for steps in [s for s in self._checkpoints if s > self.steps]:
            del self._checkpoints[steps]

    # -- time travel -------------------------------------------------------------------
    def steps_at(self, position: int) -> int:
        position = max(0, min(position, self.length))
        if position == self.length:
            return self.head_steps
        return 0 if position == 0 else self.moments[position - 1]

    def seek(self, position: int, deadline: float | None = None) -> bool:
        """Move the engine to a scrubber position; True when there.

        Going back restores a checkpoint and replays; with a ``deadline`` (a
        ``time.perf_counter()`` value) the replay stops early and a later call carries on.
        """
        target = self.steps_at(position)
        if target < self.steps:
            self._start(target)
        while self.steps < target:
            if not self.step_engine():
                break
            if deadline is not None and time.perf_counter() > deadline:
                return self.steps >= target
        return True

"""Copies of a live room are made off the event loop, exactly, and within limits (forking.py)."""

import asyncio
import threading
import time
from typing import Any

import pytest

from broker.scenario import load, load_text
from dashboard.live import forking, pacing
from dashboard.live import timeline as timeline_module
from dashboard.live.limits import LimitError
from dashboard.live.runtime import Room, registry
from dashboard.live.timeline import Timeline
from dashboard.management.commands.bench_fanout import bench_scenario
from dashboard.runs.store import RunError, replay


@pytest.fixture(autouse=True)
def no_forks_remembered() -> None:
    forking.owners.clear()


def run_to(timeline: Timeline, steps: int) -> None:
    while timeline.steps < steps and timeline.step_engine():
        pass


def test_a_copy_rebuilt_from_a_checkpoint_is_the_same_run() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    run_to(timeline, 150)
    timeline.submit({"do": "crash-broker", "broker": 2}, "Crash broker 2")
    run_to(timeline, 330)
    # Pressed at this step, not stepped yet: the copy must have it applied too.
    timeline.submit({"do": "restart-broker", "broker": 2}, "Restart broker 2")

    copy = timeline.fork(engine=False)
    copy.rebuild()

    assert copy.steps == timeline.steps
    assert copy.sim.snapshot() == timeline.sim.snapshot()
    assert copy.in_past == timeline.in_past
    run_to(copy, 10_000)
    run_to(timeline, 10_000)
    assert copy.sim.trace() == timeline.sim.trace()  # and the same future


def big_room() -> Room:
    """A room whose engine holds 30,000 records: a deep copy takes about a second."""
    timeline = Timeline(load_text(bench_scenario(30_000), "big"))
    run_to(timeline, 800)
    room = Room("big", timeline.spec, timeline=timeline)
    return registry.add(room)


async def test_the_event_loop_keeps_answering_while_a_big_copy_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = big_room()
    loop_thread = threading.get_ident()
    copied_on: list[int] = []  # the threads that deep-copied an engine

    def clone(sim: Any) -> Any:
        copied_on.append(threading.get_ident())
        return sim.clone()

    monkeypatch.setattr(timeline_module, "clone_simulation", clone)
    lateness: list[float] = []
    copying = True

    async def probe() -> None:
        while copying:
            asked = time.monotonic()
            await asyncio.sleep(0.01)
            lateness.append(time.monotonic() - asked - 0.01)

    prober = asyncio.ensure_future(probe())
    started = time.monotonic()
    timeline, clock_ms = await forking.copy_timeline(room, limit=False, client="a")
    took = time.monotonic() - started
    copying = False
    await prober

    assert timeline.sim.snapshot() == room.timeline.sim.snapshot()
    assert clock_ms == room.clock_ms
    assert copied_on and loop_thread not in copied_on  # never on the event loop's thread
    # Counted, not timed: while the copy was made the loop woke the probe again and again
    # (copied on the loop, it would have woken it once, after the copy).
    assert len(lateness) >= 5, (len(lateness), took)
    # Copied on the loop, this froze it for the whole copy (1 to 3 s here, by the load).
    assert max(lateness) < 1.0, f"the loop was held {max(lateness) * 1000:.0f} ms"


async def test_one_browser_makes_one_copy_at_a_time() -> None:
    room = big_room()
    first = asyncio.ensure_future(forking.copy_timeline(room, limit=True, client="a"))
    await asyncio.sleep(0.05)

    with pytest.raises(LimitError, match="previous copy is still being made"):
        await forking.copy_timeline(room, limit=True, client="a")
    await first
    await forking.copy_timeline(room, limit=True, client="a")  # done: allowed again


async def test_past_the_queue_a_copy_is_refused_as_busy(settings: Any) -> None:
    settings.LAB_MAX_FORKS_WAITING = 0
    room = big_room()
    first = asyncio.ensure_future(forking.copy_timeline(room, limit=False, client="a"))
    second = asyncio.ensure_future(forking.copy_timeline(room, limit=False, client="b"))
    await asyncio.sleep(0.05)

    with pytest.raises(LimitError, match="busy making 2 other copies"):
        await forking.copy_timeline(room, limit=False, client="c")
    await asyncio.gather(first, second)  # two run at once (LAB_MAX_FORKS_RUNNING=2)


async def test_a_browser_copying_too_often_is_told_when_to_try_again(settings: Any) -> None:
    settings.LAB_RATE_FORK_SESSION = (2, 60)
    room = Room("small", load("producer-retry-duplicate"))
    registry.add(room)
    await forking.copy_timeline(room, limit=True, client="a")
    await forking.copy_timeline(room, limit=True, client="a")

    with pytest.raises(LimitError, match=r"Too many copies from this browser.*try again in \d+ s"):
        await forking.copy_timeline(room, limit=True, client="a")
    await forking.copy_timeline(room, limit=True, client="b")  # another browser may


class Browser:
    async def base_send(self, message: dict[str, Any]) -> None:
        pass


def private_room(client: str, watched: bool) -> Room:
    room = registry.add(
        Room(f"p{len(registry.rooms)}", load("producer-retry-duplicate"), kind="sandbox")
    )
    if watched:
        room.attach(Browser())
    forking.remember(room.id, client)
    return room


def test_a_browser_with_all_its_copies_in_use_is_refused_another(settings: Any) -> None:
    settings.LAB_MAX_PRIVATE_ROOMS_PER_CLIENT = 2
    private_room("a", watched=True)
    private_room("a", watched=True)

    with pytest.raises(LimitError, match="LAB_MAX_PRIVATE_ROOMS_PER_CLIENT=2"):
        forking.make_room_for("a")
    forking.make_room_for("b")  # the limit is per browser


def test_a_browser_at_its_limit_gives_up_its_oldest_idle_copy(settings: Any) -> None:
    settings.LAB_MAX_PRIVATE_ROOMS_PER_CLIENT = 2
    old = private_room("a", watched=False)
    kept = private_room("a", watched=True)
    old.last_used -= 60

    forking.make_room_for("a")

    assert old.id not in registry.rooms  # unloaded (its run is saved; it loads again)
    assert kept.id in registry.rooms


def test_replays_past_the_limit_wait_then_are_told_the_lab_is_busy(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.LAB_MAX_REPLAYS_RUNNING = 1
    monkeypatch.setattr(forking, "REPLAY_WAIT_S", 0.1)
    spec = load("producer-retry-duplicate")
    started, done = threading.Event(), threading.Event()

    def another_request() -> None:  # a replay still running in another request's thread
        with forking.replay_slot():
            started.set()
            done.wait(10)

    other = threading.Thread(target=another_request)
    other.start()
    started.wait(10)
    try:
        with pytest.raises(RunError, match=r"busy replaying 1 other saved runs"):
            replay(spec, spec.seed, [])
    finally:
        done.set()
        other.join()
    assert replay(spec, spec.seed, []).sim.ended is not None  # and once it is done, fine


def test_a_replay_gives_up_when_the_lab_stops() -> None:
    spec = load_text(bench_scenario(0), "bench")
    pacing.stopping.set()
    try:
        with pytest.raises(RunError, match="shutting down"):
            replay(spec, spec.seed, [])
    finally:
        pacing.stopping.clear()

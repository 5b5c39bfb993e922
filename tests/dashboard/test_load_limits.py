"""Many rooms on one event loop: the shared tick budget, the cap on playing rooms, pausing
rooms nobody watches (pacing.py)."""

import asyncio
import time
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer

from broker.scenario import load
from dashboard.live import pacing, service, worker
from dashboard.live.runtime import Control, Room, registry


def busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


async def test_rooms_share_one_budget_so_the_loop_keeps_answering(settings: Any) -> None:
    """Eight 'rooms' ticking every 50 ms, each tick 5 ms of work: unchecked, all eight start
    in the same period, back to back (40 ms of every 50). With a 10 ms budget, two or three
    start per period and the others wait their turn, in order; the rest of each period answers
    everything else. (Counted, not timed: a busy machine cannot make it pass or fail.)"""
    settings.LAB_TICK_MS = 50
    settings.LAB_LOOP_BUDGET_MS = 10
    turns = pacing.Turns()
    counts = [0] * 8
    starts: dict[int, int] = {}  # period number -> ticks started in it
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 1.0

    async def room(i: int) -> None:
        next_at = loop.time()
        while loop.time() < stop_at:
            next_at = max(next_at + 0.050, loop.time())
            await asyncio.sleep(next_at - loop.time())
            await turns.take()
            started = time.monotonic()
            busy(0.005)
            period = int(started // 0.050)
            starts[period] = starts.get(period, 0) + 1
            counts[i] += 1
            turns.spent(time.monotonic() - started)

    await asyncio.gather(*(room(i) for i in range(8)))
    assert max(starts.values()) <= 3, starts
    assert sum(counts) >= 8, counts
    assert max(counts) - min(counts) <= 2, counts  # first come, first served


async def test_a_room_waiting_for_a_turn_can_be_stopped(settings: Any) -> None:
    settings.LAB_LOOP_BUDGET_MS = 1
    turns = pacing.Turns()
    await turns.take()
    turns.spent(0.005)  # the budget of this period is gone
    waiter = asyncio.ensure_future(turns.take())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await asyncio.wait_for(turns.take(), 0.5)  # the line moves on without it


def room(kind: str = "workshop", name: str = "producer-retry-duplicate") -> Room:
    made = Room(f"{kind}-{len(registry.rooms)}", load(name), kind=kind)
    registry.add(made)
    return made


def play(made: Room) -> None:
    made.submit(Control("play"))
    made.tick()


def test_past_the_cap_a_room_is_refused_play_and_says_why(settings: Any) -> None:
    settings.LAB_MAX_PLAYING_ROOMS = 2
    first, second, third = room(), room(), room()
    play(first)
    play(second)
    assert first.playing and second.playing

    play(third)

    assert not third.playing
    assert third.notice is not None
    assert "already playing 2 runs at once (LAB_MAX_PLAYING_ROOMS=2)" in third.notice
    assert "step and seek still work" in third.notice
    third.submit(Control("step"))  # stepping is still allowed
    third.tick()
    assert third.timeline.position == 1
    second.submit(Control("pause"))
    second.tick()
    play(third)
    assert third.playing


def test_private_copies_cannot_take_the_workshop_rooms_slots(settings: Any) -> None:
    settings.LAB_MAX_PLAYING_ROOMS = 4
    sandboxes = [room("sandbox") for _ in range(3)]
    for sandbox in sandboxes:
        play(sandbox)

    assert [s.playing for s in sandboxes] == [True, True, False]
    assert "LAB_MAX_PLAYING_PRIVATE=2" in str(sandboxes[2].notice)
    workshop = room()
    play(workshop)
    assert workshop.playing


@pytest.mark.django_db
async def test_a_presenter_pressing_play_over_the_cap_gets_the_message(settings: Any) -> None:
    settings.LAB_MAX_PLAYING_ROOMS = 1
    playing = room()
    play(playing)
    other = room()

    result = await service.control(other.id, {"action": "play"}, presenter=True)
    to_end = await service.control(other.id, {"action": "speed", "speed": "end"}, presenter=True)

    assert "LAB_MAX_PLAYING_ROOMS=1" in str(result["error"])
    assert "LAB_MAX_PLAYING_ROOMS=1" in str(to_end["error"])
    assert not other.pending  # nothing was queued
    slower = await service.control(other.id, {"action": "speed", "speed": "2"}, presenter=True)
    assert slower["error"] is None  # a speed that does not start the run is not refused


def test_a_room_nobody_watches_pauses_where_it_is(settings: Any) -> None:
    settings.LAB_PAUSE_UNWATCHED_S = 30
    made = room()
    play(made)
    made.tick(time.monotonic() + 0.5)  # half a second of the run at 1x
    position = made.timeline.position
    assert made.playing and position > 0

    made.pause_if_unwatched(made.watched_at + 29)
    assert made.playing
    made.pause_if_unwatched(made.watched_at + 31)

    assert not made.playing
    made.tick(time.monotonic() + 5)
    assert made.timeline.position == position  # paused, not reset
    assert made.status()["playing"] is False


def test_a_watched_room_keeps_playing(settings: Any) -> None:
    settings.LAB_PAUSE_UNWATCHED_S = 30

    class Browser:
        async def base_send(self, message: dict[str, Any]) -> None:
            pass

    made = room()
    made.attach(Browser())
    play(made)
    made.pause_if_unwatched(made.watched_at + 3600)
    assert made.playing


async def test_the_worker_pauses_the_rooms_no_web_process_watches(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scale-out: the worker has no viewers; a room is watched while some web process keeps
    a relay in its channel group."""
    settings.LAB_RUNTIME = "worker"
    settings.LAB_PAUSE_UNWATCHED_S = 30
    monkeypatch.setattr(pacing, "remote_watching", False)
    layer = InMemoryChannelLayer()
    watched, forgotten = room(), room()
    for made in (watched, forgotten):
        play(made)
        made.watched_at -= 3600
    forgotten.pause_if_unwatched(time.monotonic())
    assert forgotten.playing  # until the worker tracks the web processes, all count as watched

    forgotten.watched_at -= 3600  # half an hour later, the worker tracking them
    await layer.group_add(watched.group, "relay.watched")
    await worker.check_watched(layer)
    for made in (watched, forgotten):
        made.pause_if_unwatched(time.monotonic())

    assert watched.playing
    assert not forgotten.playing

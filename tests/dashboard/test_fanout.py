"""The audience of a room in one process: roles, and joins racing frames (scale-out)."""

from typing import Any

from dashboard.live.fanout import Audience


class Viewer:
    def __init__(self) -> None:
        self.got: list[str] = []

    async def base_send(self, message: dict[str, Any]) -> None:
        self.got.append(message["text"])


async def test_presenters_get_their_variant_and_attendees_the_public_one() -> None:
    audience, presenter, attendee = Audience(), Viewer(), Viewer()
    audience.add(presenter, presenter=True)
    audience.add(attendee, presenter=False)

    await audience.send(7, "public", "with notes")

    assert (presenter.got, attendee.got) == (["with notes"], ["public"])


async def test_frames_queued_while_joining_follow_the_snapshot() -> None:
    audience, viewer = Audience(), Viewer()
    audience.add(viewer, presenter=False, pending=True)
    await audience.send(10, "f10")  # already in the snapshot (taken at 10)
    await audience.send(11, "f11")  # newer: queued until the snapshot is sent

    await audience.ready(viewer, after_seq=10)
    await audience.send(12, "f12")

    assert viewer.got == ["f11", "f12"]


async def test_a_frame_arriving_after_a_snapshot_that_has_it_is_not_sent_again() -> None:
    audience, viewer = Audience(), Viewer()
    audience.add(viewer, presenter=False, pending=True)

    # The worker answered the snapshot (at 11) before frame 11 reached this process's relay.
    await audience.ready(viewer, after_seq=11)
    await audience.send(11, "f11")
    await audience.send(12, "f12")

    assert viewer.got == ["f12"]


def playing(speed: str, seconds: float) -> tuple[Any, list[str | None]]:
    """A room playing a stream at ``speed`` for ``seconds`` of 50 ms ticks: it, and each tick's
    frame (None: no frame that tick)."""
    from broker.scenario import load_text
    from dashboard.live.runtime import Control, Room
    from dashboard.management.commands.bench_fanout import bench_scenario

    room = Room("r1", load_text(bench_scenario(0), "stream"))  # an order every 20 ms, 60 s
    room.tick(0.0)
    room.submit(Control("speed", speed=speed))
    room.submit(Control("play"))
    frames = [room.tick(i * 0.05) for i in range(1, int(seconds / 0.05) + 1)]
    assert room.playing  # still going
    return room, frames


def event_list_refreshes(speed: str, seconds: float) -> int:
    """How many frames of a room playing at ``speed`` for ``seconds`` carry the event list."""
    _room, frames = playing(speed, seconds)
    assert sum(1 for f in frames if f) >= seconds * 9
    return sum(1 for f in frames if f is not None and '<section id="events"' in f)


def test_up_to_8x_every_tick_is_a_frame_and_at_16x_every_other_one() -> None:
    """20 frames a second up to 8x; at 16x 10, each with two ticks' changes (a browser that
    handles each frame of a busy room at 16x falls behind: docs/performance.md)."""
    _room, frames = playing("8", 2.0)
    assert all(frames)
    _room, frames = playing("16", 2.0)
    # the first tick is the press on play: sent at once, like any press
    assert [f is not None for f in frames] == [True] + [False, True] * 19 + [False]


def test_at_16x_a_pause_sends_what_the_skipped_tick_changed_at_once() -> None:
    from dashboard.live.runtime import Control

    room, frames = playing("16", 2.0)
    assert frames[-1] is None  # the last tick's records wait for the next frame
    room.submit(Control("pause"))

    frame = room.tick(2.05)

    assert frame is not None and not room.playing
    newest = max(room.model.lanes["orders-0"].cells)
    assert f'id="c-orders-0-{newest}"' in frame
    assert f'id="c-orders-0-{newest}"' not in (frames[-2] or "")


def test_the_event_list_refreshes_less_often_at_speeds_nobody_reads_it() -> None:
    """Twice a second at 1x; at 16x, where it changes faster than anyone reads, every 2 s
    (each refresh carries the list and the diagram: the bulk of a frame's bytes)."""
    assert event_list_refreshes("1", 3.0) >= 5
    assert event_list_refreshes("16", 3.0) <= 2

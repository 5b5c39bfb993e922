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


def event_list_refreshes(speed: str, seconds: float) -> int:
    """How many frames of a room playing at ``speed`` for ``seconds`` carry the event list."""
    from broker.scenario import load_text
    from dashboard.live.runtime import Control, Room
    from dashboard.management.commands.bench_fanout import bench_scenario

    room = Room("r1", load_text(bench_scenario(0), "stream"))  # an order every 20 ms, 60 s
    room.tick(0.0)
    room.submit(Control("speed", speed=speed))
    room.submit(Control("play"))
    frames = [room.tick(i * 0.05) for i in range(1, int(seconds / 0.05) + 1)]
    assert room.playing and sum(1 for f in frames if f) > seconds * 15  # still going
    return sum(1 for f in frames if f is not None and '<section id="events"' in f)


def test_the_event_list_refreshes_less_often_at_speeds_nobody_reads_it() -> None:
    """Twice a second at 1x; at 16x, where it changes faster than anyone reads, every 2 s
    (each refresh carries the list and the diagram: the bulk of a frame's bytes)."""
    assert event_list_refreshes("1", 3.0) >= 5
    assert event_list_refreshes("16", 3.0) <= 2

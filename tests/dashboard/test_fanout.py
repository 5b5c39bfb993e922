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

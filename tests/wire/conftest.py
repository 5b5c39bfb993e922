from collections.abc import Iterator

import pytest

from tests.wire.room import Room, start_room, stop_room


@pytest.fixture
def room() -> Iterator[Room]:
    """A fresh headless room (3 brokers, Kafka's defaults) for one test."""
    started = start_room()
    try:
        yield started
    finally:
        stop_room(started)

from collections.abc import Iterator

import pytest
from channels.layers import channel_layers

from dashboard.runtime import registry


@pytest.fixture(autouse=True)
def fresh_rooms_and_layers() -> Iterator[None]:
    """Each test starts with no rooms and an empty in-memory channel layer."""
    registry.clear()
    channel_layers.backends.clear()
    yield
    registry.clear()
    channel_layers.backends.clear()

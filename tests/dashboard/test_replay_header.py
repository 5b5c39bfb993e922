"""A room that replays a saved run says so in its header; a room opened from the catalogue
does not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from dashboard import ratelimit
from tests.dashboard.test_runs import live_run, saved

pytestmark = pytest.mark.django_db
REPLAY = "replay of a saved run</strong>: its recorded presses happen again at the same steps"


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    ratelimit.reset()
    yield
    ratelimit.reset()


def test_a_replay_room_says_it_is_a_replay(client: Client) -> None:
    run = saved(live_run())
    url = client.post(f"/runs/{run.id}/replay/")["Location"]

    page = client.get(url).text

    assert '<strong class="replay-flag">' + REPLAY in page


def test_a_room_opened_from_the_catalogue_is_not_called_a_replay(client: Client) -> None:
    url = client.post("/", {"scenario": "producer-retry-duplicate"})["Location"]

    page = client.get(url).text

    assert "run-header" in page
    assert "replay of a saved run" not in page

"""Saved runs in words: a room that replays one says so in its header (a room opened from the
catalogue does not), and the run's page judges it by its semantics, each count with its meaning."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from dashboard.workshops import ratelimit
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


def test_the_run_page_leads_with_the_semantics_and_explains_each_count(client: Client) -> None:
    run = saved(live_run())

    page = client.get(f"/runs/{run.id}/").text

    assert "\u2713 at-least-once held: nothing lost, 3 duplicates in the log" in page
    assert (
        '<div class="count count-duplicated_in_log is-nonzero" title="Messages with more than one '
        'copy in the committed log (each message counted once)."><dt>duplicated in the log</dt>'
        "<dd>3</dd></div>"
    ) in page

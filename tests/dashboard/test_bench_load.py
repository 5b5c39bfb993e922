"""The load benchmark, briefly: its report, and a tiny run of the whole command."""

import io
import re

from django.core.management import call_command

from dashboard.management.commands.bench_load import Figures


def test_the_report_gives_each_figure_with_its_unit() -> None:
    figures = Figures(
        rooms=3,
        viewers=2,
        speed="1",
        elapsed=2.0,
        frames_per_s=[18.0, 20.0],
        delays=[10.0, 20.0, 300.0],
        presses=[100.0, 120.0],
        http=[40.0, 900.0],
        refusals=["This run cannot play now: ..."],
        rss_mb=(70.0, 80.0),
    )
    text = figures.text()
    assert "playing: 2 rooms; refused play: 1" in text
    assert "the lab said: This run cannot play now" in text
    assert "frames/s per playing room: min 18.0, median 19.0, max 20.0" in text
    assert "frame delay send -> receipt: p50 20 ms, p99 300 ms, max 300 ms (3)" in text
    assert "HTTP GET of a room page under load: p50 470 ms, p99 900 ms" in text
    assert "server RSS: 70 MB before, 80 MB after" in text


def test_past_the_cap_the_lab_refuses_the_extra_room_and_plays_the_others() -> None:
    out = io.StringIO()
    call_command(
        "bench_load", rooms=2, viewers=1, seconds=2.0, max_playing=1, press_every=0.5, stdout=out
    )
    text = out.getvalue()
    assert "playing: 1 rooms; refused play: 1" in text, text
    assert "LAB_MAX_PLAYING_ROOMS=1" in text, text
    assert re.search(r"frames/s per playing room: min [1-9]", text), text
    assert re.search(r"control press -> seen by its presenter: p50 \d+ ms", text), text
    assert re.search(r"HTTP GET of a room page under load: p50 \d+ ms", text), text

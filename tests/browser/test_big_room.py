"""A room whose partition holds 100,000 records, played at 16x in a real browser: the page keeps
up (frames arrive in order) and answers a press on pause.

How long the browser's main thread spends per frame is measured, not tested:
``python manage.py bench_browser`` (docs/performance.md).
"""

from itertools import pairwise
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from dashboard.management.commands.bench_fanout import bench_scenario

FRAMES = 10
SLOW_MS = 60_000  # the first tick writes the 100,000 records (seconds on a busy machine)


@pytest.mark.timeout(300)  # writing 100,000 records and playing them takes a busy machine long
def test_a_big_room_at_16x_keeps_its_frames_in_order_and_pauses_when_asked(
    browser: Browser, live_url: str, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.set_default_timeout(SLOW_MS)
    page.goto(live_url + "/")
    scenario = tmp_path / "big.toml"
    scenario.write_text(bench_scenario(100_000, orders=20_000))
    page.set_input_files("#id_scenario", str(scenario))
    page.get_by_role("button", name="Open it").click()
    expect(page.locator("#conn")).to_have_text("live", timeout=SLOW_MS)
    sixteen = page.locator('button.speed[value="16"]')
    sixteen.click()
    expect(sixteen).to_have_attribute("aria-pressed", "true", timeout=SLOW_MS)
    play = page.locator("#btn-play-pause")
    play.click()
    expect(play).to_have_text("❚❚ pause", timeout=SLOW_MS)
    before = page.evaluate("() => window.labFrames.length")
    page.wait_for_function(f"() => window.labFrames.length >= {before + FRAMES}")

    play.click()

    # Paused, not ended (the stream lasts minutes of virtual time): the press took effect.
    expect(play).to_have_text("▶ play", timeout=SLOW_MS)
    expect(play).to_be_enabled()
    frames = page.evaluate("() => window.labFrames")
    # In order: each frame one past the one before. A browser that could not keep up (its
    # main thread too busy to read) is skipped by the fan-out and caught up with a full frame.
    assert frames[0][1] == "full"
    for (before_seq, _kind), (seq, kind) in pairwise(frames):
        assert seq == before_seq + 1 or (seq > before_seq and kind == "full"), frames

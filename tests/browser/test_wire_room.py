"""A room with real Kafka clients in a real browser: the presenter lets them in, the page shows
where to connect, and a kafka-python producer's records arrive in the lane."""

import re
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.browser.test_room import new_page
from tests.dashboard.wire_rooms import QUIET_SCENARIO, send


def test_a_real_producers_three_messages_arrive_in_the_lane(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page = new_page(browser)
    page.goto(live_url + "/")
    scenario = tmp_path / "quiet.toml"
    scenario.write_text(QUIET_SCENARIO)
    page.set_input_files("#id_scenario", str(scenario))
    page.get_by_role("button", name="Open it").click()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#kafka-bootstrap")).to_have_count(0)

    page.get_by_role("button", name="Let real Kafka clients in").click()
    address = page.get_by_label("Bootstrap address")
    expect(address).to_have_value(re.compile(r"^127\.0\.0\.1:\d+$"))
    expect(page.locator("#kafka-clients")).to_have_text("No client connected.")
    bootstrap = address.input_value()

    assert send(bootstrap, [b"one", b"two", b"three"], "browser-test") == [0, 1, 2]

    expect(page.locator("#cells-orders-0 > li")).to_have_count(3)
    expect(page.locator("#c-orders-0-2")).to_have_attribute("data-msg", "browser-test-3")
    expect(page.locator("#producers")).to_contain_text("browser-test")
    screenshot(page, "room-real-kafka-clients", full_page=True)

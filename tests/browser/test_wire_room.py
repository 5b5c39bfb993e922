"""A room with real Kafka clients in a real browser: the presenter lets them in, the page shows
where to connect, a kafka-python producer's records arrive in the lane, and the verdict panel
judges them."""

import re
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from tests.browser.test_room import open_uploaded
from tests.dashboard.wire_rooms import QUIET_SCENARIO, producer, send


def open_listening_room(browser: Browser, live_url: str, tmp_path: Path) -> tuple[Page, str]:
    """A quiet room uploaded (so presented) by the page, its listeners opened: (page, bootstrap)."""
    page = open_uploaded(browser, live_url, tmp_path / "quiet.toml", QUIET_SCENARIO)
    expect(page.locator("#kafka-bootstrap")).to_have_count(0)

    page.get_by_role("button", name="Let real Kafka clients in").click()
    address = page.get_by_label("Bootstrap address")
    expect(address).to_have_value(re.compile(r"^127\.0\.0\.1:\d+$"))
    expect(page.locator("#kafka-clients")).to_have_text("No client connected.")
    return page, address.input_value()


def test_a_real_producers_three_messages_arrive_in_the_lane(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page, bootstrap = open_listening_room(browser, live_url, tmp_path)

    assert send(bootstrap, [b"one", b"two", b"three"], "browser-test") == [0, 1, 2]

    expect(page.locator("#cells-orders-0 > li")).to_have_count(3)
    expect(page.locator("#c-orders-0-2")).to_have_attribute("data-msg", "browser-test-3")
    expect(page.locator("#producers")).to_contain_text("browser-test")
    screenshot(page, "room-real-kafka-clients", full_page=True)


def test_the_verdict_panel_counts_a_real_producers_records_and_its_duplicate(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page, bootstrap = open_listening_room(browser, live_url, tmp_path)
    # The client.id is the name of the scenario's producer (which sends nothing itself), so
    # the room's fault buttons for that producer reach this client's connections; its
    # message ids are p1.wire-N, apart from the simulated p1's.
    config = {"enable_idempotence": False, "retries": 5}
    assert send(bootstrap, [b"one", b"two"], "p1", **config) == [0, 1]

    verdict = page.locator("#verdict")
    expect(verdict.locator(".count-produced dd")).to_have_text("2")
    expect(verdict.locator(".count-acknowledged dd")).to_have_text("2")
    expect(verdict.locator(".count-in_log dd")).to_have_text("2")
    expect(verdict).to_contain_text("No anomaly so far.")

    # (exact: the real client's own button, "... to p1", is there too, disabled once the
    # client has closed its connections)
    page.get_by_role("button", name="Drop the next produce response", exact=True).click()
    expect(page.locator("#faults .armed")).to_contain_text("drop-response")
    # The answer is lost: the client times out (3 s), reconnects and sends the batch again,
    # which the leader appends a second time.
    assert send(bootstrap, [b"three"], "p1", **config) == [3]

    expect(verdict.locator(".count-duplicated_in_log dd")).to_have_text("1", timeout=15_000)
    expect(verdict.locator(".count-produced dd")).to_have_text("3")
    card = verdict.locator(".anomaly", has_text="p1.wire-3 at orders-0@2, orders-0@3")
    expect(card).to_contain_text("two copies in the log")
    card.click()  # it lights up both copies in the lane
    expect(page.locator(".cell.is-highlighted")).to_have_count(2)
    screenshot(page, "room-real-kafka-clients-verdict", full_page=True)


def test_a_fault_button_answers_a_real_producer_with_an_error_it_recovers_from(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page, bootstrap = open_listening_room(browser, live_url, tmp_path)
    shop = producer(bootstrap, "browser-shop", acks="all")
    try:
        assert shop.send("orders", b"one").get(timeout=10).offset == 0
        button = page.get_by_role(
            "button", name="Answer browser-shop's next produce with NOT_LEADER_OR_FOLLOWER"
        )
        expect(button).to_be_enabled()
        button.click()
        armed = page.locator("#faults .armed")
        expect(armed).to_contain_text("answer NOT_LEADER_OR_FOLLOWER to")
        expect(armed).to_contain_text("from browser-shop")

        # kafka-python refreshes its metadata and sends again: the second record is written.
        assert shop.send("orders", b"two").get(timeout=15).offset == 1
        expect(page.locator("#cells-orders-0 > li")).to_have_count(2)
        expect(armed).to_have_count(0)  # the rule hit once and is spent
        diagram = page.locator("#diagram")
        expect(diagram.locator(".msd-msg.is-error")).to_contain_text(
            ["Produce NOT_LEADER_OR_FOLLOWER"]
        )
        expect(diagram.locator("text.msd-actor.is-external")).to_have_text(["real client"])
        expect(diagram.locator("text.msd-actor", has_text="browser-shop")).to_have_count(1)
        screenshot(page, "room-real-client-fault", full_page=True)
    finally:
        shop.close(timeout=5)
    expect(
        page.get_by_role("button", name="Break every connection of browser-shop now")
    ).to_be_disabled()

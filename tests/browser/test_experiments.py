"""The experiments panel ("Try it") in a real browser: more messages after the script, and a
settings change that forks the run and shows its new value."""

from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser import test_workshop
from tests.browser.test_layout import (
    PHONE,
    assert_no_sideways_scroll,
    join,
    new_page,
    play_to_the_end,
    present,
)

contexts = test_workshop.contexts  # the fixture: browser contexts closed after each test
POSITION = "#scrubber-panel .scrub-pos"


def cells(page: Page) -> list[str]:
    return page.locator("#cells-orders-0 > li").evaluate_all(
        "els => els.map(e => e.dataset.offset + ':' + e.dataset.msg)"
    )


def test_send_three_more_after_the_script_ends_adds_three_cells(
    browser: Browser, live_url: str, contexts: list[BrowserContext], screenshot
) -> None:
    page = present(browser, contexts, live_url)
    play_to_the_end(page)
    expect(page.locator("#cells-orders-0 > li")).to_have_count(4)

    page.locator("#exp-count-p1").fill("3")
    page.locator("#exp-send-p1").click()
    expect(page.locator("#faults .pressed")).to_contain_text("Send 3 more from p1 to orders")
    play_to_the_end(page)

    expect(page.locator("#cells-orders-0 > li")).to_have_count(7)
    assert cells(page)[4:] == ["4:p1-3", "5:p1-4", "6:p1-5"]
    screenshot(page, "room-experiments")


def test_a_refused_count_is_explained_and_sends_nothing(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url)
    play_to_the_end(page)

    count = page.locator("#exp-count-p1")
    count.evaluate("el => el.removeAttribute('max')")  # past the browser's own check
    count.fill("5000")
    page.locator("#exp-send-p1").click()

    expect(page.locator("#controls-error")).to_contain_text(
        "A whole number from 1 to 1,000 (LAB_MAX_SEND_MORE), got '5000'"
    )
    expect(page.locator("#faults .pressed")).to_have_count(0)
    expect(page.locator("#cells-orders-0 > li")).to_have_count(4)


def test_a_settings_change_at_the_start_forks_the_run_and_shows_the_new_value(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url)
    play_to_the_end(page)
    expect(page.locator("#cells-orders-0 .cell.is-duplicate")).to_have_count(1)
    page.locator("#scrubber").fill("0")
    expect(page.locator(POSITION)).to_contain_text("event 0 /")
    expect(page.locator("#run-header")).to_contain_text("viewing the past")

    settings = page.locator("#exp-configure-p1")
    expect(settings.locator("#exp-now-p1")).to_contain_text("enable.idempotence=false")
    settings.locator('select[name="enable.idempotence"]').select_option("true")
    settings.get_by_role("button", name="Apply to p1").click()

    # The recorded future is gone (a fork at event 0) and the producer starts idempotent.
    expect(page.locator(POSITION)).to_have_text("event 0 / 0")
    expect(page.locator("#run-header")).not_to_contain_text("viewing the past")
    expect(page.locator("#exp-now-p1")).to_contain_text("enable.idempotence=true")
    expect(page.locator("#faults .pressed")).to_contain_text(
        "Configure p1: enable.idempotence=true"
    )
    play_to_the_end(page)
    # The lost answer's retry is now recognised by the leader: no second copy.
    expect(page.locator("#cells-orders-0 > li")).to_have_count(3)
    expect(page.locator("#cells-orders-0 .cell.is-duplicate")).to_have_count(0)
    expect(page.locator("#verdict .count-duplicated_in_log dd")).to_have_text("0")


def test_a_consumer_started_from_the_panel_joins_and_the_panel_fits_a_phone(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url, "consumer-cooperative-rebalance")
    play_to_the_end(page)

    page.locator("#exp-start-consumer").click()
    expect(page.locator("#faults .pressed")).to_contain_text("Start a consumer in group billing")
    play_to_the_end(page)

    expect(page.locator("#consumers")).to_contain_text("c3")
    expect(page.locator("#exp-configure-c3")).to_contain_text("consumer c3")
    page.set_viewport_size(PHONE)
    page.locator("#experiments").scroll_into_view_if_needed()
    assert_no_sideways_scroll(page)
    # Nothing in the panel reaches past the phone's edge, in large text (L) too.
    widest = (
        "el => Math.max(...[el, ...el.querySelectorAll('*')]"
        ".map(e => e.getBoundingClientRect().right))"
    )
    assert page.locator("#experiments").evaluate(widest) <= PHONE["width"]
    page.keyboard.press("l")
    expect(page.locator("html")).to_have_attribute("data-size", "large")
    assert page.locator("#experiments").evaluate(widest) <= PHONE["width"]


def test_an_attendee_gets_no_experiment_controls(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    presenter = present(browser, contexts, live_url)
    attendee = new_page(browser, contexts, PHONE)
    join(attendee, presenter)

    expect(presenter.locator("#experiments")).to_be_visible()
    expect(attendee.locator("#experiments")).to_be_hidden()

"""The verdict and the story in a real browser: a lost card lights up the record that was lost,
the story tells what the engine did, and an actor that has not started is not called crashed."""

from playwright.sync_api import Browser, Page, expect

VIEWPORT = {"width": 1920, "height": 1080}
ACKS1_FAILOVER = "acks=1: acknowledged records vanish when the leader fails over"
RETRY_DUPLICATE = "At-least-once: a lost acknowledgement makes the retry a duplicate"
COMMIT_AFTER_PROCESSING = "Commit after processing: a crash before the commit reprocesses"


def open_builtin(browser: Browser, url: str, title: str) -> Page:
    page = browser.new_page(viewport=VIEWPORT, reduced_motion="reduce")
    page.set_default_timeout(10_000)
    page.goto(url + "/")
    page.get_by_role("button", name=f"Open {title}").click()
    expect(page.locator("#conn")).to_have_text("live")
    return page


def run_to_the_end(browser: Browser, url: str, title: str) -> Page:
    """A built-in scenario opened and played to the end of its run."""
    page = open_builtin(browser, url, title)
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#run-header")).to_contain_text("run over", timeout=15_000)
    return page


def test_the_lost_card_highlights_the_truncated_ghost_not_the_live_record(
    browser: Browser, live_url: str
) -> None:
    page = run_to_the_end(browser, live_url, ACKS1_FAILOVER)
    expect(page.locator("#verdict .verdict-headline")).to_have_text(
        "\u2717 at-least-once broken: 3 lost"
    )
    ghost = page.locator("#ghosts-orders-0 #g-orders-0-0-p1-0")
    live = page.locator("#c-orders-0-0")
    expect(ghost).to_have_attribute("data-msg", "p1-0")
    expect(live).to_have_attribute("data-msg", "p1-3")

    card = page.locator("#verdict .anomaly", has_text="p1-0 at orders-0@0")
    card.click()

    expect(card).to_have_attribute("aria-pressed", "true")
    expect(ghost).to_have_class("cell is-ghost is-highlighted")
    expect(page.locator(".cell.is-highlighted")).to_have_count(1)
    expect(live).not_to_have_class("is-highlighted")


def test_the_story_tells_the_duplicate_and_keeps_the_script_apart(
    browser: Browser, live_url: str
) -> None:
    page = run_to_the_end(browser, live_url, RETRY_DUPLICATE)

    happened = page.locator("#narration .story-happened")
    script = page.locator("#narration .story-script")

    expect(happened).to_contain_text(
        "broker-1 appended p1-0 at orders-0@1 again (first at 0): the retry of a batch whose "
        "answer was lost, and idempotence is off."
    )
    expect(script).to_contain_text("The broker appends the same message again.")
    expect(happened).not_to_contain_text("The broker appends the same message again.")


def test_a_consumer_before_its_start_is_not_started_and_cannot_be_restarted(
    browser: Browser, live_url: str
) -> None:
    page = open_builtin(browser, live_url, COMMIT_AFTER_PROCESSING)

    expect(page.locator("#consumer-billing .consumer-state")).to_have_text(
        "not started (starts at 0 ms)"
    )
    expect(page.locator("#consumers")).not_to_contain_text("crashed")
    restart = page.get_by_role("button", name="Restart consumer billing")
    expect(restart).to_be_disabled()
    expect(restart).to_have_attribute("title", "billing has not started yet (it starts at 0 ms)")

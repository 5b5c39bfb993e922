"""The room's page as a class sees it: on a 1024x768 projector, on a 390 px phone, and at
1440 px; the presenter link kept off the projected page; projector mode; the keyboard focus."""

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser import test_workshop

PROJECTOR = {"width": 1024, "height": 768}
PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1440, "height": 900}
POSITION = "#scrubber-panel .scrub-pos"


contexts = test_workshop.contexts  # the fixture: browser contexts closed after each test


def new_page(
    browser: Browser, contexts: list[BrowserContext], viewport: dict[str, int], **options
) -> Page:
    context = browser.new_context(viewport=viewport, reduced_motion="reduce", **options)
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def open_scenario(page: Page, live_url: str, name: str) -> None:
    """Open a built-in scenario in a workshop room: this page presents it."""
    page.goto(live_url + "/")
    page.locator(f'button[name="scenario"][value="{name}"]').click()
    expect(page.locator("#conn")).to_have_text("live")


def present(
    browser: Browser,
    contexts: list[BrowserContext],
    live_url: str,
    name: str = "producer-retry-duplicate",
    viewport: dict[str, int] = PROJECTOR,
    **options,
) -> Page:
    """A new page (``viewport``, context ``options``) presenting built-in scenario ``name``."""
    page = new_page(browser, contexts, viewport, **options)
    open_scenario(page, live_url, name)
    return page


def join(page: Page, presenter: Page) -> None:
    page.goto(presenter.url)
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#role-badge")).to_have_text("attendee")


def play_to_the_end(page: Page) -> None:
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#run-header")).to_contain_text("run over", timeout=30_000)


def assert_no_sideways_scroll(page: Page) -> None:
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px window"


def top_of(page: Page, selector: str) -> float:
    return page.locator(selector).first.evaluate("el => el.getBoundingClientRect().top")


def in_first_screen(page: Page, selector: str, visible_px: int = 40) -> bool:
    """At least ``visible_px`` of the element show without scrolling, once the page settles:
    frames may still be moving things for a moment (a busy machine delivers them late), so
    this waits up to 10 s for it, as a user's eye would, and says whether it came."""
    try:
        page.wait_for_function(
            """([selector, visible]) => {
                const el = document.querySelector(selector);
                if (!el) return false;
                const r = el.getBoundingClientRect();
                return r.top + visible <= innerHeight && r.bottom > 0;
            }""",
            arg=[selector, visible_px],
            timeout=10_000,
        )
    except PlaywrightTimeout:
        return False
    return True


# -- fits a projector and a phone ---------------------------------------------------------
@pytest.mark.parametrize(
    "scenario", ["txn-abort-read-committed", "consumer-commit-after-processing"]
)
def test_the_room_fits_a_projector_and_a_phone_without_sideways_scroll(
    browser: Browser, live_url: str, contexts: list[BrowserContext], scenario: str, screenshot
) -> None:
    presenter = present(browser, contexts, live_url, scenario)
    attendee = new_page(browser, contexts, PHONE)
    join(attendee, presenter)
    play_to_the_end(presenter)
    expect(attendee.locator("#run-header")).to_contain_text("run over", timeout=30_000)

    for page, viewport in ((presenter, PROJECTOR), (attendee, PHONE)):
        for size in (viewport, PHONE if viewport is PROJECTOR else PROJECTOR):
            page.set_viewport_size(size)
            assert_no_sideways_scroll(page)
            # The lanes scroll inside their own box instead of widening the page.
            lane = page.locator(".lane-scroll").first
            assert lane.evaluate("el => el.scrollWidth > el.clientWidth")
            assert lane.evaluate("el => el.getBoundingClientRect().right") <= size["width"]
    # On a phone, the verdict comes right after the lanes (one column, attendee's reading order).
    attendee.set_viewport_size(PHONE)
    if scenario.startswith("consumer"):
        screenshot(attendee, "room-phone")
    # Large text (L) on a phone: what cannot wrap (a consumer's table) scrolls in its panel.
    attendee.keyboard.press("l")
    expect(attendee.locator("html")).to_have_attribute("data-size", "large")
    assert_no_sideways_scroll(attendee)
    attendee.keyboard.press("l")
    assert top_of(attendee, "#verdict") > top_of(attendee, "#lanes")
    assert top_of(attendee, "#verdict") < top_of(attendee, "#diagram")
    # Nothing overlaps what an attendee taps: the element at each button's centre is the button.
    for selector in ("#btn-detach", "#btn-sandbox"):
        button = attendee.locator(selector)
        button.scroll_into_view_if_needed()
        assert button.evaluate(
            "b => { const r = b.getBoundingClientRect();"
            " const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
            " return b.contains(hit); }"
        ), f"{selector} is covered"


def test_lanes_and_verdict_are_in_the_first_screen_of_a_projector(
    browser: Browser, live_url: str, contexts: list[BrowserContext], screenshot
) -> None:
    presenter = present(browser, contexts, live_url)
    play_to_the_end(presenter)
    assert_no_sideways_scroll(presenter)
    assert in_first_screen(presenter, "#verdict .counts", visible_px=60)
    assert in_first_screen(presenter, "#cells-orders-0 > li")
    # The lane's first cell is whole: a lane of a few cells has nothing to scroll, though its
    # LEO mark stands in the column after its last cell.
    assert presenter.evaluate(
        "() => document.getElementById('c-orders-0-0').getBoundingClientRect().left"
        " >= document.querySelector('.lane-scroll').getBoundingClientRect().left"
    )
    # Projector mode gives the diagram a place in the first screen too: its actors and first
    # arrow (40 px; it once showed 13, and a few pixels more above it hid it on a busy machine).
    presenter.keyboard.press("p")
    expect(presenter.locator("#projector-toggle")).to_have_attribute("aria-pressed", "true")
    assert_no_sideways_scroll(presenter)
    assert in_first_screen(presenter, "#verdict .counts", visible_px=60)
    assert in_first_screen(presenter, "#cells-orders-0 > li", visible_px=80)
    assert in_first_screen(presenter, "#diagram svg", visible_px=40)
    screenshot(presenter, "room-projector")
    # ... right after the lanes: nothing in between.
    assert (
        presenter.evaluate(
            "() => document.getElementById('diagram').getBoundingClientRect().top"
            " - document.querySelector('.lane-scroll').getBoundingClientRect().bottom"
        )
        < 80
    )


# -- the presenter link ---------------------------------------------------------------------
def test_the_presenter_link_is_not_shown_until_copied(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    presenter = present(
        browser, contexts, live_url, permissions=["clipboard-read", "clipboard-write"]
    )
    secret = presenter.locator("#presenter-link").get_attribute("href")
    assert "/present/" in secret
    expect(presenter.locator("#presenter-link")).to_be_hidden()
    assert secret not in presenter.locator("body").inner_text()
    expect(presenter.locator("#join-code")).to_be_visible()

    presenter.get_by_role("button", name="Copy presenter link").click()
    expect(presenter.locator("#copy-status")).to_have_text("copied")
    assert presenter.evaluate("navigator.clipboard.readText()") == secret
    expect(presenter.locator("#presenter-link")).to_be_hidden()
    assert secret not in presenter.locator("body").inner_text()


def test_without_a_clipboard_the_link_is_copied_by_selection_and_hidden_at_once(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    """A lab served on a network address over plain http has no clipboard API."""
    presenter = new_page(browser, contexts, PROJECTOR)
    presenter.add_init_script(
        "Object.defineProperty(navigator, 'clipboard', {value: undefined});"
        "document.addEventListener('copy', () => {"
        " window.copiedText = String(window.getSelection()); });"
    )
    open_scenario(presenter, live_url, "producer-retry-duplicate")
    secret = presenter.locator("#presenter-link").get_attribute("href")
    presenter.get_by_role("button", name="Copy presenter link").click()
    assert presenter.evaluate("window.copiedText") == secret
    expect(presenter.locator("#copy-status")).to_have_text("copied")
    expect(presenter.locator("#presenter-link")).to_be_hidden()


# -- projector mode -----------------------------------------------------------------------------
def test_projector_mode_hides_the_notes_and_the_link_and_shows_the_code_big(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    presenter = present(browser, contexts, live_url)
    presenter.locator("#btn-step").click()
    expect(presenter.locator(POSITION)).to_contain_text("event 1 /")
    notes = presenter.locator("#speaker-notes")
    expect(notes).to_be_visible()
    code = presenter.locator("#join-code")
    size = code.evaluate("el => parseFloat(getComputedStyle(el).fontSize)")

    presenter.get_by_role("button", name="▣ projector").click()
    expect(notes).to_be_hidden()
    expect(presenter.locator("#copy-presenter-link")).to_be_hidden()
    expect(presenter.locator("#ask")).to_be_hidden()
    expect(code).to_be_visible()
    assert code.evaluate("el => parseFloat(getComputedStyle(el).fontSize)") > size
    # The presenter keeps driving the run in projector mode, and it stays on after a reload.
    presenter.keyboard.press("PageDown")
    expect(presenter.locator(POSITION)).to_contain_text("event 2 /")
    expect(notes).to_be_hidden()
    presenter.reload()
    expect(presenter.locator("#conn")).to_have_text("live")
    expect(presenter.locator("#speaker-notes")).to_be_hidden()
    expect(presenter.locator("#projector-toggle")).to_have_attribute("aria-pressed", "true")
    presenter.keyboard.press("P")
    expect(presenter.locator("#speaker-notes")).to_be_visible()
    expect(presenter.locator("#copy-presenter-link")).to_be_visible()


# -- the keyboard ----------------------------------------------------------------------------
def test_focus_stays_on_the_pressed_control_and_the_scrubber(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    presenter = present(browser, contexts, live_url)
    step = presenter.locator("#btn-step")
    step.focus()
    for n in (1, 2, 3):
        presenter.keyboard.press("Enter")  # the button, not the room's keys: Enter on focus
        expect(presenter.locator(POSITION)).to_contain_text(f"event {n} /")
        expect(step).to_be_focused()
    speed = presenter.locator('button.speed[value="2"]')
    speed.focus()
    presenter.keyboard.press("Enter")
    expect(speed).to_have_attribute("aria-pressed", "true")
    expect(speed).to_be_focused()

    scrubber = presenter.locator("#scrubber")
    scrubber.focus()
    for n in (2, 1, 0):
        presenter.keyboard.press("ArrowLeft")
        expect(presenter.locator(POSITION)).to_contain_text(f"event {n} /")
        expect(presenter.locator("#scrubber")).to_be_focused()


# -- details ---------------------------------------------------------------------------------------
def test_the_favicon_is_served(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = new_page(browser, contexts, PROJECTOR)
    page.goto(live_url + "/")
    href = page.locator('link[rel="icon"]').get_attribute("href")
    response = page.request.get(live_url + href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert b"<svg" in response.body()


def test_the_sequence_diagram_is_not_clipped_at_1440_px(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url, "producer-acks1-failover", WIDE)
    play_to_the_end(page)
    box = page.locator("#diagram .diagram-scroll")
    assert box.evaluate("el => el.scrollWidth <= el.clientWidth")
    right = box.evaluate("el => el.getBoundingClientRect().right")
    actors = page.locator("#diagram .msd-actor")
    names = actors.all_text_contents()
    assert "broker-3" in names and "controller" in names
    for i in range(actors.count()):
        assert actors.nth(i).evaluate("el => el.getBoundingClientRect().right") <= right
    assert_no_sideways_scroll(page)


def test_internal_topic_keys_are_shown_whole(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url, "consumer-commit-after-processing")
    play_to_the_end(page)
    keys = page.locator('.lane[id^="lane-__consumer_offsets"] .cell-key')
    expect(keys.first).to_be_visible()
    assert any("group/" in text for text in keys.all_inner_texts())
    # Every key fits in its cell: nothing cut off with an ellipsis.
    assert keys.evaluate_all("els => els.every(e => e.scrollWidth <= e.clientWidth)")


def test_a_glossary_term_explains_itself_on_keyboard_focus(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = present(browser, contexts, live_url)
    isr = page.locator("#lanes abbr.term", has_text="ISR").first
    assert "in-sync replicas" in isr.get_attribute("title")
    tip = "el => getComputedStyle(el, '::after').content"
    assert isr.evaluate(tip) in ("none", "normal", "")
    isr.focus()
    assert "in-sync replicas" in isr.evaluate(tip)
    # On a phone the meaning shows as a strip along the bottom, not past the screen's edge.
    page.set_viewport_size(PHONE)
    epoch = page.locator("#lanes abbr.term", has_text="epoch").first  # right of the middle
    epoch.focus()
    assert "leader epoch" in epoch.evaluate(tip)
    assert_no_sideways_scroll(page)
    expect(page.locator(".legend")).to_contain_text("cursors: log start, HW, LEO; b2")
    page.locator("#glossary > summary").click()
    for term in ("HW", "LEO", "LSO", "ISR", "epoch", "PID", "lag"):
        expect(page.locator("#glossary dt", has_text=term).first).to_be_visible()


# -- the audience ----------------------------------------------------------------------------------
def test_the_presenter_sees_how_many_attendees_watch(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    presenter = present(browser, contexts, live_url)
    count = presenter.locator("#audience")
    expect(count).to_have_text("0 watching")  # the presenter's own page is not counted
    attendees = [new_page(browser, contexts, PHONE) for _ in range(2)]
    for page in attendees:
        join(page, presenter)
    expect(count).to_have_text("2 watching")
    expect(attendees[0].locator("#audience")).to_have_count(0)  # the presenters' page only
    attendees[0].close()
    expect(count).to_have_text("1 watching")

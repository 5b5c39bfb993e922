"""Compare two settings side by side, in a real browser: the two verdicts on a projector, an
attendee following both panes, and a phone."""

import json
import re

from playwright.sync_api import Browser, BrowserContext, FrameLocator, Page, expect

from tests.browser import test_workshop
from tests.browser.test_layout import PHONE, PROJECTOR, assert_no_sideways_scroll, new_page

contexts = test_workshop.contexts  # the fixture: browser contexts closed after each test
SCENARIO = "producer-retry-duplicate"
TITLE = "At-least-once: a lost acknowledgement makes the retry a duplicate"


def open_compare(page: Page, live_url: str, mode: str = "Compare on my own") -> None:
    """From the home page's scenario list: idempotence off (A) against on (B), the presets."""
    page.goto(live_url + "/")
    page.get_by_role("link", name=f"Compare two settings of {TITLE} side by side").click()
    expect(page.locator('input[name="a"][value="idempotence-off"]')).to_be_checked()
    expect(page.locator('input[name="b"][value="idempotence-on"]')).to_be_checked()
    page.get_by_role("button", name=mode).click()
    expect(page).to_have_url(re.compile(r"/compare/\w+/$"))
    for side in ("a", "b"):
        expect(pane(page, side).locator("#conn")).to_have_text("live")


def pane(page: Page, side: str) -> FrameLocator:
    return page.frame_locator(f"#frame-{side}")


def test_the_compare_view_shows_two_verdicts_that_differ_as_expected(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = new_page(browser, contexts, PROJECTOR)
    open_compare(page, live_url)
    expect(page.locator("#what-differs")).to_contain_text("p1: enable.idempotence=false")
    expect(page.locator("#what-differs")).to_contain_text("p1: enable.idempotence=true, acks=all")

    pane(page, "a").get_by_role("button", name="to the end").click()  # one press, both panes

    for side in ("a", "b"):
        expect(pane(page, side).locator("#run-header")).to_contain_text("run over")
    expect(page.locator("#verdict-a")).to_contain_text("1 duplicate in the log")
    expect(page.locator("#verdict-b")).to_contain_text("at-least-once held: nothing lost")
    expect(page.locator("#verdict-b")).not_to_contain_text("duplicate")
    expect(pane(page, "a").locator("#verdict")).to_contain_text("1 duplicate in the log")
    # Side by side on the projector, the page itself never scrolling sideways.
    a = page.locator("#pane-a").bounding_box()
    b = page.locator("#pane-b").bounding_box()
    assert a is not None and b is not None
    assert a["y"] == b["y"] and a["x"] + a["width"] <= b["x"]
    assert b["x"] + b["width"] <= PROJECTOR["width"]
    assert_no_sideways_scroll(page)


POSITIONS = """() => ["a", "b"].map(side => document.getElementById("frame-" + side)
    .contentDocument.querySelector("#scrubber-panel .scrub-pos").textContent).join(" | ")"""

# Both panes' clocks once they show the same one (else false, and wait_for_function waits on).
SAME_CLOCK = """() => {
    const [a, b] = ["a", "b"].map(side => document.getElementById("frame-" + side)
        .contentDocument.querySelector("#run-header .clock-value")?.textContent.trim());
    return a !== undefined && a === b ? a : false;
}"""


# Each pane's frame number (the room sends one frame to each pane for a step).
SEQS = """() => ["a", "b"].map(side => Number(document.getElementById("frame-" + side)
    .contentDocument.getElementById("frame-seq").dataset.seq))"""


def step(page: Page, side: str) -> None:
    """Press step in one pane; wait for the next moment of either pane (one of them moves) and
    for each pane's frame of this step: a frame of the step before, late in one pane, moves the
    positions too, and must not pass for this one's."""
    positions, seqs = page.evaluate(f"() => [({POSITIONS})(), ({SEQS})()]")
    pane(page, side).get_by_role("button", name="step ▸").click()
    page.wait_for_function(
        f"""() => {{
            const seqs = ({SEQS})();
            return ({POSITIONS})() !== {json.dumps(positions)}
                && seqs[0] > {seqs[0]} && seqs[1] > {seqs[1]};
        }}"""
    )


def test_a_step_in_one_pane_moves_both_to_the_same_virtual_time(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = new_page(browser, contexts, PROJECTOR)
    open_compare(page, live_url)
    clocks = []
    for _ in range(5):
        step(page, "b")
        # Each pane's frame of the step comes on its own socket: wait until they agree.
        same = page.wait_for_function(SAME_CLOCK).json_value()
        clocks.append(int(same.replace(",", "")))
    assert clocks == sorted(clocks) and clocks[-1] > 0


def test_an_attendee_of_a_shared_compare_follows_both_panes(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    presenter = new_page(browser, contexts, PROJECTOR)
    open_compare(presenter, live_url, mode="Open as a workshop")
    code = presenter.locator("#join-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{8}", code)

    attendee = new_page(browser, contexts, PROJECTOR)
    attendee.goto(f"{live_url}/r/{code}/")
    expect(attendee).to_have_url(presenter.url)
    expect(attendee.locator("#role-badge")).to_have_text("attendee")
    expect(attendee.locator(".following")).to_contain_text("both panes move with theirs")
    for side in ("a", "b"):
        expect(pane(attendee, side).locator("#conn")).to_have_text("live")
        expect(pane(attendee, side).locator("#btn-step")).to_be_hidden()  # no controls

    for _ in range(4):
        step(presenter, "a")
    shown = presenter.wait_for_function(SAME_CLOCK).json_value()
    assert shown != "0"
    for side in ("a", "b"):
        expect(pane(attendee, side).locator("#run-header .clock-value")).to_have_text(shown)

    pane(presenter, "b").get_by_role("button", name="to the end").click()
    expect(attendee.locator("#verdict-a")).to_contain_text("1 duplicate in the log")
    expect(attendee.locator("#verdict-b")).to_contain_text("nothing lost")
    expect(attendee.locator("#verdict-b")).not_to_contain_text("duplicate")


def test_the_compare_fits_a_phone_one_pane_at_a_time(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = new_page(browser, contexts, PHONE)
    open_compare(page, live_url)
    expect(page.locator("#pane-a")).to_be_visible()
    expect(page.locator("#pane-b")).to_be_hidden()
    assert_no_sideways_scroll(page)
    page.get_by_role("tab", name=re.compile(r"^B")).click()
    expect(page.locator("#pane-b")).to_be_visible()
    expect(page.locator("#pane-a")).to_be_hidden()
    assert_no_sideways_scroll(page)
    frame = page.frame(name="pane-b")
    assert frame is not None
    widths = frame.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"pane B is {widths[0]} px wide in {widths[1]} px"

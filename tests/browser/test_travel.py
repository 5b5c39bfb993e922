"""Messages that travel (issue 13): at event pacing each beat moves its messages between the
actors' boxes and the Story says why; without motion the same messages are shown in place.

producer-retry-duplicate, moment by moment: 5 the network loses broker-1's answer, 6 p1 times
out and queues the batch again, 7 a script note, 8 p1 sends it again, 9 broker-1 appends the
second copy.
"""

import re

from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, expect

from tests.browser import test_workshop
from tests.browser.test_layout import (
    PHONE,
    POSITION,
    PROJECTOR,
    assert_no_sideways_scroll,
    in_first_screen,
    open_scenario,
    top_of,
)

contexts = test_workshop.contexts  # the fixture: browser contexts closed after each test

NOW = "#narration .story-now"
LOST = "#travel-layer .travel-msg.is-lost"
RETRY = "#travel-layer .travel-msg.is-retry"
CELLS = "#cells-orders-0 .cell"
CSP: list[str] = []  # the policy's complaints, from every page these tests open


def open_page(
    browser: Browser, contexts: list[BrowserContext], live_url: str, viewport: dict[str, int]
) -> Page:
    """producer-retry-duplicate presented in a new page that allows motion."""
    size = ViewportSize(width=viewport["width"], height=viewport["height"])
    context = browser.new_context(viewport=size, reduced_motion="no-preference")
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    # What the layer draws must pass the Content-Security-Policy (style-src 'self').
    page.on("console", lambda m: CSP.append(m.text) if "Content Security" in m.text else None)
    open_scenario(page, live_url, "producer-retry-duplicate")
    return page


def step_to(page: Page, moment: int) -> None:
    """Press step until the run is at ``moment``, each press one beat, seen on the scrubber."""
    at = int(re.findall(r"\d+", page.locator(POSITION).inner_text())[0])
    for n in range(at + 1, moment + 1):
        page.locator("#btn-step").click()
        expect(page.locator(POSITION)).to_contain_text(f"event {n} /")


def test_event_pacing_shows_the_drop_the_retry_and_the_second_append_as_separate_beats(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = open_page(browser, contexts, live_url, PROJECTOR)
    page.locator("button.beat", has_text="♪1").click()
    expect(page.locator("button.beat", has_text="♪1")).to_have_attribute("aria-pressed", "true")

    # The beat of the drop: the answer leaves broker-1 for p1 and vanishes half-way.
    step_to(page, 5)
    lost = page.locator(LOST)
    expect(lost).to_have_count(1)
    expect(lost).to_contain_text("Produce response lost")
    expect(lost).to_have_class(re.compile(r"\bis-gone\b"))  # its movement is over
    expect(lost.locator(".travel-cross")).to_be_visible()
    expect(page.locator("#broker-1")).to_have_class(re.compile(r"\btravel-sender\b"))
    expect(page.locator("#producer-p1")).to_have_class(re.compile(r"\btravel-receiver\b"))
    expect(page.locator(NOW)).to_contain_text(
        "The network lost broker-1's answer to a Produce request from p1"
    )
    expect(page.locator(CELLS)).to_have_count(1)
    expect(page.locator(RETRY)).to_have_count(0)

    # The next beat: no answer within request.timeout.ms; the batch waits to be sent again.
    step_to(page, 6)
    expect(page.locator(NOW)).to_contain_text("puts p1-0 back at the front of its queue")
    expect(page.locator(LOST)).to_have_count(0)
    expect(page.locator("#travel-layer .travel-msg.is-note")).to_contain_text(
        ["request timed out", "produce retry"]
    )
    expect(page.locator(RETRY)).to_have_count(0)

    # The retry's beat: the same batch travels again, labelled as a retry.
    step_to(page, 8)
    retry = page.locator(RETRY)
    expect(retry).to_have_count(1)
    expect(retry).to_contain_text("Produce [p1-0]")
    expect(retry).to_contain_text("retry, attempt 2, no seq")
    expect(retry).to_have_class(re.compile(r"\bis-arrived\b"))  # it moved and reached broker-1
    expect(page.locator("#broker-1")).to_have_class(re.compile(r"\btravel-receiver\b"))
    expect(page.locator(NOW)).to_contain_text("p1 sends p1-0 to broker-1 again (attempt 2)")
    expect(page.locator(CELLS)).to_have_count(1)
    # The sequence diagram marks the new arrow and draws it in.
    expect(page.locator("#diagram .msd-msg.is-new.is-drawing")).to_have_text(
        "Produce [p1-0] (attempt 2)"
    )

    # The second append's beat: the duplicate cell appears, and the Story says why.
    step_to(page, 9)
    expect(page.locator(CELLS)).to_have_count(2)
    expect(page.locator("#c-orders-0-1")).to_have_class(re.compile(r"\bis-duplicate\b"))
    expect(page.locator("#travel-layer .travel-msg.is-note")).to_have_text("append @1")
    expect(page.locator(NOW)).to_contain_text(
        "broker-1 appended p1-0 at orders-0@1 again (first at 0): the retry of a batch whose "
        "answer was lost, and idempotence is off. Without idempotence a batch carries no "
        "producer id and sequence number, so the broker cannot tell a retry from a new message."
    )
    expect(page.locator(RETRY)).to_have_count(0)
    assert_no_sideways_scroll(page)

    # Projector mode reorders the column: the clients and brokers stay above the lanes.
    page.get_by_role("button", name="▣ projector").click()
    expect(page.locator("#projector-toggle")).to_have_attribute("aria-pressed", "true")
    assert top_of(page, ".wire-row") < top_of(page, "#lanes-title")
    assert in_first_screen(page, "#travel [data-actor='p1']")
    assert CSP == []


def test_played_at_beat_pacing_a_message_moves_for_its_beat(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = open_page(browser, contexts, live_url, PROJECTOR)
    step_to(page, 2)
    page.locator("button.beat", has_text="♪0.5").click()  # one moment every 2 s
    page.locator("#btn-play-pause").click()

    # Moment 3: p1's first Produce, moving while its beat lasts.
    request = page.locator("#travel-layer .travel-msg.is-request")
    expect(request).to_contain_text("Produce [p1-0]")
    expect(request).to_have_attribute("data-duration", "1600")  # 0.8 of the 2 s beat
    page.locator("#btn-play-pause").click()


def test_without_motion_messages_are_shown_in_place(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = open_page(browser, contexts, live_url, PHONE)
    page.emulate_media(reduced_motion="reduce")

    step_to(page, 5)
    lost = page.locator(LOST)
    expect(lost).to_contain_text("Produce response lost")
    expect(lost).to_have_class(re.compile(r"\bis-static\b.*\bis-gone\b"))
    expect(lost.locator(".travel-cross")).to_be_attached()
    assert lost.evaluate("el => el.getAnimations().length") == 0
    expect(page.locator("#broker-1")).to_have_class(re.compile(r"\btravel-sender\b"))
    expect(page.locator("#producer-p1")).to_have_class(re.compile(r"\btravel-receiver\b"))
    # In the gap between p1 (beside the brokers) and broker-1, where it was lost: in neither
    # box, within the two.
    # Where it rests on a phone is not checked: in the suite's runs its label sometimes lands
    # over the producer's chip (a known overlap, issue 13's note); that it is shown, still, under
    # its cross between the two highlighted boxes is.

    step_to(page, 8)
    retry = page.locator(RETRY)
    expect(retry).to_contain_text("retry, attempt 2")
    expect(retry).to_have_class(re.compile(r"\bis-static\b"))
    assert retry.evaluate("el => el.getAnimations().length") == 0
    expect(page.locator("#diagram .is-drawing")).to_have_count(0)
    assert_no_sideways_scroll(page)

    # Back one moment: what the later moment drew goes, nothing is drawn for the earlier one.
    page.locator("#btn-back").click()
    expect(page.locator(POSITION)).to_contain_text("event 7 /")
    expect(page.locator("#travel-layer .travel-msg")).to_have_count(0)
    expect(page.locator(".travel-sender, .travel-receiver")).to_have_count(0)


def test_to_the_end_shows_a_count_not_a_swarm(
    browser: Browser, contexts: list[BrowserContext], live_url: str
) -> None:
    page = open_page(browser, contexts, live_url, PROJECTOR)
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#run-header")).to_contain_text("run over", timeout=30_000)
    expect(page.locator("#travel-layer .travel-count")).to_contain_text("on the wire")
    expect(page.locator("#travel-layer .travel-msg")).to_have_count(0)
    # The diagram too: more than a few arrows new in one frame (as at 16x, where the diagram
    # comes every 2 s) are marked new and none draws itself in: each drawing arrow costs the
    # browser a layer to paint. How the run's arrows fell into frames depends on the machine's
    # speed, so the page is handed such a frame: the same diagram, its arrows numbered as new.
    page.evaluate(
        """() => {
          document.querySelectorAll("#diagram line[data-seq], #diagram rect[data-seq]")
            .forEach((el) => {
              el.dataset.seq = String(1000 + parseInt(el.dataset.seq, 10));
              el.parentNode.classList.remove("is-new", "is-drawing");
            });
          document.dispatchEvent(new CustomEvent("htmx:wsAfterMessage"));
        }"""
    )
    assert page.locator("#diagram .is-new").count() > 6
    expect(page.locator("#diagram .is-drawing")).to_have_count(0)

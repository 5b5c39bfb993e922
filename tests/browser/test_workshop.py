"""Workshops in a real browser: a presenter and attendees side by side, each in a browser
context of their own (separate cookies, so separate sessions and roles)."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

VIEWPORT = {"width": 1600, "height": 1000}
SCENARIO = "At-least-once: a lost acknowledgement makes the retry a duplicate"
FAULT = "Drop the next produce response"


@dataclass
class Workshop:
    presenter: Page
    room_url: str
    code: str


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    """Made on demand (``new_context(contexts)``) and closed at the end of the test."""
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()


def new_page(
    browser: Browser, contexts: list[BrowserContext], viewport: dict[str, int] = VIEWPORT
) -> Page:
    context = browser.new_context(viewport=viewport, reduced_motion="reduce")
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def open_workshop(
    browser: Browser,
    contexts: list[BrowserContext],
    live_url: str,
    viewport: dict[str, int] = VIEWPORT,
) -> Workshop:
    presenter = new_page(browser, contexts, viewport)
    presenter.goto(live_url + "/")
    presenter.get_by_role("button", name=f"Open {SCENARIO}").click()
    expect(presenter.locator("#conn")).to_have_text("live")
    expect(presenter.locator("body")).to_have_class(re.compile(r"\brole-presenter\b"))
    code = presenter.locator("#join-code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{4,8}", code)
    expect(presenter.locator("#attendee-link")).to_have_attribute(
        "href", re.compile(rf"/r/{code}/$")
    )
    room_url = presenter.url
    assert re.search(r"/rooms/\w+/$", room_url)
    expect(presenter.locator("#presenter-link")).to_have_attribute(
        "href", re.compile(rf"{re.escape(room_url)}present/[\w-]+/$")
    )
    return Workshop(presenter, room_url, code)


def join_by_link(page: Page, live_url: str, code: str) -> None:
    page.goto(f"{live_url}/r/{code}/")
    expect(page.locator("#conn")).to_have_text("live")


def join_by_form(page: Page, live_url: str, code: str) -> None:
    page.goto(live_url + "/")
    page.locator("#id_code").fill(code.lower())  # codes are typed any case
    page.locator("#id_code").press("Enter")
    expect(page.locator("#conn")).to_have_text("live")


def attendee(
    browser: Browser,
    contexts: list[BrowserContext],
    live_url: str,
    room: Workshop,
    viewport: dict[str, int] = VIEWPORT,
) -> Page:
    page = new_page(browser, contexts, viewport)
    join_by_link(page, live_url, room.code)
    assert page.url == room.room_url
    return page


def seq(page: Page) -> int:
    return int(page.locator("#frame-seq").get_attribute("data-seq"))


def position(page: Page) -> str:
    return page.locator("#scrubber-panel .scrub-pos").inner_text()


def clock(page: Page) -> int:
    return int(page.locator("#run-header .clock-value").inner_text())


def cells(page: Page) -> list[str]:
    return page.locator("#cells-orders-0 > li").evaluate_all(
        "els => els.map(e => e.dataset.offset + ':' + e.dataset.msg)"
    )


def view(page: Page) -> dict[str, object]:
    """What a follower must show the same as the presenter."""
    return {
        "seq": seq(page),
        "position": position(page),
        "clock": clock(page),
        "state": page.locator("#run-header .run-state").inner_text(),
        "cells": cells(page),
        "producers": page.locator("#producers").inner_text(),
    }


def frames(page: Page) -> list[list[object]]:
    return page.evaluate("window.labFrames.slice()")


def wait_seq(page: Page, target: int) -> None:
    page.wait_for_function(
        "s => Number(document.getElementById('frame-seq').dataset.seq) >= s", arg=target
    )


def assert_follows(presenter: Page, *followers: Page) -> None:
    """Every follower reaches the presenter's frame and shows the same run."""
    target = seq(presenter)
    for follower in followers:
        wait_seq(follower, target)
        assert view(follower) == view(presenter)


def step(page: Page, n: int) -> None:
    """Press step until the scrubber says event n (the presenter's page)."""
    for i in range(int(re.search(r"event (\d+)", position(page)).group(1)) + 1, n + 1):
        page.locator("#btn-step").click()
        expect(page.locator("#scrubber-panel .scrub-pos")).to_have_text(f"event {i} / {i}")


def expect_no_controls(page: Page) -> None:
    expect(page.locator("body")).to_have_class(re.compile(r"\brole-attendee\b"))
    expect(page.locator("#role-badge")).to_have_text("attendee")
    for selector in ("#btn-step", "#btn-back", "#btn-play-pause", "#btn-reset", "#faults form"):
        expect(page.locator(selector)).to_be_hidden()
    expect(page.locator("#ask")).to_have_count(0)
    expect(page.locator("#share")).to_have_count(0)
    expect(page.locator("#speaker-notes")).to_have_count(0)  # never sent, not merely hidden
    # No slider that ignores clicks: the position says where the presenter is.
    expect(page.locator("#scrubber")).to_be_hidden()
    expect(page.locator("#scrubber-panel .scrub-pos")).to_be_visible()


# -- following ---------------------------------------------------------------------------------
def test_attendees_join_by_code_and_follow_the_presenter(
    browser: Browser, live_url: str, contexts: list[BrowserContext], screenshot
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    expect(presenter.locator("#speaker-notes")).to_be_visible()
    step(presenter, 2)

    typed = new_page(browser, contexts)
    join_by_form(typed, live_url, room.code)
    assert typed.url == room.room_url
    linked = new_page(browser, contexts)
    join_by_link(linked, live_url, room.code)
    assert linked.url == room.room_url
    for page in (typed, linked):
        expect_no_controls(page)
        expect(page.locator("#attendee-tools")).to_contain_text(f"in room {room.code}")
        expect(page.locator("#btn-detach")).to_be_visible()
        expect(page.locator("#btn-sandbox")).to_be_visible()
    assert_follows(presenter, typed, linked)
    joined_at = seq(presenter)

    step(presenter, 5)
    assert_follows(presenter, typed, linked)
    presenter.get_by_role("button", name=FAULT).click()
    expect(presenter.locator("#faults .pressed")).to_contain_text(FAULT)
    expect(typed.locator("#faults .pressed")).to_contain_text(FAULT)
    expect(linked.locator("#faults .pressed")).to_contain_text(FAULT)
    presenter.locator("#btn-step").click()
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 6 / 6")
    assert_follows(presenter, typed, linked)

    # Time travel is followed too.
    presenter.locator("#btn-back").click()
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 5 / 6")
    expect(presenter.locator("#run-header")).to_contain_text("viewing the past")
    assert_follows(presenter, typed, linked)
    expect(linked.locator("#run-header")).to_contain_text("viewing the past")

    # The same frames, in the same order, since the attendees joined (their first is a full one).
    ahead = [f for f in frames(presenter) if f[0] > joined_at]
    for page in (typed, linked):
        received = frames(page)
        assert received[0] == [joined_at, "full"]
        assert received[1:] == ahead
    assert ahead and all(kind == "delta" for _, kind in ahead)
    screenshot(linked, "workshop-attendee")


def test_an_attendees_forged_control_is_refused(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    step(presenter, 1)
    watcher = attendee(browser, contexts, live_url, room)
    assert_follows(presenter, watcher)
    before, received = view(presenter), len(frames(presenter))

    status = watcher.evaluate(
        """async url => {
            const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken'];
            const body = new FormData();
            body.append('action', 'step');
            const response = await fetch(url, {
                method: 'POST', body, headers: {'X-CSRFToken': token}, credentials: 'same-origin',
            });
            return response.status;
        }""",
        f"{room.room_url}control/",
    )
    assert status == 403
    # Over the WebSocket as well: an error frame for the sender, nothing for the room.
    watcher.evaluate(
        """url => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            ws.onopen = () => ws.send(JSON.stringify({action: 'step'}));
            ws.onmessage = e => {
                if (e.data.startsWith('<div id="ws-error"')) { ws.close(); resolve(e.data); }
            };
            ws.onerror = reject;
        })""",
        room.room_url.replace("http", "ws", 1).replace("/rooms/", "/ws/rooms/"),
    )
    assert view(presenter) == before
    assert len(frames(presenter)) == received

    # Had either been applied, the presenter's own step would land on event 3, not 2.
    presenter.locator("#btn-step").click()
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 2 / 2")
    assert_follows(presenter, watcher)

    # Whoever opens the presenter link is a presenter (of this room only): they may.
    co_presenter = new_page(browser, contexts)
    co_presenter.goto(presenter.locator("#presenter-link").get_attribute("href"))
    assert co_presenter.url == room.room_url
    expect(co_presenter.locator("#conn")).to_have_text("live")
    expect(co_presenter.locator("#role-badge")).to_have_text("presenter")
    expect(co_presenter.locator("#speaker-notes")).to_be_visible()
    co_presenter.locator("#btn-step").click()
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 3 / 3")
    assert_follows(presenter, watcher, co_presenter)


# -- predict, then reveal ------------------------------------------------------------------------
def test_predict_then_reveal(
    browser: Browser, live_url: str, contexts: list[BrowserContext], screenshot
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    first = attendee(browser, contexts, live_url, room)
    second = attendee(browser, contexts, live_url, room)
    # At a quarter speed: the whole run is 3.6 s of virtual time, which a busy machine could
    # play to its end before the question is asked.
    presenter.locator('#controls button.speed[value="0.25"]').click()
    expect(presenter.locator('#controls button.speed[value="0.25"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    presenter.get_by_role("button", name="▶ play").click()
    expect(presenter.locator("#run-header .run-state")).to_contain_text("playing")
    expect(first.locator("#run-header .run-state")).to_contain_text("playing")

    presenter.locator("#ask summary").click()
    presenter.locator("#btn-ask").click()
    expect(presenter.locator("#run-header .run-state")).not_to_contain_text("playing")
    pages = (presenter, first, second)
    for page in pages:
        question = page.locator("#question")
        expect(question).to_be_visible()
        expect(question.locator("#question-title")).to_have_text("Predict: What happens next?")
        expect(question.locator("button.vote")).to_have_text(["lost", "duplicated", "exactly once"])
        expect(page.locator("#vote-total")).to_have_text("0")
    qid = presenter.locator("#question").get_attribute("data-question")
    expect(presenter.locator("#btn-reveal")).to_be_visible()
    expect(first.locator("#btn-reveal")).to_be_hidden()
    assert_follows(presenter, first, second)  # paused at the same moment for everyone

    first.locator('button.vote[data-choice="1"]').click()
    expect(first.locator("#my-vote")).to_have_text("Your vote: duplicated")
    for page in pages:
        expect(page.locator("#vote-total")).to_have_text("1")
    # Until the reveal, how many voted but not how: the counts are the presenters' own panel.
    expect(presenter.locator("#question-tally #tally-1")).to_have_text("1")
    for page in (first, second):
        expect(page.locator("#question-tally")).to_have_count(0)
        expect(page.locator("#question [id^='count-']")).to_have_count(0)
    expect(first.locator('button.vote[data-choice="1"]')).to_have_class(re.compile(r"\bis-mine\b"))

    first.locator('button.vote[data-choice="0"]').click()
    expect(first.locator("#question form.vote-row + .inline-error")).to_contain_text(
        "already voted"
    )
    expect(first.locator("#vote-total")).to_have_text("1")
    expect(presenter.locator("#tally-0")).to_have_text("0")

    second.locator('button.vote[data-choice="0"]').click()
    for page in pages:
        # 2, not 3: the refused vote was never counted.
        expect(page.locator("#vote-total")).to_have_text("2")
    expect(presenter.locator("#tally-0")).to_have_text("1")
    expect(presenter.locator("#tally-1")).to_have_text("1")
    screenshot(presenter, "workshop-question")

    paused_at = clock(presenter)
    presenter.locator("#btn-reveal").click()
    for page in pages:
        page.wait_for_function(
            "t => Number(document.querySelector('#run-header .clock-value').textContent) > t",
            arg=paused_at,
        )
        expect(page.locator("#question")).to_have_class(re.compile(r"\bis-revealed\b"))
        expect(page.locator("#question-title")).to_have_text("Revealed: What happens next?")
        expect(page.locator("button.vote").first).to_be_disabled()
        expect(page.locator("#vote-total")).to_have_text("2")
        # The reveal shows everyone how the room voted.
        expect(page.locator(f"#count-{qid}-0")).to_have_text("1")
        expect(page.locator(f"#count-{qid}-1")).to_have_text("1")
        expect(page.locator("#question-tally")).to_be_hidden()
    expect(presenter.locator("#btn-close-question")).to_be_visible()


def test_a_refused_second_vote_does_not_move_the_mark_of_my_vote(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    voter = attendee(browser, contexts, live_url, room)
    presenter.locator("#ask summary").click()
    presenter.locator("#btn-ask").click()
    expect(voter.locator("#question")).to_be_visible()
    voter.locator('button.vote[data-choice="1"]').click()
    expect(voter.locator("#vote-total")).to_have_text("1")
    voter.locator('button.vote[data-choice="0"]').click()
    expect(voter.locator("#question .inline-error")).to_contain_text("already voted")
    presenter.locator('button.vote[data-choice="2"]').click()
    expect(presenter.locator("#question .inline-error")).to_contain_text("Presenters do not vote")
    other = attendee(browser, contexts, live_url, room)
    other.locator('button.vote[data-choice="2"]').click()  # a new frame re-marks the choices
    expect(voter.locator("#vote-total")).to_have_text("2")
    expect(voter.locator("#my-vote")).to_have_text("Your vote: duplicated")
    expect(voter.locator("button.vote.is-mine")).to_have_text(["duplicated"], timeout=2_000)


# -- detach and sandbox ------------------------------------------------------------------------
def test_an_attendee_detaches_looks_around_and_reattaches(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    step(presenter, 4)
    watcher = attendee(browser, contexts, live_url, room)
    assert_follows(presenter, watcher)
    before, received = view(presenter), len(frames(presenter))

    watcher.locator("#btn-detach").click()
    expect(watcher.locator("#room-banner")).to_contain_text("A detached view")
    expect(watcher.locator("#conn")).to_have_text("live")
    assert watcher.url != room.room_url and re.search(r"/rooms/\w+/$", watcher.url)
    expect(watcher.locator("body")).to_have_class(re.compile(r"\bkind-view\b"))
    expect(watcher.locator("#role-badge")).to_have_text("your view")
    expect(watcher.locator("#faults form")).to_be_hidden()  # a view only travels in time
    mine = watcher.locator("#scrubber-panel .scrub-pos")
    expect(mine).to_have_text("event 4 / 4")
    assert cells(watcher) == before["cells"]

    watcher.locator("#btn-back").click()
    expect(mine).to_have_text("event 3 / 4")
    watcher.locator("#btn-back").click()
    expect(mine).to_have_text("event 2 / 4")
    watcher.locator("#btn-step").click()
    expect(mine).to_have_text("event 3 / 4")
    expect(watcher.locator("#run-header")).to_contain_text("viewing the past")

    # The room did not move, and got no frame from any of it.
    assert view(presenter) == before
    assert len(frames(presenter)) == received

    watcher.locator("#reattach").click()
    assert watcher.url == room.room_url
    expect(watcher.locator("#conn")).to_have_text("live")
    expect_no_controls(watcher)
    assert_follows(presenter, watcher)
    step(presenter, 5)
    assert_follows(presenter, watcher)


def test_an_attendees_sandbox_starts_where_the_room_was_and_has_every_control(
    browser: Browser, live_url: str, contexts: list[BrowserContext], screenshot
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    step(presenter, 5)
    watcher = attendee(browser, contexts, live_url, room)
    assert_follows(presenter, watcher)
    before, received = view(presenter), len(frames(presenter))
    assert before["cells"] == ["0:p1-0"] and before["clock"] > 0

    watcher.locator("#btn-sandbox").click()
    expect(watcher.locator("#room-banner")).to_contain_text("A sandbox.")
    expect(watcher.locator("#conn")).to_have_text("live")
    assert watcher.url != room.room_url and re.search(r"/rooms/\w+/$", watcher.url)
    expect(watcher.locator("body")).to_have_class(re.compile(r"\bkind-sandbox\b"))
    expect(watcher.locator("#role-badge")).to_have_text("your sandbox")
    mine = view(watcher)
    # A room of its own, numbering its frames afresh (from the wall clock: past any copy's).
    assert mine.pop("seq") != before["seq"]
    assert mine == {k: v for k, v in before.items() if k != "seq"}

    # Every control is there, faults included.
    for selector in ("#btn-step", "#btn-back", "#btn-play-pause", "#btn-reset", "#faults form"):
        expect(watcher.locator(selector)).to_be_visible()
    watcher.get_by_role("button", name=FAULT).click()
    expect(watcher.locator("#faults .pressed")).to_contain_text(FAULT)
    watcher.get_by_role("button", name="to the end").click()
    expect(watcher.locator("#run-header")).to_contain_text("run over", timeout=15_000)
    expect(watcher.locator("#verdict .count-duplicated_in_log dd")).not_to_have_text("0")
    watcher.evaluate("window.scrollTo(0, 0)")  # the banner and the run header
    screenshot(watcher, "workshop-sandbox")

    # Nobody else saw any of it.
    assert view(presenter) == before
    assert len(frames(presenter)) == received
    expect(presenter.locator("#faults .pressed")).to_have_count(0)
    watcher.locator("#reattach").click()
    assert watcher.url == room.room_url
    expect(watcher.locator("#conn")).to_have_text("live")
    assert_follows(presenter, watcher)


def test_a_sandbox_forked_after_playing_keeps_the_rooms_clock(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    # Played, then paused: the room's clock stands between two events. At a quarter speed,
    # so that a busy machine cannot play the whole run (3.6 s of virtual time) to its end,
    # and take the pause button away, before the first record shows.
    presenter.locator('#controls button.speed[value="0.25"]').click()
    expect(presenter.locator('#controls button.speed[value="0.25"]')).to_have_attribute(
        "aria-pressed", "true"
    )
    presenter.get_by_role("button", name="▶ play").click()
    expect(presenter.locator("#c-orders-0-0")).to_be_visible()
    presenter.get_by_role("button", name="❚❚ pause").click()
    expect(presenter.locator("#run-header .run-state")).to_contain_text("paused")
    watcher = attendee(browser, contexts, live_url, room)
    assert_follows(presenter, watcher)
    before = view(presenter)

    watcher.locator("#btn-sandbox").click()
    expect(watcher.locator("#room-banner")).to_contain_text("A sandbox.")
    assert cells(watcher) == before["cells"]
    assert position(watcher) == before["position"]
    assert clock(watcher) == before["clock"]


# -- keys ------------------------------------------------------------------------------------------
def test_presenter_keys_work_and_do_nothing_for_attendees(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url)
    presenter = room.presenter
    watcher = new_page(browser, contexts)
    posts: list[str] = []
    watcher.on("request", lambda r: posts.append(r.url) if r.method == "POST" else None)
    sent: list[str] = []
    watcher.on("websocket", lambda ws: ws.on("framesent", lambda payload: sent.append(payload)))
    join_by_link(watcher, live_url, room.code)

    presenter.keyboard.press("PageDown")
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 1 / 1")
    presenter.keyboard.press("PageDown")
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 2 / 2")
    assert_follows(presenter, watcher)

    for key in ("PageDown", "b", "PageUp", "ArrowRight", " "):
        watcher.keyboard.press(key)
    # The presenter's next step is the next frame after the attendee's keys: had a key done
    # anything, the room would be on another event, or playing.
    presenter.keyboard.press("PageDown")
    expect(presenter.locator("#scrubber-panel .scrub-pos")).to_have_text("event 3 / 3")
    assert_follows(presenter, watcher)
    assert posts == [] and sent == []
    expect(watcher.locator("#ws-error")).to_have_text("")

    state = presenter.locator("#run-header .run-state")
    presenter.keyboard.press("b")
    expect(state).to_contain_text("playing")
    expect(watcher.locator("#run-header .run-state")).to_contain_text("playing")
    presenter.keyboard.press("b")
    expect(state).to_contain_text("paused")
    assert_follows(presenter, watcher)

    # Presenter comfort: L for large text, N to hide the speaker notes on a shared screen.
    html = presenter.locator("html")
    presenter.keyboard.press("l")
    expect(html).to_have_attribute("data-size", "large")
    presenter.keyboard.press("n")
    expect(presenter.locator("#speaker-notes")).to_be_hidden()
    presenter.keyboard.press("n")
    expect(presenter.locator("#speaker-notes")).to_be_visible()
    presenter.keyboard.press("l")
    expect(html).to_have_attribute("data-size", "normal")

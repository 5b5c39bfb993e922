"""The classroom at a 1024x768 projector (issue 11, items 1, 4, 7 and 8): a question that spoils
nothing, voting that closes when the run moves on, the reveal marking the right answer, errors
beside what caused them, previewing and ending a room, and the words on someone else's sandbox.

Each role has a browser context of its own (separate cookies, so separate sessions)."""

import re
import tomllib
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, expect

import broker
from tests.browser import test_workshop
from tests.browser.test_workshop import (
    FAULT,
    SCENARIO,
    assert_follows,
    attendee,
    clock,
    new_page,
    open_workshop,
    step,
)

contexts = test_workshop.contexts  # the fixture: browser contexts closed after each test

PROJECTOR = {"width": 1024, "height": 768}
NAME = "producer-retry-duplicate"
SOURCE = (Path(broker.__file__).parent / "scenarios" / f"{NAME}.toml").read_text("utf-8")
SCRIPT = tomllib.loads(SOURCE)
OVER = "Voting is over: the run has moved on to the answer."


def ask(presenter: Page, correct: str = "") -> None:
    """Pause and ask "What happens next?" (lost, duplicated, exactly once)."""
    if presenter.locator("#ask").get_attribute("open") is None:
        presenter.locator("#ask summary").click()
    presenter.locator("#id_correct").fill(correct)
    presenter.locator("#btn-ask").click()


def told_times(page: Page) -> list[int]:
    """The times (ms) of every line the Story panel tells, what happened and the script."""
    texts = page.locator("#narration li .t").all_inner_texts()
    return [int(re.match(r"(\d+) ms", t).group(1)) for t in texts]


def hold_frames(page: Page) -> Callable[[bool], None]:
    """A slow connection: while held, the room's frames do not reach ``page`` (what it sends
    still reaches the server). Set up before the page opens the room."""
    held = [False]

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        server.on_message(lambda message: None if held[0] else ws.send(message))

    page.route_web_socket(re.compile(r"/ws/rooms/"), route)
    return lambda on: held.__setitem__(0, on)


def test_an_open_question_shows_an_attendee_nothing_ahead_of_the_room(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    presenter = room.presenter
    step(presenter, 3)
    watcher = attendee(browser, contexts, live_url, room, PROJECTOR)
    ask(presenter, correct="duplicated")
    expect(watcher.locator("#question-title")).to_have_text("Predict: What happens next?")
    for page in (presenter, watcher):  # a neutral title, for everyone, the tab's too
        expect(page.locator("#run-header h1")).to_have_text("What happens next?")
        expect(page).to_have_title("What happens next? · Delivery Lab")
    assert_follows(presenter, watcher)
    asked_at = clock(watcher)
    future = [s["narration"] for s in SCRIPT["steps"] if s["at_ms"] > asked_at]
    assert future  # the lost acknowledgement's retry is still to come
    # The presenter has it all: the notes tell what comes next, the tally is theirs.
    expect(presenter.locator("#speaker-notes")).to_contain_text(future[0])
    expect(presenter.locator("#question-tally")).to_be_visible()

    html = watcher.content()
    described = "the same message now sits at two offsets"  # the scenario's description
    assert described in " ".join(SCRIPT["description"].split())
    for spoiler in (SCENARIO, NAME, *future, described):
        assert spoiler not in html
    assert 'id="speaker-notes"' not in html and 'id="question-tally"' not in html
    assert not re.search(r'id="(count|tally)-', html)
    story = watcher.locator("#narration").inner_text()
    assert told_times(watcher) and max(told_times(watcher)) <= asked_at

    # "Look around on my own": its maker controls the copy, but it stops where the room is
    # and carries no speaker notes.
    watcher.locator("#btn-detach").click()
    expect(watcher.locator("#room-banner")).to_contain_text("A detached view")
    expect(watcher.locator("#role-badge")).to_have_text("your view")
    position = watcher.locator("#scrubber-panel .scrub-pos")
    expect(position).to_have_text("event 3 / 3")
    watcher.locator("#btn-step").click()  # presses are applied in order: had it gone on to
    watcher.locator("#btn-back").click()  # event 4, back would land on 3 of 4
    expect(position).to_have_text("event 2 / 3")
    html = watcher.content()
    assert 'id="speaker-notes"' not in html
    for spoiler in (SCENARIO, NAME, *future, described):
        assert spoiler not in html
    watcher.locator("#reattach").click()
    expect(watcher.locator("#conn")).to_have_text("live")

    # A later point of the same run: the story then tells what the attendee was not told.
    presenter.locator("#btn-reveal").click()
    presenter.locator("#controls button.speed[value='end']").click()
    expect(watcher.locator("#run-header")).to_contain_text("run over", timeout=15_000)
    expect(watcher.locator("#run-header h1")).to_have_text(SCENARIO)
    expect(watcher).to_have_title(f"{SCENARIO} · Delivery Lab")
    later = [t for t in told_times(watcher) if t > asked_at]
    assert later and watcher.locator("#narration").inner_text() != story
    expect(watcher.locator("#narration")).to_contain_text(future[0])


def test_a_vote_after_the_presenter_steps_on_is_refused_beside_the_vote(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    presenter = room.presenter
    step(presenter, 2)
    voter = new_page(browser, contexts, PROJECTOR)
    hold = hold_frames(voter)
    voter.goto(f"{live_url}/r/{room.code}/")
    expect(voter.locator("#conn")).to_have_text("live")
    ask(presenter)
    expect(voter.locator("#question-title")).to_have_text("Predict: What happens next?")

    # The presenter steps instead of revealing; the voter's page has not heard yet.
    hold(True)
    presenter.locator("#btn-step").click()
    expect(presenter.locator("#question-title")).to_have_text("Revealed: What happens next?")
    expect(presenter.locator("#question")).to_contain_text("voting is over")
    expect(voter.locator("#question-title")).to_have_text("Predict: What happens next?")
    voter.locator('button.vote[data-choice="0"]').click()
    error = voter.locator("#question form.vote-row + p.inline-error")
    expect(error).to_have_text(OVER)
    expect(error).to_be_focused()
    expect(voter.locator("#ws-error")).to_have_text("")

    # Frames again: the voter's page catches up, and the refused vote never counted.
    hold(False)
    presenter.locator("#btn-step").click()
    expect(voter.locator("#question-title")).to_have_text("Revealed: What happens next?")
    expect(voter.locator("#vote-total")).to_have_text("0")
    expect(voter.locator("button.vote").first).to_be_disabled()


def test_the_reveal_shows_the_counts_and_marks_the_right_answer(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    presenter = room.presenter
    run_page = presenter.locator("#share a[href^='/runs/']").get_attribute("href")
    step(presenter, 2)
    first = attendee(browser, contexts, live_url, room, PROJECTOR)
    second = attendee(browser, contexts, live_url, room, PROJECTOR)
    ask(presenter, correct="Duplicated")  # any case
    expect(presenter.locator("#question-title")).to_have_text("Predict: What happens next?")
    qid = presenter.locator("#question").get_attribute("data-question")
    first.locator('button.vote[data-choice="1"]').click()
    expect(first.locator("#my-vote")).to_have_text("Your vote: duplicated")
    second.locator('button.vote[data-choice="0"]').click()
    expect(presenter.locator("#tally-0")).to_have_text("1")
    expect(presenter.locator("#tally-1")).to_have_text("1")
    for page in (first, second):
        expect(page.locator("#vote-total")).to_have_text("2")
        expect(page.locator("#question [id^='count-']")).to_have_count(0)
        expect(page.locator("#question .is-correct")).to_have_count(0)
        expect(page.locator("#question")).not_to_contain_text("right answer")

    # No sandbox to run ahead to the answer before the reveal.
    first.locator("#btn-sandbox").click()
    refused = first.locator("#attendee-tools form + p.inline-error")
    expect(refused).to_contain_text("opens after the reveal")
    assert first.url == room.room_url

    presenter.locator("#btn-reveal").click()
    for page in (presenter, first, second):
        expect(page.locator("#question-title")).to_have_text("Revealed: What happens next?")
        expect(page.locator(f"#count-{qid}-0")).to_have_text("1")
        expect(page.locator(f"#count-{qid}-1")).to_have_text("1")
        expect(page.locator(f"#count-{qid}-2")).to_have_text("0")
        right = page.locator("#question li.is-correct")
        expect(right).to_have_count(1)
        expect(right.locator("button.vote")).to_have_text("duplicated")
        expect(right).to_contain_text("✓ the right answer")
        expect(page.locator("#run-header h1")).to_have_text(SCENARIO)

    first.locator("#btn-sandbox").click()
    expect(first.locator("#room-banner")).to_contain_text("A sandbox.")

    # The results stay with the saved run.
    presenter.goto(live_url + run_page)
    asked = presenter.locator("section", has=presenter.locator("h2", has_text="Questions asked"))
    expect(asked).to_contain_text("What happens next?")
    expect(asked).to_contain_text("2 votes, 1 right")
    expect(asked.locator("li.is-correct")).to_have_text("duplicated: 1 (50%) ✓ the right answer")


def test_errors_show_beside_their_cause_and_clear_on_the_next_success(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    presenter = room.presenter
    voter = attendee(browser, contexts, live_url, room, PROJECTOR)

    # A question whose right answer is not one of its choices.
    ask(presenter, correct="forever")
    asked = presenter.locator("#ask form + p.inline-error")
    expect(asked).to_contain_text("'forever' is not one of the choices")
    expect(asked).to_be_focused()
    expect(asked).to_be_in_viewport()
    ask(presenter, correct="lost")
    expect(voter.locator("#question")).to_be_visible()
    expect(asked).to_have_text("")

    # A second vote: refused beside the vote form, not at the top of the page.
    voter.locator('button.vote[data-choice="1"]').click()
    expect(voter.locator("#vote-total")).to_have_text("1")
    voter.locator('button.vote[data-choice="0"]').click()
    again = voter.locator("#question form.vote-row + p.inline-error")
    expect(again).to_contain_text("You have already voted on this question")
    expect(again).to_be_focused()
    expect(again).to_be_in_viewport()
    expect(voter.locator("#ws-error")).to_have_text("")

    # Presses the server refuses (as from a page older than the server): beside the toolbar,
    # which stays at the top of the screen, so in view even for a fault far down the page. The
    # focus stays on the pressed button; the next success clears the error.
    controls_error = presenter.locator("#controls-error")
    for button, forged, said, done, shows in (
        (
            presenter.locator("#btn-step"),
            "leap",
            "leap is not one of the available choices",
            presenter.locator("#scrubber-panel .scrub-pos"),
            "event 1 / 1",
        ),
        (
            presenter.get_by_role("button", name=FAULT),
            "no-such-fault",
            "has no fault",
            presenter.locator("#faults .pressed"),
            FAULT,
        ),
    ):
        real = button.get_attribute("value")
        button.evaluate("(b, value) => { b.value = value; }", forged)
        button.click()
        expect(controls_error).to_contain_text(said)
        expect(controls_error).to_be_in_viewport()
        expect(button).to_be_focused()
        expect(presenter.locator("#ws-error")).to_have_text("")
        button.evaluate("(b, value) => { b.value = value; }", real)
        button.click()
        expect(controls_error).to_have_text("")
        expect(done).to_contain_text(shows)  # its frame is in: the next button is redrawn


def test_a_refused_upload_lands_on_its_error_and_keeps_the_file(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = new_page(browser, contexts, PROJECTOR)
    page.goto(live_url + "/")
    text = SOURCE
    broken = text.replace('"enable.idempotence" = false', "enable.idempotence = false")
    assert broken != text
    page.locator("#id_scenario").set_input_files(
        files=[{"name": "mine.toml", "mimeType": "text/plain", "buffer": broken.encode()}]
    )
    page.get_by_role("button", name="Open it").click()
    result = page.locator("#upload-result")
    expect(result).to_contain_text("This scenario cannot run")
    expect(result).to_contain_text('quote it: "enable.idempotence"')
    expect(result).to_contain_text("the file you chose is still selected")
    expect(page.locator("#upload-error")).to_be_focused()
    assert page.locator("input#id_scenario").evaluate("el => el.files.length") == 1
    assert page.url == live_url + "/"

    # The fix, then the same form opens it.
    page.locator("#id_scenario").set_input_files(
        files=[{"name": "mine.toml", "mimeType": "text/plain", "buffer": text.encode()}]
    )
    page.get_by_role("button", name="Open it").click()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#run-header h1")).to_have_text(SCENARIO)


def test_a_preview_is_a_private_room_with_every_control(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    page = new_page(browser, contexts, PROJECTOR)
    page.goto(live_url + "/")
    page.get_by_role("button", name=f"Preview {SCENARIO} on your own").click()
    expect(page.locator("#conn")).to_have_text("live")
    expect(page.locator("#room-banner")).to_contain_text("A preview.")
    expect(page.locator("#run-header h1")).to_have_text(SCENARIO)
    for absent in ("#share", "#join-code", ".join-code", "#attendee-link", "#ask"):
        expect(page.locator(absent)).to_have_count(0)  # nobody to invite, nobody to ask
    for control in ("#btn-step", "#btn-back", "#btn-play-pause", "#btn-reset", "#faults form"):
        expect(page.locator(control)).to_be_visible()
    expect(page.locator("#speaker-notes")).to_be_visible()
    step(page, 2)
    page.get_by_role("button", name=FAULT).click()
    expect(page.locator("#faults .pressed")).to_contain_text(FAULT)


def test_ending_a_room_tells_the_attendees_and_shows_its_run(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    presenter = room.presenter
    run_page = presenter.locator("#share a[href^='/runs/']").get_attribute("href")
    step(presenter, 2)
    watcher = attendee(browser, contexts, live_url, room, PROJECTOR)
    end = presenter.locator("#share #btn-end-room")
    expect(end).to_have_text("End this room")
    end.click()

    expect(watcher.locator("#ws-error")).to_have_text(
        "The presenter ended this room. Its run is saved."
    )
    expect(presenter).to_have_url(live_url + run_page)
    expect(presenter.get_by_role("button", name="Replay in a new room")).to_be_visible()
    late = new_page(browser, contexts, PROJECTOR)
    late.goto(f"{live_url}/r/{room.code}/")
    expect(late.locator("main")).to_contain_text("No room")


def test_someone_elses_sandbox_says_watching_not_following_or_yours(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    step(room.presenter, 2)
    maker = attendee(browser, contexts, live_url, room, PROJECTOR)
    maker.locator("#btn-sandbox").click()
    expect(maker.locator("#role-badge")).to_have_text("your sandbox")
    expect(maker.locator("#conn")).to_have_text("live")
    sandbox_url = maker.url
    assert sandbox_url != room.room_url

    visitor = new_page(browser, contexts, PROJECTOR)
    visitor.goto(sandbox_url)
    expect(visitor.locator("#conn")).to_have_text("live")
    expect(visitor.locator("#role-badge")).to_have_text("watching")
    expect(visitor.locator("#attendee-tools")).to_contain_text("only its maker can control it")
    text = visitor.locator("body").inner_text()
    for wrong in ("You are following the presenter", "is yours", "your sandbox"):
        assert wrong not in text
    for control in ("#btn-step", "#btn-play-pause", "#faults form"):
        expect(visitor.locator(control)).to_be_hidden()
    # What the maker does, the visitor watches.
    step(maker, 4)
    assert_follows(maker, visitor)


def test_an_attendees_page_carries_no_presenter_leftovers(
    browser: Browser, live_url: str, contexts: list[BrowserContext]
) -> None:
    room = open_workshop(browser, contexts, live_url, PROJECTOR)
    watcher = attendee(browser, contexts, live_url, room, PROJECTOR)
    expect(watcher.locator("#conn")).to_have_text("live")

    # Before any fault: no Faults panel, no slider that ignores clicks, no "press play".
    expect(watcher.locator("#faults")).to_be_hidden()
    expect(watcher.locator("#scrubber")).to_be_hidden()
    expect(watcher.locator("#scrubber-panel .scrub-pos")).to_be_visible()
    assert "press play" not in watcher.locator("body").inner_text()

    room.presenter.get_by_role("button", name=FAULT).click()
    # Once the presenter pressed one, the attendee sees what was pressed, and nothing to press.
    expect(watcher.locator("#faults .pressed")).to_contain_text(FAULT)
    expect(watcher.locator("#faults form").first).to_be_hidden()
    expect(watcher.locator("#faults .hint")).to_be_hidden()

"""Scale-out end to end: a presenter on Daphne A, an attendee on Daphne B, the room in the worker.

Every control goes from A to the runtime worker over Redis; every frame comes back through the
room's channel group to the relay of each Daphne, and from there to its browsers. The attendee on
B must see each change, and each frame exactly once and in order (``window.labFrames``, recorded
by static/js/room.js: one full snapshot, then contiguous deltas). An attendee cannot control the
room from B, whatever it sends.
"""

from __future__ import annotations

import asyncio
import json
import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from dashboard.management.commands.bench_fanout import bench_scenario, run_bench
from dashboard.management.commands.bench_fanout import open_room as upload_room
from dashboard.management.commands.scaleout import Lab
from dashboard.workshops.workshop import NOT_PRESENTER

SCENARIO = "producer-retry-duplicate"
POSITION = "#scrubber-panel .scrub-pos"


def _page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(8_000)
    return page


def open_room(browser: Browser, lab: Lab) -> tuple[Page, Page, str]:
    """A presenter on A creates a room from the catalogue; an attendee on B joins with its code.
    Returns (presenter page, attendee page, room id). Separate contexts: separate sessions."""
    a, b = lab.urls
    presenter = _page(browser.new_context())
    presenter.goto(a + "/")
    presenter.locator(f'button[name="scenario"][value="{SCENARIO}"]').click()
    expect(presenter.locator("#conn")).to_have_text("live")
    expect(presenter.locator("#role-badge")).to_have_text("presenter")
    room_id = presenter.locator("#room").get_attribute("data-room") or ""
    code = presenter.locator("#join-code").inner_text()
    assert presenter.locator("#attendee-link").get_attribute("href") == f"{a}/r/{code}/"
    assert f"/rooms/{room_id}/present/" in (
        presenter.locator("#presenter-link").get_attribute("href") or ""
    )

    attendee = _page(browser.new_context())
    attendee.goto(f"{b}/r/{code}/")
    assert attendee.url == f"{b}/rooms/{room_id}/"
    expect(attendee.locator("#conn")).to_have_text("live")
    expect(attendee.locator("#role-badge")).to_have_text("attendee")
    return presenter, attendee, room_id


def frames(page: Page) -> list[tuple[int, str]]:
    return [(int(seq), kind) for seq, kind in page.evaluate("window.labFrames")]


def assert_each_frame_once(page: Page) -> int:
    """One full snapshot first, then every delta after it exactly once, without a gap; returns
    the last sequence number."""
    got = frames(page)
    assert got, "no frame arrived"
    (start, kind), deltas = got[0], got[1:]
    assert kind == "full", got
    assert [k for _, k in deltas] == ["delta"] * len(deltas), got
    assert [s for s, _ in deltas] == list(range(start + 1, start + 1 + len(deltas))), got
    return start + len(deltas)


def seq_of(page: Page) -> int:
    return int(page.locator("#frame-seq").get_attribute("data-seq") or -1)


def test_an_attendee_on_the_other_daphne_follows_each_step_once(
    scaleout: Lab, browser: Browser
) -> None:
    presenter, attendee, _ = open_room(browser, scaleout)
    expect(attendee.locator(POSITION)).to_contain_text("event 0 /")
    clock = attendee.locator("#run-header .clock-value")
    clock_before = clock.inner_text()

    for n in range(1, 5):
        presenter.locator("#btn-step").click()
        expect(presenter.locator(POSITION)).to_contain_text(f"event {n} /")
        expect(attendee.locator(POSITION)).to_contain_text(f"event {n} /")
    expect(clock).not_to_have_text(clock_before)

    crash = presenter.locator("#faults button.fault", has_text="Crash broker-2")
    crash.click()
    expect(attendee.locator("#faults .pressed")).to_contain_text("Crash broker-2")
    presenter.locator("#btn-step").click()
    expect(attendee.locator(POSITION)).to_contain_text("event 5 /")
    expect(attendee.locator("#brokers")).to_contain_text(re.compile("down|crashed", re.I))

    # Both pages, on different Daphne processes, end on the same frame, each frame seen once.
    expect(attendee.locator("#frame-seq")).to_have_attribute(
        "data-seq", str(seq_of(presenter))
    )
    last = assert_each_frame_once(attendee)
    assert assert_each_frame_once(presenter) == last
    assert last == seq_of(attendee)
    assert attendee.locator(POSITION).inner_text() == presenter.locator(POSITION).inner_text()
    assert attendee.locator("#events").inner_text() == presenter.locator("#events").inner_text()
    expect(attendee.locator("#ws-error")).to_be_empty()


def test_an_attendees_forged_controls_are_refused_and_change_nothing(
    scaleout: Lab, browser: Browser
) -> None:
    presenter, attendee, room_id = open_room(browser, scaleout)
    b = scaleout.urls[1]
    presenter.locator("#btn-step").click()
    expect(presenter.locator(POSITION)).to_have_text("event 1 / 1")
    expect(attendee.locator(POSITION)).to_have_text("event 1 / 1")

    # A control POST with the attendee's own session and a valid CSRF token, against B.
    token = next(c["value"] for c in attendee.context.cookies() if c["name"] == "csrftoken")
    for action in ("step", "play", "reset"):
        response = attendee.context.request.post(
            f"{b}/rooms/{room_id}/control/",
            form={"action": action},
            headers={"X-CSRFToken": token, "Referer": f"{b}/rooms/{room_id}/"},
            max_redirects=0,
        )
        assert response.status == 403, (action, response.status, response.text())
        assert NOT_PRESENTER in response.text()  # refused as an attendee, not for the token

    # The same over the attendee's WebSocket: an error frame for that socket, nothing else.
    answer = attendee.evaluate(
        """url => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            const got = [];
            ws.onmessage = (e) => {
                got.push(e.data);
                if (got.length === 1) ws.send(JSON.stringify({action: "step"}));
                else { ws.close(); resolve(e.data); }
            };
            ws.onerror = () => reject(new Error("websocket error"));
            setTimeout(() => reject(new Error("no answer: " + got.length)), 5000);
        })""",
        f"ws://{b.removeprefix('http://')}/ws/rooms/{room_id}/",
    )
    assert 'id="ws-error"' in answer and "only the room" in answer, answer

    # Had any of these reached the room, it would act before the presenter's next step, which
    # queues behind them: a forged step would land that on event 3, a reset on event 1, a play
    # would leave the room playing. Instead the step moves it one event, still paused, for
    # both (and the path was live all along).
    presenter.locator("#btn-step").click()
    for page in (presenter, attendee):
        expect(page.locator(POSITION)).to_have_text("event 2 / 2")
        expect(page.locator("#run-header .run-state")).to_contain_text("paused")
    expect(attendee.locator("#frame-seq")).to_have_attribute("data-seq", str(seq_of(presenter)))
    assert_each_frame_once(attendee)
    assert_each_frame_once(presenter)


def test_the_controls_reach_the_worker_from_either_daphne(scaleout: Lab, browser: Browser) -> None:
    """A co-presenter with the presenter link, on B, drives the room the presenter on A shows."""
    presenter, _, room_id = open_room(browser, scaleout)
    a, b = scaleout.urls
    link = presenter.locator("#presenter-link").get_attribute("href") or ""
    co = _page(browser.new_context())
    co.goto(b + link.removeprefix(a))
    assert co.url == f"{b}/rooms/{room_id}/"
    expect(co.locator("#role-badge")).to_have_text("presenter")
    expect(co.locator("#conn")).to_have_text("live")
    co.locator("#btn-step").click()
    co.locator("#btn-step").click()
    expect(presenter.locator(POSITION)).to_contain_text("event 2 /")
    expect(co.locator(POSITION)).to_contain_text("event 2 /")
    assert json.dumps(frames(co)[-1]) == json.dumps(frames(presenter)[-1])
    assert_each_frame_once(co)
    assert_each_frame_once(presenter)


def test_a_playing_room_reaches_attendees_on_both_daphnes_once_each(scaleout: Lab) -> None:
    """bench_fanout's clients, briefly: 20 frames a second through Redis to both relays."""
    room, cookie = upload_room(scaleout.urls[0], bench_scenario(0))
    # At least 30 frames each, however long a loaded machine takes to send them (the rate is
    # bench_fanout's to measure: 20 a second on a quiet machine).
    result = asyncio.run(
        run_bench(scaleout.urls, room, cookie, clients=6, seconds=1.5, min_frames=30)
    )
    assert (result.gaps, result.repeats) == (0, 0), result.text()
    assert min(result.delivered) >= 30, result.text()
    assert min(result.delivered) >= result.frames_sent - 4, result.text()


def test_attendees_joining_while_the_room_plays_get_no_repeat(scaleout: Lab) -> None:
    room, cookie = upload_room(scaleout.urls[0], bench_scenario(0))
    result = asyncio.run(
        run_bench(
            scaleout.urls, room, cookie, clients=1, seconds=3.0, late_joiners=120, min_frames=20
        )
    )
    assert result.late_joiners == 120
    assert (result.late_gaps, result.late_repeats) == (0, 0), result.text()

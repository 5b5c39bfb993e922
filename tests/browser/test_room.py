"""The room in a real browser: the buttons, the live frames, reloads and time travel."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

VIEWPORT = {"width": 1920, "height": 1080}

# A non-idempotent producer with retries, sending one order every 300 ms: nothing goes wrong
# unless someone presses a fault button.
AT_LEAST_ONCE = """
title = "At-least-once, waiting for a fault"
semantics = "at-least-once"
[cluster]
brokers = 3
[[topics]]
name = "orders"
partitions = 1
"replication.factor" = 3
"min.insync.replicas" = 2
[[producers]]
name = "p1"
[producers.config]
acks = "all"
retries = 5
"enable.idempotence" = false
"max.in.flight.requests.per.connection" = 1
"request.timeout.ms" = 1000
"linger.ms" = 0
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
count = 6
interval_ms = 300
key = "order-{i}"
narration = "p1 sends an order every 300 ms."
"""


def new_page(browser: Browser) -> Page:
    # Reduced motion: no half-finished slide-in in screenshots (and it must keep working).
    page = browser.new_page(viewport=VIEWPORT, reduced_motion="reduce")
    page.set_default_timeout(10_000)
    return page


def open_builtin(page: Page, url: str, title: str) -> None:
    """Open a built-in scenario from the catalogue: a new workshop room, this page presents it."""
    page.goto(url + "/")
    page.get_by_role("button", name=f"Open {title}").click()
    expect(page.locator("#conn")).to_have_text("live")


def open_uploaded(browser: Browser, url: str, path: Path, scenario: str) -> Page:
    """Upload ``scenario`` (TOML text, written to ``path``) from the home page: a new workshop
    room, presented by the page returned."""
    page = new_page(browser)
    page.goto(url + "/")
    path.write_text(scenario)
    page.set_input_files("#id_scenario", str(path))
    page.get_by_role("button", name="Open it").click()
    expect(page.locator("#conn")).to_have_text("live")
    return page


def cells(page: Page) -> list[str]:
    return page.locator("#cells-orders-0 > li").evaluate_all(
        "els => els.map(e => e.dataset.offset + ':' + e.dataset.msg)"
    )


def test_a_dropped_response_makes_a_duplicate_cell_and_changes_the_verdict(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page = open_uploaded(browser, live_url, tmp_path / "waiting.toml", AT_LEAST_ONCE)
    duplicated = page.locator("#verdict .count-duplicated_in_log dd")
    expect(duplicated).to_have_text("0")

    # Step until the first order is in the log, then drop the next response. (Playing, the press
    # could land after the last order on a busy machine: no duplicate then.)
    first = page.locator("#c-orders-0-0")
    for n in range(1, 40):
        page.keyboard.press("ArrowRight")
        expect(page.locator("#scrubber-panel .scrub-pos")).to_contain_text(f"event {n} /")
        if first.count():
            break
    expect(first).to_be_visible()
    page.get_by_role("button", name="Drop the next produce response").click()
    expect(page.locator("#faults .pressed")).to_contain_text("Drop the next produce response")
    page.get_by_role("button", name="to the end").click()

    expect(page.locator("#run-header")).to_contain_text("run over", timeout=15_000)
    duplicate = page.locator("#cells-orders-0 .cell.is-duplicate")
    expect(duplicate).to_have_count(1)
    expect(duplicate.locator(".cell-dup")).to_have_text("\u00d72")
    expect(duplicated).to_have_text("1")
    anomaly = page.locator("#verdict .anomaly")
    expect(anomaly).to_contain_text("expected under at-least-once")
    message = duplicate.get_attribute("data-msg")
    copies = page.locator(f'#cells-orders-0 .cell[data-msg="{message}"]')
    expect(copies).to_have_count(2)

    anomaly.click()
    expect(page.locator("#cells-orders-0 .cell.is-highlighted")).to_have_count(2)
    screenshot(page, "room-duplicate")


def test_two_browsers_see_the_same_frames(browser: Browser, live_url: str) -> None:
    first = new_page(browser)
    open_builtin(
        first, live_url, "At-least-once: a lost acknowledgement makes the retry a duplicate"
    )
    # Opening a scenario makes a workshop room: the opener presents it, and a second browser
    # (a context of its own, so another session) watches it as an attendee.
    expect(first.locator("#role-badge")).to_have_text("presenter")
    second = new_page(browser)
    second.goto(first.url)
    expect(second.locator("#conn")).to_have_text("live")
    expect(second.locator("#role-badge")).to_have_text("attendee")

    for n in range(1, 5):
        first.keyboard.press("ArrowRight")
        expect(first.locator("#scrubber-panel .scrub-pos")).to_have_text(f"event {n} / {n}")
    expect(second.locator("#scrubber-panel .scrub-pos")).to_have_text("event 4 / 4")

    assert first.locator("#frame-seq").get_attribute("data-seq") == second.locator(
        "#frame-seq"
    ).get_attribute("data-seq")
    assert cells(first) == cells(second) == ["0:p1-0"]
    assert first.locator("#events").inner_text() == second.locator("#events").inner_text()


def test_a_reload_mid_run_restores_the_same_state(browser: Browser, live_url: str) -> None:
    page = new_page(browser)
    open_builtin(
        page, live_url, "At-least-once: a lost acknowledgement makes the retry a duplicate"
    )
    # The slowest speed: the run lasts 3.6 s of virtual time, 14.5 s at 0.25x, so a loaded
    # machine still has the pause button to press after the first cell shows.
    page.get_by_role("button", name="0.25\u00d7").click()
    page.get_by_role("button", name="▶ play").click()
    expect(page.locator("#c-orders-0-0")).to_be_visible()
    page.get_by_role("button", name="❚❚ pause").click()
    expect(page.locator("#run-header .run-state")).to_contain_text("paused")
    clock = page.locator("#run-header .clock-value").inner_text()
    before = (cells(page), page.locator("#producers").inner_text(), clock)

    page.reload()
    expect(page.locator("#conn")).to_have_text("live")

    after = (
        cells(page),
        page.locator("#producers").inner_text(),
        page.locator("#run-header .clock-value").inner_text(),
    )
    assert after == before


def test_the_scrubber_goes_back_and_forward(browser: Browser, live_url: str, screenshot) -> None:
    page = new_page(browser)
    open_builtin(
        page, live_url, "At-least-once: a lost acknowledgement makes the retry a duplicate"
    )
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#run-header")).to_contain_text("run over", timeout=15_000)
    assert cells(page) == ["0:p1-0", "1:p1-0", "2:p1-1", "3:p1-2"]
    position = page.locator("#scrubber-panel .scrub-pos")
    total = int(re.search(r"/ (\d+)", position.inner_text()).group(1))

    page.keyboard.press("ArrowLeft")
    expect(position).to_have_text(f"event {total - 1} / {total}")
    expect(page.locator("#run-header")).to_contain_text("viewing the past")

    page.locator("#scrubber").fill("5")
    expect(position).to_have_text(f"event 5 / {total}")
    expect(page.locator("#cells-orders-0 > li")).to_have_count(1)
    assert cells(page) == ["0:p1-0"]
    screenshot(page, "room-time-travel")

    page.locator("#scrubber").fill(str(total))
    expect(position).to_have_text(f"event {total} / {total}")
    expect(page.locator("#cells-orders-0 > li")).to_have_count(4)
    assert cells(page) == ["0:p1-0", "1:p1-0", "2:p1-1", "3:p1-2"]


def test_the_catalogue_explains_a_bad_scenario_file(
    browser: Browser, live_url: str, tmp_path: Path, screenshot
) -> None:
    page = new_page(browser)
    page.goto(live_url + "/")
    bad = tmp_path / "bad.toml"
    bad.write_text(AT_LEAST_ONCE.replace('acks = "all"', 'acks = "some"'))

    page.set_input_files("#id_scenario", str(bad))
    page.get_by_role("button", name="Open it").click()

    expect(page.locator("#upload-error .error-path")).to_have_text("producers[0].config.acks")
    expect(page.locator("#upload-error")).to_contain_text("expected 0, 1 or \"all\", got 'some'")
    screenshot(page, "catalogue", full_page=True)


def consumer_position(page: Page) -> str:
    return page.locator("#consumers .pointers tbody tr:not(.track-row) td.num").first.inner_text()


def test_a_consumer_crash_before_its_commit_shows_as_reprocessed_records(
    browser: Browser, live_url: str, screenshot
) -> None:
    page = new_page(browser)
    open_builtin(page, live_url, "Commit after processing: a crash before the commit reprocesses")
    expect(page.locator("#consumers")).to_contain_text("billing")
    expect(page.locator(".legend")).to_contain_text("position")

    # Step event by event until the consumer has a position on the lane, then play.
    pointer = page.locator("#cursors-orders-0 .cursor-position")
    position = page.locator("#scrubber-panel .scrub-pos")
    for n in range(1, 80):
        page.keyboard.press("ArrowRight")
        expect(position).to_contain_text(f"event {n} /")
        if pointer.count():
            break
    expect(pointer).to_contain_text("billing position")
    first_column = pointer.locator("xpath=..").get_attribute("style")
    first_value = consumer_position(page)
    page.get_by_role("button", name="4\u00d7").click()
    page.get_by_role("button", name="▶ play").click()

    expect(page.locator("#run-header")).to_contain_text("run over", timeout=20_000)
    expect(page.locator("#cursors-orders-0 .cursor-position")).to_contain_text("billing#2")
    assert pointer.locator("xpath=..").get_attribute("style") != first_column
    expect(page.locator("#cursors-orders-0 .cursor-committed")).to_contain_text("committed")
    assert consumer_position(page) == "8" != first_value
    expect(page.locator("#groups")).to_contain_text("generation")
    expect(page.locator("#groups .members")).to_contain_text("billing#2")
    expect(page.locator("#verdict .count-reprocessed dd")).to_have_text("4")
    expect(page.locator("#verdict .count-processed dd")).to_have_text("8")
    expect(page.locator("#verdict .anomaly").first).to_contain_text("processed twice")
    expect(page.locator("#offsets-log")).to_contain_text("commit orders-0 \u2192 next 8")
    page.locator("#lanes-title").evaluate("el => window.scrollTo(0, el.offsetTop - 90)")
    screenshot(page, "room-consumer")


# A consumer that commits after processing each batch, fed one order every 200 ms; nothing goes
# wrong unless someone presses a button.
CONSUMER_WAITING = """
title = "Commit after processing, waiting for a crash"
semantics = "at-least-once"
duration_ms = 20000
[cluster]
brokers = 3
"group.initial.rebalance.delay.ms" = 0
[[topics]]
name = "orders"
partitions = 1
"replication.factor" = 3
"min.insync.replicas" = 2
[[producers]]
name = "p1"
[producers.config]
acks = "all"
"linger.ms" = 0
[[consumers]]
name = "billing"
group = "billing"
topics = ["orders"]
commit = "after-processing"
processing_ms = 20
[consumers.config]
"auto.offset.reset" = "earliest"
"max.poll.records" = 4
"session.timeout.ms" = 6000
"heartbeat.interval.ms" = 2000
[[steps]]
at_ms = 0
do = "produce"
producer = "p1"
topic = "orders"
count = 12
interval_ms = 200
key = "order-{i}"
narration = "p1 writes an order every 200 ms; billing reads, processes, then commits."
"""


def test_pressing_crash_after_processing_makes_the_group_process_records_twice(
    browser: Browser, live_url: str, tmp_path: Path
) -> None:
    page = new_page(browser)
    page.goto(live_url + "/")
    scenario = tmp_path / "consumer-waiting.toml"
    scenario.write_text(CONSUMER_WAITING)
    page.set_input_files("#id_scenario", str(scenario))
    page.get_by_role("button", name="Open it").click()
    expect(page.locator("#conn")).to_have_text("live")
    crash = page.get_by_role("button", name="Crash billing after processing (before its commit)")
    expect(page.get_by_role("button", name="Make sink")).to_have_count(0)  # no sink here

    # Step (not play) to the first poll: a busy machine cannot let the run settle before the
    # press lands, as it could at 1x.
    position = page.locator("#scrubber-panel .scrub-pos")
    for _ in range(80):
        if "consuming" in page.locator("#consumers .consumer").inner_text():
            break
        before = position.inner_text()
        page.locator("#btn-step").click()
        expect(position).not_to_have_text(before)
    expect(page.locator("#consumers .consumer")).to_contain_text("consuming")
    expect(crash).to_be_enabled()
    crash.click()
    expect(page.locator("#faults .pressed")).to_contain_text(
        "Crash billing after processing (before its commit)"
    )
    page.get_by_role("button", name="▶ play").click()
    expect(page.locator("#consumers .consumer")).to_contain_text("crashed", timeout=15_000)
    restart = page.get_by_role("button", name="Restart consumer billing")
    expect(restart).to_be_enabled()
    restart.click()
    page.get_by_role("button", name="to the end").click()

    expect(page.locator("#run-header")).to_contain_text("run over", timeout=20_000)
    # At least one record processed twice (waited for, not read once: on a loaded machine the
    # verdict's count has been seen to show after the header's "run over").
    expect(page.locator("#verdict .count-reprocessed dd")).to_have_text(re.compile(r"^[1-9]\d*$"))
    expect(page.locator("#verdict .anomaly").first).to_contain_text("processed twice")
    expect(page.locator("#verdict .anomaly").first).to_contain_text("expected under at-least-once")
    expect(page.locator("#consumers .consumer h3")).to_contain_text("billing#2")


def test_an_aborted_transaction_shows_its_marker_and_vanishes_as_read_committed(
    browser: Browser, live_url: str, screenshot
) -> None:
    page = new_page(browser)
    open_builtin(
        page,
        live_url,
        "An aborted transaction: read_committed sees none of it, read_uncommitted acts on it",
    )
    page.get_by_role("button", name="to the end").click()
    expect(page.locator("#run-header")).to_contain_text("run over", timeout=15_000)

    marker = page.locator("#c-orders-0-3")
    expect(marker).to_have_class(re.compile(r"\bis-marker-abort\b"))
    expect(marker.locator(".marker-letter")).to_have_text("A")
    expect(marker.locator(".cell-offset")).to_have_text("3")
    assert marker.bounding_box()["width"] < page.locator("#c-orders-0-4").bounding_box()["width"]
    aborted = page.locator("#cells-orders-0 .cell.is-aborted")
    expect(aborted).to_have_count(3)
    for i in range(3):
        key = aborted.nth(i).locator(".cell-key")
        assert "line-through" in key.evaluate("el => getComputedStyle(el).textDecorationLine")
        expect(aborted.nth(i).locator(".cell-state")).to_have_text("aborted")
    expect(page.locator("#verdict .count-aborted_reads dd")).to_have_text("3")
    expect(page.locator("#verdict .anomaly").first).to_contain_text("acted on aborted data")
    expect(page.locator("#transactions")).to_contain_text("CompleteCommit")
    expect(page.locator("#txn-log")).to_contain_text("orders-tx: PrepareAbort")

    page.locator("#lanes-title").evaluate("el => window.scrollTo(0, el.offsetTop - 90)")
    screenshot(page, "room-transactions")

    page.get_by_label("as read_committed").first.check()
    for offset in (0, 1, 2, 3, 6):
        expect(page.locator(f"#c-orders-0-{offset}")).to_be_hidden()
    expect(page.locator("#c-orders-0-4")).to_be_visible()
    expect(page.locator("#c-orders-0-5")).to_be_visible()
    expect(page.locator("#reads-orders-0")).to_contain_text("as read_committed: returns 4, 5")

    page.get_by_label("as read_uncommitted").first.check()
    expect(page.locator("#c-orders-0-0")).to_be_visible()
    expect(page.locator("#c-orders-0-3")).to_be_hidden()


# Orders with acks=1, half of them while the leader is cut off from its followers, then a crash,
# more orders to the new leader, and the old one back: at 16x frames carry a lane's cells
# replaced whole, at 4x cells appended; the failover truncates (cells deleted, ghosts drawn)
# and the HW moves (cells replaced).
STREAM_WITH_FAILOVER = """
title = "A stream through a failover"
semantics = "at-least-once"
[cluster]
brokers = 3
"broker.session.timeout.ms" = 2000
[[topics]]
name = "orders"
partitions = 1
"replication.factor" = 3
"min.insync.replicas" = 1
[[producers]]
name = "p1"
[producers.config]
acks = 1
"enable.idempotence" = false
"linger.ms" = 0
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
count = 30
interval_ms = 20
key = "order-{i}"
[[steps]]
at_ms = 700
do = "isolate-broker"
broker = "leader:orders-0"
from = "brokers"
[[steps]]
at_ms = 720
do = "produce"
producer = "p1"
topic = "orders"
count = 30
interval_ms = 20
key = "late-{i}"
[[steps]]
at_ms = 1400
do = "crash-broker"
broker = "leader:orders-0"
[[steps]]
at_ms = 3000
do = "produce"
producer = "p1"
topic = "orders"
count = 30
interval_ms = 20
key = "after-{i}"
[[steps]]
at_ms = 4000
do = "heal"
[[steps]]
at_ms = 4000
do = "restart-broker"
broker = 1
"""

# What a reload must show the same: the panels' text, and each cell with what marks it (less
# what only a live page has: the slide-in of a cell just arrived, a highlight clicked).
SAME_AFTER_RELOAD = """() => {
  const texts = ["run-header", "brokers", "producers", "verdict", "lanes"].map(
    (id) => id + ": " + document.getElementById(id).innerText);
  const cells = Array.from(document.querySelectorAll("#lanes li[id]")).map((el) =>
    [el.id, [...el.classList].filter((c) => c !== "is-arriving").sort().join(" "),
     el.getAttribute("aria-label"), el.parentElement.id].join(" | "));
  return { texts, cells };
}"""


@pytest.mark.parametrize("speed", ["4", "16"])
def test_the_page_built_from_frames_is_the_page_a_reload_shows(
    browser: Browser, live_url: str, tmp_path: Path, speed: str
) -> None:
    page = open_uploaded(browser, live_url, tmp_path / "stream.toml", STREAM_WITH_FAILOVER)
    page.locator(f'button.speed[value="{speed}"]').click()
    page.get_by_role("button", name="▶ play").click()
    expect(page.locator("#run-header .run-state")).to_contain_text("run over", timeout=60_000)
    expect(page.locator("#lanes .cell.is-ghost").first).to_be_visible()
    frames = page.evaluate("() => window.labFrames")
    assert [kind for _seq, kind in frames[1:]].count("delta") > 3, frames  # built from deltas

    live = page.evaluate(SAME_AFTER_RELOAD)
    page.reload()
    expect(page.locator("#conn")).to_have_text("live")

    assert page.evaluate("() => window.labFrames.map(f => f[1])") == ["full"]
    assert page.evaluate(SAME_AFTER_RELOAD) == live

"""The Story panel tells what the engine did, from its events; the scenario's notes are "the
script says", apart, and only those the run has reached."""

from __future__ import annotations

import gc
import weakref
from typing import Any

from broker.scenario import load
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments, presenters
from dashboard.panels.observe import observe, scenario_info, verdict_of
from tests.dashboard.conftest import finished, observed, run, status, step

RETRY_AGAIN = (
    "broker-1 appended p1-0 at orders-0@1 again (first at 0): the retry of a batch whose answer "
    "was lost, and idempotence is off."
)
SCRIPT_AGAIN = (
    "request.timeout.ms has passed: p1 gives up waiting, and retries. The broker appends the "
    "same message again."
)


def story(obs: dict[str, Any]) -> list[str]:
    panel = presenters.narration_panel(obs)
    assert panel is not None
    return [line["text"] for line in panel["lines"]]


def test_a_duplicate_is_told_with_its_reason() -> None:
    obs = finished("producer-retry-duplicate")

    lines = story(obs)
    html = fragments.build_model(obs).html["narration"]

    assert lines[-1] == RETRY_AGAIN
    assert lines[-2] == (
        "p1: no answer within request.timeout.ms=3000; connection closed, outcome unknown "
        "(REQUEST_TIMED_OUT)."
    )
    assert "<h3>What happened</h3>" in html and "<h3>The script says</h3>" in html
    happened, script = html.split("<h3>The script says</h3>")
    assert "appended p1-0 at orders-0@1 again" in happened
    assert SCRIPT_AGAIN in script and SCRIPT_AGAIN not in happened


def test_a_run_that_left_the_script_tells_its_own_story() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    while not any(e.kind == "produce.append" for e in timeline.sim.events):
        timeline.step_engine()
    timeline.submit({"do": "crash-producer", "producer": "p1"}, "Crash producer app p1")
    obs = observed(step(timeline))

    lines = story(obs)
    panel = presenters.narration_panel(obs)

    assert panel is not None
    assert not [line for line in lines if "again" in line]
    assert "p1 crashed (application stopped; its producer's buffers are gone)." in lines
    assert panel["departed"] == (
        f"The run left the script at {timeline.commands[0].time_ms} ms (Crash producer app p1): "
        "the notes were written for the run without it."
    )
    # The author's note is still there, as the script, not as what happened.
    assert SCRIPT_AGAIN in [note["text"] for note in panel["script"]]


def test_idempotence_is_told_where_it_acts() -> None:
    lines = story(finished("producer-idempotent"))

    assert lines[-3] == (
        "broker-1 recognised a retry by its producer id and sequence (PID 0 seq 0..0 already at "
        "offsets 0..0: not appended, answered with the original offset): no second copy. "
        "Idempotence at work."
    )


def test_a_truncation_of_acknowledged_records_says_they_are_lost() -> None:
    lines = story(finished("producer-acks1-failover"))

    assert (
        "broker-1 truncated orders-0 to offset 0: log diverged from the leader after epoch 0: "
        "offsets 0..2 removed. It removed p1-0, p1-1, p1-2. p1-0, p1-1, p1-2 had been "
        "acknowledged to their producer and no other copy exists: lost."
    ) in lines


def test_records_processed_again_are_one_sentence_with_the_reason() -> None:
    lines = story(finished("consumer-commit-after-processing"))

    assert (
        "billing crashed after processing. It had processed 4 record(s) since its last commit: "
        "its group will read them again."
    ) in lines
    assert lines[-1] == (
        "billing#2 processed p1-0, p1-1, p1-2, p1-3 (orders-0@0..3) again: group billing had no "
        "committed offset for orders-0, so it read them once more."
    )


def test_going_back_in_time_tells_only_what_happened_until_then() -> None:
    timeline = run("producer-retry-duplicate")
    assert story(observed(timeline))[-1] == RETRY_AGAIN

    timeline.seek(3)
    lines = story(observed(timeline))

    assert RETRY_AGAIN not in lines
    assert all("request.timeout" not in line for line in lines)


def test_before_the_run_starts_neither_story_nor_script_is_told() -> None:
    obs = observed(Timeline(load("producer-retry-duplicate")))

    panel = presenters.narration_panel(obs)
    html = fragments.build_model(obs).html["narration"]

    assert panel is not None
    assert panel["lines"] == [] and panel["script"] == []
    assert "Nothing notable yet." in html
    assert SCRIPT_AGAIN not in html


def test_the_event_count_matches_the_trace_and_names_the_scrubber_moments() -> None:
    timeline = run("producer-retry-duplicate")
    obs = observe(
        timeline,
        scenario_info(timeline.spec),
        status(position=timeline.position, length=timeline.length),
        verdict_of(timeline.sim),
    )

    html = fragments.build_model(obs).html["events"]

    trace = len(timeline.sim.trace())
    assert trace > timeline.position  # one step can hold several events
    assert (
        f"{trace} events so far (as many as trace lines), in {timeline.position} moments of the "
        "history scrubber: the events of one engine step are one moment."
    ) in html


def test_an_engine_left_behind_by_time_travel_takes_its_narrator_with_it() -> None:
    timeline = run("producer-acks1-failover")
    left_behind = []
    for position in (6, 4, 2):  # each one back: a new engine, replayed from the start
        observed(timeline)  # the engine gets its narrator
        left_behind.append(weakref.ref(timeline.sim))
        timeline.seek(position)
    observed(timeline)
    gc.collect()

    assert [engine() for engine in left_behind] == [None, None, None]

"""The verdict panel as a learner reads it: the semantics' promise against what happened first,
the scenario's expectation second, each count once with its meaning, lost cards pointing at the
record that was lost."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from broker.scenario import load, load_text
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments, presenters
from tests.dashboard.conftest import finished, observed, step

BUILTINS = Path(__file__).resolve().parents[2] / "broker" / "scenarios"


def verdict_html(obs: dict[str, Any]) -> str:
    return fragments.build_model(obs).html["verdict"]


def shown_counts(panel: dict[str, Any]) -> dict[str, int]:
    return {c["label"]: c["value"] for c in panel["counts"] + panel["anomaly_counts"]}


# -- lost cards highlight the record that was lost -------------------------------------------
def test_a_lost_card_points_at_the_ghost_of_the_truncated_record_not_the_live_cell() -> None:
    obs = finished("producer-acks1-failover")
    model = fragments.build_model(obs)

    panel = presenters.verdict_panel(obs)

    assert panel is not None
    lost = {a["message_id"]: a for a in panel["anomalies"]}
    assert lost["p1-0"]["cells"] == "g-orders-0-0-p1-0"
    assert lost["p1-0"]["where"] == "orders-0@0 (truncated away)"
    lane = model.lanes["orders-0"]
    ghosts = lane.parts["ghosts-orders-0"]
    assert re.search(
        r'<div id="g-orders-0-0-p1-0" class="cell is-ghost"[^>]*data-msg="p1-0"', ghosts
    )
    # The live cell at offset 0 holds another record, which the card must not light up.
    assert 'data-msg="p1-3"' in lane.cells[0]
    assert 'data-cells="g-orders-0-0-p1-0"' in model.html["verdict"]


def test_a_lost_message_never_appended_has_no_cell_to_light() -> None:
    panel = presenters.verdict_panel(finished("producer-acks0-lost"))

    assert panel is not None
    assert panel["anomalies"] and {a["cells"] for a in panel["anomalies"]} == {""}


# -- the headline: the semantics' promise, then the author's expectation ---------------------
def test_a_broken_guarantee_is_the_headline_even_when_the_scenario_expected_it() -> None:
    obs = finished("producer-acks1-failover")

    panel = presenters.verdict_panel(obs)
    html = verdict_html(obs)

    assert panel is not None
    assert (panel["mark"], panel["headline"]) == ("\u2717", "at-least-once broken: 3 lost")
    assert panel["state"] == "is-broken"
    assert "\u2713" not in html.split("</h2>")[0]
    assert 'What the scenario expected: <span class="expected-counts">lost \u2265 1, ' in html
    assert "duplicated 0</span> \u00b7 " in html and "so it went" in html


def test_a_held_guarantee_with_an_allowed_duplicate() -> None:
    panel = presenters.verdict_panel(finished("producer-retry-duplicate"))

    assert panel is not None
    assert panel["mark"] == "\u2713"
    assert panel["headline"] == "at-least-once held: nothing lost, 1 duplicate in the log"


def test_a_run_without_the_duplicate_holds_and_says_the_script_expected_otherwise() -> None:
    text = (BUILTINS / "producer-retry-duplicate.toml").read_text(encoding="utf-8")
    # The response drop matches nothing: no retry, no duplicate.
    text = text.replace('partition = "orders-0"\nnth = 1', 'partition = "orders-0"\nnth = 99')
    obs = observed(step(Timeline(load_text(text, "no-duplicate"))))

    panel = presenters.verdict_panel(obs)
    html = verdict_html(obs)

    assert panel is not None
    assert panel["headline"] == "at-least-once held: nothing lost"
    assert panel["mark"] == "\u2713" and panel["verdict"] == "unexpected"
    assert "this run went otherwise (duplicated: expected &gt;= 1, got 0)" in html
    assert "No anomaly." in html


def test_mid_run_the_headline_says_so_far_and_keeps_the_expectation_hidden() -> None:
    timeline = Timeline(load("producer-acks1-failover"))
    while timeline.sim.now_ms < 500:
        timeline.step_engine()
    obs = observed(timeline)

    panel = presenters.verdict_panel(obs)
    html = verdict_html(obs)

    assert panel is not None
    # Acknowledged by the isolated leader, not yet committed: no check mark, no cross yet.
    assert (panel["mark"], panel["headline"]) == ("", "at-least-once, so far: 3 lost")
    assert "What the scenario expected" not in html and "lost \u2265 1" not in html


# -- counts: each once, each with its meaning ------------------------------------------------
def test_processed_twice_is_not_counted_again_as_duplicated() -> None:
    obs = finished("consumer-commit-after-processing")

    panel = presenters.verdict_panel(obs)
    html = verdict_html(obs)

    assert panel is not None
    assert obs["verdict"]["outcome"]["duplicated"] == 4  # the checker's documented sum
    counts = shown_counts(panel)
    assert counts["processed twice"] == 4
    assert counts["duplicated in the log"] == 0
    assert "duplicated" not in counts
    assert panel["headline"] == "at-least-once held: nothing lost, 4 processed twice"
    assert re.search(
        r'<div class="count count-reprocessed is-nonzero" title="Messages a consumer group '
        r"processed more than once \(once per group and message\); the log itself holds them "
        r'once\."><dt>processed twice</dt><dd>4</dd></div>',
        html,
    )


def test_every_count_shown_says_what_it_counts() -> None:
    for name in ("producer-acks1-failover", "sink-dual-write", "txn-abort-read-committed"):
        panel = presenters.verdict_panel(finished(name))
        assert panel is not None
        for count in panel["counts"] + panel["anomaly_counts"]:
            assert count["title"].endswith("."), (name, count)


def test_acks_0_sends_are_not_called_acknowledged() -> None:
    obs = finished("producer-acks0-lost")

    panel = presenters.verdict_panel(obs)
    html = verdict_html(obs)

    assert panel is not None
    counts = shown_counts(panel)
    assert "acknowledged" not in counts
    assert counts["sent, not acknowledged"] == 4
    assert "No broker acknowledged any of these." in html
    assert panel["anomalies"][0]["explanation"].startswith(
        "sent with acks=0 to clicks-0 (no broker answers) but not in the committed log"
    )


def test_a_consumer_started_from_the_experiments_panel_brings_the_consumer_counts() -> None:
    # producer-acks0-lost declares no consumer: its verdict has no consumer counts until one
    # is started, and then shows them even while they are zero.
    timeline = step(Timeline(load("producer-acks0-lost")))
    assert "unseen (never read)" not in shown_counts(
        presenters.verdict_panel(observed(timeline)) or {}
    )

    timeline.submit({"do": "start-consumer"}, "Start a consumer")  # its one topic
    counts = shown_counts(presenters.verdict_panel(observed(step(timeline))) or {})

    assert counts["processed"] == 3 and counts["unseen (never read)"] == 0, counts

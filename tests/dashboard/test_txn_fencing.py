"""A zombie transactional producer in the room (issue 12, mechanism 3): the leader's
INVALID_PRODUCER_EPOCH is abortable, the coordinator's PRODUCER_FENCED on the abort is fatal,
and the room shows that sequence: in the producer's client state, the event log and the
sequence diagram (txn-zombie-fenced: p1-new fences p1 at 1 s, p1 writes at 2 s and tries to
commit at 2.5 s)."""

import re
from typing import Any

from broker.scenario import load
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments
from dashboard.panels.diagram import sequence_diagram
from dashboard.panels.observe import observe, scenario_info, verdict_of
from tests.dashboard.conftest import status


def observed_at(until_ms: int) -> dict[str, Any]:
    timeline = Timeline(load("txn-zombie-fenced"))
    while timeline.sim.now_ms < until_ms and timeline.step_engine():
        pass
    return observe(timeline, scenario_info(timeline.spec), status(), verdict_of(timeline.sim))


def client_states(obs: dict[str, Any]) -> list[str]:
    html = fragments.build_model(obs).html["producers"]
    return [
        re.sub(r"<[^>]+>", "", p) for p in re.findall(r'class="client-txn[^"]*">(.*)</p>', html)
    ]


def event_lines(obs: dict[str, Any]) -> list[str]:
    html = fragments.build_model(obs).html["events"]
    lines = [re.sub(r"<[^>]+>", "", li) for li in re.findall(r"<li[^>]*>(.*?)</li>", html)]
    # Correlation ids (#74) are numbered across all clients: not part of the story.
    return [re.sub(r"#\d+", "#N", " ".join(line.replace("&gt;", ">").split())) for line in lines]


def test_the_zombie_shows_the_abortable_error_then_the_fatal_one() -> None:
    abortable = client_states(observed_at(2300))[0]
    fatal = client_states(observed_at(2600))[0]

    assert abortable.endswith("ABORTABLE_ERROR: error: it can only abort (INVALID_PRODUCER_EPOCH)")
    assert fatal.endswith("FATAL_ERROR: fatal: fenced, it must close (PRODUCER_FENCED)")


def test_the_event_log_names_each_error_in_order() -> None:
    lines = event_lines(observed_at(2600))
    wanted = [
        "2006 ms p1 txn.client-state IN_TRANSACTION -> ABORTABLE_ERROR (Produce to orders-0) "
        "INVALID_PRODUCER_EPOCH",
        "2500 ms p1 txn.client-state ABORTABLE_ERROR -> ABORTING_TRANSACTION",
        "2508 ms p1 txn.response EndTxn #N PRODUCER_FENCED",
        "2508 ms p1 txn.client-state ABORTING_TRANSACTION -> FATAL_ERROR (EndTxn) PRODUCER_FENCED",
        "2508 ms p1 app.fenced the producer is fenced: this instance must stop PRODUCER_FENCED",
    ]
    found = [next(i for i, line in enumerate(lines) if line == w) for w in wanted if w in lines]
    assert [lines[i] for i in found] == wanted, lines
    assert found == sorted(found)


def test_the_sequence_diagram_shows_the_abort_answered_producer_fenced() -> None:
    obs = observed_at(2600)

    svg = sequence_diagram(obs["scenario"], obs["diagram"])

    labels = re.findall(r"<text[^>]*>([^<]*)</text>", svg)
    assert (
        labels.index("Produce [p1-2]")
        < labels.index("EndTxn")
        < labels.index("EndTxn PRODUCER_FENCED")
    )

"""Transactions in the room: markers, open and aborted cells, the isolation toggle, the
coordinator, processor and __transaction_state panels, the transaction buttons, the verdict."""

import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from broker.scenario import load, step_parser
from dashboard.asgi import application
from dashboard.live.runtime import Room, registry
from dashboard.panels import fragments, presenters, txn_panels
from dashboard.panels.diagram import sequence_diagram
from dashboard.panels.observe import scenario_info
from dashboard.workshops.forms import ControlForm
from tests.dashboard.conftest import Headers, observed, run

ORIGIN = (b"origin", b"http://127.0.0.1:8000")


def lane(obs: dict[str, Any], name: str = "orders-0") -> dict[str, Any]:
    return next(p for p in obs["snapshot"]["partitions"] if p["name"] == name)


def classes(cells: dict[int, str]) -> dict[int, str]:
    return {o: re.search(r'class="([^"]+)"', html).group(1) for o, html in cells.items()}


def shown_as(cells: dict[int, str], attribute: str) -> list[int]:
    """The offsets whose cells stay visible in a view (data-rc / data-ru = "1")."""
    return [o for o, html in sorted(cells.items()) if f'{attribute}="1"' in html]


# -- lanes -----------------------------------------------------------------------------------
def test_aborted_cells_markers_and_committed_cells_after_an_abort_then_a_commit() -> None:
    obs = observed(run("txn-abort-read-committed"))

    _start, cells = presenters.lane_cells(lane(obs))

    assert classes(cells) == {
        0: "cell is-aborted is-transactional",
        1: "cell is-aborted is-transactional",
        2: "cell is-aborted is-transactional",
        3: "cell is-marker is-marker-abort",
        4: "cell is-committed is-transactional",
        5: "cell is-committed is-transactional",
        6: "cell is-marker is-marker-commit",
    }
    assert '<span class="marker-letter" aria-hidden="true">A</span>' in cells[3]
    assert '<span class="cell-offset">3</span>' in cells[3]
    assert '<span class="marker-letter" aria-hidden="true">C</span>' in cells[6]
    assert "ABORT marker for PID 0 epoch 0" in cells[3]
    assert "aborted</span>" in cells[0]  # a word, not colour alone
    assert "read_committed readers skip it" in cells[0]


def test_the_isolation_toggle_shows_exactly_what_each_level_returns() -> None:
    obs = observed(run("txn-abort-read-committed"))
    partition = lane(obs)

    reads = presenters.isolation_reads(partition)
    _start, cells = presenters.lane_cells(partition)
    words = presenters.lane_reads(partition)

    assert reads == {"read_committed": [4, 5], "read_uncommitted": [0, 1, 2, 4, 5]}
    assert shown_as(cells, "data-rc") == [4, 5]
    assert shown_as(cells, "data-ru") == [0, 1, 2, 4, 5]
    assert words["read_committed"] == (
        "returns 4, 5; stops at the LSO (7); skips aborted 0\u20132; "
        "markers 3, 6 are never returned"
    )
    assert words["read_uncommitted"] == (
        "returns 0\u20132, 4, 5; reads up to the HW (7), aborted data included; "
        "markers 3, 6 are never returned"
    )


@pytest.mark.parametrize("until_ms", [500, None])
def test_a_jump_to_offset_window_obeys_the_isolation_toggle_like_the_live_lane(
    until_ms: int | None,
) -> None:
    timeline = run("txn-abort-read-committed", until_ms=until_ms)
    _start, live = presenters.lane_cells(lane(observed(timeline)))

    window = timeline.sim.read_records("orders-0", 1, 40)
    cells = dict(
        zip(
            (r["offset"] for r in window["records"]),
            presenters.window_cells("orders-0", window),
            strict=True,
        )
    )

    assert sorted(cells) == [o for o in sorted(live) if o >= 1]
    for attribute in ("data-rc", "data-ru"):
        assert shown_as(cells, attribute) == [o for o in shown_as(live, attribute) if o >= 1]
    if until_ms is None:
        assert shown_as(cells, "data-rc") == [4, 5]  # the aborted 1-2 are skipped
    else:
        assert shown_as(cells, "data-rc") == []  # the open transaction holds the LSO at 0


def test_an_open_transaction_is_hatched_and_holds_the_lso_back() -> None:
    obs = observed(run("txn-abort-read-committed", until_ms=500))
    partition = lane(obs)

    start, cells = presenters.lane_cells(partition)
    cursors = presenters.lane_cursors(partition, start)

    assert set(classes(cells).values()) == {"cell is-open-txn is-transactional"}
    assert all("open txn</span>" in html for html in cells.values())
    assert presenters.isolation_reads(partition) == {
        "read_committed": [],
        "read_uncommitted": [0, 1, 2],
    }
    assert (
        "0\u20132 wait for their transaction to end"
        in (presenters.lane_reads(partition)["read_committed"])
    )
    marks = {m["column"]: [i["label"] for i in m["items"]] for m in cursors["marks"]}
    assert marks[1] == ["start", "LSO"]  # log start, LSO, HW, LEO: always in this order
    assert marks[4][:2] == ["HW", "LEO"]


def test_cursors_come_in_the_order_start_lso_hw_leo_and_line_up_with_narrow_markers() -> None:
    obs = observed(run("txn-abort-read-committed"))
    partition = lane(obs)

    cursors = presenters.lane_cursors(partition, 0)

    [end] = [m for m in cursors["marks"] if m["column"] == 8]
    assert [i["label"] for i in end["items"]][:3] == ["LSO", "HW", "LEO"]
    assert cursors["columns"] == (
        "repeat(3, var(--cell-w)) var(--marker-w) repeat(2, var(--cell-w)) var(--marker-w) "
        "repeat(34, var(--cell-w))"
    )


def test_a_lane_without_transactions_has_no_lso_cursor_and_no_markers() -> None:
    obs = observed(run("producer-idempotent"))
    partition = lane(obs)

    cursors = presenters.lane_cursors(partition, 0)

    labels = [i["label"] for m in cursors["marks"] for i in m["items"]]
    assert "LSO" not in labels
    assert "var(--marker-w)" not in cursors["columns"]


def test_the_page_has_a_toggle_per_lane_and_reads_in_words() -> None:
    model = fragments.build_model(observed(run("txn-abort-read-committed")))

    html = model.lanes_html

    assert 'name="view-orders-0" value="read_committed"' in html
    assert 'name="view-orders-0" value="read_uncommitted"' in html
    assert 'name="view-__transaction_state-0"' not in html  # internal logs: no toggle
    assert "<strong>as read_committed:</strong> returns 4, 5;" in html


# -- panels ----------------------------------------------------------------------------------
def test_the_coordinator_panel_shows_state_pid_epoch_and_partitions_mid_transaction() -> None:
    panel = txn_panels.transactions_panel(observed(run("txn-abort-read-committed", 500)))

    assert panel is not None
    [txn] = panel["transactions"]
    assert (txn["transactional_id"], txn["state"], txn["pid"], txn["epoch"]) == (
        "orders-tx",
        "Ongoing",
        0,
        0,
    )
    assert txn["partitions"] == ["orders-0"]
    assert txn["state_meaning"] == "transaction open"
    assert txn["coordinator"] == 1


def test_a_pending_transition_is_shown() -> None:
    obs = observed(run("txn-abort-read-committed", 500))
    obs["snapshot"]["transactions"][0]["pending"] = "PrepareCommit"

    html = fragments.build_model(obs).html["transactions"]

    assert 'pending: <span aria-hidden="true">→</span> PrepareCommit' in html


def test_producers_show_their_transactional_id_and_client_state() -> None:
    obs = observed(run("txn-abort-read-committed", 500))

    html = fragments.build_model(obs).html["producers"]

    assert "transactional.id <code>orders-tx</code>" in html
    assert "IN_TRANSACTION: in a transaction" in html


def test_a_processor_shows_its_instance_topics_and_transaction() -> None:
    obs = observed(run("txn-read-process-write-crash"))

    panel = txn_panels.processors_panel(obs)

    assert panel is not None
    [enricher] = panel["processors"]
    assert enricher["instance"] == "enricher#2"
    assert (enricher["inputs"], enricher["output"]) == ("orders", "enriched")
    assert enricher["transactional_id"] == "enricher-tx"
    assert enricher["client_txn"]["state"] == "READY"
    assert enricher["state"] == "running"


def test_transaction_state_reads_as_a_log_of_decoded_metadata() -> None:
    obs = observed(run("txn-abort-read-committed"))

    panel = txn_panels.txn_log_panel(obs)

    assert panel is not None
    [log] = panel["logs"]
    assert [r["kind"] for r in log["records"]] == [
        "Empty",
        "Ongoing",
        "PrepareAbort",
        "CompleteAbort",
        "Ongoing",
        "PrepareCommit",
        "CompleteCommit",
    ]
    assert log["records"][1]["text"] == (
        "orders-tx: Ongoing (PID 0 epoch 0; orders-0; started at 101 ms)"
    )
    cells = fragments.build_model(obs).lanes["__transaction_state-0"].cells
    assert "orders-tx: PrepareAbort" in cells[2]


def test_a_scenario_without_transactions_shows_no_transaction_panels() -> None:
    model = fragments.build_model(observed(run("producer-idempotent")))

    for panel_id in ("transactions", "processors", "txn-log"):
        assert 'class="panel is-empty" hidden' in model.html[panel_id]


# -- buttons ---------------------------------------------------------------------------------
def options_at(name: str, at_ms: int) -> dict[str, presenters.FaultOption]:
    timeline = run(name, at_ms)
    snapshot = timeline.sim.snapshot()
    return {o.id: o for o in presenters.fault_options(scenario_info(timeline.spec), snapshot)}


def test_transaction_buttons_follow_the_client_state() -> None:
    open_txn = options_at("txn-abort-read-committed", 500)
    between = options_at("txn-abort-read-committed", 1500)

    assert open_txn["commit-transaction:p1"].available
    assert open_txn["abort-transaction:p1"].command == {
        "do": "abort-transaction",
        "producer": "p1",
    }
    assert not open_txn["begin-transaction:p1"].available
    assert open_txn["begin-transaction:p1"].why_not == "p1 is IN_TRANSACTION"
    assert between["begin-transaction:p1"].available
    assert not between["commit-transaction:p1"].available
    assert "begin-transaction:p1" not in options_at("producer-retry-duplicate", 0)


def test_processor_buttons_crash_at_each_point_restart_and_stall() -> None:
    running = options_at("txn-read-process-write-crash", 100)
    crashed = options_at("txn-read-process-write-crash", 2000)

    assert running["crash-processor:after-produce:enricher"].label == (
        "Crash enricher mid-transaction (after its next produce)"
    )
    assert running["crash-processor:after-offsets:enricher"].command == {
        "do": "crash-processor",
        "processor": "enricher",
        "at": "after-offsets",
    }
    assert running["stall-processor:enricher"].label == (
        "Stall enricher for 8 s (past its 6 s session timeout)"
    )
    assert not running["restart-processor:enricher"].available
    assert crashed["restart-processor:enricher"].available
    assert crashed["crash-processor:now:enricher"].why_not == "enricher is not running"


@pytest.mark.parametrize("name", ["txn-abort-read-committed", "txn-read-process-write-crash"])
def test_every_transaction_button_is_a_valid_engine_command(name: str) -> None:
    parse = step_parser(load(name))
    for at_ms in (0, 500, 2000):
        for option in options_at(name, at_ms).values():
            parse(option.command, "command", 0)  # raises on a bad one


def test_an_abort_button_is_recorded_and_writes_the_abort_marker() -> None:
    room = Room("r1", load("txn-abort-read-committed"))
    room.tick(0.0)
    while room.timeline.sim.now_ms < 500:
        room.timeline.step_engine()
    form = ControlForm({"action": "fault", "fault": "abort-transaction:p1"}, room=room)
    assert form.is_valid(), form.errors

    room.submit(form.control())
    room.tick(1.0)
    while room.timeline.sim.now_ms < 900:
        room.timeline.step_engine()

    [command] = room.timeline.commands
    assert command.raw == {"do": "abort-transaction", "producer": "p1"}
    assert command.label == "Abort the transaction of p1"
    partition = lane(room.observe())
    assert [r["control"] for r in partition["records"]] == [None, None, None, "ABORT"]


@pytest.mark.django_db
def test_the_room_page_offers_transaction_and_processor_buttons(client: Client) -> None:
    response = client.post("/", {"scenario": "txn-read-process-write-crash"})
    page = client.get(response["Location"]).text

    assert "Crash enricher after sending its offsets (before the commit)</button>" in page
    assert 'value="stall-processor:enricher"' in page
    assert 'id="processors"' in page and 'id="transactions"' in page


@pytest.mark.django_db
def test_a_forged_transaction_control_is_refused_and_changes_nothing(client: Client) -> None:
    url = client.post("/", {"scenario": "txn-abort-read-committed"})["Location"]
    client.get(url)
    [room] = registry.rooms.values()

    forged = client.post(
        f"/rooms/{room.id}/control/", {"action": "fault", "fault": "commit-transaction:p9"}
    )
    not_now = client.post(
        f"/rooms/{room.id}/control/", {"action": "fault", "fault": "crash-processor:now:p1"}
    )

    assert forged.status_code == 400
    assert forged.text == "This scenario has no fault 'commit-transaction:p9'."
    assert not_now.status_code == 400
    assert not room.pending and room.timeline.commands == []


async def test_a_forged_processor_command_over_the_websocket_changes_nothing(
    presenter_headers: Callable[..., Awaitable[Headers]],
) -> None:
    room = registry.create(load("txn-read-process-write-crash"))
    while room.timeline.sim.now_ms < 100:  # the enricher is running by then
        room.timeline.step_engine()
    steps = room.timeline.steps
    headers = await presenter_headers(room.id)
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=headers)
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data='{"action": "fault", "fault": "restart-processor:enricher"}')
    refused = await ws.receive_from(timeout=5)
    await ws.send_to(text_data='{"action": "fault", "fault": "crash-processor:at-will:enricher"}')
    forged = await ws.receive_from(timeout=5)

    assert "Not now: enricher is running." in refused
    assert "This scenario has no fault" in forged
    assert (room.timeline.commands, list(room.pending), room.timeline.steps) == ([], [], steps)
    await ws.disconnect()


# -- verdict ---------------------------------------------------------------------------------
def test_the_verdict_counts_aborted_records_and_aborted_reads_in_room_words() -> None:
    obs = observed(run("txn-abort-read-committed"))

    verdict = presenters.verdict_panel(obs)

    assert verdict is not None
    counts = {c["key"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert (counts["aborted"], counts["aborted_reads"]) == (3, 3)
    first = verdict["anomalies"][0]
    assert first["happened"] == "acted on aborted data"
    assert first["kind_label"] == "aborted read"
    assert first["cells"] == "c-orders-0-0"
    assert first["judgement"] == "a failure under exactly-once"
    html = fragments.build_model(obs).html["verdict"]
    assert "aborted reads" in html and "acted on aborted data" in html


def test_a_transactional_scenario_shows_zero_aborted_reads() -> None:
    verdict = presenters.verdict_panel(observed(run("txn-read-process-write-crash")))

    assert verdict is not None
    counts = {c["key"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert counts["aborted_reads"] == 0


def test_a_pipeline_loss_is_an_output_never_committed() -> None:
    anomaly = {"kind": "lost", "where": "pipeline", "offsets": [2]}

    assert presenters.where_label(anomaly) == "output never committed"


def test_the_sequence_diagram_draws_the_transaction_requests_and_the_markers() -> None:
    obs = observed(run("txn-atomic-multi-partition", until_ms=1600))

    svg = sequence_diagram(obs["scenario"], obs["diagram"])

    labels = re.findall(r'<g class="msd-msg[^"]*">.*?<text[^>]*>([^<]*)</text></g>', svg)
    assert "AddPartitionsToTxn" in labels
    assert labels.index("EndTxn") < labels.index("EndTxn ok")
    # The coordinator (broker-1) asks orders-1's leader for its marker: an arrow between brokers.
    assert "WriteTxnMarkers COMMIT orders-1" in labels
    assert "marker written ok" in labels

"""Presenters and fragments: from an observation (plain data) to what the page shows."""

import re
from typing import Any

import pytest

from broker.scenario import load, load_text
from dashboard.live.timeline import Timeline
from dashboard.panels import fragments, presenters
from dashboard.panels import run as run_panels
from dashboard.panels.diagram import sequence_diagram
from tests.dashboard.conftest import finished, observed


def partition(records: list[dict[str, Any]], hw: int, leo: int, **extra: Any) -> dict[str, Any]:
    return {
        "name": "orders-0",
        "leader": 1,
        "leader_epoch": 0,
        "isr": [1, 2],
        "replicas": [
            {
                "broker": 1,
                "role": "leader",
                "log_start_offset": 0,
                "high_watermark": hw,
                "last_stable_offset": hw,
                "log_end_offset": leo,
            },
            {
                "broker": 2,
                "role": "follower",
                "log_start_offset": 0,
                "high_watermark": hw,
                "last_stable_offset": hw,
                "log_end_offset": hw,
            },
        ],
        "records": records,
        **extra,
    }


def record(offset: int, message_id: str, key: str = "k") -> dict[str, Any]:
    return {
        "offset": offset,
        "message_id": message_id,
        "key": key,
        "value": "v",
        "producer_id": 1000,
        "producer_epoch": 0,
        "sequence": offset,
        "leader_epoch": 0,
    }


def cell_classes(html: str) -> dict[int, str]:
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r'<li id="c-orders-0-(\d+)" class="([^"]+)"', html)
    }


def test_the_retried_message_shows_as_a_second_copy_at_offset_1() -> None:
    model = fragments.build_model(finished("producer-retry-duplicate"))

    cells = model.lanes["orders-0"].cells

    assert sorted(cells) == [0, 1, 2, 3]
    assert "is-duplicate" in cells[1] and "\u00d72</span>" in cells[1]
    assert "is-duplicate" not in cells[0] and "1st" in cells[0]
    assert all("is-committed" in cells[o] for o in cells)


def test_a_cell_above_the_high_watermark_is_labelled_not_committed() -> None:
    start, cells = presenters.lane_cells(partition([record(0, "a"), record(1, "b")], 1, 2))

    assert start == 0
    assert cell_classes(cells[0] + cells[1]) == {0: "cell is-committed", 1: "cell is-uncommitted"}
    assert "above HW</span>" in cells[1]
    assert "PID 1000 \u00b7 e0 \u00b7 s1" in cells[1]


def test_cursors_sit_under_their_offsets_with_follower_leos() -> None:
    cursors = presenters.lane_cursors(partition([record(0, "a"), record(1, "b")], 1, 2), 0)

    marks = {m["column"]: [i["label"] for i in m["items"]] for m in cursors["marks"]}
    assert marks == {1: ["start"], 2: ["HW", "b2"], 3: ["LEO"]}


def test_consumer_pointers_show_position_and_committed_offset() -> None:
    consumers = [
        {
            "instance": "billing#1",
            "partitions": [{"partition": "orders-0", "position": 2, "committed": 1}],
        }
    ]

    cursors = presenters.lane_cursors(
        partition([record(0, "a"), record(1, "b")], 2, 2), 0, consumers
    )

    labels = {i["label"]: m["column"] for m in cursors["marks"] for i in m["items"]}
    assert labels["\u25bd billing#1 committed"] == 2
    assert labels["\u25bc billing#1 position"] == 3


def test_a_duplicate_is_expected_under_at_least_once() -> None:
    verdict = presenters.verdict_panel(finished("producer-retry-duplicate"))

    assert verdict is not None
    [anomaly] = verdict["anomalies"]
    assert anomaly["kind"] == "duplicate"
    assert anomaly["judgement"] == "expected under at-least-once"
    assert anomaly["where"] == "orders-0@0, orders-0@1"
    assert anomaly["cells"] == "c-orders-0-0 c-orders-0-1"
    assert {c["label"]: c["value"] for c in verdict["counts"]} == {
        "produced": 3,
        "acknowledged": 3,
        "in the log": 3,
    }


def test_the_same_anomaly_is_a_failure_under_exactly_once() -> None:
    obs = finished("producer-retry-duplicate")
    obs["verdict"]["semantics"] = "exactly-once"
    for anomaly in obs["verdict"]["anomalies"]:
        anomaly["allowed"] = False

    verdict = presenters.verdict_panel(obs)

    assert verdict is not None
    assert verdict["anomalies"][0]["judgement"] == "a failure under exactly-once"
    html = fragments.build_model(obs).html["verdict"]
    assert "a failure under exactly-once" in html
    assert 'aria-live="polite"' in html


def test_a_message_still_in_flight_is_not_called_lost() -> None:
    timeline = Timeline(load("producer-retry-duplicate"))
    while not any(e.kind == "produce.send" for e in timeline.sim.events):
        timeline.step_engine()

    verdict = presenters.verdict_panel(observed(timeline))

    assert verdict is not None and verdict["provisional"]
    assert verdict["anomalies"] == []
    counts = {c["label"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert counts["lost"] == 0
    assert counts["in flight"] == verdict["in_flight"] == 1
    assert verdict["headline"] == "at-least-once, so far: nothing lost, 1 still in flight"
    assert verdict["mismatches"] == []


def test_missing_snapshot_parts_render_nothing() -> None:
    obs = finished("producer-idempotent")
    for key in ("producers", "consumers", "groups", "sink"):
        obs["snapshot"].pop(key, None)

    model = fragments.build_model(obs)

    assert (
        model.html["producers"]
        == '<section id="producers" class="panel is-empty" hidden></section>'
    )
    assert model.html["extras"] == '<section id="extras" class="panel is-empty" hidden></section>'


def test_new_engine_parts_appear_as_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(run_panels, "EXTRA_PARTS", (("quotas", "Quotas"),))
    obs = finished("producer-idempotent")
    obs["snapshot"]["quotas"] = [{"client_id": "p1", "produce_byte_rate": 1024}]

    extras = presenters.extras_panel(obs)

    assert extras is not None
    [quotas] = [p for p in extras["parts"] if p["key"] == "quotas"]
    assert quotas["columns"] == ["client id", "produce byte rate"]
    assert quotas["rows"] == [["p1", "1024"]]


def test_fault_buttons_are_offered_for_the_scenarios_actors() -> None:
    obs = finished("producer-retry-duplicate")
    obs["snapshot"]["brokers"][1]["alive"] = False

    options = {o.id: o for o in presenters.fault_options(obs["scenario"], obs["snapshot"])}

    assert options["drop-response:p1"].label == "Drop the next produce response"
    assert options["drop-response:p1"].command == {
        "do": "drop-response",
        "api": "Produce",
        "client": "p1",
    }
    assert options["crash-leader:orders-0"].command == {
        "do": "crash-broker",
        "broker": "leader:orders-0",
    }
    assert not options["crash-broker:2"].available
    assert options["restart-broker:2"].available
    assert not options["restart-producer:p1"].available


def test_a_new_record_is_sent_as_one_appended_cell() -> None:
    obs = finished("producer-idempotent")
    old = fragments.build_model(obs)
    lane = obs["snapshot"]["partitions"][0]
    leo = lane["records"][-1]["offset"] + 1
    lane["records"].append(record(leo, "new-one"))
    for replica in lane["replicas"]:
        if replica["broker"] == lane["leader"]:
            replica["log_end_offset"] = leo + 1

    parts = fragments.diff_fragments(old, fragments.build_model(obs, old))

    appended = [p for p in parts if 'hx-swap-oob="beforeend"' in p]
    assert len(appended) == 1
    assert appended[0].count("<li ") == 1
    assert f'id="c-orders-0-{leo}"' in appended[0] and "is-uncommitted" in appended[0]
    assert any(p.startswith('<div id="cursors-orders-0"') for p in parts)
    assert not any(p.startswith('<section id="verdict"') for p in parts)


def _append(obs: dict[str, Any], count: int, committed: bool = False) -> list[int]:
    """``count`` new records at the end of the first lane (committed ones move the HW too)."""
    lane = obs["snapshot"]["partitions"][0]
    leo = lane["records"][-1]["offset"] + 1
    offsets = list(range(leo, leo + count))
    lane["records"].extend(record(o, f"new-{o}") for o in offsets)
    for replica in lane["replicas"]:
        if replica["broker"] == lane["leader"]:
            replica["log_end_offset"] = leo + count
            if committed:
                replica["high_watermark"] = leo + count
    return offsets


def test_only_a_few_new_cells_slide_in_and_a_burst_just_appears() -> None:
    obs = finished("producer-idempotent")
    old = fragments.build_model(obs)
    few = _append(obs, fragments.MAX_ARRIVING)
    mid = fragments.build_model(obs, old)

    appended = "".join(fragments.diff_fragments(old, mid))

    assert set(cell_classes(appended)) == set(few)
    assert all("is-arriving" in c for c in cell_classes(appended).values())

    burst = _append(obs, fragments.MAX_ARRIVING + 1, committed=True)
    parts = fragments.diff_fragments(mid, fragments.build_model(obs, mid))
    classes = cell_classes("".join(parts))

    # the burst, and the earlier cells now committed (replaced, not arriving): none slides
    assert set(burst) | set(few) <= set(classes)
    assert not any("is-arriving" in c for c in classes.values())
    assert all("is-committed" in classes[o] for o in few)


def test_the_new_cells_of_a_lane_replaced_whole_slide_in_and_the_others_do_not() -> None:
    obs = finished("producer-idempotent")
    lane = obs["snapshot"]["partitions"][0]
    lane["records"] = [record(o, f"m-{o}") for o in range(30)]
    for replica in lane["replicas"]:
        replica["log_end_offset"] = replica["high_watermark"] = 30
    old = fragments.build_model(obs)
    # every cell shown anew (a new epoch) and two appended: past MAX_CELL_CHANGES, the list is
    # replaced whole
    for each in lane["records"]:
        each["producer_epoch"] = 1
    new_offsets = _append(obs, 2)

    parts = fragments.diff_fragments(old, fragments.build_model(obs, old))

    whole = [p for p in parts if p.startswith('<ol id="cells-orders-0" class="cells"')]
    assert len(whole) == 1 and 'hx-swap-oob="true"' in whole[0]
    classes = cell_classes(whole[0])
    assert {o for o, c in classes.items() if "is-arriving" in c} == set(new_offsets)


def test_a_truncated_cell_is_deleted_and_a_committed_one_replaced() -> None:
    obs = finished("producer-idempotent")
    lane = obs["snapshot"]["partitions"][0]
    last = lane["records"][-1]["offset"]
    old = fragments.build_model(obs)
    lane["records"].pop()

    parts = fragments.diff_fragments(old, fragments.build_model(obs, old))

    assert f'<li id="c-orders-0-{last}" hx-swap-oob="delete"></li>' in parts


def test_the_sequence_diagram_marks_the_lost_response() -> None:
    obs = finished("producer-retry-duplicate")

    svg = sequence_diagram(obs["scenario"], obs["diagram"])

    assert svg.startswith('<svg class="msd"')
    assert "Produce response lost" in svg
    assert svg.count('class="msd-cross"') == 1
    assert "Produce [p1-0] (attempt 2)" in svg
    assert ">ack @1 [p1-0]<" in svg


def test_a_frame_starts_with_its_sequence_number() -> None:
    frame = fragments.frame(7, "delta", ["<p id='x'>x</p>"], sent_at=1.5)

    assert frame.startswith(
        '<output id="frame-seq" data-seq="7" data-kind="delta" data-sent="1500"'
    )
    assert frame.endswith("<p id='x'>x</p>")


def test_a_backlog_in_flight_is_counted_not_listed_as_lost() -> None:
    spec = load_text(
        """
        semantics = "at-least-once"
        [[topics]]
        name = "orders"
        [[producers]]
        name = "p1"
        [[steps]]
        do = "produce"
        producer = "p1"
        topic = "orders"
        count = 250
        """,
        "backlog",
    )
    timeline = Timeline(spec)
    while not any(e.kind == "produce.send" for e in timeline.sim.events):
        timeline.step_engine()
    obs = observed(timeline)

    verdict = presenters.verdict_panel(obs)
    html = fragments.build_model(obs).html["verdict"]

    assert verdict is not None
    assert verdict["anomalies"] == [] and verdict["anomalies_hidden"] == 0
    counts = {c["label"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert (counts["in flight"], counts["lost"]) == (250, 0)
    assert "250 messages still in flight: not judged until the run settles." in html
    assert "lost \u00b7 not in the log" not in html


def test_a_long_anomaly_list_shows_the_first_ones_and_counts_the_rest() -> None:
    obs = finished("producer-retry-duplicate")
    obs["verdict"]["anomalies"] = [
        {**obs["verdict"]["anomalies"][0], "message_id": f"p1-{i}", "offsets": [i, i + 250]}
        for i in range(250)
    ]

    verdict = presenters.verdict_panel(obs)
    html = fragments.build_model(obs).html["verdict"]

    assert verdict is not None
    assert len(verdict["anomalies"]) == presenters.ANOMALIES_SHOWN == 100
    assert verdict["anomalies"][0]["message_id"] == "p1-0"
    assert verdict["anomalies_hidden"] == 150
    assert html.count('class="anomaly ') == 100
    assert "and 150 more, counted above" in html



"""The consumer side of the room: consumers, groups, the sink, __consumer_offsets, the buttons
that crash and stall consumers, and the verdict's processing and sink counts."""

import pytest
from django.test import Client

from broker.scenario import load, step_parser
from dashboard.live.runtime import Control, Room
from dashboard.live.timeline import Timeline
from dashboard.panels import consumer_panels, fragments, presenters
from dashboard.panels.observe import scenario_info
from dashboard.workshops.forms import ControlForm
from tests.dashboard.conftest import finished, observed


def test_a_consumer_shows_its_instance_generation_member_and_pointers() -> None:
    panel = consumer_panels.consumers_panel(finished("consumer-commit-after-processing"))

    assert panel is not None
    [billing] = panel["consumers"]
    assert billing["instance"] == "billing#2"
    assert billing["generation"] == 2
    assert billing["member_id"] == "billing#2-2"
    assert billing["strategy"] == "commit=after-processing per batch"
    assert billing["state"] == "consuming"
    [orders] = billing["partitions"]
    assert (orders["partition"], orders["position"], orders["committed"]) == ("orders-0", 8, 8)
    assert orders["uncommitted"] == 0


def test_mid_run_the_position_runs_ahead_of_the_committed_offset() -> None:
    timeline = Timeline(load("consumer-commit-after-processing"))
    ahead = None
    while ahead is None and timeline.step_engine():
        for consumer in timeline.sim.snapshot()["consumers"]:
            for p in consumer["partitions"]:
                if p["position"] is not None and p["position"] > (p["committed"] or 0):
                    ahead = p
    assert ahead is not None
    obs = observed(timeline)

    html = fragments.build_model(obs).html["consumers"]
    cursors = fragments.build_model(obs).lanes["orders-0"].parts["cursors-orders-0"]

    assert "\u25bc" in html and "\u25bd" in html
    assert "position (filled)" in html and "committed (hollow)" in html
    assert "\u25bc billing position" in cursors
    assert 'class="cursor cursor-position"' in cursors


def test_a_group_shows_its_coordinator_leader_members_and_offsets() -> None:
    panel = consumer_panels.groups_panel(finished("consumer-commit-after-processing"))

    assert panel is not None
    [group] = panel["groups"]
    assert group["group"] == "billing"
    assert group["coordinator"] == 1
    assert group["state_meaning"] == "stable"
    assert group["generation"] == 2
    assert group["leader"] == "billing#2-2"
    assert group["members"] == [
        {
            "member_id": "billing#2-2",
            "client_id": "billing#2",
            "assignment": ["orders-0"],
            "leader": True,
        }
    ]
    assert group["offsets"] == [("orders-0", 8)]


def test_the_sink_marks_a_second_row_for_the_same_message() -> None:
    obs = finished("sink-dual-write")

    panel = consumer_panels.sink_panel(obs)

    assert panel is not None
    assert panel["row_count"] == 12
    assert panel["duplicated_messages"] == 4
    second = [r for r in panel["rows"] if r["duplicate"]]
    assert [r["message_id"] for r in second] == ["p1-0", "p1-1", "p1-2", "p1-3"]
    assert {r["copy"] for r in second} == {2}
    html = fragments.build_model(obs).html["sink"]
    assert 'class="is-duplicate" data-msg="p1-0"' in html
    assert "\u00d72</span>" in html


def test_the_sink_shows_its_offsets_table() -> None:
    panel = consumer_panels.sink_panel(finished("sink-offset-with-output"))

    assert panel is not None
    assert panel["offsets"] == [{"group": "billing", "partition": "orders-0", "offset": 8}]
    assert panel["duplicated_messages"] == 0


def test_consumer_offsets_reads_as_a_log_with_decoded_values() -> None:
    obs = finished("consumer-commit-after-processing")

    panel = consumer_panels.offsets_log_panel(obs)

    assert panel is not None
    [log] = panel["logs"]
    assert log["name"] == "__consumer_offsets-0"
    last = log["records"][-1]
    assert last["key"] == "offset/billing/orders-0"
    assert last["text"] == "commit orders-0 \u2192 next 8 (generation 2, billing#2-2)"
    assert log["records"][0]["kind"] == "group"
    assert "leader billing-1; members: billing-1 [orders-0]" in log["records"][0]["text"]
    cells = fragments.build_model(obs).lanes["__consumer_offsets-0"].cells
    assert "commit orders-0 \u2192 next 8" in cells[last["offset"]]


def test_a_tombstone_and_a_bad_value_still_read() -> None:
    assert presenters.decode_offsets_record("offset/g/t-0", None)["kind"] == "tombstone"
    assert presenters.decode_offsets_record("x", "not json")["text"] == "not json"


def test_scenarios_without_consumers_show_no_consumer_panels() -> None:
    model = fragments.build_model(finished("producer-idempotent"))

    for panel_id in ("consumers", "groups", "sink", "offsets-log"):
        assert 'class="panel is-empty" hidden' in model.html[panel_id]


# -- fault buttons --------------------------------------------------------------------------
def options_for(name: str, at_ms: int = 0) -> dict[str, presenters.FaultOption]:
    timeline = Timeline(load(name))
    while timeline.sim.now_ms < at_ms and timeline.step_engine():
        pass
    snapshot = timeline.sim.snapshot()
    return {o.id: o for o in presenters.fault_options(scenario_info(timeline.spec), snapshot)}


def test_consumer_buttons_follow_the_scenarios_consumers_and_sink() -> None:
    plain = options_for("consumer-auto-commit-crash")
    dual = options_for("sink-dual-write")
    atomic = options_for("sink-offset-with-output")
    producer_only = options_for("producer-idempotent")

    assert not any(o.group in ("consumers", "sink") for o in producer_only.values())
    [name] = {o.command["consumer"] for o in plain.values() if o.group == "consumers"}
    assert f"crash-consumer:after-commit:{name}" in plain
    assert f"crash-consumer:after-processing:{name}" in plain
    assert f"crash-consumer:after-sink-write:{name}" not in plain
    assert "fail-sink" not in plain
    assert "crash-consumer:after-sink-write:loader" in dual
    assert "crash-consumer:before-sink-commit:loader" not in dual
    assert "crash-consumer:before-sink-commit:loader" in atomic
    assert "crash-consumer:after-commit:loader" not in atomic  # it never commits to Kafka
    assert atomic["fail-sink"].command == {"do": "fail-sink", "count": 1}
    assert atomic["fail-sink"].label == "Make sink db fail its next write"


def test_every_consumer_button_is_a_valid_engine_command() -> None:
    for name in ("consumer-commit-after-processing", "sink-dual-write", "sink-offset-with-output"):
        spec = load(name)
        parse = step_parser(spec)
        for option in options_for(name).values():
            parse(option.command, "command", 0)  # raises on a bad one


def test_the_stall_outlasts_the_session_timeout() -> None:
    options = options_for("consumer-commit-after-processing", at_ms=20)

    stall = options["stall-consumer:billing"]
    assert stall.command == {"do": "stall-consumer", "consumer": "billing", "duration_ms": 8000}
    assert stall.label == "Stall billing for 8 s (past its 6 s session timeout)"


def test_crash_and_restart_follow_whether_the_consumer_runs() -> None:
    running = options_for("consumer-commit-after-processing", at_ms=20)
    crashed = options_for("consumer-commit-after-processing", at_ms=2000)

    assert running["crash-consumer:now:billing"].available
    assert not running["restart-consumer:billing"].available
    assert not crashed["crash-consumer:after-processing:billing"].available
    assert crashed["crash-consumer:after-processing:billing"].why_not == "billing is not running"
    assert crashed["restart-consumer:billing"].available


def test_a_crash_button_is_recorded_with_its_virtual_time_and_takes_effect() -> None:
    room = Room("r1", load("consumer-commit-after-processing"))
    room.tick(0.0)
    while room.timeline.sim.now_ms < 20:
        room.timeline.step_engine()
    now_ms = room.timeline.sim.now_ms
    form = ControlForm({"action": "fault", "fault": "crash-consumer:now:billing"}, room=room)
    assert form.is_valid(), form.errors

    room.submit(form.control())
    room.tick(1.0)

    [command] = room.timeline.commands
    assert (command.time_ms, command.label) == (now_ms, "Crash consumer billing now")
    assert command.raw == {"do": "crash-consumer", "consumer": "billing", "at": "now"}
    room.timeline.step_engine()  # it takes effect at the next event
    [billing] = room.timeline.sim.snapshot()["consumers"]
    assert not billing["alive"]
    assert "Crash consumer billing now" in room.page().html["faults"]


def test_a_button_for_a_stopped_consumer_is_refused_with_the_reason() -> None:
    room = Room("r1", load("consumer-commit-after-processing"))
    while room.timeline.sim.now_ms < 2000:
        room.timeline.step_engine()

    form = ControlForm({"action": "fault", "fault": "stall-consumer:billing"}, room=room)

    assert not form.is_valid()
    assert form.error_text() == "Not now: billing is not running."


@pytest.mark.django_db
def test_the_room_page_offers_the_consumer_buttons(client: Client) -> None:
    response = client.post("/", {"scenario": "sink-offset-with-output"})
    page = client.get(response["Location"]).text

    assert "Crash loader between its sink writes (before the sink commit)</button>" in page
    assert "Make sink db fail its next write</button>" in page
    assert 'id="consumers"' in page and 'id="sink"' in page and 'id="offsets-log"' in page
    assert "position (filled)" in page


def test_room_controls_are_applied_in_order() -> None:
    room = Room("r1", load("sink-offset-with-output"))
    room.submit(Control("fault", fault="fail-sink"))
    room.tick(0.0)

    assert [c.label for c in room.timeline.commands] == ["Make sink db fail its next write"]


# -- verdict --------------------------------------------------------------------------------
def test_the_verdict_counts_reprocessed_records_and_says_where() -> None:
    verdict = presenters.verdict_panel(finished("consumer-commit-after-processing"))

    assert verdict is not None
    counts = {c["key"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert counts["processed"] == 8
    assert counts["reprocessed"] == 4
    assert counts["unseen"] == 0
    assert "sunk" not in counts and "duplicated_in_sink" not in counts  # no sink here
    first = verdict["anomalies"][0]
    assert first["happened"] == "processed twice"
    assert first["where"] == "orders-0@0"
    assert first["cells"] == "c-orders-0-0"
    assert first["judgement"] == "expected under at-least-once"


def test_the_verdict_counts_rows_in_the_sink() -> None:
    obs = finished("sink-dual-write")
    verdict = presenters.verdict_panel(obs)

    assert verdict is not None
    counts = {c["key"]: c["value"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert counts["sunk"] == 8 and counts["duplicated_in_sink"] == 4
    assert {a["happened"] for a in verdict["anomalies"]} == {
        "processed twice",
        "two rows in the sink",
    }
    html = fragments.build_model(obs).html["verdict"]
    assert "two rows in the sink" in html and "duplicated in the sink" in html
    # Processed twice is not a second copy in the log.
    assert "is-duplicate" not in "".join(
        fragments.build_model(obs).lanes["orders-0"].cells.values()
    )


def test_a_producer_scenario_shows_no_consumer_counts() -> None:
    verdict = presenters.verdict_panel(finished("producer-retry-duplicate"))

    assert verdict is not None
    keys = {c["key"] for c in verdict["counts"] + verdict["anomaly_counts"]}
    assert not keys & {"processed", "unseen", "reprocessed", "sunk", "duplicated_in_sink"}


@pytest.mark.parametrize(
    ("kind", "where", "explanation", "offsets", "said"),
    [
        ("duplicate", "processing", "", [3, 3, 3], "processed three times"),
        ("duplicate", "sink", "3 rows in the sink hold p1-0", [], "three rows in the sink"),
        ("duplicate", "log", "", [0, 1], "two copies in the log"),
        ("lost", "processing", "", [4], "never processed"),
        ("unseen", "processing", "", [4], "never read"),
        ("lost", "log", "", [], "not in the log"),
        ("poll-skip", "poll", "", [5], "skipped by a poll"),
        ("nonmonotonic-poll", "poll", "", [5], "read going backwards"),
    ],
)
def test_each_anomaly_says_where_it_happened(
    kind: str, where: str, explanation: str, offsets: list[int], said: str
) -> None:
    anomaly = {"kind": kind, "where": where, "explanation": explanation, "offsets": offsets}

    assert presenters.where_label(anomaly) == said

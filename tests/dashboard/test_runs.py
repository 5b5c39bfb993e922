"""Saved runs: exact replay, export and import (with every refusal), the report, the replay room."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from html import unescape
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.utils import override_settings

from broker.scenario import load
from dashboard.live.timeline import Timeline
from dashboard.models import LabRoom, SavedRun
from dashboard.panels.observe import scenario_info, verdict_of
from dashboard.panels.presenters import fault_options
from dashboard.runs import store as runs
from dashboard.runs.store import RunError, replay_to_end
from dashboard.workshops import ratelimit
from dashboard.workshops.rooms import builtin_text, commands_of, create_run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_rate_limits() -> Iterator[None]:
    """Room creations are rate limited per address; each test starts with none counted."""
    ratelimit.reset()
    yield
    ratelimit.reset()


SCENARIO = "producer-retry-duplicate"
# Dropping p1's next produce response just after the scripted retry (the 8th visible event)
# makes every record of the batch a duplicate, at these offsets of orders-0; the leader crash
# pressed ten events later does not change that.
DUPLICATE_OFFSETS = [[0, 1], [2, 4], [3, 5]]


def press(timeline: Timeline, option_id: str) -> None:
    """Press a fault button, as the room does: the option's command dict and label."""
    scenario = scenario_info(timeline.spec)
    options = {o.id: o for o in fault_options(scenario, timeline.sim.snapshot())}
    option = options[option_id]
    timeline.submit(option.command, option.label)


def live_run() -> Timeline:
    """A run with faults pressed mid-run, played to its end."""
    timeline = Timeline(load(SCENARIO))
    for _ in range(8):
        timeline.step_event()
    press(timeline, "drop-response:p1")
    for _ in range(10):
        timeline.step_event()
    press(timeline, "crash-leader:orders-0")
    while timeline.step_engine():
        pass
    return timeline


def saved(timeline: Timeline) -> SavedRun:
    run = create_run(timeline.spec, builtin_text(SCENARIO), None, timeline.commands)
    return SavedRun.objects.get(id=run.id)  # as stored: through the JSON field


def duplicate_offsets(verdict: dict[str, Any]) -> list[list[int]]:
    return [a["offsets"] for a in verdict["anomalies"] if a["kind"] == "duplicate"]


def export(client: Client, run: SavedRun) -> dict[str, Any]:
    response = client.get(f"/runs/{run.id}/export.json")
    assert response.status_code == 200
    return json.loads(response.content)


def upload(client: Client, content: bytes, name: str = "run.json") -> Any:
    return client.post("/runs/import/", {"run": SimpleUploadedFile(name, content)})


# -- replay --------------------------------------------------------------------------------------
def test_a_saved_run_replays_to_the_same_end_as_the_live_run() -> None:
    live = live_run()
    run = saved(live)

    replayed = replay_to_end(run)

    assert [c.step_index for c in commands_of(run)] == [c.step_index for c in live.commands]
    assert replayed.steps == live.steps
    assert replayed.sim.now_ms == live.sim.now_ms
    assert replayed.sim.ended == live.sim.ended == "settled"
    assert replayed.sim.snapshot() == live.sim.snapshot()
    assert replayed.sim.trace(include_quiet=True) == live.sim.trace(include_quiet=True)
    assert verdict_of(replayed.sim) == verdict_of(live.sim)
    assert duplicate_offsets(verdict_of(replayed.sim)) == DUPLICATE_OFFSETS
    assert any("broker.crash" in line for line in replayed.sim.trace())


def test_a_replay_past_the_step_bound_stops_with_a_clear_error() -> None:
    run = saved(live_run())

    with override_settings(LAB_MAX_REPLAY_STEPS=10), pytest.raises(RunError) as raised:
        replay_to_end(run)

    assert "still going after 10 engine steps" in str(raised.value)
    assert "LAB_MAX_REPLAY_STEPS" in str(raised.value)


def test_a_replay_respects_the_records_limit() -> None:
    run = saved(live_run())

    with override_settings(LAB_MAX_RECORDS_PER_RUN=2), pytest.raises(RunError) as raised:
        replay_to_end(run)

    assert "produces 3 records" in str(raised.value)


# -- the run page --------------------------------------------------------------------------------
def test_the_run_page_shows_the_commands_the_replayed_verdict_and_the_links(
    client: Client,
) -> None:
    live = live_run()
    run = saved(live)

    page = client.get(f"/runs/{run.id}/").text

    assert "At-least-once: a lost acknowledgement makes the retry a duplicate" in page
    assert f"seed {run.seed}" in page
    assert "2 commands" in page
    first = live.commands[0]
    assert f'<td class="num">{first.time_ms} ms</td><td class="num">{first.step_index}</td>' in page
    assert "<td>Drop the next produce response</td>" in page
    assert "at-least-once held: nothing lost, 3 duplicates in the log" in page
    assert '<code class="anomaly-offsets">orders-0@2, orders-0@4</code>' in page
    assert f'action="/runs/{run.id}/replay/"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert f'href="/runs/{run.id}/export.json"' in page
    assert f'href="/runs/{run.id}/report/"' in page


@override_settings(LAB_MAX_REPLAY_STEPS=10)
def test_a_run_too_large_to_replay_still_shows_and_exports_without_a_verdict(
    client: Client,
) -> None:
    run = saved(live_run())

    page = unescape(client.get(f"/runs/{run.id}/").text)
    document = export(client, run)

    assert "This run cannot be replayed here." in page
    assert "still going after 10 engine steps" in page
    assert "<td>Drop the next produce response</td>" in page
    assert document["verdict"] == {}
    assert document["commands"] == run.commands


def test_an_unknown_run_is_not_found(client: Client) -> None:
    assert client.get("/runs/000000000000/").status_code == 404


# -- export and import ---------------------------------------------------------------------------
def test_export_then_import_gives_an_equal_run_with_the_same_verdict(client: Client) -> None:
    run = saved(live_run())
    response = client.get(f"/runs/{run.id}/export.json")
    document = json.loads(response.content)

    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response["Content-Disposition"] == (f'attachment; filename="{SCENARIO}-{run.id}.json"')
    assert document["format"] == "delivery-lab-run"
    assert document["version"] == 1
    assert document["scenario"] == {"name": SCENARIO, "toml": builtin_text(SCENARIO)}
    assert document["commands"] == run.commands
    assert document["verdict"]["verdict"] == "as-expected"
    assert duplicate_offsets(document["verdict"]) == DUPLICATE_OFFSETS
    assert "exported_at" in document

    imported = upload(client, response.content)

    assert imported.status_code == 302
    new_id = imported["Location"].strip("/").split("/")[-1]
    assert imported["Location"] == f"/runs/{new_id}/"
    new = SavedRun.objects.get(id=new_id)
    assert new.id != run.id
    assert new.origin == "import"
    assert (new.scenario_name, new.scenario_toml, new.seed, new.commands, new.title) == (
        run.scenario_name,
        run.scenario_toml,
        run.seed,
        run.commands,
        run.title,
    )
    assert verdict_of(replay_to_end(new).sim) == verdict_of(replay_to_end(run).sim)
    assert client.session["lab_runs"][0] == new_id


def test_the_import_page_is_a_multipart_form_with_csrf(client: Client) -> None:
    page = client.get("/runs/import/").text

    assert 'enctype="multipart/form-data"' in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert 'name="run"' in page
    assert "at most 512 KiB" in page


def _document(client: Client) -> dict[str, Any]:
    return export(client, saved(live_run()))


def _set(path: str, value: Any) -> Any:
    """A change to a run document: set the value at a path like "commands[1].raw"."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        *parents, last = path.replace("[", ".").replace("]", "").split(".")
        target: Any = doc
        for key in parents:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
        return doc

    return change


DELETE = object()
BAD_TOML = "brokers = 3"

REFUSALS = [
    pytest.param(_set("version", 2), "version", "this lab reads version 1", id="version"),
    pytest.param(_set("format", "other"), "format", "this is not a run file", id="format"),
    pytest.param(_set("seed", DELETE), "seed", "required", id="missing-seed"),
    pytest.param(_set("seed", "7"), "seed", "expected a whole number, got a string", id="seed"),
    pytest.param(_set("scenario", []), "scenario", "expected an object, got a list", id="scenario"),
    pytest.param(
        _set("commands[1].step_index", "64"),
        "commands[1].step_index",
        "expected a whole number, got a string",
        id="step-type",
    ),
    pytest.param(
        _set("commands[1].label", DELETE), "commands[1].label", "required", id="missing-label"
    ),
    pytest.param(
        _set("commands[1].step_index", 3),
        "commands[1].step_index",
        "comes before the previous command's step",
        id="not-ascending",
    ),
    pytest.param(
        _set("commands[1].raw", {"do": "crash-broker", "broker": 9}),
        "commands[1].raw.broker",
        "the engine refuses this command: no broker 9 (brokers are 1..3)",
        id="command",
    ),
    pytest.param(
        _set("commands[0].raw", {"do": "explode"}),
        "commands[0].raw.do",
        "the engine refuses this command: 'explode' is not one of",
        id="command-kind",
    ),
    pytest.param(
        _set("commands[1].step_index", 999_999),
        "commands[1].step_index",
        "step 999,999 is never reached: this run ends after",
        id="never-reached",
    ),
]


@pytest.mark.parametrize(("change", "path", "problem"), REFUSALS)
def test_an_import_refusal_names_the_field_and_saves_nothing(
    client: Client, change: Any, path: str, problem: str
) -> None:
    content = json.dumps(change(_document(client))).encode()
    before = SavedRun.objects.count()

    response = upload(client, content)

    assert response.status_code == 400
    page = unescape(response.text)
    assert f'<code class="error-path">{path}</code>' in page
    assert problem in page
    assert SavedRun.objects.count() == before


def test_an_import_of_a_bad_scenario_says_where_in_the_toml(client: Client) -> None:
    document = _document(client)
    document["scenario"]["toml"] = document["scenario"]["toml"].replace(BAD_TOML, "brokers = 0")
    before = SavedRun.objects.count()

    response = upload(client, json.dumps(document).encode())

    assert response.status_code == 400
    page = unescape(response.text)
    assert '<code class="error-path">scenario.toml</code>' in page
    assert "the scenario is not valid: at cluster.brokers: must be at least 1, got 0" in page
    assert SavedRun.objects.count() == before


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        pytest.param(b'{"format": "delivery-lab-run",', "not valid JSON: ", id="truncated"),
        pytest.param(b"\xff\xfe\x00", "not UTF-8 text", id="binary"),
        pytest.param(b"[1, 2]", "the file holds a list, not a run", id="list"),
        pytest.param(b'{"seed": NaN}', "NaN is not a number JSON allows", id="nan"),
    ],
)
def test_an_import_of_something_not_a_run_file_is_refused(
    client: Client, content: bytes, problem: str
) -> None:
    response = upload(client, content)

    assert response.status_code == 400
    assert problem in unescape(response.text)
    assert not SavedRun.objects.exists()


def test_too_many_commands_are_refused(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    document = _document(client)
    monkeypatch.setattr(runs, "MAX_COMMANDS", 1)
    before = SavedRun.objects.count()

    response = upload(client, json.dumps(document).encode())

    assert response.status_code == 400
    assert "2 commands; a run may have at most 1" in unescape(response.text)
    assert SavedRun.objects.count() == before


@override_settings(LAB_MAX_RUN_UPLOAD_BYTES=100)
def test_an_import_over_the_size_limit_is_refused(client: Client) -> None:
    response = upload(client, b" " * 101, name="big.json")

    assert response.status_code == 400
    assert "big.json is larger than 100 bytes" in unescape(response.text)
    assert not SavedRun.objects.exists()


def test_an_import_without_a_file_is_refused(client: Client) -> None:
    response = client.post("/runs/import/", {})

    assert response.status_code == 400
    assert 'role="alert"' in response.text
    assert not SavedRun.objects.exists()


# -- the report ----------------------------------------------------------------------------------
def test_the_report_shows_settings_commands_diagram_and_verdict(client: Client) -> None:
    live = live_run()
    run = saved(live)

    response = client.get(f"/runs/{run.id}/report/")

    assert response.status_code == 200
    page = response.text
    assert "<h1>At-least-once: a lost acknowledgement makes the retry a duplicate</h1>" in page
    assert "The producer uses acks=all with retries but without idempotence." in page
    assert '<th scope="row">p1</th><td>all</td><td>false</td><td>—</td>' in page
    assert "<td>Crash the leader of orders-0</td>" in page
    assert f'<td class="num">{live.commands[1].time_ms} ms</td>' in page
    assert '<svg class="msd"' in page
    assert "at-least-once held: nothing lost, 3 duplicates in the log" in page
    for offsets in DUPLICATE_OFFSETS:
        where = ", ".join(f"orders-0@{o}" for o in offsets)
        assert f'<code class="anomaly-offsets">{where}</code>' in page
    # Standalone and offline: local styles only, no WebSocket, no scripts, no controls.
    assert "/static/css/report.css" in page
    assert "<script" not in page
    assert "ws-connect" not in page
    assert "<button" not in page
    assert not re.search(r'(?:src|href)="(?:https?:)?//', page)


def test_the_report_of_a_consumer_scenario_shows_group_isolation_and_commits(
    client: Client,
) -> None:
    name = "consumer-commit-after-processing"
    spec = load(name)
    run = create_run(spec, builtin_text(name))

    page = client.get(f"/runs/{run.id}/report/").text

    [consumer] = spec.consumers
    row = (
        f'<th scope="row">{consumer.name}</th><td>{consumer.config.group_id}</td>'
        f"<td>{consumer.config.isolation_level}</td><td>{consumer.commit}</td>"
    )
    assert row in page


# -- replay in a new room ------------------------------------------------------------------------
def test_replaying_makes_a_copy_in_a_new_room_presented_by_this_session(client: Client) -> None:
    run = saved(live_run())

    response = client.post(f"/runs/{run.id}/replay/")

    assert response.status_code == 302
    room_id = response["Location"].strip("/").split("/")[-1]
    assert response["Location"] == f"/rooms/{room_id}/"
    room = LabRoom.objects.select_related("run").get(id=room_id)
    assert room.kind == "workshop"
    assert room.code
    copy_of = room.run
    assert copy_of.id != run.id
    assert copy_of.origin == "replay"
    assert (copy_of.scenario_toml, copy_of.seed, copy_of.commands) == (
        run.scenario_toml,
        run.seed,
        run.commands,
    )
    assert client.session["lab_presents"] == [room_id]
    assert client.session["lab_runs"] == [copy_of.id]
    assert set(client.session["lab_keys"]) == {room_id}


# The runtime loads a room from the database in another thread: the data must be committed.
@pytest.mark.django_db(transaction=True)
def test_the_replay_room_opens_with_the_saved_commands_preloaded(client: Client) -> None:
    live = live_run()
    run = saved(live)
    url = client.post(f"/runs/{run.id}/replay/")["Location"]

    response = client.get(url)

    assert response.status_code == 200
    assert "At-least-once: a lost acknowledgement makes the retry a duplicate" in response.text
    for command in live.commands:  # the room's history holds them, to apply as it plays
        assert f'<span class="t">{command.time_ms} ms</span> {command.label}' in response.text


def test_replaying_needs_a_post_with_a_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    run = saved(live_run())

    assert client.get(f"/runs/{run.id}/replay/").status_code == 405
    assert client.post(f"/runs/{run.id}/replay/").status_code == 403
    assert not LabRoom.objects.exists()


@override_settings(LAB_MAX_ROOMS=0)
def test_a_refused_room_leaves_no_copy_behind(client: Client) -> None:
    run = saved(live_run())

    response = client.post(f"/runs/{run.id}/replay/")

    assert response.status_code == 429
    assert "The lab already runs 0 workshop rooms in use, the most it runs at once" in unescape(
        response.text
    )
    assert list(SavedRun.objects.values_list("id", flat=True)) == [run.id]
    assert "lab_presents" not in client.session


@override_settings(LAB_RATE_ROOM_CREATE=(1, 60))
def test_replaying_counts_against_the_room_creation_rate(client: Client) -> None:
    run = saved(live_run())
    assert client.post(f"/runs/{run.id}/replay/").status_code == 302

    response = client.post(f"/runs/{run.id}/replay/")

    assert response.status_code == 429
    assert "Too many room creations from your address" in response.text
    assert LabRoom.objects.count() == 1


def test_a_run_is_replayed_once_for_its_page_report_and_export(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    from dashboard.runs import views as run_views

    run_views._replays.clear()
    calls: list[str] = []
    replay_now = run_views._replay_now

    def counted(run: SavedRun) -> Any:
        calls.append(run.id)
        return replay_now(run)

    monkeypatch.setattr(run_views, "_replay_now", counted)
    run = saved(live_run())

    for path in ("", "report/", "export.json"):
        assert client.get(f"/runs/{run.id}/{path}").status_code == 200
    SavedRun.objects.filter(id=run.id).update(updated_at=timezone.now())  # the room saved again
    client.get(f"/runs/{run.id}/")

    assert calls == [run.id, run.id]

"""Input meant to hurt the server: every refusal names what was wrong and changes nothing; bad
input is a 400, a rate limit a 429 with Retry-After, and a WebSocket stays open after an error
frame."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from html import unescape
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.utils import override_settings

from broker.guard import MAX_NESTING
from broker.scenario import load
from dashboard.asgi import application
from dashboard.live.limits import records_in
from dashboard.live.runtime import registry
from dashboard.live.timeline import Command
from dashboard.models import LabRoom, SavedRun
from dashboard.workshops.rooms import builtin_text, create_room, create_run
from tests.dashboard.conftest import Headers, open_room

SCENARIO = "producer-retry-duplicate"
SMALL = 'semantics = "at-least-once"\n[[topics]]\nname = "orders"\n[[producers]]\nname = "p1"\n'
NESTED_REFUSAL = f"nested more than {MAX_NESTING} deep; at most {MAX_NESTING}"


def page_text(response: Any) -> str:
    return " ".join(unescape(response.content.decode()).split())


# -- scenario uploads ----------------------------------------------------------------------------
def upload_scenario(client: Client, text: str) -> Any:
    return client.post("/upload/", {"scenario": SimpleUploadedFile("x.toml", text.encode())})


@pytest.mark.django_db
def test_an_upload_of_40_kb_of_dotted_keys_is_refused_by_line_and_limit(client: Client) -> None:
    # Before: tomllib took 6 s and 1.8 GB on this file, then the key was refused as unknown.
    response = upload_scenario(client, SMALL + "a" + ".a" * 20_000 + " = 1\n")

    assert response.status_code == 400
    assert "line 6: a key with 20,001 dotted parts; at most 16" in page_text(response)
    assert not LabRoom.objects.exists() and not SavedRun.objects.exists()


@pytest.mark.django_db
def test_an_upload_of_deeply_nested_arrays_is_a_named_400_not_a_500(client: Client) -> None:
    response = upload_scenario(client, SMALL + "x = " + "[" * 3000 + "]" * 3000 + "\n")

    assert response.status_code == 400
    assert f"line 6: arrays and inline tables {NESTED_REFUSAL}" in page_text(response)


# -- run imports ---------------------------------------------------------------------------------
def document(commands: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """A run file of the built-in scenario, with these commands (none by default)."""
    doc = {
        "format": "delivery-lab-run",
        "version": 1,
        "title": "hostile",
        "scenario": {"name": SCENARIO, "toml": builtin_text(SCENARIO)},
        "seed": 7,
        "commands": commands or [],
        "verdict": {},
    }
    return {**doc, **fields}


def produce(count: Any) -> dict[str, Any]:
    raw = {"do": "produce", "producer": "p1", "topic": "orders", "count": count}
    return {"step_index": 0, "time_ms": 0, "raw": raw, "label": "produce"}


def import_run(client: Client, content: str | bytes) -> Any:
    data = content.encode() if isinstance(content, str) else content
    return client.post("/runs/import/", {"run": SimpleUploadedFile("run.json", data)})


def refusal(response: Any) -> tuple[int, str, str]:
    """(status, path, problem) of an import refusal, as the page shows them."""
    text = unescape(response.content.decode())
    path = (
        text.split('<code class="error-path">', 1)[1].split("<", 1)[0]
        if "error-path" in text
        else ""
    )
    problem = text.split('<span class="error-problem">', 1)[1].split("</span>", 1)[0]
    return response.status_code, path, " ".join(problem.split())


@pytest.mark.django_db
def test_an_imported_produce_of_900000_records_is_refused_naming_the_command(
    client: Client,
) -> None:
    own = records_in(load(SCENARIO))
    doc = document([produce(900_000)])

    response = import_run(client, json.dumps(doc))

    assert refusal(response) == (
        400,
        "commands[0].raw.count",
        f"with this command the run produces {900_000 + own:,} records ({own:,} from its "
        "scenario); the dashboard runs at most 200,000 per run (LAB_MAX_RECORDS_PER_RUN)",
    )
    assert not SavedRun.objects.exists()


@pytest.mark.django_db
@override_settings(LAB_MAX_RECORDS_PER_RUN=100)
def test_the_command_that_crosses_the_records_limit_is_the_one_named(client: Client) -> None:
    own = records_in(load(SCENARIO))
    small = (100 - own) // 3

    response = import_run(client, json.dumps(document([produce(small)] * 3 + [produce(small)])))

    status, path, problem = refusal(response)
    assert (status, path) == (400, "commands[3].raw.count")
    assert problem.startswith(f"with this command the run produces {own + 4 * small} records")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "path", "problem"),
    [
        (
            json.dumps(document([produce(-5)])),
            "commands[0].raw.count",
            "the engine refuses this command: must be at least 1, got -5",
        ),
        (
            json.dumps(document([produce(5.0)])),
            "commands[0].raw.count",
            "the engine refuses this command: expected an integer, got a number",
        ),
        (
            json.dumps(document([produce(1)])).replace('"count": 1', '"count": 1e400'),
            "",
            "the number 1e400 is out of range",
        ),
        (
            json.dumps(document([produce(1)])).replace('"count": 1', '"count": NaN'),
            "",
            "NaN is not a number JSON allows",
        ),
        (
            json.dumps(document([produce(1)])).replace('"count": 1', '"count": ' + "9" * 40),
            "",
            "a number of 40 digits; at most 32",
        ),
        (
            json.dumps(document()).replace('"seed": 7', '"seed": Infinity'),
            "",
            "Infinity is not a number JSON allows",
        ),
        (
            json.dumps(document()).replace(
                '"verdict": {}', '"verdict": ' + "[" * 3000 + "]" * 3000
            ),
            "",
            f"line 1: lists and objects {NESTED_REFUSAL}",
        ),
        (
            json.dumps(document(scenario={"name": "x", "toml": SMALL + "a" + ".a" * 40 + "=1"})),
            "scenario.toml",
            "the scenario is not valid: line 6: a key with 41 dotted parts; at most 16",
        ),
    ],
    ids=[
        "negative",
        "decimal",
        "1e400",
        "NaN",
        "40-digits",
        "Infinity",
        "nested-json",
        "dotted-toml",
    ],
)
def test_absurd_numbers_and_hostile_nesting_in_a_run_file_are_refused_by_name(
    client: Client, content: str, path: str, problem: str
) -> None:
    assert refusal(import_run(client, content)) == (400, path, problem)
    assert not SavedRun.objects.exists()


@pytest.mark.django_db
def test_a_stored_run_whose_commands_break_the_records_limit_is_not_replayed(
    client: Client,
) -> None:
    # A run saved before imports were checked: its page must not replay 900,000 records.
    spec = load(SCENARIO)
    command = Command(0, 0, produce(900_000)["raw"], "produce")
    run = create_run(spec, builtin_text(SCENARIO), 7, [command])

    page = page_text(client.get(f"/runs/{run.id}/"))
    copied = client.post(f"/runs/{run.id}/replay/")

    records = f"This run produces {900_000 + records_in(spec):,} records"
    assert records in page
    assert copied.status_code == 400 and records in page_text(copied)
    assert SavedRun.objects.count() == 1 and not LabRoom.objects.exists()


# -- rate limits ---------------------------------------------------------------------------------
@pytest.mark.django_db
@override_settings(LAB_RATE_RUN_IMPORT=(2, 60))
def test_imports_are_rate_limited_per_address_with_retry_after(client: Client) -> None:
    codes = [import_run(Client(), "{}").status_code for _ in range(2)]

    refused = import_run(client, json.dumps(document()))

    assert codes == [400, 400]
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Too many run imports from your address: try again in" in page_text(refused)
    assert not SavedRun.objects.exists()


@pytest.mark.django_db
@override_settings(LAB_RATE_RUN_VIEW=(2, 60))
def test_run_pages_reports_and_exports_are_rate_limited_per_address(client: Client) -> None:
    run = create_run(load(SCENARIO), builtin_text(SCENARIO), 7)

    codes = [
        client.get(f"/runs/{run.id}/{page}").status_code for page in ("", "report/", "export.json")
    ]

    assert codes == [200, 200, 429]
    refused = client.get(f"/runs/{run.id}/report/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    assert refused.text.startswith("Too many saved-run pages from your address: try again in")


@pytest.mark.django_db
@override_settings(LAB_RATE_ROOM_CREATE=(1, 60))
def test_a_replay_refused_by_the_room_rate_is_a_429_with_retry_after(client: Client) -> None:
    run = create_run(load(SCENARIO), builtin_text(SCENARIO), 7)
    assert client.post(f"/runs/{run.id}/replay/").status_code == 302

    refused = client.post(f"/runs/{run.id}/replay/")

    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1


# -- WebSocket messages --------------------------------------------------------------------------
PresenterHeaders = Callable[..., Awaitable[Headers]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("message", "problem"),
    [
        ("[" * 1500 + "]" * 1500, f"line 1: lists and objects {NESTED_REFUSAL}"),
        (
            '{"action": "vote", "question": 1, "choice": Infinity}',
            "Infinity is not a number JSON allows",
        ),
        ('{"action": "vote", "question": 1, "choice": 1e400}', "the number 1e400 is out of range"),
        ('{"action": "seek", "position": -1e999}', "the number -1e999 is out of range"),
        (
            # Echoed back in the error frame, half a surrogate pair cannot be sent as UTF-8.
            '{"action": "\\ud800"}',
            "a string holds a lone surrogate escape (\\ud800 to \\udfff): not Unicode text",
        ),
    ],
    ids=["3-kb-nested", "Infinity", "1e400", "-1e999", "lone-surrogate"],
)
async def test_a_hostile_message_gets_an_error_frame_and_the_socket_stays_open(
    message: str, problem: str, presenter_headers: PresenterHeaders
) -> None:
    room = registry.create(load(SCENARIO))
    attendee = await presenter_headers()  # a session that presents nothing, with a voter id
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=attendee)
    await ws.connect()
    await ws.receive_from(timeout=5)

    await ws.send_to(text_data=message)
    frame = unescape(await ws.receive_from(timeout=5))
    await ws.send_to(text_data=json.dumps({"action": "resync"}))
    after = await ws.receive_from(timeout=5)

    assert frame.startswith('<div id="ws-error"')
    assert f"That message was refused: {problem}." in frame
    assert 'data-kind="full"' in after  # still connected: the resync was answered
    assert room.timeline.commands == []
    await ws.disconnect()


# -- the controls' messages ----------------------------------------------------------------------
@pytest.mark.django_db
def test_a_fault_or_seek_control_without_its_value_says_what_is_missing(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()

    fault = client.post(f"{url}control/", {"action": "fault"})
    seek = client.post(f"{url}control/", {"action": "seek"})

    assert fault.status_code == 400
    assert fault.text.startswith("Which fault? Name one of this scenario's faults, such as '")
    assert "None" not in fault.text
    assert seek.status_code == 400
    assert seek.text == (
        f"Seek needs a position: an event number from 0 to {room.timeline.length}."
    )


# -- one status for one limit --------------------------------------------------------------------
@pytest.mark.django_db
@override_settings(LAB_RATE_ROOM_CREATE=(1, 60))
def test_the_room_creation_rate_is_a_429_with_retry_after_from_the_catalogue_and_uploads(
    client: Client,
) -> None:
    open_room(client)

    built_in = client.post("/", {"scenario": SCENARIO})
    uploaded = upload_scenario(client, builtin_text(SCENARIO))  # was a 400

    for response in (built_in, uploaded):
        assert response.status_code == 429
        assert 1 <= int(response["Retry-After"]) <= 60
        assert "Too many room creations from your address: try again in" in page_text(response)
    assert LabRoom.objects.count() == 1


@pytest.mark.django_db
@override_settings(LAB_RATE_CONTROL=(2, 60))
def test_bad_input_is_a_400_and_a_control_past_its_rate_a_429_with_retry_after(
    client: Client,
) -> None:
    url = open_room(client)

    bad = client.post(f"{url}control/", {"action": "explode"})
    done = client.post(f"{url}control/", {"action": "pause"})
    refused = client.post(f"{url}control/", {"action": "pause"})

    assert (bad.status_code, done.status_code, refused.status_code) == (400, 302, 429)
    assert "Retry-After" not in bad
    assert 1 <= int(refused["Retry-After"]) <= 60


@pytest.mark.django_db
def test_a_room_whose_run_commands_break_the_records_limit_is_not_loaded(client: Client) -> None:
    spec = load(SCENARIO)
    command = Command(0, 0, produce(900_000)["raw"], "produce")
    run = create_run(spec, builtin_text(SCENARIO), 7, [command])
    room, _key = create_room(run, kind="sandbox")

    response = client.get(f"/rooms/{room.id}/")

    assert f"This run produces {900_000 + records_in(spec):,} records" in page_text(response)
    assert room.id not in registry.rooms

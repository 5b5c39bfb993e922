"""The catalogue, the room page and the controls, over plain HTTP and htmx."""

import re
from pathlib import Path

import pytest
from asgiref.sync import async_to_sync
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.test.utils import override_settings

from broker.scenario import load
from dashboard.live import service
from dashboard.live.runtime import Control, registry
from dashboard.models import SavedRun
from tests.dashboard.conftest import open_room

HTMX = {"HTTP_HX_REQUEST": "true"}

pytestmark = pytest.mark.django_db


def test_the_catalogue_offers_each_builtin_scenario(client: Client) -> None:
    page = client.get("/").text

    assert '<button type="submit" name="scenario" value="producer-retry-duplicate"' in page
    assert "<code>producer-idempotent</code>" in page
    assert 'enctype="multipart/form-data"' in page


def test_opening_a_scenario_shows_its_room(client: Client) -> None:
    url = open_room(client)

    page = client.get(url).text

    room_id = url.strip("/").split("/")[-1]
    assert url == f"/rooms/{room_id}/"
    assert f'ws-connect="/ws/rooms/{room_id}/"' in page
    assert "<h1>At-least-once: a lost acknowledgement makes the retry a duplicate</h1>" in page
    assert '<h3 id="lane-title-orders-0">orders-0</h3>' in page
    assert ">Drop the next produce response</button>" in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "<!--csrf-->" not in page


def test_an_unknown_builtin_is_refused(client: Client) -> None:
    response = client.post("/", {"scenario": "no-such"})

    assert response.status_code == 400
    assert "There is no built-in scenario &#x27;no-such&#x27;." in response.text


def test_a_bad_upload_shows_the_key_path_and_the_problem(client: Client) -> None:
    source = Path(load("producer-retry-duplicate").source).read_text()
    text = source.replace("brokers = 3", "brokers = 0")
    upload = SimpleUploadedFile("mine.toml", text.encode())

    response = client.post("/upload/", {"scenario": upload})

    assert response.status_code == 400
    assert '<code class="error-path">cluster.brokers</code>' in response.text
    assert '<span class="error-problem">must be at least 1, got 0</span>' in response.text
    assert not registry.rooms


def test_a_good_upload_opens_a_room(client: Client) -> None:
    text = Path(load("producer-idempotent").source).read_text()

    response = client.post(
        "/upload/", {"scenario": SimpleUploadedFile("my-run.toml", text.encode())}
    )

    assert response.status_code == 302
    client.get(response["Location"])
    [room] = registry.rooms.values()
    assert room.spec.name == "my-run"
    # The saved run keeps the uploaded text itself: the room can reload from it.
    [run] = SavedRun.objects.all()
    assert run.scenario_toml == text


@override_settings(LAB_MAX_UPLOAD_BYTES=100)
def test_an_upload_over_the_size_limit_is_refused(client: Client) -> None:
    upload = SimpleUploadedFile("big.toml", b"#" * 101)

    response = client.post("/upload/", {"scenario": upload})

    assert response.status_code == 400
    assert (
        "big.toml is 101 bytes; scenario files may be at most 100 bytes (0 KiB)." in response.text
    )


@override_settings(LAB_MAX_RECORDS_PER_RUN=2)
def test_a_scenario_over_the_record_limit_is_refused(client: Client) -> None:
    response = client.post("/", {"scenario": "producer-retry-duplicate"})

    assert response.status_code == 400
    assert "This scenario produces 3 records; the dashboard runs at most 2 per run." in (
        response.text
    )


@override_settings(LAB_MAX_ROOMS=1)
def test_past_the_room_limit_a_new_workshop_room_is_refused(client: Client) -> None:
    first = open_room(client)

    response = client.post("/", {"scenario": "producer-idempotent"})

    assert response.status_code == 429 and response["Retry-After"] == "30"
    assert "The lab already runs 1 workshop room in use, the most it runs at once." in (
        response.text
    )
    assert client.get(first).status_code == 200


@override_settings(LAB_MAX_ROOMS=1, LAB_MAX_PRIVATE_ROOMS=0)
def test_a_room_dropped_from_memory_comes_back_at_the_same_point(client: Client) -> None:
    url = open_room(client)
    room = registry.rooms[url.strip("/").split("/")[-1]]
    room.submit(Control("step"))
    room.submit(Control("fault", fault="drop-response:p1"))
    room.submit(Control("step"))
    room.tick(0.0)
    async_to_sync(service.save_now)(room)  # what the room's task does a second later
    steps, commands = room.timeline.steps, room.timeline.commands
    registry.clear()

    client.get(url)

    again = registry.rooms[room.id]
    assert again is not room
    assert (again.timeline.steps, again.timeline.commands) == (steps, commands)


def test_an_htmx_control_is_queued_and_answers_no_content(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()

    response = client.post(
        f"{url}control/", {"action": "fault", "fault": "drop-response:p1"}, **HTMX
    )

    assert response.status_code == 204
    room.tick(0.0)  # the room's task may have applied it already; this makes sure
    assert [c.label for c in room.timeline.commands] == ["Drop the next produce response"]


def test_a_plain_control_redirects_back_to_the_room(client: Client) -> None:
    url = open_room(client)

    response = client.post(f"{url}control/", {"speed": "4"})

    assert response.status_code == 302
    assert response["Location"] == url
    [room] = registry.rooms.values()
    room.tick(0.0)
    assert room.speed == "4"


def test_a_forged_control_is_refused_and_changes_nothing(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()

    plain = client.post(f"{url}control/", {"action": "fault", "fault": "crash-broker:7"})
    htmx = client.post(f"{url}control/", {"action": "seek"}, **HTMX)

    assert plain.status_code == 400
    assert plain.text == "This scenario has no fault 'crash-broker:7'."
    assert htmx.status_code == 400  # htmx shows it beside the controls (errors.js)
    assert htmx["HX-Reswap"] == "none"
    assert "Seek needs a position: an event number from 0 to " in htmx.text
    assert not room.pending


def test_controls_need_the_csrf_token(client: Client) -> None:
    url = open_room(client)
    strict = Client(enforce_csrf_checks=True)
    strict.cookies = client.cookies  # the presenter's session, without the CSRF token

    response = strict.post(f"{url}control/", {"action": "play"})

    assert response.status_code == 403
    assert "CSRF" in response.text


def test_a_pressed_fault_shows_after_the_next_tick_with_its_virtual_time(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()
    room.submit(Control("step"))
    room.submit(Control("fault", fault="crash-broker:2"))
    room.submit(Control("step"))  # the fault takes effect at the next event
    room.tick(0.0)

    page = client.get(url).text

    assert '<li><span class="t">0 ms</span> Crash broker-2</li>' in page
    assert ">Restart broker-2</button>" in page
    assert re.search(
        r'<button type="submit" name="fault" value="crash-broker:2"[^>]*disabled', page
    )


def test_jump_to_offset_shows_a_still_window_of_the_log(client: Client) -> None:
    url = open_room(client)
    [room] = registry.rooms.values()
    room.submit(Control("speed", speed="end"))
    while not room.timeline.ended:
        room.tick(0.0)

    response = client.get(f"{url}lanes/orders-0/", {"offset": 2}, **HTMX)

    assert response.status_code == 200
    assert "offsets 2\u201341 (HW 4, LEO 4)" in response.text
    assert re.findall(r'data-offset="(\d+)"', response.text) == ["2", "3"]


@pytest.mark.parametrize(("query", "status"), [({"offset": "x"}, 400), ({"offset": "-1"}, 400)])
def test_jump_to_offset_needs_a_whole_number(client: Client, query: dict, status: int) -> None:
    url = open_room(client)

    assert client.get(f"{url}lanes/orders-0/", query).status_code == status


def test_jump_to_an_unknown_partition_is_not_found(client: Client) -> None:
    url = open_room(client)

    assert client.get(f"{url}lanes/payments-0/", {"offset": 0}).status_code == 404

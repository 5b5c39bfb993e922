"""Room limits that hold against a flood and never lock an instructor out; preview; end."""

from datetime import timedelta

import pytest
from django.test import Client
from django.test.utils import override_settings
from django.utils import timezone

from dashboard.live.runtime import registry
from dashboard.models import LabRoom, SavedRun
from tests.dashboard.conftest import open_workshop

pytestmark = pytest.mark.django_db
GENEROUS = {"LAB_RATE_ROOM_CREATE": "10000/60", "LAB_RATE_FORK": "10000/60"}


def age(*rooms: LabRoom, seconds: int) -> None:
    """As if nothing had used (or watched) these rooms for ``seconds``."""
    LabRoom.objects.filter(id__in=[r.id for r in rooms]).update(
        last_active=timezone.now() - timedelta(seconds=seconds)
    )


def open_from(address: str) -> tuple[int, str]:
    response = Client(REMOTE_ADDR=address).post("/", {"scenario": "producer-idempotent"})
    return response.status_code, response.text


@override_settings(**GENEROUS, LAB_MAX_ROOMS=3, LAB_ROOM_HOLD_S=600)
def test_opening_scenario_after_scenario_over_an_afternoon_never_locks_the_lab_out() -> None:
    instructor = Client()
    opened = []
    for _ in range(12):  # four times the limit, each room left once the next one is open
        age(*opened, seconds=601)
        opened.append(open_workshop(instructor))

    assert LabRoom.objects.filter(kind="workshop").count() == 3  # parked rooms made way
    assert list(LabRoom.objects.order_by("created_at")) == opened[-3:]
    assert SavedRun.objects.count() == 12  # every run is still saved


@override_settings(**GENEROUS, LAB_MAX_ROOMS=2, LAB_MAX_ROOMS_PER_CLIENT=5)
def test_rooms_in_use_count_and_the_refusal_says_when_to_come_back() -> None:
    assert open_from("10.0.0.1")[0] == 302
    assert open_from("10.0.0.2")[0] == 302

    status, page = open_from("10.0.0.3")

    assert status == 429  # a limit that frees up: asking again later can work
    assert "The lab already runs 2 workshop rooms in use, the most it runs at once." in page
    assert "nobody watches or uses for 10 minutes stops counting" in page
    assert LabRoom.objects.count() == 2


@override_settings(**GENEROUS, LAB_MAX_ROOMS=10, LAB_MAX_ROOMS_PER_CLIENT=2)
def test_a_flood_from_four_addresses_leaves_room_for_the_instructor() -> None:
    refused = 0
    for attempt in range(30):
        status, page = open_from(f"198.51.100.{attempt % 4}")
        if status != 302:
            refused += 1
            assert "the most one address may hold" in page
    assert LabRoom.objects.count() == 8  # 4 addresses x 2 rooms each

    assert refused == 22
    # Two places left: the instructor (another address) is not locked out.
    assert open_from("203.0.113.7")[0] == 302


@override_settings(**GENEROUS, LAB_MAX_ROOMS_PER_CLIENT=2, LAB_SWEEP_EVERY_S=60)
def test_a_rehearsing_instructors_oldest_unwatched_room_makes_way() -> None:
    instructor = Client()
    first, second = open_workshop(instructor), open_workshop(instructor)
    age(first, seconds=180)  # not watched for three minutes (the sweeper marks watched rooms)

    third = open_workshop(instructor)

    assert set(LabRoom.objects.all()) == {second, third}
    assert SavedRun.objects.filter(id=first.run_id).exists()


@override_settings(**GENEROUS, LAB_MAX_ROOMS=0)
def test_anyone_can_preview_a_scenario_without_a_workshop_room() -> None:
    visitor = Client()

    response = visitor.post("/", {"preview": "producer-retry-duplicate"})

    assert response.status_code == 302
    room = LabRoom.objects.get()
    assert (room.kind, room.code, room.run.origin) == ("sandbox", None, "preview")
    page = visitor.get(response["Location"]).text
    assert 'id="btn-step"' in page  # every control is the previewer's


def preview(visitor: Client) -> int:
    return visitor.post("/", {"preview": "producer-retry-duplicate"}).status_code


@override_settings(**GENEROUS, LAB_MAX_PRIVATE_ROOMS_PER_CLIENT=3)
def test_a_browser_previewing_again_and_again_ends_only_its_own_oldest_preview() -> None:
    attendee, visitor = Client(), Client()
    assert preview(attendee) == 302
    theirs = LabRoom.objects.get()

    for _ in range(10):
        assert preview(visitor) == 302

    kept = LabRoom.objects.exclude(id=theirs.id).order_by("created_at")
    assert kept.count() == 3 and LabRoom.objects.filter(id=theirs.id).exists()
    assert SavedRun.objects.filter(origin="preview").count() == 11  # every run is still saved


@override_settings(**GENEROUS, LAB_MAX_PRIVATE_ROOMS=3, LAB_SWEEP_EVERY_S=60)
def test_past_the_private_rooms_limit_an_idle_room_goes_and_a_watched_one_never() -> None:
    first, second, third = Client(), Client(), Client()
    for visitor in (first, second, third):
        assert preview(visitor) == 302
    rooms = list(LabRoom.objects.order_by("created_at"))

    response = Client().post("/", {"preview": "producer-retry-duplicate"})

    assert response.status_code == 429  # all three used in the last minutes
    assert "The lab already holds 3 private rooms, each watched or used" in response.text
    assert list(LabRoom.objects.order_by("created_at")) == rooms

    age(rooms[1], seconds=180)  # nobody has watched the second for three minutes
    assert preview(Client()) == 302
    assert not LabRoom.objects.filter(id=rooms[1].id).exists()
    assert LabRoom.objects.count() == 3


def test_the_catalogue_offers_a_preview_beside_open() -> None:
    page = Client().get("/").text

    assert 'name="preview" value="producer-retry-duplicate"' in page


@override_settings(**GENEROUS)
def test_a_presenter_ends_the_room_and_keeps_the_run() -> None:
    presenter = Client()
    room = open_workshop(presenter)
    attendee = Client()
    attendee.get(f"/r/{room.code}/")

    assert attendee.post(f"/rooms/{room.id}/end/").status_code == 403
    response = presenter.post(f"/rooms/{room.id}/end/")

    assert response.status_code == 302 and response["Location"] == f"/runs/{room.run_id}/"
    assert not LabRoom.objects.filter(id=room.id).exists()
    assert room.id not in registry.rooms
    assert Client().get(f"/r/{room.code}/").status_code == 404
    assert presenter.get(f"/runs/{room.run_id}/").status_code == 200

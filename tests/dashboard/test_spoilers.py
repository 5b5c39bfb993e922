"""Predict, then reveal without spoilers: what an attendee can learn while a question is open.

An attendee sees only what has happened so far: no speaker notes (in the room or in a copy of
it), no tally before the reveal, no title or name that states the outcome, no sandbox that could
run ahead; voting closes when the run moves on; the reveal marks the right answer; each
question's results stay with the saved run.
"""

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from dashboard.live.runtime import Control, registry
from dashboard.models import LabRoom, Question, SavedRun
from tests.dashboard.conftest import open_workshop

pytestmark = pytest.mark.django_db
# producer-retry-duplicate's own title: it states the answer.
TITLE = "At-least-once: a lost acknowledgement makes the retry a duplicate"


def attendee_of(room: LabRoom) -> Client:
    attendee = Client()
    assert attendee.get(f"/r/{room.code}/", follow=True).status_code == 200
    return attendee


def ask(client: Client, room: LabRoom, **data: object) -> Question:
    payload = {"prompt": "What happens next?", "presets": ["lost", "duplicated", "exactly once"]}
    response = client.post(f"/rooms/{room.id}/ask/", {**payload, **data})
    assert response.status_code == 302, response.content
    return Question.objects.filter(room=room).latest("id")


def vote(attendee: Client, room: LabRoom, question: Question, choice: int) -> str:
    response = attendee.post(
        f"/rooms/{room.id}/vote/", {"question": question.id, "choice": choice}, follow=True
    )
    return response.text


def tick(room: LabRoom) -> None:
    """One turn of the room's pacing task: a tick, then what runs after it (saving, closing
    the vote when the run moved on)."""
    live = registry.rooms[room.id]
    live.tick()
    async_to_sync(live.on_change)(live)


@pytest.fixture
def presenter() -> Client:
    return Client()


def test_the_scenario_title_is_hidden_from_everyone_while_a_question_is_open(
    presenter: Client,
) -> None:
    room = open_workshop(presenter)
    attendee = attendee_of(room)
    assert TITLE in attendee.get(f"/rooms/{room.id}/").text

    ask(presenter, room)
    tick(room)
    page = attendee.get(f"/rooms/{room.id}/").text

    assert TITLE not in page and "producer-retry-duplicate" not in page
    assert "<h1>What happens next?</h1>" in page
    assert "<title>What happens next? · Delivery Lab</title>" in page


def test_an_attendee_sees_how_many_voted_but_not_how_until_the_reveal(presenter: Client) -> None:
    room = open_workshop(presenter)
    question = ask(presenter, room)
    first, second = attendee_of(room), attendee_of(room)
    vote(first, room, question, 1)
    tick(room)

    page = second.get(f"/rooms/{room.id}/").text
    assert '<span id="vote-total">1</span> vote so far' in page
    assert f'id="count-{question.id}-1"' not in page and "question-tally" not in page
    assert '<span class="count" id="tally-1">1</span>' in presenter.get(f"/rooms/{room.id}/").text

    presenter.post(f"/rooms/{room.id}/reveal/")
    tick(room)
    page = second.get(f"/rooms/{room.id}/").text
    assert f'<span class="count" id="count-{question.id}-1">1</span>' in page


def test_the_reveal_marks_the_right_answer_and_the_run_keeps_the_results(
    presenter: Client,
) -> None:
    room = open_workshop(presenter)
    question = ask(presenter, room, correct="Duplicated")
    for choice in (1, 1, 0):
        vote(attendee_of(room), room, question, choice)
    tick(room)
    assert "the right answer" not in attendee_of(room).get(f"/rooms/{room.id}/").text

    presenter.post(f"/rooms/{room.id}/reveal/")
    tick(room)
    page = attendee_of(room).get(f"/rooms/{room.id}/").text

    assert '<li class="choice is-leading is-correct">' in page
    assert "the right answer: <strong>duplicated</strong>" in page
    [kept] = SavedRun.objects.get(id=room.run_id).questions
    assert (kept["prompt"], kept["correct"], kept["tally"], kept["revealed"]) == (
        "What happens next?",
        1,
        [1, 2, 0],
        True,
    )
    presenter.post(f"/rooms/{room.id}/end/")  # the room goes; the results stay with the run
    run_page = Client().get(f"/runs/{room.run_id}/").text
    assert "Questions asked" in run_page
    assert "duplicated: 2 (67%) <strong>✓ the right answer</strong>" in run_page
    assert "3 votes, 2 right" in run_page


def test_a_right_answer_must_be_one_of_the_choices(presenter: Client) -> None:
    room = open_workshop(presenter)

    response = presenter.post(
        f"/rooms/{room.id}/ask/",
        {"prompt": "Q?", "presets": ["lost", "duplicated"], "correct": "exactly once"},
    )

    assert response.status_code == 400
    assert "The right answer 'exactly once' is not one of the choices (lost, duplicated)." in (
        response.text
    )
    assert not Question.objects.exists()


def test_voting_closes_when_the_run_moves_on(presenter: Client) -> None:
    room = open_workshop(presenter)
    question = ask(presenter, room)
    attendee = attendee_of(room)
    tick(room)

    registry.rooms[room.id].submit(Control("step"))  # the presenter steps instead of revealing
    tick(room)
    tick(room)

    assert "Voting is over" in vote(attendee, room, question, 0)
    assert not question.votes.exists()
    assert Question.objects.get(id=question.id).revealed_at is not None


def test_an_attendees_copy_never_carries_the_speaker_notes(presenter: Client) -> None:
    room = open_workshop(presenter)
    attendee = attendee_of(room)
    assert 'id="speaker-notes"' in presenter.get(f"/rooms/{room.id}/").text
    assert "Speaker notes" not in attendee.get(f"/rooms/{room.id}/").text

    response = attendee.post(f"/rooms/{room.id}/fork/", {"kind": "view"})
    view = response["Location"].strip("/").split("/")[-1]
    page = attendee.get(f"/rooms/{view}/").text

    assert "Speaker notes" not in page and "expected:" not in page
    copy = registry.rooms[view]
    copy.tick()
    assert "Speaker notes" not in copy.full_frame(presenter=True)
    # A presenter's own sandbox keeps them.
    mine = presenter.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})["Location"]
    assert "Speaker notes" in presenter.get(mine).text


def test_try_it_yourself_waits_for_the_reveal(presenter: Client) -> None:
    room = open_workshop(presenter)
    ask(presenter, room)
    attendee = attendee_of(room)

    refused = attendee.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})
    view = attendee.post(f"/rooms/{room.id}/fork/", {"kind": "view"})["Location"]

    assert refused.status_code == 400
    assert "“Try it yourself” opens after the reveal" in refused.text
    live = registry.rooms[room.id]
    copy = registry.rooms[view.strip("/").split("/")[-1]]
    assert copy.timeline.limit_steps == live.timeline.steps  # nothing past the question

    presenter.post(f"/rooms/{room.id}/reveal/")
    assert attendee.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"}).status_code == 302


def test_words_on_someone_elses_sandbox_match_the_visitors_role(presenter: Client) -> None:
    room = open_workshop(presenter)
    ask(presenter, room)
    presenter.post(f"/rooms/{room.id}/reveal/")
    maker = attendee_of(room)
    sandbox = maker.post(f"/rooms/{room.id}/fork/", {"kind": "sandbox"})["Location"]

    visitor_page = Client().get(sandbox).text
    maker_page = maker.get(sandbox).text

    assert "You are following the presenter" not in visitor_page
    assert "is yours" not in visitor_page
    assert "only its maker can control it" in visitor_page
    assert '<span class="role-badge" id="role-badge">watching</span>' in visitor_page
    assert '<span class="role-badge" id="role-badge">your sandbox</span>' in maker_page
    assert "whoever made it has every control and fault" in maker_page


def test_the_scenario_description_waits_until_it_cannot_spoil_a_question(
    presenter: Client,
) -> None:
    room = open_workshop(presenter)
    attendee = attendee_of(room)
    described = "after request.timeout.ms it sends the batch again"  # the description's words
    assert 'id="about-title"' not in attendee.get(f"/rooms/{room.id}/").text

    ask(presenter, room)
    tick(room)
    assert 'id="about-title"' not in attendee.get(f"/rooms/{room.id}/").text

    presenter.post(f"/rooms/{room.id}/reveal/")
    tick(room)
    page = attendee.get(f"/rooms/{room.id}/").text
    assert "About this scenario" in page and described in page
    assert "What to look for" in page

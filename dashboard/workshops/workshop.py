"""Workshop bookkeeping on the web side: creating rooms, votes, rate limits, "my rooms"."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.html import format_html

from broker.scenario import ScenarioSpec
from dashboard.live.limits import check_limits, setting
from dashboard.models import LabRoom, Question, SavedRun, Vote
from dashboard.workshops import ratelimit, rooms

NOT_PRESENTER = (
    "You are watching as an attendee: only the room's presenters can do that. "
    "(Presenters open the room through its presenter link.)"
)

PRESENTERS_DO_NOT_VOTE = "Presenters do not vote: the tally is the attendees' prediction."

# Which setting limits which action, and the words for a refusal.
RATES = {
    "room": ("LAB_RATE_ROOM_CREATE", (10, 60.0), "room creations from your address"),
    "fork": ("LAB_RATE_FORK", (10, 60.0), "copies of a room from your address"),
    "vote": ("LAB_RATE_VOTE", (20, 60.0), "votes from this browser"),
    "control": ("LAB_RATE_CONTROL", (20, 1.0), "controls from this browser"),
    # Per address and question (``vote_ip_key``): a classroom behind one NAT still votes.
    "vote-ip": ("LAB_RATE_VOTE_IP", (400, 600.0), "votes on this question from your address"),
    "resync": ("LAB_RATE_RESYNC", (10, 60.0), "full-page refreshes from this connection"),
    "resync-ip": ("LAB_RATE_RESYNC_IP", (600, 60.0), "full-page refreshes from your address"),
    # Saved runs, per address: an import replays a whole run, and so may a run's page, report
    # or export (when the run is not in the replay cache).
    "run-import": ("LAB_RATE_RUN_IMPORT", (10, 60.0), "run imports from your address"),
    "run-view": ("LAB_RATE_RUN_VIEW", (120, 60.0), "saved-run pages from your address"),
}


def creator(request: Any) -> str:
    """Who is opening a room, as rooms keep it (a hash of the client's address)."""
    return rooms.creator_of(ratelimit.client_key(request))


def create_workshop(spec: ScenarioSpec, toml: str, request: Any = None) -> tuple[LabRoom, str]:
    """A new workshop room and its saved run; raises LimitError past the lab's limits."""
    check_limits(spec)
    with transaction.atomic():
        run = rooms.create_run(spec, toml)
        made_by = creator(request) if request is not None else ""
        return rooms.create_room(run, kind="workshop", creator=made_by)


def create_preview(spec: ScenarioSpec, toml: str, request: Any = None) -> tuple[LabRoom, str]:
    """A private room (a sandbox of one's own) to try a scenario without a workshop room: it
    has no join code and does not count against the workshop rooms' limit; one browser holds
    at most LAB_MAX_PRIVATE_ROOMS_PER_CLIENT of them (rooms._check_private_limits)."""
    check_limits(spec)
    browser = ""
    if request is not None:  # the browser session, hashed as rooms keep who opened them
        browser = rooms.creator_of(f"browser/{rooms.voter_id(request.session)}")
    with transaction.atomic():
        run = rooms.create_run(spec, toml, origin="preview")
        return rooms.create_room(run, kind="sandbox", creator=browser)


def rate_key(request: Any, action: str) -> str:
    """Per address for what creates rooms or replays runs, per browser session for the rest."""
    if action in ("room", "fork", "run-import", "run-view"):
        return ratelimit.client_key(request)  # an IPv4 address, or an IPv6 /64
    return rooms.voter_id(request.session)


def vote_ip_key(address: str, room_id: str, question: Any) -> str:
    """The "vote-ip" key: one count per client address and question (a question that is not
    a number counts with every other such one)."""
    try:
        number = int(question)
    except (TypeError, ValueError):
        number = -1
    return f"{address} {room_id} {number}"


def rate_refusal(request: Any, action: str) -> str:
    """Empty when allowed; otherwise the sentence to show."""
    return key_refusal(action, rate_key(request, action))


def key_refusal(action: str, key: str) -> str:
    """The same, for a key the caller made."""
    name, default, _what = RATES[action]
    return _refusal(action, ratelimit.check(action, key, setting(name, default)))


async def arate_refusal(action: str, key: str) -> str:
    """The same, from async code (a WebSocket consumer) that knows its key."""
    name, default, _what = RATES[action]
    return _refusal(action, await ratelimit.acheck(action, key, setting(name, default)))


class Refusal(str):
    """A rate refusal's sentence, with the seconds to wait (for a Retry-After header)."""

    retry_after_s = 0


def busy(message: str, retry_after_s: int = 30) -> Refusal:
    """A refusal that asking again later can get past (a limit that frees up): a 429."""
    refusal = Refusal(message)
    refusal.retry_after_s = retry_after_s
    return refusal


def _refusal(action: str, decision: ratelimit.Decision) -> str:
    if decision.allowed:
        return ""
    refusal = Refusal(f"Too many {RATES[action][2]}: try again in {decision.retry_after_s} s.")
    refusal.retry_after_s = decision.retry_after_s
    return refusal


def cast_vote(room_id: str, question_id: Any, choice: Any, voter: str) -> str:
    """Store one attendee's vote; "" when counted, else why not (nothing stored)."""
    try:
        qid, index = int(question_id), int(choice)
    except (TypeError, ValueError):
        return "A vote needs a question and a choice (numbers)."
    question = Question.objects.filter(id=qid, room_id=room_id).first()
    if question is None or question.closed_at is not None:
        return "That question is not open in this room."
    if question.revealed_at is not None:
        return "Voting is over: the run has moved on to the answer."
    if not 0 <= index < len(question.choices):
        return f"That question has choices 0 to {len(question.choices) - 1}."
    try:
        with transaction.atomic():
            Vote.objects.create(question=question, voter=voter, choice=index)
    except IntegrityError:
        return "You have already voted on this question: one vote per person."
    return ""


def my_vote_fragment(question: Question | None, index: int | None, oob: bool = True) -> str:
    """ "Your vote: …" for one browser; the page marks that choice's button from it."""
    if question is None or index is None or not 0 <= index < len(question.choices):
        return '<p id="my-vote" class="my-vote"></p>'
    return format_html(
        '<p id="my-vote" class="my-vote" data-question="{}" data-choice="{}"{}>'
        "Your vote: <strong>{}</strong></p>",
        question.id,
        index,
        format_html(' hx-swap-oob="{}"', "true") if oob else "",
        question.choices[index],
    )


def my_vote(room_id: str, voter: str) -> str:
    """This browser's vote on the room's open question, for the page it opens."""
    question = Question.objects.filter(room_id=room_id, closed_at=None).order_by("-id").first()
    vote = (
        Vote.objects.filter(question=question, voter=voter).first()
        if question is not None
        else None
    )
    return my_vote_fragment(question, vote.choice if vote is not None else None, oob=False)


def my_rooms(session: Any) -> list[LabRoom]:
    ids = session.get(rooms.SESSION_PRESENTS, [])
    found = {r.id: r for r in LabRoom.objects.filter(id__in=ids, kind="workshop")}
    return [found[i] for i in ids if i in found and not found[i].expired()]


def my_runs(session: Any) -> list[SavedRun]:
    ids = session.get(rooms.SESSION_RUNS, [])
    found = {r.id: r for r in SavedRun.objects.filter(id__in=ids)}
    return [found[i] for i in ids if i in found]

"""Predict, then reveal: the room's open question, its votes and its results.

A presenter pauses the run and asks; attendees vote once each; the reveal (or the run moving on,
whichever comes first) closes the voting. Until then attendees see how many have voted, not how:
the tally is a presenter-only panel (fragments.PRIVATE_PANELS). A question may name its right
answer, which the reveal marks. Every question's results are also kept with the room's saved run
(``SavedRun.questions``), so they outlive the room.

Runs where the rooms live (service.py calls these with the live ``Room``).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db.models import Count
from django.utils import timezone

from dashboard.live.runtime import Control, Room
from dashboard.models import Question, SavedRun


def as_dict(question: Question, tally: list[int]) -> dict[str, Any]:
    return {
        "id": question.id,
        "prompt": question.prompt,
        "choices": list(question.choices),
        "correct": question.correct,
        "tally": tally,
        "position": question.position,
        "revealed": question.revealed_at is not None,
    }


def count_votes(question: Question) -> list[int]:
    counts = dict(
        question.votes.values("choice").annotate(n=Count("id")).values_list("choice", "n")
    )
    return [int(counts.get(i, 0)) for i in range(len(question.choices))]


def load(room: Room) -> None:
    """The room's open question from the database (a room loading again)."""
    question = Question.objects.filter(room_id=room.id).order_by("-asked_at", "-id").first()
    if question is not None and question.closed_at is None:
        room.question = as_dict(question, count_votes(question))


def _record(run_id: str | None, question: dict[str, Any]) -> None:
    """Keep the question's current results with the saved run (one entry per question)."""
    if not run_id:
        return
    run = SavedRun.objects.filter(id=run_id).only("questions").first()
    if run is None:
        return
    entry = {
        "id": question["id"],
        "prompt": question["prompt"],
        "choices": question["choices"],
        "correct": question["correct"],
        "tally": question["tally"],
        "position": question["position"],
        "revealed": question["revealed"],
    }
    kept = [q for q in run.questions if q.get("id") != question["id"]]
    kept.append(entry)
    SavedRun.objects.filter(id=run_id).update(questions=kept)


async def _changed(room: Room, question: dict[str, Any] | None) -> None:
    room.question = question
    if question is not None:
        await sync_to_async(_record)(room.info.get("run_id"), question)
    room.poke()
    room.ensure_running()


async def ask(room: Room, prompt: str, choices: list[str], correct: int | None) -> dict[str, Any]:
    """Pause the run and put a question to the room (replacing any earlier one)."""
    if room.kind != "workshop":
        return {"error": "Questions are for workshop rooms, not private copies."}
    position = room.timeline.position

    def create() -> Question:
        return Question.objects.create(
            room_id=room.id, prompt=prompt, choices=choices, position=position, correct=correct
        )

    question = await sync_to_async(create)()
    room.submit(Control("pause"))
    await _changed(room, as_dict(question, [0] * len(choices)))
    return {"question_id": question.id}


async def close_voting(room: Room) -> None:
    """Votes stop: the answer is being revealed (``revealed`` marks it for everyone)."""
    question = room.question
    if question is None or question["revealed"]:
        return
    await sync_to_async(Question.objects.filter(id=question["id"], revealed_at=None).update)(
        revealed_at=timezone.now()
    )
    await _changed(room, {**question, "revealed": True})


async def reveal(room: Room, close: bool = False) -> dict[str, Any]:
    """Reveal the answer and play on (or, with ``close``, take the question down)."""
    question = room.question
    if question is None:
        return {"error": "There is no question to reveal."}
    if close:
        await sync_to_async(Question.objects.filter(id=question["id"]).update)(
            closed_at=timezone.now()
        )
        await _changed(room, None)
    elif not question["revealed"]:
        await close_voting(room)
        room.submit(Control("play"))
    return {"error": None}


async def after_tick(room: Room) -> None:
    """Once the run moves on from where the question was asked, voting is over: a vote cast
    after that would be a prediction made while watching the answer."""
    question = room.question
    if question is not None and not question["revealed"] and (
        room.timeline.position > question["position"]
    ):
        await close_voting(room)


async def tally(room: Room) -> dict[str, Any]:
    """A vote was stored: recount the open question."""
    question = room.question
    if question is None:
        return {}

    def count() -> list[int]:
        stored = Question.objects.filter(id=question["id"]).first()
        return count_votes(stored) if stored is not None else list(question["tally"])

    counts = await sync_to_async(count)()
    if room.question is not None and room.question["id"] == question["id"]:
        await _changed(room, {**room.question, "tally": counts})
    return {"tally": counts}


def result_rows(run: SavedRun) -> list[dict[str, Any]]:
    """The questions kept with a saved run, as the run page and report list them."""
    rows = []
    for question in run.questions:
        tally = [int(n) for n in question.get("tally", [])]
        total = sum(tally)
        choices = [
            {
                "text": text,
                "count": tally[i] if i < len(tally) else 0,
                "percent": round(100 * tally[i] / total) if total and i < len(tally) else 0,
                "correct": question.get("correct") == i,
            }
            for i, text in enumerate(question.get("choices", []))
        ]
        rows.append(
            {
                "prompt": question.get("prompt", ""),
                "position": question.get("position", 0),
                "choices": choices,
                "total": total,
                "right": sum(c["count"] for c in choices if c["correct"]),
                "has_answer": question.get("correct") is not None,
            }
        )
    return rows

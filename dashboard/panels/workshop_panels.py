"""Workshop panels: the room banner, the predict-then-reveal question, the speaker notes, and
the join code's QR code.

Like every presenter, each takes the observation (``obs["room"]`` comes from
``runtime.Room.room_info``) and returns a template context, or None for an empty panel.
"""

from __future__ import annotations

from typing import Any

import segno
from django.template.loader import render_to_string

# What to point at on the page when a scenario step happens: by step action (or its prefix).
POINT_AT: tuple[tuple[str, str], ...] = (
    ("produce", "the partition logs: new cells arrive at the log end (LEO), then HW catches up"),
    ("drop-", "the sequence diagram: the arrow that never arrives, then the producer's retry"),
    ("delay-", "the sequence diagram: a late arrow overtaking a newer one"),
    ("duplicate-", "the sequence diagram: the same request arriving twice"),
    ("random-faults", "the event list: what the random faults hit"),
    ("heal", "the brokers panel: links back up"),
    ("isolate-broker", "the brokers panel and the HW cursor: the ISR shrinks"),
    ("crash-broker", "the brokers panel: a new leader, and the log truncated to its HW"),
    ("restart-broker", "the brokers panel: the broker catches up from the leader"),
    ("random-broker-crashes", "the brokers panel: leaders changing"),
    ("crash-producer", "the producers panel: its in-flight batches are gone"),
    ("restart-producer", "the producers panel: a new producer id (or a bumped epoch)"),
    ("disconnect", "the producers panel: requests in flight, then retries"),
    ("crash-consumer", "the consumers panel: position ▼ against committed ▽ — the gap is redone"),
    ("restart-consumer", "the consumers panel: it resumes from the committed offset ▽"),
    ("stop-consumer", "the groups panel: a rebalance hands its partitions over"),
    ("stall-consumer", "the groups panel: the session times out and the group rebalances"),
    ("fail-sink", "the external database panel: what was stored against what was committed"),
    ("begin-transaction", "the transactions panel: the transaction opens"),
    ("commit-transaction", "the COMMIT markers in the partition logs and the LSO cursor"),
    ("abort-transaction", "the ABORT markers: the aborted records are never read committed"),
    ("crash-processor", "the processors panel: its open transaction will be aborted"),
    ("restart-processor", "the processors panel: the epoch is bumped and the zombie fenced"),
    ("stall-processor", "the processors panel and the group: a zombie about to be fenced"),
    ("note", "the verdict panel"),
)


def point_at(action: str) -> str:
    for prefix, where in POINT_AT:
        if action == prefix or (prefix.endswith("-") and action.startswith(prefix)):
            return where
    return "the event list"


def room_banner_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """For private rooms: whose copy this is and the way back to the live room."""
    room = obs.get("room") or {}
    kind = room.get("kind", "workshop")
    if kind == "workshop":
        return None
    return {
        "kind": kind,
        "parent_id": room.get("parent_id"),
        "parent_code": room.get("parent_code"),
        "at_limit": room.get("limited") and obs["status"].get("ended"),
    }


def kafka_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """A room's Kafka listeners while open (live/wire.py): where to connect, and who is."""
    kafka = (obs.get("room") or {}).get("kafka")
    if not kafka:
        return None
    return {**kafka, "paused": not obs["status"].get("playing")}


def _choices(question: dict[str, Any]) -> list[dict[str, Any]]:
    tally = list(question["tally"])
    total = sum(tally)
    leader = max(tally) if total else 0
    return [
        {
            "index": i,
            "text": text,
            "count": tally[i],
            "percent": round(100 * tally[i] / total) if total else 0,
            "leading": total > 0 and tally[i] == leader,
            "correct": question.get("correct") == i,
        }
        for i, text in enumerate(question["choices"])
    ]


def question_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """The question as everyone sees it: until the reveal, how many voted but not how (the
    presenters' tally is ``question_tally_panel``), so nobody votes with the crowd."""
    question = (obs.get("room") or {}).get("question")
    if not question:
        return None
    revealed = bool(question["revealed"])
    correct = question.get("correct")
    return {
        "id": question["id"],
        "prompt": question["prompt"],
        "choices": _choices(question),
        "total": sum(question["tally"]),
        "revealed": revealed,
        "show_tally": revealed,
        "correct": question["choices"][correct] if revealed and correct is not None else None,
        "room_id": (obs.get("room") or {}).get("id", ""),
        "verdict": (obs.get("verdict") or {}).get("label") if revealed else None,
    }


def question_tally_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """Presenters only: the live tally of an open question, before the reveal shows it to all."""
    question = (obs.get("room") or {}).get("question")
    if not question or question["revealed"]:
        return None
    return {"choices": _choices(question), "total": sum(question["tally"])}


def about_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """The scenario's description and what to look for, for everyone, once it cannot spoil a
    question: in a workshop room after the run is over or a question was revealed (the
    description tells the outcome), and at once in a private room that is nobody's question."""
    room = obs.get("room") or {}
    question = room.get("question")
    if (question and not question["revealed"]) or room.get("copied_mid_question"):
        return None
    over = bool(obs["status"].get("ended"))
    if room.get("kind", "workshop") == "workshop" and not over and not question:
        return None
    scenario = obs["scenario"]
    look_for = list(dict.fromkeys(point_at(s["action"]) for s in scenario.get("steps", [])))
    return {"description": scenario.get("description", ""), "look_for": look_for}


def speaker_notes_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """The presenter's notes: the story so far and next, and what to point at."""
    scenario = obs["scenario"]
    steps = scenario.get("steps", [])
    told = len(obs["snapshot"].get("narration", []))
    now = steps[told - 1] if 0 < told <= len(steps) else None
    upcoming = steps[told] if told < len(steps) else None
    expected = scenario.get("expected") or {}
    return {
        "description": scenario.get("description", ""),
        "now": _note(now),
        "next": _note(upcoming),
        "expected": sorted(expected.items()),
        "semantics": scenario.get("semantics", ""),
        "clock_ms": obs["status"].get("clock_ms", 0),
    }


def _note(step: dict[str, Any] | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"at_ms": step["at_ms"], "text": step["narration"], "point_at": point_at(step["action"])}


def audience_fragment(attendees: int) -> str:
    """How many attendees watch the room ("27 watching"): a fragment for its presenters only,
    outside the numbered frames (runtime.Room.send_count), so it costs attendees nothing."""
    return render_to_string("dashboard/panels/audience.html", {"attendees": attendees})


def join_qr(url: str) -> str:
    """The attendee link as a QR code: inline SVG drawn on the server (segno; no network).

    Dark modules on a white square whatever the theme (phones read that best), sized by CSS.
    """
    if not url:
        return ""
    qr = segno.make(url, error="m")
    return str(
        qr.svg_inline(
            scale=1,
            border=2,
            dark="#000",
            light="#fff",
            omitsize=True,
            svgclass="qr",
            lineclass=None,
            title=f"QR code: {url}",
        )
    )

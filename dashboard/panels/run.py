"""The run's own panels: header, playback controls, scrubber, faults, brokers, producers, the
latest events, and a plain table for engine parts without a panel of their own."""

from __future__ import annotations

from typing import Any

from dashboard.panels.common import (
    BEAT,
    BEATS,
    SPEEDS,
    beats_label,
    not_started,
    slug,
    speed_label,
)
from dashboard.panels.faults import FaultOption, fault_options
from dashboard.panels.internal import client_txn_state

NEUTRAL_TITLE = "What happens next?"
HIDDEN_NAME = "the scenario's name shows after the reveal"


def question_open(obs: dict[str, Any]) -> bool:
    """A question is open in this room, or this is an attendee's copy made while one was."""
    room = obs.get("room") or {}
    question = room.get("question")
    return (bool(question) and not question["revealed"]) or bool(room.get("copied_mid_question"))


def shown_title(obs: dict[str, Any]) -> dict[str, str]:
    """The scenario's title and name, or neutral words while a question is open (a title such
    as "acks=1 loses a message on failover" would answer it)."""
    if question_open(obs):
        return {"title": NEUTRAL_TITLE, "name": HIDDEN_NAME}
    return {"title": obs["scenario"]["title"], "name": obs["scenario"]["name"]}


def header_panel(obs: dict[str, Any]) -> dict[str, Any]:
    scenario = obs["scenario"]
    status = obs["status"]
    if status.get("seeking"):
        state = "travelling in time\u2026"
    elif status.get("ended"):
        state = "run over" if status["ended"] == "settled" else f"run over ({status['ended']})"
    elif status.get("playing") and status["speed"] == BEAT:
        state = f"playing {beats_label(status.get('beats', '1'))}, one moment a beat"
    elif status.get("playing"):
        state = f"playing at {speed_label(status['speed'])}"
    elif status.get("paused_for"):
        state = status["paused_for"]["text"]  # paused on an anomaly: why
    else:
        state = "paused"
    return {
        **shown_title(obs),
        "semantics": scenario["semantics"],
        "seed": scenario["seed"],
        "clock_ms": status.get("clock_ms", 0),
        "state": state,
        "playing": bool(status.get("playing")),
        "in_past": bool(status.get("in_past")),
        # A replayed run says so: what happens next was recorded, not pressed now.
        "replay": (obs.get("room") or {}).get("origin") == "replay",
    }


def controls_panel(obs: dict[str, Any]) -> dict[str, Any]:
    status = obs["status"]
    return {
        "room_id": status.get("room_id", ""),
        "playing": bool(status.get("playing")),
        "speeds": [
            {
                "value": s,
                "label": speed_label(s),
                "key": str(i + 1),
                "current": s == status["speed"],
            }
            for i, s in enumerate(SPEEDS)
        ],
        "in_past": bool(status.get("in_past")),
        "ended": status.get("ended"),
        "can_go_back": status.get("position", 0) > 0,
    }


def scrubber_panel(obs: dict[str, Any]) -> dict[str, Any]:
    status = obs["status"]
    return {
        "room_id": status.get("room_id", ""),
        "position": status.get("position", 0),
        "length": status.get("length", 0),
        # Event pacing (one moment, one scrubber position, per beat at one of these rates) and
        # the pause on anomaly toggle: in the history row, where the controls row has no room
        # left on a projector.
        "beats": [
            {
                "value": b,
                "label": f"{b}/s",  # compact: the row must stay one line on a projector
                "title": beats_label(b),
                "current": status["speed"] == BEAT and b == status.get("beats"),
            }
            for b in BEATS
        ],
        "pause_on_anomaly": bool(status.get("pause_on_anomaly")),
    }


def faults_panel(obs: dict[str, Any]) -> dict[str, Any]:
    kafka = (obs.get("room") or {}).get("kafka") or {}
    options = fault_options(obs["scenario"], obs["snapshot"], kafka.get("producers"))
    groups: dict[str, list[FaultOption]] = {}
    for option in options:
        groups.setdefault(option.group, []).append(option)
    return {
        "room_id": obs["status"].get("room_id", ""),
        "groups": [{"name": name, "options": opts} for name, opts in groups.items()],
        # The latest presses first, those on real Kafka clients (live/wire.py) among them.
        "pressed": sorted(
            [*reversed(obs.get("commands", [])[-6:]), *reversed(kafka.get("pressed", []))],
            key=lambda c: -c["time_ms"],
        )[:6],
        "armed": obs["snapshot"].get("faults", []),
        "in_past": bool(obs["status"].get("in_past")),
    }


def brokers_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    snapshot = obs["snapshot"]
    brokers = snapshot.get("brokers")
    if not brokers:
        return None
    leads: dict[int, list[str]] = {}
    for partition in snapshot.get("partitions", []):
        if partition.get("leader") is not None:
            leads.setdefault(partition["leader"], []).append(partition["name"])
    return {
        "brokers": [
            {
                "id": b["id"],
                "alive": b.get("alive", True),
                "fenced": b.get("fenced", False),
                "leads": leads.get(b["id"], []),
            }
            for b in brokers
        ]
    }


def batch_records(records: list[str], shown: int = 6) -> str:
    """A batch's messages; a big one (hundreds, sent in every frame) by its ends and count."""
    if len(records) <= shown:
        return ", ".join(records)
    return f"{', '.join(records[:3])}, \u2026 {records[-1]} ({len(records)} messages)"


def producers_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    # Real Kafka clients (live/wire_actors.py) after the simulated producers.
    kafka = (obs.get("room") or {}).get("kafka") or {}
    producers = list(obs["snapshot"].get("producers") or []) + kafka.get("producers", [])
    if not producers:
        return None
    out = []
    for p in producers:
        if p.get("external"):
            out.append(_external_producer(p))
            continue
        pid = p.get("producer_id")
        out.append(
            {
                "name": p["name"],
                "slug": slug(p["name"]),
                "alive": p.get("alive", True),
                "started": p.get("started", True),
                "state": (
                    ("running" if p.get("alive", True) else "crashed")
                    if p.get("started", True)
                    else not_started(obs, "producers", p["name"])
                ),
                "incarnation": p.get("incarnation"),
                "pid": "\u2014" if pid is None or pid < 0 else pid,
                "epoch": "\u2014" if p.get("producer_epoch") in (None, -1) else p["producer_epoch"],
                "next_sequence": sorted((p.get("next_sequence") or {}).items()),
                "in_flight": [
                    {
                        "partition": b["partition"],
                        "records": batch_records(b.get("records", [])),
                        "attempts": b.get("attempts", 0),
                        "last_error": b.get("last_error"),
                    }
                    for b in p.get("in_flight", [])
                ],
                "queued": p.get("queued", 0),
                "transactional_id": p.get("transactional_id"),
                "client_txn": client_txn_state(
                    p.get("transaction_state"), p.get("transaction_error")
                ),
                "config": sorted((p.get("config") or {}).items()),
            }
        )
    return {"producers": out}


def events_panel(obs: dict[str, Any]) -> dict[str, Any]:
    events = obs.get("events", [])
    return {
        "events": [
            {
                **e,
                "where": (
                    f"{e['partition']}@{e['offset']}"
                    if e.get("partition") and e.get("offset") is not None
                    else (e.get("partition") or "")
                ),
                "latest": i == len(events) - 1,
            }
            for i, e in enumerate(events)
        ],
        # The scrubber counts moments (engine steps that showed something); a trace counts
        # events, several of which can happen in one step: both numbers, side by side.
        "total": (obs.get("story") or {}).get("visible_events"),
        "moments": obs["status"].get("position", 0),
    }


# Engine parts without a dedicated panel yet (consumers, groups, the sink, transaction
# coordinators and processors have theirs): (snapshot key, title).
EXTRA_PARTS: tuple[tuple[str, str], ...] = ()


def _rows(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [v if isinstance(v, dict) else {"value": v} for v in value]
    if isinstance(value, dict):
        for inner in value.values():  # a table of rows (a sink's output table)
            if isinstance(inner, list) and inner and all(isinstance(v, dict) for v in inner):
                return _rows(inner)
        if all(isinstance(v, dict) for v in value.values()):
            return [{"name": k, **v} for k, v in value.items()]
        return [value]
    return [{"value": value}]


def _cell_text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_cell_text(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_cell_text(v) for v in value)
    return "\u2014" if value is None else str(value)


def extras_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """Engine parts the dashboard has no dedicated view for yet, shown as plain tables."""
    snapshot = obs["snapshot"]
    parts = []
    for key, title in EXTRA_PARTS:
        value = snapshot.get(key)
        if not value:
            continue
        rows = _rows(value)
        columns: list[str] = []
        for row in rows:
            columns.extend(c for c in row if c not in columns)
        parts.append(
            {
                "key": key,
                "title": title,
                "columns": [c.replace("_", " ") for c in columns],
                "rows": [[_cell_text(row.get(c)) for c in columns] for row in rows],
            }
        )
    return {"parts": parts} if parts else None


def _external_producer(p: dict[str, Any]) -> dict[str, Any]:
    """A real Kafka client as a producer: its client.id, ids, sequences and group memberships."""
    connections = p["connections"]
    pid, epoch = p["producer_id"], p["producer_epoch"]
    return {
        "name": p["name"],
        "slug": slug(f"client-{p['name']}"),
        "alive": True,
        "started": True,
        "state": f"real client · {connections} connection{'s' if connections != 1 else ''}",
        "incarnation": None,
        "pid": "\u2014" if pid < 0 else pid,
        "epoch": "\u2014" if epoch < 0 else epoch,
        "next_sequence": sorted(p["next_sequence"].items()),
        "in_flight": [],
        "queued": 0,
        "transactional_id": p["transactional_id"],
        "client_txn": None,
        "config": [("records sent", p["records"])]
        + [(f"member of {group}", member) for group, member in p["members"]],
    }

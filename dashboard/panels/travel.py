"""The travel layer: the messages on the wire, for the page to move from one actor's box to
another's (static/js/travel.js draws them).

Every event with both ends becomes one message from its sender to its receiver: a request sent
(``Produce``, ``InitProducerId``, ``JoinGroup``, ``OffsetCommit``...), an answer, a request or an
answer the network lost, a connection closed. An event inside one actor (an append, a timeout, a
batch queued for a retry) is a note at that actor. A ``Wire`` reads each event once, per engine
(like the narrator, see ``story.reader_for``), and keeps the newest few and how many there were
in all: the browser moves only the ones it has not drawn yet, and shows a count instead when too
many came at once. The engine knows nothing of this; how long a message takes on screen follows
the room's play speed (``duration_ms``), never the engine's virtual time.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from broker.events import Event
from dashboard.panels.common import BEAT
from dashboard.panels.diagram import event_label

# The newest messages a frame carries: a few more than the browser moves at once (MOVING = 6
# in travel.js), and no more: the panel is sent again with every new message.
KEEP = 8
# How long a message takes on screen when the room is not playing (a step, a click on back).
STEP_MS = 1000
BASE_MS = 600  # at 1x; faster speeds shorten it, down to FASTEST_MS
FASTEST_MS = 150

# Requests and answers by event kind, with their API; None: the API is the detail's first word.
REQUESTS: dict[str, str | None] = {
    "produce.send": "Produce",
    "init-producer-id": "InitProducerId",
    "consumer.join": "JoinGroup",
    "consumer.commit": None,
    "txn.request": None,
    "txn.marker-request": "WriteTxnMarkers",
    "wire.request": None,  # a real Kafka client's request (broker.wire.gateway)
}
RESPONSES: dict[str, str | None] = {
    "produce.ack": "Produce",
    "producer-id.assigned": "InitProducerId",
    "txn.response": None,
    "txn.marker-response": "WriteTxnMarkers",
    "offset.committed": "OffsetCommit",
    "offset.commit-rejected": "OffsetCommit",
    "offset.pending": "TxnOffsetCommit",
    "wire.response": None,
}
LOST = {
    "net.drop-request": "request lost",
    "net.drop-response": "response lost",
    "net.disconnect": "request lost: connection broken",
}
CLOSED = frozenset({"disconnected", "response.out-of-order"})
# Ends that have no box on the page: their events are not drawn.
NO_BOX = frozenset({"script", "network", "controller"})
# The scenario's clients shown beside the brokers: side -> (scenario key, role, icon).
CLIENT_SIDES = (
    ("writers", (("producers", "producer", "\u2709"),)),
    ("readers", (("consumers", "consumer", "\u21e9"), ("processors", "processor", "\u21c4"))),
)
_ATTEMPT = re.compile(r"attempt (\d+)")
_SEQ = re.compile(r"seq (\d+(?:\.\.\d+)?)")
_IDS = re.compile(r"\[[^\]]*\]")


def api_of(event: Event) -> str:
    """The Kafka API a message event is about ("Produce", "EndTxn", ...), or ""."""
    kind = event.kind
    table = REQUESTS if kind in REQUESTS else RESPONSES if kind in RESPONSES else None
    if table is not None and table[kind] is not None:
        return str(table[kind])
    if table is not None or kind in LOST:
        return event.detail.split(" ", 1)[0] if event.detail else ""
    return ""


def resent(event: Event) -> tuple[str, str] | None:
    """For a Produce sent again: its attempt number and, with idempotence, its sequence range
    ("" without)."""
    if event.kind != "produce.send":
        return None
    attempt = _ATTEMPT.search(event.detail)
    if attempt is None or attempt.group(1) == "1":
        return None
    seq = _SEQ.search(event.detail)
    return attempt.group(1), seq.group(1) if seq else ""


def retry_of(event: Event) -> str:
    """The retry tag of a Produce sent again: "retry, attempt 2, same seq 0..0", or "no seq"
    without idempotence."""
    found = resent(event)
    if found is None:
        return ""
    attempt, seq = found
    return f"retry, attempt {attempt}, " + (f"same seq {seq}" if seq else "no seq")


def message(event: Event) -> dict[str, Any] | None:
    """One event as the travel layer draws it, or None when there is nothing to draw."""
    ids = _IDS.search(event.detail)
    ids_text = f" {ids.group(0)}" if ids else ""
    src, dst = event.src, event.dst
    kind = event.kind
    if src and dst and kind != "producer-id.received":  # that answer moved with .assigned
        api = api_of(event)
        if kind in LOST:
            role, label = "lost", f"{api} {LOST[kind]}"
        elif kind in CLOSED:
            role, label = "closed", "connection closed"
        elif kind in RESPONSES:
            where = f" @{event.offset}" if event.offset is not None else ""
            role, label = "response", f"{api} response{where}{ids_text}"
            if event.error:
                label += f": {event.error}"
        else:
            role, label = "request", f"{api or event_label(event.to_dict())}{ids_text}"
        return {
            "seq": event.seq,
            "role": role,
            "src": src,
            "dst": dst,
            "label": label,
            "retry": retry_of(event),
            "error": event.error or "",
        }
    actor = event.actor
    if actor in NO_BOX or kind.startswith("step."):
        return None
    return {
        "seq": event.seq,
        "role": "note",
        "src": actor,
        "dst": actor,
        "label": event_label(event.to_dict()),
        "retry": "",
        "error": event.error or "",
    }


@dataclass(slots=True)
class Wire:
    """Feed it events in order; ``state`` is what the newest frame carries."""

    total: int = 0  # messages and notes drawn so far in this engine's run
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEEP))

    def feed(self, events: Iterable[Event]) -> None:
        for event in events:
            if event.quiet:
                continue
            drawn = message(event)
            if drawn is not None:
                self.total += 1
                self.recent.append(drawn)

    def state(self) -> dict[str, Any]:
        return {"total": self.total, "messages": list(self.recent)}


def duration_ms(status: dict[str, Any]) -> int:
    """How long one message moves on screen: a beat at event pacing, shorter the faster the
    room plays, none "to the end" (the page shows a count), STEP_MS for a step."""
    speed = str(status.get("speed", "1"))
    if speed == "end" and (status.get("playing") or status.get("ended") is not None):
        return 0  # the last frame of a run played to the end is not playing any more
    if not status.get("playing"):
        return STEP_MS
    if speed == BEAT:
        return int(800 / float(status.get("beats") or 1))
    return max(FASTEST_MS, int(BASE_MS / math.sqrt(float(speed))))


def sides(scenario: dict[str, Any]) -> list[tuple[str, list[dict[str, str]]]]:
    """The clients beside the brokers, writers left and readers right, so that a message
    between them travels in the first screen (their own panels lie further down). An instance
    ("billing#2") or a processor's producer ("enricher.producer") is found by the name before
    "#" or "." (travel.js)."""
    out: list[tuple[str, list[dict[str, str]]]] = []
    for side, roles in CLIENT_SIDES:
        out.append(
            (
                side,
                [
                    {"name": actor["name"], "role": role, "icon": icon}
                    for key, role, icon in roles
                    for actor in scenario.get(key, [])
                ],
            )
        )
    return out


def travel_panel(obs: dict[str, Any]) -> dict[str, Any]:
    wire = (obs.get("story") or {}).get("wire") or {"total": 0, "messages": []}
    messages = wire["messages"]
    return {
        "sides": sides(obs.get("scenario") or {}),
        "total": wire["total"],
        "upto": messages[-1]["seq"] if messages else -1,
        "messages": messages,
        "duration_ms": duration_ms(obs.get("status") or {}),
        # A seek longer than a tick sends frames from the middle of the replay: travel.js must
        # not take the frame that ends it for messages on the wire.
        "seeking": bool((obs.get("status") or {}).get("seeking")),
    }

"""A message-sequence diagram of the run so far, as server-rendered SVG.

Actors across (producers, then brokers, then the controller when it speaks), time down, one row
per event: a message (an event with both ends) is an arrow, a lost one is a dashed arrow that
stops half-way at a cross, and what happens inside an actor (an append, a crash) is a note on its
lifeline. Styling lives in CSS (classes), so light and dark themes both work.

Real Kafka clients (broker.wire) are actors named ``CLIENT_ID#N``, one per TCP connection; the
diagram draws each ``client.id`` as one column, marked "real client", at most
MAX_CLIENT_COLUMNS of them: the others share one column, "other real clients".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from html import escape
from typing import Any

COLUMN_W = 190  # the widest a column gets; narrower when the labels allow (column_width)
MIN_COLUMN_W = 120
CHAR_W = 7.5  # an average character of a 13 px label, in px
LEFT_W = 96
TOP_H = 44
ROW_H = 34
SLANT = 14

_IDS = re.compile(r"\[[^\]]*\]")
MAX_CLIENT_COLUMNS = 4
OTHER_CLIENTS = "other real clients"


def event_label(event: dict[str, Any]) -> str:
    kind: str = event["kind"]
    detail = event.get("detail") or ""
    where = f" @{event['offset']}" if event.get("offset") is not None else ""
    ids = _IDS.search(detail)
    ids_text = f" {ids.group(0)}" if ids else ""
    if kind == "produce.send":
        attempt = re.search(r"attempt (\d+)", detail)
        again = f" (attempt {attempt.group(1)})" if attempt and attempt.group(1) != "1" else ""
        return f"Produce{ids_text}{again}"
    if kind == "produce.ack":
        return f"ack{where}{ids_text}"
    if kind in ("net.drop-request", "net.drop-response"):
        api = detail.split(" ", 1)[0] if detail else "message"
        what = "request" if kind == "net.drop-request" else "response"
        return f"{api} {what} lost"
    if kind == "produce.append":
        return f"append{where}"
    if kind == "replica.truncate":
        return f"truncate{where}"
    if kind == "init-producer-id":
        return "InitProducerId"
    if kind in ("producer-id.assigned", "producer-id.received"):
        return detail or kind
    if kind == "txn.request":
        return detail.split(" ", 1)[0] if detail else "request"
    if kind == "txn.response":
        api = detail.split(" ", 1)[0] if detail else "response"
        return f"{api} {event.get('error') or 'ok'}"
    if kind == "txn.marker-request":
        marker = detail.split(" ")[1] if detail.count(" ") >= 1 else ""
        return f"WriteTxnMarkers {marker} {event.get('partition') or ''}".strip()
    if kind == "txn.marker-response":
        return f"marker written {event.get('error') or 'ok'}"
    if kind == "wire.request":
        return detail or "request"
    if kind == "wire.response":
        api = detail.split(" ", 1)[0] if detail else "response"
        return f"{api} {event.get('error') or 'ok'}{where}"
    if kind == "request.timeout":
        return "request timed out"
    if kind == "leader.elected":
        return detail.split(",")[0] if detail else "leader elected"
    return kind.replace(".", " ")


def client_columns(
    scenario: dict[str, Any], events: list[dict[str, Any]], clients: Iterable[str] = ()
) -> dict[str, str]:
    """Each real client's connection actor (``CLIENT_ID#N``) -> its column: the client.id, or
    OTHER_CLIENTS past MAX_CLIENT_COLUMNS. ``clients``: the client.ids the room knows; the
    events name the others (the sender of a ``wire.request``, the receiver of a
    ``wire.response``)."""
    known = set(clients)
    own = {p["name"] for p in scenario.get("producers", [])}
    own |= {c["name"] for c in scenario.get("consumers", [])}
    own |= {p["name"] for p in scenario.get("processors", [])}
    out: dict[str, str] = {}
    columns: list[str] = []
    for event in events:
        for name in (event.get("src"), event.get("dst"), event.get("actor")):
            if not name or name in out or "#" not in name:
                continue
            client_id = name.rpartition("#")[0]
            external = event["kind"] in ("wire.request", "wire.response") or client_id in known
            if not external or client_id in own:
                continue  # a simulated consumer's instance (billing#2) keeps its own column
            if client_id not in columns and len(columns) < MAX_CLIENT_COLUMNS:
                columns.append(client_id)
            out[name] = client_id if client_id in columns else OTHER_CLIENTS
    return out


def _as_columns(events: list[dict[str, Any]], columns: dict[str, str]) -> list[dict[str, Any]]:
    if not columns:
        return events
    keys = ("src", "dst", "actor")
    return [
        {**e, **{k: columns[e[k]] for k in keys if e.get(k) in columns}}
        if any(e.get(k) in columns for k in keys)
        else e
        for e in events
    ]


def _actors(scenario: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    actors = [p["name"] for p in scenario.get("producers", [])]
    actors += [f"broker-{b}" for b in scenario.get("brokers", [])]
    for event in events:
        for name in (event.get("src"), event.get("dst"), event.get("actor")):
            if name and name not in actors and name not in ("network", "script"):
                actors.append(name)
    return actors


def column_width(actors: list[str], events: list[dict[str, Any]]) -> int:
    """As narrow as the labels allow (so five actors fit beside the verdict), never wider than
    COLUMN_W: an arrow's label fits between its two ends, a note fits in its column."""
    index = {name: i for i, name in enumerate(actors)}
    need = float(MIN_COLUMN_W)
    for event in events:
        text_w = CHAR_W * len(event_label(event)) + 12
        src, dst = event.get("src"), event.get("dst")
        if src in index and dst in index and src != dst:
            span: float = abs(index[src] - index[dst])
            if event["kind"].startswith("net.drop"):
                span /= 2  # a lost message stops half-way
            need = max(need, text_w / span)
        else:
            need = max(need, text_w + 16)
    return min(COLUMN_W, int(need + 0.999))


def sequence_diagram(
    scenario: dict[str, Any], events: list[dict[str, Any]], clients: Iterable[str] = ()
) -> str:
    """``clients``: the real Kafka clients' client.ids the room knows (see client_columns)."""
    columns = client_columns(scenario, events, clients)
    events = _as_columns(events, columns)
    external = set(columns.values())
    actors = _actors(scenario, events)
    column_w = column_width(actors, events)
    x = {name: LEFT_W + column_w // 2 + i * column_w for i, name in enumerate(actors)}
    width = LEFT_W + column_w * len(actors)
    height = TOP_H + ROW_H * (len(events) + 1)
    parts = [
        f'<svg class="msd" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="Message sequence diagram: {len(events)} latest events">',
        '<defs><marker id="msd-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="msd-head"/></marker></defs>',
    ]
    for name, cx in x.items():
        parts.append(
            f'<line class="msd-life" x1="{cx}" y1="{TOP_H - 8}" x2="{cx}" y2="{height}"/>'
            f'<text class="msd-actor" x="{cx}" y="{TOP_H - 16}" text-anchor="middle">'
            f"{escape(name)}</text>"
        )
        if name in external:
            parts.append(
                f'<text class="msd-actor is-external" x="{cx}" y="{TOP_H - 32}" '
                'text-anchor="middle">real client</text>'
            )
    previous_time = None
    for i, event in enumerate(events):
        y = TOP_H + ROW_H * i + ROW_H // 2
        if event["time_ms"] != previous_time:
            parts.append(
                f'<text class="msd-time" x="{LEFT_W - 12}" y="{y + 5}" text-anchor="end">'
                f"{event['time_ms']} ms</text>"
            )
            previous_time = event["time_ms"]
        label = escape(event_label(event))
        # On the line or the box (the group's tag stays plain): travel.js marks the new ones.
        seq = event.get("seq", "")
        src, dst = event.get("src"), event.get("dst")
        if src in x and dst in x and src != dst:
            x1, x2 = x[src], x[dst]
            dropped = event["kind"].startswith("net.drop")
            error = bool(event.get("error"))
            css = "msd-msg is-dropped" if dropped else ("msd-msg is-error" if error else "msd-msg")
            if dropped:
                x2 = (x1 + x2) // 2
            mid = (x1 + x2) // 2
            parts.append(f'<g class="{css}">')
            parts.append(
                f'<line data-seq="{seq}" x1="{x1}" y1="{y - SLANT // 2}" x2="{x2}" '
                f'y2="{y + SLANT // 2}"'
                + ("" if dropped else ' marker-end="url(#msd-arrow)"')
                + "/>"
            )
            if dropped:
                cy = y + SLANT // 2
                parts.append(
                    f'<path class="msd-cross" d="M{x2 - 7},{cy - 7} L{x2 + 7},{cy + 7} '
                    f'M{x2 - 7},{cy + 7} L{x2 + 7},{cy - 7}"/>'
                )
            parts.append(
                f'<text x="{mid}" y="{y - SLANT // 2 - 4}" text-anchor="middle">{label}</text></g>'
            )
        else:
            actor = event.get("actor")
            if actor not in x:
                actor = src if src in x else dst
            if actor not in x:
                continue
            cx = x[actor]
            w = min(column_w - 16, int(12 + CHAR_W * len(label)))
            css = "msd-note is-error" if event.get("error") else "msd-note"
            if event["kind"] in ("broker.crash", "app.crash"):
                css = "msd-note is-crash"
            parts.append(
                f'<g class="{css}"><rect data-seq="{seq}" x="{cx - w // 2}" y="{y - 11}" '
                f'width="{w}" height="22" rx="4"/><text x="{cx}" y="{y + 5}" '
                f'text-anchor="middle">{label}</text></g>'
            )
    parts.append("</svg>")
    return "".join(parts)

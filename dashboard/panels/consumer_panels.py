"""Presenters for the consumer side: consumers, groups, the sink and ``__consumer_offsets``.

Pure functions from an observation (plain data) to a template context, like ``presenters``; None
when the engine has nothing for that panel (a scenario without consumers shows none of them).
"""

from __future__ import annotations

from typing import Any

from dashboard.panels.common import NOT_STARTED_ICON, dash, not_started
from dashboard.panels.presenters import decode_offsets_record, internal_log_panel, slug

SINK_ROWS_SHOWN = 30
# Cards for real Kafka clients' group memberships (a room may remember 256 client.ids in 16
# groups each): the current members first, then those that left; past this, only a count.
EXTERNAL_CONSUMERS_SHOWN = 12
OFFSETS_LOG_SHOWN = 16

# Group states of the classic protocol, each with a shape as well as a word.
GROUP_STATES = {
    "Stable": ("\u2714", "stable"),
    "PreparingRebalance": ("\u27f3", "rebalancing: waiting for members to rejoin"),
    "CompletingRebalance": ("\u27f3", "rebalancing: waiting for the leader's assignment"),
    "Empty": ("\u25cb", "empty: no members"),
    "Dead": ("\u2715", "dead"),
}
CONSUMER_STATES = {
    "stable": ("\u25cf", "consuming"),
    "joining": ("\u27f3", "joining the group"),
    "rebalancing": ("\u27f3", "rebalancing"),
    "syncing": ("\u27f3", "waiting for its assignment"),
    "stopped": ("\u25a0", "stopped"),
}


def _track(position: int | None, committed: int | None, high_watermark: int) -> dict[str, Any]:
    """Where the two pointers sit on a 0..HW scale (percent), for the mini track."""
    scale = max(high_watermark, position or 0, committed or 0, 1)

    def at(offset: int | None) -> float | None:
        return None if offset is None else round(100 * offset / scale, 1)

    return {"position": at(position), "committed": at(committed), "scale": scale}


def _pointers(p: dict[str, Any]) -> dict[str, Any]:
    """One assigned partition's row: position, committed offset, HW, lag, the mini track."""
    position, committed = p.get("position"), p.get("committed")
    hw = p.get("high_watermark") or 0
    return {
        "partition": p["partition"],
        "position": dash(position),
        "committed": dash(committed),
        "high_watermark": hw,
        "lag": None if position is None else max(0, hw - position),
        # Read but not committed: a crash now makes the group read these again.
        "uncommitted": (
            None if position is None or committed is None else max(0, position - committed)
        ),
        "track": _track(position, committed, hw),
    }


def external_consumers(obs: dict[str, Any]) -> list[dict[str, Any]]:
    """Real Kafka clients that joined a group (dashboard/live/wire_actors.py), one entry per
    client.id and group, as the consumers panel shows a simulated consumer: the member id it was
    given, the partitions the group's coordinator holds as its assignment, the group's committed
    offsets, and its position (the offset of its latest Fetch of that partition)."""
    clients = ((obs.get("room") or {}).get("kafka") or {}).get("producers") or []
    groups = {g["group"]: g for g in obs["snapshot"].get("groups") or []}
    watermarks = {}
    for partition in obs["snapshot"].get("partitions") or []:
        leader = next(
            (r for r in partition.get("replicas", []) if r["broker"] == partition.get("leader")),
            {},
        )
        watermarks[partition["name"]] = leader.get("high_watermark")
    out = []
    for client in clients:
        positions = client.get("positions") or {}
        for group_id, member_id in client.get("members") or []:
            group = groups.get(group_id) or {}
            member = next(
                (m for m in group.get("members", []) if m["member_id"] == member_id), None
            )
            offsets = group.get("offsets") or {}
            assigned = member.get("assignment", []) if member is not None else []
            connections = client.get("connections", 0)
            if member is None:
                icon, state = "\u25a0", "real client · not a member now"
            else:
                icon = GROUP_STATES.get(group.get("state", ""), ("\u25cf", ""))[0]
                state = f"real client · {connections} connection{'s' if connections != 1 else ''}"
            name = client["name"]
            pointers = [
                {
                    "partition": tp,
                    "position": positions.get(tp),
                    "committed": offsets.get(tp),
                    "high_watermark": watermarks.get(tp),
                }
                for tp in assigned
            ]
            out.append(
                {
                    "name": name,
                    "slug": slug(f"client-{name}-{group_id}"),
                    "instance": name,
                    "group": group_id,
                    "alive": member is not None,
                    "started": True,
                    "stalled": False,
                    "external": True,
                    "icon": icon,
                    "state": state,
                    "generation": dash(group.get("generation") if member is not None else None),
                    "member_id": member_id,
                    "strategy": group.get("protocol") or "",
                    "isolation_level": "",
                    "processing": 0,
                    "partitions": [_pointers(p) for p in pointers],
                    # for the lanes' cursors (lanes.lane_cursors), as a simulated consumer's
                    "cursors": {"instance": name, "partitions": pointers},
                }
            )
    out.sort(key=lambda c: not c["alive"])  # the current members first (a stable sort)
    return out


def consumers_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    consumers = obs["snapshot"].get("consumers") or []
    external = external_consumers(obs)
    if not consumers and not external:
        return None
    out = []
    for c in consumers:
        alive = c.get("alive", True)
        stalled = c.get("stalled", False)
        started = c.get("started", True)
        if not started:
            icon, state = NOT_STARTED_ICON, not_started(obs, "consumers", c["name"])
        elif not alive:
            icon, state = "\u2715", "crashed" if c.get("state") != "stopped" else "stopped"
        elif stalled:
            icon, state = "\u23f8", "stalled: no polls, no heartbeats"
        else:
            icon, state = CONSUMER_STATES.get(c.get("state", ""), ("\u25cf", c.get("state", "")))
        partitions = [_pointers(p) for p in c.get("partitions", [])]
        out.append(
            {
                "name": c["name"],
                "slug": slug(c["name"]),
                "instance": c.get("instance") or c["name"],
                "group": c.get("group", ""),
                "alive": alive,
                "started": started,
                "stalled": stalled,
                "icon": icon,
                "state": state,
                "generation": dash(c.get("generation")),
                "member_id": dash(c.get("member_id")),
                "strategy": c.get("strategy", ""),
                "isolation_level": c.get("isolation_level", ""),
                "processing": c.get("processing", 0),
                "partitions": partitions,
            }
        )
    shown = external[:EXTERNAL_CONSUMERS_SHOWN]
    return {"consumers": out + shown, "more_external": len(external) - len(shown)}


def groups_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    groups = obs["snapshot"].get("groups")
    if not groups:
        return None
    clients = ((obs.get("room") or {}).get("kafka") or {}).get("producers") or []
    # (client.id, member id) of every group member a real Kafka client was given
    external = {(c["name"], member) for c in clients for _g, member in c.get("members") or []}
    out = []
    for g in groups:
        icon, meaning = GROUP_STATES.get(g.get("state", ""), ("\u25cf", g.get("state", "")))
        leader = g.get("leader")
        out.append(
            {
                "group": g["group"],
                "coordinator": g.get("coordinator"),
                "partition": g.get("partition", ""),
                "state": g.get("state", ""),
                "state_icon": icon,
                "state_meaning": meaning,
                "generation": dash(g.get("generation")),
                "protocol": g.get("protocol") or "\u2014",
                "leader": dash(leader),
                "members": [
                    {
                        "member_id": m["member_id"],
                        "client_id": m.get("client_id", ""),
                        "assignment": m.get("assignment", []),
                        "leader": m["member_id"] == leader,
                        # a real Kafka client's member: marked so (a simulated one has no key)
                        **(
                            {"external": True}
                            if (m.get("client_id", ""), m["member_id"]) in external
                            else {}
                        ),
                    }
                    for m in g.get("members", [])
                ],
                "offsets": sorted((g.get("offsets") or {}).items()),
            }
        )
    return {"groups": out}


def sink_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    sink = obs["snapshot"].get("sink")
    if not sink:
        return None
    rows = sink.get("rows", [])
    copies: dict[str, int] = {}
    for row in rows:
        copies[row["message_id"]] = copies.get(row["message_id"], 0) + 1
    seen: dict[str, int] = {}
    shown = []
    for row in rows:
        message_id = row["message_id"]
        seen[message_id] = seen.get(message_id, 0) + 1
        shown.append(
            {
                **row,
                "copy": seen[message_id],
                "copies": copies[message_id],
                "duplicate": seen[message_id] > 1,
            }
        )
    count = sink.get("row_count", len(rows))
    shown = shown[-SINK_ROWS_SHOWN:]
    return {
        "name": sink.get("name", "sink"),
        "rows": shown,
        "row_count": count,
        "hidden_rows": max(0, count - len(shown)),
        "duplicated_messages": sum(1 for n in copies.values() if n > 1),
        "offsets": sink.get("offsets", []),
        "rollbacks": sink.get("rollbacks", 0),
    }


def offsets_log_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """``__consumer_offsets`` read as a log: each record's key and its decoded value."""
    return internal_log_panel(obs, "__consumer_offsets", decode_offsets_record, OFFSETS_LOG_SHOWN)

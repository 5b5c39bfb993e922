"""Partition lanes: the newest LANE_WINDOW cells of each leader log, the header with replicas and
ISR, cursors (log start, LSO, HW, LEO, followers, consumers), truncated ghosts, and what the
isolation toggle says each level returns."""

from __future__ import annotations

from typing import Any

from dashboard.panels.cells import isolation_reads, leader_log, render_cell
from dashboard.panels.common import LANE_WINDOW, ghost_id, slug
from dashboard.panels.internal import INTERNAL_DECODERS

# Lanes for the partitions of topics created while the run goes on (by real Kafka clients:
# auto-creation or CreateTopics; dashboard/live/wire.py). A room may hold 64 such topics of up to
# 64 partitions each (broker.wire.topics.TopicDefaults); past this many partitions, the rest get
# no lane (the page would be too long to read and too costly to send) and are named instead.
MAX_CREATED_LANES = 12


def lane_columns(partition: dict[str, Any], start: int) -> str:
    """The lane's grid columns from ``start`` on: narrow ones where a marker takes an offset.

    The cells size themselves; cursors and ghosts line up with them through this template.
    """
    markers = {r["offset"] for r in partition.get("records", []) if r.get("control")}
    widths = [
        "var(--marker-w)" if offset in markers else "var(--cell-w)"
        for offset in range(start, start + LANE_WINDOW + 1)
    ]
    runs: list[list[Any]] = []
    for width in widths:
        if runs and runs[-1][0] == width:
            runs[-1][1] += 1
        else:
            runs.append([width, 1])
    return " ".join(w if n == 1 else f"repeat({n}, {w})" for w, n in runs)


def lane_header(partition: dict[str, Any]) -> dict[str, Any]:
    replicas = []
    for replica in partition.get("replicas", []):
        broker = replica["broker"]
        replicas.append(
            {
                "broker": broker,
                "role": replica.get("role", ""),
                "leo": replica.get("log_end_offset"),
                "hw": replica.get("high_watermark"),
                "in_isr": broker in partition.get("isr", []),
                "leader": broker == partition.get("leader"),
            }
        )
    return {
        "name": partition["name"],
        "slug": slug(partition["name"]),
        "leader": partition.get("leader"),
        "leader_epoch": partition.get("leader_epoch"),
        "isr": partition.get("isr", []),
        "replicas": replicas,
    }


def lane_cells(
    partition: dict[str, Any],
    duplicates: dict[str, list[int]] | None = None,
    cache: dict[tuple[Any, ...], str] | None = None,
) -> tuple[int, dict[int, str]]:
    """(first offset shown, {offset: cell html}) for the latest LANE_WINDOW records.

    ``cache`` (the previous tick's cells, by what they show) saves rendering unchanged cells.
    """
    records = partition.get("records", [])[-LANE_WINDOW:]
    log = leader_log(partition)
    hw = log.get("high_watermark", 0)
    name = partition["name"]
    key = slug(name)
    copies: dict[str, set[int]] = {}
    for record in records:
        copies.setdefault(record["message_id"], set()).add(record["offset"])
    for message_id, offsets in (duplicates or {}).items():
        if message_id in copies:
            copies[message_id].update(offsets)
    cells = {}
    used: dict[tuple[Any, ...], str] = {}
    decode = INTERNAL_DECODERS.get(name.rpartition("-")[0])
    reads = isolation_reads(partition)
    committed_reads = set(reads["read_committed"])
    uncommitted_reads = set(reads["read_uncommitted"])
    for record in records:
        offset = record["offset"]
        ordered = sorted(copies[record["message_id"]])
        copy_number = ordered.index(offset) + 1 if len(ordered) > 1 else 1
        returned = (offset in committed_reads, offset in uncommitted_reads)
        what = (
            offset,
            record["message_id"],
            record.get("producer_epoch"),
            record.get("sequence"),
            offset < hw,
            copy_number,
            len(ordered),
            record.get("control"),
            record.get("txn"),
            returned,
        )
        html = cache.get(what) if cache is not None else None
        if html is None:
            if decode is not None:  # JSON values, decoded for people
                decoded = decode(record.get("key"), record.get("value"))
                record = {**record, "value": decoded["text"]}
            html = render_cell(key, record, offset < hw, copy_number, len(ordered), returned)
        used[what] = html
        cells[offset] = html
    if cache is not None:
        cache.clear()
        cache.update(used)
    start = records[0]["offset"] if records else log.get("log_end_offset", 0)
    return start, cells


def _ranges(offsets: list[int]) -> str:
    """[0, 1, 2, 4, 5] -> "0\u20132, 4, 5"."""
    parts: list[str] = []
    run: list[int] = []
    for offset in offsets:
        if run and offset != run[-1] + 1:
            parts.append(_run_text(run))
            run = []
        run.append(offset)
    if run:
        parts.append(_run_text(run))
    return ", ".join(parts)


def _run_text(run: list[int]) -> str:
    if len(run) > 2:
        return f"{run[0]}\u2013{run[-1]}"
    return ", ".join(str(o) for o in run)


def lane_reads(partition: dict[str, Any]) -> dict[str, Any]:
    """What each isolation level would return from this lane, in words (for the toggle)."""
    log = leader_log(partition)
    reads = isolation_reads(partition)
    hw = log.get("high_watermark", 0)
    lso = log.get("last_stable_offset", hw)
    records = partition.get("records", [])
    markers = [r["offset"] for r in records if r.get("control")]
    returned = set(reads["read_committed"])
    aborted_offsets = [
        r["offset"]
        for r in records
        if not r.get("control") and r["offset"] < lso and r["offset"] not in returned
    ]
    held = [r["offset"] for r in records if not r.get("control") and lso <= r["offset"] < hw]

    def said(offsets: list[int]) -> str:
        return _ranges(offsets) if offsets else "nothing"

    committed = f"returns {said(reads['read_committed'])}; stops at the LSO ({lso})"
    if aborted_offsets:
        committed += f"; skips aborted {_ranges(aborted_offsets)}"
    if held:
        committed += f"; {_ranges(held)} wait for their transaction to end"
    uncommitted = f"returns {said(reads['read_uncommitted'])}; reads up to the HW ({hw})"
    if any(r.get("txn") == "aborted" for r in records):
        uncommitted += ", aborted data included"
    hidden = f"; markers {_ranges(markers)} are never returned" if markers else ""
    return {
        "slug": slug(partition["name"]),
        "read_committed": committed + hidden,
        "read_uncommitted": uncommitted + hidden,
        "transactional": bool(markers or any(r.get("transactional") for r in records) or lso != hw),
    }


def lane_cursors(
    partition: dict[str, Any], start: int, consumers: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Cursor marks under the lane, grouped by column (offset - start), in a fixed order."""
    log = leader_log(partition)
    columns: dict[int, list[dict[str, str]]] = {}
    last_column = LANE_WINDOW + 1

    def put(offset: int | None, label: str, kind: str, title: str) -> None:
        if offset is None:
            return
        column = offset - start + 1
        arrow = ""
        if column < 1:
            column, arrow = 1, "\u2190 "
        elif column > last_column:
            column, arrow = last_column, "\u2192 "
        columns.setdefault(column, []).append(
            {"label": f"{arrow}{label}", "kind": kind, "title": f"{title}: offset {offset}"}
        )

    transactional = log.get("last_stable_offset") != log.get("high_watermark") or any(
        r.get("transactional") for r in partition.get("records", [])
    )
    if log:
        put(log.get("log_start_offset"), "start", "start", "log start offset")
        if transactional:
            put(log.get("last_stable_offset"), "LSO", "lso", "last stable offset")
        put(log.get("high_watermark"), "HW", "hw", "high watermark")
        put(log.get("log_end_offset"), "LEO", "leo", "log end offset")
    for replica in partition.get("replicas", []):
        if replica["broker"] == partition.get("leader"):
            continue
        put(
            replica.get("log_end_offset"),
            f"b{replica['broker']}",
            "follower",
            f"broker-{replica['broker']} log end offset",
        )
    for consumer in consumers or []:
        for assigned in consumer.get("partitions", []):
            if assigned.get("partition") != partition["name"]:
                continue
            who = consumer.get("instance") or consumer.get("name", "consumer")
            put(
                assigned.get("committed"),
                f"\u25bd {who} committed",
                "committed",
                f"{who} committed offset (next to read after a restart)",
            )
            put(
                assigned.get("position"),
                f"\u25bc {who} position",
                "position",
                f"{who} position (next to read)",
            )
    return {
        "slug": slug(partition["name"]),
        "marks": [{"column": c, "items": items} for c, items in sorted(columns.items())],
        "offline": partition.get("leader") is None,
        "columns": lane_columns(partition, start),
    }


def lane_ghosts(
    partition: str, ghosts: list[dict[str, Any]], start: int, columns: str = ""
) -> dict[str, Any]:
    shown = [
        {
            **g,
            "column": g["offset"] - start + 1,
            "id": ghost_id(partition, g["offset"], g["message_id"]),
        }
        for g in ghosts
        if start <= g["offset"] <= start + LANE_WINDOW
    ]
    return {"slug": slug(partition), "ghosts": shown, "columns": columns}


def duplicates_by_partition(obs: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    out: dict[str, dict[str, list[int]]] = {}
    for anomaly in (obs.get("verdict") or {}).get("anomalies", []):
        if (
            anomaly["kind"] == "duplicate"
            and anomaly.get("partition")
            and anomaly.get("where", "log") == "log"
        ):
            out.setdefault(anomaly["partition"], {})[anomaly["message_id"]] = anomaly["offsets"]
    return out


def lane_partitions(
    partitions: list[dict[str, Any]], declared: list[str]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The partitions that get a lane, in page order, and the names of those left without one.

    First the scenario's (``declared``), then those of topics created while the run went on
    (by name, at most MAX_CREATED_LANES), then the internal topics (``__consumer_offsets``,
    ``__transaction_state``), which the engine lays out whenever groups or transactions are used.
    """
    known = set(declared)
    own, created, internal = [], [], []
    for partition in partitions:
        name = partition["name"]
        if name in known:
            own.append(partition)
        elif name.startswith("__"):
            internal.append(partition)
        else:
            created.append(partition)
    shown = created[:MAX_CREATED_LANES]
    return own + shown + internal, [p["name"] for p in created[MAX_CREATED_LANES:]]


def unlaned_note(names: list[str]) -> str:
    """What the page says of the partitions past MAX_CREATED_LANES ("" when there are none)."""
    if not names:
        return ""
    topics = list(dict.fromkeys(name.rpartition("-")[0] for name in names))
    listed = ", ".join(topics[:8]) + (f" and {len(topics) - 8} more" if len(topics) > 8 else "")
    count = len(names)
    return (
        f"{count} more partition{'s' if count != 1 else ''} of topics created while the run "
        f"goes on ({listed}) {'have' if count != 1 else 'has'} no lane: the page draws "
        f"{MAX_CREATED_LANES} of them at most."
    )

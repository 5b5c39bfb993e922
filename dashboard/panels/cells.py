"""Lane cells: one record (or transaction marker) as HTML, and which offsets each isolation
level would return. Rendered as strings: a lane has many cells and each is diffed on its own."""

from __future__ import annotations

from html import escape
from typing import Any

from dashboard.panels.common import slug


def leader_log(partition: dict[str, Any]) -> dict[str, Any]:
    for replica in partition.get("replicas", []):
        if replica["broker"] == partition.get("leader"):
            return replica
    return {}


def _badge(record: dict[str, Any]) -> str:
    pid = record.get("producer_id", -1)
    if pid is None or pid < 0:
        return "no PID"
    return (
        f"PID {pid} \u00b7 e{record.get('producer_epoch', 0)} \u00b7 s{record.get('sequence', -1)}"
    )


def window_cells(partition: str, window: dict[str, Any]) -> list[str]:
    """The cells of a "jump to offset" window (``Simulation.read_records``), marked like the
    live lane's for the isolation toggle: which of them each isolation level would return."""
    leader = window.get("leader")
    as_partition = {
        "name": partition,
        "leader": leader,
        "replicas": [
            {
                "broker": leader,
                "high_watermark": window["high_watermark"],
                "last_stable_offset": window.get("last_stable_offset", window["high_watermark"]),
            }
        ],
        "records": window["records"],
    }
    reads = isolation_reads(as_partition)
    committed_reads = set(reads["read_committed"])
    uncommitted_reads = set(reads["read_uncommitted"])
    return [
        render_cell(
            f"x{slug(partition)}",
            r,
            r["offset"] < window["high_watermark"],
            returned=(r["offset"] in committed_reads, r["offset"] in uncommitted_reads),
        )
        for r in window["records"]
    ]


def render_cell(
    lane_slug: str,
    record: dict[str, Any],
    committed: bool,
    copy_number: int = 1,
    copies: int = 1,
    returned: tuple[bool, bool] | None = None,
) -> str:
    """One record as a lane cell; ``returned`` = (read_committed, read_uncommitted) returns it."""
    offset = record["offset"]
    reads = ""
    if returned is not None:
        rc, ru = ("1" if r else "0" for r in returned)
        reads = f' data-rc="{rc}" data-ru="{ru}"'
    control = record.get("control")
    if control:
        return _marker_cell(lane_slug, record, committed, reads)
    txn = record.get("txn")
    state = "committed" if committed else "uncommitted"
    state_label = "committed" if committed else "above HW"
    if txn == "open":
        state, state_label = "open-txn", "open txn"
    elif txn == "aborted":
        state, state_label = "aborted", "aborted"
    elif txn == "committed" and committed:
        state_label = "txn committed"
    key = record.get("key")
    value = record.get("value")
    message_id = record["message_id"]
    classes = f"cell is-{state}"
    if record.get("transactional"):
        classes += " is-transactional"
    dup = ""
    aria_dup = ""
    if copy_number > 1:
        classes += " is-duplicate"
        title = f"copy {copy_number} of {escape(message_id)}"
        dup = f'<span class="cell-dup" title="{title}">\u00d7{copy_number}</span>'
        aria_dup = f", copy {copy_number} of {copies}"
    elif copies > 1:
        classes += " has-duplicate"
        dup = '<span class="cell-dup is-first" title="first copy">1st</span>'
    label = f"offset {offset}, {key or 'no key'}, message {message_id}, {state_label}{aria_dup}"
    if txn == "open":
        label += " (in an open transaction: read_committed readers wait for it)"
    elif txn == "aborted":
        label += " (its transaction aborted: read_committed readers skip it)"
    key_html = escape(key) if key else "\u2205"
    value_html = escape(str(value)) if value is not None else ""
    return (
        f'<li id="c-{lane_slug}-{offset}" class="{classes}" data-msg="{escape(message_id)}" '
        f'data-offset="{offset}"{reads} aria-label="{escape(label)}">'
        f'<span class="cell-offset">{offset}</span>{dup}'
        f'<span class="cell-key">{key_html}</span>'
        f'<span class="cell-value">{value_html}</span>'
        f'<span class="cell-badge">{escape(_badge(record))}</span>'
        f'<span class="cell-state">{state_label}</span></li>'
    )


MARKER_LETTERS = {"COMMIT": "C", "ABORT": "A"}


def _marker_cell(lane_slug: str, record: dict[str, Any], committed: bool, reads: str) -> str:
    """A COMMIT/ABORT marker: a narrow cell, labelled C or A, that takes an offset of its own."""
    offset = record["offset"]
    control = str(record["control"])
    letter = MARKER_LETTERS.get(control, control[:1])
    pid = record.get("producer_id", -1)
    whose = f"PID {pid} epoch {record.get('producer_epoch', 0)}"
    label = (
        f"offset {offset}, {control} marker for {whose}"
        f"{'' if committed else ', above HW'}: readers never get it, but it takes an offset"
    )
    classes = f"cell is-marker is-marker-{control.lower()}"
    if not committed:
        classes += " is-above-hw"
    message_id = escape(record["message_id"])
    return (
        f'<li id="c-{lane_slug}-{offset}" class="{classes}" data-msg="{message_id}" '
        f'data-offset="{offset}" data-control="{escape(control)}"{reads} '
        f'aria-label="{escape(label)}" title="{escape(label)}">'
        f'<span class="cell-offset">{offset}</span>'
        f'<span class="marker-letter" aria-hidden="true">{escape(letter)}</span>'
        f'<span class="cell-state">{escape(control)}</span></li>'
    )


def isolation_reads(partition: dict[str, Any]) -> dict[str, list[int]]:
    """The offsets a fetch returns under each isolation level, from the leader's log.

    read_uncommitted: every data record below the high watermark (aborted data included).
    read_committed: data records below the last stable offset, minus the aborted transactions
    of the log's aborted-transaction index (the consumer skips those PIDs' ranges).
    Control records (COMMIT/ABORT markers) are never returned to either.
    """
    log = leader_log(partition)
    hw = log.get("high_watermark", 0)
    lso = log.get("last_stable_offset", hw)
    aborted = [tuple(a) for a in log.get("aborted_transactions") or []]

    def is_aborted(record: dict[str, Any]) -> bool:
        if record.get("txn") == "aborted":
            return True
        pid, offset = record.get("producer_id"), record["offset"]
        return any(p == pid and first <= offset <= last for p, first, last in aborted)

    committed, uncommitted = [], []
    for record in partition.get("records", []):
        if record.get("control"):
            continue
        offset = record["offset"]
        if offset < hw:
            uncommitted.append(offset)
        if offset < lso and not is_aborted(record):
            committed.append(offset)
    return {"read_committed": committed, "read_uncommitted": uncommitted}

"""Internal topics read for people: ``__consumer_offsets`` and ``__transaction_state`` records
decoded, a transactional producer's client state, and an internal topic shown as a log."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dashboard.panels.common import slug


def decode_offsets_record(key: str | None, value: Any) -> dict[str, str]:
    """A ``__consumer_offsets`` record, decoded: {"kind", "group", "text"}."""
    parts = (key or "").split("/")
    kind = parts[0] if parts else ""
    group = parts[1] if len(parts) > 1 else ""
    if value is None:
        return {"kind": "tombstone", "group": group, "text": f"tombstone: {key} deleted"}
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {"kind": kind or "?", "group": group, "text": str(value)}
    if not isinstance(data, dict):
        return {"kind": kind or "?", "group": group, "text": str(value)}
    if kind == "offset":
        partition = data.get("partition") or (parts[2] if len(parts) > 2 else "?")
        text = f"commit {partition} \u2192 next {data.get('offset')}"
        if data.get("generation") is not None:
            text += f" (generation {data['generation']}"
            text += f", {data['member_id']})" if data.get("member_id") else ")"
        return {"kind": "offset", "group": data.get("group", group), "text": text}
    if kind == "group":
        members = "; ".join(
            f"{m.get('member_id')} [{', '.join(m.get('assignment', []))}]"
            for m in data.get("members", [])
        )
        leader = data.get("leader") or "\u2014"
        text = (
            f"generation {data.get('generation')}, {data.get('protocol') or 'no protocol'}, "
            f"leader {leader}; members: {members or 'none'}"
        )
        return {"kind": "group", "group": data.get("group", group), "text": text}
    return {"kind": kind or "?", "group": group, "text": json.dumps(data, sort_keys=True)}


TXN_STATE_WORDS = {
    "Empty": "no transaction yet",
    "Ongoing": "transaction open",
    "PrepareCommit": "committing: writing COMMIT markers",
    "PrepareAbort": "aborting: writing ABORT markers",
    "CompleteCommit": "committed",
    "CompleteAbort": "aborted",
    "PrepareEpochFence": "fencing an older instance",
    "Dead": "expired",
}


# The producer client's TransactionManager states.
CLIENT_TXN_STATES = {
    "UNINITIALIZED": ("\u25cb", "not initialised yet"),
    "INITIALIZING": ("\u27f3", "initTransactions: fetching its PID and epoch"),
    "READY": ("\u25cf", "ready: no transaction open"),
    "IN_TRANSACTION": ("\u29d7", "in a transaction"),
    "COMMITTING_TRANSACTION": ("\u23f3", "committing"),
    "ABORTING_TRANSACTION": ("\u23f3", "aborting"),
    "ABORTABLE_ERROR": ("\u26a0", "error: it can only abort"),
    "FATAL_ERROR": ("\u2715", "fatal: fenced, it must close"),
}


def client_txn_state(state: str | None, error: str | None = None) -> dict[str, str] | None:
    """A producer's client transaction state with its icon and meaning (None: not transactional).
    ``error`` (the snapshot's ``transaction_error``) names what put it in ABORTABLE_ERROR or
    FATAL_ERROR: a zombie shows INVALID_PRODUCER_EPOCH, then PRODUCER_FENCED."""
    if not state:
        return None
    icon, meaning = CLIENT_TXN_STATES.get(state, ("\u25cf", state.lower().replace("_", " ")))
    if error:
        meaning = f"{meaning} ({error})"
    return {"state": state, "icon": icon, "meaning": meaning, "css": state.lower()}


def decode_txn_state_record(key: str | None, value: Any) -> dict[str, str]:
    """A ``__transaction_state`` record, decoded: {"kind", "group", "text"}.

    "group" holds the transactional.id (the same shape as ``decode_offsets_record``).
    """
    txn_id = (key or "").partition("/")[2] or (key or "")
    if value is None:
        return {"kind": "tombstone", "group": txn_id, "text": f"tombstone: {key} deleted"}
    try:
        data = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return {"kind": "?", "group": txn_id, "text": str(value)}
    if not isinstance(data, dict):
        return {"kind": "?", "group": txn_id, "text": str(value)}
    state = str(data.get("state", "?"))
    partitions = ", ".join(data.get("partitions") or []) or "no partitions"
    text = (
        f"{data.get('transactional_id', txn_id)}: {state} "
        f"(PID {data.get('producer_id')} epoch {data.get('producer_epoch')}; {partitions}"
    )
    if isinstance(data.get("start_ms"), int) and data["start_ms"] >= 0:
        text += f"; started at {data['start_ms']} ms"
    text += ")"
    return {"kind": state, "group": str(data.get("transactional_id", txn_id)), "text": text}


# Internal topics whose record values are JSON, decoded on their lanes.
INTERNAL_DECODERS = {
    "__consumer_offsets": decode_offsets_record,
    "__transaction_state": decode_txn_state_record,
}


def internal_log_panel(
    obs: dict[str, Any],
    topic: str,
    decode: Callable[[str | None, str | None], dict[str, Any]],
    shown: int,
) -> dict[str, Any] | None:
    """An internal topic (``__consumer_offsets``, ``__transaction_state``) read as a log: its
    newest ``shown`` records per partition, each key with its decoded value."""
    logs = []
    for partition in obs["snapshot"].get("partitions", []):
        if not partition["name"].startswith(topic):
            continue
        records = partition.get("records", [])
        logs.append(
            {
                "name": partition["name"],
                "slug": slug(partition["name"]),
                "records": [
                    {
                        "offset": r["offset"],
                        "key": r.get("key") or "\u2205",
                        **decode(r.get("key"), r.get("value")),
                    }
                    for r in records[-shown:]
                ],
                "hidden": max(0, len(records) - shown),
            }
        )
    return {"logs": logs} if logs else None

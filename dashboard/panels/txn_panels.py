"""Presenters for transactions: coordinators, processors and ``__transaction_state``.

Pure functions from an observation (plain data) to a template context, like ``presenters`` and
``consumer_panels``; None when the engine has nothing for that panel (a scenario without
transactions shows none of them).
"""

from __future__ import annotations

from typing import Any

from dashboard.panels.common import NOT_STARTED_ICON, dash, not_started
from dashboard.panels.presenters import (
    TXN_STATE_WORDS,
    client_txn_state,
    decode_txn_state_record,
    internal_log_panel,
    slug,
)

TXN_LOG_SHOWN = 16

# The coordinator's states (Kafka's TransactionState), each with a shape as well as a word.
TXN_STATE_ICONS = {
    "Empty": "\u25cb",
    "Ongoing": "\u29d7",
    "PrepareCommit": "\u23f3",
    "PrepareAbort": "\u23f3",
    "CompleteCommit": "\u2714",
    "CompleteAbort": "\u2715",
    "PrepareEpochFence": "\u26d4",
    "Dead": "\u2020",
}


def transactions_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """Each transactional.id as its coordinator sees it."""
    transactions = obs["snapshot"].get("transactions")
    if not transactions:
        return None
    out = []
    for t in transactions:
        state = t.get("state", "")
        pending = t.get("pending")
        out.append(
            {
                "transactional_id": t["transactional_id"],
                "slug": slug(t["transactional_id"]),
                "coordinator": dash(t.get("coordinator")),
                "pid": dash(t.get("producer_id")),
                "epoch": dash(t.get("producer_epoch")),
                "state": state,
                "state_icon": TXN_STATE_ICONS.get(state, "\u25cf"),
                "state_meaning": TXN_STATE_WORDS.get(state, state),
                "pending": pending,
                "pending_meaning": TXN_STATE_WORDS.get(pending, pending) if pending else "",
                "partitions": list(t.get("partitions") or []),
                "timeout_s": f"{int(t.get('timeout_ms', 0)) / 1000:g} s",
            }
        )
    return {"transactions": out}


def processors_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """Read-process-write processors: instance, group, topics and their transaction."""
    processors = obs["snapshot"].get("processors")
    if not processors:
        return None
    out = []
    for p in processors:
        alive = p.get("alive", True)
        fenced = p.get("fenced", False)
        started = p.get("started", True)
        if not started:
            icon, state = NOT_STARTED_ICON, not_started(obs, "processors", p["name"])
        elif fenced:
            icon, state = "\u26d4", "fenced: a newer instance took its transactional.id"
        elif not alive:
            icon, state = "\u2715", "crashed"
        else:
            icon, state = "\u25cf", "running"
        out.append(
            {
                "name": p["name"],
                "slug": slug(p["name"]),
                "instance": p.get("instance") or p["name"],
                "alive": alive,
                "started": started,
                "fenced": fenced,
                "icon": icon,
                "state": state,
                "group": p.get("group", ""),
                "inputs": ", ".join(p.get("inputs") or []),
                "output": p.get("output", ""),
                "transactional_id": dash(p.get("transactional_id")),
                "client_txn": client_txn_state(
                    p.get("transaction_state"), p.get("transaction_error")
                ),
                "in_transaction": p.get("in_transaction", 0),
            }
        )
    return {"processors": out}


def txn_log_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    """``__transaction_state`` read as a log: each record's key and its decoded value."""
    return internal_log_panel(obs, "__transaction_state", decode_txn_state_record, TXN_LOG_SHOWN)

"""The verdict panel: what the chosen semantics promises against what happened, the counts (each
with one meaning), the anomalies (each a button that highlights its records), and, second, what
the scenario's author expected."""

from __future__ import annotations

import re
from typing import Any

from dashboard.panels.common import slug

OUTCOME_LABELS = {
    "produced": "produced",
    "acknowledged": "acknowledged",
    "failed": "failed",
    "in_log": "in log",
    "in_flight": "in flight",
    "processed": "processed",
    "sunk": "in the sink",
    "lost": "lost",
    "duplicated": "duplicated",
    "reordered": "reordered",
    "unseen": "unseen (never read)",
    "reprocessed": "reprocessed",
    "duplicated_in_sink": "duplicated in sink",
    "poll_skips": "poll skips",
    "nonmonotonic_polls": "polls going back",
    "aborted": "aborted (never committed)",
    "aborted_reads": "aborted reads",
}
# Shown as soon as the scenario has consumers (or a sink), even while zero.
CONSUMER_OUTCOMES = ("processed", "unseen", "reprocessed")
SINK_OUTCOMES = ("sunk", "duplicated_in_sink")
TXN_OUTCOMES = ("aborted", "aborted_reads")
NUMBER_WORDS = {2: "twice", 3: "three times", 4: "four times"}
ROW_WORDS = {2: "two", 3: "three", 4: "four"}
# Shown first and big; the anomaly counts follow.
HEADLINE_OUTCOMES = ("produced", "acknowledged", "in_log", "in_flight", "processed", "sunk")
ALWAYS_SHOWN = ("produced", "acknowledged", "in_log", "lost", "duplicated", "reordered")


def where_label(anomaly: dict[str, Any]) -> str:
    """Where an anomaly happened, in words ("processed twice", "two rows in the sink")."""
    kind, where = anomaly["kind"], anomaly.get("where", "log")
    if kind == "aborted-read":
        return "acted on aborted data"
    if where == "pipeline":
        return "output committed twice" if kind == "duplicate" else "output never committed"
    if kind == "duplicate" and where == "processing":
        times = len(anomaly.get("offsets", [])) or 2
        return f"processed {NUMBER_WORDS.get(times, f'{times} times')}"
    if kind == "duplicate" and where == "sink":
        found = re.match(r"(\d+) rows", anomaly.get("explanation", ""))
        rows = int(found.group(1)) if found else 2
        return f"{ROW_WORDS.get(rows, rows)} rows in the sink"
    if kind == "duplicate":
        copies = len(anomaly.get("offsets", [])) or 2
        return f"{ROW_WORDS.get(copies, copies)} copies in the log"
    if kind == "lost" and where == "processing":
        return "never processed"
    if kind == "unseen":
        return "never read"
    if kind == "lost":
        return "not in the log"
    if kind == "reordered":
        return "out of order in the log"
    if kind == "poll-skip":
        return "skipped by a poll"
    if kind == "nonmonotonic-poll":
        return "read going backwards"
    return kind.replace("-", " ")


def _judgement(anomaly: dict[str, Any], semantics: str) -> str:
    if anomaly.get("in_flight"):
        return "still in flight: not judged yet"
    if anomaly["allowed"]:
        return f"expected under {semantics}"
    return f"a failure under {semantics}"


# A run with a large backlog in flight can hold 100,000 anomalies at once: the panel lists the
# first ones (each a button that highlights cells) and counts the rest.
ANOMALIES_SHOWN = 100
# The rows of the last anomaly list seen: while a run plays, the runtime hands the same list
# again until the verdict is recomputed, so the rows are built once per verdict, not per frame.
_rows_cache: tuple[list[Any], str, list[dict[str, Any]], int] | None = None


def _anomaly_rows(raw: list[dict[str, Any]], semantics: str) -> tuple[list[dict[str, Any]], int]:
    """The panel's rows for the first ANOMALIES_SHOWN anomalies, and how many of all the
    anomalies are still in flight."""
    global _rows_cache
    cached = _rows_cache
    if cached is not None and cached[0] is raw and cached[1] == semantics:
        return cached[2], cached[3]
    in_flight = sum(1 for anomaly in raw if anomaly.get("in_flight"))
    rows = []
    for anomaly in raw[:ANOMALIES_SHOWN]:
        partition = anomaly.get("partition")
        offsets = list(dict.fromkeys(anomaly.get("offsets", [])))
        cells = [f"c-{slug(partition)}-{o}" for o in offsets] if partition else []
        where = ", ".join(f"{partition}@{o}" for o in offsets) if partition else "no offset"
        rows.append(
            {
                "kind": anomaly["kind"],
                "kind_label": anomaly["kind"].replace("-", " "),
                "message_id": anomaly["message_id"],
                "where": where,
                "happened": where_label(anomaly),
                "cells": " ".join(cells),
                "judgement": _judgement(anomaly, semantics),
                "failure": not anomaly["allowed"] and not anomaly.get("in_flight"),
                "in_flight": bool(anomaly.get("in_flight")),
                "explanation": anomaly.get("explanation", ""),
            }
        )
    _rows_cache = (raw, semantics, rows, in_flight)
    return rows, in_flight


def verdict_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    verdict = obs.get("verdict")
    if verdict is None:
        return None
    outcome = dict(verdict.get("outcome", {}))
    semantics = verdict.get("semantics", obs["scenario"]["semantics"])
    provisional = bool(verdict.get("provisional"))
    anomalies, in_flight = _anomaly_rows(verdict.get("anomalies", []), semantics)
    if in_flight and "lost" in outcome:
        # Mid-run, a message not yet acknowledged nor failed is travelling, not lost.
        outcome["lost"] -= in_flight
        outcome["in_flight"] = in_flight
    expected = verdict.get("expected", {})

    always = ALWAYS_SHOWN
    if obs["scenario"].get("consumers"):
        always += CONSUMER_OUTCOMES
    if obs["scenario"].get("sink"):
        always += SINK_OUTCOMES
    if obs["scenario"].get("transactional"):
        always += TXN_OUTCOMES

    def shown(key: str) -> bool:
        # Counts for parts the scenario does not use (a sink, consumers) stay out of the way.
        return key in always or bool(outcome[key]) or key in expected

    keys = [k for k in HEADLINE_OUTCOMES if k in outcome and shown(k)]
    anomaly_keys = [k for k in outcome if k not in HEADLINE_OUTCOMES and shown(k)]
    if provisional:
        headline = "so far"
    elif verdict.get("verdict") == "as-expected":
        headline = "as the scenario expects"
    else:
        headline = "not what the scenario expects"
    return {
        "semantics": semantics,
        "counts": [
            {"key": k, "label": OUTCOME_LABELS.get(k, k), "value": outcome[k]} for k in keys
        ],
        "anomaly_counts": [
            {"key": k, "label": OUTCOME_LABELS.get(k, k.replace("_", " ")), "value": outcome[k]}
            for k in anomaly_keys
        ],
        "anomalies": anomalies,
        "anomalies_hidden": len(verdict.get("anomalies", [])) - len(anomalies),
        "provisional": provisional,
        "verdict": verdict.get("verdict"),
        "headline": headline,
        # Judged against the expectations only once the run is over.
        "mismatches": [] if provisional else verdict.get("mismatches", []),
        "expected": verdict.get("expected", {}),
        "stale": bool(verdict.get("stale")),
    }

"""The verdict panel: what the chosen semantics promises against what happened, the counts (each
with one meaning), the anomalies (each a button that highlights its records), and, second, what
the scenario's author expected."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dashboard.panels.common import ghost_id, slug
from dashboard.panels.counts import count_rows

NUMBER_WORDS = {2: "twice", 3: "three times", 4: "four times"}
ROW_WORDS = {2: "two", 3: "three", 4: "four"}


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


def _judgement(anomaly: dict[str, Any], semantics: str) -> str:
    if anomaly["allowed"]:
        return f"expected under {semantics}"
    return f"a failure under {semantics}"


def _cells(anomaly: dict[str, Any], ghost_cells: dict[str, list[str]]) -> list[str]:
    """The cells an anomaly's button highlights, by record identity."""
    if anomaly["kind"] == "lost" and anomaly.get("where", "log") == "log":
        # Not in the live log: a truncated record shows as a ghost where it was (the live cell
        # at its old offset holds another record now); one never appended has no cell at all.
        return ghost_cells.get(anomaly["message_id"], [])
    partition = anomaly.get("partition")
    if not partition:
        return []
    return [f"c-{slug(partition)}-{o}" for o in dict.fromkeys(anomaly.get("offsets", []))]


def _row(
    anomaly: dict[str, Any], semantics: str, ghost_cells: dict[str, list[str]]
) -> dict[str, Any]:
    partition = anomaly.get("partition")
    offsets = list(dict.fromkeys(anomaly.get("offsets", [])))
    where = ", ".join(f"{partition}@{o}" for o in offsets) if partition else "no offset"
    cells = _cells(anomaly, ghost_cells)
    if anomaly["kind"] == "lost" and cells:
        where += " (truncated away)"
    return {
        "kind": anomaly["kind"],
        "kind_label": anomaly["kind"].replace("-", " "),
        "message_id": anomaly["message_id"],
        "where": where,
        "happened": where_label(anomaly),
        "cells": " ".join(cells),
        "judgement": _judgement(anomaly, semantics),
        "failure": not anomaly["allowed"],
        "explanation": anomaly.get("explanation", ""),
    }


# A run with a large backlog in flight can hold 100,000 anomalies at once: the panel lists the
# first ones (each a button that highlights cells) and counts the rest.
ANOMALIES_SHOWN = 100


@dataclass(slots=True)
class _Rows:
    rows: list[dict[str, Any]]
    judged: int  # anomalies listed or counted (not in flight)
    in_flight: int
    failures: int  # judged anomalies the semantics does not allow


# The rows of the last anomaly list seen: while a run plays, the runtime hands the same list
# again until the verdict is recomputed, so the rows are built once per verdict, not per frame.
_rows_cache: tuple[list[Any], str, tuple[Any, ...], _Rows] | None = None


def _anomaly_rows(
    raw: list[dict[str, Any]], semantics: str, ghosts: dict[str, list[dict[str, Any]]]
) -> _Rows:
    """Rows for the first ANOMALIES_SHOWN judged anomalies. Messages still in flight are
    counted apart: they are travelling, not lost."""
    global _rows_cache
    # Ghosts only ever grow within one verdict's run; their counts tell a change.
    ghost_key = tuple((p, len(lane)) for p, lane in sorted(ghosts.items()))
    cached = _rows_cache
    if cached is not None and cached[0] is raw and cached[1:3] == (semantics, ghost_key):
        return cached[3]
    ghost_cells: dict[str, list[str]] = {}
    for partition, lane in sorted(ghosts.items()):
        for ghost in lane:
            ghost_cells.setdefault(ghost["message_id"], []).append(
                ghost_id(partition, ghost["offset"], ghost["message_id"])
            )
    rows: list[dict[str, Any]] = []
    in_flight = failures = 0
    for anomaly in raw:
        if anomaly.get("in_flight"):
            in_flight += 1
            continue
        if not anomaly["allowed"]:
            failures += 1
        if len(rows) < ANOMALIES_SHOWN:
            rows.append(_row(anomaly, semantics, ghost_cells))
    result = _Rows(rows, len(raw) - in_flight, in_flight, failures)
    _rows_cache = (raw, semantics, ghost_key, result)
    return result


NO_LOSS = frozenset({"at-least-once", "exactly-once"})
NO_TWICE = frozenset({"at-most-once", "exactly-once"})


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def what_happened(semantics: str, outcome: dict[str, int], provisional: bool) -> str:
    """The anomalies in a few words, starting with what the semantics promises."""
    parts = []
    lost, unseen = outcome.get("lost", 0), outcome.get("unseen", 0)
    if lost:
        parts.append(f"{lost} lost")
    if unseen:
        parts.append(f"{unseen} not read yet" if provisional else f"{unseen} never read")
    if not lost and not unseen and semantics in NO_LOSS:
        parts.append("nothing lost")
    twice = [
        _plural(n, one, many)
        for n, one, many in (
            (outcome.get("duplicated_in_log", 0), "duplicate in the log", "duplicates in the log"),
            (outcome.get("reprocessed", 0), "processed twice", "processed twice"),
            (
                outcome.get("duplicated_in_sink", 0),
                "row too many in the sink",
                "duplicated in the sink",
            ),
        )
        if n
    ]
    if not twice and semantics in NO_TWICE:
        twice = ["nothing twice"]
    parts.extend(twice)
    for key, one, many in (
        ("reordered", "out of order", "out of order"),
        ("aborted_reads", "aborted record acted on", "aborted records acted on"),
        ("poll_skips", "poll skip", "poll skips"),
        ("nonmonotonic_polls", "poll going back", "polls going back"),
        ("in_flight", "still in flight", "still in flight"),
    ):
        if outcome.get(key):
            parts.append(_plural(outcome[key], one, many))
    return ", ".join(parts) or "no anomaly"


OPERATORS = {"==": "", ">=": "\u2265 ", "<=": "\u2264 ", ">": "> ", "<": "< "}


def expectation_text(expected: dict[str, str]) -> str:
    """The author's [expected] in words: "lost ≥ 1, duplicated 0"."""
    out = []
    for key, value in expected.items():
        op, _, number = str(value).partition(" ")
        out.append(f"{key} {OPERATORS.get(op, op + ' ')}{number or op}")
    return ", ".join(out)


def verdict_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    verdict = obs.get("verdict")
    if verdict is None:
        return None
    scenario = obs["scenario"]
    outcome = dict(verdict.get("outcome", {}))
    semantics = verdict.get("semantics", scenario["semantics"])
    provisional = bool(verdict.get("provisional"))
    raw = verdict.get("anomalies", [])
    found = _anomaly_rows(raw, semantics, obs.get("ghosts") or {})
    rows = found.rows
    cause = (obs.get("status") or {}).get("paused_for")
    if cause:  # the room paused itself on this anomaly: its card is highlighted (room.js)
        mark = (cause["kind"], cause["message_id"])
        rows = [{**r, "cause": (r["kind"], r["message_id"]) == mark} for r in rows]
    if found.in_flight and "lost" in outcome:
        # Mid-run, a message not yet acknowledged nor failed is travelling, not lost.
        outcome["lost"] -= found.in_flight
        outcome["in_flight"] = found.in_flight
    expected = verdict.get("expected", {})
    started = bool((obs.get("snapshot") or {}).get("consumers"))
    counts, anomaly_counts = count_rows(outcome, scenario, expected, consumers=started)
    happened = what_happened(semantics, outcome, provisional)
    held = not found.failures
    if provisional:
        headline, mark, state = f"{semantics}, so far: {happened}", "", "is-provisional"
    elif held:
        headline, mark, state = f"{semantics} held: {happened}", "\u2713", "is-held"
    else:
        headline, mark, state = f"{semantics} broken: {happened}", "\u2717", "is-broken"
    as_expected = verdict.get("verdict") == "as-expected"
    mismatches = [] if provisional else list(verdict.get("mismatches", []))
    return {
        "semantics": semantics,
        "counts": counts,
        "anomaly_counts": anomaly_counts,
        "anomalies": rows,
        "anomalies_hidden": found.judged - len(found.rows),
        "in_flight": found.in_flight,
        "provisional": provisional,
        "held": held,
        "state": state,
        "mark": mark,
        "headline": headline,
        "verdict": verdict.get("verdict"),
        # What the author expected: judged, and shown, only once the run is over (mid-run it
        # would tell a room the answer to "what will happen?").
        "expected_text": "" if provisional or not expected else expectation_text(expected),
        "as_expected": as_expected,
        "mismatches": mismatches,
        "expected": expected,
        "stale": bool(verdict.get("stale")),
    }

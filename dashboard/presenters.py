"""Presenters: pure functions from an observation (plain data) to what a panel shows.

Each ``*_panel`` function returns a template context, or None when the engine has nothing for that
panel yet (a missing snapshot key renders nothing). Lane cells are rendered here as HTML strings
because there can be many of them per frame and each is diffed on its own.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

LANE_WINDOW = 40
SPEEDS = ("0.25", "0.5", "1", "2", "4", "8", "16", "end")

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


def slug(name: str) -> str:
    """An HTML id fragment for a partition or actor name ("orders.v2-0" -> "orders_2e_v2-0")."""
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: f"_{ord(m.group()):x}_", name)


def speed_label(speed: str) -> str:
    return "to the end" if speed == "end" else f"{speed}\u00d7"


# -- fault buttons ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FaultOption:
    id: str
    label: str
    group: str
    command: dict[str, Any]
    available: bool
    why_not: str = ""


def fault_options(scenario: dict[str, Any], snapshot: dict[str, Any]) -> list[FaultOption]:
    """The fault buttons offered for this scenario's actors, with what makes sense right now."""
    options: list[FaultOption] = []
    producers = snapshot.get("producers") or []
    alive = {p["name"]: p.get("alive", True) for p in producers}
    names = [p["name"] for p in scenario.get("producers", [])]
    several = len(names) > 1
    for name in names:
        suffix = f" from {name}" if several else ""
        to = f" to {name}" if several else ""
        options.append(
            FaultOption(
                f"drop-request:{name}",
                f"Drop the next produce request{suffix}",
                "network",
                {"do": "drop-request", "api": "Produce", "client": name},
                True,
            )
        )
        options.append(
            FaultOption(
                f"drop-response:{name}",
                f"Drop the next produce response{to}",
                "network",
                {"do": "drop-response", "api": "Produce", "client": name},
                True,
            )
        )
    for name in names:
        up = alive.get(name, True)
        options.append(
            FaultOption(
                f"crash-producer:{name}",
                f"Crash producer app {name}",
                "producers",
                {"do": "crash-producer", "producer": name},
                up,
                "" if up else f"{name} is already down",
            )
        )
        options.append(
            FaultOption(
                f"restart-producer:{name}",
                f"Restart producer app {name}",
                "producers",
                {"do": "restart-producer", "producer": name},
                not up,
                "" if not up else f"{name} is running",
            )
        )
    options.extend(transaction_fault_options(scenario, snapshot))
    options.extend(consumer_fault_options(scenario, snapshot))
    brokers = {b["id"]: b.get("alive", True) for b in snapshot.get("brokers") or []}
    for broker in scenario.get("brokers", []):
        up = brokers.get(broker, True)
        options.append(
            FaultOption(
                f"crash-broker:{broker}",
                f"Crash broker-{broker}",
                "brokers",
                {"do": "crash-broker", "broker": broker},
                up,
                "" if up else f"broker-{broker} is already down",
            )
        )
        options.append(
            FaultOption(
                f"restart-broker:{broker}",
                f"Restart broker-{broker}",
                "brokers",
                {"do": "restart-broker", "broker": broker},
                not up,
                "" if not up else f"broker-{broker} is running",
            )
        )
    leaders = {p["name"]: p.get("leader") for p in snapshot.get("partitions") or []}
    for partition in scenario.get("partitions", []):
        leader = leaders.get(partition)
        options.append(
            FaultOption(
                f"crash-leader:{partition}",
                f"Crash the leader of {partition}",
                "brokers",
                {"do": "crash-broker", "broker": f"leader:{partition}"},
                leader is not None,
                "" if leader is not None else f"{partition} has no leader",
            )
        )
    return options


# A transactional producer's client states in which each command makes sense.
CAN_BEGIN = frozenset({"UNINITIALIZED", "INITIALIZING", "READY"})
CAN_COMMIT = frozenset({"IN_TRANSACTION"})
CAN_ABORT = frozenset({"IN_TRANSACTION", "ABORTABLE_ERROR"})
PROCESSOR_CRASHES = (
    ("now", "Crash processor {name} now"),
    ("after-produce", "Crash {name} mid-transaction (after its next produce)"),
    ("after-offsets", "Crash {name} after sending its offsets (before the commit)"),
    ("after-commit", "Crash {name} after its next commit"),
)


def transaction_fault_options(
    scenario: dict[str, Any], snapshot: dict[str, Any]
) -> list[FaultOption]:
    """Begin/commit/abort for transactional producers; crash, restart, stall for processors."""
    options: list[FaultOption] = []
    producers = {p["name"]: p for p in snapshot.get("producers") or []}
    for producer in scenario.get("producers", []):
        if not producer.get("transactional_id"):
            continue
        name = producer["name"]
        live = producers.get(name, {})
        up = live.get("alive", True)
        state = live.get("transaction_state") or "UNINITIALIZED"

        def why(
            allowed: frozenset[str], up: bool = up, state: str = state, name: str = name
        ) -> str:
            if not up:
                return f"{name} is down"
            if state == "FATAL_ERROR":
                return f"{name} was fenced (FATAL_ERROR): restart it"
            if state not in allowed:
                return f"{name} is {state}"
            return ""

        for action, verb, allowed in (
            ("begin", "Begin a transaction on", CAN_BEGIN),
            ("commit", "Commit the transaction of", CAN_COMMIT),
            ("abort", "Abort the transaction of", CAN_ABORT),
        ):
            reason = why(allowed)
            options.append(
                FaultOption(
                    f"{action}-transaction:{name}",
                    f"{verb} {name}",
                    "transactions",
                    {"do": f"{action}-transaction", "producer": name},
                    not reason,
                    reason,
                )
            )
    alive = {p["name"]: p.get("alive", True) for p in snapshot.get("processors") or []}
    for processor in scenario.get("processors", []):
        name = processor["name"]
        up = alive.get(name, False)
        down = "" if up else f"{name} is not running"
        for at, label in PROCESSOR_CRASHES:
            options.append(
                FaultOption(
                    f"crash-processor:{at}:{name}",
                    label.format(name=name),
                    "processors",
                    {"do": "crash-processor", "processor": name, "at": at},
                    up,
                    down,
                )
            )
        options.append(
            FaultOption(
                f"restart-processor:{name}",
                f"Restart processor {name}",
                "processors",
                {"do": "restart-processor", "processor": name},
                not up,
                "" if not up else f"{name} is running",
            )
        )
        duration = stall_ms(processor)
        options.append(
            FaultOption(
                f"stall-processor:{name}",
                f"Stall {name} for {_seconds(duration)} (past its "
                f"{_seconds(int(processor.get('session_timeout_ms', 45_000)))} session timeout)",
                "processors",
                {"do": "stall-processor", "processor": name, "duration_ms": duration},
                up,
                down,
            )
        )
    return options


# A stall lasts the session timeout plus this margin, so that the coordinator notices it.
STALL_MARGIN_MS = 2000


def stall_ms(consumer: dict[str, Any]) -> int:
    """How long "stall past its session timeout" pauses a consumer."""
    session = int(consumer.get("session_timeout_ms", 45_000))
    return session + max(STALL_MARGIN_MS, int(consumer.get("heartbeat_interval_ms", 0)))


def _seconds(ms: int) -> str:
    return f"{ms / 1000:g} s"


def consumer_fault_options(scenario: dict[str, Any], snapshot: dict[str, Any]) -> list[FaultOption]:
    """Crash, restart and stall buttons for each consumer; sink faults when there is a sink."""
    options: list[FaultOption] = []
    alive = {c["name"]: c.get("alive", True) for c in snapshot.get("consumers") or []}
    for consumer in scenario.get("consumers", []):
        name = consumer["name"]
        up = alive.get(name, False)
        down = "" if up else f"{name} is not running"

        def crash(at: str, label: str, when: bool = True, name: str = name, up: bool = up) -> None:
            if when:
                options.append(
                    FaultOption(
                        f"crash-consumer:{at}:{name}",
                        label,
                        "consumers",
                        {"do": "crash-consumer", "consumer": name, "at": at},
                        up,
                        "" if up else f"{name} is not running",
                    )
                )

        commits = consumer.get("commit", "auto") != "none"
        sink = consumer.get("sink", "none")
        crash("now", f"Crash consumer {name} now")
        crash("after-commit", f"Crash {name} after its next commit", commits)
        crash("after-processing", f"Crash {name} after processing (before its commit)")
        crash("after-sink-write", f"Crash {name} after its next sink write", sink != "none")
        crash(
            "before-sink-commit",
            f"Crash {name} between its sink writes (before the sink commit)",
            sink == "offsets-with-output",
        )
        options.append(
            FaultOption(
                f"restart-consumer:{name}",
                f"Restart consumer {name}",
                "consumers",
                {"do": "restart-consumer", "consumer": name},
                not up,
                "" if not up else f"{name} is running",
            )
        )
        duration = stall_ms(consumer)
        options.append(
            FaultOption(
                f"stall-consumer:{name}",
                f"Stall {name} for {_seconds(duration)} (past its "
                f"{_seconds(int(consumer.get('session_timeout_ms', 45_000)))} session timeout)",
                "consumers",
                {"do": "stall-consumer", "consumer": name, "duration_ms": duration},
                up,
                down,
            )
        )
    sink_name = scenario.get("sink")
    if sink_name:
        options.append(
            FaultOption(
                "fail-sink",
                f"Make sink {sink_name} fail its next write",
                "sink",
                {"do": "fail-sink", "count": 1},
                True,
            )
        )
    return options


# -- panels ---------------------------------------------------------------------------
def header_panel(obs: dict[str, Any]) -> dict[str, Any]:
    scenario = obs["scenario"]
    status = obs["status"]
    if status.get("seeking"):
        state = "travelling in time\u2026"
    elif status.get("ended"):
        state = "run over" if status["ended"] == "settled" else f"run over ({status['ended']})"
    elif status.get("playing"):
        state = f"playing at {speed_label(status['speed'])}"
    else:
        state = "paused"
    return {
        "title": scenario["title"],
        "name": scenario["name"],
        "semantics": scenario["semantics"],
        "seed": scenario["seed"],
        "clock_ms": status.get("clock_ms", 0),
        "state": state,
        "playing": bool(status.get("playing")),
        "in_past": bool(status.get("in_past")),
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
    }


def faults_panel(obs: dict[str, Any]) -> dict[str, Any]:
    options = fault_options(obs["scenario"], obs["snapshot"])
    groups: dict[str, list[FaultOption]] = {}
    for option in options:
        groups.setdefault(option.group, []).append(option)
    return {
        "room_id": obs["status"].get("room_id", ""),
        "groups": [{"name": name, "options": opts} for name, opts in groups.items()],
        "pressed": list(reversed(obs.get("commands", [])))[:6],
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


def producers_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    producers = obs["snapshot"].get("producers")
    if not producers:
        return None
    out = []
    for p in producers:
        pid = p.get("producer_id")
        out.append(
            {
                "name": p["name"],
                "slug": slug(p["name"]),
                "alive": p.get("alive", True),
                "incarnation": p.get("incarnation"),
                "pid": "\u2014" if pid is None or pid < 0 else pid,
                "epoch": "\u2014" if p.get("producer_epoch") in (None, -1) else p["producer_epoch"],
                "next_sequence": sorted((p.get("next_sequence") or {}).items()),
                "in_flight": [
                    {
                        "partition": b["partition"],
                        "records": ", ".join(b.get("records", [])),
                        "attempts": b.get("attempts", 0),
                        "last_error": b.get("last_error"),
                    }
                    for b in p.get("in_flight", [])
                ],
                "queued": p.get("queued", 0),
                "transactional_id": p.get("transactional_id"),
                "client_txn": client_txn_state(p.get("transaction_state")),
                "config": sorted((p.get("config") or {}).items()),
            }
        )
    return {"producers": out}


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


def narration_panel(obs: dict[str, Any]) -> dict[str, Any] | None:
    steps = obs["scenario"].get("steps", [])
    told = [text for _t, text in obs["snapshot"].get("narration", [])]
    if not steps and not told:
        return None
    remaining: dict[str, int] = {}
    for text in told:
        remaining[text] = remaining.get(text, 0) + 1
    items = []
    for step in steps:
        done = remaining.get(step["narration"], 0) > 0
        if done:
            remaining[step["narration"]] -= 1
        items.append({"at_ms": step["at_ms"], "text": step["narration"], "done": done})
    current = max((i for i, item in enumerate(items) if item["done"]), default=None)
    for i, item in enumerate(items):
        item["current"] = i == current
    return {"items": items}


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
        ]
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


def client_txn_state(state: str | None) -> dict[str, str] | None:
    """A producer's client transaction state with its icon and meaning (None: not transactional)."""
    if not state:
        return None
    icon, meaning = CLIENT_TXN_STATES.get(state, ("\u25cf", state.lower().replace("_", " ")))
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


# -- lanes ------------------------------------------------------------------------------
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


def _leader_log(partition: dict[str, Any]) -> dict[str, Any]:
    for replica in partition.get("replicas", []):
        if replica["broker"] == partition.get("leader"):
            return replica
    return {}


def lane_cells(
    partition: dict[str, Any],
    duplicates: dict[str, list[int]] | None = None,
    cache: dict[tuple[Any, ...], str] | None = None,
) -> tuple[int, dict[int, str]]:
    """(first offset shown, {offset: cell html}) for the latest LANE_WINDOW records.

    ``cache`` (the previous tick's cells, by what they show) saves rendering unchanged cells.
    """
    records = partition.get("records", [])[-LANE_WINDOW:]
    log = _leader_log(partition)
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
    log = _leader_log(partition)
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
    log = _leader_log(partition)
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
    log = _leader_log(partition)
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
        {**g, "column": g["offset"] - start + 1}
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

"""Saved runs: replaying them, exporting and importing them as JSON, and what a report shows.

A saved run is a scenario (its TOML text), a seed and the commands pressed, each keyed by the
number of engine steps done when it was pressed. The engine is deterministic, so stepping a
``Timeline`` built from those to the end gives the trace and verdict of the original run.

Everything a run file says is checked here before anything is saved: each refusal is a
``RunError`` naming the field (``commands[3].step_index``) and the problem.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from broker import guard
from broker.scenario import (
    MAX_DURATION_MS,
    PathError,
    ScenarioError,
    ScenarioSpec,
    load_text,
    step_parser,
)
from dashboard.live import forking, pacing
from dashboard.live.limits import (
    LimitError,
    check_limits,
    max_records,
    records_in,
    records_of,
    setting,
)
from dashboard.live.timeline import Command, Timeline
from dashboard.models import SavedRun
from dashboard.panels.diagram import sequence_diagram
from dashboard.panels.observe import diagram_events, scenario_info
from dashboard.panels.presenters import verdict_panel
from dashboard.workshops.rooms import commands_json, commands_of, create_run

FORMAT = "delivery-lab-run"
VERSION = 1
MAX_COMMANDS = 10_000
MAX_LABEL_CHARS = 200
MAX_NAME_CHARS = 64
MAX_SEED = 2**63 - 1
# Defaults of the settings LAB_MAX_RUN_UPLOAD_BYTES and LAB_MAX_REPLAY_STEPS.
MAX_UPLOAD_BYTES = 512 * 1024
# The engine does some 25,000 to 50,000 steps a second: this bounds a replay to well under a
# minute. The built-in scenarios take a few hundred to two thousand steps.
MAX_REPLAY_STEPS = 1_000_000
# A report's sequence diagram: the last this many messages and notes of the run.
REPORT_DIAGRAM_EVENTS = 240
# A large run can hold thousands of anomalies: a file keeps the first ones (and all the counts).
MAX_EXPORTED_ANOMALIES = 100


class RunError(PathError):
    """A run that cannot be imported or replayed; ``path`` names the field at fault, if any."""


@dataclass(frozen=True, slots=True)
class RunData:
    """A run checked and ready to save (what an imported file holds)."""

    spec: ScenarioSpec
    toml: str
    seed: int
    commands: list[Command]


# -- replay --------------------------------------------------------------------------------------
def max_replay_steps() -> int:
    return int(setting("LAB_MAX_REPLAY_STEPS", MAX_REPLAY_STEPS))


def load_scenario(toml: str, name: str, path: str = "scenario.toml") -> ScenarioSpec:
    """The scenario of a run; its errors say where in the TOML, under ``path``."""
    try:
        return load_text(toml, name, source=path)
    except ScenarioError as exc:
        where = f"at {exc.path}: " if exc.path else ""
        raise RunError(path, f"the scenario is not valid: {where}{exc.problem}") from None


def _check_limits(spec: ScenarioSpec, commands: Sequence[Command] = ()) -> None:
    """The live rooms' limits (records per run, the scenario's and its commands') apply to
    saved runs too."""
    try:
        check_limits(spec, commands)
    except LimitError as exc:
        raise RunError("", str(exc)) from None


def replay(spec: ScenarioSpec, seed: int, commands: Sequence[Command]) -> Timeline:
    """Step a run to its end, the recorded commands applied at their step counts."""
    _check_limits(spec, commands)
    limit = max_replay_steps()
    try:
        # A few replays at once per process (forking.py); each gives up if the lab stops.
        with forking.replay_slot():
            timeline = Timeline(spec, seed, commands)
            while timeline.step_engine():
                if timeline.steps % 256 == 0:
                    pacing.check_stopping()
                if timeline.steps > limit:
                    raise RunError(
                        "",
                        f"This run is still going after {limit:,} engine steps, the most a "
                        f"replay here may take (LAB_MAX_REPLAY_STEPS). Run it from a terminal "
                        f"instead (python -m broker run).",
                    )
    except ScenarioError as exc:
        raise RunError("commands", f"the engine refused a command on replay: {exc}") from None
    except (LimitError, pacing.Stopping) as exc:
        raise RunError("", str(exc)) from None
    _check_all_applied(timeline)
    return timeline


def _check_all_applied(timeline: Timeline) -> None:
    """A command keyed past the run's last step never happened: the file does not fit the run."""
    for i, command in enumerate(timeline.commands):
        if command.step_index > timeline.steps:
            raise RunError(
                f"commands[{i}].step_index",
                f"step {command.step_index:,} is never reached: this run ends after "
                f"{timeline.steps:,} engine steps",
            )


def replay_to_end(run: SavedRun) -> Timeline:
    """A saved run replayed to its end. Raises ``RunError`` when it cannot be."""
    spec = load_scenario(run.scenario_toml, run.scenario_name)
    return replay(spec, run.seed, commands_of(run))


def copy_run(run: SavedRun, origin: str) -> SavedRun:
    """A new saved run with the same scenario, seed and commands."""
    spec = load_scenario(run.scenario_toml, run.scenario_name)
    commands = commands_of(run)
    _check_limits(spec, commands)
    return create_run(spec, run.scenario_toml, run.seed, commands, origin=origin)


# -- what the pages show -------------------------------------------------------------------------
def command_rows(run: SavedRun) -> list[dict[str, Any]]:
    return [
        {"time_ms": c.time_ms, "step_index": c.step_index, "label": c.label}
        for c in commands_of(run)
    ]


def paragraphs(text: str) -> list[str]:
    """A scenario description's paragraphs (blank-line separated), each on one line."""
    return [" ".join(block.split()) for block in text.split("\n\n") if block.strip()]


def settings_of(spec: ScenarioSpec) -> dict[str, Any]:
    """The scenario's client settings for a report: scenario_info plus the isolation levels."""
    info = scenario_info(spec)
    isolation = {c.name: c.config.isolation_level for c in spec.consumers}
    isolation.update({p.name: p.consumer.isolation_level for p in spec.processors})
    return {
        "seed": info["seed"],
        "semantics": info["semantics"],
        "producers": info["producers"],
        "consumers": [{**c, "isolation": isolation.get(c["name"], "")} for c in info["consumers"]],
        "processors": [
            {**p, "isolation": isolation.get(p["name"], "")} for p in info["processors"]
        ],
        "sink": info["sink"],
    }


def verdict_context(spec: ScenarioSpec, verdict: dict[str, Any]) -> dict[str, Any] | None:
    """The verdict as the room's verdict panel presents it (counts, anomalies with offsets)."""
    return verdict_panel({"verdict": verdict, "scenario": scenario_info(spec)})


def diagram_svg(timeline: Timeline, limit: int = REPORT_DIAGRAM_EVENTS) -> tuple[str, bool]:
    """The run's sequence diagram, and whether it shows only the last ``limit`` events."""
    events = diagram_events(timeline.sim, limit)
    return sequence_diagram(scenario_info(timeline.spec), events), len(events) >= limit


# -- export --------------------------------------------------------------------------------------
def verdict_summary(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """A verdict for a file: all of it but the anomalies past the first MAX_EXPORTED_ANOMALIES."""
    anomalies = list(verdict.get("anomalies", []))
    out = {k: v for k, v in verdict.items() if k != "anomalies"}
    out["anomalies"] = anomalies[:MAX_EXPORTED_ANOMALIES]
    out["anomaly_count"] = len(anomalies)  # the name the rooms' saved verdicts use
    return out


def export_document(run: SavedRun, verdict: Mapping[str, Any] | None) -> dict[str, Any]:
    """The JSON document of a run; ``verdict`` is None when the run could not be replayed."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "title": run.title,
        "scenario": {"name": run.scenario_name, "toml": run.scenario_toml},
        "seed": run.seed,
        "commands": commands_json(commands_of(run)),
        "verdict": verdict_summary(verdict) if verdict is not None else {},
        "exported_at": timezone.now().isoformat(),
    }


def export_filename(run: SavedRun) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in run.scenario_name)
    return f"{name.strip('.') or 'run'}-{run.id}.json"


# -- import --------------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RunError(path, f"expected an object, got {_kind(value)}")
    return value


def _field(table: Mapping[str, Any], key: str, path: str) -> Any:
    if key not in table:
        raise RunError(path, "required")
    return table[key]


def _string(table: Mapping[str, Any], key: str, path: str, max_chars: int | None = None) -> str:
    where = f"{path}.{key}" if path else key
    value = _field(table, key, where)
    if not isinstance(value, str):
        raise RunError(where, f"expected a string, got {_kind(value)}")
    if max_chars is not None and len(value) > max_chars:
        raise RunError(where, f"longer than {max_chars} characters")
    return value


def _integer(table: Mapping[str, Any], key: str, path: str, high: int) -> int:
    where = f"{path}.{key}" if path else key
    value = _field(table, key, where)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RunError(where, f"expected a whole number, got {_kind(value)}")
    if not 0 <= value <= high:
        raise RunError(where, f"must be from 0 to {high:,}, got {value:,}")
    return value


def max_upload_bytes() -> int:
    return int(setting("LAB_MAX_RUN_UPLOAD_BYTES", MAX_UPLOAD_BYTES))


def parse_json(data: bytes) -> Any:
    """The JSON of a run file; size, nesting and absurd numbers (NaN, 1e400) are refused by
    broker/guard.py before or while it is parsed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RunError("", "the file is not UTF-8 text, so not a run file (JSON)") from None
    return guard.loads_json(text, RunError, max_upload_bytes(), "the run file")


def _check_header(doc: dict[str, Any]) -> None:
    kind = _field(doc, "format", "format")
    if kind != FORMAT:
        raise RunError("format", f"expected {FORMAT!r}, got {kind!r}: this is not a run file")
    version = _field(doc, "version", "version")
    if type(version) is not int or version != VERSION:
        raise RunError(
            "version", f"this lab reads version {VERSION} of the run format, got {version!r}"
        )
    if "title" in doc and not isinstance(doc["title"], str):
        raise RunError("title", f"expected a string, got {_kind(doc['title'])}")
    if "verdict" in doc and not isinstance(doc["verdict"], dict):
        raise RunError("verdict", f"expected an object, got {_kind(doc['verdict'])}")


def _scenario(doc: dict[str, Any]) -> tuple[ScenarioSpec, str]:
    scenario = _object(_field(doc, "scenario", "scenario"), "scenario")
    name = _string(scenario, "name", "scenario", MAX_NAME_CHARS)
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise RunError("scenario.name", f"{name!r} is not a valid name (letters, digits, - _ .)")
    toml = _string(scenario, "toml", "scenario")
    return load_scenario(toml, name), toml


def _commands(value: Any, spec: ScenarioSpec) -> list[Command]:
    if not isinstance(value, list):
        raise RunError("commands", f"expected a list, got {_kind(value)}")
    if len(value) > MAX_COMMANDS:
        raise RunError(
            "commands", f"{len(value):,} commands; a run may have at most {MAX_COMMANDS:,}"
        )
    parse = step_parser(spec)
    commands: list[Command] = []
    own, limit = records_in(spec), max_records()
    records = own
    for i, item in enumerate(value):
        path = f"commands[{i}]"
        entry = _object(item, path)
        step_index = _integer(entry, "step_index", path, max_replay_steps())
        time_ms = _integer(entry, "time_ms", path, MAX_DURATION_MS)
        raw = _object(_field(entry, "raw", f"{path}.raw"), f"{path}.raw")
        label = _string(entry, "label", path, MAX_LABEL_CHARS)
        if commands and step_index < commands[-1].step_index:
            raise RunError(
                f"{path}.step_index",
                f"step {step_index:,} comes before the previous command's step "
                f"{commands[-1].step_index:,}: commands must be listed in the order pressed",
            )
        try:
            parse(raw, f"{path}.raw", time_ms)
        except ScenarioError as exc:
            raise RunError(exc.path, f"the engine refuses this command: {exc.problem}") from None
        records += records_of(raw)
        if records > limit:
            raise RunError(
                f"{path}.raw.count",
                f"with this command the run produces {records:,} records ({own:,} from its "
                f"scenario); the dashboard runs at most {limit:,} per run "
                f"(LAB_MAX_RECORDS_PER_RUN)",
            )
        commands.append(Command(step_index, time_ms, dict(raw), label))
    return commands


def parse_run_document(data: bytes) -> RunData:
    """A run file's content, checked field by field; raises ``RunError`` on the first problem."""
    doc = parse_json(data)
    if not isinstance(doc, dict):
        raise RunError("", f"the file holds {_kind(doc)}, not a run (a JSON object)")
    _check_header(doc)
    spec, toml = _scenario(doc)
    _check_limits(spec)
    seed = _integer(doc, "seed", "", MAX_SEED)
    commands = _commands(_field(doc, "commands", "commands"), spec)
    return RunData(spec, toml, seed, commands)


def import_run(data: bytes) -> SavedRun:
    """Check a run file, replay it (it must reach every command), then save it."""
    run = parse_run_document(data)
    replay(run.spec, run.seed, run.commands)
    return create_run(run.spec, run.toml, run.seed, run.commands, origin="import")

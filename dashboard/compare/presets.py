"""What a compare's two panes may differ in: the settings offered for a scenario, or a free
choice, each made of ``configure`` commands (broker/scenario.py) pressed at the start of a
pane's run. A pane is the scenario's run plus those commands, so the difference is recorded
and replays like any press."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker.scenario import ScenarioError, ScenarioSpec, step_parser

AS_WRITTEN = "scenario"
CUSTOM = "custom"
MAX_CUSTOM_CHARS = 1000
MAX_CUSTOM_LINES = 8


class SettingError(ValueError):
    """A setting the lab cannot apply; the message names what was wrong."""


@dataclass(frozen=True, slots=True)
class Setting:
    id: str
    label: str
    commands: tuple[dict[str, Any], ...]


def _configure(kind: str, name: str, **values: Any) -> dict[str, Any]:
    return {"do": "configure", kind: name, **{k.replace("_", "."): v for k, v in values.items()}}


def presets(spec: ScenarioSpec) -> list[Setting]:
    """The settings worth comparing in this scenario, in pairs (off, on), after "as written"."""
    out = [Setting(AS_WRITTEN, "as the scenario says", ())]
    plain = [p.name for p in spec.producers if p.config.transactional_id is None]
    if plain:
        out.append(
            Setting(
                "idempotence-off",
                "idempotence off",
                tuple(_configure("producer", n, enable_idempotence=False) for n in plain),
            )
        )
        out.append(
            Setting(
                "idempotence-on",
                "idempotence on (acks=all)",
                tuple(
                    _configure("producer", n, enable_idempotence=True, acks="all") for n in plain
                ),
            )
        )
    consumers = [c.name for c in spec.consumers]
    if consumers and any(p.config.transactional_id for p in spec.producers):
        for level in ("read_uncommitted", "read_committed"):
            out.append(
                Setting(
                    level.replace("_", "-"),
                    level,
                    tuple(
                        {"do": "configure", "consumer": n, "isolation.level": level}
                        for n in consumers
                    ),
                )
            )
    sinks = [c.name for c in spec.consumers if c.sink != "none"]
    if sinks:
        out.append(
            Setting(
                "dual-write",
                "dual write (output in the database, offset in Kafka)",
                tuple(
                    {
                        "do": "configure",
                        "consumer": n,
                        "commit": "after-processing",
                        "sink": "dual-write",
                    }
                    for n in sinks
                ),
            )
        )
        out.append(
            Setting(
                "offsets-with-output",
                "offsets with the output (one database transaction)",
                tuple(
                    {
                        "do": "configure",
                        "consumer": n,
                        "commit": "none",
                        "sink": "offsets-with-output",
                    }
                    for n in sinks
                ),
            )
        )
    return out


def default_pair(spec: ScenarioSpec) -> tuple[str, str]:
    """The pair a newcomer most likely wants: the last (off, on) pair offered."""
    ids = [s.id for s in presets(spec)]
    if len(ids) >= 3:
        return ids[-2], ids[-1]
    return AS_WRITTEN, CUSTOM


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return text


def parse_custom(text: str, pane: str) -> tuple[dict[str, Any], ...]:
    """A free choice, one actor a line: ``producer p1 acks=1 enable.idempotence=false`` or
    ``consumer loader isolation.level=read_committed``."""
    if len(text) > MAX_CUSTOM_CHARS:
        raise SettingError(f"pane {pane}: the free choice is over {MAX_CUSTOM_CHARS} characters")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise SettingError(
            f"pane {pane}: the free choice is empty; write one actor a line, e.g. "
            "“producer p1 acks=1”"
        )
    if len(lines) > MAX_CUSTOM_LINES:
        raise SettingError(f"pane {pane}: at most {MAX_CUSTOM_LINES} lines in the free choice")
    commands = []
    for number, line in enumerate(lines, 1):
        words = line.split()
        if len(words) < 3 or words[0] not in ("producer", "consumer"):
            raise SettingError(
                f"pane {pane}, line {number} ({line!r}): write “producer NAME key=value …” or "
                "“consumer NAME key=value …”"
            )
        command: dict[str, Any] = {"do": "configure", words[0]: words[1]}
        for pair in words[2:]:
            key, sep, value = pair.partition("=")
            if not sep or not key or not value:
                raise SettingError(f"pane {pane}, line {number}: {pair!r} is not key=value")
            command[key] = _value(value)
        commands.append(command)
    return tuple(commands)


def choose(spec: ScenarioSpec, choice: str, custom: str, pane: str) -> tuple[dict[str, Any], ...]:
    """The commands of one pane's setting, checked by the engine's own step parser."""
    if choice == CUSTOM:
        commands = parse_custom(custom, pane)
    else:
        found = {s.id: s for s in presets(spec)}.get(choice)
        if found is None:
            offered = ", ".join([*(s.id for s in presets(spec)), CUSTOM])
            raise SettingError(f"pane {pane}: no setting {choice!r} here (offered: {offered})")
        commands = found.commands
    check(spec, commands, pane)
    return commands


def check(spec: ScenarioSpec, commands: Sequence[Mapping[str, Any]], pane: str) -> None:
    parse = step_parser(spec)
    for raw in commands:
        try:
            parse(dict(raw), "configure", 0)
        except ScenarioError as exc:
            raise SettingError(f"pane {pane}: {exc}") from exc


def describe(commands: Sequence[Mapping[str, Any]]) -> str:
    """One line for a pane's header: what it sets, or that it runs the scenario as written."""
    if not commands:
        return "as the scenario says"
    parts = []
    for raw in commands:
        actor = raw.get("producer") or raw.get("consumer")
        values = ", ".join(
            f"{k}={str(v).lower() if isinstance(v, bool) else v}"
            for k, v in raw.items()
            if k not in ("do", "producer", "consumer")
        )
        parts.append(f"{actor}: {values}")
    return "; ".join(parts)

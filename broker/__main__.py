"""Command line: ``python -m broker list``, ``python -m broker run`` and
``python -m broker listen`` (Kafka listeners for real clients, see docs/kafka-clients.md).

Exit codes: 0 when the verdict is as expected, 1 when it is not, 2 on bad
input (a malformed scenario file, an unknown name, a bad option).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from broker.scenario import ScenarioError, ScenarioSpec, builtin_scenarios, load
from broker.simulation import Simulation

# The collector's thresholds while listening (CPython's default: 700, 10, 10).
LISTEN_GC_THRESHOLDS = (50_000, 20, 100)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m broker", description="Delivery Lab's Kafka simulation")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="the built-in scenarios")
    run = sub.add_parser("run", help="run a scenario and judge the outcome")
    run.add_argument("scenario", help="a built-in scenario's name or a path to a .toml file")
    run.add_argument("--seed", type=int, default=None, help="random seed (default: the file's)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--trace", action="store_true", help="print one line per event")
    listen = sub.add_parser("listen", help="open Kafka listeners for real clients")
    listen.add_argument(
        "scenario", nargs="?", default=None, help="a scenario (default: 3 brokers, no topics)"
    )
    listen.add_argument(
        "--port",
        type=int,
        default=None,
        help="broker-1's port, broker-N's is PORT+N-1 "
        "(default LAB_KAFKA_PORT or 9092; 0: any free ports)",
    )
    listen.add_argument("--seed", type=int, default=None, help="random seed")
    listen.add_argument(
        "--commands", action="store_true", help="read JSON commands (faults) from stdin"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "listen":
            return _listen(args.scenario, args.port, args.seed, args.commands)
        return _run(args.scenario, args.seed, args.json, args.trace)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _list() -> int:
    specs = builtin_scenarios()
    width = max(len(s.name) for s in specs)
    for spec in specs:
        print(f"{spec.name:<{width}}  {spec.title}")
    return 0


def _listen(scenario: str | None, port: int | None, seed: int | None, commands: bool) -> int:
    import asyncio
    import gc
    import logging

    from broker.wire.control import serve
    from broker.wire.listener import ListenConfig

    if port is not None and not 0 <= port <= 65535 - 8:
        raise ScenarioError("--port", f"must be from 0 to 65527, got {port}")
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    # A listener keeps every record clients send (logs, the checker's ledger) while it makes
    # more: with the collector's default thresholds (700, 10, 10) it scanned that growing heap
    # again and again, about a quarter of the produce path's CPU (docs/performance.md). What
    # start-up made is frozen out of the collections; younger objects are collected less often.
    gc.freeze()
    gc.set_threshold(*LISTEN_GC_THRESHOLDS)
    return asyncio.run(serve(scenario, ListenConfig.from_env(port), seed, commands))


def _run(name: str, seed: int | None, as_json: bool, trace: bool) -> int:
    spec = load(name)
    if seed is not None and not 0 <= seed < 2**63:
        raise ScenarioError("--seed", f"must be from 0 to 2**63-1, got {seed}")
    sim = Simulation.from_scenario(spec, seed=seed)
    verdict = sim.run()
    result: dict[str, Any] = {
        "scenario": spec.name,
        "title": spec.title,
        "seed": sim.seed,
        "semantics": spec.semantics,
        "ended": sim.ended,
        "time_ms": sim.now_ms,
        **verdict.to_dict(),
    }
    if as_json:
        if trace:
            result["trace"] = _trace(spec, sim)
        print(json.dumps(result, indent=2))
    else:
        if trace:
            for line in _trace(spec, sim):
                print(line)
            print()
        _print_summary(result)
    return 0 if verdict.verdict == "as-expected" else 1


def _trace(spec: ScenarioSpec, sim: Simulation) -> list[str]:
    """One line per event; a ``note`` step's line carries the note's text (its only content)."""
    notes: dict[int, list[str]] = {}
    for step in spec.steps:
        if step.action == "note":
            notes.setdefault(step.at_ms, []).append(step.narration)
    lines = []
    for event in sim.events:
        if event.quiet:
            continue
        line = event.trace_line()
        waiting = notes.get(event.time_ms)
        if event.actor == "script" and event.kind == "step.note" and waiting:
            line += f"  {waiting.pop(0)}"
        lines.append(line)
    return lines


def _print_summary(result: dict[str, Any]) -> None:
    print(f"{result['scenario']}: {result['title']}")
    print(
        f"seed {result['seed']}, semantics {result['semantics']}, "
        f"ended at {result['time_ms']} ms ({result['ended']})"
    )
    outcome = result["outcome"]
    print("  " + "  ".join(f"{k}={v}" for k, v in outcome.items()))
    for anomaly in result["anomalies"]:
        judged = "allowed" if anomaly["allowed"] else "FAILURE"
        print(
            f"  {anomaly['kind']:<9} {anomaly['message_id']:<10} {judged:<8} "
            f"{anomaly['explanation']}"
        )
    expected = ", ".join(f"{k} {v}" for k, v in result["expected"].items())
    print(f"expected: {expected or 'nothing declared'}")
    print(f"verdict: {result['verdict']}")
    for mismatch in result["mismatches"]:
        print(f"  {mismatch}")


if __name__ == "__main__":
    sys.exit(main())

"""Same scenario + same seed + same submitted commands = the same run, byte for byte."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from fault_schedules import PRODUCER, TOPIC, Schedule, schedules
from hypothesis import given, note
from hypothesis import strategies as st

from broker.scenario import load_text, step_parser
from broker.simulation import Simulation

ROOT = Path(__file__).resolve().parents[2]

# Commands pressed during the run (as the dashboard's buttons would): after how many events,
# and what.
commands = st.lists(
    st.tuples(
        st.integers(0, 400),
        st.sampled_from(
            [
                {"do": "produce", "producer": PRODUCER, "topic": TOPIC, "count": 3},
                {"do": "crash-broker", "broker": 2},
                {"do": "restart-broker", "broker": 2},
                {"do": "drop-response", "api": "Produce"},
                {"do": "isolate-broker", "broker": 1, "from": "all"},
                {"do": "heal"},
                {"do": "crash-producer", "producer": PRODUCER},
                {"do": "restart-producer", "producer": PRODUCER},
            ]
        ),
    ),
    max_size=6,
).map(lambda cs: sorted(cs, key=lambda c: c[0]))


def _run(schedule: Schedule, submitted: list[tuple[int, dict[str, Any]]]) -> Simulation:
    spec = schedule.spec()
    parse = step_parser(spec)
    sim = Simulation(spec)
    pending = list(submitted)
    events = 0
    while True:
        while pending and pending[0][0] <= events:
            _, raw = pending.pop(0)
            sim.submit(parse(raw, "command", sim.now_ms))
        if not sim.step():
            break
        events += 1
    return sim


def _fingerprint(sim: Simulation) -> tuple[list[str], str, str]:
    return (
        sim.trace(include_quiet=True),
        json.dumps(sim.snapshot(), sort_keys=True),
        json.dumps(sim.verdict().to_dict(), sort_keys=True),
    )


@given(schedules(idempotent=True, producer_crashes=True), commands)
def test_same_inputs_give_the_same_trace_and_snapshot(
    schedule: Schedule, submitted: list[tuple[int, dict[str, Any]]]
) -> None:
    note(schedule.toml())
    first = _run(schedule, submitted)
    second = _run(schedule, submitted)
    trace_1, snapshot_1, verdict_1 = _fingerprint(first)
    trace_2, snapshot_2, verdict_2 = _fingerprint(second)
    assert len(trace_1) > 0
    for i, (a, b) in enumerate(zip(trace_1, trace_2, strict=False)):
        assert a == b, f"traces part at event {i}:\n  {a}\n  {b}"
    assert len(trace_1) == len(trace_2)
    assert snapshot_1 == snapshot_2
    assert verdict_1 == verdict_2
    assert first.commands == second.commands


_RANDOM_LATENCY = """
name = "latency"
semantics = "at-least-once"
duration_ms = 60000
[cluster]
latency_ms = [1, 20]
[[topics]]
name = "orders"
partitions = 3
"min.insync.replicas" = 2
[[producers]]
name = "p1"
[producers.config]
"request.timeout.ms" = 1000
[[steps]]
do = "random-faults"
drop_response_probability = 0.2
until_ms = 3000
[[steps]]
do = "produce"
producer = "p1"
topic = "orders"
count = 30
interval_ms = 10
"""


def test_different_seeds_give_different_runs() -> None:
    spec = load_text(_RANDOM_LATENCY, "latency")
    traces = set()
    for seed in range(5):
        sim = Simulation(spec, seed=seed)
        sim.run()
        traces.add("\n".join(sim.trace(include_quiet=True)))
    assert len(traces) == 5


_CHILD = """
import json, sys
from broker.scenario import load_text
from broker.simulation import Simulation
sim = Simulation(load_text(sys.stdin.read(), "latency"), seed=7)
sim.run()
print(json.dumps([sim.trace(include_quiet=True), sim.snapshot()], sort_keys=True))
"""


def test_runs_agree_across_processes_and_hash_seeds() -> None:
    """Nothing may depend on str hashing (PYTHONHASHSEED) or on the process."""
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        child = subprocess.run(
            [sys.executable, "-c", _CHILD],
            input=_RANDOM_LATENCY,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            check=True,
            timeout=60,
        )
        outputs.append(child.stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0])[0]  # a real trace, not an empty run

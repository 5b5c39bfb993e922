"""The command line contract: ``python -m broker list`` and ``python -m broker run``.

Exit codes: 0 when the verdict is as expected, 1 when it is not, 2 on bad input (and then nothing
runs and nothing goes to stdout)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import broker
from broker.__main__ import main
from broker.scenario import BUILTIN_DIR, builtin_names, builtin_scenarios, load
from broker.simulation import Simulation

# The folder holding the broker package (the project root), so ``-m broker`` finds this copy.
ROOT = Path(broker.__file__).resolve().parent.parent

PRODUCER_COUNTS = (
    "produced",
    "acknowledged",
    "failed",
    "in_log",
    "lost",
    "duplicated",
    "reordered",
)
TRACE_LINE = re.compile(r"^ {0,8}\d+ ms  \S")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def call(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse errors exit
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def scenario_file(tmp_path: Path, text: str, name: str = "mine.toml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


RETRY_DUPLICATE = (BUILTIN_DIR / "producer-retry-duplicate.toml").read_text(encoding="utf-8")


# -- list ------------------------------------------------------------------------
def test_list_prints_every_builtin_name_and_title() -> None:
    result = cli("list")

    assert result.returncode == 0
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    specs = builtin_scenarios()
    assert len(lines) == len(specs) == len(builtin_names())
    for line, spec in zip(lines, specs, strict=True):
        name, title = line.split(None, 1)
        assert (name, title) == (spec.name, spec.title)


def test_list_takes_no_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, "list", "extra")

    assert (code, out) == (2, "")
    assert "unrecognized arguments: extra" in err


# -- run: the JSON contract ---------------------------------------------------------
def test_run_json_prints_exactly_one_object_with_the_documented_fields() -> None:
    result = cli("run", "producer-retry-duplicate", "--json")

    assert result.returncode == 0
    assert result.stderr == ""
    data = json.loads(result.stdout)  # fails on anything but one JSON document
    assert isinstance(data, dict)
    assert data["scenario"] == "producer-retry-duplicate"
    assert data["seed"] == 1
    assert data["semantics"] == "at-least-once"
    assert data["verdict"] == "as-expected"
    assert data["mismatches"] == []
    assert data["expected"] == {"lost": "== 0", "duplicated": ">= 1"}
    assert data["ended"] == "settled"
    assert isinstance(data["time_ms"], int)
    outcome = data["outcome"]
    for key in ("produced", "acknowledged", "lost", "duplicated", "reordered"):
        assert type(outcome[key]) is int, key
    assert {k: outcome[k] for k in PRODUCER_COUNTS} == {
        "produced": 3,
        "acknowledged": 3,
        "failed": 0,
        "in_log": 3,
        "lost": 0,
        "duplicated": 1,
        "reordered": 0,
    }
    [anomaly] = data["anomalies"]
    assert {k: anomaly[k] for k in ("kind", "message_id", "partition", "offsets")} == {
        "kind": "duplicate",
        "message_id": "p1-0",
        "partition": "orders-0",
        "offsets": [0, 1],
    }
    assert anomaly["allowed"] is True
    assert "explanation" in anomaly
    assert "trace" not in data


@pytest.mark.parametrize("name", builtin_names())
def test_run_json_of_every_builtin_is_as_expected(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = call(capsys, "run", name, "--json")

    data: dict[str, Any] = json.loads(out)
    assert (code, err) == (0, "")
    assert (data["scenario"], data["verdict"]) == (name, "as-expected")
    for anomaly in data["anomalies"]:
        assert set(anomaly) >= {"kind", "message_id", "partition", "offsets"}
        assert isinstance(anomaly["kind"], str)
        assert all(type(o) is int for o in anomaly["offsets"])


def test_run_json_with_trace_carries_the_trace(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = call(capsys, "run", "producer-idempotent", "--json", "--trace")

    sim = Simulation.from_scenario(load("producer-idempotent"))
    sim.run()
    assert code == 0
    assert json.loads(out)["trace"] == with_notes(sim.trace(), "producer-idempotent")


def with_notes(trace: list[str], name: str) -> list[str]:
    """The engine's trace with each ``note`` step's text on its line, as --trace prints it."""
    notes = [s.narration for s in load(name).steps if s.action == "note"]
    assert notes, f"{name} has no note step"
    return [f"{line}  {notes.pop(0)}" if " step.note " in line else line for line in trace]


# -- run: the text output -------------------------------------------------------------
def test_trace_prints_one_line_per_event_then_the_summary() -> None:
    result = cli("run", "producer-retry-duplicate", "--trace")

    sim = Simulation.from_scenario(load("producer-retry-duplicate"))
    sim.run()
    trace, summary = result.stdout.split("\n\n", 1)
    lines = trace.splitlines()
    assert lines == with_notes(sim.trace(), "producer-retry-duplicate")
    # The note's text, which the trace line alone does not carry (only "note").
    assert any(
        "step.note" in line and line.endswith("p1 gives up waiting, and retries. The broker "
        "appends the same message again.")
        for line in lines
    )
    assert len(lines) == sum(1 for e in sim.events if not e.quiet)
    assert all(TRACE_LINE.match(line) for line in lines)
    assert summary.splitlines()[0] == (
        "producer-retry-duplicate: At-least-once: a lost acknowledgement makes the retry a "
        "duplicate"
    )
    assert result.returncode == 0


def test_text_summary_without_trace(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = call(capsys, "run", "producer-retry-duplicate")

    lines = out.splitlines()
    assert code == 0
    assert not any(TRACE_LINE.match(line) for line in lines)
    assert lines[1].startswith("seed 1, semantics at-least-once, ended at ")
    assert lines[1].endswith("(settled)")
    assert lines[2].split()[:7] == [
        "produced=3",
        "acknowledged=3",
        "failed=0",
        "in_log=3",
        "lost=0",
        "duplicated=1",
        "reordered=0",
    ]
    assert lines[3].split()[:3] == ["duplicate", "p1-0", "allowed"]
    assert lines[-2:] == ["expected: lost == 0, duplicated >= 1", "verdict: as-expected"]


# -- seeds and determinism --------------------------------------------------------------
def test_seed_option_changes_the_seed_in_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = call(capsys, "run", "producer-reorder", "--seed", "7", "--json")

    assert code == 0
    assert json.loads(out)["seed"] == 7


def test_seed_comes_from_the_file_unless_given(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = scenario_file(tmp_path, "seed = 4\n" + RETRY_DUPLICATE)

    assert json.loads(call(capsys, "run", path, "--json")[1])["seed"] == 4
    assert json.loads(call(capsys, "run", path, "--json", "--seed", "0")[1])["seed"] == 0


def test_the_same_seed_gives_identical_output() -> None:
    first = cli("run", "producer-reorder", "--seed", "3", "--json", "--trace")
    second = cli("run", "producer-reorder", "--seed", "3", "--json", "--trace")

    assert first.returncode == second.returncode == 0
    assert first.stdout == second.stdout


RANDOM_DROPS = """
semantics = "at-least-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[producers.config]
"enable.idempotence" = false
"request.timeout.ms" = 1000
"linger.ms" = 0
[[steps]]
do = "random-faults"
api = "Produce"
drop_response_probability = 0.5
until_ms = 500
[[steps]]
do = "produce"
producer = "p1"
topic = "orders"
count = 10
interval_ms = 40
"""


def test_another_seed_can_give_another_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = scenario_file(tmp_path, RANDOM_DROPS)
    runs = {
        seed: json.loads(call(capsys, "run", path, "--seed", str(seed), "--json", "--trace")[1])
        for seed in ("1", "2", "3")
    }

    assert len({json.dumps(run["trace"]) for run in runs.values()}) > 1
    assert {run["seed"] for run in runs.values()} == {1, 2, 3}


# -- scenario files -----------------------------------------------------------------------
def test_a_builtin_runs_the_same_by_name_and_by_path(capsys: pytest.CaptureFixture[str]) -> None:
    by_name = call(capsys, "run", "producer-acks0-lost", "--json")
    by_path = call(capsys, "run", str(BUILTIN_DIR / "producer-acks0-lost.toml"), "--json")

    assert by_name == by_path


def test_exit_1_when_the_verdict_is_not_the_expected_one(tmp_path: Path) -> None:
    wrong = RETRY_DUPLICATE.replace('duplicated = ">= 1"', "duplicated = 0")
    assert wrong != RETRY_DUPLICATE
    path = scenario_file(tmp_path, wrong, "wrong-expectation.toml")

    result = cli("run", path, "--json")

    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["scenario"] == "wrong-expectation"
    assert data["verdict"] == "unexpected"
    assert data["mismatches"] == ["duplicated: expected == 0, got 1"]

    text = cli("run", path)
    assert text.returncode == 1
    assert text.stdout.splitlines()[-2:] == [
        "verdict: unexpected",
        "  duplicated: expected == 0, got 1",
    ]


BAD_SCENARIOS = [
    pytest.param("semantics = \n", "error: not valid TOML: ", id="malformed-toml"),
    pytest.param(
        RETRY_DUPLICATE.replace("acks = ", "ack = "),
        "error: producers[0].config.ack: unknown key (did you mean 'acks'? expected one of: "
        "acks, ",
        id="unknown-producer-config-key",
    ),
    pytest.param(
        RETRY_DUPLICATE.replace('acks = "all"', 'acks = "two"'),
        "error: producers[0].config.acks: expected 0, 1 or \"all\", got 'two'",
        id="bad-acks",
    ),
    pytest.param(
        RETRY_DUPLICATE.replace('do = "note"', 'do = "explode"'),
        "error: steps[2].do: 'explode' is not one of: produce, ",
        id="unknown-step-action",
    ),
    pytest.param(
        RETRY_DUPLICATE.replace('"min.insync.replicas" = 2', '"min.insync.replicas" = 4'),
        'error: topics[0]."min.insync.replicas": 4 is more than the replication factor 3',
        id="min-isr-over-replication-factor",
    ),
]


@pytest.mark.parametrize(("text", "message"), BAD_SCENARIOS)
def test_exit_2_on_a_bad_scenario_file_and_nothing_runs(
    tmp_path: Path, text: str, message: str
) -> None:
    result = cli("run", scenario_file(tmp_path, text), "--json")

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("run", "/nonexistent/missing.toml"),
            "error: cannot read /nonexistent/missing.toml: No such file or directory",
            id="missing-file",
        ),
        pytest.param(
            ("run", "no-such-scenario"),
            "error: no built-in scenario 'no-such-scenario' and no such file (built-ins: ",
            id="unknown-name",
        ),
        pytest.param(
            ("run", "producer-idempotent", "--seed", "abc"),
            "argument --seed: invalid int value: 'abc'",
            id="seed-not-a-number",
        ),
        pytest.param(
            ("run", "producer-idempotent", "--seed", "-1"),
            "error: --seed: must be from 0 to 2**63-1, got -1",
            id="negative-seed",
        ),
        pytest.param(
            ("run", "producer-idempotent", "--seed", str(2**63)),
            f"error: --seed: must be from 0 to 2**63-1, got {2**63}",
            id="seed-too-large",
        ),
        pytest.param((), "the following arguments are required: command", id="no-command"),
        pytest.param(("run",), "the following arguments are required: scenario", id="no-name"),
        pytest.param(("explode",), "invalid choice: 'explode'", id="unknown-command"),
    ],
)
def test_exit_2_on_bad_input(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = call(capsys, *args)

    assert (code, out) == (2, "")
    assert message in err


def test_exit_2_through_the_real_process_for_an_unknown_name() -> None:
    result = cli("run", "no-such-scenario")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith("error: no built-in scenario 'no-such-scenario'")


def test_exit_2_through_the_real_process_for_a_bad_seed() -> None:
    result = cli("run", "producer-idempotent", "--seed", "seven")

    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[0].startswith("usage: python -m broker run ")
    assert "invalid int value: 'seven'" in result.stderr

"""docs/scenarios.md stays true on the consumer side: its complete consumer example runs as
documented, and its consumer table lists every consumer and sink built-in."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.scenario import builtin_names, load, load_text
from broker.simulation import Simulation
from tests.scenarios.docs_support import blocks, builtin_table, run_example, section


def example() -> str:
    [toml] = blocks(section("A complete consumer example"), "toml")
    return toml


def test_the_consumer_example_runs_as_expected() -> None:
    spec = load_text(example(), "example")
    verdict = Simulation.from_scenario(spec).run()

    assert spec.name == "two-groups-one-crash"
    assert [c.name for c in spec.consumers] == ["audit", "billing"]
    assert spec.sink == "db"
    assert verdict.verdict == "as-expected", verdict.mismatches
    assert sorted((a.kind, a.where, a.message_id) for a in verdict.anomalies) == [
        ("duplicate", "processing", "p1-0"),
        ("duplicate", "processing", "p1-1"),
        ("duplicate", "sink", "p1-0"),
        ("duplicate", "sink", "p1-1"),
        ("lost", "processing", "p1-2"),
        ("lost", "processing", "p1-3"),
    ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_consumer_example_holds_for_other_seeds(seed: int) -> None:
    verdict = Simulation.from_scenario(load_text(example(), "x"), seed=seed).run()
    assert verdict.verdict == "as-expected", verdict.mismatches


def test_the_documented_consumer_summary_is_what_the_cli_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [summary] = blocks(section("A complete consumer example"), "text")
    assert run_example(example(), tmp_path / "consumer-example.toml") == 0
    assert capsys.readouterr().out.endswith(summary)


def test_the_consumer_table_lists_every_consumer_and_sink_builtin() -> None:
    listed = [name for name, _declared in builtin_table("The consumer and sink built-ins")]

    assert len(listed) == len(set(listed))
    assert sorted(listed) == [n for n in builtin_names() if n.startswith(("consumer-", "sink-"))]


def test_the_consumer_table_states_each_declared_outcome() -> None:
    for name, declared in builtin_table("The consumer and sink built-ins"):
        documented = dict(re.findall(r"`([a-z_]+) (?:= |)([^`]+)`", declared))
        expected = {k: str(v).replace("== ", "") for k, v in load(name).expected.items()}
        # "lost = 0" is documented for the expectation "== 0"; ">= 1" as is.
        assert {k: v.removeprefix("= ") for k, v in documented.items()} == expected, name

"""docs/scenarios.md stays true: its complete example runs as documented, and its table lists
every built-in scenario."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.scenario import builtin_names, load_text
from broker.simulation import Simulation
from tests.scenarios.docs_support import blocks, run_example, section


def test_the_complete_example_runs_as_expected() -> None:
    [example] = blocks(section("A complete example"), "toml")

    spec = load_text(example, "example")
    sim = Simulation.from_scenario(spec)
    verdict = sim.run()

    assert spec.name == "two-producers-lost-ack"
    assert verdict.verdict == "as-expected", verdict.mismatches
    assert [(a.kind, a.message_id, a.offsets) for a in verdict.anomalies] == [
        ("duplicate", "plain-0", (0, 1))
    ]
    duplicates = [
        (e.actor, e.partition, e.offset) for e in sim.events if e.kind == "produce.duplicate"
    ]
    assert duplicates == [("broker-2", "orders-1", o) for o in (0, 1, 2)]


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_complete_example_holds_for_other_seeds(seed: int) -> None:
    [example] = blocks(section("A complete example"), "toml")

    assert Simulation.from_scenario(load_text(example, "x"), seed=seed).run().verdict == (
        "as-expected"
    )


def test_the_documented_summary_is_what_the_cli_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = section("A complete example")
    [example] = blocks(text, "toml")
    [summary] = blocks(text, "text")
    assert run_example(example, tmp_path / "example.toml") == 0
    out = capsys.readouterr().out
    assert out.endswith(summary)


def test_the_builtin_table_lists_every_producer_builtin() -> None:
    table = section("The built-in scenarios")
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.MULTILINE)

    assert set(listed) <= set(builtin_names())
    assert sorted(listed) == [n for n in builtin_names() if n.startswith("producer-")]

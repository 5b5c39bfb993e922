"""docs/scenarios.md stays true: its complete example runs as documented, and its table lists
every built-in scenario."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.__main__ import main
from broker.scenario import builtin_names, load_text
from broker.simulation import Simulation

DOC = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else len(text)]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


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
    path = tmp_path / "example.toml"
    path.write_text(example, encoding="utf-8")

    assert main(["run", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.endswith(summary)


def test_the_builtin_table_lists_every_producer_builtin() -> None:
    table = section("The built-in scenarios")
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", table, flags=re.MULTILINE)

    assert set(listed) <= set(builtin_names())
    assert sorted(listed) == [n for n in builtin_names() if n.startswith("producer-")]

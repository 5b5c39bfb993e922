"""docs/scenarios.md stays true on the transaction side: its complete transactional example
runs as documented, and its transaction table lists every txn-* built-in with its declared
outcome."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broker.checker import OUTCOME_KEYS
from broker.scenario import builtin_names, load, load_text
from broker.simulation import Simulation
from tests.scenarios.docs_support import DOC, blocks, builtin_table, run_example, section


def example() -> str:
    [toml] = blocks(section("A complete transactional example"), "toml")
    return toml


def test_the_transactional_example_runs_as_expected() -> None:
    spec = load_text(example(), "example")
    sim = Simulation.from_scenario(spec)
    verdict = sim.run()

    assert spec.name == "enrich-crash-after-produce"
    assert [p.name for p in spec.processors] == ["enricher"]
    assert spec.processors[0].producer.transactional_id == "enricher-tx"
    assert [c.name for c in spec.consumers] == ["billing", "peek"]
    assert verdict.verdict == "as-expected", verdict.mismatches
    results = ("p1-0>enriched", "p1-1>enriched", "p1-4>enriched", "p1-5>enriched")
    assert sorted((a.kind, a.where, a.message_id) for a in verdict.anomalies) == sorted(
        [("aborted-read", "processing", m) for m in results]
        + [("duplicate", "processing", m) for m in results]
    )
    # The crashed instance's transaction is aborted by the restart's initTransactions.
    kinds = [e.kind for e in sim.events]
    assert "txn.fence" in kinds
    markers = [(e.partition, e.offset) for e in sim.events if e.kind == "txn.marker"]
    assert markers[0] == ("enriched-0", 4)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_transactional_example_holds_for_other_seeds(seed: int) -> None:
    verdict = Simulation.from_scenario(load_text(example(), "x"), seed=seed).run()
    assert verdict.verdict == "as-expected", verdict.mismatches


def test_the_documented_transactional_summary_is_what_the_cli_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [summary] = blocks(section("A complete transactional example"), "text")
    assert run_example(example(), tmp_path / "txn-example.toml") == 0
    assert capsys.readouterr().out.endswith(summary)


def test_the_txn_table_lists_every_txn_builtin() -> None:
    listed = [name for name, _declared in builtin_table("The transaction built-ins")]

    assert len(listed) == len(set(listed))
    assert sorted(listed) == [n for n in builtin_names() if n.startswith("txn-")]


def test_the_txn_table_states_each_declared_outcome() -> None:
    for name, declared in builtin_table("The transaction built-ins"):
        documented = dict(re.findall(r"`([a-z_]+) (?:= |)([^`]+)`", declared))
        expected = {k: str(v).replace("== ", "") for k, v in load(name).expected.items()}
        assert {k: v.removeprefix("= ") for k, v in documented.items()} == expected, name


def test_every_outcome_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    for key in OUTCOME_KEYS:
        assert f"| `{key}` |" in text, key

"""The throughput benchmark (broker/bench.py) on a small record count.

Correctness and the shape of the result only: no timing is asserted.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import pytest

from broker import bench

RECORDS = 2_000

ENGINE_FIELDS = {
    "records",
    "seconds",
    "rate",
    "runs_seconds",
    "outcome",
    "verdict",
    "ended",
    "events_recorded",
    "events_dropped_from_window",
    "scheduler_actions",
    "virtual_time_ms",
    "per_partition",
    "peak_memory_bytes",
}
MOCKAFKA_FIELDS = {
    "version",
    "records",
    "seconds",
    "rate",
    "runs_seconds",
    "arrived",
    "per_partition",
    "peak_memory_bytes",
}
TOP_FIELDS = {
    "benchmark",
    "records",
    "repeat",
    "timing",
    "python",
    "cpus",
    "engine",
    "mockafka",
    "mockafka_error",
    "ratio",
    "target_ratio",
    "target_met",
    "peak_memory_method",
    "max_rss_bytes",
    "max_rss_method",
}


def _assert_all_delivered(engine: dict[str, Any], records: int) -> None:
    assert engine["verdict"] == "as-expected"
    assert engine["ended"] == "settled"
    expected = {
        "produced": records,
        "acknowledged": records,
        "failed": 0,
        "in_log": records,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
    }
    # The checker may report more (consumer-side counts): the produce side is judged here.
    assert {key: engine["outcome"].get(key) for key in expected} == expected
    assert sum(engine["per_partition"]) == records
    assert len(engine["per_partition"]) == bench.PARTITIONS
    assert all(n > 0 for n in engine["per_partition"])


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    pytest.importorskip("mockafka")
    return bench.run_benchmark(RECORDS, repeat=1)


def test_engine_delivers_every_record_exactly_once(result: dict[str, Any]) -> None:
    engine = result["engine"]
    assert engine.keys() >= ENGINE_FIELDS
    _assert_all_delivered(engine, RECORDS)
    assert engine["events_recorded"] > 0  # the event stream was on
    assert engine["virtual_time_ms"] > 0
    assert engine["rate"] > 0
    assert len(engine["runs_seconds"]) == 1
    assert engine["peak_memory_bytes"] > 0


def test_mockafka_got_the_same_records(result: dict[str, Any]) -> None:
    mockafka = result["mockafka"]
    assert mockafka.keys() >= MOCKAFKA_FIELDS
    assert mockafka["arrived"] == RECORDS
    assert mockafka["per_partition"] == result["engine"]["per_partition"]
    assert mockafka["rate"] > 0
    assert mockafka["peak_memory_bytes"] > 0


def test_result_fields(result: dict[str, Any]) -> None:
    assert result.keys() >= TOP_FIELDS
    assert result["records"] == RECORDS
    assert result["mockafka_error"] is None
    assert result["ratio"] == pytest.approx(result["engine"]["rate"] / result["mockafka"]["rate"])
    assert isinstance(result["target_met"], bool)
    assert "tracemalloc" in result["peak_memory_method"]
    assert "ru_maxrss" in result["max_rss_method"]
    assert result["max_rss_bytes"] > 0
    json.dumps(result)  # JSON-ready as it is


def test_text_output_names_every_figure(result: dict[str, Any]) -> None:
    text = bench.format_text(result)
    for needle in (
        "records/s",
        "as-expected",
        "lost=0",
        "duplicated=0",
        f"acknowledged={RECORDS}",
        f"in_log={RECORDS}",
        "events recorded",
        "virtual time",
        "peak memory",
        "ratio engine/mockafka",
        "tracemalloc",
        "ru_maxrss",
    ):
        assert needle in text


def test_main_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mockafka")
    code = bench.main(["--records", str(RECORDS), "--repeat", "2", "--json", "--no-memory"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data.keys() >= TOP_FIELDS
    assert len(data["engine"]["runs_seconds"]) == 2
    assert len(data["mockafka"]["runs_seconds"]) == 2
    assert data["engine"]["peak_memory_bytes"] is None
    _assert_all_delivered(data["engine"], RECORDS)
    assert data["mockafka"]["arrived"] == RECORDS


def test_a_wrong_outcome_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_run = bench._run_engine

    def losing_run(spec: Any) -> Any:
        elapsed, sim, verdict = real_run(spec)
        verdict["outcome"]["lost"] = 1
        return elapsed, sim, verdict

    monkeypatch.setattr(bench, "_run_engine", losing_run)
    code = bench.main(["--records", "200", "--repeat", "1", "--no-memory"])
    assert code == 1
    err = capsys.readouterr().err
    assert "BENCHMARK FAILED" in err
    assert "lost=1" in err


def test_without_mockafka_the_message_is_clear(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "mockafka", None)  # makes the import fail
    code = bench.main(["--records", "200", "--repeat", "1", "--no-memory"])
    assert code == 2
    captured = capsys.readouterr()
    assert "mockafka-py is not installed" in captured.err
    assert "records/s" in captured.out  # the engine is still measured


@pytest.mark.parametrize("argv", [["--records", "0"], ["--repeat", "0"], ["--records", "x"]])
def test_bad_options(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(argv)
    assert exc.value.code == 2


# -- the pipeline: produce, consume, commit after every poll ---------------------------
PIPELINE_ENGINE_FIELDS = ENGINE_FIELDS | {"polls", "offset_commits"}
PIPELINE_MOCKAFKA_FIELDS = (MOCKAFKA_FIELDS - {"arrived"}) | {"consumed", "polls"}


def test_pipeline_engine_consumes_every_record_once(result: dict[str, Any]) -> None:
    pipeline = result["pipeline"]
    assert pipeline["benchmark"] == "pipeline"
    assert pipeline["records"] == RECORDS
    engine = pipeline["engine"]
    assert engine.keys() >= PIPELINE_ENGINE_FIELDS
    _assert_all_delivered(engine, RECORDS)
    outcome = engine["outcome"]
    assert outcome["processed"] == RECORDS
    assert outcome["unseen"] == outcome["reprocessed"] == 0
    assert outcome["poll_skips"] == outcome["nonmonotonic_polls"] == 0
    # Every poll that returned records was followed by one commit.
    assert engine["polls"] == engine["offset_commits"] >= RECORDS // bench.MAX_POLL_RECORDS
    assert engine["peak_memory_bytes"] > 0


def test_pipeline_mockafka_consumed_the_same_records(result: dict[str, Any]) -> None:
    pipeline = result["pipeline"]
    mockafka = pipeline["mockafka"]
    assert mockafka.keys() >= PIPELINE_MOCKAFKA_FIELDS
    assert mockafka["consumed"] == RECORDS
    assert mockafka["per_partition"] == pipeline["engine"]["per_partition"]
    assert mockafka["polls"] >= RECORDS // bench.MAX_POLL_RECORDS
    assert pipeline["ratio"] == pytest.approx(
        pipeline["engine"]["rate"] / pipeline["mockafka"]["rate"]
    )
    assert "ratio engine/mockafka" in bench.format_text(pipeline)
    assert "processed=" in bench.format_text(result)


def test_pipeline_scenario_is_checked_independently() -> None:
    spec = bench.pipeline_spec(300)
    elapsed, sim, verdict = bench._run_engine(spec)
    bench.check_pipeline_run(300, sim, verdict)  # passes
    assert elapsed > 0
    # A record processed twice is caught by the ledger check even if the
    # checker's counts were wrong.
    first = next(iter(sim.ledger.processing.values()))
    first.append(first[0])
    with pytest.raises(bench.BenchmarkFailure, match="exactly once"):
        bench.check_pipeline_run(300, sim, verdict)


def test_main_pipeline_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mockafka")
    code = bench.main(
        ["--records", "500", "--repeat", "1", "--json", "--no-memory", "--pipeline-only"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmark"] == "pipeline"
    assert data.keys() >= TOP_FIELDS
    assert data["engine"]["outcome"]["processed"] == 500
    assert data["mockafka"]["consumed"] == 500


def test_main_produce_only_json(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mockafka")
    code = bench.main(
        ["--records", "500", "--repeat", "1", "--json", "--no-memory", "--produce-only"]
    )
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert data["benchmark"] == "produce"
    assert data["pipeline"] is None


def test_a_wrong_pipeline_outcome_fails_loudly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_run = bench._run_engine

    def reprocessing_run(spec: Any) -> Any:
        elapsed, sim, verdict = real_run(spec)
        if spec.consumers:
            verdict["outcome"]["reprocessed"] = 1
        return elapsed, sim, verdict

    monkeypatch.setattr(bench, "_run_engine", reprocessing_run)
    code = bench.main(["--records", "200", "--repeat", "1", "--no-memory", "--pipeline-only"])
    assert code == 1
    err = capsys.readouterr().err
    assert "BENCHMARK FAILED" in err
    assert "reprocessed=1" in err


def test_produce_and_pipeline_options_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--produce-only", "--pipeline-only"])
    assert exc.value.code == 2

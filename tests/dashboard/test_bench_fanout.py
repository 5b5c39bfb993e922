"""The fan-out benchmark's scenarios are valid and say what they measure."""

from broker.scenario import load_text
from dashboard.management.commands.bench_fanout import BENCH_SCENARIO, bench_scenario


def test_without_a_backlog_the_benchmark_streams_orders_only() -> None:
    assert bench_scenario(0) == BENCH_SCENARIO
    [stream] = load_text(bench_scenario(0), "bench").steps

    assert (stream.at_ms, stream.params["count"], stream.params["interval_ms"]) == (10, 3000, 20)


def test_a_backlog_is_written_to_one_partition_at_once_before_the_stream() -> None:
    backlog, stream = load_text(bench_scenario(100_000), "bench").steps

    assert backlog.at_ms == 0
    assert backlog.params["count"] == 100_000
    assert backlog.params["interval_ms"] == 0
    assert backlog.params["partition"] == 0
    assert stream.params["count"] == 3000

"""The fan-out benchmark: its scenarios, its arithmetic, and a small run of the whole command."""

import io
import re

import pytest
from django.core.management import CommandError, call_command

from broker.scenario import load_text
from dashboard.management.commands.bench_fanout import (
    BENCH_SCENARIO,
    Result,
    bench_scenario,
    bytes_table,
    percentile,
    scenario_names,
    sequence_faults,
)


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


def test_sequence_faults_count_gaps_and_repeats_after_the_snapshot() -> None:
    assert sequence_faults([6, 7, 8], start=5) == (0, 0)
    assert sequence_faults([], start=5) == (0, 0)
    assert sequence_faults([5, 6, 7], start=5) == (0, 1)  # the snapshot's own frame again
    assert sequence_faults([6, 8, 9], start=5) == (1, 0)
    assert sequence_faults([6, 7, 7, 9, 8], start=5) == (1, 2)


def test_percentiles_are_nearest_rank() -> None:
    ordered = [float(i) for i in range(1, 101)]
    assert percentile(ordered, 0.99) == 100.0
    assert percentile(ordered, 0.5) == 51.0
    assert percentile([3.0], 0.99) == 3.0


def test_the_report_says_what_was_measured() -> None:
    result = Result(
        clients=2,
        urls=["http://127.0.0.1:1", "http://127.0.0.1:2"],
        speed="1",
        elapsed=2.0,
        connect_s=0.1,
        frames_sent=40,
        delivered=[40, 39],
        delays=[1.0, 2.0, 3.0],
        gaps=0,
        repeats=0,
        cpu={"clients (this process)": 5.0, "daphne-A": 30.0},
    )
    text = result.text()
    assert "2 attendees + 1 presenter over 2 URLs" in text
    assert "frames sent by the room: 40 (20.0/s)" in text
    assert "frames delivered: 79 (40/s in all, 39..40 per client)" in text
    assert "p50 2.0 ms, p99 3.0 ms, max 3.0 ms" in text
    assert "0 gaps, 0 repeats" in text
    assert "daphne-A 30%" in text


def run(speed: str, wire: list[int], seconds: float, deflate: bool = True) -> Result:
    return Result(
        clients=len(wire),
        urls=["http://127.0.0.1:1"],
        speed=speed,
        elapsed=seconds,
        connect_s=0.1,
        frames_sent=20,
        delivered=[20] * len(wire),
        delays=[1.0],
        gaps=0,
        repeats=0,
        play_s=seconds,
        wire_bytes=wire,
        payload_bytes=[4 * w for w in wire],
        deflate=deflate,
    )


def test_bytes_are_per_attendee_and_per_second_of_play() -> None:
    result = run("1", [10 * 1024, 30 * 1024], 2.0)

    assert result.wire_rate == 10 * 1024
    assert "10.0 KiB/s on the wire (40.0 KiB/s inflated; per-message deflate on)" in (
        result.bytes_line()
    )
    assert "10.0 frames/s, over 2.0 s of play" in result.bytes_line()


def test_the_table_has_a_row_per_scenario_a_column_per_speed_and_the_highest() -> None:
    results = [
        ("a", run("1", [2048], 1.0)),
        ("a", run("beat", [1024], 1.0)),
        ("b", run("1", [4096], 2.0)),
    ]
    text = bytes_table(results, "1")

    assert "| scenario | 1x KiB/s (frames/s) | beat (1/s) KiB/s (frames/s) |" in text
    assert "| a | 2.0 (20.0) | 1.0 (20.0) |" in text
    assert "| b | 2.0 (10.0) | - |" in text
    assert "| **highest** | 2.0 | 1.0 |" in text
    assert "per-message deflate on" in text


def test_scenarios_are_the_engines_built_ins() -> None:
    assert scenario_names(["producer-idempotent", "producer-idempotent"]) == ["producer-idempotent"]
    assert len(scenario_names(["all"])) >= 20
    with pytest.raises(CommandError, match="no built-in scenario 'nope'"):
        scenario_names(["nope"])


def test_a_small_run_on_the_embedded_set_up() -> None:
    """The whole command, briefly: its own Daphne (rooms in-process), a presenter who plays,
    a few attendees; every attendee gets every frame once."""
    out = io.StringIO()
    call_command("bench_fanout", clients=3, seconds=1.0, stdout=out)
    text = out.getvalue()
    assert "3 attendees + 1 presenter over 1 URL" in text
    assert re.search(r"frames sent by the room: [1-9]\d*", text), text
    assert "sequence: 0 gaps, 0 repeats" in text, text
    assert "daphne-A" in text  # the CPU line covers the set-up it started
    # The attendees offer per-message deflate as browsers do, and the lab accepts it.
    assert re.search(r"bytes per attendee: [\d.]+ KiB/s on the wire .*deflate on", text), text


def test_a_built_in_scenario_at_two_speeds_gives_a_table() -> None:
    out = io.StringIO()
    call_command(
        "bench_fanout",
        clients=1,
        seconds=1.0,
        scenario=["producer-acks0-lost"],
        speed="16,beat",
        stdout=out,
    )
    text = out.getvalue()
    assert re.search(
        r"\| producer-acks0-lost \| [\d.]+ \([\d.]+\) \| [\d.]+ \([\d.]+\) \|", text
    ), text


def test_the_command_refuses_contradictory_options() -> None:
    with pytest.raises(CommandError, match="not both"):
        call_command("bench_fanout", url=["http://127.0.0.1:9"], setup="scaleout")
    with pytest.raises(CommandError, match="--backlog"):
        call_command("bench_fanout", backlog=-1)
    with pytest.raises(CommandError, match="--speed"):
        call_command("bench_fanout", speed="3")

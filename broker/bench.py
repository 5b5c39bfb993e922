"""Throughput benchmarks: the engine against mockafka-py.

    python -m broker.bench [--records N] [--repeat K] [--json]
                           [--produce-only | --pipeline-only] [--no-memory]

Two benchmarks, both run by default: ``produce`` (the full produce path) and
``pipeline`` (produce N, then consume N with a commit after every poll).

Engine side: one idempotent producer (acks=all) writes N keyed records to a
topic of 3 partitions replicated 3 times (min.insync.replicas=2), with the
event stream switched on.  The timed region covers building the simulation,
the application producing every record, batching, Produce requests, the
leader's append, follower fetches, the high watermark advancing, the acks
back to the producer, and the checker's verdict.  The run must end with every
record acknowledged, in the committed log exactly once, nothing lost or
duplicated; otherwise the benchmark exits 1.

mockafka side: the same N records (same keys, values and partitions) handed
to ``FakeProducer.produce`` for a 3-partition topic, then ``flush()``, then
counted in the fake store.

Pipeline: the same producer and topic plus one consumer application in its
own group (commit = "after-processing" per batch, processing_ms = 0,
auto.offset.reset = earliest, max.poll.records = 500).  The timed region runs
until every record was produced, replicated, fetched, processed and its
offset committed through ``__consumer_offsets``, plus the verdict; the run
must end with processed == N and nothing lost, unseen or reprocessed.  On the
mockafka side: produce the same N records, then ``FakeConsumer`` subscribes
and calls ``consume(500)`` and ``commit()`` in a loop until it has N records.

Each side runs ``--repeat`` times, the two sides taking turns so that a busy
machine slows both alike, and each side's best (shortest) wall-clock time is
kept.  Peak memory is the ``tracemalloc`` peak of one extra, untimed run per
side (tracing slows allocation, so it is never mixed with timing), plus the
process's ``ru_maxrss``.  Exit codes: 0 measured and correct, 1 a correctness
check failed, 2 bad option or mockafka not installed.

The engine stays standard-library only: mockafka is imported inside
``measure_mockafka``.  See docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NoReturn

from broker.protocol import TopicPartition
from broker.scenario import MAX_RECORDS, ScenarioSpec, load_text
from broker.simulation import Simulation

DEFAULT_RECORDS = 100_000
DEFAULT_REPEAT = 3
TOPIC = "bench"
PARTITIONS = 3
PRODUCER = "p1"
# Python format templates, as a scenario's produce step takes them ({i} is the
# application's message index).  mockafka gets the very same strings.
KEY_TEMPLATE = "key-{i}"
VALUE_TEMPLATE = "value-{i}"
TARGET_RATIO = 1.0
OUTCOME_FIELDS = (
    "produced",
    "acknowledged",
    "failed",
    "in_log",
    "lost",
    "duplicated",
    "reordered",
)
MOCKAFKA_HINT = (
    "mockafka-py is not installed, so there is nothing to compare against; "
    "install the dev extras: .venv/bin/pip install -e '.[dev]' "
    "(or: pip install 'mockafka-py>=0.2.3,<0.3')"
)


class BenchmarkFailure(RuntimeError):
    """A correctness check failed: the figures measured nothing worth printing."""


class MockafkaMissing(RuntimeError):
    """mockafka-py cannot be imported."""


# -- the engine ---------------------------------------------------------------
def scenario_text(records: int) -> str:
    """The benchmark's scenario, in the format of docs/scenarios.md."""
    return f"""\
name = "bench-produce"
title = "Throughput: {records} records, idempotent producer, acks=all, RF 3, 3 partitions"
semantics = "exactly-once"
ordered = true

[cluster]
brokers = 3

[[topics]]
name = "{TOPIC}"
partitions = {PARTITIONS}
"replication.factor" = 3
"min.insync.replicas" = 2

[[producers]]
name = "{PRODUCER}"
[producers.config]
acks = "all"
"enable.idempotence" = true

{_produce_steps(records)}
[expected]
produced = {records}
acknowledged = {records}
failed = 0
in_log = {records}
lost = 0
duplicated = 0
reordered = 0
"""


def partition_counts(records: int) -> list[int]:
    """How many records go to each partition: consecutive thirds, the first
    partitions taking the remainder."""
    each, extra = divmod(records, PARTITIONS)
    return [each + (1 if p < extra else 0) for p in range(PARTITIONS)]


def _produce_steps(records: int) -> str:
    """One produce step per partition, naming the partition: both sides are told
    where each record goes, so neither pays for key hashing (the engine's
    murmur2 is pure Python; mockafka has none)."""
    steps = []
    for partition, count in enumerate(partition_counts(records)):
        if count == 0:
            continue
        steps.append(
            f"""[[steps]]
at_ms = 0
do = "produce"
producer = "{PRODUCER}"
topic = "{TOPIC}"
partition = {partition}
count = {count}
key = "{KEY_TEMPLATE}"
value = "{VALUE_TEMPLATE}"
"""
        )
    return "\n".join(steps)


def engine_spec(records: int) -> ScenarioSpec:
    return load_text(scenario_text(records), "bench-produce")


def _run_engine(spec: ScenarioSpec) -> tuple[float, Simulation, dict[str, Any]]:
    """One timed run: build, produce everything, settle, judge."""
    start = time.perf_counter()
    sim = Simulation(spec, record_events=True)
    verdict = sim.run()
    elapsed = time.perf_counter() - start
    return elapsed, sim, verdict.to_dict()


def check_engine_run(records: int, sim: Simulation, verdict: dict[str, Any]) -> None:
    """Raise ``BenchmarkFailure`` unless every record was acknowledged and sits
    in the committed log exactly once."""
    problems = _produce_problems(records, sim, verdict)
    if problems:
        raise BenchmarkFailure("engine: " + "; ".join(problems))


def _produce_problems(records: int, sim: Simulation, verdict: dict[str, Any]) -> list[str]:
    outcome: dict[str, int] = verdict["outcome"]
    expected = {
        "produced": records,
        "acknowledged": records,
        "failed": 0,
        "in_log": records,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
    }
    problems = [
        f"{key}={outcome.get(key)} (expected {want})"
        for key, want in expected.items()
        if outcome.get(key) != want
    ]
    if verdict["verdict"] != "as-expected":
        problems.append(f"verdict {verdict['verdict']}: {'; '.join(verdict['mismatches'])}")
    if sim.ended != "settled":
        problems.append(f"the run ended by {sim.ended!r}, not settled")
    # Independent of the checker: the committed offsets add up to the record count.
    committed = sum(hw for _log, hw in (sim.cluster.committed(tp) for tp in _partitions()))
    if committed != records:
        problems.append(f"{committed} committed offsets across the partitions, not {records}")
    return problems


def _partitions() -> list[TopicPartition]:
    return [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]


class EngineSide:
    """The engine's measurement: one simulation per timed run."""

    name = "engine"

    def __init__(self, records: int) -> None:
        self.records = records
        self.spec = engine_spec(records)

    def check(self, sim: Simulation, verdict: dict[str, Any]) -> None:
        check_engine_run(self.records, sim, verdict)

    def details(self, sim: Simulation) -> dict[str, Any]:
        return {"per_partition": [sim.cluster.committed(tp)[1] for tp in _partitions()]}

    def once(self) -> tuple[float, dict[str, Any]]:
        """One timed, checked run: (seconds, what it did)."""
        gc.collect()  # the previous run's simulation is freed outside the timing
        elapsed, sim, verdict = _run_engine(self.spec)
        self.check(sim, verdict)
        return elapsed, {
            "outcome": verdict["outcome"],
            "verdict": verdict["verdict"],
            "ended": sim.ended,
            "events_recorded": sim.events.next_seq,
            "events_dropped_from_window": sim.events.dropped,
            "scheduler_actions": sim.scheduler.executed,
            "virtual_time_ms": sim.now_ms,
            **self.details(sim),
        }

    def traced(self) -> None:
        _elapsed, sim, verdict = _run_engine(self.spec)
        self.check(sim, verdict)

    def close(self) -> None:
        pass


# -- mockafka -----------------------------------------------------------------
def bench_records(records: int) -> list[tuple[str, str, int]]:
    """(key, value, partition) for each record: the engine's keys, values and
    partitions, in the order its producer sends them."""
    out = []
    i = 0
    for partition, count in enumerate(partition_counts(records)):
        for _ in range(count):
            out.append((KEY_TEMPLATE.format(i=i), VALUE_TEMPLATE.format(i=i), partition))
            i += 1
    return out


class MockafkaSide:
    """mockafka-py's measurement: a fresh in-memory store per timed run."""

    name = "mockafka"

    def __init__(self, records: int) -> None:
        try:
            from mockafka import FakeProducer
            from mockafka.kafka_store import KafkaStore
        except ImportError as exc:
            raise MockafkaMissing(f"{MOCKAFKA_HINT} ({exc})") from None
        self.records = records
        self._producer_class = FakeProducer
        self._store_class = KafkaStore
        # mockafka never partitions (produce() without a partition raises), while
        # confluent-kafka does it in C inside produce(): partitions are computed
        # here, untimed, so mockafka is charged only for its own work.
        self.batch = bench_records(records)
        try:
            self.version = version("mockafka-py")
        except PackageNotFoundError:  # importable without its distribution metadata
            self.version = "unknown"

    def _fresh_store(self) -> Any:
        """A fresh in-memory cluster with the benchmark's topic (inside the timing)."""
        store = self._store_class(clean=True)
        store.create_partition(TOPIC, PARTITIONS)
        return store

    def _produce_all(self) -> None:
        producer = self._producer_class()
        produce = producer.produce
        for key, value, partition in self.batch:
            produce(TOPIC, value=value, key=key, partition=partition)
        # mockafka ships py.typed, but flush() has no annotations.
        producer.flush()  # type: ignore[no-untyped-call]

    def _run(self) -> tuple[float, dict[str, Any]]:
        store_class = self._store_class
        start = time.perf_counter()
        self._fresh_store()
        self._produce_all()
        counts = [len(store_class.get_messages_in_partition(TOPIC, p)) for p in range(PARTITIONS)]
        elapsed = time.perf_counter() - start
        arrived = sum(counts)
        total = store_class().number_of_message_in_topic(TOPIC)
        if arrived != self.records or total != self.records:
            raise BenchmarkFailure(f"mockafka: {arrived} records arrived, not {self.records}")
        return elapsed, {"arrived": arrived, "per_partition": counts}

    def once(self) -> tuple[float, dict[str, Any]]:
        self._store_class.fresh()  # the previous run's messages go, untimed
        gc.collect()
        return self._run()

    def traced(self) -> None:
        self._store_class.fresh()
        gc.collect()
        self._run()

    def close(self) -> None:
        self._store_class.fresh()


# -- the pipeline: produce N, consume N, commit after every poll ----------------
CONSUMER = "c1"
GROUP = "bench-group"
MAX_POLL_RECORDS = 500
PIPELINE_FIELDS = (
    *OUTCOME_FIELDS,
    "processed",
    "unseen",
    "reprocessed",
    "poll_skips",
    "nonmonotonic_polls",
)


def pipeline_scenario_text(records: int) -> str:
    """The pipeline's scenario: the produce benchmark's cluster, topic, producer
    and steps, plus one consumer that commits after processing each poll."""
    return f"""\
name = "bench-pipeline"
title = "Pipeline: produce {records} records, consume them, commit after every poll"
semantics = "exactly-once"
ordered = true

[cluster]
brokers = 3
"group.initial.rebalance.delay.ms" = 0

[[topics]]
name = "{TOPIC}"
partitions = {PARTITIONS}
"replication.factor" = 3
"min.insync.replicas" = 2

[[producers]]
name = "{PRODUCER}"
[producers.config]
acks = "all"
"enable.idempotence" = true

[[consumers]]
name = "{CONSUMER}"
group = "{GROUP}"
topics = ["{TOPIC}"]
commit = "after-processing"
commit_every = "batch"
processing_ms = 0
[consumers.config]
"auto.offset.reset" = "earliest"
"max.poll.records" = {MAX_POLL_RECORDS}

{_produce_steps(records)}
[expected]
produced = {records}
acknowledged = {records}
failed = 0
in_log = {records}
lost = 0
duplicated = 0
reordered = 0
processed = {records}
unseen = 0
reprocessed = 0
poll_skips = 0
nonmonotonic_polls = 0
"""


def pipeline_spec(records: int) -> ScenarioSpec:
    return load_text(pipeline_scenario_text(records), "bench-pipeline")


def check_pipeline_run(records: int, sim: Simulation, verdict: dict[str, Any]) -> None:
    """Raise ``BenchmarkFailure`` unless the produce side is perfect and every
    record was processed exactly once, with its offset committed."""
    problems = _produce_problems(records, sim, verdict)
    outcome: dict[str, int] = verdict["outcome"]
    expected = {
        "processed": records,
        "unseen": 0,
        "reprocessed": 0,
        "poll_skips": 0,
        "nonmonotonic_polls": 0,
    }
    problems += [
        f"{key}={outcome.get(key)} (expected {want})"
        for key, want in expected.items()
        if outcome.get(key) != want
    ]
    # Independent of the checker: the ledger's processing notes, and the offsets
    # the consumer was told it committed, against each partition's high watermark.
    processing = sim.ledger.processing
    once = sum(1 for done in processing.values() if len(done) == 1)
    if len(processing) != records or once != records:
        problems.append(
            f"{len(processing)} records processed, {once} of them exactly once, not {records}"
        )
    client = sim.consumers[CONSUMER].client
    committed = client.committed if client is not None else {}
    for tp in _partitions():
        hw = sim.cluster.committed(tp)[1]
        if committed.get(tp) != hw:
            problems.append(f"{tp}: committed offset {committed.get(tp)}, high watermark {hw}")
    if problems:
        raise BenchmarkFailure("engine pipeline: " + "; ".join(problems))


class PipelineEngineSide(EngineSide):
    """The engine's pipeline: produce, replicate, fetch, process, commit."""

    def __init__(self, records: int) -> None:
        self.records = records
        self.spec = pipeline_spec(records)

    def check(self, sim: Simulation, verdict: dict[str, Any]) -> None:
        check_pipeline_run(self.records, sim, verdict)

    def details(self, sim: Simulation) -> dict[str, Any]:
        client = sim.consumers[CONSUMER].client
        committed = client.committed if client is not None else {}
        kinds = [e.kind for e in sim.events]
        return {
            # Offsets the group committed: records consumed from each partition.
            "per_partition": [committed.get(tp, 0) for tp in _partitions()],
            "polls": kinds.count("consumer.poll"),
            "offset_commits": kinds.count("offset.committed"),
        }


class PipelineMockafkaSide(MockafkaSide):
    """mockafka-py's pipeline: produce N, then consume(500) + commit() until N."""

    def __init__(self, records: int) -> None:
        super().__init__(records)
        from mockafka import FakeConsumer

        self._consumer_class = FakeConsumer

    def _run(self) -> tuple[float, dict[str, Any]]:
        records = self.records
        start = time.perf_counter()
        store = self._fresh_store()
        self._produce_all()
        consumer = self._consumer_class()
        consumer.subscribe([TOPIC])  # type: ignore[no-untyped-call]
        consume = consumer.consume
        commit = consumer.commit
        counts = [0] * PARTITIONS
        consumed = polls = 0
        while consumed < records:
            messages = consume(num_messages=MAX_POLL_RECORDS)
            if not messages:
                break
            polls += 1
            for message in messages:  # the processing: count per partition
                counts[message.partition()] += 1  # type: ignore[no-untyped-call]
            consumed += len(messages)
            commit(asynchronous=False)  # commitSync of everything polled
        elapsed = time.perf_counter() - start
        # mockafka's commit moves the partition's first offset past what was read.
        committed = [store.get_partition_first_offset(TOPIC, p) for p in range(PARTITIONS)]
        if consumed != records or counts != partition_counts(records) or committed != counts:
            raise BenchmarkFailure(
                f"mockafka pipeline: consumed {consumed} of {records} records "
                f"({counts} per partition, committed {committed})"
            )
        return elapsed, {"consumed": consumed, "per_partition": counts, "polls": polls}


# -- both -----------------------------------------------------------------------
Side = EngineSide | MockafkaSide


def _traced_peak(action: Callable[[], None]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        gc.collect()


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _measure(sides: Sequence[Side], repeat: int, memory: bool) -> list[dict[str, Any]]:
    """Time each side ``repeat`` times, taking turns (engine, mockafka, engine, ...)
    so that a busy machine slows both alike; keep each side's best run."""
    times: list[list[float]] = [[] for _ in sides]
    best: list[dict[str, Any]] = [{} for _ in sides]
    try:
        for _ in range(repeat):
            for i, side in enumerate(sides):
                elapsed, details = side.once()
                if not times[i] or elapsed < min(times[i]):
                    best[i] = details
                times[i].append(elapsed)
        results = []
        for i, side in enumerate(sides):
            seconds = min(times[i])
            results.append(
                {
                    "records": side.records,
                    "seconds": seconds,
                    "rate": side.records / seconds,
                    "runs_seconds": times[i],
                    **best[i],
                    "peak_memory_bytes": _traced_peak(side.traced) if memory else None,
                }
            )
        return results
    finally:
        for side in sides:
            side.close()


def measure_engine(records: int, repeat: int = 1, memory: bool = True) -> dict[str, Any]:
    return _measure([EngineSide(records)], repeat, memory)[0]


def measure_mockafka(records: int, repeat: int = 1, memory: bool = True) -> dict[str, Any]:
    side = MockafkaSide(records)  # imports mockafka, or raises MockafkaMissing
    return {"version": side.version, **_measure([side], repeat, memory)[0]}


def _check_options(records: int, repeat: int) -> None:
    if not 1 <= records <= MAX_RECORDS:
        raise ValueError(f"records must be from 1 to {MAX_RECORDS}, got {records}")
    if repeat < 1:
        raise ValueError(f"repeat must be at least 1, got {repeat}")


def _compare(
    benchmark: str,
    engine_side: EngineSide,
    mockafka_class: type[MockafkaSide],
    records: int,
    repeat: int,
    memory: bool,
) -> dict[str, Any]:
    mockafka_side: MockafkaSide | None = None
    error: str | None = None
    try:
        mockafka_side = mockafka_class(records)
    except MockafkaMissing as exc:
        error = str(exc)
    if mockafka_side is None:
        engine = _measure([engine_side], repeat, memory)[0]
        mockafka = None
    else:
        engine, mockafka = _measure([engine_side, mockafka_side], repeat, memory)
        mockafka = {"version": mockafka_side.version, **mockafka}
        if mockafka["per_partition"] != engine["per_partition"]:
            raise BenchmarkFailure(
                f"{benchmark}: the sides disagree on where records went: "
                f"engine {engine['per_partition']}, mockafka {mockafka['per_partition']}"
            )
    ratio = engine["rate"] / mockafka["rate"] if mockafka is not None else None
    return {
        "benchmark": benchmark,
        "records": records,
        "repeat": repeat,
        "timing": "time.perf_counter wall clock; runs alternate between the sides; best run",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "engine": engine,
        "mockafka": mockafka,
        "mockafka_error": error,
        "ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "target_met": None if ratio is None else ratio >= TARGET_RATIO,
        "peak_memory_method": (
            "tracemalloc peak of one extra untimed run per side"
            if memory
            else "not measured (--no-memory)"
        ),
        "max_rss_bytes": _max_rss_bytes(),
        "max_rss_method": "resource.getrusage(RUSAGE_SELF).ru_maxrss, whole process",
    }


def run_pipeline(
    records: int = DEFAULT_RECORDS, repeat: int = DEFAULT_REPEAT, memory: bool = True
) -> dict[str, Any]:
    """The produce-consume-commit pipeline on both sides, in the same shape as
    ``run_benchmark``'s result (``benchmark`` is ``"pipeline"``)."""
    _check_options(records, repeat)
    return _compare(
        "pipeline", PipelineEngineSide(records), PipelineMockafkaSide, records, repeat, memory
    )


def run_benchmark(
    records: int = DEFAULT_RECORDS,
    repeat: int = DEFAULT_REPEAT,
    memory: bool = True,
    pipeline: bool = True,
) -> dict[str, Any]:
    """Measure both sides; raises ``BenchmarkFailure`` on a correctness failure.

    The result is the produce benchmark's, with the pipeline's result under
    ``pipeline`` (None when ``pipeline`` is false).  Without mockafka the engine
    is still measured: ``mockafka`` and ``ratio`` are None and
    ``mockafka_error`` says why.
    """
    _check_options(records, repeat)
    result = _compare("produce", EngineSide(records), MockafkaSide, records, repeat, memory)
    result["pipeline"] = run_pipeline(records, repeat, memory) if pipeline else None
    if pipeline:  # the process's peak now includes the pipeline's runs
        result["max_rss_bytes"] = result["pipeline"]["max_rss_bytes"]
    return result


# -- output -----------------------------------------------------------------------
def _mib(value: int | None) -> str:
    return "not measured" if value is None else f"{value / 2**20:.1f} MiB"


def _runs(times: Sequence[float]) -> str:
    return " ".join(f"{t:.3f}" for t in times)


def format_text(result: dict[str, Any]) -> str:
    """The produce benchmark, then the pipeline (or a pipeline-only result)."""
    if result["benchmark"] == "pipeline":
        parts = [_format_pipeline(result)]
    else:
        parts = [_format_produce(result)]
        if result.get("pipeline") is not None:
            parts.append(_format_pipeline(result["pipeline"]))
    return "\n\n".join(parts) + "\n\n" + _format_memory(result)


def _format_produce(result: dict[str, Any]) -> str:
    engine = result["engine"]
    outcome = engine["outcome"]
    dropped = engine["events_dropped_from_window"]
    lines = [
        f"Delivery Lab produce benchmark: {result['records']:,} records, "
        f"best of {result['repeat']} (Python {result['python']}, {result['cpus']} CPUs)",
        "",
        "engine: idempotent producer, acks=all, replication factor 3, 3 partitions, "
        "event stream on",
        f"  rate             {engine['rate']:,.0f} records/s  "
        f"(best {engine['seconds']:.3f} s; runs {_runs(engine['runs_seconds'])} s)",
        f"  verdict          {engine['verdict']}: "
        + " ".join(f"{k}={outcome[k]}" for k in OUTCOME_FIELDS),
        f"  committed        {' / '.join(str(n) for n in engine['per_partition'])} "
        "per partition (below the high watermark)",
        f"  events recorded  {engine['events_recorded']:,}"
        + (f" ({dropped:,} fell out of the kept window)" if dropped else ""),
        f"  scheduler        {engine['scheduler_actions']:,} actions run",
        f"  virtual time     {engine['virtual_time_ms']:,} ms (ended: {engine['ended']})",
        f"  peak memory      {_mib(engine['peak_memory_bytes'])}",
        "",
    ]
    mockafka = result["mockafka"]
    if mockafka is None:
        lines += [f"mockafka: NOT MEASURED: {result['mockafka_error']}"]
    else:
        lines += [
            f"mockafka-py {mockafka['version']}: FakeProducer.produce x {result['records']:,} "
            "+ flush(), 3-partition topic",
            f"  rate             {mockafka['rate']:,.0f} records/s  "
            f"(best {mockafka['seconds']:.3f} s; runs {_runs(mockafka['runs_seconds'])} s)",
            f"  arrived          {mockafka['arrived']:,} "
            f"({' / '.join(str(n) for n in mockafka['per_partition'])} per partition)",
            f"  peak memory      {_mib(mockafka['peak_memory_bytes'])}",
            "",
            _ratio_line(result),
        ]
    return "\n".join(lines)


def _format_pipeline(result: dict[str, Any]) -> str:
    engine = result["engine"]
    outcome = engine["outcome"]
    dropped = engine["events_dropped_from_window"]
    lines = [
        f"Delivery Lab pipeline benchmark: produce {result['records']:,} records, consume "
        f"them, commit after every poll; best of {result['repeat']} "
        f"(Python {result['python']}, {result['cpus']} CPUs)",
        "",
        "engine: the same producer and topic; one consumer, commit after processing each "
        f"poll, processing_ms=0, max.poll.records={MAX_POLL_RECORDS}, event stream on",
        f"  rate             {engine['rate']:,.0f} records/s  "
        f"(best {engine['seconds']:.3f} s; runs {_runs(engine['runs_seconds'])} s)",
        f"  verdict          {engine['verdict']}: "
        + " ".join(f"{k}={outcome[k]}" for k in PIPELINE_FIELDS),
        f"  consumed         {' / '.join(str(n) for n in engine['per_partition'])} "
        "per partition (the group's committed offsets)",
        f"  polls / commits  {engine['polls']:,} polls returned records, "
        f"{engine['offset_commits']:,} offset commits stored",
        f"  events recorded  {engine['events_recorded']:,}"
        + (f" ({dropped:,} fell out of the kept window)" if dropped else ""),
        f"  scheduler        {engine['scheduler_actions']:,} actions run",
        f"  virtual time     {engine['virtual_time_ms']:,} ms (ended: {engine['ended']})",
        f"  peak memory      {_mib(engine['peak_memory_bytes'])}",
        "",
    ]
    mockafka = result["mockafka"]
    if mockafka is None:
        lines += [f"mockafka: NOT MEASURED: {result['mockafka_error']}"]
    else:
        lines += [
            f"mockafka-py {mockafka['version']}: FakeProducer.produce x {result['records']:,} "
            f"+ flush(), then FakeConsumer consume({MAX_POLL_RECORDS}) + commit() until "
            "every record is read",
            f"  rate             {mockafka['rate']:,.0f} records/s  "
            f"(best {mockafka['seconds']:.3f} s; runs {_runs(mockafka['runs_seconds'])} s)",
            f"  consumed         {mockafka['consumed']:,} "
            f"({' / '.join(str(n) for n in mockafka['per_partition'])} per partition) "
            f"in {mockafka['polls']:,} polls",
            f"  peak memory      {_mib(mockafka['peak_memory_bytes'])}",
            "",
            _ratio_line(result),
        ]
    return "\n".join(lines)


def _ratio_line(result: dict[str, Any]) -> str:
    return (
        f"ratio engine/mockafka: {result['ratio']:.3f} (target >= "
        f"{result['target_ratio']:g}: {'met' if result['target_met'] else 'NOT MET'})"
    )


def _format_memory(result: dict[str, Any]) -> str:
    return (
        f"peak memory: {result['peak_memory_method']}\n"
        f"process max RSS: {_mib(result['max_rss_bytes'])} ({result['max_rss_method']})"
    )


# -- command line -------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m broker.bench",
        description="Produce and produce-consume-commit throughput of the simulated cluster "
        "against mockafka-py.",
    )
    parser.add_argument(
        "--records",
        type=_count(1, MAX_RECORDS),
        default=DEFAULT_RECORDS,
        help=f"records to produce on each side (default {DEFAULT_RECORDS:,})",
    )
    parser.add_argument(
        "--repeat",
        type=_count(1, 100),
        default=DEFAULT_REPEAT,
        help=f"timed runs per side; the best counts (default {DEFAULT_REPEAT})",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--no-memory", action="store_true", help="skip the tracemalloc runs (faster)"
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--produce-only", action="store_true", help="only the produce benchmark")
    which.add_argument(
        "--pipeline-only",
        action="store_true",
        help="only the pipeline benchmark (produce, consume, commit after every poll)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if "--wire" in given:  # real clients over the wire: see broker/wire/bench.py
        from broker.wire.bench import main as wire_main

        return wire_main([a for a in given if a != "--wire"])
    args = _parser().parse_args(argv)
    try:
        if args.pipeline_only:
            result = run_pipeline(args.records, args.repeat, memory=not args.no_memory)
        else:
            result = run_benchmark(
                args.records,
                args.repeat,
                memory=not args.no_memory,
                pipeline=not args.produce_only,
            )
    except BenchmarkFailure as exc:
        print(f"BENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_text(result))
    if result["mockafka"] is None:
        print(f"error: {result['mockafka_error']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

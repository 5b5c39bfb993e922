"""Live experiments in the engine: "send N more", configure and start-consumer commands, with
the offsets, assignments and verdicts a user would see, their refusals, and determinism."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from broker.scenario import ScenarioError, load, load_text, step_parser
from broker.simulation import Simulation


def started(name: str) -> tuple[Simulation, Any]:
    spec = load(name)
    return Simulation(spec), step_parser(spec)


def press(sim: Simulation, parse: Any, raw: dict[str, Any]) -> None:
    sim.submit(parse(raw, "command", sim.now_ms))


def log(sim: Simulation, partition: str) -> list[tuple[int, str]]:
    return sim.committed_logs()[partition]


def details(sim: Simulation, kind: str) -> list[str]:
    return [f"{e.time_ms} {e.actor}: {e.detail}" for e in sim.events if e.kind == kind]


# -- send N more ------------------------------------------------------------------------------
def test_sending_three_more_after_the_script_appends_three_new_offsets() -> None:
    sim, parse = started("producer-acks0-lost")
    sim.run()
    assert sim.ended == "settled"
    assert log(sim, "clicks-0") == [(0, "p1-0"), (1, "p1-2"), (2, "p1-3")]

    press(sim, parse, {"do": "produce", "producer": "p1", "topic": "clicks", "count": 3})
    verdict = sim.run()

    assert log(sim, "clicks-0")[3:] == [(3, "p1-4"), (4, "p1-5"), (5, "p1-6")]
    leader = sim.snapshot()["partitions"][0]["records"]
    assert [(r["offset"], r["value"]) for r in leader[3:]] == [(3, "v4"), (4, "v5"), (5, "v6")]
    assert verdict.outcome["produced"] == 7
    assert verdict.outcome["lost"] == 1  # the script's lost click, and no other


def test_a_send_more_beyond_the_records_limit_is_refused_and_changes_nothing() -> None:
    sim, parse = started("producer-acks0-lost")
    step = parse({"do": "produce", "producer": "p1", "topic": "clicks", "count": 1_000_000}, "c", 0)

    with pytest.raises(ScenarioError) as refused:
        sim.submit(step)

    assert "more than 1000000 records" in str(refused.value)
    assert sim.commands == [] and sim.records_requested == 4


# -- configure a producer -----------------------------------------------------------------
def lost_answer_then_three_more(configure: dict[str, Any] | None) -> Simulation:
    """producer-retry-duplicate to its end (one duplicate, p1-0), then optionally a configure,
    then a lost Produce answer and three more messages."""
    sim, parse = started("producer-retry-duplicate")
    sim.run()
    if configure is not None:
        press(sim, parse, {"do": "configure", "producer": "p1", **configure})
    press(sim, parse, {"do": "drop-response", "api": "Produce", "partition": "orders-0"})
    press(sim, parse, {"do": "produce", "producer": "p1", "topic": "orders", "count": 3})
    sim.run()
    return sim


def test_without_idempotence_the_lost_answer_duplicates_the_new_messages() -> None:
    sim = lost_answer_then_three_more(None)

    # The three went in one batch: its retry appends all three again.
    assert log(sim, "orders-0")[4:] == [
        (4, "p1-3"),
        (5, "p1-4"),
        (6, "p1-5"),
        (7, "p1-3"),
        (8, "p1-4"),
        (9, "p1-5"),
    ]


def test_idempotence_turned_on_mid_run_stops_the_duplicate_of_later_messages() -> None:
    sim = lost_answer_then_three_more({"enable.idempotence": True})

    assert log(sim, "orders-0") == [
        (0, "p1-0"),
        (1, "p1-0"),  # the script's duplicate stays: it happened before the change
        (2, "p1-1"),
        (3, "p1-2"),
        (4, "p1-3"),
        (5, "p1-4"),
        (6, "p1-5"),
    ]
    [change] = details(sim, "app.configure")
    assert change.endswith(
        "p1: acks=all, enable.idempotence=true, max.in.flight.requests.per.connection=1 "
        "(was acks=all, enable.idempotence=false, max.in.flight.requests.per.connection=1): "
        "close() completes the pending sends, then a new producer"
    )
    assert details(sim, "app.reconfigured") == [
        f"{sim.commands[0][0]} p1: closed; a new producer with acks=all (idempotent: new "
        "producer id)"
    ]
    assert sim.snapshot()["producers"][0]["producer_id"] == 0


def test_close_completes_the_pending_sends_before_the_new_producer_takes_over() -> None:
    # At 20 ms the first batch's answer is lost: the old client retries it after
    # request.timeout.ms (3000 ms), then closes; the new, idempotent producer sends the rest.
    sim, parse = started("producer-retry-duplicate")
    sim.run_until(20)
    press(sim, parse, {"do": "configure", "producer": "p1", "enable.idempotence": True})
    press(sim, parse, {"do": "produce", "producer": "p1", "topic": "orders", "count": 2})
    sim.run()

    [closed] = details(sim, "app.reconfigured")
    assert int(closed.split()[0]) > 3000
    assert log(sim, "orders-0") == [
        (0, "p1-0"),
        (1, "p1-0"),
        (2, "p1-1"),
        (3, "p1-2"),
        (4, "p1-3"),
        (5, "p1-4"),
    ]


def test_a_configure_before_the_run_starts_is_the_same_run_as_that_config_in_the_file() -> None:
    spec = load("producer-retry-duplicate")
    sim = Simulation(spec)
    press(sim, step_parser(spec), {"do": "configure", "producer": "p1", "acks": 1})
    sim.run()
    text = Path(spec.source).read_text()
    edited = load_text(text.replace('acks = "all"', "acks = 1"), spec.name)
    reference = Simulation(edited)
    reference.run()

    def without_the_command(trace: list[str]) -> list[str]:
        return [line for line in trace if "configure" not in line]

    assert sim.producers["p1"].config.acks == 1
    assert without_the_command(sim.trace(include_quiet=True)) == reference.trace(include_quiet=True)
    assert details(sim, "app.configure") == [
        "0 p1: acks=1, enable.idempotence=false, max.in.flight.requests.per.connection=1 "
        "(was acks=all, enable.idempotence=false, max.in.flight.requests.per.connection=1): "
        "from when the run starts"
    ]


@pytest.mark.parametrize(
    ("name", "raw", "error"),
    [
        (
            "producer-retry-duplicate",
            {"acks": 1, "enable.idempotence": True},
            'command."enable.idempotence": true is incompatible with these settings (Kafka '
            "refuses it too): acks must be all",
        ),
        (
            "producer-idempotent",
            {"max.in.flight.requests.per.connection": 6, "enable.idempotence": True},
            'command."enable.idempotence": true is incompatible with these settings (Kafka '
            "refuses it too): max.in.flight.requests.per.connection must be <= 5",
        ),
        (
            "txn-zombie-fenced",
            {"enable.idempotence": False},
            "command.producer: needs idempotence (Kafka refuses a transactional.id without it): "
            "enable.idempotence is false",
        ),
    ],
)
def test_a_configure_kafka_refuses_names_the_problem_and_changes_nothing(
    name: str, raw: dict[str, Any], error: str
) -> None:
    sim, parse = started(name)
    sim.run_until(15)
    before = sim.trace(include_quiet=True)

    with pytest.raises(ScenarioError) as refused:
        sim.check(parse({"do": "configure", "producer": "p1", **raw}, "command", sim.now_ms))

    assert str(refused.value) == error
    assert sim.trace(include_quiet=True) == before and sim.commands == []


def test_an_explicit_idempotence_set_earlier_still_refuses_acks_1() -> None:
    sim, parse = started("producer-retry-duplicate")
    press(sim, parse, {"do": "configure", "producer": "p1", "enable.idempotence": True})
    sim.run_until(15)

    with pytest.raises(ScenarioError) as refused:
        press(sim, parse, {"do": "configure", "producer": "p1", "acks": 1})

    assert str(refused.value) == (
        "command.acks: p1 has enable.idempotence=true set, which Kafka refuses with this: acks "
        "must be all (set enable.idempotence to false in the same change)"
    )
    press(sim, parse, {"do": "configure", "producer": "p1", "acks": 1, "enable.idempotence": False})
    sim.run()
    assert sim.producers["p1"].closing is None
    assert sim.producers["p1"].config.acks == 1


def test_the_parser_refuses_what_does_not_fit_a_configure() -> None:
    parse = step_parser(load("consumer-commit-after-processing"))
    cases: dict[str, dict[str, Any]] = {
        "command: nothing to configure: give at least one of acks, enable.idempotence, "
        "max.in.flight.requests.per.connection": {"producer": "p1"},
        'command."isolation.level": not a setting of producer p1 (its settings: acks, '
        "enable.idempotence, max.in.flight.requests.per.connection)": {
            "producer": "p1",
            "isolation.level": "read_committed",
        },
        "command: configure names one application: a producer, a consumer or a processor": {
            "producer": "p1",
            "consumer": "billing",
            "acks": 1,
        },
        "command.commit: 'sometimes' is not one of: auto, before-processing, after-processing, "
        "none": {"consumer": "billing", "commit": "sometimes"},
        "command.consumer: no consumer 'nobody' (declared: billing)": {
            "consumer": "nobody",
            "sink": "none",
        },
    }
    for error, raw in cases.items():
        with pytest.raises(ScenarioError) as refused:
            parse({"do": "configure", **raw}, "command", 0)
        assert str(refused.value) == error


# -- configure a consumer -----------------------------------------------------------------
def test_read_committed_from_the_start_makes_the_peek_consumer_skip_aborted_data() -> None:
    plain, _parse = started("txn-abort-read-committed")
    assert plain.run().outcome["aborted_reads"] > 0
    sim, parse = started("txn-abort-read-committed")
    peek = next(
        c for c in sim.consumers.values() if c.spec.config.isolation_level == ("read_uncommitted")
    )

    press(
        sim, parse, {"do": "configure", "consumer": peek.name, "isolation.level": "read_committed"}
    )

    assert sim.run().outcome["aborted_reads"] == 0


def test_a_consumer_configured_mid_run_leaves_and_rejoins_from_the_committed_offset() -> None:
    sim, parse = started("consumer-commit-after-processing")
    sim.run()
    press(sim, parse, {"do": "configure", "consumer": "billing", "commit": "before-processing"})
    press(sim, parse, {"do": "produce", "producer": "p1", "topic": "orders", "count": 2})
    sim.run()

    consumer = sim.snapshot()["consumers"][0]
    assert (consumer["instance"], consumer["commit"]) == ("billing#3", "before-processing")
    assert consumer["partitions"][0]["committed"] == 10
    assert any(
        "billing#3: starts at the committed offset" in line
        for line in [f"{e.actor}: {e.detail}" for e in sim.events if e.kind == "consumer.position"]
    )
    assert sim.verdict().outcome["processed"] == 10


# -- start a consumer -------------------------------------------------------------------------
def test_a_started_consumer_joins_the_group_and_the_sticky_assignor_moves_one_partition() -> None:
    sim, parse = started("consumer-cooperative-rebalance")
    sim.run()

    press(sim, parse, {"do": "start-consumer"})
    sim.run()

    owned = {
        c["name"]: [p["partition"] for p in c["partitions"]] for c in sim.snapshot()["consumers"]
    }
    assert owned == {
        "billing-a": ["orders-0", "orders-1"],
        "billing-b": ["orders-2"],
        "c3": ["orders-3"],
    }
    assert sim.verdict().verdict == "as-expected"


def test_without_consumers_a_started_one_reads_the_topic_from_the_start_in_a_new_group() -> None:
    sim, parse = started("producer-acks0-lost")
    sim.run()

    press(sim, parse, {"do": "start-consumer"})
    verdict = sim.run()

    [consumer] = sim.snapshot()["consumers"]
    assert (consumer["name"], consumer["group"]) == ("c1", "readers")
    assert consumer["partitions"] == [
        {"partition": "clicks-0", "position": 3, "committed": 3, "high_watermark": 3}
    ]
    assert verdict.outcome["processed"] == 3
    assert details(sim, "topic.created")[0].endswith(
        "__consumer_offsets created for the first consumer group (3 replica(s))"
    )


def test_a_started_consumer_can_be_named_by_later_commands_but_not_before() -> None:
    sim, parse = started("consumer-cooperative-rebalance")
    sim.run()
    with pytest.raises(ScenarioError) as refused:
        press(sim, parse, {"do": "crash-consumer", "consumer": "c3"})
    assert str(refused.value) == (
        "command.consumer: no consumer 'c3' in this run (consumers: billing-a, billing-b)"
    )

    press(sim, parse, {"do": "start-consumer"})
    press(sim, parse, {"do": "crash-consumer", "consumer": "c3"})
    sim.run()

    assert [c["alive"] for c in sim.snapshot()["consumers"]] == [True, True, False]


def test_start_consumer_is_bounded_by_the_consumer_limit() -> None:
    sim, parse = started("producer-acks0-lost")
    for _ in range(16):
        press(sim, parse, {"do": "start-consumer"})

    with pytest.raises(ScenarioError) as refused:
        press(sim, parse, {"do": "start-consumer"})

    assert str(refused.value) == "command: this run has 16 consumers, the most it may have"


# -- determinism ------------------------------------------------------------------------------
def test_the_same_commands_give_the_same_trace() -> None:
    def play() -> list[str]:
        sim, parse = started("consumer-zombie-rebalance")
        sim.run_until(500)
        press(sim, parse, {"do": "start-consumer", "group": "billing"})
        press(sim, parse, {"do": "configure", "producer": "p1", "acks": 1})
        press(sim, parse, {"do": "produce", "producer": "p1", "topic": "orders", "count": 5})
        sim.run_until(4000)
        press(sim, parse, {"do": "configure", "consumer": "c3", "commit": "auto"})
        sim.run()
        return sim.trace(include_quiet=True)

    first = play()
    assert first == play()
    assert any("c3#2" in line for line in first)


# -- configure a processor --------------------------------------------------------------------
def test_a_processor_configured_mid_run_restarts_between_transactions_and_loses_nothing() -> None:
    sim, parse = started("txn-read-process-write-crash")
    sim.run()
    press(
        sim,
        parse,
        {
            "do": "configure",
            "processor": "enricher",
            "isolation.level": "read_uncommitted",
            "max.in.flight.requests.per.connection": 2,
        },
    )
    press(sim, parse, {"do": "produce", "producer": "p1", "topic": "orders", "count": 4})
    verdict = sim.run()

    [processor] = sim.snapshot()["processors"]
    assert (processor["instance"], processor["isolation_level"], processor["max_in_flight"]) == (
        "enricher#3",
        "read_uncommitted",
        2,
    )
    assert (verdict.outcome["lost"], verdict.outcome["duplicated"]) == (0, 0)
    assert len(details(sim, "app.reconfigured")) == 1
    with pytest.raises(ScenarioError) as refused:
        parse({"do": "configure", "processor": "enricher", "acks": 1}, "command", 0)
    assert str(refused.value) == (
        "command.acks: not a setting of processor enricher (its settings: isolation.level, "
        "max.in.flight.requests.per.connection)"
    )


# -- in a scenario file -----------------------------------------------------------------------
FILE = """
semantics = "at-least-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[[steps]]
at_ms = 0
do = "produce"
producer = "p1"
topic = "orders"
count = 3
"""


def test_a_file_names_a_started_consumer_only_after_a_start_consumer_step() -> None:
    crash = '[[steps]]\nat_ms = 50\ndo = "crash-consumer"\nconsumer = "c1"\n'
    with pytest.raises(ScenarioError) as refused:
        load_text(FILE + crash, "f")
    assert str(refused.value) == "steps[1].consumer: no consumer 'c1' (declared: none)"

    start = '[[steps]]\nat_ms = 10\ndo = "start-consumer"\n'
    sim = Simulation(load_text(FILE + start + crash, "f"))
    sim.run()

    assert [(c["name"], c["alive"]) for c in sim.snapshot()["consumers"]] == [("c1", False)]
    typo = crash.replace('"c1"', '"c2"')
    sim = Simulation(load_text(FILE + start + typo, "f"))
    sim.run()
    assert details(sim, "command.refused") == ["50 script: no consumer 'c2'"]

"""Every built-in scenario reaches its declared verdict, for several seeds, and shows the fact it
was written to teach (checked in the ledger, the final logs and the event stream)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from broker.events import Event
from broker.scenario import builtin_names, load
from broker.simulation import Simulation

SEEDS = (1, 2, 3, 4, 5)
PRODUCER_COUNTS = (
    "produced",
    "acknowledged",
    "failed",
    "in_log",
    "lost",
    "duplicated",
    "reordered",
)

BUILTINS = {
    "producer-acks-all-failover",
    "producer-acks0-lost",
    "producer-acks1-failover",
    "producer-idempotent",
    "producer-reorder",
    "producer-restart-duplicate",
    "producer-retry-duplicate",
}


def run(name: str, seed: int | None = None) -> Simulation:
    sim = Simulation.from_scenario(load(name), seed=seed)
    sim.run()
    return sim


def events(sim: Simulation, kind: str) -> Iterator[Event]:
    return (e for e in sim.events if e.kind == kind)


def logs(sim: Simulation) -> dict[str, list[tuple[int, str]]]:
    """The committed logs of the scenario's own topics (internal topics left out)."""
    return {p: log for p, log in sim.committed_logs().items() if not p.startswith("__")}


def anomalies(sim: Simulation) -> list[tuple[str, str, str | None, tuple[int, ...], bool]]:
    return [
        (a.kind, a.message_id, a.partition, a.offsets, a.allowed) for a in sim.verdict().anomalies
    ]


def test_the_builtin_scenarios_are_the_documented_ones() -> None:
    assert set(builtin_names()) >= BUILTINS


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_reaches_its_declared_verdict(name: str, seed: int) -> None:
    sim = run(name, seed)
    verdict = sim.verdict()

    assert verdict.verdict == "as-expected", verdict.mismatches
    assert verdict.mismatches == ()
    assert sim.ended == "settled"
    assert sim.spec.expected, f"{name} declares no [expected] outcome"


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_is_deterministic(name: str) -> None:
    first, second = run(name, 3), run(name, 3)

    assert first.trace(include_quiet=True) == second.trace(include_quiet=True)
    assert first.verdict() == second.verdict()


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_narrates_its_steps(name: str) -> None:
    spec = load(name)

    assert spec.title != spec.name
    assert spec.description.strip()
    assert all(step.narration for step in spec.steps)


# -- producer-retry-duplicate ------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_retry_duplicate_writes_the_first_order_at_offsets_0_and_1(seed: int) -> None:
    sim = run("producer-retry-duplicate", seed)

    assert logs(sim) == {"orders-0": [(0, "p1-0"), (1, "p1-0"), (2, "p1-1"), (3, "p1-2")]}
    assert anomalies(sim) == [("duplicate", "p1-0", "orders-0", (0, 1), True)]
    outcome = sim.verdict().outcome
    assert {k: outcome[k] for k in PRODUCER_COUNTS} == {
        "produced": 3,
        "acknowledged": 3,
        "failed": 0,
        "in_log": 3,
        "lost": 0,
        "duplicated": 1,
        "reordered": 0,
    }
    # The producer was never told about offset 0: its only answer is the retry's.
    assert sim.ledger.messages["p1-0"].acks == (("orders-0", 1),)
    assert sim.ledger.messages["p1-0"].attempts == 2
    assert sim.ledger.messages["p1-0"].sends == 1


def test_retry_duplicate_retries_after_the_request_timeout() -> None:
    sim = run("producer-retry-duplicate")

    first_send = next(events(sim, "produce.send"))
    [timeout] = events(sim, "request.timeout")
    [retry] = events(sim, "produce.retry")
    assert timeout.time_ms == first_send.time_ms + 3000  # request.timeout.ms
    assert timeout.error == retry.error == "REQUEST_TIMED_OUT"
    appends = [(e.actor, e.offset) for e in events(sim, "produce.append")]
    assert appends == [("broker-1", 0), ("broker-1", 1), ("broker-1", 2)]


# -- producer-idempotent -------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_idempotent_retry_is_answered_with_the_original_offset(seed: int) -> None:
    sim = run("producer-idempotent", seed)

    duplicates = list(events(sim, "produce.duplicate"))
    assert [(e.actor, e.partition, e.offset) for e in duplicates] == [
        ("broker-1", "orders-0", 0),
        ("broker-1", "orders-0", 1),
        ("broker-1", "orders-0", 2),
    ]
    assert "answered with the original offset" in duplicates[0].detail
    assert logs(sim) == {"orders-0": [(0, "p1-0"), (1, "p1-1"), (2, "p1-2")]}
    assert [list(sim.ledger.messages[f"p1-{i}"].acks) for i in range(3)] == [
        [("orders-0", 0)],
        [("orders-0", 1)],
        [("orders-0", 2)],
    ]
    assert all(sim.ledger.messages[f"p1-{i}"].attempts == 2 for i in range(3))
    assert anomalies(sim) == []


def test_idempotent_retry_keeps_its_producer_id_epoch_and_sequence() -> None:
    sim = run("producer-idempotent")

    sends = [e.detail for e in events(sim, "produce.send") if "[p1-0]" in e.detail]
    assert sends == [
        "[p1-0] PID 0 epoch 0 seq 0..0 attempt 1 acks=all",
        "[p1-0] PID 0 epoch 0 seq 0..0 attempt 2 acks=all",
    ]
    assert list(events(sim, "producer.epoch-bump")) == []


# -- producer-restart-duplicate -------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_restart_duplicate_resends_under_a_new_producer_id(seed: int) -> None:
    sim = run("producer-restart-duplicate", seed)

    assigned = [e.detail for e in events(sim, "producer-id.assigned")]
    assert assigned == ["PID 0 epoch 0", "PID 1 epoch 0"]
    assert logs(sim) == {
        "orders-0": [
            (0, "p1-0"),
            (1, "p1-1"),
            (2, "p1-2"),
            (3, "p1-0"),
            (4, "p1-1"),
            (5, "p1-2"),
        ]
    }
    # Exactly-once is the declared semantics, so these duplicates are failures.
    assert anomalies(sim) == [
        ("duplicate", "p1-0", "orders-0", (0, 3), False),
        ("duplicate", "p1-1", "orders-0", (1, 4), False),
        ("duplicate", "p1-2", "orders-0", (2, 5), False),
    ]
    assert list(events(sim, "produce.duplicate")) == []


def test_restart_duplicate_resends_every_unacknowledged_message() -> None:
    sim = run("producer-restart-duplicate")

    [restart] = events(sim, "app.restart")
    assert restart.detail == (
        "incarnation 2: a new producer (new producer id); resending 3 unacknowledged message(s)"
    )
    # The lost answer stalled the connection, so the later answers never arrived either.
    drops = [e.detail for e in events(sim, "net.drop-response")]
    assert drops[0].endswith(" lost")
    assert all(d.endswith("connection stalled") for d in drops[1:])
    assert all(sim.ledger.messages[f"p1-{i}"].sends == 2 for i in range(3))


# -- producer-acks1-failover -------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_acks1_failover_truncates_acknowledged_records_from_broker_1(seed: int) -> None:
    sim = run("producer-acks1-failover", seed)

    [truncation] = sim.ledger.truncations
    assert (truncation.broker, truncation.partition, truncation.offset) == (1, "orders-0", 0)
    assert truncation.removed == ((0, "p1-0"), (1, "p1-1"), (2, "p1-2"))
    # Every one of them had been acknowledged, at the offsets the new leader now reuses.
    assert [list(sim.ledger.messages[f"p1-{i}"].acks) for i in range(5)] == [
        [("orders-0", 0)],
        [("orders-0", 1)],
        [("orders-0", 2)],
        [("orders-0", 0)],
        [("orders-0", 1)],
    ]
    assert logs(sim) == {"orders-0": [(0, "p1-3"), (1, "p1-4")]}
    assert anomalies(sim) == [
        ("lost", "p1-0", "orders-0", (0,), False),
        ("lost", "p1-1", "orders-0", (1,), False),
        ("lost", "p1-2", "orders-0", (2,), False),
    ]
    [lost, *_] = sim.verdict().anomalies
    assert "broker-1 truncated it away from orders-0@0" in lost.explanation


def test_acks1_failover_elects_broker_2_after_the_session_timeout() -> None:
    sim = run("producer-acks1-failover")

    [crash] = events(sim, "broker.crash")
    [fenced] = events(sim, "broker.fenced")
    [elected] = events(sim, "leader.elected")
    # The controller stopped hearing broker-1 when it was cut off at 0 ms, before
    # the crash: fenced broker.session.timeout.ms (2000) after that.
    assert (crash.time_ms, fenced.time_ms) == (1000, 2000)
    assert elected.time_ms == 2000
    assert elected.detail.startswith("broker-2 leads at epoch 1, ISR [2, 3]")
    [truncate] = events(sim, "replica.truncate")
    assert (truncate.actor, truncate.partition, truncate.offset) == ("broker-1", "orders-0", 0)
    [partition] = [p for p in sim.snapshot()["partitions"] if p["name"] == "orders-0"]
    assert partition["isr"] == [1, 2, 3]


# -- producer-acks-all-failover ------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_acks_all_failover_loses_nothing_acknowledged(seed: int) -> None:
    sim = run("producer-acks-all-failover", seed)

    assert logs(sim) == {"orders-0": [(0, "p1-0"), (1, "p1-1"), (2, "p1-2")]}
    assert anomalies(sim) == []
    # broker-1 appended p1-0 alone (max.in.flight = 1) and never answered; that copy goes.
    [truncation] = sim.ledger.truncations
    assert (truncation.broker, truncation.offset, truncation.removed) == (1, 0, ((0, "p1-0"),))
    # Every acknowledgement came from the new leader, after the election.
    [elected] = events(sim, "leader.elected")
    acks = list(events(sim, "produce.ack"))
    assert {e.src for e in acks} == {"broker-2"}
    assert all(e.time_ms > elected.time_ms for e in acks)


# -- producer-acks0-lost --------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_acks0_counts_every_send_as_done_and_loses_only_the_lost_click(seed: int) -> None:
    sim = run("producer-acks0-lost", seed)

    assert logs(sim) == {"clicks-0": [(0, "p1-0"), (1, "p1-2"), (2, "p1-3")]}
    assert [list(sim.ledger.messages[f"p1-{i}"].acks) for i in range(4)] == [[("clicks-0", -1)]] * 4
    assert anomalies(sim) == [("lost", "p1-1", "clicks-0", (), True)]
    # The connection broke with the 2nd request; p1 heard of it and reconnected.
    [broken] = events(sim, "net.disconnect")
    assert broken.detail.endswith("p1 -> broker-1 lost: connection broken")
    assert [e.error for e in events(sim, "disconnected")] == ["NETWORK_EXCEPTION"]
    assert list(events(sim, "produce.retry")) == []
    assert all(sim.ledger.messages[f"p1-{i}"].attempts == 1 for i in range(4))


# -- producer-reorder -------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_reorder_puts_the_retried_payment_after_a_later_one(seed: int) -> None:
    sim = run("producer-reorder", seed)

    log = logs(sim)["payments-0"]
    order = [message_id for _offset, message_id in log]
    assert order[0] == "p1-1"
    assert sorted(order) == ["p1-0", "p1-1", "p1-2", "p1-3"]
    assert order.index("p1-2") < order.index("p1-3")
    [reordered] = sim.verdict().anomalies
    assert (reordered.kind, reordered.message_id, reordered.allowed) == ("reordered", "p1-0", False)
    [reject] = events(sim, "produce.reject")
    assert (reject.actor, reject.error) == ("broker-1", "NOT_ENOUGH_REPLICAS")


def test_reorder_with_the_files_seed() -> None:
    sim = run("producer-reorder")

    assert logs(sim) == {"payments-0": [(0, "p1-1"), (1, "p1-0"), (2, "p1-2"), (3, "p1-3")]}
    assert anomalies(sim) == [("reordered", "p1-0", "payments-0", (1, 0), False)]


@pytest.mark.parametrize("seed", SEEDS)
def test_reorder_matches_its_narration(seed: int) -> None:
    sim = run("producer-reorder", seed)

    log = logs(sim)["payments-0"]
    assert [message_id for _offset, message_id in log] == ["p1-1", "p1-0", "p1-2", "p1-3"]


def test_restart_duplicate_matches_its_narration() -> None:
    sim = run("producer-restart-duplicate")

    assert sim.verdict().outcome["duplicated"] == 3

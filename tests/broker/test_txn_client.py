"""The producer's transaction manager: its state table, the order of its requests in a
transaction (AddPartitionsToTxn before a partition's first batch, EndTxn after every batch),
aborting, fencing (fatal) and abortable errors, and the transactional.id config checks."""

from __future__ import annotations

import pytest

from broker.clients.transactional import (
    CLIENT_ALLOWED_PREVIOUS,
    IllegalTxnState,
    TransactionManager,
    TxnClientState,
)
from broker.protocol import TopicPartition
from broker.scenario import ScenarioError, load_text
from broker.simulation import Simulation
from tests.broker.conftest import events_of, make_sim, scenario_text, step

ORDERS_0 = TopicPartition("orders", 0)
ORDERS_1 = TopicPartition("orders", 1)
TXN_CONFIG = '"linger.ms" = 0\n"transactional.id" = "orders-tx"'

# -- the state table ---------------------------------------------------------------------
# Kafka's client TransactionManager.isTransitionValid, written out (target <- sources).
EXPECTED_PREVIOUS = {
    "UNINITIALIZED": {"READY", "ABORTABLE_ERROR"},
    "INITIALIZING": {"UNINITIALIZED", "ABORTING_TRANSACTION"},
    "READY": {"INITIALIZING", "COMMITTING_TRANSACTION", "ABORTING_TRANSACTION"},
    "IN_TRANSACTION": {"READY"},
    "COMMITTING_TRANSACTION": {"IN_TRANSACTION"},
    "ABORTING_TRANSACTION": {"IN_TRANSACTION", "ABORTABLE_ERROR"},
    "ABORTABLE_ERROR": {
        "IN_TRANSACTION",
        "COMMITTING_TRANSACTION",
        "ABORTABLE_ERROR",
        "INITIALIZING",
    },
    "FATAL_ERROR": {s.value for s in TxnClientState},
}
PAIRS = [(current, target) for current in TxnClientState for target in TxnClientState]
ALLOWED = [(c, t) for c, t in PAIRS if c.value in EXPECTED_PREVIOUS[t.value]]
REFUSED = [(c, t) for c, t in PAIRS if c.value not in EXPECTED_PREVIOUS[t.value]]


def pair_id(pair: tuple[TxnClientState, TxnClientState]) -> str:
    return f"{pair[0].value}->{pair[1].value}"


def test_the_client_table_is_kafkas() -> None:
    assert {
        t.value: {s.value for s in prev} for t, prev in CLIENT_ALLOWED_PREVIOUS.items()
    } == EXPECTED_PREVIOUS
    assert (len(ALLOWED), len(REFUSED)) == (23, 41)


def manager_in(state: TxnClientState) -> tuple[Simulation, TransactionManager]:
    sim = make_sim(config=TXN_CONFIG, hold_ms=1000)
    client = sim.producers["p1"].client
    assert client is not None and client.txn is not None
    client.txn.state = state
    return sim, client.txn


def client_states(sim: Simulation) -> list[str]:
    return [e.detail for e in events_of(sim, "txn.client-state", "p1")]


@pytest.mark.parametrize("pair", ALLOWED, ids=pair_id)
def test_an_allowed_client_move_changes_the_state(
    pair: tuple[TxnClientState, TxnClientState],
) -> None:
    current, target = pair
    sim, txn = manager_in(current)
    before = client_states(sim)

    txn._to(target, "why")

    assert txn.state is target
    moved = [] if target is current else [f"{current.value} -> {target.value} (why)"]
    assert client_states(sim) == before + moved


@pytest.mark.parametrize("pair", REFUSED, ids=pair_id)
def test_a_refused_client_move_raises_illegal_txn_state_and_changes_nothing(
    pair: tuple[TxnClientState, TxnClientState],
) -> None:
    current, target = pair
    sim, txn = manager_in(current)
    before = client_states(sim)

    with pytest.raises(IllegalTxnState) as raised:
        txn._to(target)

    assert str(raised.value) == f"p1: cannot go from {current.value} to {target.value}"
    assert txn.state is current
    assert client_states(sim) == before


# -- a transaction, step by step ---------------------------------------------------------
def txn_run(
    *steps: str, config: str = TXN_CONFIG, partitions: int = 2, **kwargs: object
) -> Simulation:
    sim = make_sim(config=config, partitions=partitions, steps="".join(steps), **kwargs)
    sim.run()
    return sim


def begin(at_ms: int, producer: str = "p1") -> str:
    return step(at_ms, "begin-transaction", producer=producer)


def produce(at_ms: int, partition: int, count: int, producer: str = "p1") -> str:
    return step(
        at_ms, "produce", producer=producer, topic="orders", partition=partition, count=count
    )


def commit(at_ms: int, producer: str = "p1") -> str:
    return step(at_ms, "commit-transaction", producer=producer)


def abort(at_ms: int, producer: str = "p1") -> str:
    return step(at_ms, "abort-transaction", producer=producer)


CLIENT_KINDS = (
    "txn.client-state",
    "txn.partitions-added",
    "produce.send",
    "produce.ack",
    "produce.failed",
    "txn.state",
    "txn.marker",
)


def story(sim: Simulation, since_ms: int = 0) -> list[tuple[int, str, str]]:
    """(time, kind, partition or detail) of the transaction's events, in order."""
    return [
        (e.time_ms, e.kind, e.partition or e.detail)
        for e in sim.events
        if e.kind in CLIENT_KINDS and e.time_ms >= since_ms
    ]


def test_each_partition_is_added_to_the_transaction_before_its_first_batch_is_sent() -> None:
    sim = txn_run(begin(100), produce(100, 0, 2), produce(100, 1, 1), commit(300))

    assert story(sim) == [
        (0, "txn.client-state", "UNINITIALIZED -> INITIALIZING"),
        (3, "txn.state", "orders-tx: Empty -> Empty (PID 0 epoch 0)"),
        (4, "txn.client-state", "INITIALIZING -> READY (PID 0 epoch 0)"),
        (100, "txn.client-state", "READY -> IN_TRANSACTION"),
        (103, "txn.state", "orders-tx: Empty -> Ongoing (PID 0 epoch 0, partitions orders-0)"),
        (104, "txn.partitions-added", "orders-0"),
        (104, "produce.send", "orders-0"),
        (
            107,
            "txn.state",
            "orders-tx: Ongoing -> Ongoing (PID 0 epoch 0, partitions orders-0, orders-1)",
        ),
        (108, "txn.partitions-added", "orders-1"),
        (108, "produce.send", "orders-1"),
        # broker-1 read the Produce to orders-0 behind the AddPartitionsToTxn for
        # orders-1 on the same connection: it appends once that one is answered.
        (110, "produce.ack", "orders-0"),
        (112, "produce.ack", "orders-1"),
        (300, "txn.client-state", "IN_TRANSACTION -> COMMITTING_TRANSACTION"),
        (
            303,
            "txn.state",
            "orders-tx: Ongoing -> PrepareCommit (PID 0 epoch 0, partitions orders-0, orders-1)",
        ),
        (304, "txn.client-state", "COMMITTING_TRANSACTION -> READY (committed)"),
        (304, "txn.marker", "orders-0"),
        (304, "txn.marker", "orders-1"),
        (309, "txn.state", "orders-tx: PrepareCommit -> CompleteCommit (PID 0 epoch 0)"),
    ]
    [committed] = events_of(sim, "app.txn-committed", "p1")
    assert (committed.time_ms, committed.detail) == (304, "3 message(s)")


def test_a_partition_already_in_the_transaction_is_not_added_again() -> None:
    sim = txn_run(begin(100), produce(100, 0, 1), produce(200, 0, 1), commit(300))

    assert [e.partition or e.detail for e in events_of(sim, "txn.partitions-added")] == ["orders-0"]
    assert [(e.time_ms, e.offset) for e in events_of(sim, "produce.ack")] == [(108, 0), (204, 1)]
    assert [e.offset for e in events_of(sim, "txn.marker")] == [2]


def test_commit_waits_for_every_batch_of_the_transaction() -> None:
    # The only batch spends 500 ms in the network; the commit is called meanwhile.
    delay = step(0, "delay-request", api="Produce", client="p1", partition="orders-0", delay_ms=500)
    sim = txn_run(delay, begin(100), produce(100, 0, 1), commit(150))

    assert story(sim, since_ms=100)[4:] == [
        (150, "txn.client-state", "IN_TRANSACTION -> COMMITTING_TRANSACTION"),
        (608, "produce.ack", "orders-0"),
        (
            611,
            "txn.state",
            "orders-tx: Ongoing -> PrepareCommit (PID 0 epoch 0, partitions orders-0)",
        ),
        (612, "txn.client-state", "COMMITTING_TRANSACTION -> READY (committed)"),
        (612, "txn.marker", "orders-0"),
        (617, "txn.state", "orders-tx: PrepareCommit -> CompleteCommit (PID 0 epoch 0)"),
    ]
    [marker] = events_of(sim, "txn.marker")
    assert marker.offset == 1  # after the data at offset 0


def test_abort_fails_the_batches_not_yet_sent_and_ends_only_what_was_added() -> None:
    sim = txn_run(begin(100), produce(100, 0, 1), produce(500, 1, 2), abort(500))

    assert story(sim, since_ms=500) == [
        (500, "txn.client-state", "IN_TRANSACTION -> ABORTING_TRANSACTION"),
        (500, "produce.failed", "orders-1"),
        (
            503,
            "txn.state",
            "orders-tx: Ongoing -> PrepareAbort (PID 0 epoch 0, partitions orders-0)",
        ),
        (504, "txn.client-state", "ABORTING_TRANSACTION -> READY (aborted)"),
        (504, "txn.marker", "orders-0"),
        (509, "txn.state", "orders-tx: PrepareAbort -> CompleteAbort (PID 0 epoch 0)"),
    ]
    [failed] = events_of(sim, "produce.failed")
    assert (failed.error, failed.detail) == (
        "TRANSACTION_ABORTABLE",
        "[p1-1, p1-2] the application is told it failed (the transaction was aborted)",
    )
    assert [e.partition for e in events_of(sim, "produce.send")] == ["orders-0"]
    assert sim.verdict().outcome["aborted"] == 3
    assert sim.committed_logs() == {"orders-0": [], "orders-1": []}


def test_a_transaction_with_nothing_written_ends_without_the_coordinator() -> None:
    sim = txn_run(begin(100), commit(200))

    assert client_states(sim)[-2:] == [
        "IN_TRANSACTION -> COMMITTING_TRANSACTION",
        "COMMITTING_TRANSACTION -> READY (empty transaction)",
    ]
    assert [e.detail for e in events_of(sim, "txn.state")] == [
        "orders-tx: Empty -> Empty (PID 0 epoch 0)"
    ]


# -- fencing and abortable errors ----------------------------------------------------------
P2_SAME_ID = """
[[producers]]
name = "p2"
start_ms = 1000
[producers.config]
"linger.ms" = 0
"transactional.id" = "orders-tx"
"""


def test_producer_fenced_on_end_txn_is_fatal_and_the_application_stops() -> None:
    sim = txn_run(P2_SAME_ID, begin(100), produce(100, 0, 2), commit(2000), begin(2500))

    assert client_states(sim)[-2:] == [
        "IN_TRANSACTION -> COMMITTING_TRANSACTION",
        "COMMITTING_TRANSACTION -> FATAL_ERROR (EndTxn)",
    ]
    [fatal] = [e for e in events_of(sim, "txn.client-state", "p1") if "FATAL" in e.detail]
    assert (fatal.time_ms, fatal.error) == (2002, "PRODUCER_FENCED")
    [fenced] = events_of(sim, "txn.fenced")
    assert (fenced.time_ms, fenced.detail) == (2001, "orders-tx: epoch 0 < 2")
    # The fenced instance does nothing more: the later begin is refused by the application.
    assert [(e.time_ms, e.error) for e in events_of(sim, "app.fenced", "p1")] == [
        (2002, "PRODUCER_FENCED"),
        (2500, "PRODUCER_FENCED"),
    ]
    assert sim.producers["p1"].client.txn.state is TxnClientState.FATAL_ERROR
    # Its two orders were aborted by the coordinator when p2 started.
    assert sim.verdict().outcome["aborted"] == 2
    assert sim.committed_logs() == {"orders-0": [], "orders-1": []}


def test_a_failed_write_makes_the_transaction_abortable_and_the_commit_becomes_an_abort() -> None:
    config = TXN_CONFIG + '\n"request.timeout.ms" = 500\n"delivery.timeout.ms" = 1000'
    refuse = step(
        0, "error-response", api="Produce", client="p1", error="NOT_ENOUGH_REPLICAS", count="all"
    )
    sim = txn_run(refuse, begin(100), produce(100, 0, 1), begin(1500), commit(2000), config=config)

    abortable = [e for e in events_of(sim, "txn.client-state", "p1") if "ABORTABLE" in e.detail]
    assert [(e.time_ms, e.detail, e.error) for e in abortable] == [
        (
            1100,
            "IN_TRANSACTION -> ABORTABLE_ERROR (a batch to orders-0 failed)",
            "REQUEST_TIMED_OUT",
        ),
        (2000, "ABORTABLE_ERROR -> ABORTING_TRANSACTION", None),
    ]
    # Only abort is allowed now: beginning another transaction is an application error.
    [refused] = events_of(sim, "app.error", "p1")
    assert (refused.time_ms, refused.detail) == (
        1500,
        "p1: cannot go from ABORTABLE_ERROR to IN_TRANSACTION",
    )
    [failed] = events_of(sim, "app.txn-failed", "p1")
    assert (failed.time_ms, failed.error, failed.detail) == (
        2000,
        "REQUEST_TIMED_OUT",
        "commit refused: a write of the transaction failed; aborting",
    )
    assert story(sim, since_ms=2001) == [
        (
            2003,
            "txn.state",
            "orders-tx: Ongoing -> PrepareAbort (PID 0 epoch 0, partitions orders-0)",
        ),
        (2004, "txn.client-state", "ABORTING_TRANSACTION -> READY (aborted)"),
        (2004, "txn.marker", "orders-0"),
        (2009, "txn.state", "orders-tx: PrepareAbort -> CompleteAbort (PID 0 epoch 0)"),
    ]
    assert [e.detail for e in events_of(sim, "txn.state") if "PrepareCommit" in e.detail] == []


# -- configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "why"),
    [
        ('"enable.idempotence" = false', "enable.idempotence is false"),
        ("acks = 1", "acks must be all"),
    ],
)
def test_a_transactional_id_needs_idempotence(config: str, why: str) -> None:
    text = scenario_text(config=f'"transactional.id" = "orders-tx"\n{config}')

    with pytest.raises(ScenarioError) as raised:
        load_text(text, "unit-test")

    assert raised.value.path == 'producers[0].config."transactional.id"'
    assert raised.value.problem == (
        f"needs idempotence (Kafka refuses a transactional.id without it): {why}"
    )


def test_transaction_steps_need_a_transactional_producer() -> None:
    with pytest.raises(ScenarioError) as raised:
        load_text(scenario_text(steps=begin(100)), "unit-test")

    assert raised.value.path == "steps[0].producer"
    assert raised.value.problem == "'p1' has no transactional.id: begin-transaction needs one"


def test_transaction_timeout_defaults_to_60_s_and_is_read_from_the_config() -> None:
    default = load_text(scenario_text(config=TXN_CONFIG), "unit-test")
    custom = load_text(
        scenario_text(config=TXN_CONFIG + '\n"transaction.timeout.ms" = 3000'), "unit-test"
    )

    assert default.producers[0].config.transactional_id == "orders-tx"
    assert default.producers[0].config.transaction_timeout_ms == 60000
    assert custom.producers[0].config.transaction_timeout_ms == 3000

from __future__ import annotations

from typing import Any

from broker.errors import ErrorCode
from broker.log import EpochEntry
from broker.network import Connection, Exchange
from broker.protocol import (
    FetchRequest,
    FetchResponse,
    InitProducerIdRequest,
    ProduceRequest,
    ProduceResponse,
)
from broker.simulation import Simulation
from tests.broker.conftest import (
    ORDERS_0,
    batch,
    cursors,
    events_of,
    log_of,
    make_sim,
    message_ids,
    step,
    submit,
)

ACKS_1 = 'acks = 1\n"linger.ms" = 0\n"enable.idempotence" = false'
ACKS_ALL = 'acks = "all"\n"linger.ms" = 0\n"enable.idempotence" = false\nretries = 0'
FAST_LAG = '"replica.lag.time.max.ms" = 1000'
HOLD = 60_000
FAST_SESSION = '"broker.session.timeout.ms" = 2000'


def produce_step(at_ms: int, count: int) -> str:
    return f"""
[[steps]]
at_ms = {at_ms}
do = "produce"
producer = "p1"
topic = "orders"
count = {count}
"""


def isolate_step(at_ms: int, broker: int) -> str:
    return f"""
[[steps]]
at_ms = {at_ms}
do = "isolate-broker"
broker = {broker}
"""


class RawClient:
    """A bare client that sends hand-made requests into a simulation."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim
        self.answers: list[Any] = []
        sim.network.register_client("tester", self.on_response, self.on_disconnect)

    def on_response(self, exchange: Exchange, payload: Any) -> None:
        self.answers.append(payload)

    def on_disconnect(self, conn: Connection) -> None:
        self.answers.append("disconnected")

    def send(self, broker: int, request: Any) -> None:
        self.sim.network.send_request("tester", f"broker-{broker}", request, "orders-0")
        self.sim.scheduler.run_until(self.sim.now_ms + 5)


def test_followers_catch_up_and_every_replica_ends_with_the_same_cursors() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1, steps=produce_step(10, 3))

    sim.run_until(1000)

    for broker_id in (1, 2, 3):
        log = log_of(sim, broker_id)
        assert cursors(log) == (0, 3, 3)
        assert log.epoch_cache == [EpochEntry(0, 0)]
        assert message_ids(log) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-2")]


def test_the_high_watermark_is_the_lowest_log_end_offset_in_the_isr() -> None:
    # broker-3 is cut off but still in the ISR (replica.lag.time.max.ms not passed yet).
    sim = make_sim(hold_ms=HOLD, config=ACKS_1, steps=isolate_step(0, 3) + produce_step(10, 3))

    sim.run_until(1000)

    assert sim.cluster.partition(ORDERS_0).isr == [1, 2, 3]
    assert cursors(log_of(sim, 1)) == (0, 0, 3)
    assert cursors(log_of(sim, 2)) == (0, 0, 3)
    assert cursors(log_of(sim, 3)) == (0, 0, 0)


def test_isr_shrinks_once_a_follower_lags_past_replica_lag_time_max_ms() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=FAST_LAG,
        steps=isolate_step(0, 3) + produce_step(10, 3),
    )

    sim.run_until(1499)
    assert sim.cluster.partition(ORDERS_0).isr == [1, 2, 3]
    sim.run_until(1500)

    shrink = events_of(sim, "isr.shrink")
    assert [(e.time_ms, e.actor, e.detail) for e in shrink] == [
        (
            1500,
            "controller",
            "ISR [1, 2]: broker-3 not caught up within replica.lag.time.max.ms=1000",
        )
    ]
    assert sim.cluster.partition(ORDERS_0).isr == [1, 2]
    assert cursors(log_of(sim, 1)) == (0, 3, 3)


def test_a_lagging_follower_rejoins_the_isr_once_caught_up() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=FAST_LAG + '\n"replica.socket.timeout.ms" = 1000\n"replica.fetch.backoff.ms" = 100',
        steps=isolate_step(0, 3) + produce_step(10, 3),
    )
    sim.run_until(1600)
    submit(sim, do="heal")

    sim.run_until(5000)

    expand = events_of(sim, "isr.expand")
    assert [(e.time_ms, e.detail) for e in expand] == [
        (3203, "ISR [1, 2, 3]: broker-3 caught up to offset 3")
    ]
    assert sim.cluster.partition(ORDERS_0).isr == [1, 2, 3]
    assert cursors(log_of(sim, 3)) == (0, 3, 3)


def test_acks_all_is_answered_only_when_the_high_watermark_passes_the_batch() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_ALL,
        cluster=FAST_LAG,
        min_isr=2,
        steps=isolate_step(0, 3) + produce_step(10, 2),
    )

    sim.run_until(1000)
    assert events_of(sim, "produce.ack") == []
    assert cursors(log_of(sim, 1)) == (0, 0, 2)
    sim.run_until(2000)

    acks = events_of(sim, "produce.ack")
    assert [(e.time_ms, e.offset) for e in acks] == [(1501, 0)]
    assert sim.ledger.messages["p1-1"].acks == (("orders-0", 1),)


def test_acks_all_with_isr_below_min_insync_is_not_enough_replicas_and_writes_nothing() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_ALL,
        cluster=FAST_SESSION,
        min_isr=3,
        steps=step(0, "crash-broker", broker=3),
    )
    sim.run_until(2000)
    assert sim.cluster.partition(ORDERS_0).isr == [1, 2]

    submit(sim, do="produce", producer="p1", topic="orders")
    sim.run_until(2100)

    rejects = events_of(sim, "produce.reject")
    assert [(e.actor, e.error, e.detail) for e in rejects] == [
        ("broker-1", "NOT_ENOUGH_REPLICAS", "ISR [1, 2] smaller than min.insync.replicas=3")
    ]
    assert [e.error for e in events_of(sim, "produce.failed")] == ["NOT_ENOUGH_REPLICAS"]
    assert sim.ledger.messages["p1-0"].errors == ("NOT_ENOUGH_REPLICAS",)
    assert cursors(log_of(sim, 1)) == (0, 0, 0)


def test_the_high_watermark_stays_put_while_the_isr_is_below_min_insync() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=FAST_SESSION,
        min_isr=2,
        steps=step(0, "crash-broker", broker=2) + step(0, "crash-broker", broker=3),
    )
    sim.run_until(2000)
    assert sim.cluster.partition(ORDERS_0).isr == [1]

    submit(sim, do="produce", producer="p1", topic="orders", count=2)
    sim.run_until(3000)

    assert [e.offset for e in events_of(sim, "produce.ack")] == [0]
    assert cursors(log_of(sim, 1)) == (0, 0, 2)
    assert sim.committed_logs() == {"orders-0": []}


def test_acks_all_times_out_on_the_broker_when_the_isr_shrinks_below_min_after_append() -> None:
    config = 'acks = "all"\n"linger.ms" = 0\n"enable.idempotence" = false\nretries = 0\n'
    config += '"request.timeout.ms" = 5000\n"delivery.timeout.ms" = 5000'
    sim = make_sim(
        hold_ms=HOLD,
        config=config,
        cluster=FAST_LAG,
        min_isr=2,
        steps=isolate_step(0, 2) + isolate_step(0, 3) + produce_step(10, 1),
    )

    sim.run_until(6000)

    timeouts = events_of(sim, "produce.timeout")
    assert [(e.time_ms, e.actor, e.offset, e.error, e.detail) for e in timeouts] == [
        (5011, "broker-1", 0, "REQUEST_TIMED_OUT", "high watermark 0 never reached 1")
    ]
    assert sim.cluster.partition(ORDERS_0).isr == [1]
    assert cursors(log_of(sim, 1)) == (0, 0, 1)


def test_the_controller_elects_an_isr_replica_after_the_session_timeout() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=FAST_SESSION,
        steps=produce_step(10, 2) + step(1000, "crash-broker", broker=1),
    )

    sim.run_until(2999)
    assert sim.cluster.leader_of(ORDERS_0) == 1
    sim.run_until(3000)

    state = sim.cluster.partition(ORDERS_0)
    assert (state.leader, state.leader_epoch, state.isr) == (2, 1, [2, 3])
    assert [(e.time_ms, e.detail) for e in events_of(sim, "leader.elected")] == [
        (3000, "broker-2 leads at epoch 1, ISR [2, 3] (leader broker-1 fenced)")
    ]
    assert [e.time_ms for e in events_of(sim, "broker.fenced")] == [3000]
    assert log_of(sim, 2).epoch_cache == [EpochEntry(0, 0), EpochEntry(1, 2)]
    assert sim.cluster.brokers[2].replicas[ORDERS_0].role == "leader"
    assert sim.cluster.brokers[3].replicas[ORDERS_0].leader_id == 2


def test_a_crashed_follower_is_removed_from_the_isr_when_fenced() -> None:
    sim = make_sim(
        hold_ms=HOLD, config=ACKS_1, cluster=FAST_SESSION, steps=step(0, "crash-broker", broker=3)
    )

    sim.run_until(2000)

    assert sim.cluster.partition(ORDERS_0).isr == [1, 2]
    assert [e.detail for e in events_of(sim, "isr.shrink")] == ["ISR [1, 2]: broker-3 fenced"]


def _isr_of_one_then_leader_crash(unclean: bool) -> Simulation:
    cluster = f"{FAST_LAG}\n{FAST_SESSION}\n"
    cluster += f'"unclean.leader.election.enable" = {"true" if unclean else "false"}'
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=cluster,
        brokers=2,
        rf=2,
        steps=produce_step(10, 2)
        + isolate_step(100, 2)
        + produce_step(110, 3)
        + step(2000, "crash-broker", broker=1)
        # broker-2, cut off from the controller too, was fenced at 2100; it is
        # heard again after broker-1 was fenced (4000), with the partition offline.
        + step(4050, "heal"),
    )
    sim.run_until(1999)
    assert sim.cluster.partition(ORDERS_0).isr == [1]
    sim.run_until(4100)
    return sim


def test_without_unclean_election_a_partition_whose_isr_is_gone_goes_offline() -> None:
    sim = _isr_of_one_then_leader_crash(unclean=False)

    state = sim.cluster.partition(ORDERS_0)
    assert (state.leader, state.leader_epoch, state.isr) == (None, 0, [1])
    assert [e.detail for e in events_of(sim, "partition.offline")] == [
        "no eligible leader (leader broker-1 fenced)",
        "no eligible leader (broker-2 is back)",
    ]
    assert sim.committed_logs() == {"orders-0": []}


def test_unclean_election_lets_an_out_of_sync_replica_lead_and_committed_data_is_lost() -> None:
    sim = _isr_of_one_then_leader_crash(unclean=True)

    state = sim.cluster.partition(ORDERS_0)
    assert (state.leader, state.leader_epoch, state.isr) == (2, 1, [2])
    assert [e.detail for e in events_of(sim, "leader.elected")] == [
        "broker-2 leads at epoch 1, ISR [2] (broker-2 is back) "
        "UNCLEAN: an out-of-sync replica was chosen"
    ]
    # Offsets 2..4 were committed on broker-1 (HW 5 after the ISR shrank to [1]).
    assert cursors(log_of(sim, 1)) == (0, 5, 5)
    assert message_ids(log_of(sim, 2)) == [(0, "p1-0"), (1, "p1-1")]
    assert log_of(sim, 2).epoch_cache == [EpochEntry(0, 0), EpochEntry(1, 2)]


def test_a_returning_old_leader_truncates_to_the_new_leaders_epoch_end_offset() -> None:
    steps = (
        produce_step(10, 2)
        + isolate_step(1000, 1)
        + produce_step(1010, 3)
        + """
[[steps]]
at_ms = 1100
do = "crash-broker"
broker = 1
"""
        + produce_step(4000, 1)
        + """
[[steps]]
at_ms = 5000
do = "heal"
[[steps]]
at_ms = 5000
do = "restart-broker"
broker = 1
"""
    )
    sim = make_sim(config=ACKS_1, cluster=FAST_SESSION, steps=steps)
    sim.run_until(4500)
    assert message_ids(log_of(sim, 1)) == [
        (0, "p1-0"),
        (1, "p1-1"),
        (2, "p1-2"),
        (3, "p1-3"),
        (4, "p1-4"),
    ]
    assert log_of(sim, 2).epoch_cache == [EpochEntry(0, 0), EpochEntry(1, 2)]

    verdict = sim.run()

    truncations = events_of(sim, "replica.truncate")
    assert [(e.time_ms, e.actor, e.offset, e.detail) for e in truncations] == [
        (
            5002,
            "broker-1",
            2,
            "log diverged from the leader after epoch 0: offsets 2..4 removed",
        )
    ]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-5")]
    assert log_of(sim, 1).epoch_cache == [EpochEntry(0, 0), EpochEntry(1, 2)]
    assert [t.removed for t in sim.ledger.truncations] == [((2, "p1-2"), (3, "p1-3"), (4, "p1-4"))]
    lost = [(a.kind, a.message_id, a.offsets) for a in verdict.anomalies]
    assert lost == [("lost", "p1-2", (2,)), ("lost", "p1-3", (3,)), ("lost", "p1-4", (4,))]
    assert sim.cluster.partition(ORDERS_0).isr == [1, 2, 3]


def test_builtin_acks1_failover_loses_the_three_acknowledged_records() -> None:
    from broker.scenario import load

    sim = Simulation(load("producer-acks1-failover"))

    verdict = sim.run()

    assert verdict.outcome["lost"] == 3
    assert [a.message_id for a in verdict.anomalies] == ["p1-0", "p1-1", "p1-2"]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-3"), (1, "p1-4")]
    assert log_of(sim, 1).epoch_cache == [EpochEntry(1, 0)]


def test_produce_to_a_follower_is_not_leader_or_follower() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)

    tester.send(2, ProduceRequest(ORDERS_0, batch("x"), acks=1, timeout_ms=1000))

    assert tester.answers == [ProduceResponse(ORDERS_0, ErrorCode.NOT_LEADER_OR_FOLLOWER)]
    assert tester.answers[0].error.code == 6


def test_produce_with_acks_0_gets_no_answer_but_is_appended() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)

    tester.send(1, ProduceRequest(ORDERS_0, batch("x", "y"), acks=0, timeout_ms=1000))

    assert tester.answers == []
    assert log_of(sim, 1).log_end_offset == 2


def test_produce_with_acks_1_is_answered_with_the_base_offset() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)

    tester.send(1, ProduceRequest(ORDERS_0, batch("x", "y"), acks=1, timeout_ms=1000))
    tester.send(1, ProduceRequest(ORDERS_0, batch("z"), acks=1, timeout_ms=1000))

    assert tester.answers == [
        ProduceResponse(ORDERS_0, ErrorCode.NONE, 0),
        ProduceResponse(ORDERS_0, ErrorCode.NONE, 2),
    ]


def test_fetch_from_a_follower_is_not_leader_or_follower() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)

    tester.send(3, FetchRequest(ORDERS_0, 99, 0, -1, 0, 0, 1 << 20))

    assert tester.answers == [FetchResponse(ORDERS_0, ErrorCode.NOT_LEADER_OR_FOLLOWER)]


def test_a_fetch_with_a_diverging_epoch_gets_the_leaders_end_offset_for_it() -> None:
    sim = make_sim(
        hold_ms=HOLD,
        config=ACKS_1,
        cluster=FAST_SESSION,
        steps=produce_step(10, 2) + step(1000, "crash-broker", broker=1),
    )
    sim.run_until(5000)
    tester = RawClient(sim)

    # A replica that has epoch 0 up to offset 5 asks the new leader (epoch 1 from 2).
    tester.send(2, FetchRequest(ORDERS_0, 99, 5, 0, 1, 0, 1 << 20))

    answer = tester.answers[0]
    assert answer.error is ErrorCode.NONE
    assert answer.batches == ()
    assert (answer.diverging_epoch.epoch, answer.diverging_epoch.end_offset) == (0, 2)


def test_init_producer_id_hands_out_consecutive_ids_at_epoch_zero() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)

    tester.send(1, InitProducerIdRequest())
    tester.send(2, InitProducerIdRequest())

    assert [(a.error, a.producer_id, a.producer_epoch) for a in tester.answers] == [
        (ErrorCode.NONE, 0, 0),
        (ErrorCode.NONE, 1, 0),
    ]


def test_a_request_to_a_crashed_broker_is_a_disconnect() -> None:
    sim = make_sim(hold_ms=HOLD, config=ACKS_1)
    tester = RawClient(sim)
    sim.cluster.crash_broker(1)

    tester.send(1, ProduceRequest(ORDERS_0, batch("x"), acks=1, timeout_ms=1000))

    assert tester.answers == ["disconnected"]

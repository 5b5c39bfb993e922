"""Connections as Kafka's clients and brokers handle them (issue 12): an expired
in-flight batch still closes its connection at request.timeout.ms, acks=0
producers recover from a lost connection, a broker handles one request at a time
per connection, and a dropped connection fails what was in flight on it."""

from __future__ import annotations

from broker.simulation import Simulation
from tests.broker.conftest import events_of, log_of, make_sim, message_ids, step

PLAIN = '"linger.ms" = 0\n"enable.idempotence" = false'


def produce(at_ms: int, count: int = 1, interval_ms: int = 5, producer: str = "p1") -> str:
    return step(
        at_ms, "produce", producer=producer, topic="orders", count=count, interval_ms=interval_ms
    )


def told(sim: Simulation) -> list[tuple[int, str, str | None]]:
    """What the application was told, in order: (time, ack/fail detail, error)."""
    return [
        (e.time_ms, e.kind, e.error)
        for e in sim.events
        if e.kind in ("produce.ack", "produce.failed") and e.actor == "p1"
    ]


# -- 1. delivery.timeout.ms on an in-flight batch ----------------------------------


def test_an_expired_in_flight_batch_still_closes_its_stalled_connection() -> None:
    """Kafka's Sender fails an in-flight batch at delivery.timeout.ms, but its request
    stays in NetworkClient's in-flight list until request.timeout.ms, when the
    connection is closed. A lost answer therefore costs that batch only: the batch
    sent a second later goes on a fresh connection and is acknowledged."""
    sim = make_sim(
        config='acks = 1\n"request.timeout.ms" = 1000\n"delivery.timeout.ms" = 1000\n' + PLAIN,
        steps=step(0, "drop-response", api="Produce") + produce(10) + produce(2000),
    )

    sim.run()

    assert told(sim) == [
        (1010, "produce.failed", "REQUEST_TIMED_OUT"),
        (2002, "produce.ack", None),
    ]
    timeouts = events_of(sim, "request.timeout", "p1")
    assert [e.time_ms for e in timeouts] == [1010]
    # The first batch was written (its answer was lost), the second one too.
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1")]


# -- 2. acks=0 producers recover from a lost connection ----------------------------


def test_acks_0_loses_only_the_request_whose_connection_broke() -> None:
    """The 2nd click's connection breaks as it is sent (a TCP reset): that click is
    lost, the client notices the closed connection and the 3rd click goes on a new
    one. acks=0 tells the application every send succeeded, with no offset."""
    sim = make_sim(
        config='acks = 0\n"linger.ms" = 0',
        steps=step(0, "disconnect-request", api="Produce", nth=2) + produce(10, 4, 20),
    )

    verdict = sim.run()

    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-2"), (2, "p1-3")]
    assert [e.time_ms for e in events_of(sim, "produce.ack", "p1")] == [10, 30, 50, 70]
    assert [(e.time_ms, e.error) for e in events_of(sim, "disconnected", "p1")] == [
        (31, "NETWORK_EXCEPTION")
    ]
    assert (verdict.outcome["lost"], verdict.outcome["duplicated"]) == (1, 0)


def test_acks_0_producer_recovers_from_a_stalled_connection_at_its_metadata_refresh() -> None:
    """A lost request stalls the connection; acks=0 sends wait for no answer, so
    nothing times out until the periodic refresh (metadata.max.age.ms, 300000) sends
    a Metadata request on it: no answer within request.timeout.ms (30000), the
    connection is closed, and later clicks go on a new one. The clicks sent into
    the stall are lost, the ones after the refresh are not."""
    sim = make_sim(
        config='acks = 0\n"linger.ms" = 0',
        steps=step(0, "drop-request", api="Produce", nth=2)
        + produce(10, 4, 20)
        + produce(400_000, 2, 10),
    )

    verdict = sim.run()

    timeouts = events_of(sim, "request.timeout", "p1")
    assert [(e.time_ms, e.detail.split(" ")[0]) for e in timeouts] == [(330_000, "Metadata")]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-4"), (2, "p1-5")]
    assert verdict.outcome["lost"] == 3


def test_acks_0_producer_finds_the_new_leader_after_its_connection_broke() -> None:
    """A lost connection makes Kafka's client refresh its metadata: after the leader
    crashed, an acks=0 producer writes to the leader the controller elected instead
    of sending into the void."""
    sim = make_sim(
        config='acks = 0\n"linger.ms" = 0',
        cluster='"broker.session.timeout.ms" = 2000',
        steps=produce(10) + step(100, "crash-broker", broker=1) + produce(3000, 3, 10),
    )

    verdict = sim.run()

    assert sim.cluster.leader_of(sim.cluster.partitions_of("orders")[0]) == 2
    assert message_ids(log_of(sim, 2)) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-2"), (3, "p1-3")]
    assert verdict.outcome["lost"] == 0


def test_a_broker_closes_the_connection_after_an_error_on_an_acks_0_produce() -> None:
    """acks=0 has no answer to carry an error, so Kafka's broker closes the
    connection; the client reconnects (and refreshes its metadata) for the next
    send. The refused record is lost, the next one is written."""
    sim = make_sim(
        config='acks = 0\n"linger.ms" = 0',
        steps=step(0, "error-response", api="Produce", error="NOT_LEADER_OR_FOLLOWER")
        + produce(10, 2, 20),
    )

    verdict = sim.run()

    [closed] = events_of(sim, "net.disconnect")
    assert (closed.time_ms, closed.detail) == (
        11,
        "broker-1 closed the connection from p1: NOT_LEADER_OR_FOLLOWER on an acks=0 Produce",
    )
    assert message_ids(log_of(sim, 1)) == [(0, "p1-1")]
    assert verdict.outcome["lost"] == 1


# -- 4. one request at a time per connection on the broker --------------------------


def test_a_broker_handles_the_next_request_of_a_connection_only_once_it_answered() -> None:
    """Kafka's SocketServer mutes a channel from reading a request until its response
    is sent: p1's second batch, sent at 12 ms behind an acks=all batch waiting for
    slow followers, is appended only when the first one is answered (113 ms), not
    when it arrives (13 ms). The client still had both in flight."""
    sim = make_sim(
        config='acks = "all"\n' + PLAIN,
        min_isr=2,
        steps=step(0, "delay-request", api="Fetch", count="all", delay_ms=100)
        + produce(10)
        + produce(12),
    )

    sim.run()

    assert [(e.time_ms, e.offset) for e in events_of(sim, "produce.send", "p1")] == [
        (10, None),
        (12, None),
    ]
    assert [(e.time_ms, e.offset) for e in events_of(sim, "produce.append")] == [
        (11, 0),
        (113, 1),
    ]
    assert [(e.time_ms, e.offset) for e in events_of(sim, "produce.ack", "p1")] == [
        (114, 0),
        (318, 1),
    ]


# -- 5. a connection that drops --------------------------------------------------------


def test_a_connection_dropping_fails_every_request_in_flight_on_it() -> None:
    """The connection breaks as broker-1 answers p1-0 (appended at offset 0); p1-1,
    waiting behind it on the same connection, is lost with it. p1 hears of the
    disconnect one latency later (NETWORK_EXCEPTION for both, outcome unknown),
    reconnects and retries: the idempotent retry of p1-0 is recognised and answered
    with offset 0, p1-1 is written at 1. No timeout was needed."""
    sim = make_sim(
        config='acks = "all"\n"linger.ms" = 0',
        steps=step(0, "disconnect-response", api="Produce") + produce(10, 2, 1),
    )

    verdict = sim.run()

    retries = events_of(sim, "produce.retry", "p1")
    assert [(e.time_ms, e.error) for e in retries] == [
        (14, "NETWORK_EXCEPTION"),
        (14, "NETWORK_EXCEPTION"),
    ]
    assert [e.offset for e in events_of(sim, "produce.duplicate")] == [0]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1")]
    assert events_of(sim, "request.timeout") == []
    assert (verdict.outcome["lost"], verdict.outcome["duplicated"]) == (0, 0)


def test_without_idempotence_a_dropped_connection_writes_the_answered_batch_twice() -> None:
    """The same dropped connection without idempotence: p1-0 was appended before
    the connection broke, so its retry is a second copy; both retries went to the
    front of the queue, so p1-1 now lands before the copy."""
    sim = make_sim(
        config='acks = "all"\n' + PLAIN,
        steps=step(0, "disconnect-response", api="Produce") + produce(10, 2, 1),
    )

    verdict = sim.run()

    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-0")]
    assert verdict.outcome["duplicated"] == 1


PARTITION = (
    step(0, "isolate-broker", broker=1, **{"from": "brokers"})
    + produce(100, 3, 100)
    + step(4000, "produce", producer="p1", topic="orders", count=2, interval_ms=100)
    + step(6000, "heal")
)


def test_a_cut_off_leader_is_fenced_and_its_acks_1_writes_are_truncated_on_healing() -> None:
    """No crash: broker-1 is cut off from the other brokers and the controller, not
    from p1. KRaft fences it when its heartbeats stop for broker.session.timeout.ms
    and elects broker-2 (epoch 1), but broker-1 still acknowledges p1's acks=1
    writes (offsets 0..4). On healing it registers, becomes a follower and
    truncates to where epoch 0 ended on broker-2: all five are lost."""
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        cluster='"broker.session.timeout.ms" = 3000',
        steps=PARTITION,
    )

    verdict = sim.run()

    fenced = [(e.time_ms, e.kind) for e in sim.events if e.actor == "controller"]
    assert fenced[:3] == [
        (0, "broker.unreachable"),
        (3000, "broker.fenced"),
        (3000, "leader.elected"),
    ]
    acks = events_of(sim, "produce.ack", "p1")
    assert [(e.offset, e.src) for e in acks] == [(i, "broker-1") for i in range(5)]
    [truncate] = events_of(sim, "replica.truncate")
    assert (truncate.actor, truncate.offset) == ("broker-1", 0)
    assert message_ids(log_of(sim, 1)) == []
    assert verdict.outcome["lost"] == 5


def test_with_acks_all_the_cut_off_leader_acknowledges_nothing_and_nothing_is_lost() -> None:
    """acks=all, min.insync.replicas=2: the cut-off leader appends but cannot advance
    its high watermark (its followers do not fetch) nor shrink its ISR (the
    AlterPartition cannot reach the controller). When it learns it is a follower
    its waiting produces fail with NOT_LEADER_OR_FOLLOWER, and p1 writes to broker-2."""
    sim = make_sim(
        config='acks = "all"\n' + PLAIN,
        cluster='"broker.session.timeout.ms" = 3000',
        min_isr=2,
        steps=PARTITION,
    )

    verdict = sim.run()

    assert not [e for e in events_of(sim, "isr.shrink") if "broker-1" not in e.detail]
    assert {e.src for e in events_of(sim, "produce.ack", "p1")} == {"broker-2"}
    assert sorted(m for _o, m in message_ids(log_of(sim, 2))) == [f"p1-{i}" for i in range(5)]
    assert (verdict.outcome["lost"], verdict.outcome["acknowledged"]) == (0, 5)


def test_a_partition_healed_before_the_session_timeout_fences_nobody() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        cluster='"broker.session.timeout.ms" = 3000',
        steps=step(0, "isolate-broker", broker=1, **{"from": "brokers"})
        + produce(100, 3, 100)
        + step(2000, "heal"),
    )

    verdict = sim.run()

    kinds = [e.kind for e in sim.events if e.actor == "controller"]
    assert kinds[:2] == ["broker.unreachable", "broker.reachable"]
    assert "broker.fenced" not in kinds
    assert message_ids(log_of(sim, 2)) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-2")]
    assert verdict.outcome["lost"] == 0

from __future__ import annotations

from broker.simulation import Simulation
from tests.broker.conftest import events_of, log_of, make_sim, message_ids, step

PLAIN = '"linger.ms" = 0\n"enable.idempotence" = false'
IDEMPOTENT = 'acks = "all"\n"linger.ms" = 0'


def produce(at_ms: int, count: int, interval_ms: int = 5) -> str:
    return step(
        at_ms, "produce", producer="p1", topic="orders", count=count, interval_ms=interval_ms
    )


def first_produce_fails_late(error: str = "NOT_ENOUGH_REPLICAS") -> str:
    """The first Produce is refused, and the refusal takes 20 ms to come back."""
    return step(0, "error-response", api="Produce", error=error) + step(
        0, "delay-response", api="Produce", delay_ms=20
    )


def sends(sim: Simulation) -> list[tuple[int, str]]:
    return [(e.time_ms, e.detail) for e in events_of(sim, "produce.send")]


def test_acks_0_completes_at_once_with_offset_minus_1_and_is_never_retried() -> None:
    sim = make_sim(
        config="acks = 0\n" + PLAIN,
        steps=step(0, "drop-request", api="Produce") + produce(10, 1),
    )

    verdict = sim.run()

    acks = events_of(sim, "produce.ack")
    assert [(e.time_ms, e.offset, e.detail) for e in acks] == [
        (10, None, "[p1-0] acknowledged: no offset (acks=0)")
    ]
    assert sim.ledger.messages["p1-0"].acks == (("orders-0", -1),)
    assert sim.ledger.messages["p1-0"].attempts == 1
    assert events_of(sim, "produce.retry") == []
    assert verdict.outcome["lost"] == 1


def test_records_sent_together_share_one_batch_with_consecutive_offsets() -> None:
    sim = make_sim(config="acks = 1\n" + PLAIN, steps=produce(10, 3, interval_ms=0))

    sim.run()

    assert sends(sim) == [(10, "[p1-0, p1-1, p1-2] attempt 1 acks=1")]
    assert [(e.offset, e.detail) for e in events_of(sim, "produce.ack")] == [
        (0, "[p1-0, p1-1, p1-2] acknowledged: offsets 0..2")
    ]
    assert [list(sim.ledger.messages[f"p1-{i}"].acks) for i in range(3)] == [
        [("orders-0", 0)],
        [("orders-0", 1)],
        [("orders-0", 2)],
    ]


def test_a_retriable_error_requeues_the_batch_at_the_front_after_the_backoff() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        steps=step(0, "error-response", api="Produce", error="NOT_ENOUGH_REPLICAS")
        + produce(10, 1),
    )

    sim.run()

    retries = events_of(sim, "produce.retry")
    assert [(e.time_ms, e.error, e.detail) for e in retries] == [
        (12, "NOT_ENOUGH_REPLICAS", "[p1-0] re-queued at the front, retry 1")
    ]
    assert sends(sim) == [(10, "[p1-0] attempt 1 acks=1"), (102, "[p1-0] attempt 2 acks=1")]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0")]


def test_a_batch_in_retry_backoff_holds_back_later_batches_of_its_partition() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        steps=step(0, "error-response", api="Produce", error="NOT_ENOUGH_REPLICAS")
        + produce(10, 3),
    )

    sim.run()

    assert sends(sim) == [
        (10, "[p1-0] attempt 1 acks=1"),
        (102, "[p1-0] attempt 2 acks=1"),
        (102, "[p1-1, p1-2] attempt 1 acks=1"),
    ]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1"), (2, "p1-2")]


def test_a_retry_lands_after_a_later_batch_in_flight_without_idempotence() -> None:
    sim = make_sim(
        config='acks = 1\n"max.in.flight.requests.per.connection" = 5\n' + PLAIN,
        steps=first_produce_fails_late() + produce(10, 2),
    )

    verdict = sim.run()

    assert message_ids(log_of(sim, 1)) == [(0, "p1-1"), (1, "p1-0")]
    assert [(a.kind, a.message_id, a.offsets) for a in verdict.anomalies] == [
        ("reordered", "p1-0", (1, 0))
    ]


def test_max_in_flight_1_keeps_order_through_a_retry() -> None:
    sim = make_sim(
        config='acks = 1\n"max.in.flight.requests.per.connection" = 1\n' + PLAIN,
        steps=first_produce_fails_late() + produce(10, 2),
    )

    verdict = sim.run()

    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-1")]
    assert verdict.outcome["reordered"] == 0


def test_retries_0_fails_the_batch_on_the_first_retriable_error() -> None:
    sim = make_sim(
        config="acks = 1\nretries = 0\n" + PLAIN,
        steps=step(0, "error-response", api="Produce", error="NOT_ENOUGH_REPLICAS")
        + produce(10, 1),
    )

    verdict = sim.run()

    failed = events_of(sim, "produce.failed")
    assert [(e.time_ms, e.error, e.detail) for e in failed] == [
        (12, "NOT_ENOUGH_REPLICAS", "[p1-0] the application is told it failed")
    ]
    assert sim.ledger.messages["p1-0"].status == "failed"
    assert verdict.outcome["failed"] == 1
    assert verdict.outcome["lost"] == 0


def test_a_lost_request_times_out_and_fails_the_rest_of_its_connection() -> None:
    sim = make_sim(
        config='acks = 1\n"request.timeout.ms" = 1000\n' + PLAIN,
        steps=step(0, "drop-request", api="Produce") + produce(10, 2),
    )

    sim.run()

    retries = events_of(sim, "produce.retry")
    assert [(e.time_ms, e.error, e.detail) for e in retries] == [
        (1010, "REQUEST_TIMED_OUT", "[p1-0] re-queued at the front, retry 1"),
        (1010, "NETWORK_EXCEPTION", "[p1-1] re-queued at the front, retry 1"),
    ]
    assert events_of(sim, "net.drop-request")[1].detail.endswith("connection stalled")
    # Both re-queued at the front, one after the other: the later one is now first.
    assert message_ids(log_of(sim, 1)) == [(0, "p1-1"), (1, "p1-0")]


def test_delivery_timeout_fails_the_batch_with_request_timed_out() -> None:
    sim = make_sim(
        config='acks = 1\n"request.timeout.ms" = 1000\n"delivery.timeout.ms" = 2500\n' + PLAIN,
        steps=step(0, "drop-request", api="Produce", count="all") + produce(10, 1),
    )

    verdict = sim.run()

    failed = events_of(sim, "produce.failed")
    assert [(e.time_ms, e.error, e.detail) for e in failed] == [
        (
            2510,
            "REQUEST_TIMED_OUT",
            "[p1-0] the application is told it failed (delivery.timeout.ms expired)",
        )
    ]
    assert sim.ledger.messages["p1-0"].attempts == 3
    assert sim.ledger.messages["p1-0"].errors == ("REQUEST_TIMED_OUT",)
    assert verdict.outcome == {**verdict.outcome, "failed": 1, "lost": 0, "in_log": 0}


def test_the_idempotent_producer_gets_a_producer_id_before_sending() -> None:
    sim = make_sim(config=IDEMPOTENT, steps=produce(0, 1))

    sim.run()

    order = [
        (e.time_ms, e.kind)
        for e in sim.events
        if e.kind in ("init-producer-id", "producer-id.received", "produce.send")
    ]
    assert order == [(0, "init-producer-id"), (2, "producer-id.received"), (2, "produce.send")]
    client = sim.producers["p1"].client
    assert client is not None
    assert (client.producer_id, client.producer_epoch) == (0, 0)
    assert client.next_sequences() == {"orders-0": 1}


def test_idempotent_sequences_advance_by_record_count_per_partition() -> None:
    sim = make_sim(config=IDEMPOTENT, steps=produce(10, 2, interval_ms=0) + produce(20, 3, 0))

    sim.run()

    assert sends(sim) == [
        (10, "[p1-0, p1-1] PID 0 epoch 0 seq 0..1 attempt 1 acks=all"),
        (20, "[p1-2, p1-3, p1-4] PID 0 epoch 0 seq 2..4 attempt 1 acks=all"),
    ]
    snapshot = log_of(sim, 1).producer_state.snapshot()
    assert snapshot == {
        0: {"epoch": 0, "last_sequence": 4, "batches": [[0, 1, 0, 1], [2, 4, 2, 4]]}
    }


def test_a_retry_keeps_its_sequence_and_a_duplicate_gets_the_original_offset() -> None:
    sim = make_sim(
        config=IDEMPOTENT + '\n"request.timeout.ms" = 1000',
        steps=step(0, "drop-response", api="Produce") + produce(10, 1),
    )

    verdict = sim.run()

    assert sends(sim) == [
        (10, "[p1-0] PID 0 epoch 0 seq 0..0 attempt 1 acks=all"),
        (1100, "[p1-0] PID 0 epoch 0 seq 0..0 attempt 2 acks=all"),
    ]
    dup = events_of(sim, "produce.duplicate")
    assert [(e.time_ms, e.offset, e.detail) for e in dup] == [
        (
            1101,
            0,
            "PID 0 seq 0..0 already at offsets 0..0: not appended, "
            "answered with the original offset",
        )
    ]
    assert sim.ledger.messages["p1-0"].acks == (("orders-0", 0),)
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0")]
    assert verdict.outcome["duplicated"] == 0


def test_without_idempotence_the_same_lost_answer_makes_a_duplicate() -> None:
    sim = make_sim(
        config='acks = "all"\n"request.timeout.ms" = 1000\n' + PLAIN,
        steps=step(0, "drop-response", api="Produce") + produce(10, 1),
    )

    verdict = sim.run()

    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-0")]
    assert sim.ledger.messages["p1-0"].acks == (("orders-0", 1),)
    assert [(a.kind, a.message_id, a.offsets, a.allowed) for a in verdict.anomalies] == [
        ("duplicate", "p1-0", (0, 1), True)
    ]


def test_an_out_of_order_retry_that_is_not_the_next_expected_batch_is_retried_as_is() -> None:
    # The first batch is refused; the second, already in flight, is accepted by a
    # broker with no state for the PID and acknowledged. The first one's retry is
    # then out of order, but it is not the next expected batch (seq 2 is): no bump.
    sim = make_sim(
        config=IDEMPOTENT + '\n"request.timeout.ms" = 1000\n"delivery.timeout.ms" = 1500',
        steps=first_produce_fails_late() + produce(10, 2),
    )

    sim.run()

    rejects = events_of(sim, "produce.reject")
    assert [(e.error, e.detail) for e in rejects[:2]] == [
        ("NOT_ENOUGH_REPLICAS", "injected fault"),
        ("OUT_OF_ORDER_SEQUENCE_NUMBER", "producer 0 expected sequence 2, got 0"),
    ]
    assert [e.detail for e in events_of(sim, "produce.send")[2:]] == [
        f"[p1-0] PID 0 epoch 0 seq 0..0 attempt {n} acks=all" for n in range(2, 6)
    ]
    # The epoch is bumped only when the batch finally fails (delivery.timeout.ms).
    assert [e.time_ms for e in events_of(sim, "producer.epoch-bump")] == [1510]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-1")]


def test_an_idempotent_batch_that_fails_after_being_sent_bumps_the_epoch() -> None:
    sim = make_sim(
        config=IDEMPOTENT + '\n"request.timeout.ms" = 1000\n"delivery.timeout.ms" = 1500',
        steps=first_produce_fails_late() + produce(10, 2) + produce(3000, 1),
    )

    sim.run()

    failed = events_of(sim, "produce.failed")
    assert [(e.time_ms, e.error) for e in failed] == [(1510, "REQUEST_TIMED_OUT")]
    bumps = events_of(sim, "producer.epoch-bump")
    assert [(e.time_ms, e.detail) for e in bumps] == [
        (
            1510,
            "PID 0 now epoch 1, sequences restart at 0 "
            "(batch [p1-0] PID 0 epoch 0 seq 0..0 failed with REQUEST_TIMED_OUT)",
        )
    ]
    assert sends(sim)[-1] == (3000, "[p1-2] PID 0 epoch 1 seq 0..0 attempt 1 acks=all")
    assert message_ids(log_of(sim, 1)) == [(0, "p1-1"), (1, "p1-2")]
    assert log_of(sim, 1).producer_state.snapshot()[0]["epoch"] == 1


def test_an_application_restart_gets_a_new_pid_and_resends_unacknowledged_messages() -> None:
    sim = make_sim(
        config=IDEMPOTENT,
        semantics="exactly-once",
        steps=step(0, "drop-response", api="Produce")
        + produce(10, 1)
        + step(1000, "crash-producer", producer="p1")
        + step(1500, "restart-producer", producer="p1"),
    )

    verdict = sim.run()

    assert [e.detail for e in events_of(sim, "app.restart")] == [
        "incarnation 2: a new producer (new producer id); resending 1 unacknowledged message(s)"
    ]
    assert [e.detail for e in events_of(sim, "producer-id.received")] == [
        "PID 0 epoch 0",
        "PID 1 epoch 0",
    ]
    assert message_ids(log_of(sim, 1)) == [(0, "p1-0"), (1, "p1-0")]
    assert sim.ledger.messages["p1-0"].sends == 2
    assert [(a.kind, a.offsets, a.allowed) for a in verdict.anomalies] == [
        ("duplicate", (0, 1), False)
    ]


def test_a_crashed_application_sends_nothing() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        steps=step(0, "crash-producer", producer="p1") + produce(10, 1),
    )

    sim.run()

    assert [e.detail for e in events_of(sim, "produce.skipped")] == [
        "application is down: 1 message(s) not sent"
    ]
    assert sim.ledger.messages == {}


def test_the_producer_finds_the_new_leader_after_a_disconnect() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        cluster='"broker.session.timeout.ms" = 2000',
        steps=produce(0, 1) + step(100, "crash-broker", broker=1) + produce(3000, 1),
    )

    sim.run()

    # Kafka's client asks for fresh metadata on any disconnect: the crash broke
    # p1's idle connection to broker-1, so p1-1 goes straight to broker-2.
    assert events_of(sim, "produce.retry") == []
    sends = [(e.time_ms, e.dst) for e in events_of(sim, "produce.send")]
    assert sends == [(0, "broker-1"), (3000, "broker-2")]
    appends = [(e.actor, e.offset) for e in events_of(sim, "produce.append")]
    assert appends == [("broker-1", 0), ("broker-2", 1)]
    assert sim.ledger.messages["p1-1"].acks == (("orders-0", 1),)


def test_keyed_records_go_to_the_murmur2_partition() -> None:
    sim = make_sim(
        config="acks = 1\n" + PLAIN,
        partitions=3,
        steps=step(10, "produce", producer="p1", topic="orders", count=1, key="21"),
    )

    sim.run()

    # murmur2("21") & 0x7fffffff = 1173551340, which is 0 modulo 3.
    assert [e.partition for e in events_of(sim, "produce.append")] == ["orders-0"]
    assert sim.ledger.messages["p1-0"].acks == (("orders-0", 0),)


def test_events_show_a_batchs_first_four_ids_and_how_many_more() -> None:
    # The same label for a simulated producer's produce.send and a real client's wire.request.
    from broker.records import Record, ids_label

    records = [Record(f"p1-{i}", None, "v") for i in range(1, 8)]
    assert ids_label(records[:2]) == "[p1-1, p1-2]"
    assert ids_label(records) == "[p1-1, p1-2, p1-3, p1-4 +3]"

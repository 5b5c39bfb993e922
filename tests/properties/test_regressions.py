"""Counterexamples the property tests found and shrank, kept as plain tests.

Each scenario is the exact schedule Hypothesis printed; run one by hand with
``.venv/bin/python -m broker run FILE.toml --trace``.
"""

from __future__ import annotations

from fault_schedules import run_checked

from broker.scenario import load_text

# Found by "every message is acknowledged after the final heal" (schedules(idempotent=True)),
# shrunk to two one-record batches and one injected error.  This is KAFKA-14359, reproduced
# faithfully: a broker with no state for a producer id accepts any sequence (semantics §3), so
# seq 1 is written while seq 0 is being retried; seq 0 then gets OUT_OF_ORDER_SEQUENCE_NUMBER,
# is not the next expected sequence (the last acknowledged is 1), is retried as the client
# does, and loops until delivery.timeout.ms.  Nothing is lost (the application is told
# p1-0 failed), which is why "everything is acknowledged" is not one of the properties.
KAFKA_14359 = """
name = "property"
semantics = "exactly-once"
seed = 0
duration_ms = 172000

[cluster]
brokers = 3
"broker.session.timeout.ms" = 1000
"replica.lag.time.max.ms" = 1000
"replica.socket.timeout.ms" = 1000
"replica.fetch.backoff.ms" = 100

[[topics]]
name = "orders"
partitions = 1
"replication.factor" = 3
"min.insync.replicas" = 2

[[producers]]
name = "p1"
[producers.config]
acks = "all"
"enable.idempotence" = true
"request.timeout.ms" = 1000
"max.in.flight.requests.per.connection" = 2
"linger.ms" = 0
"batch.size" = 64

[[steps]]
at_ms = 0
do = "produce"
producer = "p1"
topic = "orders"
count = 1
interval_ms = 0
key = "k{i}"

[[steps]]
at_ms = 0
do = "produce"
producer = "p1"
topic = "orders"
count = 1
interval_ms = 0
key = "k{i}"

[[steps]]
at_ms = 0
do = "error-response"
api = "Produce"
error = "NOT_LEADER_OR_FOLLOWER"
nth = 1
count = 1

[[steps]]
at_ms = 22000
do = "heal"

[[steps]]
at_ms = 22000
do = "restart-broker"
broker = 1

[[steps]]
at_ms = 22000
do = "restart-broker"
broker = 2

[[steps]]
at_ms = 22000
do = "restart-broker"
broker = 3
"""


def test_kafka_14359_out_of_order_retry_loop_ends_in_a_reported_failure() -> None:
    sim = run_checked(load_text(KAFKA_14359, "kafka-14359"))
    verdict = sim.verdict()
    messages = sim.ledger.messages
    assert sim.ended == "settled"
    assert messages["p1-1"].status == "acked"
    assert list(messages["p1-1"].acks) == [("orders-0", 0)]
    assert messages["p1-0"].status == "failed"
    assert set(messages["p1-0"].errors) == {"REQUEST_TIMED_OUT"}  # delivery.timeout.ms
    assert messages["p1-0"].attempts > 50  # retried all along, healed cluster or not
    assert sim.committed_logs() == {"orders-0": [(0, "p1-1")]}
    assert verdict.outcome["lost"] == 0
    assert verdict.outcome["duplicated"] == 0
    # Only delivery.timeout.ms (120 s, Kafka's default) ends the loop.
    assert sim.now_ms >= 120_000

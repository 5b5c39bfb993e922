"""Small scenarios whose runs differ from Kafka's behaviour; each stays xfail until fixed."""

from __future__ import annotations

from broker.scenario import load_text
from broker.simulation import Simulation


def run(text: str) -> Simulation:
    sim = Simulation.from_scenario(load_text(text, "finding"))
    sim.run()
    return sim


def test_an_init_producer_id_timeout_closes_its_connection() -> None:
    sim = run(
        """
semantics = "exactly-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[producers.config]
"linger.ms" = 0
[[steps]]
do = "drop-request"
api = "InitProducerId"
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
"""
    )

    stalled = [e for e in sim.events if e.kind == "net.drop-request" and "stalled" in e.detail]
    assert stalled == []
    [ack] = [e for e in sim.events if e.kind == "produce.ack"]
    assert ack.time_ms < 31_000  # one request.timeout.ms for InitProducerId, no second one


def test_an_injected_not_enough_replicas_after_append_leaves_the_data_in_the_log() -> None:
    sim = run(
        """
semantics = "at-least-once"
[[topics]]
name = "orders"
"min.insync.replicas" = 2
[[producers]]
name = "p1"
[producers.config]
"enable.idempotence" = false
"linger.ms" = 0
[[steps]]
do = "error-response"
api = "Produce"
error = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
[[steps]]
at_ms = 10
do = "produce"
producer = "p1"
topic = "orders"
"""
    )

    assert sim.verdict().outcome["duplicated"] == 1

"""producer-acks1-partition: a live leader cut off by a network partition keeps
acknowledging acks=1 writes after KRaft fenced it; healing truncates them."""

from __future__ import annotations

import pytest

from broker.scenario import load
from broker.simulation import Simulation


def run(seed: int) -> Simulation:
    sim = Simulation.from_scenario(load("producer-acks1-partition"), seed=seed)
    sim.run()
    return sim


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_the_cut_off_leader_acknowledges_five_orders_that_healing_truncates(seed: int) -> None:
    sim = run(seed)

    assert sim.verdict().verdict == "as-expected"
    controller = [(e.time_ms, e.kind) for e in sim.events if e.actor == "controller"]
    assert controller[:4] == [
        (0, "broker.unreachable"),
        (3000, "broker.fenced"),
        (3000, "leader.elected"),
        (6000, "broker.unfenced"),
    ]
    # Split brain: both brokers acknowledged writes to orders-0 between 3 s and 6 s.
    acks = [(e.src, e.actor) for e in sim.events if e.kind == "produce.ack" and e.time_ms < 6000]
    assert acks.count(("broker-1", "p1")) == 5
    assert acks.count(("broker-2", "p2")) == 2
    [truncate] = [e for e in sim.events if e.kind == "replica.truncate"]
    assert (truncate.actor, truncate.offset) == ("broker-1", 0)
    assert truncate.detail.endswith("offsets 0..4 removed")
    assert sim.committed_logs()["orders-0"] == [(0, "p2-0"), (1, "p2-1"), (2, "p1-5")]
    lost = sorted(a.message_id for a in sim.verdict().anomalies if a.kind == "lost")
    assert lost == [f"p1-{i}" for i in range(5)]
    assert not any(e.kind == "broker.crash" for e in sim.events)

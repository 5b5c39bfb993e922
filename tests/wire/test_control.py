"""The listen command's JSON commands: faults naming external clients, checked first."""

from __future__ import annotations

from typing import Any

import pytest

from broker.scenario import ScenarioError
from broker.simulation import Simulation
from broker.wire.control import apply_command, default_spec


@pytest.mark.parametrize(
    "raw",
    [
        {"do": "delay-response", "client": "app", "delay_ms": -5},
        {"do": "drop-response", "client": "app", "nth": 0},
        {"do": "drop-response", "client": "app", "count": True},
        {"do": "error-response", "client": "app", "error": "NO_SUCH_ERROR"},
        {"do": "drop-response", "client": 7},
        ["not", "an", "object"],
    ],
)
def test_a_malformed_command_is_refused_and_arms_nothing(raw: Any) -> None:
    sim = Simulation(default_spec())
    with pytest.raises(ScenarioError):
        apply_command(sim, raw)
    assert sim.network.rules == []


def test_a_fault_naming_an_external_client_is_armed_for_its_client_id() -> None:
    sim = Simulation(default_spec())
    done = apply_command(
        sim, {"do": "delay-response", "client": "app", "delay_ms": 100, "count": None}
    )
    assert done == "delay-response by 100 ms of every request from app"
    [rule] = sim.network.rules
    assert rule.matches("Fetch", "app#3", "broker-1", None)  # any connection of app
    assert not rule.matches("Fetch", "other#3", "broker-1", None)
    assert apply_command(sim, {"do": "faults"}) == [{"rule": done, "hit": 0}]

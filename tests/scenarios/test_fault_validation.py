"""Fault steps that cannot do what they say are refused with the key path."""

from __future__ import annotations

import pytest

from broker.scenario import ScenarioError, load_text

BASE = """
semantics = "at-least-once"
[[topics]]
name = "orders"
[[producers]]
name = "p1"
[[steps]]
do = "error-response"
error = "NOT_ENOUGH_REPLICAS"
"""


def test_error_response_defaults_to_produce_requests() -> None:
    spec = load_text(BASE, "faults")

    assert spec.steps[0].params["api"] == "Produce"


def test_error_response_on_another_api_is_refused() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_text(BASE + 'api = "Fetch"\n', "faults")

    assert caught.value.path == "steps[0].api"
    assert "applies to Produce requests, not Fetch" in caught.value.problem


def test_until_before_the_step_is_refused() -> None:
    text = BASE.replace('do = "error-response"', 'do = "drop-request"\nat_ms = 500').replace(
        'error = "NOT_ENOUGH_REPLICAS"', "until_ms = 100"
    )
    with pytest.raises(ScenarioError) as caught:
        load_text(text, "faults")

    assert caught.value.path == "steps[0].until_ms"

"""The client-side partition assignors: exact assignments, as Kafka's RangeAssignor and
RoundRobinAssignor compute them (members sorted by member id)."""

from __future__ import annotations

import pytest

from broker.assignors import assign, range_assign, round_robin
from broker.protocol import TopicPartition
from tests.broker.consumer_support import consumer, events_of, produce, run_sim

PAYMENTS = """
[[topics]]
name = "payments"
partitions = 2
"replication.factor" = 3
"""


def tps(*names: str) -> list[TopicPartition]:
    return [TopicPartition.parse(name) for name in names]


# -- range ------------------------------------------------------------------------
def test_range_gives_the_extra_partitions_to_the_first_members() -> None:
    plan = range_assign({"c-2": ["t"], "c-1": ["t"], "c-3": ["t"]}, {"t": 8})

    assert plan == {
        "c-1": tps("t-0", "t-1", "t-2"),
        "c-2": tps("t-3", "t-4", "t-5"),
        "c-3": tps("t-6", "t-7"),
    }


def test_range_sorts_member_ids_as_strings() -> None:
    # "m-10" sorts before "m-9": it is the first member and takes the extra partition.
    plan = range_assign({"m-9": ["t"], "m-10": ["t"]}, {"t": 3})

    assert plan == {"m-10": tps("t-0", "t-1"), "m-9": tps("t-2")}


def test_range_assigns_each_topic_separately_so_the_first_member_gets_more() -> None:
    plan = range_assign({"x": ["a", "b"], "y": ["a", "b"]}, {"a": 3, "b": 3})

    assert plan == {"x": tps("a-0", "a-1", "b-0", "b-1"), "y": tps("a-2", "b-2")}


def test_range_divides_a_topic_among_its_own_subscribers_only() -> None:
    plan = range_assign({"x": ["a"], "y": ["a", "b"]}, {"a": 2, "b": 2})

    assert plan == {"x": tps("a-0"), "y": tps("a-1", "b-0", "b-1")}


def test_range_leaves_the_members_beyond_the_partition_count_empty() -> None:
    plan = range_assign({"c-1": ["t"], "c-2": ["t"], "c-3": ["t"]}, {"t": 2})

    assert plan == {"c-1": tps("t-0"), "c-2": tps("t-1"), "c-3": []}


def test_range_skips_a_topic_nobody_subscribes_to() -> None:
    plan = range_assign({"c-1": ["a"]}, {"a": 1, "z": 4})

    assert plan == {"c-1": tps("a-0")}


# -- roundrobin --------------------------------------------------------------------
def test_roundrobin_deals_all_partitions_of_all_topics_in_turn() -> None:
    plan = round_robin({"y": ["a", "b"], "x": ["a", "b"]}, {"b": 3, "a": 3})

    assert plan == {"x": tps("a-0", "a-2", "b-1"), "y": tps("a-1", "b-0", "b-2")}


def test_roundrobin_skips_members_not_subscribed_to_a_partitions_topic() -> None:
    plan = round_robin({"x": ["a"], "y": ["a", "b"]}, {"a": 2, "b": 2})

    assert plan == {"x": tps("a-0"), "y": tps("a-1", "b-0", "b-1")}


def test_roundrobin_continues_the_turn_across_topics() -> None:
    plan = round_robin({"c-1": ["a", "b"], "c-2": ["a", "b"], "c-3": ["a", "b"]}, {"a": 2, "b": 2})

    assert plan == {"c-1": tps("a-0", "b-1"), "c-2": tps("a-1"), "c-3": tps("b-0")}


def test_roundrobin_with_no_members_assigns_nothing() -> None:
    assert round_robin({}, {"a": 3}) == {}


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        ("range", {"x": tps("a-0", "a-1", "b-0", "b-1"), "y": tps("a-2", "b-2")}),
        ("roundrobin", {"x": tps("a-0", "a-2", "b-1"), "y": tps("a-1", "b-0", "b-2")}),
    ],
)
def test_assign_picks_the_strategy_by_name(
    strategy: str, expected: dict[str, list[TopicPartition]]
) -> None:
    assert assign(strategy, {"x": ["a", "b"], "y": ["a", "b"]}, {"a": 3, "b": 3}) == expected


# -- through the group: the leader computes the plan ------------------------------------
@pytest.mark.parametrize(
    ("strategy", "stable"),
    [
        (
            "range",
            "generation 2: a-1 <- orders-0, orders-1, payments-0; b-2 <- orders-2, payments-1",
        ),
        (
            "roundrobin",
            "generation 2: a-1 <- orders-0, orders-2, payments-1; b-2 <- orders-1, payments-0",
        ),
    ],
)
def test_the_group_leader_assigns_with_the_configured_strategy(strategy: str, stable: str) -> None:
    config = {"partition.assignment.strategy": strategy}
    sim = run_sim(
        consumer("a", topics=("orders", "payments"), config=config),
        consumer("b", topics=("orders", "payments"), config=config, start_ms=1000),
        partitions=3,
        extra_topics=PAYMENTS,
        steps=produce(0, 1),
    )

    assert [e.detail for e in events_of(sim, "group.stable")][-1] == "group billing: " + stable

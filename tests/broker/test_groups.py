"""The group coordinator: generations, session timeouts, leaving, commit validation, offsets as
records in __consumer_offsets, and a new coordinator rebuilding its groups from that log."""

from __future__ import annotations

from broker.errors import ErrorCode
from broker.protocol import (
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    TopicPartition,
)
from broker.simulation import Simulation
from tests.broker.conftest import submit
from tests.broker.consumer_support import (
    RawClient,
    consumer,
    consumer_sim,
    details,
    events_of,
    group_state,
    offsets_log,
    processed_offsets,
    produce,
    run_sim,
    step,
)

ORDERS_0 = TopicPartition("orders", 0)


def two_members(*extra_steps: str) -> Simulation:
    """a joins at 0 ms, b at 2000 ms; orders has two partitions holding two records each."""
    return run_sim(
        consumer("a"),
        consumer("b", start_ms=2000),
        partitions=2,
        steps=produce(0, 4) + "".join(extra_steps),
    )


def idle_cluster(**kwargs: object) -> Simulation:
    """A cluster with groups enabled (a consumer of another group starts much later), ready
    for hand-made group requests to broker-1, which leads __consumer_offsets-0."""
    sim = consumer_sim(
        consumer("idle", group="other", start_ms=500_000),
        duration_ms=600_000,
        hold_ms=590_000,
        **kwargs,  # type: ignore[arg-type]
    )
    sim.run_until(100)
    return sim


# -- generations ---------------------------------------------------------------
def test_the_first_member_gets_generation_1_and_leads() -> None:
    sim = run_sim(consumer("a"), steps=produce(0, 2))

    assert details(sim, "group.generation") == [
        "group billing: generation 1, leader a-1, members a-1"
    ]
    assert details(sim, "consumer.assigned") == ["generation 1, member a-1: orders-0"]
    state = group_state(sim)
    assert (state["state"], state["generation"], state["leader"]) == ("Stable", 1, "a-1")


def test_a_second_member_joining_makes_generation_2_with_both() -> None:
    sim = two_members()

    assert details(sim, "group.generation") == [
        "group billing: generation 1, leader a-1, members a-1",
        "group billing: generation 2, leader a-1, members a-1, b-2",
    ]
    assert details(sim, "group.stable")[-1] == (
        "group billing: generation 2: a-1 <- orders-0; b-2 <- orders-1"
    )
    # The member already in the group learns of the rebalance from its heartbeat.
    [rejoin] = events_of(sim, "consumer.rejoin-needed", "a")
    assert rejoin.error == "REBALANCE_IN_PROGRESS"
    assert group_state(sim)["generation"] == 2


def test_a_crashed_member_is_removed_after_the_session_timeout_and_left_out() -> None:
    sim = two_members(step(5000, "crash-consumer", consumer="b"))

    [expired] = events_of(sim, "group.member-expired")
    assert expired.detail == (
        "group billing: b-2 removed: no heartbeat within session.timeout.ms=6000"
    )
    # b's last heartbeat reached the coordinator at 4011 ms: 6000 ms later it is gone.
    assert expired.time_ms == 10_011
    assert 5000 + 6000 - 2000 <= expired.time_ms <= 5000 + 6000
    assert details(sim, "group.generation")[-1] == (
        "group billing: generation 3, leader a-1, members a-1"
    )
    assert details(sim, "group.stable")[-1] == (
        "group billing: generation 3: a-1 <- orders-0, orders-1"
    )
    state = group_state(sim)
    assert [m["member_id"] for m in state["members"]] == ["a-1"]
    assert state["generation"] == 3


def test_the_group_keeps_the_crashed_member_until_its_session_expires() -> None:
    sim = consumer_sim(
        consumer("a"),
        consumer("b", start_ms=2000),
        partitions=2,
        steps=produce(0, 4) + step(5000, "crash-consumer", consumer="b"),
    )
    sim.run_until(10_010)

    state = group_state(sim)
    assert (state["generation"], [m["member_id"] for m in state["members"]]) == (2, ["a-1", "b-2"])
    sim.run_until(10_011)
    assert [m["member_id"] for m in group_state(sim)["members"]] == ["a-1"]


def test_a_member_that_leaves_is_removed_at_once() -> None:
    # A LeaveGroup needs no session timeout: the member is gone as soon as it arrives.
    sim = idle_cluster()
    client = RawClient(sim)
    join = joined(client)
    client.ask(1, SyncGroupRequest("g", join.generation_id, join.member_id, ()))

    left = client.ask(1, LeaveGroupRequest("g", join.member_id))

    assert left.error is ErrorCode.NONE
    assert details(sim, "group.member-left") == [
        f"group g: {join.member_id} removed: left the group"
    ]
    assert details(sim, "group.empty") == ["group g: generation 2, no members"]
    assert events_of(sim, "group.member-expired") == []
    state = group_state(sim, "g")
    assert (state["state"], state["generation"], state["members"]) == ("Empty", 2, [])


def test_stop_consumer_leaves_the_group_without_waiting_for_the_session_timeout() -> None:
    sim = two_members(step(5000, "stop-consumer", consumer="b"))

    assert details(sim, "group.member-left") == ["group billing: b-2 removed: left the group"]
    assert events_of(sim, "group.member-expired") == []
    [generation_3] = [e for e in events_of(sim, "group.generation") if "generation 3" in e.detail]
    assert generation_3.time_ms < 5000 + 6000


# -- commit validation -----------------------------------------------------------
def commit(client: RawClient, generation: int, member: str, offset: int) -> ErrorCode:
    answer = client.ask(1, OffsetCommitRequest("g", generation, member, ((ORDERS_0, offset),)))
    assert isinstance(answer, OffsetCommitResponse)
    return answer.error


def fetch(client: RawClient, group: str = "g") -> int:
    answer = client.ask(1, OffsetFetchRequest(group, (ORDERS_0,)))
    assert isinstance(answer, OffsetFetchResponse)
    assert answer.error is ErrorCode.NONE
    [(tp, offset)] = answer.offsets
    assert tp == ORDERS_0
    return offset


def joined(client: RawClient) -> JoinGroupResponse:
    """Join group g as a new member (alone: the join completes at once) and sync."""
    join = client.ask(1, JoinGroupRequest("g", "", "tester", 6000, 10_000, "range", ("orders",)))
    assert isinstance(join, JoinGroupResponse)
    return join


def test_a_commit_from_an_unknown_member_gets_unknown_member_id_25() -> None:
    sim = idle_cluster()
    client = RawClient(sim)
    join = joined(client)
    client.ask(1, SyncGroupRequest("g", join.generation_id, join.member_id, ()))

    error = commit(client, join.generation_id, "nobody-7", 3)

    assert (error, error.value) == (ErrorCode.UNKNOWN_MEMBER_ID, 25)
    [rejected] = events_of(sim, "offset.commit-rejected")
    assert rejected.error == "UNKNOWN_MEMBER_ID"
    assert rejected.detail == "group g: nobody-7 generation 1 (group is at 1): orders-0=3"
    assert fetch(client) == -1


def test_a_commit_with_another_generation_gets_illegal_generation_22() -> None:
    sim = idle_cluster()
    client = RawClient(sim)
    join = joined(client)
    client.ask(1, SyncGroupRequest("g", join.generation_id, join.member_id, ()))

    error = commit(client, join.generation_id + 1, join.member_id, 3)

    assert (error, error.value) == (ErrorCode.ILLEGAL_GENERATION, 22)
    assert fetch(client) == -1


def test_a_commit_while_the_group_completes_a_rebalance_gets_rebalance_in_progress_27() -> None:
    sim = idle_cluster()
    client = RawClient(sim)
    join = joined(client)
    assert group_state(sim, "g")["state"] == "CompletingRebalance"

    error = commit(client, join.generation_id, join.member_id, 3)

    assert (error, error.value) == (ErrorCode.REBALANCE_IN_PROGRESS, 27)
    assert fetch(client) == -1
    # Once the leader's SyncGroup has stored the assignment, the same commit is accepted.
    client.ask(1, SyncGroupRequest("g", join.generation_id, join.member_id, ()))
    assert group_state(sim, "g")["state"] == "Stable"
    assert commit(client, join.generation_id, join.member_id, 3) is ErrorCode.NONE
    assert fetch(client) == 3


def test_a_commit_from_a_stale_generation_changes_nothing() -> None:
    sim = idle_cluster()
    first, second = RawClient(sim, "first"), RawClient(sim, "second")
    join = joined(first)
    first.ask(1, SyncGroupRequest("g", 1, join.member_id, ()))
    assert commit(first, 1, join.member_id, 3) is ErrorCode.NONE
    # A second member joins; the first rejoins with its id: generation 2 for both.
    second.send(1, JoinGroupRequest("g", "", "second", 6000, 10_000, "range", ("orders",)))
    first.send(1, JoinGroupRequest("g", join.member_id, "first", 6000, 10_000, "range", ()))
    assert [a.generation_id for a in first.answers[-1:] + second.answers] == [2, 2]
    records_before = offsets_log(sim)

    error = commit(first, 1, join.member_id, 99)

    assert error is ErrorCode.ILLEGAL_GENERATION
    assert offsets_log(sim) == records_before
    assert fetch(first) == 3
    assert group_state(sim, "g")["offsets"] == {"orders-0": 3}


# -- offsets live in __consumer_offsets -------------------------------------------------
def test_committed_offsets_are_records_in_consumer_offsets() -> None:
    sim = run_sim(consumer("a", commit="after-processing"), steps=produce(0, 3) + produce(500, 2))

    records = offsets_log(sim)
    assert [key for _offset, key, _value in records] == [
        "group/billing",
        "offset/billing/orders-0",
        "offset/billing/orders-0",
    ]
    offset_values = [value for _offset, key, value in records if key.startswith("offset/")]
    assert offset_values == [
        {
            "group": "billing",
            "partition": "orders-0",
            "offset": 3,
            "member_id": "a-1",
            "generation": 1,
        },
        {
            "group": "billing",
            "partition": "orders-0",
            "offset": 5,
            "member_id": "a-1",
            "generation": 1,
        },
    ]
    [(_offset, _key, group)] = [r for r in records if r[1] == "group/billing"]
    assert (group["generation"], group["leader"], group["protocol"]) == (1, "a-1", "range")
    assert [(m["member_id"], m["assignment"]) for m in group["members"]] == [("a-1", ["orders-0"])]
    # Every replica of __consumer_offsets-0 holds the same records.
    assert offsets_log(sim, 2) == offsets_log(sim, 3) == records


def test_a_committed_offset_is_fetched_only_once_its_record_is_committed() -> None:
    sim = idle_cluster(cluster='"replica.lag.time.max.ms" = 1000')
    submit(sim, do="isolate-broker", broker=2)
    submit(sim, do="isolate-broker", broker=3)
    sim.run_until(110)
    client = RawClient(sim)

    # A standalone commit (no member, generation -1) to the empty group g.
    client.send(1, OffsetCommitRequest("g", -1, "", ((ORDERS_0, 5),)), wait_ms=50)

    assert client.answers == []  # not answered: the followers cannot replicate it
    log = sim.cluster.brokers[1].replicas[TopicPartition("__consumer_offsets", 0)].log
    assert [(o, k, v["offset"]) for o, k, v in offsets_log(sim)] == [(0, "offset/g/orders-0", 5)]
    assert (log.high_watermark, log.log_end_offset) == (0, 1)
    # Another client reads the old value; the committer's own connection is muted
    # until its commit is answered (one request at a time per connection).
    assert fetch(RawClient(sim, "reader")) == -1

    sim.run_until(1500)  # the ISR shrinks to [1]: the high watermark passes the record
    assert log.high_watermark == 1
    sim.run_until(1501)  # the answer travels back
    assert [a.error for a in client.answers if isinstance(a, OffsetCommitResponse)] == [
        ErrorCode.NONE
    ]
    [committed] = events_of(sim, "offset.committed")
    assert committed.time_ms == 1500
    assert fetch(client) == 5


# -- a new coordinator ------------------------------------------------------------------
def failover() -> Simulation:
    """broker-1 (coordinator: leader of __consumer_offsets-0) crashes at 1000 ms after a has
    committed orders-0=4; broker-2 leads orders-0 throughout and becomes the coordinator."""
    return consumer_sim(
        consumer("a", commit="after-processing", config={"request.timeout.ms": 3000}),
        steps=produce(0, 4, 10) + step(1000, "crash-broker", broker=1) + produce(5000, 4, 10),
        topic="replicas = [[2, 3, 1]]",
        cluster='"broker.session.timeout.ms" = 2000',
    )


def test_a_new_coordinator_rebuilds_offsets_and_members_from_the_log() -> None:
    sim = failover()
    sim.run_until(3000)

    [loaded] = events_of(sim, "group.loaded")
    assert (loaded.actor, loaded.time_ms, loaded.partition) == (
        "broker-2",
        3000,
        "__consumer_offsets-0",
    )
    assert loaded.detail == "coordinator for billing: state rebuilt from the log"
    [state] = sim.cluster.brokers[2].groups.snapshot()
    assert state["offsets"] == {"orders-0": 4}
    assert (state["state"], state["generation"], state["leader"]) == ("Stable", 1, "a-1")
    assert [m["assignment"] for m in state["members"]] == [["orders-0"]]


def test_consumers_carry_on_with_the_new_coordinator() -> None:
    sim = failover()
    sim.run()

    committed = [(e.actor, e.detail) for e in events_of(sim, "offset.committed")]
    assert committed == [
        ("broker-1", "group billing: orders-0=1"),
        ("broker-1", "group billing: orders-0=2"),
        ("broker-1", "group billing: orders-0=3"),
        ("broker-1", "group billing: orders-0=4"),
        ("broker-2", "group billing: orders-0=5"),
        ("broker-2", "group billing: orders-0=6"),
        ("broker-2", "group billing: orders-0=7"),
        ("broker-2", "group billing: orders-0=8"),
    ]
    # Same member, same generation: no rebalance was needed.
    assert len(events_of(sim, "group.generation")) == 1
    assert processed_offsets(sim, "a") == list(range(8))
    assert group_state(sim)["coordinator"] == 2
    assert group_state(sim)["offsets"] == {"orders-0": 8}
    outcome = sim.verdict().outcome
    assert (outcome["processed"], outcome["lost"], outcome["duplicated"]) == (8, 0, 0)

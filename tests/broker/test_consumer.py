"""The consumer client and the application around it: auto-commit timing, commit strategies,
max.poll.records, auto.offset.reset, zombies, handoff processing, positions vs commits."""

from __future__ import annotations

from broker.simulation import Simulation
from tests.broker.consumer_support import (
    consumer,
    consumer_sim,
    consumer_state,
    details,
    events_of,
    processed,
    processed_offsets,
    produce,
    run_sim,
    step,
)


def polls(sim: Simulation, actor: str | None = None) -> list[tuple[int, str]]:
    """(time, what the poll returned) for every poll that returned records."""
    return [
        (e.time_ms, e.detail.removeprefix("poll() returned "))
        for e in events_of(sim, "consumer.poll", actor)
    ]


def commits(sim: Simulation, actor: str | None = None) -> list[tuple[int, str]]:
    return [
        (e.time_ms, e.detail.removeprefix("OffsetCommit "))
        for e in events_of(sim, "consumer.commit", actor)
    ]


def kinds_at(sim: Simulation, wanted: set[str]) -> list[tuple[int, str, int | None]]:
    return [(e.time_ms, e.kind, e.offset) for e in sim.events if e.kind in wanted]


# -- auto-commit -------------------------------------------------------------------------
def auto_commit_run() -> Simulation:
    """20 records at once; polls of 3 records every 300 ms; auto.commit.interval.ms=1000."""
    return run_sim(
        consumer(
            "a", processing_ms=100, config={"max.poll.records": 3, "auto.commit.interval.ms": 1000}
        ),
        steps=produce(0, 20),
    )


def test_auto_commit_happens_inside_poll_once_the_interval_has_passed() -> None:
    sim = auto_commit_run()

    auto = [(e.time_ms, e.detail) for e in events_of(sim, "consumer.auto-commit")]
    assert auto == [
        (1212, "auto.commit.interval.ms elapsed: committing positions orders-0=12"),
        (2212, "auto.commit.interval.ms elapsed: committing positions orders-0=20"),
    ]
    assert commits(sim) == [
        (1212, "generation 1: orders-0=12"),
        (2212, "generation 1: orders-0=20"),
    ]
    assert details(sim, "offset.committed") == [
        "group billing: orders-0=12",
        "group billing: orders-0=20",
    ]


def test_auto_commit_commits_the_positions_reached_by_earlier_polls_only() -> None:
    sim = auto_commit_run()

    assert polls(sim)[:5] == [
        (12, "3 record(s): orders-0@0, orders-0@1, orders-0@2"),
        (312, "3 record(s): orders-0@3, orders-0@4, orders-0@5"),
        (612, "3 record(s): orders-0@6, orders-0@7, orders-0@8"),
        (912, "3 record(s): orders-0@9, orders-0@10, orders-0@11"),
        (1212, "3 record(s): orders-0@12, orders-0@13, orders-0@14"),
    ]
    # The poll at 1212 ms commits 12 (after the poll at 912 ms), then returns 12..14.
    order = [(t, kind) for t, kind, _o in kinds_at(sim, {"consumer.auto-commit", "consumer.poll"})]
    assert order[4:6] == [(1212, "consumer.auto-commit"), (1212, "consumer.poll")]


def test_a_rebalance_auto_commits_the_positions_before_giving_partitions_up() -> None:
    sim = run_sim(consumer("a"), consumer("b", start_ms=2000), partitions=2, steps=produce(0, 4))

    # Long before auto.commit.interval.ms (5000), a commits what it consumed, then revokes.
    assert commits(sim, "a")[0] == (2004, "generation 1: orders-0=2, orders-1=2")
    events = [(e.time_ms, e.kind) for e in sim.events if e.actor == "a"]
    start = events.index((2004, "consumer.commit"))
    assert events[start : start + 3] == [
        (2004, "consumer.commit"),
        (2008, "consumer.revoked"),
        (2008, "consumer.join"),
    ]
    assert events_of(sim, "consumer.auto-commit") == []


# -- commit strategies --------------------------------------------------------------------
def strategy_run(commit: str, **fields: object) -> Simulation:
    return run_sim(
        consumer("a", commit=commit, processing_ms=20, config={"max.poll.records": 4}, **fields),
        steps=produce(0, 8),
    )


def test_commit_before_processing_commits_the_batch_end_before_the_first_record() -> None:
    sim = strategy_run("before-processing")

    wanted = {"consumer.poll", "consumer.commit", "consumer.process"}
    # The commit is answered at 16 ms; only then does processing (20 ms a record) begin.
    assert kinds_at(sim, wanted) == [
        (12, "consumer.poll", 0),
        (12, "consumer.commit", None),
        (36, "consumer.process", 0),
        (56, "consumer.process", 1),
        (76, "consumer.process", 2),
        (96, "consumer.process", 3),
        (96, "consumer.poll", 4),
        (96, "consumer.commit", None),
        (120, "consumer.process", 4),
        (140, "consumer.process", 5),
        (160, "consumer.process", 6),
        (180, "consumer.process", 7),
    ]
    assert commits(sim) == [(12, "generation 1: orders-0=4"), (96, "generation 1: orders-0=8")]


def test_commit_after_processing_commits_the_batch_end_after_its_last_record() -> None:
    sim = strategy_run("after-processing")

    wanted = {"consumer.poll", "consumer.commit", "consumer.process"}
    assert kinds_at(sim, wanted) == [
        (12, "consumer.poll", 0),
        (32, "consumer.process", 0),
        (52, "consumer.process", 1),
        (72, "consumer.process", 2),
        (92, "consumer.process", 3),
        (92, "consumer.commit", None),
        (96, "consumer.poll", 4),
        (116, "consumer.process", 4),
        (136, "consumer.process", 5),
        (156, "consumer.process", 6),
        (176, "consumer.process", 7),
        (176, "consumer.commit", None),
    ]
    assert commits(sim) == [(92, "generation 1: orders-0=4"), (176, "generation 1: orders-0=8")]


def test_per_record_commits_commit_each_record_right_after_it_is_processed() -> None:
    sim = strategy_run("after-processing", commit_every="record")

    processes = [e.time_ms for e in events_of(sim, "consumer.process")]
    assert [c for _t, c in commits(sim)] == [f"generation 1: orders-0={n}" for n in range(1, 9)]
    assert [t for t, _c in commits(sim)] == processes
    assert details(sim, "offset.committed")[-1] == "group billing: orders-0=8"


def test_a_crash_after_a_before_processing_commit_loses_the_rest_of_the_batch() -> None:
    sim = run_sim(
        consumer("a", commit="before-processing", processing_ms=20, config={"max.poll.records": 4}),
        steps=produce(0, 8)
        + step(0, "crash-consumer", consumer="a", at="after-record", after_records=1)
        + step(1000, "restart-consumer", consumer="a"),
    )

    assert processed_offsets(sim, "a") == [0]
    assert processed_offsets(sim, "a#2") == [4, 5, 6, 7]
    lost = [(a.message_id, a.offsets) for a in sim.verdict().anomalies if a.kind == "lost"]
    assert lost == [("p1-1", (1,)), ("p1-2", (2,)), ("p1-3", (3,))]


def test_a_crash_before_an_after_processing_commit_reprocesses_the_batch() -> None:
    sim = run_sim(
        consumer("a", commit="after-processing", processing_ms=20, config={"max.poll.records": 4}),
        steps=produce(0, 8)
        + step(0, "crash-consumer", consumer="a", at="after-record", after_records=3)
        + step(1000, "restart-consumer", consumer="a"),
    )

    assert processed_offsets(sim, "a") == [0, 1, 2]
    assert processed_offsets(sim, "a#2") == [0, 1, 2, 3, 4, 5, 6, 7]
    outcome = sim.verdict().outcome
    assert (outcome["lost"], outcome["reprocessed"], outcome["processed"]) == (0, 3, 8)


# -- max.poll.records ----------------------------------------------------------------------
def test_max_poll_records_caps_every_poll() -> None:
    sim = run_sim(
        consumer("a", commit="after-processing", config={"max.poll.records": 3}),
        steps=produce(0, 10),
    )

    sizes = [int(e.detail.split()[2]) for e in events_of(sim, "consumer.poll")]
    assert sizes == [3, 3, 3, 1]
    assert [e.offset for e in events_of(sim, "consumer.poll")] == [0, 3, 6, 9]


# -- auto.offset.reset ----------------------------------------------------------------------
def test_auto_offset_reset_earliest_starts_a_new_group_at_offset_0() -> None:
    sim = run_sim(consumer("a", start_ms=1000), steps=produce(0, 3) + produce(2000, 2))

    [position] = events_of(sim, "consumer.position")
    assert (position.offset, position.detail) == (
        0,
        "no committed offset: auto.offset.reset=earliest",
    )
    assert processed_offsets(sim, "a") == [0, 1, 2, 3, 4]


def test_auto_offset_reset_latest_starts_a_new_group_at_the_log_end() -> None:
    sim = run_sim(
        consumer("a", start_ms=1000, config={"auto.offset.reset": "latest"}),
        steps=produce(0, 3) + produce(2000, 2),
    )

    [position] = events_of(sim, "consumer.position")
    assert (position.offset, position.detail) == (
        3,
        "no committed offset: auto.offset.reset=latest",
    )
    assert processed_offsets(sim, "a") == [3, 4]
    unseen = [(a.message_id, a.offsets) for a in sim.verdict().anomalies if a.kind == "unseen"]
    assert unseen == [("p1-0", (0,)), ("p1-1", (1,)), ("p1-2", (2,))]


def test_auto_offset_reset_none_stops_the_app_with_no_offset_for_partition() -> None:
    sim = run_sim(consumer("a", config={"auto.offset.reset": "none"}), steps=produce(0, 3))

    [error] = events_of(sim, "app.error", "a")
    assert error.detail == (
        "NoOffsetForPartitionException: no committed offset for orders-0 and auto.offset.reset=none"
    )
    assert details(sim, "app.crash") == ["stopped by an unrecoverable consumer error"]
    assert events_of(sim, "consumer.poll") == []
    assert consumer_state(sim, "a")["alive"] is False
    assert sim.verdict().outcome["unseen"] == 3


def test_auto_offset_reset_is_not_used_when_an_offset_is_committed() -> None:
    sim = run_sim(
        consumer("first", commit="after-processing"),
        consumer(
            "second", commit="after-processing", start_ms=3000, config={"auto.offset.reset": "none"}
        ),
        steps=produce(0, 3) + step(1000, "crash-consumer", consumer="first") + produce(5000, 2),
    )

    assert events_of(sim, "app.error") == []
    [position] = events_of(sim, "consumer.position", "second")
    assert (position.offset, position.detail) == (3, "starts at the committed offset")
    assert processed_offsets(sim, "second") == [3, 4]


# -- a stalled consumer becomes a zombie ------------------------------------------------------
def zombie_run() -> Simulation:
    """a polls 0..3 at 12 ms, stalls at 150 ms for 10 s; its session (6 s) expires."""
    return run_sim(
        consumer("a", commit="after-processing", processing_ms=100, config={"max.poll.records": 4}),
        steps=produce(0, 8) + step(150, "stall-consumer", consumer="a", duration_ms=10_000),
    )


def test_a_stall_past_the_session_timeout_removes_the_member() -> None:
    sim = zombie_run()

    [expired] = events_of(sim, "group.member-expired")
    assert expired.detail == (
        "group billing: a-1 removed: no heartbeat within session.timeout.ms=6000"
    )
    assert expired.time_ms < 10_150  # while a is still frozen
    assert details(sim, "group.empty") == ["group billing: generation 2, no members"]


def test_a_zombies_commit_fails_with_commit_failed_exception_and_it_rejoins() -> None:
    sim = zombie_run()

    [failed] = events_of(sim, "consumer.commit-failed", "a")
    assert failed.error == "UNKNOWN_MEMBER_ID"
    assert failed.detail.startswith("CommitFailedException")
    assert failed.time_ms > 10_150
    # Its batch is abandoned; as a new member (generation 3) it reads 0..3 again.
    assert details(sim, "consumer.assigned", "a")[-1] == "generation 3, member a-2: orders-0"
    assert [c for _t, c in commits(sim)] == ["generation 3: orders-0=4", "generation 3: orders-0=8"]
    assert [len(processed(sim, f"p1-{i}")) for i in range(8)] == [2, 2, 2, 2, 1, 1, 1, 1]


# -- handoff processing -------------------------------------------------------------------------
def test_handoff_with_auto_commit_loses_the_queued_records_on_a_crash() -> None:
    sim = run_sim(
        consumer(
            "a", processing="handoff", processing_ms=200, config={"auto.commit.interval.ms": 500}
        ),
        steps=produce(0, 10)
        + step(1000, "crash-consumer", consumer="a")
        + step(1500, "restart-consumer", consumer="a"),
    )

    assert polls(sim) == [
        (12, "10 record(s): orders-0@0, orders-0@1, orders-0@2, orders-0@3 ... orders-0@9")
    ]
    # Only 0 and 1 were processed when auto-commit committed all ten.
    assert commits(sim) == [(512, "generation 1: orders-0=10")]
    assert processed_offsets(sim, "a") == [0, 1, 2, 3]
    [position] = events_of(sim, "consumer.position", "a#2")
    assert (position.offset, position.detail) == (10, "starts at the committed offset")
    lost = [(a.message_id, a.offsets[0]) for a in sim.verdict().anomalies if a.kind == "lost"]
    assert lost == [(f"p1-{i}", i) for i in range(4, 10)]


# -- positions and committed offsets --------------------------------------------------------------
def test_the_snapshot_shows_the_position_ahead_of_the_committed_offset_mid_batch() -> None:
    sim = consumer_sim(
        consumer("a", commit="after-processing", processing_ms=100, config={"max.poll.records": 4}),
        steps=produce(0, 8),
        hold_ms=5000,
    )

    sim.run_until(200)  # batch 0..3 polled at 12 ms, being processed
    [partition] = consumer_state(sim, "a")["partitions"]
    assert partition == {
        "partition": "orders-0",
        "position": 4,
        "committed": None,
        "high_watermark": 8,
    }
    assert consumer_state(sim, "a")["processing"] == 3

    sim.run_until(500)  # batch committed at 412 ms, second batch polled and in progress
    [partition] = consumer_state(sim, "a")["partitions"]
    assert (partition["position"], partition["committed"]) == (8, 4)

    sim.run_until(5000)
    state = consumer_state(sim, "a")
    [partition] = state["partitions"]
    assert (partition["position"], partition["committed"]) == (8, 8)
    assert (state["state"], state["member_id"], state["generation"]) == ("stable", "a-1", 1)

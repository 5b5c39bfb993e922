import pytest

from broker.events import EventLog
from broker.scheduler import (
    PRIORITY_COMMAND,
    PRIORITY_NETWORK,
    PRIORITY_TIMER,
    Scheduler,
)


def test_actions_run_in_time_order_and_the_clock_jumps_to_each() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[tuple[str, int]] = []
    scheduler.at(30, lambda: seen.append(("c", scheduler.now_ms)))
    scheduler.at(10, lambda: seen.append(("a", scheduler.now_ms)))
    scheduler.at(20, lambda: seen.append(("b", scheduler.now_ms)))

    scheduler.run_until(100)

    assert seen == [("a", 10), ("b", 20), ("c", 30)]
    assert scheduler.now_ms == 100
    assert scheduler.executed == 3


def test_same_time_actions_run_by_priority_then_insertion_order() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[str] = []
    scheduler.at(5, seen.append, "timer-1", priority=PRIORITY_TIMER)
    scheduler.at(5, seen.append, "network-1", priority=PRIORITY_NETWORK)
    scheduler.at(5, seen.append, "command-1", priority=PRIORITY_COMMAND)
    scheduler.at(5, seen.append, "timer-2", priority=PRIORITY_TIMER)
    scheduler.at(5, seen.append, "network-2", priority=PRIORITY_NETWORK)
    scheduler.at(5, seen.append, "command-2", priority=PRIORITY_COMMAND)

    scheduler.run_until(5)

    assert seen == ["command-1", "command-2", "network-1", "network-2", "timer-1", "timer-2"]


def test_after_schedules_relative_to_now_and_clamps_negative_delays() -> None:
    scheduler = Scheduler(seed=1)
    scheduler.run_until(40)

    later = scheduler.after(15, lambda: None)
    now = scheduler.after(-7, lambda: None)

    assert later.due_ms == 55
    assert now.due_ms == 40


def test_scheduling_in_the_past_raises() -> None:
    scheduler = Scheduler(seed=1)
    scheduler.run_until(10)

    with pytest.raises(ValueError, match="cannot schedule in the past: 9 < 10"):
        scheduler.at(9, lambda: None)


def test_a_cancelled_timer_never_runs_and_is_not_pending() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[str] = []
    keep = scheduler.at(10, seen.append, "kept")
    drop = scheduler.at(5, seen.append, "dropped")

    drop.cancel()

    assert drop.cancelled
    assert not keep.cancelled
    assert scheduler.pending() == 1
    assert scheduler.next_due_ms() == 10
    scheduler.run_until(20)
    assert seen == ["kept"]
    assert scheduler.executed == 1


def test_step_returns_false_when_nothing_is_left() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[int] = []
    scheduler.at(3, seen.append, 3)

    assert scheduler.step() is True
    assert scheduler.step() is False
    assert seen == [3]
    assert scheduler.next_due_ms() is None


def test_run_until_leaves_later_actions_pending() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[int] = []
    scheduler.at(10, seen.append, 10)
    scheduler.at(11, seen.append, 11)

    scheduler.run_until(10)

    assert seen == [10]
    assert scheduler.now_ms == 10
    assert scheduler.pending() == 1


def test_an_action_scheduled_at_now_by_a_running_action_runs_in_the_same_run() -> None:
    scheduler = Scheduler(seed=1)
    seen: list[tuple[str, int]] = []

    def first() -> None:
        seen.append(("first", scheduler.now_ms))
        scheduler.after(0, lambda: seen.append(("second", scheduler.now_ms)))

    scheduler.at(7, first)
    scheduler.run_until(7)

    assert seen == [("first", 7), ("second", 7)]


def test_rng_streams_are_deterministic_per_seed_and_name() -> None:
    a = Scheduler(seed=42)
    b = Scheduler(seed=42)

    assert [a.rng("network").random() for _ in range(5)] == [
        b.rng("network").random() for _ in range(5)
    ]
    assert a.rng("network") is a.rng("network")


def test_rng_streams_differ_by_seed_and_by_name() -> None:
    first = Scheduler(seed=1).rng("network").random()

    assert Scheduler(seed=2).rng("network").random() != first
    assert Scheduler(seed=1).rng("faults").random() != first


def test_rng_streams_are_independent_of_each_other() -> None:
    untouched = Scheduler(seed=9)
    busy = Scheduler(seed=9)
    for _ in range(100):
        busy.rng("faults").random()

    assert busy.rng("network").random() == untouched.rng("network").random()


def test_event_log_numbers_events_and_stamps_the_bound_clock() -> None:
    scheduler = Scheduler(seed=1)
    events = EventLog()
    events.bind_clock(lambda: scheduler.now_ms)
    events.emit("broker-1", "produce.append", "orders-0", 3, detail="x")
    scheduler.run_until(25)
    events.emit("p1", "produce.ack", "orders-0", 3)

    assert [(e.seq, e.time_ms, e.actor, e.kind) for e in events] == [
        (0, 0, "broker-1", "produce.append"),
        (1, 25, "p1", "produce.ack"),
    ]
    assert [e.seq for e in events.since(1)] == [1]


def test_event_log_keeps_only_the_most_recent_events() -> None:
    events = EventLog(limit=3)
    for i in range(5):
        events.emit("a", f"k{i}")

    assert [e.kind for e in events] == ["k2", "k3", "k4"]
    assert events.dropped == 2
    assert [e.kind for e in events.since(0)] == ["k2", "k3", "k4"]
    assert [e.kind for e in events.since(4)] == ["k4"]


def test_trace_line_shows_time_actor_kind_partition_offset_detail_and_error() -> None:
    events = EventLog()
    events.emit("p1", "produce.retry", "orders-0", 7, "NETWORK_EXCEPTION", "retry 1")

    line = next(iter(events)).trace_line()

    assert line == (
        "        0 ms  p1            produce.retry           orders-0@7      retry 1"
        "  error=NETWORK_EXCEPTION"
    )

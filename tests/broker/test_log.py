import pytest

from broker.log import UNDEFINED_EPOCH, UNDEFINED_OFFSET, EpochEntry, PartitionLog
from broker.protocol import TopicPartition
from tests.broker.conftest import ORDERS_0, batch, cursors, idem, log_batch, message_ids


def leader_log(*epoch_batches: tuple[int, int]) -> PartitionLog:
    """A log built as a leader: (leader epoch, record count) per batch."""
    log = PartitionLog(ORDERS_0)
    n = 0
    for epoch, count in epoch_batches:
        ids = [f"m{n + i}" for i in range(count)]
        n += count
        log.append_as_leader(batch(*ids), epoch, now_ms=0)
    return log


def test_a_new_log_is_empty_with_all_cursors_at_zero() -> None:
    log = PartitionLog(ORDERS_0)

    assert cursors(log) == (0, 0, 0)
    assert log.last_stable_offset == 0
    assert log.latest_epoch == UNDEFINED_EPOCH
    assert log.epoch_cache == []


def test_append_as_leader_assigns_dense_offsets_per_record() -> None:
    log = PartitionLog(ORDERS_0)

    first = log.append_as_leader(batch("a", "b", "c"), 0, now_ms=12)
    second = log.append_as_leader(batch("d"), 0, now_ms=13)
    third = log.append_as_leader(batch("e", "f"), 0, now_ms=14)

    assert (first.base_offset, first.last_offset, first.next_offset) == (0, 2, 3)
    assert (second.base_offset, second.last_offset) == (3, 3)
    assert (third.base_offset, third.last_offset) == (4, 5)
    assert first.append_time_ms == 12
    assert log.log_end_offset == 6
    assert message_ids(log) == [(0, "a"), (1, "b"), (2, "c"), (3, "d"), (4, "e"), (5, "f")]


def test_append_records_the_first_offset_of_each_new_leader_epoch() -> None:
    log = leader_log((0, 2), (0, 1), (3, 2), (5, 1))

    assert log.epoch_cache == [EpochEntry(0, 0), EpochEntry(3, 3), EpochEntry(5, 5)]
    assert log.latest_epoch == 5


def test_append_does_not_move_the_high_watermark() -> None:
    log = leader_log((0, 3))

    assert cursors(log) == (0, 0, 3)


def test_update_high_watermark_is_clamped_to_the_log_end_offset() -> None:
    log = leader_log((0, 3))

    assert log.update_high_watermark(2) is True
    assert log.high_watermark == 2
    assert log.update_high_watermark(2) is False
    assert log.update_high_watermark(99) is True
    assert log.high_watermark == 3
    assert log.last_stable_offset == 3


def test_append_as_follower_skips_batches_already_held() -> None:
    log = PartitionLog(ORDERS_0)
    b0 = log_batch(0, 0, "a", "b")
    b2 = log_batch(2, 0, "c")

    assert log.append_as_follower((b0,)) == [b0]
    assert log.append_as_follower((b0, b2)) == [b2]
    assert log.log_end_offset == 3
    assert log.epoch_cache == [EpochEntry(0, 0)]


def test_append_as_follower_refuses_a_gap() -> None:
    log = PartitionLog(ORDERS_0)

    with pytest.raises(AssertionError, match="gap in replication, LEO 0 but batch starts at 1"):
        log.append_as_follower((log_batch(1, 0, "x"),))


def test_assign_epoch_start_records_the_leo_for_a_newer_epoch_only() -> None:
    log = leader_log((0, 4))

    log.assign_epoch_start(2)
    log.assign_epoch_start(1)
    log.assign_epoch_start(2)

    assert log.epoch_cache == [EpochEntry(0, 0), EpochEntry(2, 4)]


def test_truncate_to_removes_later_batches_and_returns_them() -> None:
    log = leader_log((0, 2), (0, 1), (1, 2))
    log.update_high_watermark(5)
    tail = log.batches[1:]

    removed = log.truncate_to(2)

    assert removed == tail
    assert cursors(log) == (0, 2, 2)
    assert message_ids(log) == [(0, "m0"), (1, "m1")]
    assert log.epoch_cache == [EpochEntry(0, 0)]


def test_truncate_to_inside_a_batch_keeps_the_records_below_the_offset() -> None:
    log = leader_log((0, 3))
    original = log.batches[0]

    removed = log.truncate_to(1)

    assert removed == [original]
    assert message_ids(log) == [(0, "m0")]
    assert log.log_end_offset == 1


def test_truncate_to_at_or_beyond_the_log_end_removes_nothing() -> None:
    log = leader_log((0, 3))

    assert log.truncate_to(3) == []
    assert log.truncate_to(10) == []
    assert log.log_end_offset == 3


def test_truncate_to_forgets_an_epoch_with_no_data_at_the_log_end() -> None:
    # A leader records its epoch when elected; if it wrote nothing before losing
    # leadership, truncating to its LEO must still forget that epoch.
    log = leader_log((0, 3))
    log.assign_epoch_start(4)

    removed = log.truncate_to(3)

    assert removed == []
    assert log.epoch_cache == [EpochEntry(0, 0)]
    assert log.latest_epoch == 0


def test_truncate_to_rebuilds_producer_state_from_the_kept_batches() -> None:
    log = PartitionLog(ORDERS_0)
    log.append_as_leader(idem(7, 0, 0), 0, now_ms=0)
    log.append_as_leader(idem(7, 0, 1), 0, now_ms=0)
    log.append_as_leader(idem(7, 0, 2), 0, now_ms=0)

    log.truncate_to(1)

    assert log.producer_state.snapshot() == {
        7: {"epoch": 0, "last_sequence": 0, "batches": [[0, 0, 0, 0]]}
    }
    # The sequence that was truncated away is the next one expected again.
    assert log.producer_state.check(idem(7, 0, 1)).accepted


def test_end_offset_for_the_latest_epoch_is_the_log_end_offset() -> None:
    log = leader_log((0, 2), (2, 3))

    assert log.end_offset_for_epoch(2) == (2, 5)


def test_end_offset_for_a_middle_epoch_is_the_start_of_the_next_one() -> None:
    log = leader_log((0, 2), (2, 3), (5, 1))

    assert log.end_offset_for_epoch(0) == (0, 2)
    assert log.end_offset_for_epoch(2) == (2, 5)


def test_end_offset_for_an_unknown_middle_epoch_answers_the_epoch_below_it() -> None:
    log = leader_log((0, 2), (2, 3), (5, 1))

    assert log.end_offset_for_epoch(1) == (0, 2)
    assert log.end_offset_for_epoch(4) == (2, 5)


def test_end_offset_for_an_epoch_older_than_the_first_is_the_first_start_offset() -> None:
    log = PartitionLog(ORDERS_0)
    log.append_as_follower((log_batch(0, 3, "a"), log_batch(1, 4, "b")))

    assert log.end_offset_for_epoch(1) == (1, 0)


def test_end_offset_for_an_undefined_or_newer_epoch_or_empty_cache_is_undefined() -> None:
    log = leader_log((0, 2), (2, 3))

    assert log.end_offset_for_epoch(UNDEFINED_EPOCH) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    assert log.end_offset_for_epoch(3) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)
    assert PartitionLog(ORDERS_0).end_offset_for_epoch(0) == (UNDEFINED_EPOCH, UNDEFINED_OFFSET)


def test_end_offset_for_a_leaders_latest_epoch_without_data_is_its_log_end() -> None:
    log = leader_log((0, 3))
    log.assign_epoch_start(1)

    assert log.end_offset_for_epoch(0) == (0, 3)
    assert log.end_offset_for_epoch(1) == (1, 3)


def test_read_returns_whole_batches_from_the_one_holding_the_fetch_offset() -> None:
    log = leader_log((0, 2), (0, 2), (0, 2))

    got = log.read(3, max_bytes=1 << 20, upper_bound=6)

    assert [(b.base_offset, b.last_offset) for b in got] == [(2, 3), (4, 5)]


def test_read_stops_before_a_batch_that_crosses_the_upper_bound() -> None:
    log = leader_log((0, 2), (0, 2), (0, 2))

    got = log.read(0, max_bytes=1 << 20, upper_bound=5)

    assert [b.base_offset for b in got] == [0, 2]


def test_read_at_or_past_the_bound_or_log_end_returns_nothing() -> None:
    log = leader_log((0, 2))

    assert log.read(2, 1 << 20, upper_bound=2) == ()
    assert log.read(1, 1 << 20, upper_bound=1) == ()
    assert log.read(5, 1 << 20, upper_bound=10) == ()


def test_read_returns_at_least_one_batch_even_above_max_bytes() -> None:
    log = leader_log((0, 2), (0, 2))

    got = log.read(0, max_bytes=1, upper_bound=4)

    assert [b.base_offset for b in got] == [0]


def test_read_stops_when_the_next_batch_would_exceed_max_bytes() -> None:
    log = leader_log((0, 1), (0, 1), (0, 1))
    one_batch = log.batches[0].batch.bytes  # records plus the batch header

    got = log.read(0, max_bytes=2 * one_batch, upper_bound=3)

    assert [b.base_offset for b in got] == [0, 1]


def test_records_below_lists_offsets_below_the_bound() -> None:
    log = leader_log((0, 3), (0, 2))

    got = [(offset, lb.base_offset, i) for offset, lb, i in log.records_below(4)]

    assert got == [(0, 0, 0), (1, 0, 1), (2, 0, 2), (3, 3, 0)]


def test_snapshot_reports_cursors_and_epoch_cache() -> None:
    log = leader_log((0, 2), (1, 1))
    log.update_high_watermark(2)

    assert log.snapshot() == {
        "log_start_offset": 0,
        "high_watermark": 2,
        "last_stable_offset": 2,
        "first_unstable_offset": None,
        "open_transactions": {},
        "aborted_transactions": [],
        "log_end_offset": 3,
        "leader_epoch": 1,
        "epoch_cache": [[0, 0], [1, 2]],
    }


def test_topic_partition_parses_and_prints_topic_dash_number() -> None:
    tp = TopicPartition.parse("my-topic-12")

    assert tp == TopicPartition("my-topic", 12)
    assert str(tp) == "my-topic-12"
    for bad in ("orders", "orders-", "-3", "orders-x"):
        with pytest.raises(ValueError, match="not a partition name"):
            TopicPartition.parse(bad)

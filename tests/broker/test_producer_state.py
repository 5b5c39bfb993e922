from broker.errors import ErrorCode
from broker.producer_state import (
    NUM_BATCHES_TO_RETAIN,
    BatchMetadata,
    ProducerStateManager,
)
from broker.records import LogBatch, RecordBatch
from tests.broker.conftest import batch, idem


class Appender:
    """A producer state manager fed as the leader would: check, then record."""

    def __init__(self) -> None:
        self.state = ProducerStateManager()
        self.next_offset = 0

    def append(self, record_batch: RecordBatch) -> LogBatch:
        assert self.state.check(record_batch).accepted
        log_batch = LogBatch(self.next_offset, 0, record_batch)
        self.next_offset = log_batch.next_offset
        self.state.record(log_batch)
        return log_batch


def test_error_codes_carry_kafkas_numbers_and_names() -> None:
    assert ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER.code == 45
    assert ErrorCode.INVALID_PRODUCER_EPOCH.code == 47
    assert ErrorCode.NOT_ENOUGH_REPLICAS.code == 19
    assert ErrorCode.NOT_ENOUGH_REPLICAS_AFTER_APPEND.code == 20
    assert str(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER) == "OUT_OF_ORDER_SEQUENCE_NUMBER(45)"


def test_retriable_error_codes_are_kafkas() -> None:
    retriable = {e.code for e in ErrorCode if e.retriable}

    assert {6, 7, 13, 15, 16, 19, 20, 51, 88} <= retriable
    for fatal in (0, 1, 45, 47, 48, 90):
        assert ErrorCode(fatal).retriable is False


def test_a_batch_without_producer_id_is_always_accepted() -> None:
    state = ProducerStateManager()

    assert state.check(batch("a")).accepted


def test_no_state_for_a_producer_id_accepts_any_sequence() -> None:
    state = ProducerStateManager()

    check = state.check(idem(3, 0, 42))

    assert check.accepted
    assert check.error is ErrorCode.NONE
    assert check.duplicate_of is None


def test_same_epoch_next_sequence_is_accepted() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0, count=3))

    assert appender.state.check(idem(1, 0, 3)).accepted


def test_same_epoch_sequence_gap_is_out_of_order() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0, count=3))

    check = appender.state.check(idem(1, 0, 4))

    assert check.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert check.error.code == 45
    assert check.detail == "producer 1 expected sequence 3, got 4"


def test_a_cached_batch_resent_is_a_duplicate_with_its_original_offsets() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0, count=2))
    appender.append(idem(1, 0, 2, count=3))
    appender.append(idem(1, 0, 5))

    check = appender.state.check(idem(1, 0, 2, count=3))

    assert check.error is ErrorCode.NONE
    assert check.duplicate_of == BatchMetadata(
        first_seq=2, last_seq=4, first_offset=2, last_offset=4
    )
    assert not check.accepted


def test_a_resent_batch_with_different_bounds_is_not_a_duplicate() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0, count=2))
    appender.append(idem(1, 0, 2, count=3))

    check = appender.state.check(idem(1, 0, 2, count=2))

    assert check.duplicate_of is None
    assert check.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_a_lower_epoch_is_an_invalid_producer_epoch() -> None:
    appender = Appender()
    appender.append(idem(1, 2, 0))

    check = appender.state.check(idem(1, 1, 1))

    assert check.error is ErrorCode.INVALID_PRODUCER_EPOCH
    assert check.error.code == 47
    assert check.detail == "producer 1 epoch 1 < current 2"


def test_a_lower_epoch_resending_a_cached_sequence_is_still_invalid_epoch() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0))
    appender.append(idem(1, 1, 0))

    assert appender.state.check(idem(1, 0, 0)).error is ErrorCode.INVALID_PRODUCER_EPOCH


def test_a_higher_epoch_must_start_at_sequence_zero() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0, count=4))

    bad = appender.state.check(idem(1, 1, 4))
    good = appender.state.check(idem(1, 1, 0))

    assert bad.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert bad.detail == "new epoch 1 must start at sequence 0, got 4"
    assert good.accepted


def test_recording_a_higher_epoch_forgets_the_old_epochs_batches() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0))
    appender.append(idem(1, 0, 1))
    appender.append(idem(1, 1, 0))

    assert appender.state.snapshot() == {
        1: {"epoch": 1, "last_sequence": 0, "batches": [[0, 0, 2, 2]]}
    }


def test_only_the_last_five_batches_are_kept_per_producer() -> None:
    appender = Appender()
    for seq in range(7):
        appender.append(idem(1, 0, seq))

    kept = appender.state.snapshot()[1]["batches"]

    assert NUM_BATCHES_TO_RETAIN == 5
    assert kept == [[s, s, s, s] for s in range(2, 7)]


def test_a_retry_inside_the_five_batch_window_is_a_duplicate() -> None:
    appender = Appender()
    for seq in range(7):
        appender.append(idem(1, 0, seq))

    check = appender.state.check(idem(1, 0, 2))

    assert check.duplicate_of == BatchMetadata(2, 2, 2, 2)


def test_a_retry_older_than_the_five_batch_window_is_out_of_order() -> None:
    appender = Appender()
    for seq in range(7):
        appender.append(idem(1, 0, seq))

    check = appender.state.check(idem(1, 0, 1))

    assert check.duplicate_of is None
    assert check.error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert check.detail == "producer 1 expected sequence 7, got 1"


def test_check_never_changes_state() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0))
    before = appender.state.snapshot()

    for probe in (idem(1, 0, 1), idem(1, 0, 0), idem(1, 1, 0), idem(1, 1, 3), idem(2, 0, 9)):
        appender.state.check(probe)

    assert appender.state.snapshot() == before


def test_producer_ids_are_tracked_separately() -> None:
    appender = Appender()
    appender.append(idem(1, 0, 0))
    appender.append(idem(2, 0, 10))

    assert appender.state.check(idem(1, 0, 1)).accepted
    assert appender.state.check(idem(2, 0, 11)).accepted
    assert appender.state.check(idem(2, 0, 1)).error is ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER


def test_non_idempotent_batches_leave_no_state() -> None:
    state = ProducerStateManager()
    state.record(LogBatch(0, 0, batch("a")))

    assert state.snapshot() == {}


def test_a_marker_carries_its_epoch_into_the_producer_state() -> None:
    state = ProducerStateManager()
    state.record(LogBatch(0, 0, idem(5, 0, 0, count=2)))
    control = RecordBatch(batch("m").records, 5, 1, -1, is_transactional=True, is_control=True)
    state.record(LogBatch(2, 0, control))

    assert state.snapshot() == {5: {"epoch": 1, "last_sequence": -1, "batches": []}}
    assert state.check(idem(5, 0, 2)).error is ErrorCode.INVALID_PRODUCER_EPOCH
    assert state.check(idem(5, 1, 0)).accepted


def test_rebuild_recomputes_state_from_batches() -> None:
    state = ProducerStateManager()
    state.record(LogBatch(0, 0, idem(4, 0, 0, count=2)))
    kept = [LogBatch(0, 0, idem(9, 1, 0)), LogBatch(1, 0, idem(9, 1, 1, count=2))]

    state.rebuild(kept)

    assert state.snapshot() == {
        9: {"epoch": 1, "last_sequence": 2, "batches": [[0, 0, 0, 0], [1, 2, 1, 2]]}
    }

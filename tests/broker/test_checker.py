from __future__ import annotations

import pytest

from broker.checker import Expectation, Ledger, Verdict, judge, parse_expectation
from broker.errors import ErrorCode
from broker.records import LogBatch, Record
from tests.broker.conftest import ORDERS_0, batch

P0 = "orders-0"


def sent(ledger: Ledger, *ids: str, producer: str = "p1") -> list[Record]:
    out = []
    for message_id in ids:
        index = int(message_id.rsplit("-", 1)[1])
        record = Record(message_id, None, "v")
        ledger.sent(record, producer, index, "orders")
        ledger.attempted([record])
        out.append(record)
    return out


def acked(ledger: Ledger, record: Record, offset: int) -> None:
    ledger.told(record, ORDERS_0, offset, ErrorCode.NONE)


def summary(verdict: Verdict) -> list[tuple[str, str, str | None, tuple[int, ...], bool]]:
    return [(a.kind, a.message_id, a.partition, a.offsets, a.allowed) for a in verdict.anomalies]


def test_a_clean_run_has_no_anomalies_and_counts_what_happened() -> None:
    ledger = Ledger()
    r0, r1 = sent(ledger, "p1-0", "p1-1")
    acked(ledger, r0, 0)
    acked(ledger, r1, 1)

    verdict = judge(ledger, {P0: [(0, "p1-0"), (1, "p1-1")]}, "exactly-once", {})

    assert verdict.anomalies == ()
    assert {k: verdict.outcome[k] for k in ("produced", "acknowledged", "failed", "in_log")} == {
        "produced": 2,
        "acknowledged": 2,
        "failed": 0,
        "in_log": 2,
    }
    assert verdict.verdict == "as-expected"


def test_an_acknowledged_message_missing_from_the_log_is_lost_with_its_ack_offsets() -> None:
    ledger = Ledger()
    r0, r1 = sent(ledger, "p1-0", "p1-1")
    acked(ledger, r0, 0)
    acked(ledger, r1, 1)

    verdict = judge(ledger, {P0: [(0, "p1-0")]}, "exactly-once", {})

    assert summary(verdict) == [("lost", "p1-1", P0, (1,), False)]
    assert verdict.anomalies[0].explanation == (
        "acknowledged (orders-0@1) but not in the committed log"
    )
    assert verdict.outcome["lost"] == 1


def test_a_message_never_answered_and_not_in_the_log_is_lost() -> None:
    ledger = Ledger()
    sent(ledger, "p1-0")

    verdict = judge(ledger, {P0: []}, "at-least-once", {})

    assert summary(verdict) == [("lost", "p1-0", None, (), False)]
    assert verdict.anomalies[0].explanation == (
        "never acknowledged nor reported as failed, and not in the committed log"
    )


def test_a_message_reported_failed_and_absent_is_not_lost() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    ledger.told(r0, ORDERS_0, -1, ErrorCode.NOT_ENOUGH_REPLICAS)

    verdict = judge(ledger, {P0: []}, "exactly-once", {})

    assert verdict.anomalies == ()
    assert verdict.outcome["failed"] == 1
    assert ledger.messages["p1-0"].errors == ("NOT_ENOUGH_REPLICAS",)


def test_an_acks_0_message_lost_names_no_offset() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    acked(ledger, r0, -1)

    verdict = judge(ledger, {P0: []}, "at-most-once", {})

    assert summary(verdict) == [("lost", "p1-0", P0, (), True)]
    assert verdict.anomalies[0].explanation == (
        "sent with acks=0 to orders-0 (no broker answers) but not in the committed log"
    )


def test_a_lost_message_names_the_truncation_that_removed_it() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    acked(ledger, r0, 3)
    removed = [LogBatch(2, 0, batch("x", "p1-0"))]

    ledger.truncated(1, ORDERS_0, 3, removed)
    verdict = judge(ledger, {P0: []}, "at-least-once", {})

    assert [(t.broker, t.offset, t.removed) for t in ledger.truncations] == [(1, 3, ((3, "p1-0"),))]
    assert verdict.anomalies[0].explanation == (
        "acknowledged (orders-0@3) but not in the committed log; "
        "broker-1 truncated it away from orders-0@3 at 0 ms"
    )


def test_a_message_that_never_reached_a_broker_says_so() -> None:
    ledger = Ledger()
    ledger.sent(Record("p1-0", None, "v"), "p1", 0, "orders")

    verdict = judge(ledger, {P0: []}, "at-least-once", {})

    assert verdict.anomalies[0].explanation.endswith("; it was never sent to a broker")


def test_two_committed_copies_are_one_duplicate_with_both_offsets() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    ledger.sent(r0, "p1", -1, "orders")
    ledger.attempted([r0])
    acked(ledger, r0, 2)

    verdict = judge(ledger, {P0: [(0, "p1-0"), (2, "p1-0")]}, "exactly-once", {})

    assert summary(verdict) == [("duplicate", "p1-0", P0, (0, 2), False)]
    assert verdict.anomalies[0].explanation == (
        "2 committed copies at orders-0@0, orders-0@2; sent 2 time(s) in 2 Produce request(s)"
    )
    assert verdict.outcome["duplicated"] == 1
    assert verdict.outcome["in_log"] == 1


def test_a_message_sent_earlier_at_a_later_offset_is_reordered() -> None:
    ledger = Ledger()
    for record, offset in zip(sent(ledger, "p1-0", "p1-1", "p1-2"), (2, 0, 1), strict=True):
        acked(ledger, record, offset)

    verdict = judge(ledger, {P0: [(0, "p1-1"), (1, "p1-2"), (2, "p1-0")]}, "at-least-once", {})

    assert summary(verdict) == [("reordered", "p1-0", P0, (2, 1), True)]
    assert verdict.anomalies[0].explanation == (
        "p1-0 was sent before p1-2 but sits at offset 2, after p1-2 at offset 1"
    )


def test_order_is_judged_per_producer() -> None:
    ledger = Ledger()
    sent(ledger, "p1-0", "p1-1")
    sent(ledger, "p2-0", "p2-1", producer="p2")

    log = [(0, "p2-0"), (1, "p1-0"), (2, "p2-1"), (3, "p1-1")]
    verdict = judge(ledger, {P0: log}, "exactly-once", {})

    assert verdict.anomalies == ()


def test_order_is_judged_per_partition() -> None:
    ledger = Ledger()
    sent(ledger, "p1-0", "p1-1")

    verdict = judge(ledger, {"orders-1": [(0, "p1-1")], P0: [(5, "p1-0")]}, "exactly-once", {})

    assert verdict.anomalies == ()


@pytest.mark.parametrize(
    ("semantics", "ordered", "allowed"),
    [
        ("at-most-once", False, {"lost": True, "duplicate": False, "reordered": True}),
        ("at-least-once", False, {"lost": False, "duplicate": True, "reordered": True}),
        ("exactly-once", False, {"lost": False, "duplicate": False, "reordered": False}),
        ("at-most-once", True, {"lost": True, "duplicate": False, "reordered": False}),
        ("at-least-once", True, {"lost": False, "duplicate": True, "reordered": False}),
    ],
)
def test_each_semantics_allows_its_anomalies(
    semantics: str, ordered: bool, allowed: dict[str, bool]
) -> None:
    ledger = Ledger()
    records = sent(ledger, "p1-0", "p1-1", "p1-2", "p1-3")
    for record in records:
        acked(ledger, record, 0)
    # p1-0 lost; p1-1 twice; p1-3 committed before p1-2 (reordered).
    log = [(0, "p1-1"), (1, "p1-3"), (2, "p1-2"), (3, "p1-1")]

    verdict = judge(ledger, {P0: log}, semantics, {}, ordered=ordered)

    assert {a.kind: a.allowed for a in verdict.anomalies} == allowed
    assert {a.kind for a in verdict.failures} == {k for k, ok in allowed.items() if not ok}


@pytest.mark.parametrize(
    ("raw", "expectation"),
    [
        (0, Expectation("==", 0)),
        (3, Expectation("==", 3)),
        ("0", Expectation("==", 0)),
        ("== 0", Expectation("==", 0)),
        (">= 1", Expectation(">=", 1)),
        ("<=2", Expectation("<=", 2)),
        ("  > 4 ", Expectation(">", 4)),
        ("< 10", Expectation("<", 10)),
    ],
)
def test_parse_expectation_forms(raw: object, expectation: Expectation) -> None:
    assert parse_expectation(raw) == expectation


@pytest.mark.parametrize("raw", [True, False, -1, "-1", ">= x", "= 1", "=> 1", "", 1.5, None])
def test_parse_expectation_rejects_bad_values(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_expectation(raw)


def test_expectation_holds_and_prints_as_written() -> None:
    at_least = Expectation(">=", 1)

    assert at_least.holds(1) and at_least.holds(5) and not at_least.holds(0)
    assert Expectation("<", 2).holds(1) and not Expectation("<", 2).holds(2)
    assert str(at_least) == ">= 1"


def test_a_verdict_is_as_expected_when_every_expectation_holds() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    acked(ledger, r0, 0)
    expected = {"lost": parse_expectation(0), "duplicated": parse_expectation(">= 1")}

    verdict = judge(ledger, {P0: [(0, "p1-0"), (1, "p1-0")]}, "at-least-once", expected)

    assert verdict.verdict == "as-expected"
    assert verdict.mismatches == ()


def test_a_verdict_is_unexpected_and_lists_each_mismatch() -> None:
    ledger = Ledger()
    r0, r1 = sent(ledger, "p1-0", "p1-1")
    acked(ledger, r0, 0)
    acked(ledger, r1, 1)
    expected = {"lost": parse_expectation(0), "duplicated": parse_expectation(">= 1")}

    verdict = judge(ledger, {P0: [(0, "p1-0")]}, "at-least-once", expected)

    assert verdict.verdict == "unexpected"
    assert verdict.mismatches == ("lost: expected == 0, got 1", "duplicated: expected >= 1, got 0")
    as_dict = verdict.to_dict()
    assert as_dict["expected"] == {"lost": "== 0", "duplicated": ">= 1"}
    assert as_dict["anomalies"][0]["kind"] == "lost"


def test_the_ledger_keeps_acked_status_after_a_later_failure_report() -> None:
    ledger = Ledger()
    (r0,) = sent(ledger, "p1-0")
    acked(ledger, r0, 4)

    ledger.told(r0, ORDERS_0, -1, ErrorCode.REQUEST_TIMED_OUT)

    entry = ledger.messages["p1-0"]
    assert (entry.status, entry.acks, entry.errors) == (
        "acked",
        (("orders-0", 4),),
        ("REQUEST_TIMED_OUT",),
    )


def test_fresh_ids_skip_the_look_up_and_an_id_that_was_not_fresh_keeps_its_first_row() -> None:
    """``fresh=True`` (the wire gateway's new ids) adds without looking each id up first; if
    one was known after all, the ledger still holds each message once, at its first row."""
    ledger = Ledger()
    first = [Record(f"c-{n}", None, f"v{n}") for n in range(3)]
    ledger.sent_many(first, "c", 0, "orders", fresh=True)
    acked(ledger, first[1], 7)
    assert list(ledger.messages) == ["c-0", "c-1", "c-2"]

    # c-1 again, among new ones: handed over once more, its row (and its ack) kept.
    again = [Record("c-3", None, "v3"), Record("c-1", None, "v1"), Record("c-4", None, "v4")]
    ledger.sent_many(again, "c", -1, "orders", fresh=True)
    assert list(ledger.messages) == ["c-0", "c-1", "c-2", "c-3", "c-4"]
    assert ledger.messages["c-1"].sends == 2
    assert ledger.messages["c-1"].acks == (("orders-0", 7),)
    assert [ledger.messages[f"c-{n}"].index for n in (0, 2, 3, 4)] == [0, 2, -1, -1]

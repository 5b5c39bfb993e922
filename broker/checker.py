"""The ledger and the verdict: an oracle independent of the mechanisms.

Every message carries a unique id.  The ledger notes what the application
did and was told (sent, attempts, acknowledged with offsets, failed) and what
the replicas did (appends, truncations).  The verdict is computed from the
ledger and a final read of each partition as a read_committed reader sees it
(below the leader's last stable offset, without transaction markers or the
data of aborted transactions), nothing else: the checker never asks the
producer or broker code whether it behaved.

Anomalies use the Jepsen vocabulary: ``lost`` (the application was told the
message was sent, or never told it failed, yet it is not in the committed
log), ``duplicate`` (more than one committed copy), ``reordered`` (a
producer's messages to one partition are not in the order it sent them).
Each is judged against the scenario's declared semantics.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import count, islice, repeat
from operator import add, itemgetter, le
from typing import Any, NamedTuple

from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import LogBatch, Record

SEMANTICS = ("at-most-once", "at-least-once", "exactly-once")
OUTCOME_KEYS = (
    "produced",
    "acknowledged",
    "failed",
    "in_log",
    "lost",
    "duplicated",
    "reordered",
    "processed",
    "sunk",
    "unseen",
    "reprocessed",
    "duplicated_in_sink",
    "duplicated_in_log",
    "poll_skips",
    "nonmonotonic_polls",
    "aborted",
    "aborted_reads",
)

# Which anomalies each delivery guarantee tolerates.
_ALLOWED: dict[str, frozenset[str]] = {
    "at-most-once": frozenset({"lost", "unseen", "reordered"}),
    "at-least-once": frozenset({"duplicate", "reordered"}),
    "exactly-once": frozenset(),
}


_message_id = itemgetter(0)  # of a Record
_message_of = itemgetter(1)  # of an (offset, message id) pair


@dataclass(frozen=True, slots=True)
class MessageEntry:
    """One message as the ledger knows it at the moment it is read: a snapshot made
    from the ledger's columns (``MessageTable``), which is where the state lives."""

    message_id: str
    producer: str
    index: int
    topic: str
    key: str | None
    sent_ms: int
    sends: int = 1  # times the application handed it to a producer client
    attempts: int = 0  # Produce requests that carried it
    # pending | in-transaction (written, not committed) | acked | failed | aborted
    # | unanswered (an external client's connection closed before the answer)
    status: str = "pending"
    acks: tuple[tuple[str, int], ...] = ()
    errors: tuple[str, ...] = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> MessageEntry:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


# A status that an acknowledgement fixed stays; any other is replaced: ``get(status,
# new)`` over a column, in bulk.
_ACKED_STAYS = {"acked": "acked"}
_PENDING_UNANSWERED = {"pending": "unanswered"}


class _Acked:
    """The acknowledgement of a batch of consecutive rows, shared by them (one object a
    batch, not a tuple a message): row ``r`` was acknowledged at
    ``(partition, base + r - first_row)``, or ``(partition, -1)`` when ``base`` is -1
    (acks=0).  A row that hears anything more gets its own tuple."""

    __slots__ = ("base", "first_row", "partition")

    def __init__(self, partition: str, base: int, first_row: int) -> None:
        self.partition = partition
        self.base = base
        self.first_row = first_row

    def at(self, row: int) -> tuple[tuple[str, int], ...]:
        base = self.base
        return ((self.partition, base + row - self.first_row if base >= 0 else -1),)

    def __deepcopy__(self, memo: dict[int, Any]) -> _Acked:
        # Never changed once made: a time-travel checkpoint shares it.
        return self


_Acks = tuple[tuple[str, int], ...] | _Acked


class MessageTable(Mapping[str, MessageEntry]):
    """The messages the application sent, one row each, kept as columns (a list per
    field) rather than one object per message.  A send appends to every column with
    ``extend``; an attempt or an answer for a batch of consecutive rows (the usual case:
    a producer batch holds records the application sent together) updates the batch's
    slice of a column at once, any other batch row by row with ``map``.  So no Python
    code runs per message on the produce path, and the verdict counts and compares whole
    columns.  Read as a mapping (message id -> ``MessageEntry``), in the order the
    messages were first sent; each entry is built when it is read, a snapshot of its
    row."""

    __slots__ = (
        "_acks",
        "_attempts",
        "_errors",
        "_index",
        "_producer",
        "_rec",
        "_row",
        "_sends",
        "_sent_ms",
        "_status",
        "_topic",
    )

    def __init__(self) -> None:
        self._row: dict[str, int] = {}  # message id -> its row
        self._rec: list[Record] = []  # the record as first sent: its id and key
        self._producer: list[str] = []
        self._index: list[int] = []  # the application's sequence number; -1 for resends
        self._topic: list[str] = []
        self._sent_ms: list[int] = []
        self._sends: list[int] = []
        self._attempts: list[int] = []
        self._status: list[str] = []
        self._acks: list[_Acks] = []
        self._errors: list[tuple[str, ...]] = []

    # -- the mapping -----------------------------------------------------------
    def _entry(self, row: int) -> MessageEntry:
        record = self._rec[row]
        acks = self._acks[row]
        return MessageEntry(
            record[0],
            self._producer[row],
            self._index[row],
            self._topic[row],
            record[1],
            self._sent_ms[row],
            self._sends[row],
            self._attempts[row],
            self._status[row],
            acks.at(row) if isinstance(acks, _Acked) else acks,
            self._errors[row],
        )

    def __getitem__(self, message_id: str) -> MessageEntry:
        return self._entry(self._row[message_id])

    def get(self, message_id: str, default: Any = None) -> Any:
        row = self._row.get(message_id)
        return default if row is None else self._entry(row)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._row

    def __iter__(self) -> Iterator[str]:
        return map(_message_id, self._rec)

    def __len__(self) -> int:
        return len(self._rec)

    def __repr__(self) -> str:
        return f"<MessageTable of {len(self._rec)} message(s)>"

    def __deepcopy__(self, memo: dict[int, Any]) -> MessageTable:
        # Every column holds values never changed in place (strings, ints, records,
        # tuples, shared acknowledgements), so copying the lists and the row index is a
        # deep copy, done in C.
        clone = object.__new__(MessageTable)
        for name in MessageTable.__slots__:
            setattr(clone, name, getattr(self, name).copy())
        return clone

    # -- what the verdict reads, in bulk -------------------------------------------
    def status_counts(self) -> Counter[str]:
        return Counter(self._status)

    def absent_from(self, present: AbstractSet[str]) -> set[str]:
        """The ids of messages not in ``present``."""
        sent = self._row.keys()
        # (the usual answer, none, without building a set of every id)
        return set() if sent <= present else sent - present

    def entries_of(self, message_ids: Iterable[str]) -> list[MessageEntry]:
        """These messages' entries, in the order they were first sent."""
        return list(map(self._entry, sorted(map(self._row.__getitem__, message_ids))))

    def sender(self, message_id: str) -> tuple[str, int] | None:
        """(producer, index) of a message, None for an unknown id."""
        row = self._row.get(message_id)
        return None if row is None else (self._producer[row], self._index[row])

    def one_producer_in_order(self, message_ids: Iterable[str]) -> bool:
        """Whether these messages are all known, from one producer, and were sent in
        this order (indexes non-decreasing): columns compared in bulk."""
        try:
            rows = list(map(self._row.__getitem__, message_ids))
        except KeyError:  # a message the ledger never saw sent
            return False
        if len(set(map(self._producer.__getitem__, rows))) > 1:
            return False
        indexes = list(map(self._index.__getitem__, rows))
        return all(map(le, indexes, islice(indexes, 1, None)))

    # -- what the ledger writes --------------------------------------------------
    def rows_of(self, records: Iterable[Record]) -> list[int]:
        """The rows of these records' messages (KeyError for one never sent)."""
        return list(map(self._row.__getitem__, map(_message_id, records)))

    def known_rows(self, message_ids: Iterable[str]) -> list[int]:
        """The rows of those of these messages that were sent (others are skipped)."""
        return [row for row in map(self._row.get, message_ids) if row is not None]

    def first_row(self, records: Sequence[Record]) -> int:
        """The row of the first record when the records are exactly those of
        consecutive rows, in order (each the object or an equal record); else -1."""
        if not records:
            return -1
        first = self._row[records[0][0]]
        held = self._rec[first : first + len(records)]
        same = held == records if records.__class__ is list else held == list(records)
        return first if same else -1

    def add(
        self,
        records: Sequence[Record],
        producer: str,
        first_index: int,
        topic: str,
        now: int,
        fresh: bool = False,
    ) -> None:
        """New messages (``first_index`` -1: each gets index -1, and an id already
        known is handed over once more; otherwise indexes count from ``first_index``
        and a known id starts afresh, keeping its place).  ``fresh``: the caller made
        these ids itself and never handed them over before, so they are not looked up
        first (in a ledger of a million messages each look-up misses the CPU's caches)."""
        row = self._row
        start = len(self._rec)
        n = len(records)
        if fresh or row.keys().isdisjoint(map(_message_id, records)):
            row.update(zip(map(_message_id, records), count(start)))
            if len(row) == start + n:  # all distinct: every column grows in bulk
                self._rec.extend(records)
                self._producer.extend(repeat(producer, n))
                self._index.extend(
                    range(first_index, first_index + n) if first_index >= 0 else repeat(-1, n)
                )
                self._topic.extend(repeat(topic, n))
                self._sent_ms.extend(repeat(now, n))
                self._sends.extend(repeat(1, n))
                self._attempts.extend(repeat(0, n))
                self._status.extend(repeat("pending", n))
                self._acks.extend(repeat((), n))
                self._errors.extend(repeat((), n))
                return
            if fresh:
                # Not fresh after all: the update may have moved a known id's row, so the
                # index is built again from the rows (which hold every message once).
                row.clear()
                row.update(zip(map(_message_id, self._rec), count()))
            else:  # an id repeats among these: undo, then one at a time
                for record in records:
                    row.pop(record[0], None)
        for position, record in enumerate(records):
            at = row.get(record[0])
            index = first_index + position if first_index >= 0 else -1
            if at is not None and first_index < 0:
                self._sends[at] += 1
                continue
            if at is None:
                row[record[0]] = len(self._rec)
                self._rec.append(record)
                self._producer.append(producer)
                self._index.append(index)
                self._topic.append(topic)
                self._sent_ms.append(now)
                self._sends.append(1)
                self._attempts.append(0)
                self._status.append("pending")
                self._acks.append(())
                self._errors.append(())
            else:
                self._rec[at] = record
                self._producer[at] = producer
                self._index[at] = index
                self._topic[at] = topic
                self._sent_ms[at] = now
                self._sends[at] = 1
                self._attempts[at] = 0
                self._status[at] = "pending"
                self._acks[at] = ()
                self._errors[at] = ()

    def attempted(self, records: Sequence[Record]) -> None:
        attempts = self._attempts
        first = self.first_row(records)
        if first >= 0:
            end = first + len(records)
            attempts[first:end] = map(add, attempts[first:end], repeat(1))
            return
        rows = self.rows_of(records)
        _run(map(attempts.__setitem__, rows, map(add, map(attempts.__getitem__, rows), repeat(1))))

    def set_status(self, rows: list[int], status: str, unless_acked: bool = False) -> None:
        statuses = self._status
        if unless_acked:
            values: Iterable[str] = map(
                _ACKED_STAYS.get, map(statuses.__getitem__, rows), repeat(status)
            )
        else:
            values = repeat(status)
        _run(map(statuses.__setitem__, rows, values))

    def unanswered(self, rows: list[int]) -> None:
        statuses = self._status
        current = list(map(statuses.__getitem__, rows))
        _run(map(statuses.__setitem__, rows, map(_PENDING_UNANSWERED.get, current, current)))

    def acknowledged(self, records: Sequence[Record], partition: str, base_offset: int) -> None:
        """Acknowledged at ``base_offset`` onwards (-1: no offset, acks=0)."""
        first = self.first_row(records)
        acks = self._acks
        if first >= 0:
            end = first + len(records)
            n = end - first
            self._status[first:end] = repeat("acked", n)
            if acks[first:end].count(()) == n:  # none acknowledged before: one shared ack
                acks[first:end] = repeat(_Acked(partition, base_offset, first), n)
                return
            rows: list[int] = list(range(first, end))
        else:
            rows = self.rows_of(records)
            self.set_status(rows, "acked")
        self.add_acks(rows, partition, count(base_offset) if base_offset >= 0 else repeat(-1))

    def add_acks(self, rows: list[int], partition: str, offsets: Iterable[int]) -> None:
        """Row k gets ``(partition, offsets[k])`` appended to its acks."""
        acks = self._acks
        # zip of one iterable makes 1-tuples: ((partition, offset),) per row
        new = zip(zip(repeat(partition), offsets))
        _run(map(acks.__setitem__, rows, map(add, map(self._acks_of, rows), new)))

    def _acks_of(self, row: int) -> tuple[tuple[str, int], ...]:
        acks = self._acks[row]
        return acks.at(row) if isinstance(acks, _Acked) else acks

    def add_error(self, rows: list[int], name: str) -> None:
        errors = self._errors
        more = repeat((name,))
        _run(map(errors.__setitem__, rows, map(add, map(errors.__getitem__, rows), more)))


def _run(calls: Iterator[object]) -> None:
    """Consume an iterator of calls (a zero-length deque: no Python loop)."""
    deque(calls, maxlen=0)


@dataclass(frozen=True, slots=True)
class Truncation:
    time_ms: int
    broker: int
    partition: str
    offset: int
    removed: tuple[tuple[int, str], ...]  # (offset, message id)

    def __deepcopy__(self, memo: dict[int, Any]) -> Truncation:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


def _zero() -> int:
    return 0


class Processing(NamedTuple):
    # A named tuple: one is made per processed record.
    group: str
    consumer: str
    partition: str
    offset: int
    time_ms: int

    def __deepcopy__(self, memo: dict[int, Any]) -> Processing:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


@dataclass(frozen=True, slots=True)
class Poll:
    group: str
    consumer: str  # the consumer instance (a restart is a new instance)
    assignment_epoch: int
    partition: str
    offsets: tuple[int, ...]
    time_ms: int

    def __deepcopy__(self, memo: dict[int, Any]) -> Poll:
        # Immutable all the way down: a time-travel checkpoint shares it.
        return self


class Ledger:
    def __init__(self) -> None:
        self.messages = MessageTable()
        self.appends: list[tuple[int, int, str, LogBatch]] = []
        self.truncations: list[Truncation] = []
        self.polls: list[Poll] = []
        self.reads: dict[tuple[str, str], int] = {}  # (group, message id) -> times polled
        self.processing: dict[str, list[Processing]] = {}
        self._now: Callable[[], int] = _zero

    def bind_clock(self, now: Callable[[], int]) -> None:
        self._now = now

    # -- what the application did and heard ----------------------------------
    def sent(self, record: Record, producer: str, index: int, topic: str) -> None:
        self.sent_many((record,), producer, index, topic)

    def sent_many(
        self,
        records: Iterable[Record],
        producer: str,
        first_index: int,
        topic: str,
        fresh: bool = False,
    ) -> None:
        """The application handed these records to its producer (``first_index``
        is the first one's sequence number in the application; -1 for resends).
        ``fresh``: ids the caller just made (see ``MessageTable.add``)."""
        if not isinstance(records, list | tuple):
            records = list(records)
        if records:
            self.messages.add(records, producer, first_index, topic, self._now(), fresh)

    def attempted(self, records: Iterable[Record]) -> None:
        if not isinstance(records, list | tuple):
            records = list(records)
        self.messages.attempted(records)

    def told(self, record: Record, tp: TopicPartition, offset: int, error: ErrorCode) -> None:
        self.told_many((record,), tp, offset, error)

    def aborted(self, message_ids: Sequence[str]) -> None:
        """The application learned that these messages' transaction aborted (a
        copy committed by another transaction stays acknowledged)."""
        messages = self.messages
        messages.set_status(messages.known_rows(message_ids), "aborted", unless_acked=True)

    def committed(self, message_ids: Sequence[str]) -> None:
        """The application's transaction with these messages committed."""
        self.messages.set_status(self.messages.known_rows(message_ids), "acked")

    def unanswered(self, message_ids: Sequence[str]) -> None:
        """An external client's connection closed before its request was answered:
        these messages, if still pending, were never answered (broker.wire.ledger)."""
        self.messages.unanswered(self.messages.known_rows(message_ids))

    def in_transaction(
        self, records: Sequence[Record], tp: TopicPartition, base_offset: int
    ) -> None:
        """Written inside a transaction: promised only once the transaction commits."""
        messages = self.messages
        rows = messages.rows_of(records)
        messages.set_status(rows, "in-transaction", unless_acked=True)
        messages.add_acks(rows, str(tp), count(base_offset))

    def told_many(
        self, records: Sequence[Record], tp: TopicPartition, base_offset: int, error: ErrorCode
    ) -> None:
        """The application heard how a batch went: acknowledged at ``base_offset``
        onwards (-1: no offset, as with acks=0), or failed with ``error``."""
        messages = self.messages
        if error is ErrorCode.NONE:
            messages.acknowledged(records, str(tp), base_offset)
            return
        rows = messages.rows_of(records)
        messages.set_status(rows, "failed", unless_acked=True)
        messages.add_error(rows, error.name)

    # -- what the consumers did -------------------------------------------------
    def polled(
        self,
        group: str,
        consumer: str,
        assignment_epoch: int,
        records: Iterable[tuple[TopicPartition, int, Record]],
    ) -> None:
        by_partition: dict[str, list[int]] = {}
        reads = self.reads
        for tp, offset, record in records:
            by_partition.setdefault(str(tp), []).append(offset)
            key = (group, record.message_id)
            reads[key] = reads.get(key, 0) + 1
        now = self._now()
        for partition, offsets in by_partition.items():
            self.polls.append(
                Poll(group, consumer, assignment_epoch, partition, tuple(offsets), now)
            )

    def processed(
        self, group: str, consumer: str, partition: str, offset: int, message_id: str
    ) -> None:
        """``partition`` is the partition's name, e.g. "orders-0"."""
        self.processing.setdefault(message_id, []).append(
            Processing(group, consumer, partition, offset, self._now())
        )

    def processed_many(
        self, group: str, consumer: str, done: Iterable[tuple[str, int, str]]
    ) -> None:
        """Several records processed at the same moment: (partition, offset, id)."""
        processing = self.processing
        now = self._now()
        for partition, offset, message_id in done:
            entry = Processing(group, consumer, partition, offset, now)
            found = processing.get(message_id)
            if found is None:
                processing[message_id] = [entry]
            else:
                found.append(entry)

    # -- what the replicas did ------------------------------------------------
    def appended(self, broker: int, tp: TopicPartition, log_batch: LogBatch) -> None:
        self.appends.append((self._now(), broker, str(tp), log_batch))

    def truncated(
        self, broker: int, tp: TopicPartition, offset: int, removed: list[LogBatch]
    ) -> None:
        gone = tuple(
            (lb.base_offset + i, record.message_id)
            for lb in removed
            for i, record in enumerate(lb.batch.records)
            if lb.base_offset + i >= offset
        )
        self.truncations.append(Truncation(self._now(), broker, str(tp), offset, gone))


@dataclass(frozen=True, slots=True)
class Anomaly:
    kind: str  # lost | duplicate | reordered
    message_id: str
    partition: str | None
    offsets: tuple[int, ...]
    allowed: bool
    explanation: str
    where: str = "log"  # log | processing | sink | poll

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message_id": self.message_id,
            "partition": self.partition,
            "offsets": list(self.offsets),
            "where": self.where,
            "allowed": self.allowed,
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class Expectation:
    op: str
    value: int

    def holds(self, actual: int) -> bool:
        return {
            "==": actual == self.value,
            ">=": actual >= self.value,
            "<=": actual <= self.value,
            ">": actual > self.value,
            "<": actual < self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.op} {self.value}"


_EXPECTATION = re.compile(r"^\s*(==|>=|<=|>|<)?\s*(\d+)\s*$")


def parse_expectation(value: object) -> Expectation:
    """``0`` or ``"0"`` means exactly 0; ``">= 1"`` at least one."""
    if isinstance(value, bool):
        raise ValueError('expected a count or a comparison such as ">= 1", got a boolean')
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a count cannot be negative: {value}")
        return Expectation("==", value)
    if isinstance(value, str):
        match = _EXPECTATION.match(value)
        if match:
            return Expectation(match.group(1) or "==", int(match.group(2)))
    raise ValueError(f'expected a count or a comparison such as ">= 1" or "== 0", got {value!r}')


@dataclass(frozen=True, slots=True)
class Verdict:
    semantics: str
    outcome: dict[str, int]
    anomalies: tuple[Anomaly, ...]
    expected: dict[str, Expectation]
    verdict: str  # as-expected | unexpected
    mismatches: tuple[str, ...]

    @property
    def failures(self) -> tuple[Anomaly, ...]:
        """Anomalies the declared semantics does not allow."""
        return tuple(a for a in self.anomalies if not a.allowed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "semantics": self.semantics,
            "outcome": dict(self.outcome),
            "anomalies": [a.to_dict() for a in self.anomalies],
            "expected": {k: str(v) for k, v in self.expected.items()},
            "verdict": self.verdict,
            "mismatches": list(self.mismatches),
        }


def judge(
    ledger: Ledger,
    committed: Mapping[str, list[tuple[int, str]]],
    semantics: str,
    expected: Mapping[str, Expectation],
    ordered: bool = False,
    groups: Mapping[str, tuple[str, ...]] | None = None,
    sink_counts: Mapping[str, int] | None = None,
    aborted_data: Mapping[str, set[int]] | None = None,
    pipelines: Mapping[str, tuple[tuple[str, ...], str]] | None = None,
) -> Verdict:
    """Compute anomalies from the ledger and the final committed logs.

    ``groups`` maps each consumer group to the topics it reads; ``sink_counts``
    is how many rows of the external database hold each message."""
    allowed = set(_ALLOWED[semantics])
    if ordered:
        allowed.discard("reordered")
    # Where each message's first copy is: needed for the groups and the pipelines, and
    # when a message has copies; otherwise the set of ids in the log is enough.
    in_log_ids = None if groups or pipelines else _ids_once(committed)
    if in_log_ids is None:
        first, extra = _copies(committed)
    else:
        first, extra = {}, {}
    anomalies: list[Anomaly] = []
    messages = ledger.messages
    # Counted in bulk (no Python code runs per message): what the application was
    # told, and which messages are not in the committed log.
    statuses = messages.status_counts()
    absent = messages.absent_from(first.keys() if in_log_ids is None else in_log_ids)
    in_log = len(messages) - len(absent)
    for entry in messages.entries_of(absent) if absent else ():
        if entry.status not in ("failed", "aborted", "in-transaction", "unanswered"):
            # (a transaction never confirmed committed promised nothing: its
            # absence is atomicity at work, not a loss; nor did a request an
            # external client never heard back about: broker.wire.ledger)
            anomalies.append(
                Anomaly(
                    "lost",
                    entry.message_id,
                    entry.acks[0][0] if entry.acks else None,
                    tuple(o for _p, o in entry.acks if o >= 0),
                    "lost" in allowed,
                    _explain_lost(ledger, entry),
                )
            )
    for message_id, found in extra.items():
        sender = messages.get(message_id)
        sends = (
            f"; sent {sender.sends} time(s) in {sender.attempts} Produce request(s)"
            if sender is not None
            else ""
        )
        anomalies.append(
            Anomaly(
                "duplicate",
                message_id,
                min(p for p, _o in found),
                tuple(o for _p, o in found),
                "duplicate" in allowed,
                f"{len(found)} committed copies at "
                + ", ".join(f"{p}@{o}" for p, o in found)
                + sends,
            )
        )
    anomalies.extend(_reordered(messages, committed, first, extra, "reordered" in allowed))
    anomalies.extend(_consumer_anomalies(ledger, first, groups or {}, allowed))
    if sink_counts is not None:
        for message_id, rows in sorted(sink_counts.items()):
            if rows > 1:
                anomalies.append(
                    Anomaly(
                        "duplicate",
                        message_id,
                        None,
                        (),
                        "duplicate" in allowed,
                        f"{rows} rows in the sink hold {message_id}",
                        "sink",
                    )
                )
    anomalies.extend(_poll_order(ledger, committed))
    anomalies.extend(_aborted_reads(ledger, aborted_data or {}, semantics != "exactly-once"))
    anomalies.extend(_pipeline_losses(first, pipelines or {}, "lost" in allowed))

    kinds = (
        "lost",
        "duplicate",
        "reordered",
        "unseen",
        "poll-skip",
        "nonmonotonic-poll",
        "aborted-read",
    )
    counts = {kind: 0 for kind in kinds}
    for anomaly in anomalies:
        counts[anomaly.kind] += 1
    processing = ledger.processing
    outcome = {
        "produced": len(messages),
        "acknowledged": statuses["acked"],
        "failed": statuses["failed"],
        "in_log": in_log,
        "lost": counts["lost"],
        "duplicated": counts["duplicate"],
        "reordered": counts["reordered"],
        "processed": sum(map(bool, processing.values())),
        "sunk": sum(1 for rows in (sink_counts or {}).values() if rows > 0),
        "unseen": counts["unseen"],
        "reprocessed": sum(
            1 for a in anomalies if a.kind == "duplicate" and a.where == "processing"
        ),
        "duplicated_in_sink": sum(
            1 for a in anomalies if a.kind == "duplicate" and a.where == "sink"
        ),
        # duplicated counts every duplicate anomaly; these three split it by where the extra
        # copy is (the log, a group's processing, the sink), each message in one of them.
        "duplicated_in_log": sum(
            1 for a in anomalies if a.kind == "duplicate" and a.where == "log"
        ),
        "poll_skips": counts["poll-skip"],
        "nonmonotonic_polls": counts["nonmonotonic-poll"],
        "aborted": statuses["aborted"],
        "aborted_reads": counts["aborted-read"],
    }
    mismatches = tuple(
        f"{key}: expected {exp}, got {outcome.get(key, 0)}"
        for key, exp in expected.items()
        if not exp.holds(outcome.get(key, 0))
    )
    return Verdict(
        semantics,
        outcome,
        tuple(anomalies),
        dict(expected),
        "unexpected" if mismatches else "as-expected",
        mismatches,
    )


def _ids_once(committed: Mapping[str, list[tuple[int, str]]]) -> set[str] | None:
    """The ids in the committed logs; None when a message has more than one copy."""
    ids: set[str] = set()
    for entries in committed.values():
        ids.update(map(_message_of, entries))
    return ids if len(ids) == sum(map(len, committed.values())) else None


def _copies(
    committed: Mapping[str, list[tuple[int, str]]],
) -> tuple[dict[str, tuple[str, int]], dict[str, list[tuple[str, int]]]]:
    """Where each message's first committed copy is (partition, offset), in log
    order (partitions by name), and all the copies of messages that have more
    than one."""
    partitions = sorted(committed)
    first: dict[str, tuple[str, int]] = {}
    for partition in partitions:  # the usual case, with no copies, built in bulk
        entries = committed[partition]
        where = zip(repeat(partition), map(itemgetter(0), entries))
        first.update(zip(map(itemgetter(1), entries), where, strict=True))
    extra: dict[str, list[tuple[str, int]]] = {}
    if len(first) == sum(map(len, committed.values())):
        return first, extra
    first.clear()  # a message has copies: the first one must win, one at a time
    for partition in partitions:
        for offset, message_id in committed[partition]:
            if message_id in first:
                extra.setdefault(message_id, [first[message_id]]).append((partition, offset))
            else:
                first[message_id] = (partition, offset)
    return first, extra


def _consumer_anomalies(
    ledger: Ledger,
    first: Mapping[str, tuple[str, int]],
    groups: Mapping[str, tuple[str, ...]],
    allowed: set[str],
) -> list[Anomaly]:
    """Per group: committed messages never processed, or processed twice."""
    out: list[Anomaly] = []
    for group, topics in sorted(groups.items()):
        for message_id, (partition, offset) in first.items():
            if partition.rpartition("-")[0] not in topics:
                continue
            done = [p for p in ledger.processing.get(message_id, ()) if p.group == group]
            if not done:
                reads = ledger.reads.get((group, message_id), 0)
                if reads:
                    out.append(
                        Anomaly(
                            "lost",
                            message_id,
                            partition,
                            (offset,),
                            "lost" in allowed,
                            f"in the log at {partition}@{offset}; group {group} polled it {reads} "
                            "time(s) but never processed it",
                            "processing",
                        )
                    )
                else:
                    out.append(
                        Anomaly(
                            "unseen",
                            message_id,
                            partition,
                            (offset,),
                            "unseen" in allowed,
                            f"in the log at {partition}@{offset}; no poll of group {group} ever "
                            "returned it",
                            "processing",
                        )
                    )
            elif len(done) > 1:
                out.append(
                    Anomaly(
                        "duplicate",
                        message_id,
                        partition,
                        tuple(p.offset for p in done),
                        "duplicate" in allowed,
                        f"group {group} processed it {len(done)} times: "
                        + ", ".join(
                            f"{p.consumer} at {p.time_ms} ms ({p.partition}@{p.offset})"
                            for p in done
                        ),
                        "processing",
                    )
                )
    return out


def _poll_order(ledger: Ledger, committed: Mapping[str, list[tuple[int, str]]]) -> list[Anomaly]:
    """Within one consumer's continuous ownership of a partition, polls must go
    forward without jumping over records that exist."""
    if not ledger.polls:
        return []
    present_by_partition = {p: dict(entries) for p, entries in committed.items()}
    last: dict[tuple[str, int, str], int] = {}
    out: list[Anomaly] = []
    for poll in ledger.polls:
        key = (poll.consumer, poll.assignment_epoch, poll.partition)
        present = present_by_partition.get(poll.partition, {})
        for offset in poll.offsets:
            previous = last.get(key)
            if previous is not None and offset <= previous:
                out.append(
                    Anomaly(
                        "nonmonotonic-poll",
                        present.get(offset, "?"),
                        poll.partition,
                        (previous, offset),
                        False,
                        f"{poll.consumer} read {poll.partition}@{offset} after @{previous}",
                        "poll",
                    )
                )
            elif previous is not None:
                skipped = [o for o in range(previous + 1, offset) if o in present]
                if skipped:
                    out.append(
                        Anomaly(
                            "poll-skip",
                            present[skipped[0]],
                            poll.partition,
                            (previous, offset),
                            False,
                            f"{poll.consumer} jumped from {poll.partition}@{previous} to "
                            f"@{offset}, over {len(skipped)} record(s)",
                            "poll",
                        )
                    )
            last[key] = offset
    return out


def _pipeline_losses(
    first: Mapping[str, tuple[str, int]],
    pipelines: Mapping[str, tuple[tuple[str, ...], str]],
    allowed: bool,
) -> list[Anomaly]:
    """Every committed input of a processor must have its output committed
    (read_committed view); duplicates are already caught as log duplicates."""
    out = []
    for name, (inputs, output) in sorted(pipelines.items()):
        for message_id, (partition, offset) in first.items():
            if partition.rpartition("-")[0] not in inputs:
                continue
            produced = f"{message_id}>{output}"
            if produced not in first:
                out.append(
                    Anomaly(
                        "lost",
                        message_id,
                        partition,
                        (offset,),
                        allowed,
                        f"in the log at {partition}@{offset}; {name} never committed its output "
                        f"{produced} to {output}",
                        "pipeline",
                    )
                )
    return out


def _aborted_reads(
    ledger: Ledger, aborted_data: Mapping[str, set[int]], allowed: bool
) -> list[Anomaly]:
    """Records of aborted transactions that a consumer acted on (read_uncommitted)."""
    out = []
    for message_id, done in ledger.processing.items():
        for p in done:
            if p.offset in aborted_data.get(p.partition, ()):
                out.append(
                    Anomaly(
                        "aborted-read",
                        message_id,
                        p.partition,
                        (p.offset,),
                        allowed,
                        f"{p.consumer} of group {p.group} processed {p.partition}@{p.offset}, "
                        "data of a transaction that aborted",
                        "processing",
                    )
                )
    return out


def _explain_lost(ledger: Ledger, entry: MessageEntry) -> str:
    if entry.status == "acked" and all(o < 0 for _p, o in entry.acks):
        # acks=0: the send completed when it was written to the network; no broker answered.
        partitions = ", ".join(dict.fromkeys(p for p, _o in entry.acks))
        text = f"sent with acks=0 to {partitions} (no broker answers) but not in the committed log"
    elif entry.status == "acked":
        acks = ", ".join(
            f"{p}@{o}" if o >= 0 else f"{p} (no offset, acks=0)" for p, o in entry.acks
        )
        text = f"acknowledged ({acks}) but not in the committed log"
    else:
        text = "never acknowledged nor reported as failed, and not in the committed log"
    for truncation in ledger.truncations:
        for offset, message_id in truncation.removed:
            if message_id == entry.message_id:
                text += (
                    f"; broker-{truncation.broker} truncated it away from "
                    f"{truncation.partition}@{offset} at {truncation.time_ms} ms"
                )
    if entry.attempts == 0:
        text += "; it was never sent to a broker"
    return text


def _reordered(
    messages: MessageTable,
    committed: Mapping[str, list[tuple[int, str]]],
    first: Mapping[str, tuple[str, int]],
    extra: Mapping[str, list[tuple[str, int]]],
    allowed: bool,
) -> list[Anomaly]:
    """Per producer and partition, messages whose first copy landed after that
    of a message the same producer sent later."""
    out = []
    for partition in sorted(committed):
        # A quick check first, in bulk: every message in the partition is known, from
        # one producer, in the order it was sent.  When it fails, the partition is
        # looked at message by message.
        if not extra and messages.one_producer_in_order(map(_message_of, committed[partition])):
            continue
        ahead: dict[str, tuple[int, int, str]] = {}  # producer -> latest-sent seen so far
        for offset, message_id in committed[partition]:
            if message_id in extra and first[message_id] != (partition, offset):
                continue  # not the first copy
            sender = messages.sender(message_id)
            if sender is None:
                continue
            producer, index = sender
            latest = ahead.get(producer)
            if latest is not None and index < latest[1]:
                out.append(
                    Anomaly(
                        "reordered",
                        message_id,
                        partition,
                        (offset, latest[0]),
                        allowed,
                        f"{message_id} was sent before {latest[2]} but sits at offset "
                        f"{offset}, after {latest[2]} at offset {latest[0]}",
                    )
                )
            elif latest is None or index > latest[1]:
                ahead[producer] = (offset, index, message_id)
    return out

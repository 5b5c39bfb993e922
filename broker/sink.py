"""An external database the consumers write their results to.

Two tables: ``output`` (one row per written result) and ``offsets`` (the next
offset to read, per group and partition, for applications that store their
position with their output).  Writes happen inside transactions: rows become
visible only on commit, and a transaction open when its writer crashes is
rolled back, as a real database would do.  ``fail_next`` makes the next
writes fail (a constraint violation, a full disk...), so the writer has to
cope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from broker.protocol import TopicPartition


@dataclass(frozen=True, slots=True)
class Row:
    row_id: int
    key: str
    message_id: str
    value: str
    written_by: str
    written_ms: int


@dataclass(slots=True)
class Transaction:
    writer: str
    rows: list[tuple[str | None, str, str, bool]] = field(default_factory=list)
    offsets: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    open: bool = True


class SinkWriteFailed(Exception):
    """The database refused a write; the transaction is rolled back."""


class Sink:
    def __init__(self, name: str = "db", max_rows: int = 1_000_000) -> None:
        self.name = name
        self.max_rows = max_rows
        self.output: dict[str, Row] = {}  # primary key -> row
        self.offsets: dict[tuple[str, TopicPartition], int] = {}
        self._next_row = 0
        self.fail_next = 0
        self.writes = 0
        self.rollbacks = 0

    def begin(self, writer: str) -> Transaction:
        return Transaction(writer)

    def insert(self, tx: Transaction, message_id: str, value: str) -> None:
        """A plain INSERT: every write is a new row."""
        self._write(tx, None, message_id, value, upsert=False)

    def upsert(self, tx: Transaction, key: str, message_id: str, value: str) -> None:
        """INSERT ... ON CONFLICT (key) DO UPDATE: one row per key."""
        self._write(tx, key, message_id, value, upsert=True)

    def _write(
        self, tx: Transaction, key: str | None, message_id: str, value: str, upsert: bool
    ) -> None:
        if not tx.open:
            raise AssertionError("write on a closed transaction")
        if self.fail_next > 0:
            self.fail_next -= 1
            self.rollback(tx)
            raise SinkWriteFailed(f"{self.name} refused the write of {message_id}")
        tx.rows.append((key, message_id, value, upsert))

    def store_offset(self, tx: Transaction, group: str, tp: TopicPartition, offset: int) -> None:
        tx.offsets[(group, tp)] = offset

    def commit(self, tx: Transaction, now_ms: int) -> None:
        if not tx.open:
            raise AssertionError("commit of a closed transaction")
        if len(self.output) + len(tx.rows) > self.max_rows:
            self.rollback(tx)
            raise SinkWriteFailed(f"{self.name} is full ({self.max_rows} rows)")
        tx.open = False
        for key, message_id, value, upsert in tx.rows:
            self._next_row += 1
            primary = key if upsert and key is not None else f"row-{self._next_row}"
            self.output[primary] = Row(
                self._next_row, primary, message_id, value, tx.writer, now_ms
            )
            self.writes += 1
        self.offsets.update(tx.offsets)

    def rollback(self, tx: Transaction) -> None:
        if tx.open:
            tx.open = False
            self.rollbacks += 1

    def stored_offset(self, group: str, tp: TopicPartition) -> int | None:
        return self.offsets.get((group, tp))

    def message_counts(self) -> dict[str, int]:
        """How many rows hold each message (the checker's view of the sink)."""
        counts: dict[str, int] = {}
        for row in self.output.values():
            counts[row.message_id] = counts.get(row.message_id, 0) + 1
        return counts

    def snapshot(self, limit: int = 200) -> dict[str, Any]:
        rows = sorted(self.output.values(), key=lambda r: r.row_id)[-limit:]
        return {
            "name": self.name,
            "rows": [
                {
                    "key": r.key,
                    "message_id": r.message_id,
                    "value": r.value,
                    "written_by": r.written_by,
                    "written_ms": r.written_ms,
                }
                for r in rows
            ],
            "row_count": len(self.output),
            "offsets": [
                {"group": g, "partition": str(tp), "offset": o}
                for (g, tp), o in sorted(
                    self.offsets.items(),
                    key=lambda kv: (kv[0][0], kv[0][1].topic, kv[0][1].partition),
                )
            ],
            "rollbacks": self.rollbacks,
        }

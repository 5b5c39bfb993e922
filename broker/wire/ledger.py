"""What external clients sent and were told, for the checker's ledger.

The checker judges messages by id.  A simulated producer knows when it resends a
message; an external client's resend is just another batch on the wire, so the gateway
recognises it and gives its records the message ids of the first attempt:

- an **idempotent** (or transactional) batch by what Kafka's broker deduplicates on:
  producer id, epoch, partition and base sequence (and its record count);
- a batch **without a producer id** by its client.id, partition and content (every
  record's key and value, in order), while an earlier batch with that content is still
  unacknowledged: its request got no answer yet (it may never get one: the answer was
  lost, the connection broke) or was answered with an error.  Once a batch with that
  content is acknowledged, the same content again is a new message.

So a deduplicated retry is the same message acknowledged at its original offset, and a
non-idempotent retry that is appended again is a second copy of the same message: the
verdict shows it as a duplicate.  Only this module writes external clients' records into
the ledger: a room no external client ever wrote to records exactly what it did before.
The memory of past batches is bounded (``max_batches``, least recently used go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence

from broker.checker import Ledger
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record
from broker.wire.records import BatchKey


class WireLedger:
    def __init__(
        self,
        ledger: Ledger,
        reserve: Callable[[str, int], list[str]],
        max_batches: int = 50_000,
        max_transactions: int = 1_000,
    ) -> None:
        self.ledger = ledger
        self.reserve = reserve  # fresh ids: (client.id, count) -> CLIENT_ID-N...
        self.max_batches = max_batches
        self.max_transactions = max_transactions
        # (client.id or "", partition, count, batch key) -> the ids its records got
        self._batches: OrderedDict[tuple[str, str, int, BatchKey], tuple[str, ...]] = OrderedDict()
        # a batch without producer id that is not acknowledged yet: its first id -> its key
        self._unacked: dict[str, tuple[str, str, int, BatchKey]] = {}
        # producer id -> the ids written in its open transaction (in order, no repeats)
        self._transactions: OrderedDict[int, dict[str, None]] = OrderedDict()

    # -- ids ------------------------------------------------------------------
    def ids_for(
        self, client_id: str, tp: TopicPartition, key: BatchKey, count: int, answered: bool
    ) -> list[str]:
        """The ids of a batch's ``count`` records: those of the batch it resends, or fresh
        ones.  ``answered=False`` (acks=0): the client never hears back, so never resends."""
        idempotent = key[0] >= 0
        entry = ("" if idempotent else client_id, str(tp), count, key)
        known = self._batches.get(entry)
        if known is not None and (idempotent or known[0] in self._unacked):
            self._batches.move_to_end(entry)
            return list(known)
        ids = self.reserve(client_id, count)
        if not answered:
            return ids
        self._batches[entry] = tuple(ids)
        if not idempotent:
            self._unacked[ids[0]] = entry
        while len(self._batches) > self.max_batches:
            _old, gone = self._batches.popitem(last=False)
            self._unacked.pop(gone[0], None)
        return ids

    # -- what the client sent and heard ----------------------------------------
    def sent(self, client_id: str, topic: str, records: Sequence[Record]) -> None:
        """A batch goes to a broker: new messages, or another attempt of known ones (the
        client's retry: the application handed them over once)."""
        if not records:
            return
        ledger = self.ledger
        first = records[0].message_id
        if first not in ledger.messages:
            # Ids the gateway just made (a resend reuses its batch's, and its first is known).
            index = int(first.rpartition("-")[2])
            ledger.sent_many(records, client_id, index, topic, fresh=True)
        ledger.attempted(records)

    def in_transaction(self, producer_id: int, records: Sequence[Record]) -> None:
        ids = self._transactions.get(producer_id)
        if ids is None:
            ids = self._transactions[producer_id] = {}
            while len(self._transactions) > self.max_transactions:
                self._transactions.popitem(last=False)
        ids.update(dict.fromkeys(r.message_id for r in records))

    def told(
        self,
        tp: TopicPartition,
        records: Sequence[Record],
        base_offset: int,
        error: ErrorCode,
        transactional: bool,
    ) -> None:
        """The client was answered: acknowledged at ``base_offset`` onwards (-1: acks=0,
        no offset) or failed with ``error``."""
        if not records:
            return
        if error is ErrorCode.NONE:
            entry = self._unacked.pop(records[0].message_id, None)
            if entry is not None:
                self._batches.pop(entry, None)
            if transactional:
                # Written, promised only once the transaction commits.
                self.ledger.in_transaction(records, tp, base_offset)
                return
        self.ledger.told_many(records, tp, base_offset, error)

    def unanswered(self, records: Sequence[Record]) -> None:
        """The connection closed before the answer: the client was told nothing (it retries,
        or in the end reports a timeout to its application, which the lab cannot see)."""
        self.ledger.unanswered([record.message_id for record in records])

    def ended(self, producer_id: int, committed: bool) -> None:
        """The client's EndTxn was answered without error: its transaction is over."""
        ids = list(self._transactions.pop(producer_id, {}))
        if committed:
            self.ledger.committed(ids)
        else:
            self.ledger.aborted(ids)

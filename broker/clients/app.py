"""The application that owns a producer client.

It gives each message a unique id, hands it to its ``Producer`` and notes
what it is told.  A crash throws the client away with everything it held; a
restart builds a new client (so, with idempotence, a NEW producer id) and,
like an application replaying its outbox, resends every message it was never
told had been written.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import partial
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from broker.clients.producer import Producer
from broker.clients.transactional import IllegalTxnState, TxnClientState
from broker.config import ProducerConfig
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record

if TYPE_CHECKING:
    from broker.cluster import Cluster

_message_id = itemgetter(0)  # of a Record
_new_record = partial(tuple.__new__, Record)  # Record(*fields), in C

# What the outbox keeps for a message not yet acknowledged: enough to resend it.
Outgoing = tuple[Record, str, int | None]  # (record, topic, partition)


def render(template: str, producer: str, indexes: range) -> list[str]:
    """``template`` filled in for each index ({i} and {producer}), fast for the
    common shape of one {i}."""
    filled = template.replace("{producer}", producer)
    head, sep, tail = filled.partition("{i}")
    if sep and "{" not in head + tail and "}" not in head + tail:
        return [f"{head}{i}{tail}" for i in indexes]
    return [template.format(i=i, producer=producer) for i in indexes]


class ProducerApp:
    def __init__(
        self,
        name: str,
        config: ProducerConfig,
        cluster: Cluster,
        resend_unacked_on_restart: bool = True,
        resend_on_failure: bool = False,
        start: bool = True,
    ) -> None:
        self.name = name
        self.config = config
        self.cluster = cluster
        self.events = cluster.events
        self.ledger = cluster.ledger
        self.resend_unacked_on_restart = resend_unacked_on_restart
        self.resend_on_failure = resend_on_failure
        self.outbox: dict[str, Outgoing] = {}  # sent, not yet acknowledged
        self.failed: set[str] = set()  # told failed, not acknowledged since
        self.next_index = 0
        self.incarnation = 1
        self.transactional = config.transactional_id is not None
        # A transactional application does its work in order, one step at a time.
        self._ops: deque[tuple[Any, ...]] = deque()
        self._ending = False
        self._txn_ids: list[str] = []
        self.txn_ready = False
        self.fenced = False
        # A settings change (configure): the client is closing, completing its pending
        # sends; what the application sends meanwhile waits for the new client.
        self.closing: ProducerConfig | None = None
        self._held: list[tuple[str, Sequence[str | None], Sequence[str], int | None]] = []
        self.client: Producer | None = None
        if start:
            self.client = self._new_client()
        else:
            self.incarnation = 0

    def start(self) -> None:
        """Start an application that was not running from the beginning."""
        if self.client is None:
            self.incarnation += 1
            self.client = self._new_client()
            self.events.emit(self.name, "app.start", detail=f"incarnation {self.incarnation}")

    def _new_client(self) -> Producer:
        client = Producer(self.name, self.config, self.cluster, self._on_results)
        if client.txn is not None:
            self.txn_ready = False
            client.txn.init_transactions(partial(self._initialized, client))
        return client

    # -- transactions (the application's calls, queued in order) -------------------
    def begin_transaction(self) -> None:
        self._queue(("begin",))

    def commit_transaction(self) -> None:
        self._queue(("commit",))

    def abort_transaction(self) -> None:
        self._queue(("abort",))

    def _queue(self, op: tuple[Any, ...]) -> None:
        if self.client is None:
            self.events.emit(self.name, "app.skipped", detail=f"application is down: {op[0]}")
            return
        self._ops.append(op)
        self._run_ops()

    def _initialized(self, client: Producer, error: ErrorCode) -> None:
        if client is not self.client:
            return
        if error is not ErrorCode.NONE:
            self.events.emit(
                self.name, "app.error", None, None, error.name, "initTransactions failed"
            )
            return
        self.txn_ready = True
        self._run_ops()

    def _run_ops(self) -> None:
        client = self.client
        while (
            client is not None
            and client.txn is not None
            and self.txn_ready
            and (self._ops and not self._ending)
        ):
            op = self._ops.popleft()
            txn = client.txn
            if txn.state is TxnClientState.FATAL_ERROR:
                self._fenced(txn.last_error or ErrorCode.PRODUCER_FENCED)
                break
            if op[0] == "commit" and txn.state is TxnClientState.ABORTABLE_ERROR:
                # commitTransaction throws the abortable error: the application aborts.
                error = txn.last_error or ErrorCode.TRANSACTION_ABORTABLE
                self.events.emit(
                    self.name,
                    "app.txn-failed",
                    None,
                    None,
                    error.name,
                    "commit refused: a write of the transaction failed; aborting",
                )
                self._ops.appendleft(("abort",))
                continue
            try:
                if op[0] == "begin":
                    txn.begin()
                    self._txn_ids = []
                elif op[0] == "produce":
                    if txn.state is not TxnClientState.IN_TRANSACTION:
                        raise IllegalTxnState(f"send() outside a transaction ({txn.state.value})")
                    self._txn_ids.extend(self._produce_now(*op[1:]))
                elif op[0] in ("commit", "abort"):
                    self._ending = True
                    commit = op[0] == "commit"
                    end = txn.commit if commit else txn.abort
                    end(partial(self._ended, client, commit))
            except IllegalTxnState as exc:
                self._ending = False  # the call was refused: nothing is being ended
                self.events.emit(self.name, "app.error", None, None, None, str(exc))

    def _fenced(self, error: ErrorCode) -> None:
        """The producer is fenced (a newer instance, or a timed-out transaction):
        this instance is a zombie; whatever its transaction wrote is aborted."""
        self.fenced = True
        self.ledger.aborted(self._txn_ids)
        self.events.emit(
            self.name,
            "app.fenced",
            None,
            None,
            error.name,
            "the producer is fenced: this instance must stop",
        )
        self._ops.clear()
        self._txn_ids = []

    def _ended(self, client: Producer, commit: bool, error: ErrorCode) -> None:
        if client is not self.client:
            return
        self._ending = False
        txn = client.txn
        assert txn is not None
        if error is ErrorCode.NONE:
            if commit:
                self.ledger.committed(self._txn_ids)
            else:
                self.ledger.aborted(self._txn_ids)
            self.events.emit(
                self.name,
                "app.txn-" + ("committed" if commit else "aborted"),
                detail=f"{len(self._txn_ids)} message(s)",
            )
            self._txn_ids = []
        elif txn.state is TxnClientState.FATAL_ERROR:
            self._fenced(error)
        else:
            # commitTransaction failed: the application aborts, as it must.
            self.events.emit(
                self.name,
                "app.txn-failed",
                None,
                None,
                error.name,
                "commit failed: aborting the transaction",
            )
            self._ops.appendleft(("abort",))
        self._run_ops()

    @property
    def alive(self) -> bool:
        return self.client is not None

    @property
    def busy_with_transaction(self) -> bool:
        """Transaction steps queued or a commit or abort under way."""
        return bool(self._ops) or self._ending

    def produce(
        self, topic: str, key: str | None, value: str, partition: int | None = None
    ) -> str | None:
        """Send one new message; None when the application is down."""
        ids = self.produce_many(topic, [key], [value], partition)
        return ids[0] if ids else None

    def produce_many(
        self,
        topic: str,
        keys: Sequence[str | None],
        values: Sequence[str],
        partition: int | None = None,
    ) -> list[str]:
        """Send new messages, one per (key, value), in order."""
        if self.closing is not None and self.client is not None:
            # Blocked in close(): the messages go to the new client once it exists.
            self._held.append((topic, keys, values, partition))
            return []
        if self.transactional and self.client is not None:
            self._queue(("produce", topic, keys, values, partition))
            return []
        return self._produce_now(topic, keys, values, partition)

    def _produce_now(
        self,
        topic: str,
        keys: Sequence[str | None],
        values: Sequence[str],
        partition: int | None = None,
    ) -> list[str]:
        if self.client is None:
            self.events.emit(
                self.name,
                "produce.skipped",
                detail=f"application is down: {len(values)} message(s) not sent",
            )
            return []
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} keys for {len(values)} values")
        start = self.next_index
        self.next_index = start + len(values)
        name = self.name
        ids = [f"{name}-{index}" for index in range(start, self.next_index)]
        # Built by map and zip, with no Python code run per record (Record's own
        # __new__ is Python: _new_record is tuple.__new__ with the class bound).
        records = list(map(_new_record, zip(ids, keys, values, strict=True)))
        self.outbox.update(zip(ids, zip(records, repeat(topic), repeat(partition)), strict=True))
        self.ledger.sent_many(records, name, start, topic)
        self.client.send_many(records, topic, partition)
        return ids

    def _on_results(
        self, records: Sequence[Record], tp: TopicPartition, base_offset: int, error: ErrorCode
    ) -> None:
        if self.transactional and error is ErrorCode.NONE:
            self.ledger.in_transaction(records, tp, base_offset)
        else:
            self.ledger.told_many(records, tp, base_offset, error)
        outbox = self.outbox
        if self.closing is not None:
            self.cluster.scheduler.after(0, self._closed_yet)
        if error is ErrorCode.NONE:
            # Every acknowledged record leaves the outbox: map runs the pops, and a
            # zero-length deque consumes them, with no Python loop per record.
            deque(map(outbox.pop, map(_message_id, records), repeat(None)), maxlen=0)
            if self.failed:
                self.failed.difference_update(map(_message_id, records))
            return
        for record in records:
            if record.message_id in outbox:
                self.failed.add(record.message_id)
        if self.resend_on_failure and self.client is not None:
            again = [outbox[r.message_id] for r in records if r.message_id in outbox]
            self.events.emit(
                self.name,
                "app.resend",
                str(tp),
                None,
                error.name,
                f"{len(again)} message(s) failed; the application sends them again",
            )
            self._resend(again)

    def _resend(self, outgoing: Sequence[Outgoing]) -> None:
        assert self.client is not None
        for record, topic, partition in outgoing:
            self.failed.discard(record.message_id)
            self.ledger.sent_many((record,), self.name, -1, topic)
            self.client.send_many((record,), topic, partition)

    # -- a settings change (the configure step) -----------------------------------------
    def reconfigure(self, config: ProducerConfig, change: str, at_start: bool = False) -> None:
        """New settings, the way an application gets them: ``close()`` the client, which
        completes its pending sends, then a new client with ``config`` (with idempotence, a
        new producer id). ``at_start``: the run has not begun, so the run simply starts with
        them. A producer that is down gets them when it starts again."""
        old = self.client
        if old is None or at_start:
            self.config = config
            if old is not None:
                old.close()
                self.client = self._new_client()
            when = "the run starts" if at_start else "it starts again"
            self.events.emit(self.name, "app.configure", detail=f"{change}: from when {when}")
            return
        self.closing = config
        self.events.emit(
            self.name,
            "app.configure",
            detail=f"{change}: close() completes the pending sends, then a new producer",
        )
        self._closed_yet()

    def _closed_yet(self) -> None:
        """Once the closing client has no send left waiting, the new client takes over."""
        old, config = self.client, self.closing
        if old is None or config is None or not old.idle:
            return
        old.close()
        self.closing = None
        self.config = config
        self.client = self._new_client()
        self.events.emit(
            self.name,
            "app.reconfigured",
            detail="closed; a new producer with acks="
            + config.acks_name
            + (" (idempotent: new producer id)" if config.enable_idempotence else ""),
        )
        held, self._held = self._held, []
        for topic, keys, values, partition in held:
            self.produce_many(topic, keys, values, partition)

    def crash(self) -> None:
        if self.client is None:
            return
        self.client.close()
        self.client = None
        self._ops.clear()
        self._ending = False
        if self.closing is not None:
            self.config, self.closing = self.closing, None
            held = sum(len(values) for _t, _k, values, _p in self._held)
            self._held = []
            if held:
                self.events.emit(
                    self.name,
                    "produce.skipped",
                    detail=f"application is down: {held} message(s) not sent",
                )
        self.events.emit(
            self.name, "app.crash", detail="application stopped; its producer's buffers are gone"
        )

    def restart(self) -> None:
        if self.client is not None:
            return
        self.incarnation += 1
        self.client = self._new_client()
        unacked = list(self.outbox.values())
        self.events.emit(
            self.name,
            "app.restart",
            detail=f"incarnation {self.incarnation}: a new producer"
            + (
                " (same transactional.id: initTransactions fences the old instance and aborts "
                "its open transaction)"
                if self.transactional
                else " (new producer id)"
                if self.config.enable_idempotence
                else ""
            )
            + (
                f"; resending {len(unacked)} unacknowledged message(s)"
                if self.resend_unacked_on_restart and unacked and not self.transactional
                else ""
            ),
        )
        if self.resend_unacked_on_restart and not self.transactional:
            self._resend(unacked)

    @property
    def idle(self) -> bool:
        if self.client is None:
            return True
        if self.closing is not None:
            return False
        if self.transactional and (self._ops or self._ending):
            return self.fenced
        txn = self.client.txn
        if txn is not None and (txn.busy or txn.state is TxnClientState.INITIALIZING):
            return self.fenced
        return self.client.idle

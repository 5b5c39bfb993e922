"""The application that owns a producer client.

It gives each message a unique id, hands it to its ``Producer`` and notes
what it is told.  A crash throws the client away with everything it held; a
restart builds a new client (so, with idempotence, a NEW producer id) and,
like an application replaying its outbox, resends every message it was never
told had been written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from broker.clients.producer import Producer
from broker.config import ProducerConfig
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record

if TYPE_CHECKING:
    from broker.cluster import Cluster

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
        self.client: Producer | None = self._new_client()

    def _new_client(self) -> Producer:
        return Producer(self.name, self.config, self.cluster, self._on_results)

    @property
    def alive(self) -> bool:
        return self.client is not None

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
        if self.client is None:
            self.events.emit(
                self.name,
                "produce.skipped",
                detail=f"application is down: {len(values)} message(s) not sent",
            )
            return []
        start = self.next_index
        self.next_index = start + len(values)
        name = self.name
        records = [
            Record(f"{name}-{index}", key, value)
            for index, key, value in zip(range(start, self.next_index), keys, values, strict=True)
        ]
        outbox = self.outbox
        for record in records:
            outbox[record.message_id] = (record, topic, partition)
        self.ledger.sent_many(records, name, start, topic)
        self.client.send_many(records, topic, partition)
        return [r.message_id for r in records]

    def _on_results(
        self, records: Sequence[Record], tp: TopicPartition, base_offset: int, error: ErrorCode
    ) -> None:
        self.ledger.told_many(records, tp, base_offset, error)
        outbox = self.outbox
        if error is ErrorCode.NONE:
            for record in records:
                outbox.pop(record.message_id, None)
            if self.failed:
                self.failed.difference_update(r.message_id for r in records)
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

    def crash(self) -> None:
        if self.client is None:
            return
        self.client.close()
        self.client = None
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
            + (" (new producer id)" if self.config.enable_idempotence else "")
            + (
                f"; resending {len(unacked)} unacknowledged message(s)"
                if self.resend_unacked_on_restart and unacked
                else ""
            ),
        )
        if self.resend_unacked_on_restart:
            self._resend(unacked)

    @property
    def idle(self) -> bool:
        return self.client is None or self.client.idle

"""The application that owns a producer client.

It gives each message a unique id, hands it to its ``Producer`` and notes
what it is told.  A crash throws the client away with everything it held; a
restart builds a new client (so, with idempotence, a NEW producer id) and,
like an application replaying its outbox, resends every message it was never
told had been written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from broker.clients.producer import Producer
from broker.config import ProducerConfig
from broker.errors import ErrorCode
from broker.protocol import TopicPartition
from broker.records import Record

if TYPE_CHECKING:
    from broker.cluster import Cluster


@dataclass(slots=True)
class Outgoing:
    record: Record
    topic: str
    partition: int | None
    status: str = "pending"  # pending | acked | failed


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
        self.outbox: dict[str, Outgoing] = {}
        self.next_index = 0
        self.incarnation = 1
        self.client: Producer | None = self._new_client()

    def _new_client(self) -> Producer:
        return Producer(self.name, self.config, self.cluster, self._on_result)

    @property
    def alive(self) -> bool:
        return self.client is not None

    def produce(
        self, topic: str, key: str | None, value: str, partition: int | None = None
    ) -> str | None:
        """Send one new message; None when the application is down."""
        if self.client is None:
            self.events.emit(self.name, "produce.skipped", detail="application is down")
            return None
        index = self.next_index
        self.next_index += 1
        record = Record(f"{self.name}-{index}", key, value)
        self.outbox[record.message_id] = Outgoing(record, topic, partition)
        self.ledger.sent(record, self.name, index, topic)
        self.client.send(record, topic, partition)
        return record.message_id

    def _on_result(self, record: Record, tp: TopicPartition, offset: int, error: ErrorCode) -> None:
        self.ledger.told(record, tp, offset, error)
        outgoing = self.outbox[record.message_id]
        if error is ErrorCode.NONE:
            outgoing.status = "acked"
            return
        if outgoing.status != "acked":
            outgoing.status = "failed"
        if self.resend_on_failure and self.client is not None:
            self.events.emit(
                self.name,
                "app.resend",
                str(tp),
                None,
                error.name,
                f"{record.message_id} failed; the application sends it again",
            )
            self._resend(outgoing)

    def _resend(self, outgoing: Outgoing) -> None:
        assert self.client is not None
        outgoing.status = "pending"
        self.ledger.sent(outgoing.record, self.name, -1, outgoing.topic)
        self.client.send(outgoing.record, outgoing.topic, outgoing.partition)

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
        unacked = [o for o in self.outbox.values() if o.status != "acked"]
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
            for outgoing in unacked:
                self._resend(outgoing)

    @property
    def idle(self) -> bool:
        return self.client is None or self.client.idle

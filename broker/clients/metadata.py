"""The producer's periodic metadata refresh (``metadata.max.age.ms``).

Kafka's client refreshes its metadata every ``metadata.max.age.ms`` even when
nothing failed, with a ``Metadata`` request to its least loaded broker (fewest
requests in flight, a connected one first).  That request is how a producer
that hears no answers at all, an ``acks=0`` one, notices a dead connection:
when the request gets no answer within ``request.timeout.ms`` the connection is
closed like any other timed-out one, and the next send opens a new one.  The
answer replaces the cached leaders, so a producer also learns of a leader
change that no error told it about.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from broker.errors import ErrorCode
from broker.network import Connection, Exchange
from broker.protocol import MetadataRequest, MetadataResponse
from broker.scheduler import Timer

if TYPE_CHECKING:
    from broker.clients.producer import Producer


class MetadataRefresh:
    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.exchange: Exchange | None = None
        self._timer: Timer | None = None
        self._schedule(producer.config.metadata_max_age_ms)

    def close(self) -> None:
        if self._timer:
            self._timer.cancel()
        self.exchange = None

    def _schedule(self, delay_ms: int) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = self.producer.scheduler.after(delay_ms, self._refresh)

    def _least_loaded(self) -> str:
        """Kafka's leastLoadedNode: a connected broker with the fewest requests in
        flight (ties by id, where Kafka picks at random), else any broker."""
        producer = self.producer
        names = [f"broker-{b}" for b in sorted(producer.cluster.brokers)]
        connected = [n for n in names if producer.network.is_connected(producer.actor, n)]
        return min(
            connected or names, key=lambda n: (producer.requests_in_flight(n), names.index(n))
        )

    def _refresh(self) -> None:
        producer = self.producer
        self._timer = None
        if producer.closed:
            return
        topics = producer.topics_in_use()
        if not topics:
            self._schedule(producer.config.metadata_max_age_ms)
            return
        broker = self._least_loaded()
        producer.events.emit(
            producer.actor,
            "metadata.request",
            detail=f"metadata refresh: Metadata for {', '.join(topics)}",
            src=producer.actor,
            dst=broker,
            quiet=True,
        )
        self.exchange = producer.network.send_request(
            producer.actor, broker, MetadataRequest(tuple(topics))
        )
        self._timer = producer.scheduler.after(
            producer.config.request_timeout_ms, self._timed_out, self.exchange
        )

    def on_response(self, exchange: Exchange, response: MetadataResponse) -> None:
        if exchange is not self.exchange:
            return
        self.exchange = None
        self.producer.metadata_updated(response.leaders)
        self._schedule(self.producer.config.metadata_max_age_ms)

    def _timed_out(self, exchange: Exchange) -> None:
        if exchange is not self.exchange:
            return
        self.exchange = None
        self._timer = None
        producer = self.producer
        conn = exchange.conn
        producer.events.emit(
            producer.actor,
            "request.timeout",
            None,
            None,
            ErrorCode.REQUEST_TIMED_OUT.name,
            f"Metadata got no answer within request.timeout.ms="
            f"{producer.config.request_timeout_ms}; connection to {conn.server} closed",
        )
        producer.network.close(conn, notify_client=False)
        producer.connection_lost(conn)
        self._schedule(producer.config.retry_backoff_ms)

    def on_disconnect(self, conn: Connection) -> None:
        if self.exchange is not None and self.exchange.conn is conn:
            self.exchange = None
            self._schedule(self.producer.config.retry_backoff_ms)

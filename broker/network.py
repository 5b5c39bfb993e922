"""Every request and response is a scheduled message with a latency.

Connections behave like TCP streams: a message never overtakes an earlier one
in the same direction of the same connection, and once a message is lost
nothing later gets through in that direction (the connection is stalled)
until the connection is closed, usually by the client's request timeout.  A
request already on the wire still reaches its broker after the client gave
up on the connection; a broker crash or a broken connection (``disconnect``)
loses everything in flight, and the client hears of it one latency later.
Fault rules (see ``faults``) are applied as requests enter the network.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from broker.events import EventLog
from broker.faults import FaultRule
from broker.scheduler import PRIORITY_NETWORK, Scheduler


class Endpoint(Protocol):
    name: str

    @property
    def alive(self) -> bool: ...


@dataclass(slots=True)
class Connection:
    conn_id: int
    client: str
    server: str
    open: bool = True
    # Like a TCP stream, a connection that lost a message delivers nothing
    # after it in that direction: it is stalled until someone closes it.
    stalled_requests: bool = False
    stalled_responses: bool = False
    reset: bool = False  # broken by a crash or a disconnect: nothing more is delivered


@dataclass(slots=True)
class Exchange:
    """One request in flight on a connection, and what to do when it ends."""

    conn: Connection
    correlation_id: int
    api: str
    partition: str | None
    drop_response: bool = False
    delay_response_ms: int = 0
    injected_error: str | None = None  # the broker answers with this error, not acting


RequestHandler = Callable[[Exchange, Any], None]
ResponseHandler = Callable[[Exchange, Any], None]
DisconnectHandler = Callable[[Connection], None]


class Network:
    def __init__(
        self,
        scheduler: Scheduler,
        events: EventLog,
        latency_ms: tuple[int, int] = (1, 5),
    ) -> None:
        self.scheduler = scheduler
        self.events = events
        self.latency_ms = latency_ms
        self._rng = scheduler.rng("network")
        self._fault_rng = scheduler.rng("faults")
        self.rules: list[FaultRule] = []
        self.blocked: set[tuple[str, str]] = set()  # directed links that drop everything
        self._servers: dict[str, tuple[Endpoint, RequestHandler]] = {}
        self._clients: dict[str, tuple[ResponseHandler, DisconnectHandler]] = {}
        self._connections: dict[tuple[str, str], Connection] = {}
        self._link_clock: dict[tuple[int, str], int] = {}  # (connection, direction)
        self._next_conn_id = 0
        self._next_correlation_id = 0
        self.stats = {"requests": 0, "responses": 0, "dropped": 0}

    # -- registration ----------------------------------------------------
    def register_server(self, endpoint: Endpoint, handler: RequestHandler) -> None:
        self._servers[endpoint.name] = (endpoint, handler)

    def register_client(
        self, name: str, on_response: ResponseHandler, on_disconnect: DisconnectHandler
    ) -> None:
        self._clients[name] = (on_response, on_disconnect)

    def unregister_client(self, name: str) -> None:
        """The client process is gone: close its connections silently."""
        self._clients.pop(name, None)
        for key, conn in list(self._connections.items()):
            if conn.client == name:
                conn.open = False
                del self._connections[key]

    # -- faults ----------------------------------------------------------
    def arm(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def heal(self) -> None:
        self.rules.clear()
        self.blocked.clear()

    def isolate(self, name: str, peers: list[str]) -> None:
        for peer in peers:
            self.blocked.add((name, peer))
            self.blocked.add((peer, name))

    # -- sending ---------------------------------------------------------
    def _latency(self) -> int:
        low, high = self.latency_ms
        return low if low >= high else self._rng.randint(low, high)

    def _deliver_at(self, conn: Connection, direction: str, extra_ms: int = 0) -> int:
        """When a message sent now on ``conn`` arrives: never before an earlier one
        in the same direction of the same connection (TCP's ordering)."""
        due = self.scheduler.now_ms + self._latency() + extra_ms
        link = (conn.conn_id, direction)
        due = max(due, self._link_clock.get(link, 0))
        self._link_clock[link] = due
        return due

    def connection(self, client: str, server: str) -> Connection:
        key = (client, server)
        conn = self._connections.get(key)
        if conn is None or not conn.open:
            self._next_conn_id += 1
            conn = Connection(self._next_conn_id, client, server)
            self._connections[key] = conn
        return conn

    def close(self, conn: Connection, notify_client: bool) -> None:
        if not conn.open:
            return
        conn.open = False
        if self._connections.get((conn.client, conn.server)) is conn:
            del self._connections[(conn.client, conn.server)]
        if notify_client:
            due = self._deliver_at(conn, "down")
            self.scheduler.at(due, self._notify_disconnect, conn, priority=PRIORITY_NETWORK)

    def close_server(self, server: str) -> None:
        """A broker process died: every connection to it breaks."""
        for conn in [c for c in self._connections.values() if c.server == server]:
            conn.reset = True
            self.close(conn, notify_client=True)

    def disconnect_client(self, client: str) -> None:
        """Break every connection of ``client`` (both ends hear of it)."""
        for conn in [c for c in self._connections.values() if c.client == client]:
            self.events.emit(
                "network",
                "net.disconnect",
                None,
                None,
                None,
                f"{client} -> {conn.server} connection broken",
                src=client,
                dst=conn.server,
            )
            conn.reset = True
            self.close(conn, notify_client=True)

    def _notify_disconnect(self, conn: Connection) -> None:
        client = self._clients.get(conn.client)
        if client is not None:
            client[1](conn)

    def send_request(
        self, client: str, server: str, payload: Any, partition: str | None = None
    ) -> Exchange:
        conn = self.connection(client, server)
        self._next_correlation_id += 1
        api: str = payload.api
        exchange = Exchange(conn, self._next_correlation_id, api, partition)
        self.stats["requests"] += 1
        target = self._servers.get(server)
        if target is None or not target[0].alive:
            # Connection refused: the client hears of it one latency later.
            self.close(conn, notify_client=True)
            return exchange
        extra_ms = 0
        drop_request = (client, server) in self.blocked or conn.stalled_requests
        for rule in self.rules:
            if rule.exhausted or not rule.matches(api, client, server, partition):
                continue
            if rule.until_ms is not None and self.scheduler.now_ms > rule.until_ms:
                continue
            rule.seen += 1
            if rule.seen < rule.nth:
                continue
            if rule.probability < 1.0 and self._fault_rng.random() >= rule.probability:
                continue
            rule.hit += 1
            if rule.kind == "drop-request":
                drop_request = True
            elif rule.kind == "drop-response":
                exchange.drop_response = True
            elif rule.kind == "delay-request":
                extra_ms += rule.delay_ms
            elif rule.kind == "delay-response":
                exchange.delay_response_ms += rule.delay_ms
            elif rule.kind == "error-response":
                exchange.injected_error = rule.error
        if drop_request:
            self.stats["dropped"] += 1
            why = "connection stalled" if conn.stalled_requests else "lost"
            conn.stalled_requests = True
            self.events.emit(
                "network",
                "net.drop-request",
                partition,
                None,
                None,
                f"{api} #{exchange.correlation_id} {client} -> {server} {why}",
                src=client,
                dst=server,
            )
            return exchange
        due = self._deliver_at(conn, "up", extra_ms)
        self.scheduler.at(due, self._arrive, exchange, payload, priority=PRIORITY_NETWORK)
        return exchange

    def _arrive(self, exchange: Exchange, payload: Any) -> None:
        # A request already on the wire still reaches the broker after its client
        # closed the connection (a timeout); only a reset connection loses it.
        if exchange.conn.reset:
            return
        target = self._servers.get(exchange.conn.server)
        if target is None:
            return
        endpoint, handler = target
        if not endpoint.alive:
            return
        handler(exchange, payload)

    def send_response(self, exchange: Exchange, payload: Any) -> None:
        conn = exchange.conn
        if not conn.open:
            return
        self.stats["responses"] += 1
        if (
            exchange.drop_response
            or conn.stalled_responses
            or (conn.server, conn.client) in self.blocked
        ):
            self.stats["dropped"] += 1
            why = "connection stalled" if conn.stalled_responses else "lost"
            conn.stalled_responses = True
            self.events.emit(
                "network",
                "net.drop-response",
                exchange.partition,
                None,
                None,
                f"{exchange.api} #{exchange.correlation_id} {conn.server} -> {conn.client} {why}",
                src=conn.server,
                dst=conn.client,
            )
            return
        due = self._deliver_at(conn, "down", exchange.delay_response_ms)
        self.scheduler.at(due, self._return, exchange, payload, priority=PRIORITY_NETWORK)

    def _return(self, exchange: Exchange, payload: Any) -> None:
        if not exchange.conn.open:
            return
        client = self._clients.get(exchange.conn.client)
        if client is not None:
            client[0](exchange, payload)

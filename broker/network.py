"""Every request and response is a scheduled message with a latency.

Connections behave like TCP streams: a message never overtakes an earlier one
in the same direction of the same connection, and once a message is lost
nothing later gets through in that direction (the connection is stalled)
until the connection is closed, usually by the client's request timeout.  A
request already on the wire still reaches its broker after the client gave
up on the connection; a broker crash or a broken connection (``disconnect``,
the ``disconnect-*`` faults, a broker closing it) loses everything in flight,
and the client hears of it one latency later.  Fault rules (see ``faults``)
are applied as requests enter the network.

A broker handles one request at a time per connection, as Kafka's
SocketServer mutes a channel from the moment it reads a request until that
request's response is sent (or, for a request without one such as an acks=0
Produce, until the handler is done): later requests wait in the connection.

A client keeps one connection per broker, plus two kinds Kafka has apart from
it: the consumer's group-coordinator connection (Kafka opens it under its own
node id), and one per partition for fetches, the lab's stand-in for Kafka's
one Fetch covering every partition of a broker (so one parked fetch does not
hold back another partition's).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from broker.events import EventLog
from broker.faults import FaultRule
from broker.scheduler import PRIORITY_NETWORK, Scheduler


class Endpoint(Protocol):
    name: str

    @property
    def alive(self) -> bool: ...


# The consumer's group requests go on its coordinator connection (see above).
COORDINATOR_APIS = frozenset(
    ("JoinGroup", "SyncGroup", "Heartbeat", "LeaveGroup", "OffsetCommit", "OffsetFetch")
)
CONTROLLER = "controller"  # the KRaft controller quorum, as a link end for isolation


@dataclass(slots=True)
class Connection:
    conn_id: int
    client: str
    server: str
    lane: str = ""  # "" (the main one), "coordinator" or "fetch:<partition>"
    open: bool = True
    # Like a TCP stream, a connection that lost a message delivers nothing
    # after it in that direction: it is stalled until someone closes it.
    stalled_requests: bool = False
    stalled_responses: bool = False
    reset: bool = False  # broken by a crash or a disconnect: nothing more is delivered
    # The broker's side: the request it is handling (the channel is muted until
    # its response is sent) and the requests read after it, waiting.
    handling: Exchange | None = None
    waiting: deque[tuple[Exchange, Any]] = field(default_factory=deque)


@dataclass(slots=True)
class Exchange:
    """One request in flight on a connection, and what to do when it ends."""

    conn: Connection
    correlation_id: int
    api: str
    partition: str | None
    drop_response: bool = False
    break_on_response: bool = False  # the connection breaks as the answer is sent
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
        self._connections: dict[tuple[str, str, str], Connection] = {}
        self._link_listeners: list[Callable[[], None]] = []
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

    def on_links_changed(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever isolation starts or heals (the controller
        uses it to notice brokers whose heartbeats stop or resume)."""
        self._link_listeners.append(listener)

    # -- faults ----------------------------------------------------------
    def arm(self, rule: FaultRule) -> None:
        self.rules.append(rule)

    def heal(self) -> None:
        self.rules.clear()
        had_links = bool(self.blocked)
        self.blocked.clear()
        if had_links:
            self._links_changed()

    def isolate(self, name: str, peers: list[str]) -> None:
        """Cut ``name`` off from ``peers``, both ways.  A broker cut off from the
        other brokers is on the minority side of the partition: it loses the
        controller quorum too, so its heartbeats stop."""
        if name in self._servers and any(p in self._servers for p in peers):
            peers = [*peers, CONTROLLER]
        for peer in peers:
            self.blocked.add((name, peer))
            self.blocked.add((peer, name))
        self._links_changed()

    def reaches_controller(self, name: str) -> bool:
        return (name, CONTROLLER) not in self.blocked

    def _links_changed(self) -> None:
        for listener in self._link_listeners:
            listener()

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

    def connection(self, client: str, server: str, lane: str = "") -> Connection:
        key = (client, server, lane)
        conn = self._connections.get(key)
        if conn is None or not conn.open:
            self._next_conn_id += 1
            conn = Connection(self._next_conn_id, client, server, lane)
            self._connections[key] = conn
        return conn

    def is_connected(self, client: str, server: str) -> bool:
        conn = self._connections.get((client, server, ""))
        return conn is not None and conn.open

    def close(self, conn: Connection, notify_client: bool) -> None:
        if not conn.open:
            return
        conn.open = False
        key = (conn.client, conn.server, conn.lane)
        if self._connections.get(key) is conn:
            del self._connections[key]
        if notify_client:
            due = self._deliver_at(conn, "down")
            self.scheduler.at(due, self._notify_disconnect, conn, priority=PRIORITY_NETWORK)

    def close_server(self, server: str) -> None:
        """A broker process died: every connection to it breaks."""
        for conn in [c for c in self._connections.values() if c.server == server]:
            self._reset(conn)

    def disconnect_client(self, client: str) -> None:
        """Break every connection of ``client`` (both ends hear of it)."""
        for conn in [c for c in self._connections.values() if c.client == client]:
            self.break_connection(conn, f"{client} -> {conn.server} connection broken")

    def break_connection(self, conn: Connection, why: str, partition: str | None = None) -> None:
        """The connection breaks (a reset): whatever is in flight on it either way
        is lost, and the client hears of it one latency later."""
        if not conn.open:
            return
        self.events.emit(
            "network",
            "net.disconnect",
            partition,
            None,
            None,
            why,
            src=conn.client,
            dst=conn.server,
        )
        self._reset(conn)

    def _reset(self, conn: Connection) -> None:
        conn.reset = True
        conn.handling = None
        conn.waiting.clear()
        self.close(conn, notify_client=True)

    def _notify_disconnect(self, conn: Connection) -> None:
        client = self._clients.get(conn.client)
        if client is not None:
            client[1](conn)

    def send_request(
        self, client: str, server: str, payload: Any, partition: str | None = None
    ) -> Exchange:
        api: str = payload.api
        if api == "Fetch":
            lane = f"fetch:{partition}"
        elif api in COORDINATOR_APIS:
            lane = "coordinator"
        else:
            lane = ""
        conn = self.connection(client, server, lane)
        self._next_correlation_id += 1
        exchange = Exchange(conn, self._next_correlation_id, api, partition)
        self.stats["requests"] += 1
        target = self._servers.get(server)
        if target is None or not target[0].alive:
            # Connection refused: the client hears of it one latency later.
            self.close(conn, notify_client=True)
            return exchange
        extra_ms = 0
        drop_request = (client, server) in self.blocked or conn.stalled_requests
        break_request = False
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
            elif rule.kind == "disconnect-request":
                break_request = True
            elif rule.kind == "disconnect-response":
                exchange.break_on_response = True
        if break_request and not drop_request:
            self.stats["dropped"] += 1
            self.break_connection(
                conn,
                f"{api} #{exchange.correlation_id} {client} -> {server} lost: connection broken",
                partition,
            )
            return exchange
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
        conn = exchange.conn
        if conn.reset:
            return
        if conn.handling is not None:
            conn.waiting.append((exchange, payload))  # the channel is muted
            return
        self._handle(exchange, payload)

    def _handle(self, exchange: Exchange, payload: Any) -> None:
        target = self._servers.get(exchange.conn.server)
        if target is None:
            return
        endpoint, handler = target
        if not endpoint.alive:
            return
        exchange.conn.handling = exchange
        handler(exchange, payload)

    def done(self, exchange: Exchange) -> None:
        """The broker is done with a request and sends no response (an acks=0
        Produce): the channel is unmuted, as by Kafka's no-op response."""
        conn = exchange.conn
        if conn.handling is exchange:
            conn.handling = None
            if conn.waiting:
                self.scheduler.at(
                    self.scheduler.now_ms, self._next_waiting, conn, priority=PRIORITY_NETWORK
                )

    def _next_waiting(self, conn: Connection) -> None:
        if conn.reset or conn.handling is not None or not conn.waiting:
            return
        exchange, payload = conn.waiting.popleft()
        self._handle(exchange, payload)

    def close_by_server(self, exchange: Exchange, why: str) -> None:
        """The broker closes the connection (Kafka does so after an error on an
        acks=0 Produce, so that the client refreshes its metadata)."""
        conn = exchange.conn
        self.break_connection(
            conn, f"{conn.server} closed the connection from {conn.client}: {why}"
        )

    def send_response(self, exchange: Exchange, payload: Any) -> None:
        conn = exchange.conn
        self.done(exchange)
        if not conn.open:
            return
        self.stats["responses"] += 1
        if exchange.break_on_response:
            self.stats["dropped"] += 1
            self.break_connection(
                conn,
                f"{exchange.api} #{exchange.correlation_id} {conn.server} -> {conn.client} "
                "answer lost: connection broken",
                exchange.partition,
            )
            return
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

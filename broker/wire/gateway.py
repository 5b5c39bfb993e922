"""Where an external client enters the engine: one ``Gateway`` per room, sans-IO.

The listener hands over frames (``receive``) and gets bytes to write or a close
back through the two callables a ``WireConnection`` carries.  Each TCP connection
is an actor of the engine's ``Network``, named ``CLIENT_ID#N`` (so a fault rule
naming the client.id hits all of them): its requests become the engine's request
dataclasses, sent like any simulated client's (so latencies, fault rules, crashes
and the sequence diagram apply to them), and the engine's responses are gathered
into the Kafka response.

Like Kafka's SocketServer, a connection's requests are handled one at a time:
the next frame is read only once the previous request is answered (or, for an
acks=0 Produce, handed over).  The handlers for each API live in
``broker.wire.data``, ``broker.wire.coordination`` and ``broker.wire.txn``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kafka.protocol.api_message import ApiMessage

from broker.cluster import broker_name
from broker.errors import ErrorCode
from broker.network import Connection, Exchange
from broker.records import ids_label
from broker.simulation import Simulation
from broker.wire import codec
from broker.wire.ledger import WireLedger
from broker.wire.records import RecordExtras, compiled_reader
from broker.wire.topics import TopicDefaults, TopicMaker

log = logging.getLogger("broker.wire")

NOTE_LOG_INTERVAL_S = 10.0
MAX_NOTES_REMEMBERED = 1000


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 64  # per room, every broker's port together
    # socket.request.max.bytes: 100 MiB in Kafka; clients send at most about 1 MiB
    # (message.max.bytes, max.request.size), and 64 connections must fit in memory.
    max_frame_bytes: int = 8 * 1024 * 1024
    max_queued_requests: int = 64  # pipelined requests waiting on one connection
    max_records: int = 1_000_000  # records external clients may write to a room
    max_records_per_request: int = 100_000
    # Batches remembered to recognise a client's retry (broker.wire.ledger), least recently
    # used forgotten first; Kafka's broker remembers 5 per producer and partition.
    max_remembered_batches: int = 50_000


@dataclass(eq=False, slots=True)
class WireConnection:
    conn_id: int
    broker_id: int
    send: Callable[[bytes], None]
    close: Callable[[str], None]
    actor: str = ""
    client_id: str = ""
    queue: deque[codec.WireRequest] = field(default_factory=deque)
    call: Call | None = None
    open: bool = True
    on_idle: Callable[[], None] | None = None  # called when no request is in progress


@dataclass(eq=False, slots=True)
class Call:
    """One wire request being answered: the engine requests it became, and their answers."""

    conn: WireConnection
    request: codec.WireRequest
    finish: Callable[[Call], ApiMessage | None] | None = None
    # Called on each engine answer; True finishes the call early (a long-poll Fetch).
    on_answer: Callable[[Call, Any, Any], bool] | None = None
    # Called when the connection closes before the call is answered (the client heard nothing).
    on_close: Callable[[Call], None] | None = None
    exchanges: dict[Any, Exchange] = field(default_factory=dict)
    answers: dict[Any, Any] = field(default_factory=dict)
    pending: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # per-API scratch
    done: bool = False

    @property
    def body(self) -> Any:
        return self.request.body

    @property
    def version(self) -> int:
        return self.request.version


Handler = Callable[["Gateway", Call], None]


class Gateway:
    def __init__(
        self,
        sim: Simulation,
        ports: dict[int, int],
        host: str = "127.0.0.1",
        wall_ms: Callable[[int], int] = lambda virtual_ms: virtual_ms,
        limits: Limits | None = None,
        topics: TopicDefaults | None = None,
    ) -> None:
        from broker.wire.coordination import HANDLERS as COORDINATION
        from broker.wire.data import HANDLERS as DATA
        from broker.wire.txn import HANDLERS as TRANSACTIONS

        self.sim = sim
        self.cluster = sim.cluster
        self.network = sim.network
        self.ports = ports
        self.host = host
        self.wall_ms = wall_ms
        self.limits = limits or Limits()
        self.topics = TopicMaker(sim.cluster, topics or TopicDefaults())
        self.extras = RecordExtras(limit_batches=200_000)
        compiled_reader()  # imported now: in the first Produce it held that answer back
        # What external clients sent and were told, for the verdict (broker.wire.ledger).
        self.told = WireLedger(
            sim.ledger, self.message_ids, max_batches=self.limits.max_remembered_batches
        )
        self.handlers: dict[int, Handler] = {**DATA, **COORDINATION, **TRANSACTIONS}
        self.connections: dict[int, WireConnection] = {}
        self._by_actor: dict[str, WireConnection] = {}
        self._calls: dict[int, tuple[Call, Any]] = {}  # engine correlation id -> call, key
        self._next_conn = 0
        self.records_written = 0
        self.refused: list[str] = []  # the reasons of recent refusals and closes, for tests
        self._logged: dict[str, tuple[int, float]] = {}  # text -> (not logged since, when)
        # Told of every engine request an external client sends (the dashboard's actor list).
        self.on_send: Callable[[WireConnection, Any], None] | None = None

    # -- connections -----------------------------------------------------
    def open(
        self, broker_id: int, send: Callable[[bytes], None], close: Callable[[str], None]
    ) -> WireConnection | None:
        """A TCP connection to ``broker_id``'s port; None when it must be refused."""
        if len(self.connections) >= self.limits.max_connections:
            self._note(f"connection to broker-{broker_id} refused: {len(self.connections)} open")
            return None
        if not self.cluster.brokers[broker_id].alive:
            self._note(f"connection to broker-{broker_id} refused: the broker is down")
            return None
        self._next_conn += 1
        conn = WireConnection(self._next_conn, broker_id, send, close)
        self.connections[conn.conn_id] = conn
        return conn

    def closed(self, conn: WireConnection) -> None:
        """The client closed the connection (or the listener did)."""
        if not conn.open:
            return
        conn.open = False
        self.connections.pop(conn.conn_id, None)
        if conn.actor:
            self._by_actor.pop(conn.actor, None)
            self.network.unregister_client(conn.actor)
        call = conn.call
        if call is not None and not call.done:
            call.done = True
            for exchange in call.exchanges.values():
                self._calls.pop(exchange.correlation_id, None)  # no answer will come now
            if call.on_close is not None:
                call.on_close(call)
        conn.queue.clear()

    def drop(self, conn: WireConnection, reason: str) -> None:
        """Close ``conn`` from the broker's side, logging why."""
        if not conn.open:
            return
        self._note(f"{conn.actor or f'connection {conn.conn_id}'}: closed: {reason}")
        self.closed(conn)
        conn.close(reason)

    def disconnect_client(self, client_id: str) -> int:
        """Break every connection of the external client ``client_id`` (a button); how many."""
        hit = [c for c in self.connections.values() if c.client_id == client_id]
        for conn in hit:
            self.sim.events.emit(
                "network",
                "net.disconnect",
                detail=f"{conn.actor} -> broker-{conn.broker_id} connection broken",
                src=conn.actor,
                dst=f"broker-{conn.broker_id}",
            )
            self.drop(conn, "disconnected by a command")
        return len(hit)

    def check_brokers(self) -> None:
        """Close the connections of brokers that crashed (their process is gone)."""
        for conn in list(self.connections.values()):
            if not self.cluster.brokers[conn.broker_id].alive:
                self.drop(conn, f"broker-{conn.broker_id} crashed")

    def _note(self, text: str) -> None:
        """Keep ``text`` among the recent refusals and log it, the same text at most once
        per ``NOTE_LOG_INTERVAL_S`` (a client retrying in a loop must not flood the log)."""
        self.refused.append(text)
        del self.refused[:-50]
        now = time.monotonic()
        skipped, last = self._logged.get(text, (0, -NOTE_LOG_INTERVAL_S))
        if now - last < NOTE_LOG_INTERVAL_S:
            self._logged[text] = (skipped + 1, last)
            return
        if len(self._logged) >= MAX_NOTES_REMEMBERED:
            self._logged.clear()
        self._logged[text] = (0, now)
        more = f" (and {skipped} more times since)" if skipped else ""
        log.warning("%s%s", text, more)

    # -- requests --------------------------------------------------------
    def receive(self, conn: WireConnection, frame: bytes) -> None:
        """One request frame, without its 4-byte length."""
        if not conn.open:
            return
        try:
            request = codec.decode_request(frame)
        except codec.FrameError as exc:
            self.drop(conn, str(exc))
            return
        if not conn.actor:
            conn.client_id = request.client_id or "client"
            conn.actor = f"{conn.client_id}#{conn.conn_id}"
            self._by_actor[conn.actor] = conn
            self.network.register_client(conn.actor, self._on_response, self._on_disconnect)
        if len(conn.queue) >= self.limits.max_queued_requests:
            self.drop(conn, f"more than {self.limits.max_queued_requests} requests queued")
            return
        conn.queue.append(request)
        if conn.call is None:
            self._next(conn)

    def _next(self, conn: WireConnection) -> None:
        while conn.open and conn.call is None and conn.queue:
            request = conn.queue.popleft()
            call = Call(conn, request)
            conn.call = call
            handler = self.handlers.get(request.api_key)
            try:
                if handler is None:
                    raise codec.FrameError(f"no handler for API {request.api_key}")
                handler(self, call)
            except codec.FrameError as exc:
                self.drop(conn, str(exc))
                return
            except Exception as exc:  # a request the lab did not foresee: this client only
                log.exception("%s: request %r failed", conn.actor, request.api_key)
                self.drop(conn, f"could not handle API {request.api_key}: {exc!r}")
                return
            if call.pending == 0 and not call.done:
                self.complete(call)

    def send(
        self,
        call: Call,
        key: Any,
        payload: Any,
        partition: str | None = None,
        answered: bool = True,
    ) -> None:
        """Send ``payload`` into the engine for ``call``, its answer filed under ``key``
        (``answered=False``: an acks=0 Produce, which gets none)."""
        conn = call.conn
        if self.on_send is not None:
            self.on_send(conn, payload)
        server = broker_name(conn.broker_id)
        # As a simulated client logs what it sends: the dashboard's diagram and story draw it.
        api = str(getattr(payload, "api", ""))
        self.sim.events.emit(
            conn.actor,
            "wire.request",
            partition,
            detail=request_detail(payload),
            src=conn.actor,
            dst=server,
            quiet=api in QUIET_APIS,
        )
        exchange = self.network.send_request(conn.actor, server, payload, partition)
        if not answered:
            return
        call.exchanges[key] = exchange
        call.pending += 1
        self._calls[exchange.correlation_id] = (call, key)

    def complete(self, call: Call) -> None:
        """Answer ``call`` (unless it has no answer) and go on with the connection's next."""
        if call.done:
            return
        call.done = True
        for key, exchange in call.exchanges.items():
            if key not in call.answers:
                # Still parked in the engine (a long-poll fetch answered early): let it go.
                self._calls.pop(exchange.correlation_id, None)
                self.network.close(exchange.conn, notify_client=False)
        conn = call.conn
        if conn.call is call:
            conn.call = None
        if not conn.open:
            return
        try:
            response = call.finish(call) if call.finish is not None else None
            data = None if response is None else codec.encode_response(call.request, response)
        except Exception as exc:  # as above: close this connection, nothing else
            log.exception("%s: answering API %r failed", conn.actor, call.request.api_key)
            self.drop(conn, f"could not answer API {call.request.api_key}: {exc!r}")
            return
        if data is not None:
            conn.send(data)
        self._next(conn)
        if conn.call is None and conn.on_idle is not None:
            conn.on_idle()

    def _on_response(self, exchange: Exchange, payload: Any) -> None:
        entry = self._calls.pop(exchange.correlation_id, None)
        if entry is None:
            return
        call, key = entry
        if call.done:
            return
        error = getattr(payload, "error", None)
        failed = (
            error.name if isinstance(error, ErrorCode) and error is not ErrorCode.NONE else None
        )
        self.sim.events.emit(
            call.conn.actor,
            "wire.response",
            exchange.partition,
            None if failed else getattr(payload, "base_offset", None),
            failed,
            detail=f"{exchange.api} #{exchange.correlation_id}",
            src=exchange.conn.server,
            dst=call.conn.actor,
            quiet=exchange.api in QUIET_APIS and not failed,
        )
        call.answers[key] = payload
        call.pending -= 1
        early = call.on_answer is not None and call.on_answer(call, key, payload)
        if early or call.pending == 0:
            self.complete(call)

    def _on_disconnect(self, engine_conn: Connection) -> None:
        conn = self._by_actor.get(engine_conn.client)
        if conn is not None:
            self.drop(conn, f"connection to {engine_conn.server} broken in the lab's network")

    # -- helpers for the handlers ------------------------------------------
    def message_ids(self, client_id: str, count: int) -> list[str]:
        """Fresh message ids for ``count`` records of ``client_id`` (``CLIENT_ID-N``; for a
        client.id that names one of the scenario's simulated producers, whose own ids are
        ``NAME-N`` too, ``CLIENT_ID.wire-N``: every message keeps an id of its own)."""
        first = self.sim.wire_ids_issued + 1
        self.sim.wire_ids_issued += count
        prefix = f"{client_id}.wire" if client_id in self.sim.producers else client_id
        return [f"{prefix}-{n}" for n in range(first, first + count)]

    def leader_log_bounds(self, tp: Any) -> tuple[int, int, int]:
        """(high watermark, last stable offset, log start) of ``tp``'s leader, or -1s."""
        state = self.cluster.controller.partitions.get(tp)
        if state is None or state.leader is None:
            return -1, -1, -1
        replica = self.cluster.brokers[state.leader].replicas.get(tp)
        if replica is None:
            return -1, -1, -1
        plog = replica.log
        return plog.high_watermark, plog.last_stable_offset, plog.log_start_offset


# A consumer's steady traffic, logged quiet (the diagram and the story pass over it, as they do
# a simulated consumer's fetches and heartbeats); an answer with an error is not quiet.
QUIET_APIS = frozenset({"Fetch", "Heartbeat"})


def request_detail(payload: Any) -> str:
    """A ``wire.request`` event's detail: the API, and for a Produce the message ids it carries,
    as a simulated producer's ``produce.send`` shows them (``ids_label``)."""
    api = str(getattr(payload, "api", type(payload).__name__))
    batch = getattr(payload, "batch", None)
    records = getattr(batch, "records", None)
    if not records:
        return api
    return f"{api} {ids_label(records)}"

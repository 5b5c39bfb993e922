"""Kafka listeners for one room: an asyncio server per simulated broker.

The listener only moves bytes: it cuts the stream into frames (4-byte length,
refusing any above ``socket.request.max.bytes`` by closing the connection),
hands each to the ``Gateway`` and writes what the gateway answers.  Like Kafka's
SocketServer it reads no further request from a connection while one is being
answered, so one busy client cannot make the room buffer without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import struct
from dataclasses import dataclass, field

from broker.simulation import Simulation
from broker.wire.driver import Clock, Driver
from broker.wire.gateway import Gateway, Limits, WireConnection
from broker.wire.topics import TopicDefaults

log = logging.getLogger("broker.wire")

DEFAULT_ADDR = "127.0.0.1"
DEFAULT_PORT = 9092


@dataclass(frozen=True, slots=True)
class ListenConfig:
    addr: str = DEFAULT_ADDR
    port: int = DEFAULT_PORT  # broker-1's port; broker-N listens on port + N - 1 (0: any)
    limits: Limits = field(default_factory=Limits)
    topics: TopicDefaults = field(default_factory=TopicDefaults)

    @classmethod
    def from_env(cls, port: int | None = None) -> ListenConfig:
        """``LAB_KAFKA_ADDR`` and ``LAB_KAFKA_PORT`` override the defaults."""
        addr = os.environ.get("LAB_KAFKA_ADDR", DEFAULT_ADDR)
        if port is None:
            port = int(os.environ.get("LAB_KAFKA_PORT", DEFAULT_PORT))
        return cls(addr=addr, port=port)


class RoomListener:
    """The listeners of one room, its gateway and its driver."""

    def __init__(self, sim: Simulation, config: ListenConfig, clock: Clock | None = None) -> None:
        """``clock``: what the driver steps (default: the engine's scheduler)."""
        self.sim = sim
        self.config = config
        self.clock: Clock = sim.scheduler if clock is None else clock
        self.servers: dict[int, asyncio.Server] = {}
        self.ports: dict[int, int] = {}
        self.gateway: Gateway | None = None
        self.driver: Driver | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reopening: set[int] = set()
        self._port_lost: set[int] = set()  # restarted, but its port could not be had again
        self.closed = False

    @property
    def bootstrap(self) -> str:
        return f"{self.config.addr}:{self.ports[min(self.ports)]}"

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for broker_id in sorted(self.sim.cluster.brokers):
            port = self.config.port + broker_id - 1 if self.config.port else 0
            server = await self._open_port(broker_id, port)
            self.servers[broker_id] = server
            self.ports[broker_id] = server.sockets[0].getsockname()[1]
        self.driver = Driver(self.clock, loop, after_pump=self.follow_engine)
        self.gateway = Gateway(
            self.sim,
            self.ports,
            host=self.config.addr,
            wall_ms=self.driver.wall_ms,
            limits=self.config.limits,
            topics=self.config.topics,
        )
        self.driver.pump()

    def follow_engine(self) -> None:
        """After the engine moved (the driver's pump, or a room stepping it itself while no
        client is connected): connections to crashed brokers are dropped, their ports closed
        or opened again."""
        if self.gateway is not None:
            self.gateway.check_brokers()
        self._follow_brokers()

    def _follow_brokers(self) -> None:
        """A crashed broker's port is closed, so clients get "connection refused" as from a
        Kafka broker whose process is gone (and do not reconnect in a loop to a port that
        accepts and hangs up); it opens again, on the same port, when the broker restarts."""
        if self.closed:
            return
        for broker_id, server in self.servers.items():
            alive = self.sim.cluster.brokers[broker_id].alive
            if not alive and server.is_serving():
                server.close()
            elif (
                alive
                and not server.is_serving()
                and broker_id not in self._reopening | self._port_lost
            ):
                self._reopening.add(broker_id)
                task = asyncio.get_running_loop().create_task(self._reopen(broker_id))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _reopen(self, broker_id: int) -> None:
        try:
            await self.servers[broker_id].wait_closed()
            if self.closed:
                return
            if not self.sim.cluster.brokers[broker_id].alive:
                return  # crashed again meanwhile: the next pump decides
            self.servers[broker_id] = await self._open_port(broker_id, self.ports[broker_id])
        except OSError as exc:  # the port was taken meanwhile: connections stay refused
            self._port_lost.add(broker_id)
            log.warning(
                "broker-%d restarted but its port %d could not be opened again: %s",
                broker_id,
                self.ports[broker_id],
                exc,
            )
        finally:
            self._reopening.discard(broker_id)

    async def _open_port(self, broker_id: int, port: int) -> asyncio.Server:
        return await asyncio.start_server(
            functools.partial(self._serve, broker_id),
            host=self.config.addr,
            port=port,
            limit=64 * 1024,
        )

    async def stop(self) -> None:
        self.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        for server in self.servers.values():
            with contextlib.suppress(Exception):
                await server.wait_closed()

    def close(self) -> None:
        """Stop the clock, close every port and connection now (``stop`` also waits)."""
        self.closed = True
        if self.driver is not None:
            self.driver.stop()
        for server in self.servers.values():
            server.close()
        if self.gateway is not None:
            for conn in list(self.gateway.connections.values()):
                self.gateway.drop(conn, "the room's listener stopped")

    async def _serve(
        self, broker_id: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        gateway, driver = self.gateway, self.driver
        if gateway is None or driver is None:
            writer.close()
            return
        driver.pump()  # the broker may have crashed since the last event ran
        closing = asyncio.Event()
        reason: list[str] = []

        def send(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        def close(why: str) -> None:
            reason.append(why)
            closing.set()

        conn = gateway.open(broker_id, send, close)
        if conn is None:
            writer.close()
            return
        try:
            await self._read_frames(conn, reader, writer, gateway, driver, closing)
        except (ConnectionError, OSError):
            pass  # the client went away mid-write: the same as a close
        finally:
            gateway.closed(conn)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _read_frames(
        self,
        conn: WireConnection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        gateway: Gateway,
        driver: Driver,
        closing: asyncio.Event,
    ) -> None:
        limit = self.config.limits.max_frame_bytes
        closed = asyncio.ensure_future(closing.wait())
        try:
            while not closing.is_set():
                read = asyncio.ensure_future(self._read_frame(reader, limit))
                done, _ = await asyncio.wait({read, closed}, return_when=asyncio.FIRST_COMPLETED)
                if read not in done:
                    read.cancel()
                    return
                frame, why = read.result()
                if frame is None:
                    if why:
                        gateway.drop(conn, why)
                    return
                gateway.receive(conn, frame)
                driver.pump()
                await writer.drain()
                # Kafka reads the next request once this one is answered (muting).
                if conn.open and conn.call is not None and not closing.is_set():
                    idle = asyncio.Event()
                    conn.on_idle = idle.set
                    waiter = asyncio.ensure_future(idle.wait())
                    await asyncio.wait({waiter, closed}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    conn.on_idle = None
                await writer.drain()
        finally:
            closed.cancel()

    @staticmethod
    async def _read_frame(reader: asyncio.StreamReader, limit: int) -> tuple[bytes | None, str]:
        try:
            head = await reader.readexactly(4)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, ""
        (size,) = struct.unpack(">i", head)
        if size < 0 or size > limit:
            return None, f"frame of {size} bytes is above socket.request.max.bytes={limit}"
        try:
            return await reader.readexactly(size), ""
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, ""

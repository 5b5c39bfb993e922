"""Sending one frame to many local WebSockets: framed once, the same bytes to every connection.

Under Daphne, a consumer's ASGI ``send`` is ``partial(server.handle_reply, protocol)``, and the
protocol is an Autobahn ``WebSocketServerProtocol``. Going through it per browser costs a
UTF-8 encode, a compression (with per-message deflate) and a WebSocket framing per connection;
a ``deflate.SharedFrame`` does that once per frame (and per window size) and the same bytes are
written to every connection (see deflate.py for why one compressed frame fits them all).
Anything else (the test communicator, another server) gets the plain ASGI message.

A browser that stops reading (a laptop lid closed, a bad network, or someone holding sockets
open on purpose) must not make the server buffer frames for it without end. Twisted already
knows how much it holds for each connection, and tells a registered *producer* when that passes
its ``bufferSize`` (``pauseProducing``) and when the buffer has drained (``resumeProducing``).
So each Daphne connection gets a ``Backpressure`` producer, with the connection's ``bufferSize``
set to ``LAB_WS_SEND_BUFFER_BYTES``. Past it, the viewer *falls behind*: it is skipped by the
fan-out and its consumer sends nothing either, so at most that many bytes and one frame wait for
it. Once the buffer drains, the viewer gets one full frame (its consumer's ``catch_up``) and
then every frame again. A viewer still behind after ``LAB_WS_STALL_CLOSE_S`` is closed with code
4008 and a reason, and the browser reconnects (and gets a snapshot) when it can read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from dashboard.live import background, deflate

logger = logging.getLogger(__name__)


def setting(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


STALLED_CODE = 4008
STALLED_REASON = "Too far behind: this connection stopped reading frames. Reload to catch up."

try:
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel
except ImportError:  # pragma: no cover - Daphne is a dependency; be safe without it
    WebSocketProtocol = None  # type: ignore[assignment,misc]
    HTTPChannel = None  # type: ignore[assignment,misc]


@dataclass(slots=True)
class Direct:
    """A Daphne WebSocket connection, reachable without the per-message ASGI path."""

    protocol: Any
    server: Any

    def send(self, prepared: deflate.SharedFrame) -> bool:
        """Send a prepared frame; False when the connection is closing or gone."""
        protocol = self.protocol
        connection = self.server.connections.get(protocol)
        if connection is None or connection.get("disconnected"):
            return False
        if protocol.state != protocol.STATE_OPEN:
            return False
        bits = deflate.window_bits(protocol)
        if bits is None:  # compressing with context: this connection's own compression
            protocol.sendMessage(prepared.payload, False)
        else:
            protocol.sendData(prepared.for_window(bits))
        return True


def direct(base_send: Any) -> Direct | None:
    """The Daphne connection behind an ASGI ``send``, or None when it is something else."""
    found = deflate.daphne_server(base_send)
    if found is None or WebSocketProtocol is None or not isinstance(found[1], WebSocketProtocol):
        return None
    server, protocol = found
    return Direct(protocol, server)


def prepare(frame: str) -> deflate.SharedFrame:
    """A text frame, encoded once, then framed (and compressed) once per form in use."""
    return deflate.SharedFrame(frame)


def queued_bytes(transport: Any) -> int | None:
    """What Twisted holds for a connection, not yet written to its socket (for the logs)."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen  # type: ignore[no-any-return]
    except (AttributeError, TypeError):
        return None


def socket_transport(transport: Any) -> Any:
    """The TCP transport under any wrapping (TLS wraps it in a protocol with ``.transport``)."""
    for _ in range(4):
        if hasattr(transport, "bufferSize") and hasattr(transport, "dataBuffer"):
            return transport
        transport = getattr(transport, "transport", None)
    return None


@dataclass(slots=True)
class Member:
    viewer: Any  # has ``async base_send(message)`` (a RoomConsumer), perhaps ``catch_up()``
    direct: Direct | None
    presenter: bool
    # Frames that arrived before this viewer's snapshot was sent (scale-out joins), or None.
    pending: list[tuple[int, str, str]] | None = None
    # The snapshot's sequence number: a frame at or below it is already in the snapshot.
    after_seq: int = -1
    # Its connection's buffer is past LAB_WS_SEND_BUFFER_BYTES: frames skip it (Backpressure).
    behind: bool = False
    backpressure: Backpressure | None = None


class Backpressure:
    """A Twisted streaming producer for one viewer's connection (``pauseProducing`` and the
    others are Twisted's names): Twisted pauses it when the connection holds more than its
    ``bufferSize`` and resumes it once everything is written."""

    def __init__(self, audience: Audience, member: Member) -> None:
        self.audience = audience
        self.member = member
        self.transport: Any = None
        self.stall_timer: asyncio.TimerHandle | None = None

    def attach(self, direct: Direct) -> bool:
        transport = direct.protocol.transport
        tcp = socket_transport(transport)
        if tcp is None:
            return False
        existing = getattr(transport, "producer", None)
        if existing is not None:
            if HTTPChannel is None or not isinstance(existing, HTTPChannel):
                return False
            # Daphne hands the connection from the HTTP channel that read the handshake to the
            # WebSocket protocol, but the channel stays registered as its producer: replace it.
            transport.unregisterProducer()
        try:
            transport.registerProducer(self, True)
        except RuntimeError:  # another producer (a TLS wrapper's): no bound for this one
            logger.debug("no backpressure for a WebSocket connection", exc_info=True)
            return False
        limit = int(setting("LAB_WS_SEND_BUFFER_BYTES", 256 * 1024))
        tcp.bufferSize = limit
        # The kernel's send buffer would otherwise grow to megabytes for a reader that stalls.
        with contextlib.suppress(AttributeError, OSError):
            tcp.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, limit)
        self.transport = transport
        return True

    def detach(self) -> None:
        self._cancel_timer()
        transport, self.transport = self.transport, None
        if transport is not None and getattr(transport, "producer", None) is self:
            transport.unregisterProducer()

    def pauseProducing(self) -> None:
        self.audience.fell_behind(self.member)
        stall_s = float(setting("LAB_WS_STALL_CLOSE_S", 30))
        self._cancel_timer()
        self.stall_timer = asyncio.get_running_loop().call_later(stall_s, self._stalled)

    def resumeProducing(self) -> None:
        self._cancel_timer()
        self.audience.caught_up(self.member)

    def stopProducing(self) -> None:  # the connection is gone
        self._cancel_timer()

    def _cancel_timer(self) -> None:
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    def _stalled(self) -> None:
        self.stall_timer = None
        member = self.member
        if not member.behind or member.direct is None:
            return
        logger.warning(
            "closing a WebSocket that read nothing for %s s (%s bytes queued for it)",
            setting("LAB_WS_STALL_CLOSE_S", 30),
            queued_bytes(socket_transport(member.direct.protocol.transport)),
        )
        member.direct.protocol.sendClose(STALLED_CODE, STALLED_REASON)


class Audience:
    """The viewers of one room in this process: each frame is encoded once per role.

    Presenters get the presenter variant of a frame (with speaker notes), attendees the public
    one; both carry the same sequence number.
    """

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def __len__(self) -> int:
        return len(self.members)

    def add(self, viewer: Any, presenter: bool, pending: bool = False) -> None:
        member = Member(viewer, direct(viewer.base_send), presenter, [] if pending else None)
        if member.direct is not None:
            backpressure = Backpressure(self, member)
            if backpressure.attach(member.direct):
                member.backpressure = backpressure
        self.members[id(viewer)] = member

    def remove(self, viewer: Any) -> bool:
        member = self.members.pop(id(viewer), None)
        if member is None:
            return False
        if member.backpressure is not None:
            member.backpressure.detach()
        return True

    def fell_behind(self, member: Member) -> None:
        """Its connection's buffer is full: skip it until it drains."""
        if member.behind:
            return
        member.behind = True
        member.viewer.send_paused = True
        transport = member.backpressure.transport if member.backpressure else None
        logger.info(
            "a viewer fell behind with %s bytes queued: no frames for it until it catches up",
            queued_bytes(socket_transport(transport)),
        )

    def caught_up(self, member: Member) -> None:
        """Its buffer drained: one full frame (the viewer's ``catch_up``), then every frame."""
        if not member.behind:
            return
        member.behind = False
        member.viewer.send_paused = False
        if self.members.get(id(member.viewer)) is not member:
            return
        if getattr(member.viewer, "catch_up", None) is None:
            return  # frames resume with a gap: the browser asks for a full frame itself
        if member.pending is None:
            member.pending = []  # hold frames back until the full frame is sent
        background.spawn(self._catch_up(member), name="lab-catch-up")

    async def _catch_up(self, member: Member) -> None:
        try:
            seq = await member.viewer.catch_up()
        except Exception:
            logger.exception("could not send a full frame to a viewer that caught up")
            seq = None
        await self.ready(member.viewer, member.after_seq if seq is None else int(seq))

    def presenters(self) -> int:
        return sum(1 for m in self.members.values() if m.presenter)

    async def send_presenters(self, text: str) -> None:
        """A fragment for presenters only, outside the numbered frames (the attendee count)."""
        for member in tuple(self.members.values()):
            if member.presenter:
                await self._send_one(member, text, None)

    async def ready(self, viewer: Any, after_seq: int) -> None:
        """The viewer got its snapshot (sequence ``after_seq``): send what queued up since."""
        member = self.members.get(id(viewer))
        if member is None or member.pending is None:
            return
        queued, member.pending = member.pending, None
        member.after_seq = after_seq
        for seq, public, private in queued:
            if seq > after_seq and not member.behind:
                await self._send_one(member, private if member.presenter else public, None)

    async def send(self, seq: int, public: str, private: str | None = None) -> None:
        """One frame to everyone, framed once per variant."""
        private = public if private is None else private
        prepared: dict[bool, Any] = {}
        for member in tuple(self.members.values()):
            if member.behind:
                continue  # dropped: a full frame follows once it catches up
            if member.pending is not None:
                member.pending.append((seq, public, private))
                continue
            if seq <= member.after_seq:
                # In scale-out, the worker may answer a snapshot call before the frame of the
                # same number reaches this process: the snapshot already has it.
                continue
            text = private if member.presenter else public
            if member.direct is not None and member.presenter not in prepared:
                prepared[member.presenter] = prepare(text)
            await self._send_one(member, text, prepared.get(member.presenter))

    @staticmethod
    async def _send_one(member: Member, text: str, prepared: Any) -> None:
        try:
            if member.direct is not None:
                member.direct.send(prepared if prepared is not None else prepare(text))
            else:
                await member.viewer.base_send({"type": "websocket.send", "text": text})
        except Exception:  # a connection closing under us: it removes itself
            logger.debug("a viewer could not take a frame", exc_info=True)

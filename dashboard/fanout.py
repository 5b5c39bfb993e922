"""Sending one frame to many local WebSockets: framed once, the same bytes to every connection.

Under Daphne, a consumer's ASGI ``send`` is ``partial(server.handle_reply, protocol)``, and the
protocol is an Autobahn ``WebSocketServerProtocol``. Going through it per browser costs a
UTF-8 encode, a WebSocket framing and a join per connection; Autobahn's prepared messages
(``PreparedMessage`` + ``sendPreparedMessage``, made for broadcasting) do that once per frame.
Anything else (the test communicator, another server) gets the plain ASGI message.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import Any

logger = logging.getLogger(__name__)

try:
    from autobahn.websocket.protocol import PreparedMessage
    from channels.sessions import InstanceSessionWrapper
    from daphne.ws_protocol import WebSocketProtocol
except ImportError:  # pragma: no cover - Daphne is a dependency; be safe without it
    PreparedMessage = None  # type: ignore[assignment,misc]
    InstanceSessionWrapper = None  # type: ignore[assignment,misc]
    WebSocketProtocol = None  # type: ignore[assignment,misc]


@dataclass(slots=True)
class Direct:
    """A Daphne WebSocket connection, reachable without the per-message ASGI path."""

    protocol: Any
    server: Any

    def send(self, prepared: Any) -> bool:
        """Send a prepared frame; False when the connection is closing or gone."""
        protocol = self.protocol
        connection = self.server.connections.get(protocol)
        if connection is None or connection.get("disconnected"):
            return False
        if protocol.state != protocol.STATE_OPEN:
            return False
        protocol.sendPreparedMessage(prepared)
        return True


def direct(base_send: Any) -> Direct | None:
    """The Daphne connection behind an ASGI ``send``, or None when it is something else.

    Channels' session middleware wraps ``send`` to save sessions on HTTP responses; it does
    nothing for WebSocket frames, so a frame may go to the server's send underneath it.
    """
    wrapper = getattr(base_send, "__self__", None)
    if InstanceSessionWrapper is not None and isinstance(wrapper, InstanceSessionWrapper):
        base_send = wrapper.real_send
    if WebSocketProtocol is None or not isinstance(base_send, partial):
        return None
    server = getattr(base_send.func, "__self__", None)
    if len(base_send.args) != 1 or not hasattr(server, "connections"):
        return None
    protocol = base_send.args[0]
    if not isinstance(protocol, WebSocketProtocol):
        return None
    return Direct(protocol, server)


def prepare(frame: str) -> Any:
    """A text frame, encoded and framed once (unmasked: server to client)."""
    return PreparedMessage(frame.encode("utf-8"), False, False, False)


@dataclass(slots=True)
class Member:
    viewer: Any  # has ``async base_send(message)`` (a RoomConsumer)
    direct: Direct | None
    presenter: bool
    # Frames that arrived before this viewer's snapshot was sent (scale-out joins), or None.
    pending: list[tuple[int, str, str]] | None = None
    # The snapshot's sequence number: a frame at or below it is already in the snapshot.
    after_seq: int = -1


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
        self.members[id(viewer)] = Member(
            viewer, direct(viewer.base_send), presenter, [] if pending else None
        )

    def remove(self, viewer: Any) -> bool:
        return self.members.pop(id(viewer), None) is not None

    def presenters(self) -> int:
        return sum(1 for m in self.members.values() if m.presenter)

    async def ready(self, viewer: Any, after_seq: int) -> None:
        """The viewer got its snapshot (sequence ``after_seq``): send what queued up since."""
        member = self.members.get(id(viewer))
        if member is None or member.pending is None:
            return
        queued, member.pending = member.pending, None
        member.after_seq = after_seq
        for seq, public, private in queued:
            if seq > after_seq:
                await self._send_one(member, private if member.presenter else public, None)

    async def send(self, seq: int, public: str, private: str | None = None) -> None:
        """One frame to everyone, framed once per variant."""
        private = public if private is None else private
        prepared: dict[bool, Any] = {}
        for member in tuple(self.members.values()):
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

"""Sending one frame to many local WebSockets: framed once, the same bytes to every connection.

Under Daphne, a consumer's ASGI ``send`` is ``partial(server.handle_reply, protocol)``, and the
protocol is an Autobahn ``WebSocketServerProtocol``. Going through it per browser costs a
UTF-8 encode, a WebSocket framing and a join per connection; Autobahn's prepared messages
(``PreparedMessage`` + ``sendPreparedMessage``, made for broadcasting) do that once per frame.
Anything else (the test communicator, another server) gets the plain ASGI message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

try:
    from autobahn.websocket.protocol import PreparedMessage
    from daphne.ws_protocol import WebSocketProtocol
except ImportError:  # pragma: no cover - Daphne is a dependency; be safe without it
    PreparedMessage = None  # type: ignore[assignment,misc]
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
    """The Daphne connection behind an ASGI ``send``, or None when it is something else."""
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

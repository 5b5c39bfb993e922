"""Per-message deflate (RFC 7692) on the room's WebSockets, one compressed frame for everyone.

The frames are HTML and compress five to ten times, which matters on a shared venue Wi-Fi:
300 attendees each get every frame. Browsers offer ``permessage-deflate`` on every WebSocket;
Daphne's Autobahn implements it but accepts no offer unless its factory is told to
(``perMessageCompressionAccept``). Daphne builds that factory itself and has no option for it,
so ``DeflateWebSockets``, an ASGI middleware around the whole application (``asgi.py``), tells
the Daphne server it finds behind the first request it sees, whatever launched it (``./run``'s
runserver, the ``daphne`` command, ``manage.py scaleout``). Connections opened after that
request negotiate deflate; the first request of a fresh process is nearly always the page
itself, and a WebSocket that reconnects first, after a restart, stays uncompressed.

The fan-out frames each message once for every connection (``fanout.py``): compression must
not undo that. So the server accepts deflate only *without context takeover* on its side: each
message is compressed on its own, never with references to earlier ones, so the same compressed
bytes are right for every connection with the same window size, and ``shared_frame`` makes them
once per frame. (The response need not say so: a server may always choose not to use its
context, and RFC 7692's ``server_no_context_takeover`` only promises it.) Autobahn compresses
what goes through a connection's own ``sendMessage`` (snapshots, error frames) the same way.

``LAB_WS_DEFLATE`` (on by default) turns it off, to compare or if a proxy mishandles it.
"""

from __future__ import annotations

import logging
import struct
import zlib
from functools import partial
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)

try:
    from autobahn.websocket.compress import (
        PerMessageDeflateOffer,
        PerMessageDeflateOfferAccept,
    )
    from channels.sessions import InstanceSessionWrapper
except ImportError:  # pragma: no cover - Daphne (with Autobahn) is a dependency
    PerMessageDeflateOffer = None  # type: ignore[assignment,misc]
    PerMessageDeflateOfferAccept = None  # type: ignore[assignment,misc]
    InstanceSessionWrapper = None  # type: ignore[assignment,misc]

# A client's messages to the lab are controls of at most 4 KiB; never inflate one past this.
MAX_INFLATED_BYTES = 64 * 1024
TEXT = 0x1
FIN = 0x80
RSV1 = 0x40  # "this message is compressed" (RFC 7692 section 6)


def enabled() -> bool:
    return bool(getattr(settings, "LAB_WS_DEFLATE", True))


def accept(offers: list[Any]) -> Any:
    """Autobahn's ``perMessageCompressionAccept``: the first deflate offer, the server side
    keeping no context between messages (so that one compressed frame fits every client)."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(  # type: ignore[no-untyped-call]
                offer, no_context_takeover=True, max_message_size=MAX_INFLATED_BYTES
            )
    return None


def daphne_server(send: Any) -> tuple[Any, Any] | None:
    """(Daphne server, protocol) behind an ASGI ``send``, or None when it is something else.

    Under Daphne a ``send`` is ``partial(server.handle_reply, protocol)``; Channels' session
    middleware wraps it (and does nothing for WebSocket frames), so look beneath the wrapper.
    """
    wrapper = getattr(send, "__self__", None)
    if InstanceSessionWrapper is not None and isinstance(wrapper, InstanceSessionWrapper):
        send = wrapper.real_send
    if not isinstance(send, partial) or len(send.args) != 1:
        return None
    server = getattr(send.func, "__self__", None)
    if not hasattr(server, "connections"):
        return None
    return server, send.args[0]


def configure(send: Any) -> bool:
    """Let the Daphne server behind ``send`` accept per-message deflate; False if none."""
    found = daphne_server(send)
    factory = getattr(found[0], "ws_factory", None) if found else None
    if factory is None or PerMessageDeflateOffer is None:
        return False
    factory.setProtocolOptions(perMessageCompressionAccept=accept)
    logger.info("WebSockets: per-message deflate accepted (no server context takeover)")
    return True


class DeflateWebSockets:
    """ASGI middleware: on the first request, turn per-message deflate on in Daphne."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.configured = not enabled()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        if not self.configured:
            self.configured = True  # once, whether or not there is a Daphne behind it
            configure(send)
        return await self.app(scope, receive, send)


def window_bits(protocol: Any) -> int | None:
    """The deflate window a connection's client accepts, 0 for no compression, or None when
    it compresses with context takeover (each message then needs its own compression)."""
    pmce = getattr(protocol, "_perMessageCompress", None)
    if pmce is None:
        return 0
    if not getattr(pmce, "server_no_context_takeover", False):
        return None
    return int(getattr(pmce, "server_max_window_bits", 15))


def frame(payload: bytes, compressed: bool = False) -> bytes:
    """One unfragmented, unmasked text frame (server to client) around ``payload``."""
    head = FIN | TEXT | (RSV1 if compressed else 0)
    size = len(payload)
    if size < 126:
        return bytes((head, size)) + payload
    if size < 1 << 16:
        return struct.pack("!BBH", head, 126, size) + payload
    return struct.pack("!BBQ", head, 127, size) + payload


def compress(payload: bytes, bits: int) -> bytes:
    """``payload`` deflated on its own for a window of ``bits``, without the 4-byte tail that
    every message's sync flush ends with (RFC 7692 section 7.2.1)."""
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -bits, 8)
    return (compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


class SharedFrame:
    """A text message's bytes on the wire, made once per form and written to every connection:
    plain, or deflated for each window size in use (in practice one: 15)."""

    __slots__ = ("_forms", "payload")

    def __init__(self, text: str) -> None:
        self.payload = text.encode("utf-8")
        self._forms: dict[int, bytes] = {}

    def for_window(self, bits: int) -> bytes:
        """The frame for a connection with ``window_bits`` (0: not compressed)."""
        data = self._forms.get(bits)
        if data is None:
            if bits:
                data = frame(compress(self.payload, bits), compressed=True)
            else:
                data = frame(self.payload)
            self._forms[bits] = data
        return data

"""Headers and origin checks that keep other sites (and injected markup) out of the lab.

- ``SameOriginWebSocket``: a WebSocket handshake is accepted only from a page of the lab
  itself. Browsers send ``Origin`` with every handshake and cannot forge it; the lab compares
  its scheme, host and port with the request's own ``Host`` (scheme: https when ``LAB_HTTPS``
  or the socket is wss), and the host must be one of ``ALLOWED_HOSTS``. ``*`` in
  ``ALLOWED_HOSTS`` lets any host name in but still demands the same origin. An origin listed in
  ``CSRF_TRUSTED_ORIGINS`` is accepted too (for a proxy that changes the port). A handshake
  without a ``Host`` header does not come from a browser; its ``Origin`` must then be one of
  ``ALLOWED_HOSTS``, as Channels' ``AllowedHostsOriginValidator`` checks.
- ``content_security_policy``: every HTML response gets a Content-Security-Policy that allows
  scripts, styles, images and connections from the lab only. Inline style *attributes* stay
  allowed (``style-src-attr 'unsafe-inline'``): the lanes place cells and cursors with
  ``style="grid-column: …"`` and the tally draws bars with ``style="--share: …"``, values
  computed per frame. Inline ``<style>`` and ``<script>`` elements, event-handler attributes
  and ``eval`` are refused.
- ``NoSniff``: ``X-Content-Type-Options: nosniff`` on what the ASGI app serves outside Django's
  middleware (static files).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from asgiref.sync import iscoroutinefunction
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host
from django.utils.decorators import sync_and_async_middleware

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
Origin = tuple[str, str, int]  # scheme, host (lower case, IPv6 without brackets), port


def parse_origin(value: str) -> Origin | None:
    """``("https", "lab.example.org", 443)`` from an Origin (or an origin pattern); None when it
    is not an http(s) origin (``null``, junk)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _trusted(origin: Origin) -> bool:
    """``origin`` is one of ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.org``: subdomains)."""
    scheme, host, port = origin
    for pattern in getattr(settings, "CSRF_TRUSTED_ORIGINS", ()):
        wildcard = "://*." in pattern
        trusted = parse_origin(pattern.replace("://*.", "://", 1) if wildcard else pattern)
        if trusted is None or trusted[0] != scheme or trusted[2] != port:
            continue
        if host == trusted[1] or (wildcard and host.endswith("." + trusted[1])):
            return True
    return False


def origin_refusal(scope: dict[str, Any]) -> str:
    """Why this WebSocket handshake must be refused, or "" to accept it."""
    raw = _header(scope, b"origin")
    if raw is None:
        return "no Origin header"
    origin = parse_origin(raw)
    if origin is None:
        return f"Origin {raw[:100]!r} is not an http(s) origin"
    allowed = list(settings.ALLOWED_HOSTS)
    host_header = _header(scope, b"host")
    if host_header is None:  # not a browser: the host list alone, as Channels checks it
        if "*" not in allowed and validate_host(origin[1], allowed):
            return ""
        bracketed = f"[{origin[1]}]" if ":" in origin[1] else origin[1]
        if "*" not in allowed and validate_host(bracketed, allowed):
            return ""
        return f"Origin {raw[:100]!r} is not one of ALLOWED_HOSTS"
    if _trusted(origin):
        return ""
    domain, port = split_domain_port(host_header.strip())
    if not domain or not validate_host(domain, allowed):
        return f"Host {host_header[:100]!r} is not one of ALLOWED_HOSTS"
    secure = bool(getattr(settings, "LAB_HTTPS", False)) or scope.get("scheme") == "wss"
    scheme = "https" if secure else "http"
    expected = (scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme])
    if origin != expected:
        want = f"{scheme}://{host_header.strip()}"
        return f"Origin {raw[:100]!r} is not this site ({want})"
    return ""


class SameOriginWebSocket:
    """ASGI middleware for the WebSocket routes: refuse a handshake from another origin."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "websocket":
            raise ValueError("SameOriginWebSocket guards WebSocket connections only")
        refusal = origin_refusal(scope)
        if refusal:
            logger.info("WebSocket refused (%s): %s", scope.get("path", ""), refusal)
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


# -- Content-Security-Policy -------------------------------------------------------------------
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def policy(request: HttpRequest) -> str:
    """The Content-Security-Policy of an HTML page of the lab."""
    connect = "'self'"
    try:
        host = request.get_host()
    except Exception:  # DisallowedHost: the response is an error page anyway
        host = ""
    if _HOST.fullmatch(host):
        # 'self' covers ws(s): to the same host in current browsers; older Safari needs it said.
        connect += f" {'wss' if request.is_secure() else 'ws'}://{host}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "style-src-attr 'unsafe-inline'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _with_policy(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    if "Content-Security-Policy" in response:
        return response
    if not str(response.get("Content-Type", "")).startswith("text/html"):
        return response
    if settings.DEBUG and response.status_code >= 400:
        return response  # Django's debug pages are made of inline styles and scripts
    response["Content-Security-Policy"] = policy(request)
    return response


@sync_and_async_middleware
def content_security_policy(get_response: Callable[..., Any]) -> Callable[..., Any]:
    """Django middleware: the policy on every HTML response."""
    if iscoroutinefunction(get_response):

        async def async_middleware(request: HttpRequest) -> HttpResponse:
            response: Awaitable[HttpResponse] = get_response(request)
            return _with_policy(request, await response)

        return async_middleware

    def middleware(request: HttpRequest) -> HttpResponse:
        return _with_policy(request, get_response(request))

    return middleware


class NoSniff:
    """ASGI middleware: ``X-Content-Type-Options: nosniff`` on every HTTP response lacking it."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] != "http":
            return await self.application(scope, receive, send)

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not any(k.lower() == b"x-content-type-options" for k, _ in headers):
                    headers.append((b"x-content-type-options", b"nosniff"))
                    message = {**message, "headers": headers}
            await send(message)

        return await self.application(scope, receive, send_with_header)

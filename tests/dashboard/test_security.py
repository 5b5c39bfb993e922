"""Headers and origins (dashboard/security.py): who may open a WebSocket, the
Content-Security-Policy of every page, nosniff on static files, and check --deploy of the
documented single-machine example."""

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from channels.testing import HttpCommunicator, WebsocketCommunicator
from django.test import Client
from django.test.utils import override_settings

from broker.scenario import load
from dashboard.asgi import application
from dashboard.live.runtime import registry
from tests.dashboard.conftest import open_room

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self' ws://testserver; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


async def handshake(origin: str | None, host: str | None, scheme: str = "ws") -> bool:
    """Whether a WebSocket handshake with these headers is accepted."""
    room = registry.create(load("producer-retry-duplicate"))
    headers = [(b"origin", origin.encode())] if origin is not None else []
    if host is not None:
        headers.append((b"host", host.encode()))
    ws = WebsocketCommunicator(application, f"/ws/rooms/{room.id}/", headers=headers)
    ws.scope["scheme"] = scheme
    connected, _ = await ws.connect()
    if connected:
        await ws.disconnect()
    return connected


# -- the WebSocket's origin ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("origin", "host", "accepted"),
    [
        ("http://127.0.0.1:8000", "127.0.0.1:8000", True),
        ("http://LOCALHOST:8000", "localhost:8000", True),
        ("http://[::1]:8000", "[::1]:8000", True),
        ("http://localhost", "localhost:80", True),
        ("https://127.0.0.1:8000", "127.0.0.1:8000", False),  # another scheme
        ("http://127.0.0.1:9000", "127.0.0.1:8000", False),  # another port
        ("http://127.0.0.1", "127.0.0.1:8000", False),  # port 80 is another port
        ("http://localhost:8000", "127.0.0.1:8000", False),  # another allowed host
        ("http://evil.example:8000", "127.0.0.1:8000", False),
        ("null", "127.0.0.1:8000", False),
        (None, "127.0.0.1:8000", False),
        ("http://evil.example", "evil.example", False),  # Host not in ALLOWED_HOSTS
    ],
)
async def test_only_the_labs_own_origin_may_open_a_websocket(
    origin: str | None, host: str, accepted: bool
) -> None:
    assert await handshake(origin, host) is accepted


@override_settings(ALLOWED_HOSTS=["*"])
async def test_allowed_hosts_star_still_demands_the_same_origin() -> None:
    assert await handshake("http://lab.local:8000", "lab.local:8000")
    assert not await handshake("http://evil.example", "lab.local:8000")
    assert not await handshake("https://lab.local:8000", "lab.local:8000")
    # Without a Host header (no browser) the Origin alone cannot be checked against "*".
    assert not await handshake("http://lab.local:8000", None)


@override_settings(ALLOWED_HOSTS=["lab.example.org"], LAB_HTTPS=True)
async def test_behind_https_the_origin_is_https_on_port_443() -> None:
    assert await handshake("https://lab.example.org", "lab.example.org")
    assert await handshake("https://lab.example.org:443", "lab.example.org")
    assert not await handshake("http://lab.example.org", "lab.example.org")


@override_settings(ALLOWED_HOSTS=["lab.example.org"])
async def test_a_wss_socket_expects_an_https_origin() -> None:
    assert await handshake("https://lab.example.org", "lab.example.org", scheme="wss")
    assert not await handshake("http://lab.example.org", "lab.example.org", scheme="wss")


@override_settings(
    ALLOWED_HOSTS=["lab.example.org"],
    CSRF_TRUSTED_ORIGINS=["https://lab.example.org:8443", "https://*.example.net"],
)
async def test_a_trusted_origin_is_accepted_when_a_proxy_changes_the_port() -> None:
    assert await handshake("https://lab.example.org:8443", "lab.example.org")
    assert await handshake("https://a.example.net", "lab.example.org")
    assert not await handshake("https://lab.example.org:9443", "lab.example.org")
    assert not await handshake("http://a.example.net", "lab.example.org")


async def test_without_a_host_header_the_origin_must_be_an_allowed_host() -> None:
    # What Channels' test communicator (and any non-browser client) sends.
    assert await handshake("http://127.0.0.1:8000", None)
    assert not await handshake("http://evil.example", None)


# -- Content-Security-Policy ---------------------------------------------------------------------
def test_every_page_has_the_content_security_policy(client: Client) -> None:
    room = open_room(client)
    pages = [client.get("/"), client.get(room), client.get("/r/QQQQQQQQ/")]

    for page in pages:
        assert page["Content-Type"].startswith("text/html")
        assert page["Content-Security-Policy"] == POLICY
        assert page["X-Content-Type-Options"] == "nosniff"


def test_plain_text_answers_carry_no_policy(client: Client) -> None:
    response = client.get("/rooms/nosuchroom/lanes/orders-0/", {"offset": "x"})

    assert response.status_code in (400, 404)
    if not response["Content-Type"].startswith("text/html"):
        assert "Content-Security-Policy" not in response


@pytest.mark.parametrize("folder", ["templates"])
def test_no_page_needs_inline_scripts_or_styles(folder: str) -> None:
    # What the policy refuses: <script> without src, <style>, on*= handlers, javascript: URLs.
    bad = re.compile(r"<script(?![^>]*\bsrc=)|<style\b|\son[a-z]+\s*=|javascript:", re.I)
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in (ROOT / folder).rglob("*.html")
        for match in bad.finditer(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


# -- static files --------------------------------------------------------------------------------
async def test_static_files_are_served_with_nosniff() -> None:
    request = HttpCommunicator(application, "GET", "/static/js/room.js")
    await request.send_input({"type": "http.request", "body": b""})
    start = await request.receive_output(timeout=5)
    await request.wait(timeout=5)

    assert start["type"] == "http.response.start" and start["status"] == 200
    headers = {name.lower(): value for name, value in start["headers"]}
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"content-type"].startswith(b"text/javascript")


# -- check --deploy of the documented single-machine example -----------------------------------
SINGLE_MACHINE_WARNINGS = ["security.W004", "security.W008", "security.W012", "security.W016"]


def test_the_single_machine_example_gives_exactly_the_warnings_the_guide_lists() -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "lab.example.org",
        "LAB_SERVE_STATIC": "1",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    found = sorted(set(re.findall(r"security\.W\d{3}", result.stderr + result.stdout)))
    assert found == SINGLE_MACHINE_WARNINGS
    guide = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    section = guide[guide.index("## The embedded set-up") : guide.index("## The scale-out")]
    assert sorted(set(re.findall(r"security\.W\d{3}", section))) == SINGLE_MACHINE_WARNINGS

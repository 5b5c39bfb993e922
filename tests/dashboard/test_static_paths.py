"""/static/ as the ASGI app serves it (bare Daphne): a path that leaves the static folders, however
it is spelled, is a 404 and never a server error."""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator
from django.conf import settings

from dashboard.asgi import application


async def static_status(raw_path: bytes, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": raw_path,
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    app = ApplicationCommunicator(application, scope)  # as Daphne calls it
    await app.send_input({"type": "http.request", "body": b""})
    start = await app.receive_output(timeout=5)
    await app.wait(timeout=5)
    return int(start["status"])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("raw", "path"),
    [
        (b"/static/../dashboard/settings.py", "/static/../dashboard/settings.py"),
        (b"/static/%2e%2e/dashboard/settings.py", "/static/../dashboard/settings.py"),
        (b"/static/css/..%2f..%2fmanage.py", "/static/css/../../manage.py"),
        (b"/static/%00", "/static/\x00"),
    ],
)
async def test_a_static_path_outside_the_static_folders_is_a_404(raw: bytes, path: str) -> None:
    assert settings.SERVE_STATIC  # the ASGI app serves /static/ itself (as under bare Daphne)
    assert await static_status(raw, path) == 404
    assert await static_status(b"/static/css/lab.css", "/static/css/lab.css") == 200

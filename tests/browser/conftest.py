"""Browser tests: Debian's Chromium driven by the plain ``playwright`` package.

The live server is a Daphne subprocess on a free port (one per test session), on a temporary
SQLite database migrated first; each test gets its own browser through a function-scoped
``sync_playwright`` (pytest-playwright's session-wide event loop clashes with pytest-django and
pytest-asyncio). Chromium never gets downloaded.
"""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
# Settings from the environment that would point the live server at shared services.
ISOLATED = frozenset({"DATABASE_URL", "REDIS_URL", "LAB_RUNTIME"})


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium); .ci/run installs it")
    port = _free_port()
    env = {
        # A temporary SQLite file and in-memory layers, whatever this shell points at.
        **{k: v for k, v in os.environ.items() if k not in ISOLATED},
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "LAB_SERVE_STATIC": "1",
        "LAB_SQLITE_PATH": str(tmp_path_factory.mktemp("db") / "db.sqlite3"),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        # Every test opens rooms (and forks) from 127.0.0.1: the per-address limits would refuse
        # them a few tests in. The limits have tests of their own (tests/dashboard).
        "LAB_RATE_ROOM_CREATE": "1000/60",
        "LAB_RATE_FORK": "1000/60",
    }
    log = tmp_path_factory.mktemp("daphne") / "daphne.log"
    # The sessions and the lab's tables (rooms, runs, questions, votes) first.
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=120,
        check=False,
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{migrate.stdout.decode(errors='replace')}")
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "dashboard.asgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"daphne did not start:\n{log.read_text()}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    # Chromium writes into ~/.config and ~/.cache even with a temporary profile.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshot() -> Callable[..., None]:
    """Save a screenshot into docs/screenshots/ when LAB_SCREENSHOTS=1 (not on every run)."""

    def save(page, name: str, **kwargs) -> None:
        if os.environ.get("LAB_SCREENSHOTS") == "1":
            folder = ROOT / "docs" / "screenshots"
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), **kwargs)

    return save

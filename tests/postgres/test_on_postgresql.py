"""The workshop suite again, on a real PostgreSQL (what DATABASE_URL selects in production).

A throwaway cluster (initdb in a temporary folder, a Unix socket, no TCP) runs for this test;
the dashboard's room, vote and saved-run tests then run against it in a subprocess, with
DATABASE_URL pointing at it. Skipped, saying why, where PostgreSQL's server programs are not
installed (Debian: apt-get install postgresql).
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUITES = ["tests/dashboard/test_workshop.py", "tests/dashboard/test_runs.py"]


def _bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _as_server_user() -> list[str]:
    """PostgreSQL refuses to run as root: use the postgres account when we are root."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    return [runuser, "-u", "postgres", "--"]


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    bin_dir = _bin_dir()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
    as_user = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="lab-pg-", dir="/tmp"))
    data, socket_dir = folder / "data", folder / "run"
    socket_dir.mkdir()
    if as_user:
        shutil.chown(folder, "postgres")
        shutil.chown(socket_dir, "postgres")
    log = folder / "server.log"
    subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "lab"],
        check=True,
        capture_output=True,
    )
    server = subprocess.Popen(
        [
            *as_user,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-k",
            str(socket_dir),
            "-c",
            "listen_addresses=",
            "-c",
            "fsync=off",
        ],
        stdout=log.open("wb") if not as_user else subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not (socket_dir / ".s.PGSQL.5432").exists():
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.1)
        time.sleep(0.3)  # the socket file appears just before the server accepts
        yield f"postgres://lab@{quote(str(socket_dir), safe='')}/postgres"
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(300)
def test_rooms_votes_and_saved_runs_work_on_postgresql(database_url: str) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
    }
    for name in ("REDIS_URL", "LAB_RUNTIME"):
        env.pop(name, None)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr

    report = Path(tempfile.mkdtemp()) / "report.xml"
    suite = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
            *SUITES,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )

    assert suite.returncode == 0, suite.stdout[-5000:] + suite.stderr[-2000:]
    totals = ET.parse(report).getroot().find("testsuite")
    assert totals is not None and int(totals.get("tests", 0)) > 50
    assert int(totals.get("failures", 0)) == int(totals.get("errors", 0)) == 0
    assert _vendor(env) == "postgresql"


def _vendor(env: dict[str, str]) -> str:
    """Which database Django really used (not a silent fall-back to SQLite)."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.db import connection; "
            "print(connection.vendor)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()

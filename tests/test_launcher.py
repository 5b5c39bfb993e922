"""The launcher, ``./run``, as a newcomer meets it: the port, the virtual environment, the CLI.

Each test runs the real script with ``LAB_VENV`` in a temporary folder, never the checkout's
``.venv``. Only one test installs packages (from requirements.lock, so it needs the package
index, as ``./run`` does); the others stop before any install.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = str(ROOT / "run")


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAB_", "DJANGO_"))}
    env.update(
        LAB_VENV=str(tmp_path / "venv"),
        LAB_PYTHON=sys.executable,
        LAB_SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        **extra,
    )
    return env


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port this test listens on, as another server would."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_taken_port_stops_run_before_anything_with_a_message_naming_lab_addr(
    tmp_path: Path, taken_port: int
) -> None:
    addr = f"127.0.0.1:{taken_port}"
    result = subprocess.run(
        [RUN], env=env_for(tmp_path, LAB_ADDR=addr), capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert f"cannot serve on LAB_ADDR={addr}: the port is already in use" in result.stderr
    assert f"LAB_ADDR=127.0.0.1:{taken_port + 1} ./run" in result.stderr
    assert "open http" not in result.stdout
    assert not (tmp_path / "venv").exists()  # checked before the (long) install


def test_an_address_not_on_this_machine_is_refused_with_what_to_use(tmp_path: Path) -> None:
    result = subprocess.run(
        [RUN],
        env=env_for(tmp_path, LAB_ADDR="192.0.2.254:8000"),  # TEST-NET-1: nobody's address
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "192.0.2.254 is not an address of this machine" in result.stderr
    assert "LAB_ADDR=0.0.0.0:8000" in result.stderr


def test_the_cli_runs_without_any_set_up_and_from_any_folder(tmp_path: Path) -> None:
    scenario = tmp_path / "mine.toml"
    scenario.write_text(
        (ROOT / "broker" / "scenarios" / "producer-retry-duplicate.toml").read_text()
    )
    result = subprocess.run(
        [RUN, "cli", "run", "mine.toml", "--trace"],
        cwd=tmp_path,  # the path is the user's, relative to where they are
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "step.note" in result.stdout and "p1 gives up waiting, and retries" in result.stdout
    assert "verdict: as-expected" in result.stdout
    assert not (tmp_path / "venv").exists()


class Output:
    """A process's merged output, read on a thread, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                self._queue.put(line)
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in:\n{''.join(self.lines)}") from None
            if line is None:
                raise AssertionError(f"exited before {text!r}:\n{''.join(self.lines)}")
            self.lines.append(line)
            if text in line:
                return line


def get(url: str, timeout: float) -> str:
    """The page at ``url`` once the server answers (it starts right after saying so)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.mark.timeout(900)
def test_a_half_built_venv_is_rebuilt_and_serving_installs_the_runtime_only(
    tmp_path: Path,
) -> None:
    """A virtual environment made without pip (what a missing python3-venv leaves) is rebuilt;
    serving then installs requirements.lock alone (no test tools), and on 0.0.0.0 says which
    addresses to open rather than 0.0.0.0."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    port = free_port()
    process = subprocess.Popen(
        [RUN],
        env=env_for(tmp_path, LAB_ADDR=f"0.0.0.0:{port}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # the server's reloader has a child: stop the whole group
    )
    output = Output(process)
    try:
        output.wait_for("has no working pip (a half-built virtual environment): rebuilding", 60)
        output.wait_for("packages from requirements.lock", 120)
        line = output.wait_for("Delivery Lab: open", 840)
        assert f"open http://127.0.0.1:{port} on this machine" in line
        assert "0.0.0.0" not in line
        page = get(f"http://127.0.0.1:{port}/", 60)
        assert "Delivery Lab" in page
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)

    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    assert subprocess.run([python, "-c", "import daphne, django, segno"]).returncode == 0
    for tool in ("pytest", "playwright", "mypy"):
        missing = subprocess.run([python, "-c", f"import {tool}"], capture_output=True)
        assert missing.returncode != 0, f"serving installed {tool}"

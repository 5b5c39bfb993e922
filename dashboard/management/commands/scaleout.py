"""``manage.py scaleout``: the scale-out set-up on this one machine, to try it or measure it.

Starts Redis (Debian's ``redis-server``) on a free port, migrates a fresh SQLite file, then one
``manage.py labworker`` and ``--webs`` Daphne processes, all with ``REDIS_URL`` pointing at that
Redis, ``LAB_RUNTIME=worker`` and the same ``LAB_SQLITE_PATH``; prints the Daphne URLs and runs
until Ctrl-C, then stops everything it started. ``--embedded`` starts the single-process set-up
instead (one Daphne running the rooms itself, no Redis), for comparisons.

``Lab`` does the same as a context manager: the scale-out tests (``tests/scaleout``) and
``bench_fanout --setup`` use it. Every process it starts gets its own log file in ``workdir``
(``Lab.logs()`` returns their tails), and ``stop`` terminates them by process id, killing what
does not exit within a few seconds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from django.core.management.base import BaseCommand, CommandError

ROOT = Path(__file__).resolve().parents[3]

# Inherited settings that would point the started processes somewhere else.
SCRUBBED = (
    "REDIS_URL",
    "DATABASE_URL",
    "LAB_RUNTIME",
    "LAB_SQLITE_PATH",
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_CSRF_TRUSTED_ORIGINS",
)


class LabError(RuntimeError):
    """A process of the set-up did not start (the message has its log)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec (Linux): SIGTERM when the process that started it dies, so
    that nothing outlives a killed test run or benchmark."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def redis_server() -> str | None:
    """The redis-server executable, or None when it is not installed."""
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class Lab:
    """Redis + one runtime worker + ``webs`` Daphne processes (or, with ``redis=False``, one
    Daphne running the rooms itself), on free ports of 127.0.0.1, with a fresh database."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        webs: int = 2,
        redis: bool = True,
        debug: bool = True,
        env: dict[str, str] | None = None,
        start_timeout_s: float = 20.0,
    ) -> None:
        if not redis and webs != 1:
            raise ValueError("the embedded set-up has exactly one web process (rooms run in it)")
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="lab-scaleout-"))
        self.webs = webs
        self.redis = redis
        self.debug = debug
        self.extra_env = dict(env or {})
        self.start_timeout_s = start_timeout_s
        # One key for every process: they share sessions (signed with it) through the database.
        self.secret_key = secrets.token_urlsafe(50)
        self.redis_port = 0
        self.ports: list[int] = []
        self.processes: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._logs: list[IO[bytes]] = []

    # -- what the set-up offers ---------------------------------------------------------------
    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0" if self.redis else ""

    def env(self) -> dict[str, str]:
        """The environment of every Django process of the set-up."""
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "dashboard.settings",
                "LAB_SERVE_STATIC": "1",
                "LAB_SQLITE_PATH": str(self.workdir / "db.sqlite3"),
                "LAB_RUNTIME": "worker" if self.redis else "embedded",
                "XDG_CONFIG_HOME": str(self.workdir / "config"),
                "XDG_CACHE_HOME": str(self.workdir / "cache"),
                "XDG_DATA_HOME": str(self.workdir / "data"),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.redis:
            env["REDIS_URL"] = self.redis_url
        if not self.debug:
            env["DJANGO_DEBUG"] = "0"
            env["DJANGO_SECRET_KEY"] = self.secret_key
        env.update(self.extra_env)
        return env

    # -- starting and stopping ----------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> Lab:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.redis:
            server = redis_server()
            if server is None:
                raise LabError("redis-server is not installed (apt-get install redis-server)")
            self.redis_port = free_port()
            self._spawn(
                "redis",
                [
                    server,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.redis_port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--loglevel",
                    "warning",
                ],
            )
        env = self.env()
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
        )
        if migrate.returncode != 0:
            out = (migrate.stdout + migrate.stderr).decode(errors="replace")
            raise LabError(f"manage.py migrate failed:\n{out}")
        if self.redis:
            self._wait_for_redis()
            self._spawn("labworker", [sys.executable, "manage.py", "labworker"])
        for index in range(self.webs):
            port = free_port()
            self.ports.append(port)
            self._spawn(
                f"daphne-{'ABCDEFGHIJ'[index] if index < 10 else index}",
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
            )
        for port in self.ports:
            self._wait_for_port(port)
        if self.redis:
            self._wait_for_log("labworker", b"serving rooms")

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}.log"
        log = log_path.open("wb")
        self._logs.append(log)
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not them: we stop them
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self.processes.append((name, process, log_path))
        return process

    def _deadline(self) -> float:
        return time.monotonic() + self.start_timeout_s

    def _wait_for_redis(self) -> None:
        deadline = self._deadline()
        while True:
            self.check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise LabError(f"redis-server did not answer PING\n{self.logs()}")
            time.sleep(0.05)

    def _wait_for_port(self, port: int) -> None:
        deadline = self._deadline()
        while True:
            self.check_alive()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise LabError(f"nothing listens on port {port}\n{self.logs()}") from None
                time.sleep(0.05)

    def _wait_for_log(self, name: str, text: bytes) -> None:
        deadline = self._deadline()
        path = next(p for n, _, p in self.processes if n == name)
        while text not in path.read_bytes():
            self.check_alive()
            if time.monotonic() > deadline:
                raise LabError(f"{name} did not say {text.decode()!r}\n{self.logs()}")
            time.sleep(0.05)

    def check_alive(self) -> None:
        """Raise LabError (with the logs) when a process of the set-up has exited."""
        for name, process, _ in self.processes:
            code = process.poll()
            if code is not None:
                raise LabError(f"{name} exited with status {code}\n{self.logs()}")

    def stop(self) -> None:
        """Terminate every process started (by its id), newest first; kill the stubborn."""
        for _, process, _ in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8
        for _, process, _ in reversed(self.processes):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        for log in self._logs:
            log.close()
        self._logs.clear()

    def cleanup(self) -> None:
        """Stop, then remove the working directory when this object made it."""
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def logs(self, tail: int = 60) -> str:
        """The last ``tail`` lines of every process's log."""
        parts = []
        for name, process, path in self.processes:
            try:
                lines = path.read_text(errors="replace").splitlines()[-tail:]
            except OSError as exc:
                lines = [f"(no log: {exc})"]
            state = "running" if process.poll() is None else f"exited {process.returncode}"
            parts.append(f"----- {name} (pid {process.pid}, {state}) {path}\n" + "\n".join(lines))
        return "\n".join(parts)


class Command(BaseCommand):
    help = (
        "Start Redis, one labworker and N Daphne processes (scale-out) on free ports of this "
        "machine, with a fresh SQLite database; run until Ctrl-C."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--webs", type=int, default=2, help="Daphne processes (default 2)")
        parser.add_argument(
            "--embedded",
            action="store_true",
            help="one Daphne that runs the rooms itself, no Redis (the default set-up)",
        )
        parser.add_argument("--no-debug", action="store_true", help="DJANGO_DEBUG=0")
        parser.add_argument("--workdir", default="", help="logs and database (default: a temp dir)")

    def handle(self, *args: Any, **options: Any) -> None:
        webs = 1 if options["embedded"] else options["webs"]
        if webs < 1:
            raise CommandError("--webs must be at least 1")
        lab = Lab(
            Path(options["workdir"]) if options["workdir"] else None,
            webs=webs,
            redis=not options["embedded"],
            debug=not options["no_debug"],
        )
        try:
            lab.start()
        except LabError as exc:
            lab.cleanup()
            raise CommandError(str(exc)) from None
        def stop_on_sigterm(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            if lab.redis:
                self.stdout.write(f"redis: {lab.redis_url}")
            for url in lab.urls:
                self.stdout.write(f"web: {url}/")
            self.stdout.write(f"logs and database: {lab.workdir} (Ctrl-C stops everything)")
            self.stdout.flush()
            while True:
                lab.check_alive()
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        except LabError as exc:
            raise CommandError(str(exc)) from None
        finally:
            lab.stop()

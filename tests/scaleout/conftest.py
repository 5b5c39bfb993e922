"""The scale-out set-up for tests: Redis + ``manage.py labworker`` + two Daphne processes.

One set-up per module (``scaleout``), started by ``dashboard.management.commands.scaleout.Lab``
on free ports with a fresh SQLite file; everything it started is terminated at the end, pass or
fail, and a failing test's report carries the tail of every process's log. Browsers are Debian's
Chromium through the plain ``playwright`` package, as in tests/browser (never downloaded).
"""

from collections.abc import Iterator

import pytest

from dashboard.management.commands.scaleout import Lab, redis_server
from tests.conftest import CHROMIUM, NEEDS_CHROMIUM, NEEDS_REDIS


def _missing() -> str:
    if redis_server() is None:
        return NEEDS_REDIS
    if not CHROMIUM.exists():
        return NEEDS_CHROMIUM
    return ""


@pytest.fixture(scope="module")
def scaleout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Redis, one runtime worker and Daphne A and B (``lab.urls``), sharing one database."""
    missing = _missing()
    if missing:
        pytest.skip(missing)
    # Every test opens its rooms from 127.0.0.1: lift the per-address room limits (tested in
    # tests/dashboard) so that the module's tests do not add up to a refusal.
    limits = {
        "LAB_RATE_ROOM_CREATE": "1000/60",
        "LAB_MAX_ROOMS_PER_CLIENT": "1000",
        "LAB_MAX_PRIVATE_ROOMS_PER_CLIENT": "1000",
    }
    lab = Lab(tmp_path_factory.mktemp("scaleout"), webs=2, env=limits)
    with lab:
        yield lab


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test shows what the servers said (they run in other processes)."""
    outcome = yield
    report = outcome.get_result()
    lab = getattr(item, "funcargs", {}).get("scaleout")
    if report.failed and isinstance(lab, Lab):
        report.sections.append(("scale-out processes' logs", lab.logs()))

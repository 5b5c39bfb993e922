# Shared fixtures for the whole suite live here. pytest-django reads DJANGO_SETTINGS_MODULE from
# pyproject.toml; test folders mirror the code (tests/broker/, tests/dashboard/, ...).

import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")

# What a test skips for when a system package is missing, worded alike so that the summary at
# the end of the run can count them: "needs Debian's PACKAGE (apt-get install PACKAGE)".
NEEDS_CHROMIUM = "needs Debian's chromium (apt-get install chromium); .ci/run installs it"
NEEDS_REDIS = "needs Debian's redis-server (apt-get install redis-server); .ci/run installs it"
_NEEDS = re.compile(r"\(apt-get install (?:-y )?([a-z0-9][a-z0-9.+-]*)\)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line for the tests skipped because a system package is missing, and how to get it
    (the browser tests need Chromium, the scale-out ones redis-server, tests/postgres
    PostgreSQL)."""
    missing: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        match = _NEEDS.search(reason)
        if match:
            missing[match[1]] += 1
    if missing:
        counts = ", ".join(
            f"{n} need{'s' if n == 1 else ''} {package}" for package, n in sorted(missing.items())
        )
        terminalreporter.write_line(
            f"Skipped {sum(missing.values())} tests for missing system packages ({counts}): "
            f"to run them too, apt-get install {' '.join(sorted(missing))}",
            yellow=True,
            bold=True,
        )


@contextmanager
def launched_chromium(home: Path) -> Iterator[Browser]:
    """Debian's Chromium through the plain ``playwright`` package (never a downloaded one),
    writing what it keeps even with a temporary profile (~/.config, ~/.cache) under ``home``.

    While it runs, so does playwright's own event loop: ``asyncio.run`` (pytest-asyncio too)
    cannot run beside it. pytest-playwright's session-wide loop clashes with pytest-django and
    pytest-asyncio for that reason; here it lasts one test (``browser``) or one module of
    browser tests (tests/browser/conftest.py).
    """
    if not CHROMIUM.exists():
        pytest.skip(NEEDS_CHROMIUM)
    with pytest.MonkeyPatch.context() as env:
        for var, folder in (
            ("XDG_CONFIG_HOME", "config"),
            ("XDG_CACHE_HOME", "cache"),
            ("XDG_DATA_HOME", "data"),
        ):
            env.setenv(var, str(home / folder))
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            try:
                yield launched
            finally:
                launched.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A Chromium of the test's own (tests/browser shares one per module instead)."""
    with launched_chromium(tmp_path) as launched:
        yield launched

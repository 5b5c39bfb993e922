"""Browser tests: Debian's Chromium driven by the plain ``playwright`` package.

The live server is the embedded set-up (one Daphne running the rooms itself) on a free port,
with a fresh SQLite database migrated first, started by the same launcher as the scale-out
tests (``dashboard.management.commands.scaleout.Lab``). The tests of a module share one Chromium
(starting one took 1 to 2 s per test, about 45 s of a CI run in all); each test finds it with no
page or context of another, and the contexts it opens are closed after it. Chromium never gets
downloaded.
"""

import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser

from dashboard.management.commands.scaleout import ROOT, Lab
from tests.conftest import CHROMIUM, NEEDS_CHROMIUM, launched_chromium


@pytest.fixture(scope="session")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not CHROMIUM.exists():
        pytest.skip(NEEDS_CHROMIUM)
    # Every test opens rooms (and forks) from 127.0.0.1: the per-address limits would refuse
    # them a few tests in. The limits have tests of their own (tests/dashboard).
    limits = {
        "LAB_RATE_ROOM_CREATE": "1000/60",
        "LAB_RATE_FORK": "1000/60",
        "LAB_MAX_ROOMS": "1000",
        "LAB_MAX_ROOMS_PER_CLIENT": "1000",
        "LAB_MAX_PRIVATE_ROOMS_PER_CLIENT": "1000",
    }
    with Lab(tmp_path_factory.mktemp("live"), webs=1, redis=False, env=limits) as lab:
        yield lab.urls[0]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """One Chromium for the module's tests (none of which is an asyncio test: playwright's loop
    runs as long as it does)."""
    with launched_chromium(tmp_path_factory.mktemp("chromium")) as launched:
        yield launched


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The module's Chromium, as each test finds it: no page or context of another test. The
    contexts a test opened (``new_page`` opens one too, with its own cookies and storage) are
    closed after it."""
    assert chromium.is_connected(), "Chromium went away during an earlier test of this module"
    assert not chromium.contexts, "a context of an earlier test is still open"
    try:
        yield chromium
    finally:
        for context in list(chromium.contexts):
            context.close()


@pytest.fixture
def screenshot() -> Callable[..., None]:
    """Save a screenshot into docs/screenshots/ when LAB_SCREENSHOTS=1 (not on every run)."""

    def save(page, name: str, **kwargs) -> None:
        if os.environ.get("LAB_SCREENSHOTS") == "1":
            folder = ROOT / "docs" / "screenshots"
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), **kwargs)

    return save

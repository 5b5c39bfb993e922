"""Browser tests: Debian's Chromium driven by the plain ``playwright`` package.

The live server is the embedded set-up (one Daphne running the rooms itself) on a free port,
with a fresh SQLite database migrated first, started by the same launcher as the scale-out
tests (``dashboard.management.commands.scaleout.Lab``). Each test gets its own browser (the
``browser`` fixture in tests/conftest.py). Chromium never gets downloaded.
"""

import os
from collections.abc import Callable, Iterator

import pytest

from dashboard.management.commands.scaleout import ROOT, Lab
from tests.conftest import CHROMIUM, NEEDS_CHROMIUM


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


@pytest.fixture
def screenshot() -> Callable[..., None]:
    """Save a screenshot into docs/screenshots/ when LAB_SCREENSHOTS=1 (not on every run)."""

    def save(page, name: str, **kwargs) -> None:
        if os.environ.get("LAB_SCREENSHOTS") == "1":
            folder = ROOT / "docs" / "screenshots"
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), **kwargs)

    return save

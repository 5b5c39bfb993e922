# Shared fixtures for the whole suite live here. pytest-django reads DJANGO_SETTINGS_MODULE from
# pyproject.toml; test folders mirror the code (tests/broker/, tests/dashboard/, ...).

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    """Debian's Chromium through the plain ``playwright`` package (never a downloaded one).

    A function-scoped ``sync_playwright``: pytest-playwright's session-wide event loop clashes
    with pytest-django and pytest-asyncio.
    """
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium); .ci/run installs it")
    # Chromium writes into ~/.config and ~/.cache even with a temporary profile.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()

"""The line at the end of a run that says which tests were skipped for a missing system package
(Chromium, redis-server, PostgreSQL) and how to get them (tests/conftest.py)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_pytest(folder: Path, tests: str) -> str:
    """Run pytest on one test file in a folder whose conftest has only the summary hook; its
    output, after checking that the run passed."""
    (folder / "conftest.py").write_text(
        "from tests.conftest import pytest_terminal_summary  # noqa: F401\n"
    )
    (folder / "test_here.py").write_text(tests)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:django", "-q"],
        cwd=folder,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_run_ends_with_what_was_skipped_and_the_apt_get_line(tmp_path: Path) -> None:
    out = run_pytest(
        tmp_path,
        "import pytest\n"
        "from tests.conftest import NEEDS_CHROMIUM, NEEDS_REDIS\n"
        "@pytest.mark.parametrize('n', range(3))\n"
        "def test_browser(n): pytest.skip(NEEDS_CHROMIUM)\n"
        "@pytest.mark.skipif(True, reason=NEEDS_REDIS)\n"
        "def test_redis(): pass\n"
        "def test_postgres(): pytest.skip('no server (apt-get install postgresql)')\n"
        "def test_other(): pytest.skip('not today')\n"
        "def test_runs(): pass\n",
    )
    assert (
        "Skipped 5 tests for missing system packages (3 need chromium, 1 needs postgresql, "
        "1 needs redis-server): to run them too, apt-get install chromium postgresql "
        "redis-server"
    ) in out, out


def test_nothing_is_said_when_nothing_was_skipped_for_a_package(tmp_path: Path) -> None:
    out = run_pytest(
        tmp_path, "import pytest\ndef test_a(): pass\ndef test_b(): pytest.skip('not today')\n"
    )
    assert "2 passed" not in out and "1 passed, 1 skipped" in out, out
    assert "missing system packages" not in out

"""Hypothesis profiles for the property tests (see ``hypothesis_profiles.py``):
``--hypothesis-profile=NAME`` after the folder, or HYPOTHESIS_PROFILE=NAME; ``ci`` by default.

Loading a profile is global to the pytest session; no other test folder uses Hypothesis yet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

# The test modules import ``fault_schedules`` (the schedule strategies and the checked runner)
# and ``hypothesis_profiles`` from this folder; pytest's importlib mode does not put test folders on
# sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hypothesis_profiles


def pytest_configure(config: Any) -> None:
    """The profile named on the command line wins (Hypothesis's plugin has loaded it); else
    HYPOTHESIS_PROFILE, else ``ci``. Called at once when this conftest is registered late (a
    run of the whole suite), and with the other plugins' hooks when it is an initial one."""
    if not config.getoption("hypothesis_profile", None):
        settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    """A property test runs all its examples inside one test, so the suite's per-test timeout
    (pyproject.toml, 120 s) does not fit it: with dev or deep it would be cut off (and reported
    as a flaky failure) long before the examples are done, and even the ci profile's 80 took
    over 120 s on a machine at load 10 (25 s when quiet). The ci profiles get 600 s; the
    others none."""
    ci_sized = settings.default.max_examples <= hypothesis_profiles.COVERAGE_MIN_EXAMPLES
    timeout = 600 if ci_sized else 0
    here = Path(__file__).resolve().parent
    for item in items:
        if Path(str(item.path)).resolve().parent == here:
            item.add_marker(pytest.mark.timeout(timeout))


def _fixed_local_constants() -> None:
    """Hypothesis (6.131 on) now and then draws a literal found in the local modules already
    imported. Which modules those are depends on which other tests ran first in the session, so
    the "same examples on every run" of a derandomized profile were not the same: a coverage
    check (``TxnStats.at_least``) passed alone and failed in the full suite. A derandomized
    profile draws its constants from one fixed set of files instead: the engine's and this
    folder's; a random profile keeps Hypothesis's own choice."""
    try:
        from hypothesis.internal.conjecture import providers
        from hypothesis.internal.constants_ast import Constants, _constants_from_source
    except ImportError:  # pragma: no cover - a Hypothesis without the feature
        return
    if not hasattr(providers, "_get_local_constants"):  # pragma: no cover
        return
    root = Path(__file__).resolve().parents[2]
    files = sorted((root / "broker").glob("*.py")) + sorted(Path(__file__).parent.glob("*.py"))
    pool = Constants()
    for path in files:
        pool |= _constants_from_source(path.read_bytes(), limit=True)
    own = providers._get_local_constants
    providers._get_local_constants = lambda: pool if settings.default.derandomize else own()


_fixed_local_constants()

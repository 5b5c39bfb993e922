"""Hypothesis profiles for the property tests, chosen with HYPOTHESIS_PROFILE.

- ``ci`` (default): a fixed number of examples, derandomized (the same examples on every run,
  so CI is reproducible) and no example database.  The whole folder runs in about a minute.
- ``dev``: more examples, random and remembered in ``.hypothesis/`` so a failure replays first.
- ``long``: a soak run, for a machine with time to spare:
  ``HYPOTHESIS_PROFILE=long .venv/bin/python -m pytest tests/properties``.

Loading a profile is global to the pytest session; no other test folder uses Hypothesis yet.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# The test modules import ``fault_schedules`` (the schedule strategies and the checked runner)
# from this folder; pytest's importlib mode does not put test folders on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

_COMMON = {
    "deadline": None,  # a run's wall time depends on how many events it has, not on a bug
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
settings.register_profile(
    "ci", max_examples=80, derandomize=True, database=None, print_blob=True, **_COMMON
)
settings.register_profile("dev", max_examples=400, **_COMMON)
settings.register_profile("long", max_examples=3_000, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def _fixed_local_constants() -> None:
    """Hypothesis (6.131 on) now and then draws a literal found in the local modules already
    imported. Which modules those are depends on which other tests ran first in the session, so
    the "same examples on every run" of a derandomized profile were not the same: a coverage
    check (``TxnStats.at_least``) passed alone and failed in the full suite. The ``ci`` profile
    draws its constants from one fixed set of files instead: the engine's and this folder's."""
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
    providers._get_local_constants = lambda: pool


if os.environ.get("HYPOTHESIS_PROFILE", "ci") == "ci":
    _fixed_local_constants()

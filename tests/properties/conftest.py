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

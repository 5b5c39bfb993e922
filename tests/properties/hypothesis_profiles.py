"""The Hypothesis profiles of the property tests, and what each one checks.

- ``ci`` (default): 80 examples per property, derandomized (the same examples on every run and
  on every machine) and no example database. The whole folder runs in about a minute.
- ``ci-random``: ``RANDOM_EXAMPLES`` new random examples per property; CI runs the property
  suites a second time with it (``.ci/run``), so every CI run also tries examples nobody has
  tried before. A failure prints its ``@reproduce_failure`` blob (``print_blob``) and the
  schedule as a scenario file: pin it as a regression test. It is a real bug, never a flake.
- ``dev``: 400 random examples, remembered in ``.hypothesis/`` so a failure replays first.
- ``deep``: ``DEEP_EXAMPLES`` random examples per property, for a machine with time to spare
  (tens of minutes): ``./run tests tests/properties --hypothesis-profile=deep``,
  with ``--hypothesis-seed=N`` to repeat a run.

``dev`` and ``deep`` lift the suite's per-test timeout in this folder (conftest.py): one
property test runs all its examples. Choose a profile with ``--hypothesis-profile=NAME`` after
the folder (the profiles are registered when this folder's conftest loads), or with
``HYPOTHESIS_PROFILE=NAME``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

RANDOM_EXAMPLES = 10
DEEP_EXAMPLES = 2_000
# Below this many examples a property's coverage checks ("crashes fired in at least 20% of the
# examples") are left out: with a handful of random examples they would fail by chance.
COVERAGE_MIN_EXAMPLES = 80

_COMMON = {
    "deadline": None,  # a run's wall time depends on how many events it has, not on a bug
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}
settings.register_profile("ci", max_examples=80, derandomize=True, database=None, **_COMMON)
settings.register_profile("ci-random", max_examples=RANDOM_EXAMPLES, database=None, **_COMMON)
settings.register_profile("dev", max_examples=400, **_COMMON)
settings.register_profile("deep", max_examples=DEEP_EXAMPLES, **_COMMON)


def coverage_checked() -> bool:
    """Whether this profile runs enough examples to check that the faults bit."""
    return settings.default.max_examples >= COVERAGE_MIN_EXAMPLES

"""The locks: requirements.lock (serving) and requirements-dev.lock (tests and development).

Each must pin every package its side needs, within pyproject.toml's ranges: what ``./run`` and
``./run tests`` install is the lock alone. Needs are followed through the installed packages'
own metadata (this environment is installed from requirements-dev.lock), extras included: the
``postgres`` extra's ``psycopg[binary]`` needs psycopg-binary too.
"""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(r) for r in PROJECT["dependencies"]]
EXTRAS = {
    name: [Requirement(r) for r in reqs] for name, reqs in PROJECT["optional-dependencies"].items()
}


def pins(lock: str) -> dict[str, str]:
    found = {}
    for line in (ROOT / lock).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line)
        assert match, f"{lock}: not a pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in found, f"{lock} pins {name} twice"
        found[name] = match[2]
    return found


def needs(requirements: list[Requirement]) -> set[str]:
    """Every package these requirements bring in here, following installed metadata."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(r.name, frozenset(r.extras)) for r in requirements if _applies(r, frozenset())]
    while todo:
        name, extras = todo.pop()
        if (canonicalize_name(name), extras) in seen:
            continue
        seen.add((canonicalize_name(name), extras))
        for text in metadata.requires(name) or []:
            requirement = Requirement(text)
            if _applies(requirement, extras):
                todo.append((requirement.name, frozenset(requirement.extras)))
    return {name for name, _ in seen}


def _applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": e}) for e in extras | {""})


RUNTIME_PINS = pins("requirements.lock")
DEV_PINS = pins("requirements-dev.lock")


def test_the_runtime_lock_pins_each_dependency_within_its_range() -> None:
    for requirement in RUNTIME:
        name = canonicalize_name(requirement.name)
        assert name in RUNTIME_PINS, f"requirements.lock lacks {requirement}"
        assert requirement.specifier.contains(RUNTIME_PINS[name], prereleases=True), (
            f"requirements.lock pins {name}=={RUNTIME_PINS[name]}, outside {requirement}"
        )


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_the_dev_lock_pins_each_extra_within_its_range(extra: str) -> None:
    for requirement in [*RUNTIME, *EXTRAS[extra]]:
        name = canonicalize_name(requirement.name)
        assert name in DEV_PINS, f"requirements-dev.lock lacks {requirement} (extra {extra!r})"
        assert requirement.specifier.contains(DEV_PINS[name], prereleases=True), (
            f"requirements-dev.lock pins {name}=={DEV_PINS[name]}, outside {requirement}"
        )


def test_the_locks_agree_and_serving_pins_no_dev_tool() -> None:
    differ = {n: (v, DEV_PINS.get(n)) for n, v in RUNTIME_PINS.items() if DEV_PINS.get(n) != v}
    assert not differ, f"requirements.lock and requirements-dev.lock disagree: {differ}"
    dev_only = needs([r for reqs in EXTRAS.values() for r in reqs]) - needs(RUNTIME)
    assert not dev_only & set(RUNTIME_PINS), "requirements.lock pins test or development tools"


def test_each_lock_holds_everything_its_packages_need() -> None:
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}
    wrong = {n: (v, installed.get(n)) for n, v in DEV_PINS.items() if installed.get(n) != v}
    assert not wrong, f"this environment is not requirements-dev.lock's (pin, installed): {wrong}"
    every_extra = [r for reqs in EXTRAS.values() for r in reqs]
    assert needs(RUNTIME) - set(RUNTIME_PINS) == set(), "requirements.lock misses a dependency"
    missing = needs([*RUNTIME, *every_extra]) - set(DEV_PINS)
    assert missing == set(), f"requirements-dev.lock misses {sorted(missing)}"
    # The extras' own extras count: psycopg[binary] brings psycopg-binary.
    assert "psycopg-binary" in DEV_PINS

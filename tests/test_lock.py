"""constraints.txt, the lock every install takes its versions from (`make lock` writes it),
agrees with pyproject.toml and with what is installed."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")


def _pins() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for number, line in enumerate((ROOT / "constraints.txt").read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = PIN.match(line)
        assert found, f"constraints.txt line {number} is not name==version: {line!r}"
        name = canonicalize_name(found[1])
        assert name not in pins, f"constraints.txt pins {name} twice"
        pins[name] = Version(found[2])
    return pins


def _requirements(*extras: str) -> list[Requirement]:
    """pyproject.toml's dependencies, and those of the extras named (all when none is)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional = project["optional-dependencies"]
    wanted = extras or tuple(optional)
    lines = project["dependencies"] + [line for extra in wanted for line in optional[extra]]
    return [r for r in map(Requirement, lines) if r.marker is None or r.marker.evaluate()]


def test_every_dependency_extras_included_is_pinned_within_its_range() -> None:
    pins = _pins()
    for requirement in _requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in constraints.txt: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's "
            f"{requirement.specifier}: run `make lock`"
        )
        for extra in requirement.extras:
            assert canonicalize_name(f"{name}-{extra}") in pins, f"{requirement}: run `make lock`"


def test_the_installed_versions_are_the_pinned_ones() -> None:
    pins = _pins()
    installed = {
        canonicalize_name(dist.metadata["Name"]): Version(dist.version)
        for dist in importlib.metadata.distributions()
    }
    for requirement in _requirements("dev"):
        assert canonicalize_name(requirement.name) in installed, f"{requirement} is not installed"
    differ = {
        name: f"{installed[name]} installed, {pin} pinned"
        for name, pin in pins.items()
        if name in installed and installed[name] != pin
    }
    assert not differ, f"the virtualenv is not the lock's (make reinstalls it): {differ}"


def test_the_container_and_the_makefile_install_from_the_lock() -> None:
    containerfile = (ROOT / "Containerfile").read_text()
    assert re.search(r"^COPY .*\bconstraints\.txt\b", containerfile, re.MULTILINE)
    assert re.search(r"pip install .*-c constraints\.txt", containerfile)
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt" in makefile and "\nlock:" in makefile

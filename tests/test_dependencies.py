"""The installed dependencies are inside the tested range (pyproject.toml's
bounds, docs/development.rst "Versions"), and so is the lock CI installs
(.ci/constraints.txt)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent


def requirements() -> list[Requirement]:
    """Every dependency and every extra's, whose marker holds here."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    texts = [*project["dependencies"], *(text for extra in extras for text in extra)]
    found = [Requirement(text) for text in texts]
    return [r for r in found if r.marker is None or r.marker.evaluate({"extra": ""})]


def locked() -> dict[str, Version]:
    """The lock's pins for this Python and platform (its markers say which)."""
    versions = {}
    for line in (ROOT / ".ci" / "constraints.txt").read_text().splitlines():
        pin, _, marker = line.partition(";")
        if (
            "==" not in pin
            or pin.startswith("#")
            or not Marker(marker or "python_version > '0'").evaluate()
        ):
            continue
        name, version = pin.strip().split("==")
        versions[canonicalize_name(name)] = Version(version)
    return versions


def outside_range(requirement: Requirement, version: Version, where: str) -> str | None:
    if requirement.specifier.contains(version, prereleases=True):
        return None
    return (
        f"{requirement.name} {version} is {where}, outside the tested range "
        f"{requirement.name}{requirement.specifier} (pyproject.toml): install inside it "
        "(pip install -c .ci/constraints.txt ...), or test the new release and move the bound"
    )


@pytest.mark.parametrize("requirement", requirements(), ids=str)
def test_installed_version_is_in_the_tested_range(requirement: Requirement) -> None:
    try:
        version = Version(metadata.version(requirement.name))
    except metadata.PackageNotFoundError:
        pytest.skip(f"{requirement.name} is not installed (an extra not asked for)")
    problem = outside_range(requirement, version, "installed")
    assert problem is None, problem


def test_the_lock_is_in_the_tested_range_and_pins_every_dependency() -> None:
    pins = locked()
    for requirement in requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not in .ci/constraints.txt: run .ci/lock"
        problem = outside_range(requirement, pins[name], "locked in .ci/constraints.txt")
        assert problem is None, problem


def test_a_version_outside_the_range_is_named_with_the_range() -> None:
    problem = outside_range(Requirement("redis>=8.0,<9"), Version("9.0.0"), "installed")
    assert problem is not None
    assert problem.startswith("redis 9.0.0 is installed, outside the tested range redis<9,>=8.0")

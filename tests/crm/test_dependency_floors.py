"""The dependency floors exclude releases with published advisories, and the venv meets them."""

from __future__ import annotations

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

#: The first release free of the advisories named in the README's "Dependencies" section.
FIXED = {"orjson": Version("3.9.15"), "aiohttp": Version("3.13.3")}


def requirements() -> dict[str, Requirement]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    parsed = (Requirement(text) for text in data["project"]["dependencies"])
    return {requirement.name: requirement for requirement in parsed}


@pytest.mark.parametrize("name", sorted(FIXED))
def test_floor_admits_no_release_before_the_fix(name: str) -> None:
    requirement = requirements()[name]
    floors = [Version(spec.version) for spec in requirement.specifier if spec.operator == ">="]
    assert floors, f"{name} has no floor"
    assert min(floors) >= FIXED[name]
    # The last release before the fix is refused by the specifier itself.
    before = Version(f"{FIXED[name].major}.{FIXED[name].minor}.{FIXED[name].micro - 1}")
    assert not requirement.specifier.contains(before)


@pytest.mark.parametrize("name", sorted(FIXED))
def test_installed_release_meets_the_floor(name: str) -> None:
    assert requirements()[name].specifier.contains(version(name))

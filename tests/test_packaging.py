"""The lowest-versions CI run tests exactly the floors pyproject.toml declares."""

from __future__ import annotations

import re
from pathlib import Path

from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def declared_floors() -> dict[str, Version]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = project["dependencies"] + extras["test"] + extras["bench"]  # what the lowest run installs
    floors = {}
    for req in requirements:
        if ";" in req:  # environment-specific backports (tomli on 3.10) are not pinned
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,<[0-9.]+)?", req)
        assert match, f"requirement {req!r} has no '>=' floor"
        floors[match[1].lower()] = Version(match[2])
    return floors


def lowest_pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / ".ci" / "lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = Version(version)
    return pins


def test_every_floor_is_pinned_in_the_lowest_run():
    floors, pins = declared_floors(), lowest_pins()
    floors.pop("torch")  # the lowest run keeps the local CPU wheel (see .ci/lowest.txt)
    assert floors == pins

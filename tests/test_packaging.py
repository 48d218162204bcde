"""The three descriptions of the environment must agree."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_names() -> set[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(meta["dependencies"])
    for extra in meta.get("optional-dependencies", {}).values():
        reqs += extra
    return {_name(r) for r in reqs}


def _environment_names() -> set[str]:
    names = set()
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s{6}- (?!-e )(\S+)", line)
        if m:
            names.add(_name(m.group(1)))
    return names


def _constraint_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[_name(name)] = version.strip()
    return pins


def test_environment_yml_names_the_same_packages_as_pyproject():
    assert _environment_names() == _pyproject_names()


def test_every_dependency_is_pinned_in_constraints_with_the_same_version():
    pins = _constraint_pins()
    missing = _pyproject_names() - set(pins)
    assert not missing, f"constraints.txt lacks pins for {sorted(missing)}"
    assert pins["torch"] == "2.13.0"
    for line in (ROOT / "environment.yml").read_text().splitlines():
        m = re.match(r"^\s{6}- (?!-e )(\S+)==(\S+)", line)
        if m:
            assert pins[_name(m.group(1))] == m.group(2), f"{m.group(1)} pinned differently"

"""The three descriptions of the environment agree: pyproject.toml, environment.yml, constraints.txt."""

from __future__ import annotations

import re
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONDA_TO_PIP = {"pytorch": "torch"}  # conda-forge names that differ from PyPI's
NOT_PACKAGES = {"python", "pip"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement.strip(), maxsplit=1)[0].lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_names() -> set[str]:
    project = _pyproject()["project"]
    names = {_name(r) for r in project["dependencies"]}
    for extra in project["optional-dependencies"].values():
        names |= {_name(r) for r in extra}
    return names


def _conda_dependencies() -> list[str]:
    """The top-level conda entries of environment.yml (not the nested pip list)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("dependencies:") + 1
    return [m.group(1) for line in lines[start:] if (m := re.match(r"^  - ([^\s:]+)\s*$", line))]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line):
            pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_lists_exactly_the_packages_pyproject_declares():
    conda = {CONDA_TO_PIP.get(_name(d), _name(d)) for d in _conda_dependencies()} - NOT_PACKAGES
    assert conda == _pyproject_names()


def test_environment_yml_installs_this_package_with_pip():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- -e \.\s*$", text, re.M), "environment.yml's pip section must install this package"


def test_environment_yml_python_satisfies_requires_python():
    python = next(d for d in _conda_dependencies() if d.startswith("python="))
    major, minor = map(int, python.split("=")[1].split(".")[:2])
    lowest = re.search(r">=\s*(\d+)\.(\d+)", _pyproject()["project"]["requires-python"])
    assert (major, minor) >= (int(lowest.group(1)), int(lowest.group(2)))


def test_torch_and_torchvision_are_pinned_in_constraints_not_in_pyproject():
    pins = _pins()
    assert {"torch", "torchvision"} <= set(pins)
    for requirement in _pyproject()["project"]["dependencies"]:
        assert "==" not in requirement, f"pin {requirement!r} in constraints.txt, not as a hard requirement"


def test_pins_satisfy_pyproject_lower_bounds():
    pins = _pins()
    for requirement in _pyproject()["project"]["dependencies"]:
        name = _name(requirement)
        if name in pins and (m := re.search(r">=\s*([\d.]+)", requirement)):
            pinned = tuple(int(p) for p in re.match(r"[\d.]+", pins[name]).group(0).rstrip(".").split("."))
            lower = tuple(int(p) for p in m.group(1).split("."))
            assert pinned >= lower, f"{name}=={pins[name]} in constraints.txt is below {requirement!r}"


@pytest.mark.skipif((Path(sys.prefix) / "conda-meta").exists(), reason="conda environments take conda's builds")
@pytest.mark.parametrize("package", ["torch", "torchvision"])
def test_pip_environment_has_the_pinned_version(package):
    assert version(package).split("+")[0] == _pins()[package]

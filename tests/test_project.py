"""Project hygiene: environment.yml and pyproject.toml list the same packages."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _names(reqs):
    return {re.split(r"[<>=!\[ ]", r.strip())[0].lower() for r in reqs if r.strip()}


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(project["dependencies"]) | _names(project["optional-dependencies"]["dev"])
    env = (ROOT / "environment.yml").read_text().split("dependencies:")[1]
    listed = _names(re.findall(r"^\s+- ([A-Za-z][^\s#]*)\s*$", env, flags=re.M)) - {"python", "pip", "pip:"}
    assert listed == wanted


def test_torch_is_pinned_everywhere():
    pins = {"pyproject.toml", "environment.yml", "Makefile"}
    for name in pins:
        assert "torch==2.13.0" in (ROOT / name).read_text(), name

"""Project hygiene: environment.yml and pyproject.toml list the same packages."""
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def _names(reqs):
    return {re.split(r"[<>=!\[ ]", r.strip())[0].lower() for r in reqs if r.strip()}


def test_environment_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = _names(project["dependencies"]).union(*(_names(r) for r in extras.values())) - {"gocor"}
    env = (ROOT / "environment.yml").read_text().split("dependencies:")[1]
    listed = _names(re.findall(r"^\s+- ([A-Za-z][^\s#]*)\s*$", env, flags=re.M)) - {"python", "pip", "pip:"}
    assert listed == wanted


def test_torch_is_pinned_where_the_kit_installs_it():
    for name in ("environment.yml", "Makefile"):
        assert "torch==2.13.0" in (ROOT / name).read_text(), name
    make = (ROOT / "Makefile").read_text()
    assert make.index("install -q torch==2.13.0") < make.index("install -q -e '.[lab,teach,dev]'")


def test_the_layer_installs_alone():
    """Core dependencies: torch as a range (any 2.x from 2.1), nothing else; the lab, the
    teaching stack and the test tools are extras, and the Makefile installs all of them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == ["torch>=2.1,<3"]
    assert set(project["optional-dependencies"]) == {"lab", "teach", "dev", "cluster"}
    assert (ROOT / "gocor" / "py.typed").exists()
    # the layer's modules import torch and the standard library only
    # (numpy: only inside compat.load_reference, for the reference vectors)
    imported = set()
    for p in (ROOT / "gocor").glob("*.py"):
        for a, b in re.findall(r"^\s*(?:from\s+(\w+)\S*\s+import|import\s+(\w+))", p.read_text(), flags=re.M):
            imported.add(a or b)
    assert "torch" in imported
    assert imported - set(sys.stdlib_module_names) - {"torch", "numpy"} == set()


def test_version_comes_from_the_package_metadata():
    from importlib.metadata import version

    import gocor
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert gocor.__version__ == version("gocor") == project["version"]

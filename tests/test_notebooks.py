"""Committed notebooks: outputs present, no errors, in order, one parameters cell on top;
and nbval really compares the checked outputs."""
import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]*_*.ipynb"))
SANITIZE = Path(__file__).parent.parent / "notebooks" / "sanitize.cfg"


def test_the_sequence_exists():
    names = [p.name.split("_")[0] for p in NOTEBOOKS]
    assert names == ["01", "02", "03", "04a", "04b", "05", "06", "07"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    nb = json.loads(path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == [0], "exactly one parameters-tagged cell, the first code cell"
    counts = [c["execution_count"] for c in code if "".join(c["source"]).strip()]
    assert None not in counts, "every code cell was executed"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), "executed top to bottom"
    for c in code:
        for o in c.get("outputs", []):
            assert o["output_type"] != "error", f"error output: {o.get('ename')}"
            data = o.get("data", {})
            text = "".join(o.get("text", "")) + "".join(data.get("text/plain", ""))
            leaked = ("<Figure size" in text or "<matplotlib." in text) and "image/png" not in data
            assert not leaked, "a plotting cell leaks '<Figure ...>' text"
    checked = [c for c in code if "NBVAL_CHECK_OUTPUT" in "".join(c["source"])]
    assert checked and all(c["outputs"] for c in checked), "checked cells have stored outputs"
    for c in checked:
        assert all(o["output_type"] == "stream" for o in c["outputs"]), "checked cells print text only"
    assert any(o for c in code for o in c.get("outputs", []) if "image/png" in o.get("data", {})), "has figures"


def _probe(tmp_path, name: str, stored: str) -> Path:
    """A one-cell notebook whose checked cell prints 4.2, stored as having printed ``stored``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(round(6 * 7 / 10, 1))")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored)]
    cell.execution_count = 1
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def test_nbval_fails_on_a_wrong_stored_value(tmp_path):
    """Both probes in one nbval run (one pytest start): the right stored value passes, the wrong
    one fails, each by its own test id."""
    right, wrong = _probe(tmp_path, "probe_right", "4.2\n"), _probe(tmp_path, "probe_wrong", "4.3\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "--nbval-lax", "--nbval-sanitize-with", str(SANITIZE),
                          right.name, wrong.name], capture_output=True, text=True, cwd=tmp_path)
    outcomes = {line.split()[1].split("::")[0]: line.split()[0] for line in run.stdout.splitlines()
                if line.startswith(("PASSED ", "FAILED ", "ERROR "))}
    assert outcomes == {right.name: "PASSED", wrong.name: "FAILED"}, run.stdout[-2000:]
    assert run.returncode == 1

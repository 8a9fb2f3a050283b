"""make reproduce: the ablation into build/, notebook 06 pointed at it, the summary against shipped."""
import json

import nbformat
import papermill

from gocor.tools import reproduce as rp


def test_reproduce_runs_the_ablation_then_the_notebooks_on_it(tmp_path, monkeypatch):
    books = tmp_path / "notebooks"
    books.mkdir()
    for name in ("05_a.ipynb", "06_b.ipynb"):
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell("# NBVAL_CHECK_OUTPUT\nprint(1)")]
        nbformat.write(nb, books / name)
    calls = {}

    def fake_execute(src, dst, parameters, **kw):
        calls[src.rsplit("/", 1)[-1]] = parameters
        nb = nbformat.read(src, as_version=4)
        nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
        nbformat.write(nb, dst)

    monkeypatch.setattr(rp, "NOTEBOOKS", books)
    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    out = tmp_path / "build"
    rows = rp.reproduce(out, profile="tiny", variants=("corr",), seeds=1)
    assert [r["notebook"] for r in rows] == ["05_a.ipynb", "06_b.ipynb"] and rows[0]["checked"] == ["1"]
    assert calls["05_a.ipynb"] == {} and calls["06_b.ipynb"] == {"RESULTS": str((out / "ablation").resolve())}
    result = json.loads((out / "ablation" / "corr-seed0" / "result.json").read_text())
    assert result["profile"] == "tiny" and (out / "ablation" / "objectives.json").exists()
    summary = (out / "summary.md").read_text()
    assert "against the shipped one" in summary and "| `corr` | standard aepe |" in summary
    stamp = (out / "ablation" / "corr-seed0" / "result.json").stat().st_mtime_ns
    rp.reproduce(out, profile="tiny", variants=("corr",), seeds=1)          # resumable: nothing retrained
    assert (out / "ablation" / "corr-seed0" / "result.json").stat().st_mtime_ns == stamp

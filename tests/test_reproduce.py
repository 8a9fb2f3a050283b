"""make reproduce: the ablation into build/, notebook 06 pointed at it, the summary against shipped."""
import json
import math

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
    rows = rp.reproduce(out, profile="tiny", variants=("corr",), seeds=(0,), all_runs=True)
    assert [r["notebook"] for r in rows] == ["05_a.ipynb", "06_b.ipynb"] and rows[0]["checked"] == ["1"]
    assert calls["05_a.ipynb"] == {} and calls["06_b.ipynb"] == {"RESULTS": str((out / "ablation").resolve())}
    result = json.loads((out / "ablation" / "corr-seed0" / "result.json").read_text())
    assert result["profile"] == "tiny" and (out / "ablation" / "objectives.json").exists()
    summary = (out / "summary.md").read_text()
    assert "against the shipped ones" in summary and "| `corr` | standard aepe |" in summary
    assert "not shipped" in summary                  # no shipped run of the tiny profile to check against
    stamp = (out / "ablation" / "corr-seed0" / "result.json").stat().st_mtime_ns
    rp.reproduce(out, profile="tiny", variants=("corr",), seeds=(0,), all_runs=True)   # resumable: nothing retrained
    assert (out / "ablation" / "corr-seed0" / "result.json").stat().st_mtime_ns == stamp


def _run(variant, seed, aepe, profile="quick", wall=100.0):
    return {"variant": variant, "seed": seed, "profile": profile, "wall_time_s": wall,
            "metrics": {"standard": {"aepe": aepe, "pck5": 0.9}}}


def test_seed_check_compares_run_by_run():
    shipped = [_run("corr", 0, 3.0), _run("corr", 1, 2.0), _run("gocor", 0, 2.5)]
    text, worst = rp.seed_check([_run("corr", 0, 3.0 + 3e-5)], shipped)
    assert text.startswith("**Reproduced**") and abs(worst - 1e-5) < 1e-9
    text, worst = rp.seed_check([_run("gocor", 0, 2.6), _run("init_zeros", 0, 1.0)], shipped)
    assert text.startswith("**Not reproduced") and abs(worst - 0.04) < 1e-9 and "`init_zeros-seed0` (quick): not shipped" in text


def test_seed_check_never_says_reproduced_without_a_comparison():
    """A fresh run with no shipped twin (another profile, variant or seed) is named in the verdict
    line, and with nothing compared at all the verdict is not "Reproduced"."""
    shipped = [_run("corr", 0, 3.0)]
    text, worst = rp.seed_check([_run("corr", 0, 3.0, profile="full")], shipped)
    verdict = text.split("\n")[0]
    assert verdict.startswith("**Nothing checked**") and "`corr-seed0` (full)" in verdict and worst == 0.0
    text, _ = rp.seed_check([_run("corr", 0, 3.0), _run("gocor", 0, 2.0)], shipped)
    verdict = text.split("\n")[0]
    assert verdict.startswith("**Reproduced**: every metric of every fresh run compared digit by digit")
    assert "`gocor-seed0` (quick)" in verdict
    text, _ = rp.seed_check([_run("corr", 0, 3.0)], shipped)
    assert "Not checked" not in text and "every fresh run" in text


def test_seed_check_on_another_machine_compares_with_the_seeds_spread():
    """A fresh run trained where float rounding differs (here AVX2 against the shipped AVX512) is not
    held to the last digit: its geometric-mean AEPE must lie in the prediction interval of one more
    seed from the shipped runs of its variant with *other* seeds."""
    shipped = [_run("corr", s, a) for s, a in enumerate((3.0, 3.2, 2.9, 3.1, 3.05))]
    other = dict(rp.SHIPPED_MACHINE, cpu_capability="AVX2")
    fresh = dict(_run("corr", 0, 3.08), machine=other)
    text, worst = rp.seed_check([fresh], shipped)
    verdict = text.split("\n")[0]
    assert verdict.startswith("**Reproduced within the shipped seeds' spread**") and "AVX2" in verdict
    assert "Bonferroni over the 1 runs" in verdict and worst == 0.0
    # the interval comes from seeds 1-4 (log scale), not seed 0's own run
    from gocor.lab.runs.stats import prediction_interval
    pi = prediction_interval([math.log(a) for a in (3.2, 2.9, 3.1, 3.05)])
    assert f"| 3.080 | 3.000 | {math.exp(pi.mean):.3f} (4) | {math.exp(pi.low):.3f}–{math.exp(pi.high):.3f} | yes |" in text
    text, _ = rp.seed_check([dict(fresh, metrics={"standard": {"aepe": 4.5}})], shipped)
    assert text.startswith("**Outside the shipped seeds' spread**: 1 of 1 fresh runs (`corr-seed0`)") and "**no**" in text
    # the machine the shipped runs were trained on: digit by digit; failing that, the spread as well
    text, worst = rp.seed_check([dict(fresh, machine=dict(rp.SHIPPED_MACHINE))], shipped)
    assert text.startswith("**Not reproduced to float rounding**") and math.isclose(worst, 0.08 / 3.0)
    assert "**Reproduced within the shipped seeds' spread**" in text and "both recorded on" in text
    # a thread count other than the shipped runs' is another rounding too
    text, _ = rp.seed_check([dict(fresh, machine=dict(rp.SHIPPED_MACHINE, threads=16))], shipped)
    assert text.startswith("**Reproduced within the shipped seeds' spread**") and "16 threads" in text


def test_seed_check_names_what_it_could_not_check():
    other = dict(rp.SHIPPED_MACHINE, cpu_capability="AVX2")
    fresh = dict(_run("corr", 0, 30.0), machine=other)
    # one other seed: no spread to compare with, and the verdict says so instead of "Reproduced"
    text, _ = rp.seed_check([fresh], [_run("corr", 0, 3.0), _run("corr", 1, 3.1)])
    assert text.startswith("**Nothing checked**") and "`corr-seed0` (1 shipped run(s) of other seeds; two are needed)" in text
    # a split the other seeds lack is left out, and one none has leaves the run unchecked
    lacking = [dict(_run("corr", s, 3.0), metrics={"dynamic": {"aepe": 3.0 + s / 10}}) for s in range(4)]
    text, _ = rp.seed_check([fresh], lacking)
    assert "Reproduced" not in text and "no split in common" in text
    # the shipped twin without the split: a dash, no crash
    shipped = [dict(_run("corr", 0, 3.0), metrics={"dynamic": {"aepe": 3.0}})] + [_run("corr", s, 3.0 + s / 20) for s in (1, 2, 3)]
    text, _ = rp.seed_check([dict(fresh, metrics={"standard": {"aepe": 3.07}})], shipped)
    assert text.startswith("**Reproduced within") and "| 3.070 | – |" in text
    # runs from two machines: both are named
    arm = dict(rp.SHIPPED_MACHINE, cpu_capability="DEFAULT", machine="aarch64")
    shipped = [_run(v, s, 3.0 + s / 20) for v in ("corr", "gocor") for s in range(4)]
    text, _ = rp.seed_check([dict(fresh, metrics={"standard": {"aepe": 3.07}}),
                             dict(_run("gocor", 0, 3.07), machine=arm)], shipped)
    assert "AVX2, x86_64" in text.split("\n")[0] and "DEFAULT, aarch64" in text.split("\n")[0]


def test_reproduce_refuses_an_unwritable_build_dir_before_any_work(tmp_path):
    from gocor.lab.errors import UserError
    blocker = tmp_path / "file"
    blocker.write_text("x")
    import pytest
    with pytest.raises(UserError, match="cannot make"):
        rp.reproduce(blocker / "build", profile="tiny", variants=("corr",), seeds=(0,))
    with pytest.raises(UserError, match="threads"):
        rp.reproduce(tmp_path / "build", profile="tiny", variants=("corr",), seeds=(0,), threads=0)
    assert not (tmp_path / "build" / "ablation" / "corr-seed0").exists()


def test_estimate_from_shipped_wall_times(tmp_path):
    shipped = [_run("corr", s, 3.0, wall=w) for s, w in ((0, 90.0), (1, 100.0), (2, 700.0))]
    shipped.append(_run("gocor", 0, 2.0, wall=260.0))
    est = rp.estimate_s([("corr", 0), ("gocor", 0)], tmp_path, "quick", shipped)
    from gocor.lab.runs.train import PROFILES
    pool = rp.POOL_S_PER_PAIR * PROFILES["quick"].pool_size
    assert est == 100.0 + 260.0 + 2 * rp.EVALUATE_S_PER_RUN + pool + rp.NOTEBOOKS_S     # medians, not means
    (tmp_path / "pairs").mkdir()
    (tmp_path / "corr-seed0").mkdir()
    (tmp_path / "corr-seed0" / "result.json").write_text("{}")                        # finished: free
    assert rp.estimate_s([("corr", 0), ("gocor", 0)], tmp_path, "quick", shipped) == 260.0 + rp.EVALUATE_S_PER_RUN + rp.NOTEBOOKS_S
    assert rp.estimate_s([("corr", 0)], tmp_path, "full", shipped) is None


def test_default_is_table6_seed0_and_bounded():
    """The default reproduction fits the README's 30 minutes by the shipped wall times."""
    from gocor.lab.runs import report
    from gocor.lab.runs.ablate import TABLE6
    shipped = report.load_runs(rp.SHIPPED)
    est = rp.estimate_s([(v, 0) for v in TABLE6], rp.ROOT / "build" / "does-not-exist", "quick", shipped)
    assert est is not None and est < 25 * 60

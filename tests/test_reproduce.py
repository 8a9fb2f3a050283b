"""make reproduce: the ablation into build/, notebook 06 pointed at it, the summary against shipped."""
import json
import math
import statistics
from pathlib import Path

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
    assert result["machine"]["threads"] == rp.SHIPPED_MACHINE["threads"]      # trained as the shipped runs were
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
    text, worst, _ = rp.seed_check([_run("corr", 0, 3.0 + 3e-5)], shipped)
    assert text.startswith("**Reproduced**") and abs(worst - 1e-5) < 1e-9
    text, worst, _ = rp.seed_check([_run("gocor", 0, 2.6), _run("init_zeros", 0, 1.0)], shipped)
    assert text.startswith("**Not reproduced") and abs(worst - 0.04) < 1e-9 and "`init_zeros-seed0` (quick): not shipped" in text


def test_seed_check_never_says_reproduced_without_a_comparison():
    """A fresh run with no shipped twin (another profile, variant or seed) is named in the verdict
    line, and with nothing compared at all the verdict is not "Reproduced"."""
    shipped = [_run("corr", 0, 3.0)]
    text, worst, _ = rp.seed_check([_run("corr", 0, 3.0, profile="full")], shipped)
    verdict = text.split("\n")[0]
    assert verdict.startswith("**Nothing checked**") and "`corr-seed0` (full)" in verdict and worst == 0.0
    text, _, _ = rp.seed_check([_run("corr", 0, 3.0), _run("gocor", 0, 2.0)], shipped)
    verdict = text.split("\n")[0]
    assert verdict.startswith("**Reproduced**: every metric compared digit by digit")
    assert "`gocor-seed0` (quick)" in verdict
    text, _, _ = rp.seed_check([_run("corr", 0, 3.0)], shipped)
    assert "Not checked" not in text and "every metric compared" in text


SPLITS = ("standard", "dynamic", "repetitive")


def _runs(variant, seed, aepes, machine=None):
    """A run on several splits; ``aepes`` one AEPE per split of SPLITS."""
    run = {"variant": variant, "seed": seed, "profile": "quick", "wall_time_s": 1.0,
           "metrics": {sp: {"aepe": a, "pck5": 0.9} for sp, a in zip(SPLITS, aepes)}}
    return dict(run, machine=machine) if machine else run


SHIPPED5 = [_runs("corr", s, (3.0 + d, 4.0 + d, 5.0 - d)) for s, d in enumerate((0.0, 0.2, -0.1, 0.1, 0.05))]
AVX2 = dict(rp.SHIPPED_MACHINE, cpu_capability="AVX2")


def _geo(run):
    """log of the geometric-mean AEPE over SPLITS."""
    return statistics.mean(math.log(run["metrics"][sp]["aepe"]) for sp in SPLITS)


def _interval(seeds, m=1):
    from gocor.lab.runs.stats import prediction_interval
    return prediction_interval([_geo(run) for run in seeds], 1 - 0.05 / m)


def test_seed_check_on_another_machine_compares_with_the_seeds_spread():
    """A fresh run trained where float rounding differs (here AVX2 against the shipped AVX512) is not
    held to the last digit: its geometric-mean AEPE over the splits must lie in the prediction
    interval of one more seed from the shipped runs of its variant with *other* seeds (Bonferroni
    over the runs)."""
    fresh = _runs("corr", 0, (3.08, 4.1, 4.95), AVX2)
    check = rp.seed_check([fresh], SHIPPED5)
    verdict = check.text.split("\n")[0]
    assert verdict.startswith("**Reproduced within the shipped seeds' spread**") and "AVX2" in verdict
    assert "Bonferroni over the 1 runs" in verdict and check.worst == 0.0 and not check.failed
    pi = _interval(SHIPPED5[1:])            # seeds 1-4, not seed 0's own run; log scale, three splits
    assert (f"| 3 | {math.exp(_geo(fresh)):.3f} | {math.exp(_geo(SHIPPED5[0])):.3f} | {math.exp(pi.mean):.3f} (4) | "
            f"{math.exp(pi.low):.3f}–{math.exp(pi.high):.3f} | yes |") in check.text
    # one split far off moves the geometric mean out
    check = rp.seed_check([_runs("corr", 0, (3.08, 4.1, 9.0), AVX2)], SHIPPED5)
    assert check.text.startswith("**Outside the shipped seeds' spread**: 1 of 1 fresh runs (`corr-seed0`)")
    assert "**no**" in check.text and check.failed
    # Bonferroni over the runs compared: two runs widen each interval
    two = rp.seed_check([fresh, _runs("corr", 1, (3.2, 4.2, 4.8), AVX2)], SHIPPED5 + [_runs("corr", 5, (3.0, 4.0, 5.0))])
    assert "Bonferroni over the 2 runs" in two.text
    others = [r for r in SHIPPED5 + [_runs("corr", 5, (3.0, 4.0, 5.0))] if r["seed"] != 0]
    wide = _interval(others, m=2)
    assert f"{math.exp(wide.low):.3f}–{math.exp(wide.high):.3f}" in two.text
    # the machine the shipped runs were trained on: digit by digit; failing that, the spread as well
    check = rp.seed_check([dict(fresh, machine=dict(rp.SHIPPED_MACHINE, cpu_model="x"))], SHIPPED5)
    assert check.text.startswith("**Not reproduced to float rounding**") and math.isclose(check.worst, 0.08 / 3.0)
    assert "**Reproduced within the shipped seeds' spread**" in check.text and "both recorded on" in check.text
    assert check.failed                     # on the recording machine the digits must agree
    # a thread count other than the shipped runs' is another rounding too
    check = rp.seed_check([dict(fresh, machine=dict(rp.SHIPPED_MACHINE, threads=16))], SHIPPED5)
    assert check.text.startswith("**Reproduced within the shipped seeds' spread**") and "16 threads" in check.text


def test_seed_check_never_passes_a_broken_run():
    """A NaN or non-positive AEPE, a NaN in any metric, or no metrics: failed, whatever else could be
    compared (also where no interval exists: too few seeds, or a variant shipped with three)."""
    for bad in (math.nan, 0.0, -1.0):
        for machine, shipped in ((None, SHIPPED5), (AVX2, SHIPPED5), (AVX2, SHIPPED5[:3])):
            check = rp.seed_check([_runs("corr", 0, (3.0, 4.0, bad), machine)], shipped)
            assert check.failed and check.text.startswith("**Broken runs**: `corr-seed0` (repetitive aepe not a finite positive number)")
    nan_pck = _runs("corr", 0, (3.0, 4.0, 5.0), AVX2)
    nan_pck["metrics"]["standard"]["pck5"] = math.nan
    assert rp.seed_check([nan_pck], SHIPPED5).failed
    empty = dict(_runs("corr", 0, (3.0, 4.0, 5.0), AVX2), metrics={})
    check = rp.seed_check([empty], SHIPPED5)
    assert check.failed and "`corr-seed0` (no metrics)" in check.text


def test_seed_check_names_what_it_could_not_check():
    fresh = _runs("corr", 0, (30.0, 40.0, 50.0), AVX2)
    # three other seeds: too few for a meaningful interval, and the verdict says so instead of "Reproduced"
    check = rp.seed_check([fresh], SHIPPED5[:4])
    assert check.text.startswith("**Nothing checked**") and not check.failed
    assert "`corr-seed0` against the seeds' spread (3 shipped run(s) of other seeds; 4 are needed)" in check.text
    # a split one other seed lacks is left out, and named
    lacking = [dict(r, metrics={k: v for k, v in r["metrics"].items() if k != "dynamic" or r["seed"] != 3})
               for r in SHIPPED5]
    check = rp.seed_check([_runs("corr", 0, (3.0, 99.0, 5.0), AVX2)], lacking)
    assert check.text.startswith("**Reproduced within") and "`corr-seed0` on dynamic (not every other shipped seed has it)" in check.text
    assert "| 2 |" in check.text
    # the shipped twin without a split: a dash, no crash
    twin_lacks = [dict(SHIPPED5[0], metrics={"standard": {"aepe": 3.0}})] + SHIPPED5[1:]
    check = rp.seed_check([_runs("corr", 0, (3.05, 4.05, 5.0), AVX2)], twin_lacks)
    assert check.text.startswith("**Reproduced within") and "| – |" in check.text
    # digit by digit: a split the fresh run lost fails, and is named
    check = rp.seed_check([dict(_runs("corr", 0, (3.0, 4.0, 5.0)), metrics={"standard": {"aepe": 3.0}})], SHIPPED5)
    assert check.failed and "**Incomplete**" in check.text and "`corr-seed0` dynamic (fresh run lacks it)" in check.text
    # nothing in common with its twin: named, not "Reproduced"
    check = rp.seed_check([dict(_runs("corr", 0, (3.0, 4.0, 5.0)), metrics={"standard": {"epe": 3.0}})], SHIPPED5)
    assert "Reproduced" not in check.text and "`corr-seed0` (no metric in common with its shipped run)" in check.text
    # a seed that was not shipped: against every shipped seed of its variant
    check = rp.seed_check([_runs("corr", 7, (3.05, 4.05, 5.0), AVX2)], SHIPPED5)
    assert check.text.startswith("**Reproduced within") and "(5) |" in check.text and not check.failed
    # runs from two machines: both are named
    arm = dict(rp.SHIPPED_MACHINE, cpu_capability="DEFAULT", machine="aarch64")
    shipped = SHIPPED5 + [_runs("gocor", s, (2.0 + s / 20, 3.0, 4.0)) for s in range(5)]
    check = rp.seed_check([_runs("corr", 0, (3.05, 4.05, 5.0), AVX2), _runs("gocor", 0, (2.05, 3.0, 4.0), arm)], shipped)
    assert "AVX2, x86_64" in check.text.split("\n")[0] and "DEFAULT, aarch64" in check.text.split("\n")[0]


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


def test_the_command_exits_1_when_the_check_fails(monkeypatch, capsys):
    """Everything is written first; the exit status then says the check failed (scripts and CI)."""
    import pytest
    from gocor.tools.cli import main

    def failing(*args, **kwargs):
        raise rp.NotReproduced("the fresh runs do not reproduce the shipped ones; see build/summary.md")
    monkeypatch.setattr(rp, "reproduce", failing)
    with pytest.raises(SystemExit) as exit_:
        main(["reproduce", "--profile", "tiny"])
    assert exit_.value.code == 1 and "see build/summary.md" in capsys.readouterr().err


def test_reproduce_raises_after_writing_when_a_run_is_outside(tmp_path, monkeypatch):
    import pytest
    (tmp_path / "none").mkdir()
    monkeypatch.setattr(rp, "NOTEBOOKS", tmp_path / "none")            # no notebook to execute
    monkeypatch.setattr(rp, "run_ablation", lambda out, profile, runs: [])
    bad = _runs("corr", 0, (math.nan, 4.0, 5.0), AVX2)
    from gocor.lab.runs import report
    shipped = rp.shipped_folder("quick")
    monkeypatch.setattr(report, "load_runs", lambda folder: SHIPPED5 if Path(folder) == shipped else [bad])
    with pytest.raises(rp.NotReproduced, match="summary.md"):
        rp.reproduce(tmp_path / "build", profile="quick", variants=("corr",), seeds=(0,))
    assert "**Broken runs**" in (tmp_path / "build" / "summary.md").read_text()

"""Ablation tables and verdicts on made-up runs (known answers)."""
import json

from gocor.lab.runs import report


def _runs(aepe: dict[str, list[float]]) -> list[dict]:
    return [{"variant": v, "seed": s, "metrics": {"standard": {"aepe": a, "pck5": 1 - a / 10}}}
            for v, xs in aepe.items() for s, a in enumerate(xs)]


def test_table6_relative_changes_and_verdicts():
    runs = _runs({"corr": [4.0, 4.0, 4.1], "global_lr": [4.0, 4.1, 4.0], "global": [5.0, 5.1, 5.0],
                  "gocor": [2.0, 2.0, 2.1]})
    text, steps = report.table6(runs, "standard")
    assert text.count("\n| `") == 4 and "+24.8%" in text and "-59.6%" in text
    # paired by seed: +0.0/0.0/-0.1 is noise; +1.0/+1.0/+0.9 and -3.0/-3.1/-2.9 are resolved
    assert [s["aepe"] for s in steps] == ["not resolved", "worse", "better"]
    assert steps[0]["aepe_ci"][0] < 0 < steps[0]["aepe_ci"][1] and steps[1]["aepe_ci"][0] > 0
    lines = report.verdict_lines(steps, "standard").splitlines()
    assert "not resolved" in lines[0] and "disagrees" in lines[1] and "agrees with the paper (better)" in lines[2]
    paper = report.PAPER_TABLE6
    assert abs(steps[2]["paper_aepe_change_pct"] - 100 * (paper["gocor"]["kitti15_aepe"] / paper["global"]["kitti15_aepe"] - 1)) < 1e-12


def test_load_runs_orders_variants_and_skips_missing_splits(tmp_path):
    for v, s in (("gocor", 1), ("corr", 0), ("gocor", 0)):
        record = _runs({v: [3.0]})[0] | {"seed": s, "schema": "gocor-kit-run/1", "profile": "tiny", "train_config": {},
                                         "wall_time_s": 1.0, "device": "cpu", "commit": "unknown", "dirty": None}
        (tmp_path / f"{v}-seed{s}.json").write_text(json.dumps(record))
    runs = report.load_runs(tmp_path)
    assert [(r["variant"], r["seed"]) for r in runs] == [("corr", 0), ("gocor", 0), ("gocor", 1)]
    assert report.values(runs, "gocor", "dynamic", "aepe") == []
    assert "not run on common seeds" in report.contrast(runs, "corr", "corr_post", "standard")
    assert "gocor is not resolved" in report.contrast(runs, "corr", "gocor", "standard")    # one seed each


def _pair_runs(shift: dict[str, float], seeds: int = 3, pairs: int = 40, noise: float = 0.5) -> list[dict]:
    """Per-pair AEPE = pair difficulty + a variant's shift + noise, the record means their means."""
    import numpy as np
    rng = np.random.default_rng(0)
    base = rng.uniform(2, 6, pairs)
    runs = []
    for v, d in shift.items():
        for s in range(seeds):
            x = base + d + 0.1 * s + noise * rng.standard_normal(pairs)
            runs.append({"variant": v, "seed": s, "wall_time_s": 10.0,
                         "metrics": {"large_motion": {"aepe": float(x[:-1].mean()), "pck5": 1 - float(x[:-1].mean()) / 10}},
                         "per_pair": {"large_motion": {"aepe": [float(a) for a in x[:-1]] + [None],
                                                       "pck5": [1 - float(a) / 10 for a in x[:-1]] + [None]}}})
    return runs


class TestBootstrapVerdicts:
    def test_bootstrap_beside_the_t_interval(self):
        steps = report.table6(_pair_runs({"corr": 0.0, "global_lr": 0.0, "global": -1.0, "gocor": -1.0}),
                              "large_motion")[1]
        assert [s["aepe"] for s in steps] == ["not resolved", "better", "not resolved"]
        lo, hi = steps[1]["aepe_boot_ci"]
        assert lo < -1.0 < hi < 0 and steps[1]["aepe_ci"][1] < 0

    def test_a_verdict_needs_both_intervals(self):
        from gocor.lab.runs.stats import Interval
        t, wide = Interval(-1.0, -1.5, -0.5, 5), Interval(-1.0, -2.0, 0.2, 5)
        assert report.joint_verdict(t, None, True) == "better"
        assert report.joint_verdict(t, wide, True) == "not resolved"
        assert report.joint_verdict(t, Interval(-1.0, -1.8, -0.1, 5), True) == "better"

    def test_protocol2_report(self):
        from gocor.lab.runs import protocol2
        runs = _pair_runs({"corr": 0.0, "global_lr": 0.0, "global": -1.0, "gocor": -1.0, "no_global": 6.0})
        text = protocol2.markdown(runs)
        assert "**Table 6 on `large_motion`**" in text and "| `no_global`" not in text.split("Controls")[0]
        no_global = protocol2.step_line(runs, "corr", "no_global", "large_motion")
        assert no_global["verdict"] == "worse" and no_global["ratio"] > 2 and no_global["seeds"] == 3

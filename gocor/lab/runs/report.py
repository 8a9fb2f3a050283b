"""Tables of the ablation runs (mean ± std over seeds), the paper's numbers beside them, and a
verdict per Table-6 step. Used by notebook 06, ``scripts/results_tables.py`` (the README) and
``python -m gocor reproduce`` (fresh against shipped).

The datasets differ from the paper's (synthetic pairs at 64 px against KITTI / HPatches), so
steps are compared by their relative change, not their values. A step is judged on the paired
per-seed differences and their 95% t-interval (:mod:`gocor.lab.runs.stats`): "better" / "worse"
when the interval excludes 0, else "not resolved"; runs with per-pair metrics (protocol v2) also get
a bootstrap over seeds and test pairs, and a verdict only when both intervals agree.
"""
from __future__ import annotations

import statistics

import numpy as np

from .stats import Interval, hierarchical_bootstrap, mean_std, paired_difference
from . import results
from .variants import TABLE6

# Table 6 of the paper (GLU-Net trained on dynamic scenes): KITTI-2015 AEPE, HPatches PCK-5 (%)
PAPER_TABLE6 = {"corr": {"kitti15_aepe": 8.93, "hpatches_pck5": 69.22},
                "global_lr": {"kitti15_aepe": 8.50, "hpatches_pck5": 71.29},
                "global": {"kitti15_aepe": 7.87, "hpatches_pck5": 71.21},
                "gocor": {"kitti15_aepe": 7.10, "hpatches_pck5": 78.30}}
# the supplement: local GOCor without / with the local query loss, KITTI-2012 / 2015 AEPE
PAPER_LOCAL_LQ = {"gocor": (4.02, 9.92), "gocor_local_lq": (4.24, 10.20)}

load_runs = results.load_runs          # the tables' input

LOWER_IS_BETTER = {"aepe", "f1", "copy_rate"}


def values(runs: list[dict], variant: str, split: str, key: str) -> list[float]:
    """The metric of every seed of a variant (runs without that split or metric are left out)."""
    return [r["metrics"][split][key] for r in runs
            if r["variant"] == variant and key in r["metrics"].get(split, {})]


def fmt(xs: list[float], digits: int = 3) -> str:
    if not xs:
        return "–"
    m, s = mean_std(xs)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def variants_present(runs: list[dict], among: tuple[str, ...] | None = None) -> list[str]:
    names = list(dict.fromkeys(r["variant"] for r in runs))
    return [v for v in (among or names) if v in names]


def metrics_table(runs: list[dict], split: str, keys: tuple[str, ...] = ("aepe", "pck1", "pck3", "pck5", "f1"),
                  variants: tuple[str, ...] | None = None) -> str:
    """Markdown: one row per variant, mean ± std over its seeds of ``keys`` on ``split``."""
    lines = [f"| variant | seeds | " + " | ".join(keys) + " |", "|---|---:|" + "---:|" * len(keys)]
    for v in variants_present(runs, variants):
        n = len(values(runs, v, split, keys[0]))
        lines.append(f"| `{v}` | {n} | " + " | ".join(fmt(values(runs, v, split, k), 2 if k == "aepe" else 3)
                                                   for k in keys) + " |")
    return "\n".join(lines)


def seed_values(runs: list[dict], variant: str, split: str, key: str) -> dict[int, float]:
    """``{seed: metric}`` of a variant (runs without that split or metric are left out)."""
    return {r["seed"]: r["metrics"][split][key] for r in runs
            if r["variant"] == variant and key in r["metrics"].get(split, {})}


def step_interval(runs: list[dict], a: str, b: str, split: str, key: str) -> Interval | None:
    """``b − a`` on ``key`` over the seeds both variants ran, with its 95% t-interval; None when
    they share no seed."""
    x, y = seed_values(runs, a, split, key), seed_values(runs, b, split, key)
    return paired_difference(x, y) if set(x) & set(y) else None


def pair_values(runs: list[dict], variant: str, split: str, key: str) -> dict[int, list]:
    """``{seed: [metric of every test pair]}`` of a variant, from runs that recorded per-pair
    metrics (``None`` where a pair has no valid pixel or cell)."""
    return {r["seed"]: r["per_pair"][split][key] for r in runs
            if r["variant"] == variant and key in r.get("per_pair", {}).get(split, {})}


def step_bootstrap(runs: list[dict], a: str, b: str, split: str, key: str,
                   n_boot: int = 4000) -> Interval | None:
    """``b − a`` on ``key`` with a hierarchical bootstrap interval over the common seeds and the
    test pairs (:func:`.stats.hierarchical_bootstrap`; pairs undefined in any run left out); None
    without per-pair metrics on common seeds."""
    x, y = pair_values(runs, a, split, key), pair_values(runs, b, split, key)
    seeds = sorted(set(x) & set(y))
    if not seeds:
        return None
    to_array = lambda d: np.array([[np.nan if v is None else v for v in d[s]] for s in seeds], dtype=np.float64)
    before, after = to_array(x), to_array(y)
    keep = np.isfinite(before).all(0) & np.isfinite(after).all(0)
    return hierarchical_bootstrap(before[:, keep], after[:, keep], n_boot=n_boot)


def joint_verdict(t: Interval, boot: Interval | None, lower_is_better: bool) -> str:
    """'better' / 'worse' when the seeds' t-interval and (when there is one) the bootstrap over
    seeds and pairs both say so, else 'not resolved' (protocol v2's rule)."""
    a = t.verdict(lower_is_better)
    return a if boot is None or boot.verdict(lower_is_better) == a else "not resolved"


def contrast(runs: list[dict], a: str, b: str, split: str, key: str = "aepe") -> str:
    """One line: variant ``a`` against ``b`` on a metric, mean ± std of each, the paired
    difference b − a with its 95% interval over common seeds, and the verdict on ``b``."""
    x, y = values(runs, a, split, key), values(runs, b, split, key)
    d = step_interval(runs, a, b, split, key)
    if d is None:
        return f"{a} vs {b}: not run on common seeds"
    return (f"{split:16s} {key:10s} {a} {fmt(x)} -> {b} {fmt(y)}: paired {d} over {d.n} seeds, "
            f"{b} is {d.verdict(key in LOWER_IS_BETTER)}")


def table6(runs: list[dict], split: str = "standard") -> tuple[str, list[dict]]:
    """The Table-6 ladder on ``split``: AEPE and PCK-5, each step's paired per-seed difference
    with its 95% interval and its relative change beside the paper's, a verdict per step.
    Returns (markdown, one dict per step)."""
    order = variants_present(runs, TABLE6)
    lines = [f"| variant | {split} AEPE | step (paired, 95% CI) | seeds × pairs bootstrap | step "
             f"| paper (KITTI-15 AEPE) | {split} PCK-5 | step, pt (paired, 95% CI) | paper (HPatches PCK-5) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    steps = []
    for i, v in enumerate(order):
        aepe, pck = values(runs, v, split, "aepe"), values(runs, v, split, "pck5")
        row = [f"`{v}`", fmt(aepe, 2), "", "", "", "", fmt(pck), "", ""]
        if i:
            u = order[i - 1]
            a0 = values(runs, u, split, "aepe")
            pa, pb = PAPER_TABLE6[u], PAPER_TABLE6[v]
            d_aepe = step_interval(runs, u, v, split, "aepe")
            d_pck = step_interval(runs, u, v, split, "pck5")
            b_aepe, b_pck = (step_bootstrap(runs, u, v, split, k) for k in ("aepe", "pck5"))
            change = 100 * (statistics.mean(aepe) / statistics.mean(a0) - 1)
            paper_change = 100 * (pb["kitti15_aepe"] / pa["kitti15_aepe"] - 1)
            paper_pck = pb["hpatches_pck5"] - pa["hpatches_pck5"]
            row[2], row[4], row[5] = d_aepe.fmt(3), f"{change:+.1f}%", f"{paper_change:+.1f}%"
            row[3] = "–" if b_aepe is None else b_aepe.fmt(3)
            row[7], row[8] = d_pck.fmt(1, scale=100), f"{paper_pck:+.2f} pt"
            steps.append({"step": f"{u} → {v}", "seeds": d_aepe.n,
                          "aepe_diff": d_aepe.mean, "aepe_ci": [d_aepe.low, d_aepe.high],
                          "aepe_change_pct": change, "paper_aepe_change_pct": paper_change,
                          "pck5_diff_pt": 100 * d_pck.mean, "pck5_ci_pt": [100 * d_pck.low, 100 * d_pck.high],
                          "paper_pck5_change_pt": paper_pck,
                          "aepe_boot_ci": None if b_aepe is None else [b_aepe.low, b_aepe.high],
                          "aepe": joint_verdict(d_aepe, b_aepe, True), "pck5": joint_verdict(d_pck, b_pck, False)})
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines), steps


def verdict_lines(steps: list[dict], split: str) -> str:
    """One line per Table-6 step: the measured direction (paired 95% interval) against the paper's."""
    out = []
    for s in steps:
        paper = "better" if s["paper_aepe_change_pct"] < 0 else "worse"
        if s["aepe"] == "not resolved":
            said = f"not resolved by {s['seeds']} seeds (the paper: {paper})"
        else:
            said = ("agrees with" if s["aepe"] == paper else "disagrees with") + f" the paper ({paper})"
        lo, hi = s["aepe_ci"]
        plo, phi = s["pck5_ci_pt"]
        boot = "" if s.get("aepe_boot_ci") is None else " (seeds × pairs [{:+.3f}, {:+.3f}])".format(*s["aepe_boot_ci"])
        out.append(f"- {s['step']}: {split} AEPE {s['aepe_diff']:+.3f} px [{lo:+.3f}, {hi:+.3f}]{boot} "
                   f"({s['aepe_change_pct']:+.1f}%, {s['aepe']}; paper {s['paper_aepe_change_pct']:+.1f}%), "
                   f"PCK-5 {s['pck5_diff_pt']:+.1f} pt [{plo:+.1f}, {phi:+.1f}] ({s['pck5']}): {said}")
    return "\n".join(out)


def compare(fresh: list[dict], shipped: list[dict], split: str = "standard",
            keys: tuple[str, ...] = ("aepe", "pck5", "f1")) -> str:
    """Markdown: fresh against shipped mean of every variant present in both."""
    lines = ["| variant | metric | fresh | shipped | fresh − shipped |", "|---|---|---:|---:|---:|"]
    for v in variants_present(fresh):
        if v not in variants_present(shipped):
            continue
        for k in keys:
            f, s = values(fresh, v, split, k), values(shipped, v, split, k)
            if f and s:
                lines.append(f"| `{v}` | {split} {k} | {fmt(f)} ({len(f)}) | {fmt(s)} ({len(s)}) | "
                             f"{statistics.mean(f) - statistics.mean(s):+.3f} |")
    return "\n".join(lines)

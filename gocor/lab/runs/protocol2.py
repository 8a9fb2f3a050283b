"""Protocol v2's report (``data/results/protocol2/PROTOCOL.md`` declares it): the Table-6 ladder on
the primary endpoints (AEPE on ``large_motion`` and ``motorcycle``) with paired per-seed
t-intervals and a bootstrap over seeds and test pairs, the controls, the secondary splits, the
moving-object metrics, and compute. Reads shipped run records only (no torch).

    python -m gocor.lab.runs.protocol2 [FOLDER]      # markdown on stdout
"""
from __future__ import annotations

import statistics
import sys
from pathlib import Path

from . import report
from .report import joint_verdict, seed_values, step_bootstrap, step_interval
from .stats import paired_difference
from ..files import read_json
from .variants import TABLE6, parse_run_name, variant

PRIMARY = ("large_motion", "motorcycle")
SECONDARY = ("standard", "dynamic", "repetitive", "near_repetitive")
VALIDATION = "large_motion_val"
RUN_SPLITS = PRIMARY + (VALIDATION,) + SECONDARY          # every protocol-v2 run is evaluated on these
PROFILE = "large"
# (control, against, what it asks)
CONTROLS = (("no_global", "corr", "the global level removed: is it needed on large motion?"),
            ("gocor_no_global", "gocor", "the same for the GOCor matcher: is its global level needed?"),
            ("gocor_0step", "gocor", "0 solver steps, trained: does the optimization itself help?"),
            ("corr_post", "corr", "correlation + a learned 4D post-processing: capacity alone?"),
            ("gocor_frozen", "gocor", "the objective frozen at its initialization: must it be learned?"))
FOLDER = Path(__file__).resolve().parents[3] / "data" / "results" / "protocol2"


def step_line(runs: list[dict], a: str, b: str, split: str, key: str = "aepe") -> dict | None:
    """``b − a`` on ``split``/``key``: means, the paired t-interval over seeds, the bootstrap over
    seeds × pairs, the joint verdict on ``b``; None when the two share no seed."""
    t = step_interval(runs, a, b, split, key)
    if t is None:
        return None
    boot = step_bootstrap(runs, a, b, split, key)
    x, y = seed_values(runs, a, split, key), seed_values(runs, b, split, key)
    seeds = sorted(set(x) & set(y))
    ma, mb = (statistics.mean(d[s] for s in seeds) for d in (x, y))
    lower = key in report.LOWER_IS_BETTER
    return {"a": a, "b": b, "split": split, "key": key, "seeds": len(seeds), "mean_a": ma, "mean_b": mb,
            "diff": t.mean, "t_ci": [t.low, t.high], "boot_ci": None if boot is None else [boot.low, boot.high],
            "ratio": mb / ma if ma else float("nan"), "verdict": joint_verdict(t, boot, lower)}


def fmt_step(s: dict, digits: int = 3) -> str:
    boot = "–" if s["boot_ci"] is None else "[{:+.{d}f}, {:+.{d}f}]".format(*s["boot_ci"], d=digits)
    lo, hi = s["t_ci"]
    return (f"| `{s['a']}` → `{s['b']}` | {s['seeds']} | {s['mean_a']:.{digits}f} → {s['mean_b']:.{digits}f} | "
            f"{s['diff']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] | {boot} | {s['verdict']} |")


HEADER = ("| step | seeds | mean | paired diff. (95% t-CI over seeds) | seeds × pairs bootstrap (95%) | verdict |\n"
          "|---|---:|---:|---:|---:|---|")
CONTROL_HEADER = (HEADER.split("\n")[0] + " question, ratio of means |\n" + HEADER.split("\n")[1] + "---|")


def ladder(runs: list[dict], split: str, key: str = "aepe") -> list[dict]:
    """The Table-6 steps on ``split`` (corr → global_lr → global → gocor) that have common seeds."""
    order = report.variants_present(runs, TABLE6)
    return [s for s in (step_line(runs, u, v, split, key) for u, v in zip(order, order[1:])) if s]


def paper_change(a: str, b: str) -> float:
    pa, pb = report.PAPER_TABLE6[a]["kitti15_aepe"], report.PAPER_TABLE6[b]["kitti15_aepe"]
    return 100 * (pb / pa - 1)


def object_dose(runs: list[dict], variant: str, bins: int = 3) -> list[dict]:
    """How much a moving object degrades the background around it, by object size: per seed,
    the mean over the pairs of a size tercile of (background AEPE with the object − without it,
    on the same pixels), then a t-interval over seeds. One dict per size bin (pixels range)."""
    import numpy as np
    from .stats import t_interval
    effects = [r["object_effect"]["per_pair"] for r in runs if r["variant"] == variant and "object_effect" in r]
    if not effects:
        return []
    size = np.array(effects[0]["object_pixels"], dtype=np.float64)
    edges = np.quantile(size, np.linspace(0, 1, bins + 1))
    which = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, bins - 1)
    out = []
    for b in range(bins):
        per_seed = []
        for e in effects:
            w = np.array([np.nan if x is None else x for x in e["background_with_object"]])
            wo = np.array([np.nan if x is None else x for x in e["background_without_object"]])
            d = (w - wo)[which == b]
            per_seed.append(float(np.nanmean(d)))
        out.append({"pixels": (int(edges[b]), int(edges[b + 1])), "interval": t_interval(per_seed),
                    "pairs": int((which == b).sum())})
    return out


def object_coupling_rows(runs: list[dict], folder: Path = FOLDER) -> list[dict]:
    """``folder``/object_coupling.json per variant present in ``runs``: the background's cost
    with − without the object per seed, as trained and with f̄ over the background's cells only,
    their means and the paired difference masked − trained over seeds (an :class:`Interval`).
    Empty when the file is absent."""
    path = Path(folder) / "object_coupling.json"
    if not path.exists():
        return []
    data = read_json(path)["runs"]
    rows = []
    for v in report.variants_present(runs):
        seeds = {parse_run_name(k)[1]: c for k, c in data.items() if parse_run_name(k)[0] == v}
        if not seeds:
            continue
        trained = {s: c["background_with_object"] - c["background_without_object"] for s, c in seeds.items()}
        masked = {s: c["background_with_object_context_masked"] - c["background_without_object"]
                  for s, c in seeds.items()}
        rows.append({"variant": v, "seeds": len(seeds), "trained": statistics.mean(trained.values()),
                     "masked": statistics.mean(masked.values()), "difference": paired_difference(trained, masked)})
    return rows


def markdown(runs: list[dict], folder: Path = FOLDER) -> str:
    """The whole report; the side files (post_contribution.json, object_coupling.json) from
    ``folder``."""
    seeds = {v: len(seed_values(runs, v, PRIMARY[0], "aepe")) for v in report.variants_present(runs)}
    parts = ["Runs (variant: seeds): " + ", ".join(f"`{v}`: {n}" for v, n in seeds.items()) + "."]
    for split in PRIMARY:
        steps = ladder(runs, split)
        if not steps:
            continue
        rows = [fmt_step(s) for s in steps]
        paper = ", ".join(f"{s['a']} → {s['b']} {100 * (s['ratio'] - 1):+.1f}% (paper {paper_change(s['a'], s['b']):+.1f}%)"
                          for s in steps)
        parts += [f"**Table 6 on `{split}`** (AEPE, px; primary endpoint):", HEADER + "\n" + "\n".join(rows),
                  f"Relative changes of the means: {paper}."]
    lines = []
    for split in SECONDARY:
        for s in ladder(runs, split):
            lines.append(fmt_step(s).replace(f"| `{s['a']}`", f"| {split}: `{s['a']}`", 1))
    if lines:
        parts += ["**Table 6 on the secondary splits** (AEPE, px):", HEADER + "\n" + "\n".join(lines)]
    rows = []
    for control, against, question in CONTROLS:
        for split in PRIMARY:
            s = step_line(runs, against, control, split)
            if s:
                row = fmt_step(s).replace(f"| `{s['a']}`", f"| {split}: `{s['a']}`", 1)
                rows.append(row + f" {question} ratio {s['ratio']:.2f} |")
    if rows:
        parts += ["**Controls** (AEPE, px; the step is reference → control):", CONTROL_HEADER + "\n" + "\n".join(rows)]
    post = Path(folder) / "post_contribution.json"
    if post.exists() and runs:
        data = read_json(post)["runs"]
        keys = sorted({k for c in data.values() for k in c})
        parts += ["**Does `corr_post` learn?** (how far each learned 4D post-processing moves its volume, "
                  "‖V′ − V‖ / ‖V‖ on 32 `large_motion` pairs, and its readout's norm; 0: plain correlation; "
                  "`scripts/post_contribution.py`):",
                  "| run | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys) + "\n"
                  + "\n".join(f"| `{run}` | " + " | ".join(f"{c[k]:.4f}" for k in keys) + " |"
                               for run, c in sorted(data.items()))]
    coarse = []
    for v in report.variants_present(runs):
        if not variant(v).global_flow:      # its global volume feeds nothing: no metric of a volume it uses
            continue
        for split in PRIMARY:
            acc = report.values(runs, v, split, "coarse_acc")
            chance = report.values(runs, v, split, "chance_coarse_acc")
            if acc and chance:
                coarse.append(f"| `{v}` | {split} | {report.fmt(acc)} | {statistics.mean(chance):.3f} |")
    if coarse:
        parts += ["**The global volume's argmax** (share of valid cells on the true 8×8 cell; chance: a random "
                  "volume on the same grid; variants without a global level left out):", "| variant | split | coarse_acc | chance |\n|---|---|---:|---:|\n"
                  + "\n".join(coarse)]
    dyn = []
    for v in report.variants_present(runs):
        o, b = report.values(runs, v, "dynamic", "aepe_object"), report.values(runs, v, "dynamic", "aepe_background")
        if o and b:
            dyn.append(f"| `{v}` | {len(o)} | {report.fmt(o, 2)} | {report.fmt(b, 2)} |")
    if dyn:
        parts += ["**Moving objects** (`dynamic`, AEPE on the object's and on the background's pixels):",
                  "| variant | seeds | object | background |\n|---|---:|---:|---:|\n" + "\n".join(dyn)]
    dose = []
    for v in report.variants_present(runs):
        for d in object_dose(runs, v):
            lo, hi = d["pixels"]
            dose.append(f"| `{v}` | {lo}–{hi} | {d['pairs']} | {d['interval'].fmt(3)} | {d['interval'].n} |")
    if dose:
        parts += ["**The background beside a moving object, by object size** (`dynamic`: background AEPE with "
                  "the object − without it, on the same pixels of the same pairs; mean over seeds, 95% t-CI):",
                  "| variant | object pixels | pairs | with − without (px) | seeds |\n|---|---|---:|---:|---:|\n"
                  + "\n".join(dose)]
    rows = [f"| `{c['variant']}` | {c['seeds']} | {c['trained']:+.3f} | {c['masked']:+.3f} | {c['difference'].fmt(3)} |"
            for c in object_coupling_rows(runs, folder)]
    if rows:
        parts += ["**Is it the image-mean feature?** (`dynamic` background: with − without the object, as trained "
                  "and with the initializer's f̄ over the background's cells only; `scripts/object_coupling.py`):",
                  "| variant | seeds | as trained (px) | f̄ over background (px) | masked − trained (95% t-CI) |\n"
                  "|---|---:|---:|---:|---:|\n" + "\n".join(rows)]
    wall = [f"`{v}` {statistics.median(r['wall_time_s'] for r in runs if r['variant'] == v):.0f} s"
            for v in report.variants_present(runs)]
    parts.append("Compute (median training wall time per run, 2-core CPU): " + ", ".join(wall) + ".")
    return "\n\n".join(parts)


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else FOLDER
    print(markdown(report.load_runs(folder), folder))

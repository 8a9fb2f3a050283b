"""Print the README's result tables (markdown) from the shipped results in data/results/.

    python scripts/results_tables.py
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.volume_experiment import summarize  # noqa: E402


def _ms(values: list[float], digits: int = 3) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def volume_table(path: Path) -> str:
    results = json.loads(path.read_text())["results"]
    summary = summarize(results)
    seeds = len({r["config"]["seed"] for r in results})
    wall = {layer: statistics.mean(r["wall_time_s"] for r in results if r["config"]["layer"] == layer)
            for layer in summary}
    lines = ["| layer | coarse_acc | coarse_acc1 | copy_rate | train time / run |",
             "|---|---:|---:|---:|---:|"]
    for layer, m in summary.items():
        lines.append(f"| `{layer}` | " + " | ".join(f"{m[k][0]:.3f} ± {m[k][1]:.3f}"
                                                   for k in ("coarse_acc", "coarse_acc1", "copy_rate"))
                     + f" | {wall[layer]:.0f} s |")
    return f"Mean ± std over {seeds} seeds (held-out `near_repetitive`, 96 pairs):\n\n" + "\n".join(lines)


def matcher_table(path: Path) -> str:
    runs = json.loads(path.read_text())
    models = list(dict.fromkeys(r["model"] for r in runs))
    seeds = len({r["seed"] for r in runs})
    lines = ["| model | train time | standard AEPE | repetitive AEPE | near-rep. AEPE | near-rep. coarse_acc | near-rep. coarse_acc1 | near-rep. copy_rate |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model in models:
        rs = [r for r in runs if r["model"] == model]
        m = lambda split, key: [r["test_metrics"][split][key] for r in rs]
        lines.append(f"| {model} | {statistics.mean(r['wall_time_s'] for r in rs):.0f} s | "
                     f"{_ms(m('standard', 'aepe'), 2)} | {_ms(m('repetitive', 'aepe'), 2)} | "
                     f"{_ms(m('near_repetitive', 'aepe'), 2)} | {_ms(m('near_repetitive', 'coarse_acc'))} | "
                     f"{_ms(m('near_repetitive', 'coarse_acc1'))} | {_ms(m('near_repetitive', 'copy_rate'))} |")
    return f"Mean ± std over {seeds} seeds:\n\n" + "\n".join(lines)


# The paper's Table 6 (GLU-Net trained on dynamic scenes): KITTI-2015 AEPE and HPatches PCK-5 (%).
PAPER_TABLE6 = {"corr": (8.93, 69.22), "global_lr": (8.50, 71.29), "global": (7.87, 71.21), "gocor": (7.10, 78.30)}


def ablation_table(folder: Path, split: str = "standard") -> str:
    """Table 6 as measured here (mean ± std over seeds) with the paper's relative change per step."""
    runs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    order = [v for v in PAPER_TABLE6 if any(r["variant"] == v for r in runs)]
    seeds = len({r["seed"] for r in runs})
    lines = [f"| variant | {split} AEPE | change | paper KITTI-15 AEPE change | {split} PCK-5 | paper HPatches PCK-5 change "
             "| near-rep. coarse_acc | near-rep. copy_rate |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    prev = None
    for i, v in enumerate(order):
        m = lambda sp, k: [r["metrics"][sp][k] for r in runs if r["variant"] == v]
        aepe = statistics.mean(m(split, "aepe"))
        change = "" if prev is None else f"{100 * (aepe / prev - 1):+.1f}%"
        paper = "" if i == 0 else (f"{100 * (PAPER_TABLE6[v][0] / PAPER_TABLE6[order[i - 1]][0] - 1):+.1f}%")
        paper_pck = "" if i == 0 else (f"{PAPER_TABLE6[v][1] - PAPER_TABLE6[order[i - 1]][1]:+.2f} pt")
        lines.append(f"| {v} | {_ms(m(split, 'aepe'), 2)} | {change} | {paper} | {_ms(m(split, 'pck5'))} | {paper_pck} | "
                     f"{_ms(m('near_repetitive', 'coarse_acc'))} | {_ms(m('near_repetitive', 'copy_rate'))} |")
        prev = aepe
    return f"Mean ± std over {seeds} seeds (`quick` profile, 2-core CPU):\n\n" + "\n".join(lines)


if __name__ == "__main__":
    results = ROOT / "data" / "results"
    if (results / "volume_experiment" / "results.json").exists():
        print(volume_table(results / "volume_experiment" / "results.json"), end="\n\n")
    if (results / "matchers.json").exists():
        print(matcher_table(results / "matchers.json"), end="\n\n")
    if (results / "ablation").is_dir():
        print(ablation_table(results / "ablation"))

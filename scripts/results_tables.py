"""Print the README's result tables (markdown) from the shipped results in data/results/.

    python scripts/results_tables.py
    python scripts/results_tables.py protocol2      # protocol v2's section
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.runs import report  # noqa: E402
from gocor.lab.runs.volume_experiment import summarize  # noqa: E402


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


def matcher_table(folder: Path) -> str:
    runs = report.load_runs(folder)
    seeds = len({r["seed"] for r in runs})
    lines = ["| model | train time | standard AEPE | repetitive AEPE | near-rep. AEPE | near-rep. coarse_acc | near-rep. coarse_acc1 | near-rep. copy_rate |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in report.variants_present(runs):
        m = lambda split, key: report.values(runs, name, split, key)
        wall = statistics.mean(r["wall_time_s"] for r in runs if r["variant"] == name)
        lines.append(f"| {name} | {wall:.0f} s | "
                     f"{report.fmt(m('standard', 'aepe'), 2)} | {report.fmt(m('repetitive', 'aepe'), 2)} | "
                     f"{report.fmt(m('near_repetitive', 'aepe'), 2)} | {report.fmt(m('near_repetitive', 'coarse_acc'))} | "
                     f"{report.fmt(m('near_repetitive', 'coarse_acc1'))} | {report.fmt(m('near_repetitive', 'copy_rate'))} |")
    return f"Mean ± std over {seeds} seeds:\n\n" + "\n".join(lines)


def ablation_tables(folder: Path) -> str:
    """Table 6 on the held-out splits, with the paper's relative changes and a verdict per step,
    then every variant on every split (all from :mod:`gocor.lab.runs.report`)."""
    runs = report.load_runs(folder)
    seeds = len({r["seed"] for r in runs})
    parts = [f"Mean ± std over {seeds} seeds (`quick` profile):"]
    for split in ("standard", "dynamic"):
        text, steps = report.table6(runs, split)
        parts += [text, report.verdict_lines(steps, split)]
    for split in ("standard", "dynamic", "near_repetitive"):
        keys = ("aepe", "pck1", "pck5", "f1") + (("coarse_acc", "copy_rate") if split == "near_repetitive" else ())
        parts += [f"All variants, `{split}`:", report.metrics_table(runs, split, keys)]
    parts.append(chance_line(8))
    return "\n\n".join(parts)


def chance_line(cells: int) -> str:
    """The coarse metrics of a random volume on the facades at a ``cells``×``cells`` grid."""
    from gocor.lab.data.splits import held_out_split
    from gocor.lab.runs.metrics import coarse_chance
    f = held_out_split("near_repetitive")
    c = coarse_chance(f["flow"], f["mask"], cells, f["period"])
    return (f"Chance on `near_repetitive` at the matchers' {cells}×{cells} global grid (a volume with a uniformly "
            f"random argmax, exact): coarse_acc {c['chance_coarse_acc']:.3f}, coarse_acc1 "
            f"{c['chance_coarse_acc1']:.3f}, copy_rate {c['chance_copy_rate']:.3f}.")


def motion_table() -> str:
    """How far the pixels of each split move, against the global level's cell (8 px at 64 px) and
    the 1/4 level's search (±12 px)."""
    from gocor.lab.data.flow import motion_stats
    from gocor.lab.data.splits import held_out_split
    lines = ["| split | pairs | median \\|flow\\| (px) | valid pixels moving > 8 px | > 12 px |", "|---|---:|---:|---:|---:|"]
    for split in ("large_motion", "large_motion_val", "motorcycle", "standard", "dynamic"):
        b = held_out_split(split)
        a, c = motion_stats(b["flow"], b["mask"], 8.0), motion_stats(b["flow"], b["mask"], 12.0)
        lines.append(f"| `{split}` | {b['flow'].shape[0]} | {a['median']:.1f} | {100 * a['beyond_cell']:.1f}% | "
                     f"{100 * c['beyond_cell']:.1f}% |")
    return "\n".join(lines)


def protocol2_tables(folder: Path) -> str:
    from gocor.lab.runs import protocol2
    return motion_table() + "\n\n" + protocol2.markdown(report.load_runs(folder), folder)


if __name__ == "__main__":
    if sys.argv[1:] == ["protocol2"]:
        print(protocol2_tables(ROOT / "data" / "results" / "protocol2"))
        sys.exit()
    results = ROOT / "data" / "results"
    if (results / "volume_experiment" / "results.json").exists():
        print(volume_table(results / "volume_experiment" / "results.json"), end="\n\n")
    if (results / "matchers").is_dir():
        print(matcher_table(results / "matchers"), end="\n\n")
    if (results / "ablation").is_dir():
        print(ablation_tables(results / "ablation"))

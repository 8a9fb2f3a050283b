"""``python -m gocor reproduce``: the reproduction, resumable.

1. the ablation (every variant × 3 seeds; ``full`` on a GPU, else ``quick``) into ``build/ablation``:
   finished runs are skipped, an interrupted one resumes from its checkpoint;
2. its analysis (steps curve, learned objectives);
3. every notebook executed with papermill into ``build/notebooks`` (notebook 06 on the fresh
   results), figures into ``build/figures``;
4. ``build/summary.md``: the notebooks' checked outputs, and the fresh ablation against the
   shipped one (``data/results/ablation``).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
SHIPPED = ROOT / "data" / "results" / "ablation"


def checked_outputs(nb: dict) -> list[str]:
    """The text printed by the cells marked ``# NBVAL_CHECK_OUTPUT``."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    out.append("".join(o["text"]).strip())
    return out


def run_ablation(out: Path, profile: str | None = None, variants: tuple[str, ...] | None = None,
                 seeds: int = 3) -> list[dict]:
    """Steps 1 and 2: every variant (default) × ``seeds`` into ``out``, then its analysis."""
    import torch

    from ..lab.runs.ablate import VARIANTS, ablate
    from ..lab.runs.analysis import analyze
    profile = profile or ("full" if torch.cuda.is_available() else "quick")
    print(f"ablation: profile {profile}, {seeds} seeds, into {out} (finished runs are skipped)", flush=True)
    runs = ablate(variants or tuple(VARIANTS), seeds, profile, out)
    analyze(out)
    return runs


def reproduce(out: str | Path = "build", update: bool = False, parameters: dict | None = None,
              profile: str | None = None, ablation: bool = True, variants: tuple[str, ...] | None = None,
              seeds: int = 3) -> list[dict]:
    import papermill as pm

    from ..lab.runs import report
    out = Path(out)
    fresh = None
    if ablation:
        run_ablation(out / "ablation", profile, variants, seeds)
        fresh = report.load_runs(out / "ablation")
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["GOCOR_FIGURES"] = str((out / "figures").resolve())
    # the kernels must use the inline backend: with MPLBACKEND=Agg (exported by the Makefile for
    # headless tests) plt.show() emits no image and the executed notebooks would lose their figures
    os.environ.pop("MPLBACKEND", None)
    rows = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        target = out / "notebooks" / path.name
        t0 = time.perf_counter()
        params = dict(parameters or {})
        if fresh is not None and path.name.startswith("06_"):
            params["RESULTS"] = str((out / "ablation").resolve())          # notebook 06 on the fresh runs
        pm.execute_notebook(str(path), str(target), parameters=params, cwd=str(NOTEBOOKS),
                            progress_bar=False, kernel_name="python3")
        wall = time.perf_counter() - t0
        nb = json.loads(target.read_text())
        rows.append({"notebook": path.name, "wall_time_s": round(wall, 1), "checked": checked_outputs(nb)})
        print(f"{path.name}: {wall:.1f} s")
        if update:
            shutil.copyfile(target, path)
    lines = ["# Reproduction summary", "", "| notebook | wall time (s) | checked outputs |", "|---|---:|---|"]
    for r in rows:
        checked = "<br>".join(re.sub(r"\s+", " ", c).replace("|", "\\|") for c in r["checked"]) or "-"
        lines.append(f"| {r['notebook']} | {r['wall_time_s']} | {checked} |")
    if fresh is not None:
        shipped = report.load_runs(SHIPPED)
        lines += ["", f"## Fresh ablation ({out / 'ablation'}) against the shipped one ({SHIPPED.relative_to(ROOT)})", ""]
        for split in ("standard", "dynamic"):
            lines += [report.compare(fresh, shipped, split), ""]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows

"""``python -m gocor reproduce``: execute every notebook with papermill into build/,
save their figures into build/figures/, and write build/summary.md."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def checked_outputs(nb: dict) -> list[str]:
    """The text printed by the cells marked ``# NBVAL_CHECK_OUTPUT``."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "NBVAL_CHECK_OUTPUT" in "".join(cell["source"]):
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream":
                    out.append("".join(o["text"]).strip())
    return out


def reproduce(out: str | Path = "build", update: bool = False, parameters: dict | None = None) -> list[dict]:
    import papermill as pm
    out = Path(out)
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    os.environ["GOCOR_FIGURES"] = str((out / "figures").resolve())
    # the kernels must use the inline backend: with MPLBACKEND=Agg (exported by the Makefile for
    # headless tests) plt.show() emits no image and the executed notebooks would lose their figures
    os.environ.pop("MPLBACKEND", None)
    rows = []
    for path in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        target = out / "notebooks" / path.name
        t0 = time.perf_counter()
        pm.execute_notebook(str(path), str(target), parameters=parameters or {}, cwd=str(NOTEBOOKS),
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
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows

"""Ship an ``ablate`` output into the repository (maintainers, after ``python -m gocor ablate``):

- every run's result.json -> data/results/ablation/<variant>-seed<S>.json (stale records
  removed), with steps.json and objectives.json (computed first if missing, see
  gocor.lab.runs.analysis);
- the Table-6 variants' seed-0 weights -> data/checkpoints/ablation/<variant>-seed0.pt (model and
  configs only, no optimizer state) with a manifest <variant>-seed0.json (gocor.lab.runs.ship).

    python scripts/ship_ablation.py [--from build/ablation]
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.analysis import analyze  # noqa: E402
from gocor.lab.runs.results import load_runs, result_paths  # noqa: E402
from gocor.lab.runs.ship import ship_run  # noqa: E402
from gocor.lab.runs.variants import TABLE6, run_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", default=str(ROOT / "build" / "ablation"))
    args = ap.parse_args()
    src = Path(args.src)
    results, ckpts = ROOT / "data" / "results" / "ablation", ROOT / "data" / "checkpoints" / "ablation"
    analyze(src)
    runs = load_runs(src)
    for old in result_paths(results):
        old.unlink()            # the shipped records this script wrote before
    for r in runs:
        write_json(results / f"{run_name(r['variant'], r['seed'])}.json", r)
    for name in ("steps.json", "objectives.json"):
        shutil.copyfile(src / name, results / name)
    for r in runs:
        if r["variant"] in TABLE6 and r["seed"] == 0:
            pt = ckpts / f"{run_name(r['variant'], 0)}.pt"
            ship_run(src / run_name(r["variant"], 0), r, pt,
                     f"python -m gocor ablate --profile {r['profile']} --variants {r['variant']} --seeds 1")
            print(f"{pt.relative_to(ROOT)}: {pt.stat().st_size / 1e6:.1f} MB")
    print(f"{len(runs)} runs shipped into {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

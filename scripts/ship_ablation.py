"""Ship an ``ablate`` output into the repository (maintainers, after ``python -m gocor ablate``):

- every run's result.json -> data/results/ablation/<variant>-seed<S>.json (stale records
  removed), with steps.json and objectives.json (computed first if missing, see
  gocor.lab.runs.analysis);
- the Table-6 variants' seed-0 weights -> data/checkpoints/ablation/<variant>-seed0.pt (model and
  configs only, no optimizer state) with a manifest <variant>-seed0.json (gocor.lab.runs.ship).

    python scripts/ship_ablation.py [--from build/ablation]

Protocol v2 (``--name protocol2``): into data/results/protocol2/ and data/checkpoints/protocol2/,
the weights of every seed of the Table-6 variants. Its runs are added a few at a time, so the
records of runs that are not in the source folder stay (a run in it replaces its record).
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
    ap.add_argument("--from", dest="src", default=None, help="the ablate output (default build/<name>)")
    ap.add_argument("--name", choices=("ablation", "protocol2"), default="ablation")
    args = ap.parse_args()
    src = Path(args.src or ROOT / "build" / args.name)
    results, ckpts = ROOT / "data" / "results" / args.name, ROOT / "data" / "checkpoints" / args.name
    ship_seeds = None if args.name == "protocol2" else {0}            # None: every seed
    if args.name == "ablation":
        analyze(src)            # protocol v2 ships its runs only (no steps curve / objectives yet)
    runs = load_runs(src)
    if args.name == "ablation":
        for old in result_paths(results):
            old.unlink()        # the shipped records this script wrote before
    fresh = {run_name(r["variant"], r["seed"]) for r in runs}
    kept = [p for p in result_paths(results) if p.stem not in fresh]
    for r in runs:
        write_json(results / f"{run_name(r['variant'], r['seed'])}.json", r)
    for name in ("steps.json", "objectives.json") if args.name == "ablation" else ():
        shutil.copyfile(src / name, results / name)
    for r in runs:
        if r["variant"] in TABLE6 and (ship_seeds is None or r["seed"] in ship_seeds):
            name = run_name(r["variant"], r["seed"])
            pt = ckpts / f"{name}.pt"
            ship_run(src / name, r, pt, f"python -m gocor ablate --profile {r['profile']} --variants "
                                        f"{r['variant']} --seeds {r['seed'] + 1}")
            print(f"{pt.relative_to(ROOT)}: {pt.stat().st_size / 1e6:.1f} MB")
    print(f"{len(runs)} runs shipped into {results.relative_to(ROOT)}"
          + (f"; {len(kept)} shipped records not in {src} kept" if kept else ""))


if __name__ == "__main__":
    main()

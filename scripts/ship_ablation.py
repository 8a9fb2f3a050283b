"""Ship an ``ablate`` output into the repository (maintainers, after ``python -m gocor ablate``):

- every run's result.json -> data/results/ablation/<variant>-seed<S>.json (stale files removed),
  with steps.json and objectives.json (computed first if missing, see gocor.lab.runs.analysis);
- the Table-6 variants' seed-0 weights -> data/checkpoints/ablation/<variant>-seed0.pt (model and
  configs only, no optimizer state) with a manifest <variant>-seed0.json.

    python scripts/ship_ablation.py [--from build/ablation]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.runs import checkpoint  # noqa: E402
from gocor.lab.runs.variants import TABLE6  # noqa: E402
from gocor.lab.runs.analysis import analyze  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--from", dest="src", default=str(ROOT / "build" / "ablation"))
    args = ap.parse_args()
    src = Path(args.src)
    results, ckpts = ROOT / "data" / "results" / "ablation", ROOT / "data" / "checkpoints" / "ablation"
    analyze(src)
    for old in results.glob("*.json"):
        old.unlink()
    results.mkdir(parents=True, exist_ok=True)
    for run in sorted(src.glob("*-seed*/result.json")):
        shutil.copyfile(run, results / f"{run.parent.name}.json")
    for name in ("steps.json", "objectives.json"):
        shutil.copyfile(src / name, results / name)
    ckpts.mkdir(parents=True, exist_ok=True)
    for variant in TABLE6:
        run = src / f"{variant}-seed0"
        if not (run / "result.json").exists():
            print(f"skipped {variant}: no finished seed-0 run")
            continue
        state = checkpoint.load(run / "last.pt", "cpu")
        pt = ckpts / f"{variant}-seed0.pt"
        checkpoint.save({k: state[k] for k in ("model", "step", "history", "wall_time", "train_config",
                                                "matcher_config")}, pt)
        result = json.loads((run / "result.json").read_text())
        manifest = {"variant": variant, "seed": 0, "command": f"python -m gocor ablate --profile {result['profile']} "
                    f"--only {variant} --seeds 1", "commit": result["commit"], "device": result["device"],
                    "wall_time_s": result["wall_time_s"], "sha256": hashlib.sha256(pt.read_bytes()).hexdigest(),
                    "train_config": result["train_config"], "metrics": result["metrics"]}
        (ckpts / f"{variant}-seed0.json").write_text(json.dumps(manifest, indent=1, allow_nan=False) + "\n")
        print(f"{pt.relative_to(ROOT)}: {pt.stat().st_size / 1e6:.1f} MB")
    print(f"{len(list(results.glob('*-seed*.json')))} runs shipped into {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()

"""Train the shipped matchers with the kit's one run pipeline (the ablation's), over seeds, and
write their results.

    python scripts/ship_checkpoints.py [--profile quick|full] [--seeds 3] [--variants corr gocor]

Every variant and seed is a run of :func:`gocor.lab.runs.ablate.run_variant` in build/matchers/
(resumable; the same record schema as the ablation), evaluated on every held-out split; its
record is copied to data/results/matchers/<variant>-seed<S>.json. Seed 0 of each variant is
shipped as data/checkpoints/<variant>.pt (weights + configs) with its manifest <variant>.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.files import write_json  # noqa: E402
from gocor.lab.runs.ablate import run_variant  # noqa: E402
from gocor.lab.runs.ship import ship_run  # noqa: E402
from gocor.lab.runs.train import PROFILES  # noqa: E402
from gocor.lab.runs.variants import VARIANTS, run_name  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--variants", nargs="+", default=["corr", "gocor"], choices=list(VARIANTS), metavar="VARIANT")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--run-root", default=str(ROOT / "build" / "matchers"), help="one run folder per variant and seed")
    args = ap.parse_args()
    results = ROOT / "data" / "results" / "matchers"
    for name in args.variants:
        for seed in range(args.seeds):
            result = run_variant(name, seed, args.profile, args.run_root, progress=False)
            write_json(results / f"{run_name(name, seed)}.json", result)
            print(f"{run_name(name, seed)}: {result['wall_time_s']} s, standard AEPE "
                  f"{result['metrics']['standard']['aepe']:.3f}", flush=True)
            if seed == 0:
                ship_run(Path(args.run_root) / run_name(name, seed), result, ROOT / "data" / "checkpoints" / f"{name}.pt",
                         f"python scripts/ship_checkpoints.py --profile {args.profile} --variants {name} --seeds 1")


if __name__ == "__main__":
    main()

"""Train the shipped matchers with the kit's own command, over seeds, and write their results.

    python scripts/ship_checkpoints.py [--profile quick|full] [--seeds 3] [--models corr gocor]

For each model and seed: runs `python -m gocor train`, evaluates on every held-out split
(flow metrics and the global volume's coarse metrics), and appends the run to
data/results/matchers.json. Seed 0 of each model is shipped as data/checkpoints/<model>.pt
(weights + config only) with its manifest <model>.json.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gocor.lab.runs import checkpoint  # noqa: E402
from gocor.lab.data.splits import HELD_OUT_SPLITS  # noqa: E402
from gocor.lab.device import default_device  # noqa: E402
from gocor.lab.runs.evaluate import evaluate_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--models", nargs="+", default=["corr", "gocor"])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--evaluate-only", action="store_true",
                    help="re-evaluate finished runs (runs/<model>_<profile>_seed<S>) instead of training")
    args = ap.parse_args()
    previous = {(r["model"], r["seed"]): r for r in json.loads((ROOT / "data" / "results" / "matchers.json").read_text())} \
        if args.evaluate_only else {}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "gocor"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    results_path = ROOT / "data" / "results" / "matchers.json"
    runs = []
    for model in args.models:
        for seed in range(args.seeds):
            run = ROOT / "runs" / f"{model}_{args.profile}_seed{seed}"
            cmd = [sys.executable, "-m", "gocor", "train", "--model", model, "--profile", args.profile,
                   "--seed", str(seed), "--out", str(run.relative_to(ROOT)), "--no-progress"]
            if args.evaluate_only:
                wall = previous[(model, seed)]["wall_time_s"]
            else:
                t0 = time.perf_counter()
                subprocess.run(cmd, cwd=ROOT, check=True)
                wall = time.perf_counter() - t0
            state = checkpoint.load(run / "last.pt")
            out = run / "shipped.pt"
            checkpoint.save({k: state[k] for k in ("model", "matcher_config", "train_config", "step", "history")}, out)
            metrics = {s: evaluate_checkpoint(out, s, device="cpu") for s in HELD_OUT_SPLITS}
            entry = {
                "model": model, "seed": seed,
                "command": "python -m gocor train " + shlex.join(cmd[4:]),
                "commit": previous[(model, seed)]["commit"] if args.evaluate_only else commit + ("-dirty" if dirty else ""),
                "evaluated_at": commit + ("-dirty" if dirty else ""), "steps": state["step"],
                "device": str(default_device()), "threads": torch.get_num_threads(), "wall_time_s": round(wall, 1),
                "train_config": state["train_config"], "matcher_config": state["matcher_config"],
                "test_metrics": {s: {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}
                                 for s, m in metrics.items()},
            }
            runs.append(entry)
            print(json.dumps({"model": model, "seed": seed, "wall_time_s": entry["wall_time_s"],
                              **entry["test_metrics"]}), flush=True)
            if seed == 0:
                shipped = ROOT / "data" / "checkpoints" / f"{model}.pt"
                shipped.write_bytes(out.read_bytes())
                shipped.with_suffix(".json").write_text(json.dumps(entry, indent=1) + "\n")
            results_path.parent.mkdir(parents=True, exist_ok=True)
            results_path.write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()

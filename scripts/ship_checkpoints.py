"""Train the shipped checkpoints with the kit's own command and write their manifests.

    python scripts/ship_checkpoints.py [--profile quick|full]

For each model (corr, gocor): runs `python -m gocor train`, evaluates on both test splits,
and writes data/checkpoints/<model>.pt (weights + config only) and <model>.json.
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

from gocor.lab import checkpoint  # noqa: E402
from gocor.lab.device import default_device  # noqa: E402
from gocor.lab.evaluate import evaluate_checkpoint  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--models", nargs="+", default=["corr", "gocor"])
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "gocor"], cwd=ROOT, capture_output=True,
                                text=True).stdout.strip())
    for model in args.models:
        run = ROOT / "runs" / f"{model}_{args.profile}"
        cmd = [sys.executable, "-m", "gocor", "train", "--model", model, "--profile", args.profile,
               "--out", str(run.relative_to(ROOT)), "--no-progress"]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        wall = time.perf_counter() - t0
        state = checkpoint.load(run / "last.pt")
        out = ROOT / "data" / "checkpoints" / f"{model}.pt"
        checkpoint.save({k: state[k] for k in ("model", "matcher_config", "train_config", "step", "history")}, out)
        metrics = {s: evaluate_checkpoint(out, s, device="cpu") for s in ("standard", "repetitive")}
        manifest = {
            "command": "python -m gocor train " + shlex.join(cmd[4:]),
            "commit": commit + ("-dirty" if dirty else ""), "seed": state["train_config"]["seed"],
            "steps": state["step"], "device": str(default_device()),
            "threads": torch.get_num_threads(), "wall_time_s": round(wall, 1),
            "train_config": state["train_config"], "matcher_config": state["matcher_config"],
            "test_metrics": {s: {k: round(v, 4) for k, v in m.items() if isinstance(v, float)}
                             for s, m in metrics.items()},
        }
        out.with_suffix(".json").write_text(json.dumps(manifest, indent=1) + "\n")
        print(json.dumps(manifest["test_metrics"]))


if __name__ == "__main__":
    main()

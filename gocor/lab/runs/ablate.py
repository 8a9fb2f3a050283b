"""``python -m gocor ablate``: train every ablation variant over seeds, with the same backbone,
data and budget, and evaluate each on every held-out split.

Each finished run is cached (``OUT/<variant>-seed<S>/result.json``: skipped when present); an
interrupted one resumes from its last checkpoint (training is a pure function of the config and
the step, so the result equals an uninterrupted run). One table over all runs at the end.

The training pairs are made once (``OUT/pairs/``) and shared by every run. The variants (the
paper's Table 6, the initializers, learned vs frozen objective and the capacity-matched control)
are :data:`gocor.lab.runs.variants.VARIANTS` (``python -m gocor ablate --list``).
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import asdict, replace
from pathlib import Path

from tqdm.auto import tqdm

from ..data.splits import HELD_OUT_SPLITS
from ..device import default_device
from ..files import read_json, write_json
from .evaluate import evaluate_checkpoint
from .train import PROFILES, train
from .variants import TABLE6, VARIANTS




def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_variant(variant: str, seed: int, profile: str, out: str | Path, device: str | None = None,
                progress: bool = True) -> dict:
    """Train (or resume) one variant and seed, evaluate it, write and return its result."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {sorted(VARIANTS)}")
    run_dir = Path(out) / f"{variant}-seed{seed}"
    result_path = run_dir / "result.json"
    if result_path.exists():
        return read_json(result_path)
    cfg = replace(PROFILES[profile], model=VARIANTS[variant].model, seed=seed, **VARIANTS[variant].train)
    commit = _commit()                  # the code the run starts with
    summary = train(cfg, run_dir, resume=True, device=device, progress=progress, pool_cache=Path(out) / "pairs")
    metrics = {split: evaluate_checkpoint(run_dir / "last.pt", split, device=device) for split in HELD_OUT_SPLITS}
    result = {"variant": variant, "seed": seed, "profile": profile, "train_config": asdict(cfg),
              "metrics": {s: {k: v for k, v in m.items() if isinstance(v, (int, float))} for s, m in metrics.items()},
              "history": summary["history"], "wall_time_s": round(summary["wall_time"], 1),
              "device": str(default_device(device)), "commit": commit}
    write_json(result_path, result)
    return result


def ablate(variants: tuple[str, ...] = TABLE6, seeds: int = 3, profile: str = "quick", out: str | Path = "build/ablation",
           device: str | None = None, progress: bool = True) -> list[dict]:
    """Every variant × seeds 0..seeds-1; finished runs are read from their cache."""
    runs = [(v, s) for v in variants for s in range(seeds)]
    results = []
    bar = tqdm(runs, desc="ablation runs", unit="run", disable=not progress, position=0)
    for variant, seed in bar:
        bar.set_postfix(run=f"{variant}-seed{seed}")
        t0 = time.perf_counter()
        results.append(run_variant(variant, seed, profile, out, device, progress))
        if progress:
            bar.write(f"{variant} seed {seed}: done in {time.perf_counter() - t0:.0f} s")
    return results

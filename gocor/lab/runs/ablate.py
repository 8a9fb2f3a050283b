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

import time
from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from ..data.splits import HELD_OUT_SPLITS
from ..device import default_device
from ..errors import UserError
from ..files import write_json
from .evaluate import evaluate_checkpoint
from .results import SCHEMA, commit_info, read_result
from .train import run_config, train
from .variants import TABLE6, run_name



def run_variant(name: str, seed: int, profile: str, out: str | Path, device: str | None = None,
                progress: bool = True, **changes) -> dict:
    """The one run pipeline: train (or resume) variant ``name`` with ``seed`` under ``profile``
    (plus training ``changes``, e.g. ``steps``) in ``out/<variant>-seed<S>/``, evaluate its last
    checkpoint on every held-out split, write and return its result record
    (:mod:`.results`). A run whose ``result.json`` exists is finished and only read back."""
    cfg = run_config(name, profile, seed, **changes)
    run_dir = Path(out) / run_name(name, seed)
    result_path = run_dir / "result.json"
    if result_path.exists():
        result = read_result(result_path)
        if result["train_config"] != asdict(cfg):
            raise UserError(f"{result_path}: a finished run of another training config; choose another "
                            f"output folder or delete {run_dir}")
        return result
    code = commit_info()                    # the code the run starts with
    summary = train(cfg, run_dir, resume=True, device=device, progress=progress, pool_cache=Path(out) / "pairs")
    metrics = {split: evaluate_checkpoint(run_dir / "last.pt", split, device=device) for split in HELD_OUT_SPLITS}
    result = {"schema": SCHEMA, "variant": name, "seed": seed, "profile": profile, "train_config": asdict(cfg),
              "metrics": {s: {k: v for k, v in m.items() if isinstance(v, (int, float))} for s, m in metrics.items()},
              "history": summary["history"], "wall_time_s": round(summary["wall_time"], 1),
              "device": str(default_device(device)), **code}
    write_json(result_path, result)
    return result


def ablate(variants: tuple[str, ...] = TABLE6, seeds: int = 3, profile: str = "quick", out: str | Path = "build/ablation",
           device: str | None = None, progress: bool = True) -> list[dict]:
    """Every variant × seeds 0..seeds-1; finished runs are read from their cache."""
    runs = [(v, s) for v in variants for s in range(seeds)]
    results = []
    bar = tqdm(runs, desc="ablation runs", unit="run", disable=not progress, position=0)
    for variant, seed in bar:
        bar.set_postfix(run=run_name(variant, seed))
        t0 = time.perf_counter()
        results.append(run_variant(variant, seed, profile, out, device, progress))
        if progress:
            bar.write(f"{variant} seed {seed}: done in {time.perf_counter() - t0:.0f} s")
    return results

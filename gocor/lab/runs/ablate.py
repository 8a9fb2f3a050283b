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

import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

from tqdm.auto import tqdm

from ..data.pairs import PairConfig
from ..data.pool import load_pool
from ..data.splits import HELD_OUT_SPLITS, check_splits, held_out_split
from ..device import default_device, machine_info, torch_threads
from ..errors import UserError
from ..files import write_json
from .evaluate import evaluate, load_matcher, object_effect
from .results import SCHEMA, commit_info, read_result
from .train import recorded_config, run_config, train
from .variants import TABLE6, run_name



def _rounded(per_pair: dict[str, list[float]]) -> dict[str, list[float | None]]:
    """Per-pair lists as a record keeps them: 4 decimals, None where undefined (NaN)."""
    return {k: [None if x != x else round(x, 4) for x in v] for k, v in per_pair.items()}


def default_splits(profile: str) -> tuple[str, ...]:
    """The splits a run of ``profile`` is evaluated on: protocol v2's for its ``large`` profile
    (:data:`.protocol2.RUN_SPLITS`), else the held-out splits of protocol 1."""
    from . import protocol2
    return protocol2.RUN_SPLITS if profile == protocol2.PROFILE else HELD_OUT_SPLITS


def run_variant(name: str, seed: int, profile: str, out: str | Path, device: str | None = None,
                progress: bool = True, splits: tuple[str, ...] | None = None, **changes) -> dict:
    """The one run pipeline: train (or resume) variant ``name`` with ``seed`` under ``profile``
    (plus training ``changes``, e.g. ``steps``) in ``out/<variant>-seed<S>/``, evaluate its last
    checkpoint on every held-out split (``splits``: default :func:`default_splits` of the profile;
    fewer for short checks), write and return its result record
    (:mod:`.results`). A run whose ``result.json`` exists is finished and only read back."""
    cfg = run_config(name, profile, seed, **changes)
    check_splits(splits or ())                  # before training, not after it
    run_dir = Path(out) / run_name(name, seed)
    result_path = run_dir / "result.json"
    if result_path.exists():
        result = read_result(result_path)
        if recorded_config(result["train_config"]) != asdict(cfg):
            raise UserError(f"{result_path}: a finished run of another training config; choose another "
                            f"output folder or delete {run_dir}")
        return result
    code = commit_info()                    # the code the run starts with
    summary = train(cfg, run_dir, resume=True, device=device, progress=progress, pool_cache=Path(out) / "pairs")
    splits = default_splits(profile) if splits is None else splits
    model = load_matcher(run_dir / "last.pt", device)[0]              # loaded once for every split
    pairs = PairConfig(size=model.config.image_size, photometric=False)
    metrics = {split: evaluate(model, held_out_split(split, pairs), per_pair=True) for split in splits}
    result = {"schema": SCHEMA, "variant": name, "seed": seed, "profile": profile, "train_config": asdict(cfg),
              "metrics": {s: {k: v for k, v in m.items() if isinstance(v, (int, float))} for s, m in metrics.items()},
              "per_pair": {s: _rounded(m["per_pair"]) for s, m in metrics.items()},
              "history": summary["history"], "wall_time_s": round(summary["wall_time"], 1),
              "device": str(default_device(device)), "machine": machine_info(), **code}
    if "dynamic" in splits:     # the background beside a moving object, with and without it, per pair
        effect = object_effect(model, per_pair=True)
        result["object_effect"] = effect | {"per_pair": _rounded(effect["per_pair"])}
    write_json(result_path, result)
    return result


ENGINES = ("sequential", "local", "submitit-local", "submitit-slurm")


def _worker(variant: str, seed: int, profile: str, out: str, device: str | None, splits: tuple[str, ...],
            changes: dict, threads: int) -> dict:
    """One run in a worker process, with ``threads`` intra-op threads (so that N workers do not
    oversubscribe the cores)."""
    import torch
    torch.set_num_threads(threads)
    return run_variant(variant, seed, profile, out, device, False, splits, **changes)


def ablate(variants: tuple[str, ...] = TABLE6, seeds: int = 3, profile: str = "quick", out: str | Path = "build/ablation",
           device: str | None = None, progress: bool = True, jobs: int = 1, engine: str | None = None,
           slurm: dict | None = None, splits: tuple[str, ...] | None = None, threads: int | None = None,
           **changes) -> list[dict]:
    """Every variant × seeds 0..seeds-1; finished runs are read from their cache.

    The runs are independent (each a pure function of its config). ``engine``: "sequential" (the
    default when ``jobs`` is 1), "local" (``jobs`` worker processes on this machine, each with
    cores // jobs threads; the default when ``jobs`` > 1), or submitit's executors,
    "submitit-local" (its local executor) and "submitit-slurm" (SLURM; ``slurm`` holds
    submitit's parameters, e.g. ``{"slurm_partition": "gpu", "gpus_per_node": 1, "timeout_min": 240}``,
    and ``jobs`` is the array's parallelism). Results come back in the order of the runs, equal
    to the sequential ones. ``threads``: intra-op threads per run (default: torch's for a
    sequential run, cores // jobs otherwise); CPU float reductions depend on it, so runs compare
    bit for bit at equal ``threads``. ``splits`` and training ``changes`` (e.g. ``steps``) as in
    :func:`run_variant`."""
    engine = engine or ("sequential" if jobs == 1 else "local")
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    runs = [(v, s) for v in variants for s in range(seeds)]
    if engine == "sequential":
        with torch_threads(threads):
            return _sequential(runs, profile, out, device, progress, splits, changes)
    for pool in {run_config(v, profile, s, **changes).pool for v, s in runs}:
        load_pool(pool, Path(out) / "pairs")     # made once here, not by every worker at the same time
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    args = [(v, s, profile, str(out), device, splits, changes, threads) for v, s in runs]
    if engine == "local":
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            return list(pool.map(_worker, *zip(*args)))
    return _submitit(engine, args, Path(out), jobs, threads, slurm or {})


def _sequential(runs: list[tuple[str, int]], profile: str, out: str | Path, device: str | None,
                progress: bool, splits: tuple[str, ...], changes: dict) -> list[dict]:
    results = []
    bar = tqdm(runs, desc="ablation runs", unit="run", disable=not progress, position=0)
    for variant, seed in bar:
        bar.set_postfix(run=run_name(variant, seed))
        t0 = time.perf_counter()
        results.append(run_variant(variant, seed, profile, out, device, progress, splits, **changes))
        if progress:
            bar.write(f"{variant} seed {seed}: done in {time.perf_counter() - t0:.0f} s")
    return results


def _submitit(engine: str, args: list[tuple], out: Path, jobs: int, threads: int, slurm: dict) -> list[dict]:
    try:
        import submitit
    except ImportError as e:
        raise ImportError(f"engine={engine!r} needs submitit: pip install 'gocor[cluster]'") from e
    cluster = "local" if engine == "submitit-local" else "slurm"
    executor = submitit.AutoExecutor(folder=out / "submitit", cluster=cluster)
    params = {"timeout_min": 24 * 60, "cpus_per_task": threads, **slurm}
    if cluster == "slurm":
        params["slurm_array_parallelism"] = jobs
    executor.update_parameters(**params)
    results: list[dict] = []
    # the local executor starts every job it is given at once: hand it ``jobs`` at a time
    step = len(args) if cluster == "slurm" else jobs
    for i in range(0, len(args), step):
        batch = executor.map_array(_worker, *zip(*args[i:i + step]))
        results += [job.result() for job in batch]
    return results

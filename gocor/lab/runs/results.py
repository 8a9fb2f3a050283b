"""One result per run, one schema, one reader.

Every trained run (an ablation variant, a shipped matcher) ends as one JSON record:

    schema        "gocor-kit-run/1"
    variant, seed, profile
    train_config  the TrainConfig it trained with (asdict)
    metrics       {held-out split: {metric: value}} (unrounded, see :mod:`.metrics`)
    per_pair      {held-out split: {metric: [value per pair]}} (4 decimals; runs since protocol v2)
    history       [{"step", "loss", "val_aepe"}, ...]
    wall_time_s, device
    machine       what fixes CPU float rounding: torch, threads, cpu_capability, machine
                  (:func:`gocor.lab.device.machine_info`; runs since it was added)
    commit, dirty the code it started with (:func:`commit_info`; ``dirty`` None when unknown)

in ``<run>/result.json`` of a run folder or ``<variant>-seed<S>.json`` when shipped. Written
atomically: a run whose record exists is finished. Plain data (no torch).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from ..errors import UserError
from ..files import read_json
from .variants import VARIANTS, parse_run_name

SCHEMA = "gocor-kit-run/1"
REQUIRED = ("variant", "seed", "profile", "train_config", "metrics", "wall_time_s", "device", "commit", "dirty")
PACKAGE = Path(__file__).resolve().parents[2]         # gocor/: the code a run depends on


def commit_info(path: str | Path = PACKAGE) -> dict:
    """{"commit": the HEAD of the repository holding ``path`` ("unknown" outside one), "dirty":
    whether ``path`` has uncommitted changes (None when unknown)}."""
    path = Path(path)
    git = lambda *a: subprocess.run(["git", *a], cwd=path, capture_output=True, text=True)
    head = git("rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--", ".")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()) if status.returncode == 0 else None}


def check_result(record: dict, source: str | Path) -> dict:
    """``record`` when it follows the schema; a :class:`UserError` naming ``source`` otherwise."""
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise UserError(f"{source}: not a run result (expected schema {SCHEMA!r}; "
                        f"older files: python scripts/migrate_results.py)")
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise UserError(f"{source}: run result without {', '.join(missing)}")
    return record


def read_result(path: str | Path) -> dict:
    """The run record at ``path``, checked."""
    return check_result(read_json(path), path)


def result_paths(folder: str | Path) -> list[Path]:
    """The run records of a folder: ``<run>/result.json`` (a run folder) or ``<run>.json``
    (shipped), the run name being ``<variant>-seed<S>``."""
    folder = Path(folder)
    paths = list(folder.glob("*-seed*/result.json")) or list(folder.glob("*-seed*.json"))
    return sorted(paths, key=lambda p: parse_run_name(p.parent.name if p.name == "result.json" else p.stem))


def load_runs(folder: str | Path) -> list[dict]:
    """Every run record of ``folder`` (see :func:`result_paths`), in the order of
    :data:`gocor.lab.runs.variants.VARIANTS`, then by seed."""
    runs = [read_result(p) for p in result_paths(folder)]
    order = {v: i for i, v in enumerate(VARIANTS)}
    return sorted(runs, key=lambda r: (order.get(r["variant"], len(order)), r["seed"]))

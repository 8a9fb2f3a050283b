"""Shipping a finished run into the repository: its weights without the optimizer state, and a
manifest (the run's result record, the command that reproduces it, the weights' sha256).
Used by ``scripts/ship_checkpoints.py`` (the matchers) and ``scripts/ship_ablation.py``."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..files import write_json
from . import checkpoint

SHIPPED_KEYS = ("model", "step", "history", "wall_time", "train_config", "matcher_config")


def ship_run(run_dir: str | Path, result: dict, weights: str | Path, command: str) -> dict:
    """``run_dir/last.pt`` -> ``weights`` (model and configs only) with its manifest beside it
    (``weights`` with ``.json``: the run's record without its per-pair lists, which stay in the
    shipped record); returns the manifest."""
    state = checkpoint.load(Path(run_dir) / "last.pt", "cpu")
    checkpoint.save({k: state[k] for k in SHIPPED_KEYS}, weights)
    weights = Path(weights)
    summary = {k: v for k, v in result.items() if k not in ("per_pair", "object_effect")}
    manifest = {**summary, "command": command, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    write_json(weights.with_suffix(".json"), manifest)
    return manifest

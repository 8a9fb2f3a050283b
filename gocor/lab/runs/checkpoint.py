"""Saving and loading matcher checkpoints, with one clear error per bad file."""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..device import default_device
from ..models.matcher import Matcher, MatcherConfig

FORMAT = "gocor-kit/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or not one of ours."""



def save(obj: dict, path: str | Path) -> None:
    """Atomic save: a crash mid-write never leaves a truncated checkpoint behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, **obj}, tmp)
    os.replace(tmp, path)


def load(path: str | Path, device: str | torch.device | None = None) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=device or "cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file: "
                              f"{type(e).__name__})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a GOCor-kit checkpoint (expected format {FORMAT!r})")
    return obj


def load_matcher(path: str | Path, device: str | torch.device | None = None) -> tuple[Matcher, dict]:
    """(model in eval mode on ``device``, the checkpoint's other entries)."""
    device = default_device(device)
    obj = load(path, device)
    try:
        cfg = obj["matcher_config"]
        model = Matcher(MatcherConfig(**{**cfg, "channels": tuple(cfg["channels"])}))
        model.load_state_dict(obj["model"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise CheckpointError(f"{path}: checkpoint does not fit the matcher ({type(e).__name__}: "
                              f"{str(e).splitlines()[0][:200]})") from None
    return model.to(device).eval(), obj

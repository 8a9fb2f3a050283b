"""The kit's checkpoint files: written atomically, read with one clear error per bad file.

A checkpoint is a dict of tensors and plain values with a ``format`` tag; what it holds is up
to its writer (a training run, the volume experiment). Rebuilding a matcher from one is
:func:`gocor.lab.runs.evaluate.load_matcher`."""
from __future__ import annotations

from pathlib import Path

import torch

from ..errors import UserError
from ..files import torch_save

FORMAT = "gocor-kit/1"


class CheckpointError(UserError):
    """A checkpoint file is missing, truncated or not one of ours."""


def save(obj: dict, path: str | Path) -> None:
    """Atomic save: a crash mid-write never leaves a truncated checkpoint behind."""
    torch_save({"format": FORMAT, **obj}, path)


def load(path: str | Path, device: str | torch.device | None = None) -> dict:
    """The checkpoint's entries, tensors on ``device`` (default CPU)."""
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

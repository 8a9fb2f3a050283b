"""Files a run trusts: written atomically, read with one clear error per bad file.

Every file that a resume or a cache takes as "finished" (checkpoints, the training pool, each
run's ``result.json``, the analysis JSONs) is written to a temporary file in the same folder and
renamed over the target (:func:`os.replace` is atomic on POSIX and Windows), so a kill mid-write
leaves either the old file or none, never a truncated one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary path beside ``path`` (one per process), then rename it
    over ``path`` (the temporary file is removed when ``write`` fails). Creates the parents."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")     # same folder: the rename is atomic
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | Path, obj: Any) -> Path:
    """``obj`` as indented JSON (NaN and inf refused), written atomically."""
    text = json.dumps(obj, indent=1, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def read_json(path: str | Path) -> Any:
    """The JSON at ``path``; a file that is not valid JSON raises :class:`UserError` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e}); delete it to recompute it") from None


def torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)``, atomically."""
    import torch
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


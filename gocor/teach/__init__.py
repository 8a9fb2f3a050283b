"""Teaching helpers for the notebooks: plots, the volume explorer, the hand-made ambiguous pair."""
from __future__ import annotations

import os
import warnings
from pathlib import Path


def setup_notebook(seed: int) -> Path:
    """The notebooks' common setup: seed torch, quiet warnings, inline figure size; returns the
    repository root (notebooks run from notebooks/ or from the root).

    PyTorch makes its compiler cache folder (``$TMPDIR/torchinductor_<user>``) whenever
    ``torch._dynamo`` is first imported, which some backward passes do (the Hessian of notebook
    03): unless ``TORCHINDUCTOR_CACHE_DIR`` is set, it goes to the git-ignored ``build/`` of the
    repository instead, so that running a notebook leaves no folder in /tmp."""
    import matplotlib.pyplot as plt
    import torch

    warnings.filterwarnings("ignore")
    torch.manual_seed(seed)
    plt.rcParams["figure.dpi"] = 90
    cwd = Path.cwd()
    root = cwd.parent if cwd.name == "notebooks" else cwd
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(root / "build" / "torch_cache"))
    return root
